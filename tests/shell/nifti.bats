#!/usr/bin/env bats
# NIfTI reading and writing, checked against nibabel: fixtures written by nibabel
# (tests/scripts/make_nifti_fixtures.py) read with vol-read and compared with what nibabel says
# (tests/scripts/check_nifti.py), files written by vol-write read back with nibabel, and the real
# TotalSegmentator CT and labels in $TS.
load helpers

setup_file() {
    export FX="${VOXPIPE_TMP:-$BATS_FILE_TMPDIR}/nifti-fixtures"
    rm -rf "$FX"
    "$VOXPIPE_PY" "$SCRIPTS/make_nifti_fixtures.py" "$FX" >/dev/null
}

check() { "$VOXPIPE_PY" "$SCRIPTS/check_nifti.py" "$@"; }

fixture() { # the file of fixture NAME
    local f
    for f in "$FX/$1.nii" "$FX/$1.nii.gz"; do
        if [ -f "$f" ]; then echo "$f"; return 0; fi
    done
    echo "no fixture file for $1 in $FX" >&2
    return 1
}

# vol-read the fixture and compare with nibabel (values, dtype, affine, meta, vol-info), then write
# it back with vol-write (.nii.gz and .nii NIfTI-1, NIfTI-2) and read those with nibabel
fixture_roundtrip() {
    local name=$1 f
    f=$(fixture "$name")
    vol-read "$f" >"$T/s.vxp"
    check read "$FX" "$name" "$T/s.vxp"
    vol-info --json -i "$T/s.vxp" >"$T/info.json"
    check info "$f" "$T/info.json"
    vol-write -i "$T/s.vxp" -o "$T/w.nii.gz"
    check written "$f" "$T/w.nii.gz"
    vol-write -i "$T/s.vxp" -o "$T/w.nii"
    check written "$f" "$T/w.nii"
    vol-write --nifti2 -i "$T/s.vxp" -o "$T/w2.nii"
    check written --nifti2 "$f" "$T/w2.nii"
}

@test "nifti: every fixture has a test in this file" {
    run "$VOXPIPE_PY" -c 'import json, sys; print("\n".join(sorted(json.load(open(sys.argv[1])))))' "$FX/expected.json"
    [ "$status" -eq 0 ]
    made=$output
    tested=$(grep -oE '^    fixture_roundtrip [a-z0-9_]+' "$BATS_TEST_FILENAME" | awk '{print $2}' | sort)
    [ -n "$made" ]
    if [ "$made" != "$tested" ]; then
        diff <(echo "$made") <(echo "$tested") >&2 || true
        return 1
    fi
}

@test "nifti (a): oblique sform (two rotations, anisotropic) wins over a different qform" {
    fixture_roundtrip a_sform_oblique
}

@test "nifti (b): qform only, oblique, qfac -1 (srow holds a decoy)" {
    fixture_roundtrip b_qform_qfac
}

@test "nifti (c): LPS, sform + qform" {
    fixture_roundtrip c_lps
}

@test "nifti (c): LPS, qform only (180-degree rotation, quaternion w = 0)" {
    fixture_roundtrip c_lps_qform
}

@test "nifti (d): PIR (permuted axes), sform + qform" {
    fixture_roundtrip d_pir
}

@test "nifti (d): PIR, qform only (code 2), uint16" {
    fixture_roundtrip d_pir_qform
}

@test "nifti (e): neither sform nor qform: nibabel's base affine" {
    fixture_roundtrip e_no_xform
}

@test "nifti (f): NIfTI-2 oblique sform, double-precision offsets, int32" {
    fixture_roundtrip f_nifti2_oblique
}

@test "nifti (f): NIfTI-2 qform only, qfac -1" {
    fixture_roundtrip f_nifti2_qform
}

@test "nifti (h): big-endian int16 (.nii)" {
    fixture_roundtrip h_bigendian_i16
}

