#!/usr/bin/env bash
# voxpipe benchmarks against their peers, side by side.   usage: bench/run.sh DATA_DIR
# (called by `make bench`, which builds first; the numbers go to BENCHMARKS.md)
#
#  (a) a 512x512x400 int16 volume (200 MiB, uncompressed .nii) through
#        vol-read | vol-cat | vol-cat | vol-cat | vol-write
#      vs cat through 4 and 5 processes and plain `cat in > out`: MB/s and ratio (goal >= 0.7x);
#      peak RSS of one vol-cat (/usr/bin/time -f %M) vs the frame size (goal <= frame + 8 MiB).
#  (b) .nii.gz read and write vs nibabel (fresh python process per run, interpreter + import
#      startup measured separately and subtracted; raw and in-process figures shown too),
#      voxpipe at nibabel's default gzip level, --threads 2 and 1 (goal: >= 2x faster).
#
# The test volume is made once, deterministically, from the real CT (bench/gen_volume.py) under
# bench/out/ (git-ignored) and reused. The programs are copied to bench/out/bin first so that a
# rebuild running beside the benchmark cannot swap binaries under it.
# BENCH_ROUNDS (default 5), BENCH_STREAM_ROUNDS (7) and BENCH_SMALL_ROUNDS (11) set the repetitions.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
data=${1:-../shared/data}
py=.venv/bin/python
out=bench/out
src="$data/totalseg/example_ct_sm.nii.gz"

[ -f "$src" ] || { echo "bench: missing $src" >&2; exit 1; }
[ -x "$py" ] || { echo "bench: missing $py (run: scripts/deps.sh peers)" >&2; exit 1; }
for p in vol-read vol-cat vol-write; do
    [ -x "bin/$p" ] || { echo "bench: bin/$p missing (run make)" >&2; exit 1; }
done
if [ ! -x /usr/bin/time ]; then  # GNU time, for the peak RSS (%M)
    echo "bench: installing the Debian package 'time'" >&2
    if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends time >&2
fi

mkdir -p "$out/bin"
for p in vol-read vol-cat vol-write; do cp -f "bin/$p" "$out/bin/$p.tmp" && mv -f "$out/bin/$p.tmp" "$out/bin/$p"; done
if [ ! -f "$out/ct512.nii" ] || [ ! -f "$out/ct512.nii.gz" ] || [ ! -f "$out/ct_sm.nii" ]; then
    echo "bench: generating the 512x512x400 test volume (once)" >&2
fi
"$py" bench/gen_volume.py "$src" "$out"

cpu=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -1)
echo "voxpipe bench  $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(nproc) CPUs ($cpu), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, kernel $(uname -r)"
echo "peers: $("$py" -c 'import nibabel, numpy, zlib; print(f"nibabel {nibabel.__version__}, numpy {numpy.__version__}, zlib {zlib.ZLIB_RUNTIME_VERSION}")'),\
 GNU $(cat --version | head -1 | sed 's/^cat (GNU coreutils) /coreutils /'); voxpipe gzip: libdeflate $(dpkg-query -W -f='${Version}' libdeflate-dev 2>/dev/null || echo '?')"
echo "source: git $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- lib filters 2>/dev/null || echo ' + uncommitted changes in lib/ or filters/'); bin/vol-read built at $(date -u -r bin/vol-read '+%H:%M:%S UTC')"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
start=$SECONDS
"$py" bench/harness.py "$out/bin" "$data" "$out" "$py"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg); total $((SECONDS - start)) s; table also in $out/results.md"
# keep the inputs, drop the ~1.7 GB of outputs (only the files the harness made: bench/out is shared)
for f in a_vox a_vox0 a_thp a_cat4 a_cat5 a_cat1; do rm -f "$out/$f.nii"; done
for f in w_vox2_512 w_vox1_512 w_nib_512 w_vox2_sm w_vox1_sm w_nib_sm; do rm -f "$out/$f.nii.gz"; done
rm -f "$out/ct512.vps" "$out/ct_sm.vps" "$out/rss.txt"

# The per-program benchmarks (resample, label-clean, metrics, ...), each side by side with its peer.
# BENCH_ONLY=name1,name2 runs a subset (e.g. BENCH_ONLY=resample,ccl make bench).
for b in bench/bench_*.sh; do
    [ -x "$b" ] || [ -f "$b" ] || continue
    name=$(basename "$b" .sh); name=${name#bench_}
    if [ -n "${BENCH_ONLY:-}" ] && [[ ",$BENCH_ONLY," != *",$name,"* ]]; then continue; fi
    echo
    echo "== bench: $name ($b)"
    bash "$b" "$data" || echo "bench: $name failed (exit $?)"
done
