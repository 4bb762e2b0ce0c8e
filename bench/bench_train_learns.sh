#!/usr/bin/env bash
# It learns (issue 7 item 8): overfit the shared real CT with train-ressegnet on CPU and report the
# Dice of each of the four vertebrae present and the wall time (goal: Dice >= 0.9 each, < 10 min).
#   usage: bench/bench_train_learns.sh [DATA]     (DATA default ../shared/data)
#   env: BENCH_THREADS (nproc), LEARN_EPOCHS (120), LEARN_ITERS (10)
# Data: example_ct_sm.nii.gz + example_seg.nii.gz (TotalSegmentator v2) via vol-read --label,
# label-map to T11, T12, L1, L2 = 1..4, crop to the labels with a 9 mm margin, nnU-Net CT
# normalisation (normalize --ct); written to bench/out/learns/. Model: a small SegResNet (8 filters,
# blocks 1,2,2 / 1,1), AdamW lr 2e-3, 120 x 10 iterations of batch 1, patch 36x40x36: the whole
# cropped case (33x40x36) padded only to the network's divisor 4, every iteration, so no foreground
# oversampling (--fg-prob 0). Why: T11 is 70 voxels in the case's top 3 slices; with a 40^3 patch
# the case sits in a frame of zero padding (0 = the foreground mean after normalize --ct) and the
# oversampled patches (batch 2, fg 0.33) are shifted up to 16 voxels in y, cutting T11 off in some;
# that run (80 x 10) left T11 at Dice 0 (softmax <= 0.11). The Dice is measured twice: by the
# trainer's own validation (whole case) and, independently, by infer-ressegnet (MONAI sliding
# window) on the same case scored with numpy (tests/scripts/train_check.py dice).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
data=${1:-$root/../shared/data}
ts=$data/totalseg
py=.venv/bin/python
out=bench/out/learns
threads=${BENCH_THREADS:-$(nproc)}
epochs=${LEARN_EPOCHS:-120}
iters=${LEARN_ITERS:-10}
for p in vol-read label-map crop normalize train-ressegnet infer-ressegnet; do
    [ -x "bin/$p" ] || { echo "bench_train_learns: bin/$p missing (run make)" >&2; exit 1; }
done
rm -rf "$out" && mkdir -p "$out"
printf 'vertebrae_T11 1 T11\nvertebrae_T12 2 T12\nvertebrae_L1 3 L1\nvertebrae_L2 4 L2\n' > "$out/four.map"
bin/vol-read "$ts/example_ct_sm.nii.gz" --label "$ts/example_seg.nii.gz" | bin/label-map --map "$out/four.map" \
    | bin/crop --foreground --select label --margin 9 | bin/normalize --ct --fg label > "$out/ct4.vxp"
echo "bench_train_learns  $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg); threads $threads"
bin/vol-info < "$out/ct4.vxp" | sed -n '2,3p'
SECONDS=0
start=$(date +%s.%N)
bin/train-ressegnet -i "$out/ct4.vxp" -o "$out/run" --init-filters 8 --blocks-down 1,2,2 --blocks-up 1,1 \
    --patch 36,40,36 --batch 1 --fg-prob 0 --lr 2e-3 --epochs "$epochs" --iters-per-epoch "$iters" --val "$out/ct4.vxp" --val-every 5 \
    --log-json "$out/log.jsonl" --threads "$threads" -q
secs=$(echo "$(date +%s.%N) - $start" | bc)
echo "trained $epochs x $iters iterations in ${secs%.*} s (goal < 600 s)"
echo "trainer validation (last):  $(grep '"type":"val"' "$out/log.jsonl" | tail -1)"
np=()
if bin/infer-ressegnet --help | grep -q -- --no-preprocess; then np=(--no-preprocess); fi
bin/infer-ressegnet -m "$out/run/last.safetensors" "${np[@]}" --label pred -i "$out/ct4.vxp" -o "$out/pred.vxp"
echo "infer-ressegnet + numpy Dice per vertebra (1 T11, 2 T12, 3 L1, 4 L2):"
"$py" tests/scripts/train_check.py dice "$out/ct4.vxp" "$out/pred.vxp" label pred
