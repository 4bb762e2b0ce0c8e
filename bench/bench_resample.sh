#!/usr/bin/env bash
# resample vs its peers, side by side.   usage: bench/bench_resample.sh [DATA_DIR]
#
# A 512x512x141 int16 CT at 0.98 x 0.98 x 2 mm (made once, deterministically, from the shared
# example CT: upsampled + seeded noise, bench/gen_resample.py) to 1.5 mm isotropic at order 1:
#   voxpipe `resample --spacing 1.5 --order 1`  (whole process: stream file in, stream to /dev/null)
#   scipy.ndimage.zoom(order=1)                  (in-process, compute only)       goal: >= 10x
#   SimpleITK Resample, sitkLinear, same threads (in-process, compute only)       goal: >= 2x
# Medians over interleaved rounds (BENCH_ROUNDS, default 5; scipy BENCH_SCIPY_ROUNDS, default 3).
# Inputs stay under bench/out/ (git-ignored); the binary is copied there first so that a rebuild
# running beside the benchmark cannot swap it. About a minute on 2 cores.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
data=${1:-../shared/data}
py=.venv/bin/python
out=bench/out
src="$data/totalseg/example_ct_sm.nii.gz"
[ -f "$src" ] || { echo "bench_resample: missing $src" >&2; exit 1; }
[ -x "$py" ] || { echo "bench_resample: missing $py" >&2; exit 1; }
for p in resample vol-read; do [ -x "bin/$p" ] || { echo "bench_resample: bin/$p missing (run make)" >&2; exit 1; }; done

mkdir -p "$out/bin"
cp -f bin/resample "$out/bin/resample.tmp" && mv -f "$out/bin/resample.tmp" "$out/bin/resample"
[ -f "$out/rs_ct512.nii" ] || echo "bench_resample: generating the 512x512x141 CT (once)" >&2
"$py" bench/gen_resample.py "$src" "$out/rs_ct512.nii"
if [ ! -f "$out/rs_ct512.vps" ] || [ "$out/rs_ct512.nii" -nt "$out/rs_ct512.vps" ]; then
    bin/vol-read "$out/rs_ct512.nii" -o "$out/rs_ct512.vps"
fi

cpu=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -1)
echo "resample bench  $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(nproc) CPUs ($cpu); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "peers: $("$py" -c 'import scipy, SimpleITK, numpy; print(f"scipy {scipy.__version__}, SimpleITK {SimpleITK.Version.VersionString()}, numpy {numpy.__version__}")')"
start=$SECONDS
"$py" bench/resample_peer.py "$out/bin/resample" "$out/rs_ct512.nii" "$out/rs_ct512.vps" "$out"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg); total $((SECONDS - start)) s"