@test "nifti (h): big-endian float32 (.nii.gz)" {
    fixture_roundtrip h_bigendian_f32
}

@test "nifti (h): big-endian int16 with slope 0.5 inter 0.25 -> float32" {
    fixture_roundtrip h_bigendian_scaled
}

@test "nifti (h): big-endian NIfTI-2 uint16" {
    fixture_roundtrip h_nifti2_bigendian
}

@test "nifti (i): uint16 with scl_inter -1024 -> int16" {
    fixture_roundtrip i_scaled_u16_inter
}

@test "nifti (i): int16 with scl_slope 0.5 -> float32" {
    fixture_roundtrip i_scaled_i16_half
}

@test "nifti (i): uint16 with slope 2 inter 10 (past int16) -> uint16" {
    fixture_roundtrip i_scaled_u16_wide
}

@test "nifti (i): uint8 with scl_inter 5 (still 0..255) -> uint8" {
    fixture_roundtrip i_scaled_u8_inter
}

@test "nifti (i): float32 with slope 3.5 inter -1.25" {
    fixture_roundtrip i_scaled_f32
}

@test "nifti (j): float64 -> float32" {
    fixture_roundtrip j_float64
}

@test "nifti (j): int8 -> int16" {
    fixture_roundtrip j_int8
}

@test "nifti (j): uint16 full range" {
    fixture_roundtrip j_uint16
}

@test "nifti (k): 4D with 3 channels, float32" {
    fixture_roundtrip k_4d_3ch
}

@test "nifti (k): 4D with 3 channels, qform only PIR, int16" {
    fixture_roundtrip k_4d_3ch_qform
}

@test "nifti: qform near a 180-degree rotation (w^2 below nibabel's threshold -> w = 0)" {
    fixture_roundtrip l_qform_near180
}

@test "nifti: an sform_code nibabel does not know (7) is ignored, as nibabel does" {
    fixture_roundtrip m_bad_sform_code
}

@test "nifti: qfac 0 is taken as 1, as nibabel does" {
    fixture_roundtrip n_qfac_zero
}

# ---- the checks themselves must fail on a wrong answer

mutate() { # IN OUT WHAT: a copy of a one-case stream with one thing wrong
    "$VOXPIPE_PY" - "$@" <<'EOF'
import os, sys
import numpy as np
sys.path.insert(0, os.environ["SCRIPTS"])
import vxp
src, dst, what = sys.argv[1:4]
c = list(vxp.read(open(src, "rb")))[0]
v = c["vols"]["image"]
d = v.data.copy()
if what == "flip-x":
    d = d[::-1]
elif what == "swap-yz":
    d = np.ascontiguousarray(np.swapaxes(d, 1, 2))
elif what == "one-voxel":
    i = (3, 4, 5)
    d[i] = np.nextafter(d[i], np.inf) if d.dtype.kind == "f" else d[i] + 1
elif what == "dtype":
    d = d.astype(np.int32 if d.dtype.kind in "iu" else np.float16)
elif what == "affine":
    v.affine[1, 3] += 2e-5
elif what == "affine-rot":
    v.affine[:3, :3] = v.affine[:3, [1, 0, 2]]
elif what == "id":
    c["id"] = c["id"] + "x"
elif what == "meta":
    c["meta"]["nifti"]["image"]["sform_code"] = 3
c["vols"]["image"] = vxp.Vol(d, v.affine)
vxp.write(open(dst, "wb"), [c])
EOF
}

@test "nifti: check_nifti.py read fails on a flipped axis, a voxel off by one ulp, dtype, affine, id, meta" {
    export SCRIPTS
    for name in a_sform_oblique j_float64; do
        f=$(fixture "$name")
        vol-read "$f" >"$T/s.vxp"
        check read "$FX" "$name" "$T/s.vxp"
        for what in flip-x swap-yz one-voxel dtype affine affine-rot id meta; do
            mutate "$T/s.vxp" "$T/m.vxp" "$what"
            run check read "$FX" "$name" "$T/m.vxp"
            if [ "$status" -ne 1 ] || [[ "$output" != *"check_nifti read: "* ]]; then
                echo "$name/$what: check passed a wrong stream (exit $status): $output" >&2
                return 1
            fi
        done
    done
}

