#!/usr/bin/env bash
# label-clean --largest (voxpipe) vs a Python loop of scipy.ndimage.label over 25 classes keeping
# each class's largest component, on a 512x512x400 uint8 label volume, side by side.
#   usage: bench/bench_ccl.sh [DATA_DIR]         (needs `make bin/label-clean bin/vol-read` and .venv)
# The volume is made once, deterministically, under bench/out/ccl (git-ignored); bench/bench_ccl.py
# says exactly what is timed on each side. BENCH_ROUNDS (default 5), BENCH_PEER_ROUNDS (default 1)
# and BENCH_THREADS (default: CPUs) set the repetitions and threads. About 1.5 minutes on 2 cores
# (plus about 1 minute the first time, to make the volume).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
data=${1:-../shared/data}
py=.venv/bin/python
out=bench/out
for p in label-clean vol-read; do
    [ -x "bin/$p" ] || { echo "bench_ccl: bin/$p missing (run make)" >&2; exit 1; }
done
"$py" -c 'import scipy, nibabel, msgpack' 2>/dev/null || { echo "bench_ccl: $py lacks scipy/nibabel/msgpack" >&2; exit 1; }
mkdir -p "$out/bin"
for p in label-clean vol-read; do cp -f "bin/$p" "$out/bin/$p.tmp" && mv -f "$out/bin/$p.tmp" "$out/bin/$p"; done
echo "bench_ccl  $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -1)); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "peers: $("$py" -c 'import scipy, numpy; print(f"scipy {scipy.__version__}, numpy {numpy.__version__}")')"
start=$SECONDS
"$py" bench/bench_ccl.py "$out/bin" "$data" "$out"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg); total $((SECONDS - start)) s"
