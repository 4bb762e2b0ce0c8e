#!/usr/bin/env bats
# dcm-fetch geometry beyond a plain stack: enhanced (multi-frame) CT made by highdicom's legacy
# converter (tests/scripts/dicom_enhanced.py), compared with the single-frame series and dcm2niix;
# --uniform on missing slices, irregular spacing and gantry tilt (fixtures by dicom_fixtures.py),
# compared with an independent numpy/scipy resampling of the source slices (dicom_uniform_check.py).
load helpers

CT="$VOXPIPE_DATA/totalseg/ct_dicom"
FIX="$SCRIPTS/dicom_fixtures.py"
UCHK="$SCRIPTS/dicom_uniform_check.py"

ids() { "$VOXPIPE_PY" "$FIX" identify "$CT" "$T/id"; }
# same A B: voxels and affine equal (and dtype, shape)
same() {
    "$VOXPIPE_PY" -c '
import sys, numpy as np; sys.path.insert(0, sys.argv[1]); import vxp
a, b = [list(vxp.read(open(f, "rb")))[0]["vols"]["image"] for f in sys.argv[2:4]]
print(a.data.dtype == b.data.dtype, a.data.shape == b.data.shape, np.array_equal(a.data, b.data),
      float(np.abs(a.affine - b.affine).max()) <= 1e-4)' "$SCRIPTS" "$1" "$2"
}
meta() { "$VOXPIPE_PY" -c 'import sys; sys.path.insert(0, sys.argv[1]); import vxp
m = list(vxp.read(open(sys.argv[2], "rb")))[0]["meta"]["dicom"]; print(eval(sys.argv[3], {}, {"m": m}))' "$SCRIPTS" "$1" "$2"; }

@test "enhanced CT (per-frame functional groups, frames shuffled) = the single-frame series = dcm2niix" {
    ids
    "$VOXPIPE_PY" "$SCRIPTS/dicom_enhanced.py" "$T/id" "$T/enh.dcm"
    run dcm-fetch --keep-identifiers -o "$T/e.vxp" "$T/enh.dcm"
    echo "$output"; [ "$status" -eq 0 ]
    dcm-fetch -q --keep-identifiers -o "$T/s.vxp" "$T/id"
    run same "$T/e.vxp" "$T/s.vxp"
    echo "$output"; [ "$output" = "True True True True" ]
    [ "$(meta "$T/e.vxp" '(m["slices"], m["slice_spacing"], m["SOPClassUID"])')" = "(20, 2.0, '1.2.840.10008.5.1.4.1.1.2.2')" ]
    mkdir "$T/n" && dcm2niix -s y -f out -o "$T/n" -z n -b n "$T/enh.dcm" >/dev/null 2>&1
    run "$VOXPIPE_PY" "$SCRIPTS/dicom_check.py" "$T/e.vxp" "$T/n/out.nii" "$T/enh.dcm"
    echo "$output"; [[ "$output" == "ok int16 (512, 512, 20)"* ]]
    # the comparison can fail: a series with a slice left out is not the same
    mkdir "$T/gap"; i=0; for f in "$T"/id/*; do i=$((i+1)); [ $i -eq 10 ] || cp "$f" "$T/gap/"; done
    "$VOXPIPE_PY" "$SCRIPTS/dicom_enhanced.py" "$T/gap" "$T/enh-gap.dcm"
    dcm-fetch -q --keep-identifiers --allow-nonuniform -o "$T/eg.vxp" "$T/enh-gap.dcm"
    run same "$T/eg.vxp" "$T/s.vxp"
    [ "$output" = "True False False False" ]
}

@test "enhanced CT whose frames differ in orientation is refused naming the file (exit 3, no output)" {
    ids
    "$VOXPIPE_PY" "$SCRIPTS/dicom_enhanced.py" "$T/id" "$T/enh.dcm"
    "$VOXPIPE_PY" -c 'import pydicom, sys
d = pydicom.dcmread(sys.argv[1]); fg = d.PerFrameFunctionalGroupsSequence[3]
po = d.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0]
import copy; fg.PlaneOrientationSequence = [copy.deepcopy(po)]; fg.PlaneOrientationSequence[0].ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
d.save_as(sys.argv[2])' "$T/enh.dcm" "$T/bad.dcm"
    assert_exit 3 dcm-fetch --keep-identifiers -o "$T/x.vxp" "$T/bad.dcm"
    [[ "$output" == *"'$T/bad.dcm': frame 4 differs from frame 1 in orientation"* ]]; [ ! -e "$T/x.vxp" ]
}

@test "--uniform on a missing slice and on irregular spacing: the median-spaced grid, linear along the normal" {
    ids
    mkdir "$T/gap"; i=0; for f in "$T"/id/*; do i=$((i+1)); [ $i -eq 10 ] || cp "$f" "$T/gap/"; done
    run dcm-fetch --keep-identifiers --uniform -o "$T/g.vxp" "$T/gap"
    echo "$output"; [ "$status" -eq 0 ]; [[ "$output" == *"1 missing slice(s)"*"resampled from 19 slices to 20 at 2.0000 mm"* ]]
    run "$VOXPIPE_PY" "$UCHK" "$T/g.vxp" "$T/gap"
    echo "$output"; [[ "$output" == "ok (512, 512, 20) "* ]]
    [ "$(meta "$T/g.vxp" '(m["slices"], m["uniform"]["source_slices"], m["uniform"]["slices"], m["uniform"]["tilt_degrees"])')" = "(20, 19, 20, 0.0)" ]
    # the slices present are copied exactly: the resampled series equals the full one but at the gap
    dcm-fetch -q --keep-identifiers -o "$T/s.vxp" "$T/id"
    run "$VOXPIPE_PY" -c 'import sys, numpy as np; sys.path.insert(0, sys.argv[1]); import vxp
a, b = [list(vxp.read(open(f, "rb")))[0]["vols"]["image"].data for f in sys.argv[2:4]]
print([k for k in range(a.shape[2]) if not np.array_equal(a[:, :, k], b[:, :, k])])' "$SCRIPTS" "$T/g.vxp" "$T/s.vxp"
    echo "$output"; [[ "$output" =~ ^\[[0-9]+\]$ ]]
    "$VOXPIPE_PY" "$FIX" irregular "$T/id" "$T/irr"
    run dcm-fetch --keep-identifiers --uniform -o "$T/i.vxp" "$T/irr"
    echo "$output"; [ "$status" -eq 0 ]; [[ "$output" == *"non-uniform spacing: 2.8000 mm"* ]]
    run "$VOXPIPE_PY" "$UCHK" "$T/i.vxp" "$T/irr"
    echo "$output"; [[ "$output" == "ok (512, 512, 20) "* ]]
    # the check can fail: the series as it is (mean spacing, no resampling) does not pass it
    dcm-fetch -q --keep-identifiers --allow-nonuniform -o "$T/a.vxp" "$T/irr"
    run "$VOXPIPE_PY" "$UCHK" "$T/a.vxp" "$T/irr"
    echo "$output"; [[ "$output" != ok* ]]
}

@test "--uniform corrects gantry tilt: sheared stacks and tilted orientation onto an orthogonal, widened grid" {
    ids
    "$VOXPIPE_PY" "$FIX" tilt "$T/id" "$T/shear"                 # ~10 degrees, fractional shifts
    "$VOXPIPE_PY" "$FIX" tilt "$T/id" "$T/shear1" 0.48828125     # one whole pixel per slice
    "$VOXPIPE_PY" "$FIX" tiltiop "$T/id" "$T/iop" 12             # the scanner's way: tilted orientation
    for d in shear shear1 iop; do
        run dcm-fetch --keep-identifiers --uniform -o "$T/$d.vxp" "$T/$d"
        echo "$d: $output"; [ "$status" -eq 0 ]; [[ "$output" == *"gantry tilt; resampled"*"tilt corrected"* ]]
        run "$VOXPIPE_PY" "$UCHK" "$T/$d.vxp" "$T/$d"
        echo "$d: $output"; [[ "$output" == ok* ]]
    done
    # whole-pixel shifts: every output voxel is a source voxel or air; 19 rows wider
    run "$VOXPIPE_PY" "$UCHK" "$T/shear1.vxp" "$T/shear1"
    [ "$output" = "ok (512, 531, 20) 0 0" ]
    [ "$(meta "$T/iop.vxp" 'round(m["uniform"]["tilt_degrees"], 3)')" = 12.0 ]
    # without --uniform: refused, with the hint
    assert_exit 3 dcm-fetch --keep-identifiers -o "$T/x.vxp" "$T/iop"
    [[ "$output" == *"gantry tilt (or sheared stack): slices advance 12.000 degrees off the slice normal; --uniform resamples it"* ]]
    [ ! -e "$T/x.vxp" ]
}

@test "--uniform output is not on the source grid: dcm-store refuses its labels; --uniform excludes --allow-nonuniform" {
    ids
    mkdir "$T/gap"; i=0; for f in "$T"/id/*; do i=$((i+1)); [ $i -eq 10 ] || cp "$f" "$T/gap/"; done
    dcm-fetch -q --keep-identifiers --uniform -o "$T/g.vxp" "$T/gap"
    "$VOXPIPE_PY" "$SCRIPTS/dicom_seg_check.py" labels "$T/g.vxp" "$T/l.vxp"
    mkdir "$T/out"
    assert_exit 3 dcm-store -i "$T/l.vxp" -o "$T/out"
    [[ "$output" == *"meta.dicom.uniform: resampled by dcm-fetch --uniform"* ]]; [ -z "$(ls -A "$T/out")" ]
    assert_exit 2 dcm-fetch --keep-identifiers --uniform --allow-nonuniform -o "$T/x.vxp" "$T/gap"
    [[ "$output" == *"exclude each other"* ]]; [ ! -e "$T/x.vxp" ]
}

@test "--uniform gives the same bytes whatever --threads" {
    ids
    "$VOXPIPE_PY" "$FIX" tilt "$T/id" "$T/shear"
    dcm-fetch -q --keep-identifiers --uniform --threads 1 -o "$T/1.vxp" "$T/shear"
    dcm-fetch -q --keep-identifiers --uniform --threads 3 -o "$T/3.vxp" "$T/shear"
    cmp "$T/1.vxp" "$T/3.vxp"
}
