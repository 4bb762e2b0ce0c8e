#!/usr/bin/env bash
# normalize (voxpipe) vs MONAI / nnU-Net (numpy) / scipy on a 512x512x400 CT, side by side.
#   usage: bench/bench_preproc.sh [DATA_DIR]      (needs `make bin/normalize` and .venv with torch+monai)
# The volume is made once, deterministically, under bench/out/ (git-ignored); bench/bench_preproc.py
# says exactly what is timed on each side. BENCH_ROUNDS (default 3) and BENCH_THREADS (default:
# CPUs) set the repetitions and threads; BENCH_FULL=1 adds MONAI GaussianSmooth(sigma 1) alone (+1 min).
# About 2 minutes on 2 cores.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
data=${1:-../shared/data}
py=.venv/bin/python
out=bench/out
[ -x bin/normalize ] || { echo "bench_preproc: bin/normalize missing (run make)" >&2; exit 1; }
"$py" -c 'import monai, torch, scipy' 2>/dev/null || { echo "bench_preproc: $py lacks monai/torch/scipy" >&2; exit 1; }
mkdir -p "$out/bin"
cp -f bin/normalize "$out/bin/normalize.tmp" && mv -f "$out/bin/normalize.tmp" "$out/bin/normalize"
echo "bench_preproc  $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -1)); load $(cut -d' ' -f1-3 /proc/loadavg)"
start=$SECONDS
"$py" bench/bench_preproc.py "$out/bin" "$data" "$out"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg); total $((SECONDS - start)) s"
