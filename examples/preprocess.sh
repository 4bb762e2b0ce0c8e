#!/usr/bin/env bash
# The real CT from ../shared/data through the preprocessing filters, with vol-info after each step
# showing what changed: TotalSegmentator labels -> 25 spine classes, resampled to 1.5 mm, cropped
# to the body (HU > -500, 10 mm margin), intensities normalised as nnU-Net does for CT, and the
# labels cleaned (largest component per vertebra, ordered head to feet). Run from the project root.
set -euo pipefail
D=${1:-../shared/data}/totalseg
export PATH="$PWD/bin:$PATH"
mkdir -p examples-out
show() { echo "-- $1"; vol-info -i "examples-out/$2.vxp" | sed -n '1,3p'; }

vol-read "$D/example_ct_sm.nii.gz" --label "$D/example_seg.nii.gz" --labels spine25 --id ct > examples-out/0-read.vxp
show "read (3 mm, spine25 labels)" 0-read
resample --spacing 1.5 -i examples-out/0-read.vxp > examples-out/1-resampled.vxp
show "resample --spacing 1.5 (image linear, label nearest)" 1-resampled
crop --foreground --select image --threshold -500 --margin 10 --allow-smaller -i examples-out/1-resampled.vxp > examples-out/2-cropped.vxp
show "crop --foreground (body at HU > -500, 10 mm margin)" 2-cropped
normalize --ct --fg label -i examples-out/2-cropped.vxp > examples-out/3-normalized.vxp
show "normalize --ct (nnU-Net CT normalisation from the label foreground)" 3-normalized
label-clean --largest --spine-order -i examples-out/3-normalized.vxp > examples-out/4-clean.vxp
echo "-- label-clean --largest --spine-order"
vol-info -i examples-out/4-clean.vxp
# and back onto the original grid: uncrop, then resample --back
uncrop -i examples-out/4-clean.vxp | resample --back | vol-write -o 'examples-out/{id}_{vol}_preprocessed.nii.gz'
echo "-- back on the original 3 mm grid: examples-out/ct_label_preprocessed.nii.gz"
