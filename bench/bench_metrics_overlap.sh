#!/usr/bin/env bash
# metric-dice (voxpipe) vs a numpy loop over classes and MONAI's compute_dice on a 512x512x400
# 25-class label pair, side by side.
#   usage: bench/bench_metrics_overlap.sh       (needs `make bin/metric-dice` and .venv; MONAI optional)
# The pair is made once, deterministically, under bench/out/ (git-ignored);
# bench/bench_metrics_overlap.py says exactly what is timed on each side. BENCH_ROUNDS (default 3)
# sets the repetitions. About 1-2 minutes on 2 cores.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
py=.venv/bin/python
out=bench/out
[ -x bin/metric-dice ] || { echo "bench_metrics_overlap: bin/metric-dice missing (run make)" >&2; exit 1; }
[ -x "$py" ] || { echo "bench_metrics_overlap: missing $py" >&2; exit 1; }
mkdir -p "$out/bin"
cp -f bin/metric-dice "$out/bin/metric-dice.tmp" && mv -f "$out/bin/metric-dice.tmp" "$out/bin/metric-dice"
echo "bench_metrics_overlap  $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -1)); load $(cut -d' ' -f1-3 /proc/loadavg)"
start=$SECONDS
"$py" bench/bench_metrics_overlap.py "$out/bin" "$out"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg); total $((SECONDS - start)) s"
