#!/usr/bin/env bash
# Map the real CT's TotalSegmentator labels to the study's 25 spine classes, show what is there,
# and write NIfTI files. Run from the project root after `make`.
set -euo pipefail
D=${1:-../shared/data}/totalseg
export PATH="$PWD/bin:$PATH"
mkdir -p examples-out
vol-read "$D/example_ct_sm.nii.gz" --label "$D/example_seg.nii.gz" \
    | label-map --preset spine25 \
    | tee examples-out/spine25.vxp \
    | vol-info
vol-write -i examples-out/spine25.vxp -o 'examples-out/{id}_{vol}.nii.gz'
