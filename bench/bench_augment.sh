#!/usr/bin/env bash
# augment vs nnU-Net v2's augmentation (batchgeneratorsv2), side by side.   usage: bench/bench_augment.sh
#
# A 160^3 int16 volume + uint8 label (made once, deterministically, under bench/out/) -> a 128^3
# patch, with every transform applied (fixed values) and with nnU-Net's default probabilities
# (6 cases). voxpipe: the whole `augment` process (stream in, stream to /dev/null); peer: in-process
# compute only (bench/augment_peer.py). Medians of BENCH_ROUNDS (default 5) interleaved rounds,
# BENCH_THREADS threads on both sides (default 2). About 1.5 minutes on 2 idle cores.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
py=.venv/bin/python
out=bench/out
bin=${AUGMENT_BIN:-bin/augment}
[ -x "$py" ] || { echo "bench_augment: missing $py" >&2; exit 1; }
[ -x "$bin" ] || { echo "bench_augment: $bin missing (run make)" >&2; exit 1; }
mkdir -p "$out/bin"
cp -f "$bin" "$out/bin/augment.tmp" && mv -f "$out/bin/augment.tmp" "$out/bin/augment"
cpu=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -1)
echo "augment bench  $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(nproc) CPUs ($cpu); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
start=$SECONDS
"$py" bench/augment_peer.py "$out/bin/augment" "$out" "${BENCH_THREADS:-2}"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg); total $((SECONDS - start)) s"
