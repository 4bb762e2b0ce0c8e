#!/usr/bin/env bash
# make demo: the main job on the shipped data. Today (foundation): read the real CT with its
# TotalSegmentator labels, map them to the study's 25 spine classes, describe the case, and write
# NIfTI files; then the same pipeline with ZeroMQ between the stages. Later issues extend this
# into the full fetch -> preprocess -> segment -> score pipeline.
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
echo "demo: outputs in $out"
