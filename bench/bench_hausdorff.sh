#!/usr/bin/env bash
# hausdorff (voxpipe) vs MONAI, surface-distance and plastimatch on a 512x512x141 bone-mask pair at
# 0.98 x 0.98 x 2 mm, side by side (wall and CPU seconds, ratios; goals: 20x MONAI, 5x plastimatch).
#   usage: bench/bench_hausdorff.sh      (needs `make bin/hausdorff bin/vol-read` and .venv with torch+monai)
# The data are made once, deterministically, under bench/out/ (git-ignored); bench/bench_hausdorff.py
# says exactly what is timed on each side. BENCH_ROUNDS (default 5), BENCH_PEER_ROUNDS (default 1),
# BENCH_PLM_ROUNDS (default 3), BENCH_SD=0 (skip surface-distance, about a minute) and BENCH_MONAI=0
# (skip MONAI) set the work. About 2-3 minutes on 2 cores; plastimatch alone
# (BENCH_MONAI=0 BENCH_SD=0) under a minute.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
py=.venv/bin/python
out=bench/out
for p in hausdorff vol-read; do
    [ -x "bin/$p" ] || { echo "bench_hausdorff: bin/$p missing (run make)" >&2; exit 1; }
done
if [ "${BENCH_MONAI:-1}" != 0 ] || [ "${BENCH_SD:-1}" != 0 ]; then
    "$py" -c 'import monai, torch, surface_distance' 2>/dev/null || { echo "bench_hausdorff: $py lacks monai/torch/surface-distance" >&2; exit 1; }
fi
mkdir -p "$out/bin"
for p in hausdorff vol-read; do cp -f "bin/$p" "$out/bin/$p.tmp" && mv -f "$out/bin/$p.tmp" "$out/bin/$p"; done
echo "bench_hausdorff  $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -1)); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "peers: $("$py" -c 'import monai, torch, numpy, scipy; print(f"MONAI {monai.__version__}, torch {torch.__version__}, numpy {numpy.__version__}, scipy {scipy.__version__}")' 2>/dev/null), surface-distance $("$py" -m pip show surface-distance 2>/dev/null | sed -n 's/^Version: //p'), plastimatch $(command -v plastimatch >/dev/null && plastimatch --version 2>&1 | head -1 || echo 'not installed')"
start=$SECONDS
"$py" bench/bench_hausdorff.py "$out/bin" "$out"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg); total $((SECONDS - start)) s"
