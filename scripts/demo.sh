#!/usr/bin/env bash
# make demo: the main job on the shipped data. Read the real CT with its TotalSegmentator labels,
# map them to the study's 25 spine classes, write NIfTI, run the same pipeline over ZeroMQ, prepare
# the case as the networks expect it (resample, crop, normalize, clean), and score TotalSegmentator's
# fast model against its full model with the study's metrics. Segmentation (infer-*) and training
# come with later issues.
set -euo pipefail
data=${1:-../shared/data}
root=$(cd "$(dirname "$0")/.." && pwd)
export PATH="$root/bin:$PATH"
ts="$data/totalseg"
out="$root/demo-out"
mkdir -p "$out"

echo "== 1. vol-read | label-map --preset spine25 | vol-info"
vol-read "$ts/example_ct_sm.nii.gz" --label "$ts/example_seg.nii.gz" --id s0001 \
    | label-map --preset spine25 | tee "$out/s0001.vxp" | vol-info

echo
echo "== 2. the stream back to NIfTI: vol-write -o 'demo-out/{id}_{vol}.nii.gz'"
vol-write -i "$out/s0001.vxp" -o "$out/{id}_{vol}.nii.gz" -v
ls -l "$out"/*.nii.gz

echo
echo "== 3. the same pipeline with ZeroMQ between the stages (ipc:// on this machine)"
sock="$out/zmq"
vol-write --stream -i "@ipc://$sock-2" -o "$out/s0001-zmq.vxp" &
w=$!
label-map --preset spine25 -i "@ipc://$sock-1" -o ">ipc://$sock-2" &
l=$!
vol-read "$ts/example_ct_sm.nii.gz" --label "$ts/example_seg.nii.gz" --id s0001 -o ">ipc://$sock-1"
wait $l $w
if cmp -s <(vol-cat -i "$out/s0001.vxp" | vol-info --json) <(vol-info --json -i "$out/s0001-zmq.vxp"); then
    echo "pipes and ZeroMQ gave the same case"
else
    echo "demo: error: pipes and ZeroMQ differ" >&2
    exit 1
fi
echo
echo "== 4. preprocessing: resample 1.5 mm | crop to the body | nnU-Net CT normalisation | label-clean"
vol-cat -i "$out/s0001.vxp" \
    | resample --spacing 1.5 \
    | crop --foreground --select image --threshold -500 --margin 10 --allow-smaller \
    | normalize --ct --fg label \
    | label-clean --largest --spine-order \
    | tee "$out/s0001-preprocessed.vxp" | vol-info

echo
echo "== 5. TotalSegmentator fast model vs full model on the vertebrae present (spine25 classes)"
vol-read "$ts/example_seg.nii.gz" --id s0001 --image-name label --label "$ts/example_seg_fast.nii.gz" --label-name pred \
    | label-map --preset spine25 --vol label | label-map --preset spine25 --vol pred > "$out/s0001-pred.vxp"
metric-dice -i "$out/s0001-pred.vxp" --group vertebrae=1-24 -o "$out/overlap.tsv"
hausdorff -i "$out/s0001-pred.vxp" --tolerance 3 -o "$out/distance.tsv"
table() { # the rows of a tidy TSV whose metric is one of $2, aligned
    awk -F'\t' -v keep="$2" 'BEGIN { n = split(keep, k, ","); for (i = 1; i <= n; i++) want[k[i]] = 1 }
        NR == 1 || ($4 in want) { printf "%-7s %-10s %-15s %-7s %s\n", $1, $2, $3, $4, $5 }' "$1"
}
table "$out/overlap.tsv" dice,iou,kappa
echo
table "$out/distance.tsv" hd,hd95,assd

echo
echo "== 6. the report: pipelines/evaluate.mk scores each case, then writes the study's tables and figures"
mkdir -p "$out/eval-in/ref" "$out/eval-in/fast"
cp "$ts/example_seg.nii.gz" "$out/eval-in/ref/s0001.nii.gz"
cp "$ts/example_seg_fast.nii.gz" "$out/eval-in/fast/s0001.nii.gz"
make -s -f "$root/pipelines/evaluate.mk" BIN="$root/bin" REF="$out/eval-in/ref" PRED_DIRS="fast=$out/eval-in/fast" \
    LABELS=spine25 HD_OPTS="--tolerance 3" OUT="$out/eval" -j2
sed -n '1,25p' "$out/eval/report.md"
echo "(full report: $out/eval/report.html, figures in $out/eval/report_figures/)"

echo
echo "== 7. the PACS round trip: Orthanc on loopback, C-FIND/C-GET pseudonymised, segment, DICOM SEG back by C-STORE"
"$root/examples/pacs-roundtrip.sh" "$data" "$out/pacs"

echo
echo "demo: outputs in $out"
