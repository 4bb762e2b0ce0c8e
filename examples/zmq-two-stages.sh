#!/usr/bin/env bash
# Two stages joined by ZeroMQ over loopback TCP instead of a pipe: the stable sink binds, the
# source connects. Run from the project root after `make`.
set -euo pipefail
D=${1:-../shared/data}/totalseg
export PATH="$PWD/bin:$PATH"
vol-write -i '@tcp://127.0.0.1:5557' -o 'examples-out/{id}_{vol}.nii.gz' -v &
sink=$!
vol-read "$D/example_ct_sm.nii.gz" --label "$D/example_seg.nii.gz" -o '>tcp://127.0.0.1:5557'
wait $sink
