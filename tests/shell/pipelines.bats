#!/usr/bin/env bats
# The makefile pipelines and the shipped examples run on real data.
load helpers

make_dataset() { # $1 = dataset dir: one TotalSegmentator-style case made from the shared CT
    mkdir -p "$1/s0001/segmentations"
    cp "$TS/example_ct_sm.nii.gz" "$1/s0001/ct.nii.gz"
    "$VOXPIPE_PY" - "$TS/example_seg.nii.gz" "$1/s0001/segmentations" <<'PY'
import sys, nibabel as nib, numpy as np
seg = nib.load(sys.argv[1]); a = np.asanyarray(seg.dataobj)
names = {30: "vertebrae_L2", 31: "vertebrae_L1", 32: "vertebrae_T12", 33: "vertebrae_T11", 5: "liver"}
for i, n in names.items():
    nib.save(nib.Nifti1Image((a == i).astype(np.uint8), seg.affine, seg.header), f"{sys.argv[2]}/{n}.nii.gz")
PY
}

@test "pipelines/totalseg-spine25.mk converts a dataset and redoes only what changed" {
    make_dataset "$T/ds"
    run make -s -f "$VOXPIPE_ROOT/pipelines/totalseg-spine25.mk" DATA="$T/ds" OUT="$T/out" BIN="$VOXPIPE_BIN"
    [ "$status" -eq 0 ]
    [ -f "$T/out/s0001_image.nii.gz" ] && [ -f "$T/out/s0001_label.nii.gz" ]
    # the labels are the spine25 mapping of the vertebra masks (L2=21, L1=20, T12=19, T11=18; liver -> 0)
    run "$VOXPIPE_PY" -c '
import sys, nibabel as nib, numpy as np
ref = np.asanyarray(nib.load(sys.argv[1]).dataobj); out = np.asanyarray(nib.load(sys.argv[2]).dataobj)
want = np.zeros_like(ref); want[ref == 30] = 21; want[ref == 31] = 20; want[ref == 32] = 19; want[ref == 33] = 18
print(int((want != out).sum()), sorted(np.unique(out).tolist()))' "$TS/example_seg.nii.gz" "$T/out/s0001_label.nii.gz"
    [ "$output" = "0 [0, 18, 19, 20, 21]" ]
    run make -s -f "$VOXPIPE_ROOT/pipelines/totalseg-spine25.mk" DATA="$T/ds" OUT="$T/out" BIN="$VOXPIPE_BIN" -n
    [[ "$output" != *vol-read* ]]
}

@test "the shipped examples run" {
    cd "$T"
    mkdir bin && ln -s "$VOXPIPE_BIN"/* bin/
    run bash "$VOXPIPE_ROOT/examples/spine25-from-totalseg.sh" "$VOXPIPE_DATA"
    [ "$status" -eq 0 ]
    [[ "$output" == *vertebrae_L1* ]]
    [ -f examples-out/example_ct_sm_label.nii.gz ]
}

@test "the preprocessing example runs and returns the labels to the original grid" {
    cd "$T"
    mkdir bin && ln -s "$VOXPIPE_BIN"/* bin/
    run bash "$VOXPIPE_ROOT/examples/preprocess.sh" "$VOXPIPE_DATA"
    [ "$status" -eq 0 ]
    [[ "$output" == *"243x201x59  spacing 1.5x1.5x1.5"* ]]
    # back on the 3 mm grid, the spine labels equal the spine25 mapping of the input exactly: 3 mm
    # -> 1.5 mm -> 3 mm with nearest is lossless, the crop kept every label voxel, and label-clean
    # found nothing to change on this clean segmentation
    run "$VOXPIPE_PY" -c '
import sys, nibabel as nib, numpy as np
ref = np.asanyarray(nib.load(sys.argv[1]).dataobj); out = nib.load(sys.argv[2])
want = np.zeros_like(ref)
for v2, s25 in ((30, 21), (31, 20), (32, 19), (33, 18)): want[ref == v2] = s25
a = np.asanyarray(out.dataobj)
print(a.shape == ref.shape, np.allclose(out.affine, nib.load(sys.argv[1]).affine, atol=1e-4), int((a != want).sum()))' \
        "$VOXPIPE_DATA/totalseg/example_seg.nii.gz" examples-out/ct_label_preprocessed.nii.gz
    read -r shape aff diff <<<"$output"
    [ "$shape" = True ] && [ "$aff" = True ]
    [ "$diff" -eq 0 ]
}

@test "the fan-out example runs: two CURVE nodes resample three cases, each returned once" {
    cd "$T"
    mkdir bin && ln -s "$VOXPIPE_BIN"/* bin/
    run timeout 120 bash "$VOXPIPE_ROOT/examples/fanout-head-and-nodes.sh" "$VOXPIPE_DATA"
    [ "$status" -eq 0 ]
    [ "$(printf '%s\n' "$output" | grep -c '^case ')" -eq 3 ]
    [[ "$output" == *"3 written, 0 retries, 0 given up"* ]]
    [ "$(printf '%s\n' "$output" | grep -c '62x51x16  spacing 6x6x6 mm')" -eq 3 ]
}