@test "nifti: check_nifti.py written and info fail on wrong files" {
    f=$(fixture a_sform_oblique)
    vol-read "$f" >"$T/s.vxp"
    vol-write -i "$T/s.vxp" -o "$T/w.nii.gz"
    check written "$f" "$T/w.nii.gz"
    for what in qform0 voxel affine pixdim nifti2; do
        "$VOXPIPE_PY" - "$T/w.nii.gz" "$T/bad.nii.gz" "$what" <<'EOF'
import sys
import nibabel as nib
import numpy as np
src, dst, what = sys.argv[1:4]
img = nib.load(src)
data = np.asanyarray(img.dataobj).copy()
hdr = img.header.copy()
aff = img.affine.copy()
if what == "voxel":
    data[1, 2, 3] += 1
if what == "affine":
    aff[0, 3] += 1e-4
cls = nib.Nifti2Image if what == "nifti2" else nib.Nifti1Image
out = cls(data, aff, hdr if what != "nifti2" else None)
out.set_sform(aff, code=1)
out.set_qform(aff, code=0 if what == "qform0" else 1)
if what == "pixdim":
    out.header["pixdim"][1] *= 1.001
nib.save(out, dst)
EOF
        run check written "$f" "$T/bad.nii.gz"
        if [ "$status" -ne 1 ] || [[ "$output" != *"check_nifti written: "* ]]; then
            echo "$what: check passed a wrong file (exit $status): $output" >&2
            return 1
        fi
    done
    vol-info --json -i "$T/s.vxp" >"$T/info.json"
    check info "$f" "$T/info.json"
    sed 's/"orientation":"[A-Z]*"/"orientation":"LPS"/' "$T/info.json" >"$T/bad.json"
    run check info "$f" "$T/bad.json"
    [ "$status" -eq 1 ]
    sed 's/"spacing":\[[0-9.e-]*,/"spacing":[0.8001,/' "$T/info.json" >"$T/bad.json"
    run cmp -s "$T/info.json" "$T/bad.json"
    [ "$status" -ne 0 ]
    run check info "$f" "$T/bad.json"
    [ "$status" -eq 1 ]
}

# ---- the real CT and its labels

@test "nifti: CT + labels -> vol-write .nii.gz: nibabel reads the same voxels and affine" {
    vol-read "$TS/example_ct_sm.nii.gz" --label "$TS/example_seg.nii.gz" | vol-write -o "$T/{id}_{vol}.nii.gz"
    check written "$TS/example_ct_sm.nii.gz" "$T/example_ct_sm_image.nii.gz"
    check written "$TS/example_seg.nii.gz" "$T/example_ct_sm_label.nii.gz"
}

@test "nifti: CT + labels -> vol-write .nii: nibabel reads the same voxels and affine" {
    vol-read "$TS/example_ct_sm.nii.gz" --label "$TS/example_seg.nii.gz" | vol-write -o "$T/{id}_{vol}.nii"
    check written "$TS/example_ct_sm.nii.gz" "$T/example_ct_sm_image.nii"
    check written "$TS/example_seg.nii.gz" "$T/example_ct_sm_label.nii"
}

@test "nifti: CT + labels -> vol-write --nifti2: nibabel reads NIfTI-2 with the same voxels and affine" {
    vol-read "$TS/example_ct_sm.nii.gz" --label "$TS/example_seg.nii.gz" | vol-write --nifti2 -o "$T/{id}_{vol}.nii.gz"
    check written --nifti2 "$TS/example_ct_sm.nii.gz" "$T/example_ct_sm_image.nii.gz"
    check written --nifti2 "$TS/example_seg.nii.gz" "$T/example_ct_sm_label.nii.gz"
}

