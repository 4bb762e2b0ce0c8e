#!/usr/bin/env bash
# pipelines/evaluate.mk (voxpipe) vs a Python evaluation script (nibabel + MONAI metrics + scipy),
# side by side: scoring two models on the same cases, comparing them, writing the report.
#   usage: bench/bench_evaluate.sh [DATA]   (DATA = ../shared/data; needs `make` and .venv with monai)
# The cases are made once, deterministically, under bench/out/evaluate (git-ignored);
# bench/bench_evaluate.py says exactly what is timed on each side. BENCH_CASES (default 4),
# BENCH_ROUNDS (default 5), BENCH_PEER_ROUNDS (default 1). About 1 minute on 2 cores.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
data=${1:-$root/../shared/data}
py=.venv/bin/python
out=bench/out
for p in vol-read label-map metric-dice hausdorff ttest report; do
    [ -x "bin/$p" ] || { echo "bench_evaluate: bin/$p missing (run make)" >&2; exit 1; }
done
"$py" -c 'import monai, torch' 2>/dev/null || { echo "bench_evaluate: $py lacks monai/torch" >&2; exit 1; }
mkdir -p "$out/bin"
for p in vol-read label-map metric-dice hausdorff ttest report; do
    cp -f "bin/$p" "$out/bin/$p.tmp" && mv -f "$out/bin/$p.tmp" "$out/bin/$p"
done
echo "bench_evaluate  $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -1)); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "peer: $("$py" -c 'import monai, torch, scipy; print(f"MONAI {monai.__version__}, torch {torch.__version__}, scipy {scipy.__version__}")')"
start=$SECONDS
"$py" bench/bench_evaluate.py "$root/$out/bin" "$out" "$data/totalseg/example_seg.nii.gz" "$data/totalseg/example_seg_fast.nii.gz"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg); total $((SECONDS - start)) s"