@test "nifti: vol-info --json on the CT: orientation = nib.aff2axcodes, spacing = get_zooms()[:3]" {
    vol-read "$TS/example_ct_sm.nii.gz" --label "$TS/example_seg.nii.gz" | vol-info --json >"$T/info.json"
    check info "$TS/example_ct_sm.nii.gz" "$T/info.json" --spacing zooms
    check info "$TS/example_seg.nii.gz" "$T/info.json" --spacing zooms --vol label
}

@test "nifti: TotalSegmentator case directory: image = CT, label = example_seg, v2 names; spine25" {
    # the v2 names as voxpipe knows them, and the masks split from example_seg with nibabel
    vol-read "$TS/example_ct_sm.nii.gz" --label "$TS/example_seg.nii.gz" --labels totalseg-v2 >"$T/names.vxp"
    check split-totalseg "$TS/example_seg.nii.gz" "$T/names.vxp" "$T/s0001/segmentations"
    cp "$TS/example_ct_sm.nii.gz" "$T/s0001/ct.nii.gz"
    [ -f "$T/s0001/segmentations/vertebrae_L1.nii.gz" ]

    vol-read "$T/s0001" >"$T/case.vxp"
    check totalseg "$T/case.vxp" "$TS/example_ct_sm.nii.gz" "$TS/example_seg.nii.gz" --id s0001

    vol-read --labels spine25 "$T/s0001" >"$T/spine.vxp"
    check totalseg "$T/spine.vxp" "$TS/example_ct_sm.nii.gz" "$TS/example_seg.nii.gz" --id s0001 --spine25 "$T/names.vxp"

    # the TotalSegmentator v2 and spine25 tables (structural facts): v2 30..33 = L2, L1, T12, T11;
    # spine25 T11 = 18, T12 = 19, L1 = 20, L2 = 21
    export SCRIPTS
    "$VOXPIPE_PY" - "$T/case.vxp" "$T/spine.vxp" "$TS/example_seg.nii.gz" <<'EOF'
import os, sys
import nibabel as nib
import numpy as np
sys.path.insert(0, os.environ["SCRIPTS"])
import vxp
case = list(vxp.read(open(sys.argv[1], "rb")))[0]
spine = list(vxp.read(open(sys.argv[2], "rb")))[0]
seg = np.asanyarray(nib.load(sys.argv[3]).dataobj)
v2 = {30: "vertebrae_L2", 31: "vertebrae_L1", 32: "vertebrae_T12", 33: "vertebrae_T11"}
s25 = {33: 18, 32: 19, 31: 20, 30: 21}
bad = []
for i, name in v2.items():
    if case["meta"]["labels"].get(str(i)) != name:
        bad.append("v2 meta labels[%d] = %r, want %r" % (i, case["meta"]["labels"].get(str(i)), name))
lab = spine["vols"]["label"].data
for i, j in s25.items():
    if not (seg == i).any():
        bad.append("v2 id %d absent from example_seg" % i)
    if not np.array_equal(lab[seg == i], np.full((seg == i).sum(), j, lab.dtype)):
        bad.append("spine25: v2 %d is not all %d" % (i, j))
    if spine["meta"]["labels"].get(str(j)) != v2[i]:
        bad.append("spine25 meta labels[%d] = %r, want %r" % (j, spine["meta"]["labels"].get(str(j)), v2[i]))
if not np.all(lab[~np.isin(seg, list(s25))] == 0):
    bad.append("spine25: voxels outside the vertebrae are not 0")
if sorted(np.unique(lab)) != [0] + sorted(s25.values()):
    bad.append("spine25 labels %s" % np.unique(lab))
for b in bad:
    print(b, file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
}
