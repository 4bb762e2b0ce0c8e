#!/usr/bin/env bats
# resample and reorient against their peers (golden files made by tests/scripts/make_golden_resample.py
# with scipy.ndimage, MONAI, SimpleITK and nibabel), determinism, --back, meta, and bad input.
load helpers

G="$VOXPIPE_ROOT/tests/golden/resample"
CHK="$SCRIPTS/check_resample.py"

# golden NAME: run case NAME of cases.json (input through vol-read or a stream file, then the
# program with its arguments) and compare the output volume with the peer's
golden() {
    local name=$1 rd ar
    mapfile -t rd < <("$VOXPIPE_PY" "$CHK" read "$G" "$name")
    mapfile -t ar < <("$VOXPIPE_PY" "$CHK" args "$G" "$name")
    [ "${#ar[@]}" -ge 1 ]
    if [[ ${rd[0]} == *.vxp ]]; then cat "${rd[0]}"; else vol-read "${rd[@]}"; fi \
        | "${ar[0]}" "${ar[@]:1}" -o "$T/out.vxp"
    run "$VOXPIPE_PY" "$CHK" compare "$G" "$name" "$T/out.vxp"
    echo "$output"
    [ "$status" -eq 0 ]
}

# py CODE ARGS...: run Python with vxp importable
py() { local code=$1; shift; "$VOXPIPE_PY" -c "import sys; sys.path.insert(0, '$SCRIPTS'); import vxp, numpy as np
$code" "$@"; }

@test "every golden case has a test in this file" {
    for n in $("$VOXPIPE_PY" "$CHK" names "$G"); do
        grep -q "golden $n;" "$BATS_TEST_FILENAME" || { echo "no test for golden case $n"; return 1; }
    done
}

# ---- scipy.ndimage.map_coordinates on the --spacing grid (separable path)
@test "--spacing 2.6 --order 0 equals scipy order 0 exactly" { golden sp26_o0; }
@test "--spacing 2.6 --order 1 equals scipy order 1" { golden sp26_o1; }
@test "--spacing 2.6 --order 3 equals scipy order 3 (B-spline prefilter, 12-voxel edge padding)" { golden sp26_o3; }
@test "anisotropic --spacing 1.9,2.7,4.1 --order 1 equals scipy" { golden aniso_o1; }
@test "anisotropic --spacing 1.9,2.7,4.1 --order 3 equals scipy" { golden aniso_o3; }
@test "--antialias --order 1 equals scipy gaussian_filter + order 1" { golden sp45_o1_aa; }
@test "--antialias --order 3 equals scipy gaussian_filter + order 3" { golden sp45_o3_aa; }
@test "--mode mirror --order 3 equals scipy mode mirror" { golden sp26_o3_mirror; }
@test "--mode constant --fill -1000 --order 3 equals scipy mode grid-constant" { golden sp26_o3_const; }
@test "--mode constant --fill -1000 --order 1 equals scipy mode grid-constant" { golden sp26_o1_const; }
@test "--keep-dtype rounds like scipy's int16 output" { golden sp26_o1_keep; }
@test "a 2-channel volume: each channel equals scipy order 3" { golden prob_o3; }

# ---- MONAI Spacing: grid convention (dims, affine) and bilinear values
@test "--spacing 2.6 gives MONAI Spacing's dims, affine and bilinear values" { golden monai_sp26; }
@test "--spacing 1.9,2.7,4.1 gives MONAI Spacing's dims, affine and values" { golden monai_aniso; }
@test "--spacing 2.2,2.4,2.0 (upsampling) gives MONAI Spacing's dims, affine and values" { golden monai_up; }

# ---- labels: exact
@test "labels nearest equal scipy order 0" { golden label_sp26_nearest; }
@test "labels nearest at exact half-voxel coordinates (3 -> 1.5 mm) equal scipy" { golden label_sp15_nearest; }
@test "labels onehot equal numpy one-hot + scipy order 1 + argmax" { golden label_sp26_onehot; }
@test "labels onehot at 1.5 mm equal numpy one-hot argmax" { golden label_sp15_onehot; }
@test "labels nnunet equal nnU-Net's resize_segmentation rule" { golden label_sp26_nnunet; }
@test "labels nnunet at 1.5 mm equal nnU-Net's rule" { golden label_sp15_nnunet; }

# ---- --like: flipped axis-parallel grid beyond the edges, oblique grid (general path)
@test "--like a flipped, shifted grid --order 0 equals scipy" { golden like_flip_o0; }
@test "--like a flipped, shifted grid --order 1 equals scipy" { golden like_flip_o1; }
@test "--like a flipped, shifted grid --order 3 equals scipy" { golden like_flip_o3; }
@test "--like a flipped grid, labels onehot equal numpy" { golden like_flip_label_onehot; }
@test "--like an oblique grid --order 0 equals scipy" { golden like_obl_o0; }
@test "--like an oblique grid --order 1 equals scipy" { golden like_obl_o1; }
@test "--like an oblique grid --order 3 equals scipy" { golden like_obl_o3; }
@test "--like an oblique grid, labels onehot equal numpy" { golden like_obl_label_onehot; }
@test "--like-vol: an oblique volume onto the CT's grid, antialiased, order 1" { golden likevol_obl_o1_aa; }
@test "--like-vol: an oblique volume onto the CT's grid, antialiased, order 3" { golden likevol_obl_o3_aa; }

# ---- SimpleITK ResampleImageFilter on the same grid (inside its buffer)
@test "oblique input: nearest equals SimpleITK NearestNeighbor" { golden sitk_obl_nearest; }
@test "oblique input: linear equals SimpleITK Linear" { golden sitk_obl_linear; }
@test "oblique input: --order 3 --mode mirror equals SimpleITK BSpline" { golden sitk_obl_bspline_mirror; }
@test "oblique input: --order 3 (mode nearest) equals SimpleITK BSpline in the interior" { golden sitk_obl_bspline_interior; }
@test "flipped grid: nearest equals SimpleITK NearestNeighbor" { golden sitk_ct_nearest; }
@test "flipped grid: linear equals SimpleITK Linear" { golden sitk_ct_linear; }
@test "flipped grid: --order 3 --mode mirror equals SimpleITK BSpline" { golden sitk_ct_bspline_mirror; }

# ---- reorient: nibabel
@test "reorient PIR -> RAS (default) equals nibabel as_reoriented" { golden reorient_ct_pir_RAS_image; }
@test "reorient RAS -> LPS equals nibabel" { golden reorient_ct_LPS_image; }
@test "reorient a label volume RAS -> AIL equals nibabel" { golden reorient_ct_AIL_label; }
@test "reorient PIR -> SLP equals nibabel" { golden reorient_ct_pir_SLP_image; }

@test "reorient there and back is the identity, voxels and affine" {
    vol-read "$TS/example_ct_sm.nii.gz" --label "$TS/example_seg.nii.gz" > "$T/in.vxp"
    reorient --to PIL < "$T/in.vxp" > "$T/pil.vxp"
    reorient < "$T/pil.vxp" > "$T/back.vxp"
    run py '
a, p, b = [list(vxp.read(open(f, "rb")))[0] for f in sys.argv[1:4]]
for n in ("image", "label"):
    assert p["vols"][n].data.shape != a["vols"][n].data.shape, "PIL should permute the axes"
    assert np.array_equal(a["vols"][n].data, b["vols"][n].data), n
    assert np.array_equal(a["vols"][n].affine, b["vols"][n].affine), n
print(p["meta"]["reorient"], b["meta"]["reorient"])' "$T/in.vxp" "$T/pil.vxp" "$T/back.vxp"
    echo "$output"
    [ "$status" -eq 0 ]
    [ "${lines[-1]}" = "{'from': {'image': 'RAS', 'label': 'RAS'}} {'from': {'image': 'PIL', 'label': 'PIL'}}" ]
}

# ---- determinism, pass-through, --back
@test "output bytes do not depend on --threads (separable, oblique, cubic, antialias, labels)" {
    vol-read "$G/obl.nii.gz" > "$T/obl.vxp"
    vol-read "$G/ct.nii.gz" --label "$G/seg.nii.gz" > "$T/ct.vxp"
    for args in "--spacing 1.3 --order 3 --antialias" "--spacing 0.7,1.9,4 --order 1" "--like $G/grid_obl.nii.gz --order 3 --label-mode onehot" \
                "--like $G/grid_flip.nii.gz --order 1 --mode constant --label-mode nnunet"; do
        for f in obl ct; do
            resample $args --threads 1 -i "$T/$f.vxp" -o "$T/t1.vxp"
            resample $args --threads 3 -i "$T/$f.vxp" -o "$T/t3.vxp"
            cmp "$T/t1.vxp" "$T/t3.vxp"
        done
    done
}

@test "meta 'resample' records the grids; --back puts every volume back on its grid" {
    vol-read "$G/ct.nii.gz" --label "$G/seg.nii.gz" > "$T/in.vxp"
    # nearest 3 mm -> 1.5 mm doubles each voxel, so going back at order 0 restores the exact voxels
    resample --spacing 1.5 --order 0 < "$T/in.vxp" > "$T/up.vxp"
    resample --back --order 0 < "$T/up.vxp" > "$T/back.vxp"
    run py '
a, u, b = [list(vxp.read(open(f, "rb")))[0] for f in sys.argv[1:4]]
rec = u["meta"]["resample"]
assert len(rec) == 1 and sorted(rec[0]["from"]) == ["image", "label"], rec
for n in ("image", "label"):
    assert list(rec[0]["from"][n]["dims"]) == list(a["vols"][n].data.shape)
    assert rec[0]["from"][n]["affine"] == list(a["vols"][n].affine.ravel())
    assert rec[0]["to"][n]["dims"] == list(u["vols"][n].data.shape) and u["vols"][n].data.shape != a["vols"][n].data.shape
    assert np.array_equal(a["vols"][n].data, b["vols"][n].data), n
    assert np.array_equal(a["vols"][n].affine, b["vols"][n].affine), n
assert "resample" not in b["meta"], "--back pops the record"
print([p["program"] for p in b["meta"]["provenance"]])' "$T/in.vxp" "$T/up.vxp" "$T/back.vxp"
    echo "$output"
    [ "$status" -eq 0 ]
    [ "${lines[-1]}" = "['vol-read', 'resample', 'resample']" ]
}

@test "--back sends a volume made later (a prediction) to the grid of the volume it shares a grid with" {
    vol-read "$G/ct.nii.gz" | resample --spacing 2.5 | resample --spacing 2 > "$T/up.vxp"
    # a 'pred' volume on the resampled grid, added by a model later
    py '
c = list(vxp.read(open(sys.argv[1], "rb")))[0]
im = c["vols"]["image"]
c["vols"]["pred"] = vxp.Vol((im.data > 0).astype(np.uint8), im.affine)
vxp.write(open(sys.argv[2], "wb"), [c])' "$T/up.vxp" "$T/pred.vxp"
    resample --back --labels pred < "$T/pred.vxp" | resample --back --labels pred > "$T/back.vxp"
    run py '
import nibabel as nib
a = nib.load(sys.argv[1])
b = list(vxp.read(open(sys.argv[2], "rb")))[0]
assert "resample" not in b["meta"]
for n in ("image", "pred"):
    assert b["vols"][n].data.shape == a.shape and np.allclose(b["vols"][n].affine, a.affine, atol=1e-9), n
print(b["vols"]["pred"].data.dtype)' "$G/ct.nii.gz" "$T/back.vxp"
    echo "$output"
    [ "$status" -eq 0 ]
    [ "${lines[-1]}" = "uint8" ]
}

@test "--vol resamples only the named volumes; other volumes and meta pass through" {
    vol-read "$G/ct.nii.gz" --label "$G/seg.nii.gz" > "$T/in.vxp"
    resample --spacing 2 --vol image < "$T/in.vxp" > "$T/out.vxp"
    run py '
a, b = [list(vxp.read(open(f, "rb")))[0] for f in sys.argv[1:3]]
assert np.array_equal(a["vols"]["label"].data, b["vols"]["label"].data)
assert b["vols"]["image"].data.shape != a["vols"]["image"].data.shape
assert b["meta"]["nifti"] == a["meta"]["nifti"]
print(b["vols"]["image"].data.dtype, sorted(b["meta"]["resample"][0]["from"]))' "$T/in.vxp" "$T/out.vxp"
    echo "$output"
    [ "$status" -eq 0 ]
    [ "${lines[-1]}" = "float32 ['image']" ]
}

# ---- bad input: exit code, message, no output file
@test "a target spacing <= 0 is a usage error and writes nothing" {
    for s in 0 -1.5 1,0,1 1,2 abc 1,,2; do
        assert_exit 2 resample --spacing "$s" -i "$T/none.vxp" -o "$T/out.vxp"
        [[ "$output" == "resample: error: option '--spacing': "* ]]
        [ ! -e "$T/out.vxp" ]
    done
    assert_exit 2 resample --spacing 0 -o "$T/out.vxp"
    [[ "$output" == *"spacing must be > 0 mm, got 0"* ]]
}

@test "no target, or two, is a usage error" {
    assert_exit 2 resample -o "$T/out.vxp"
    [[ "$output" == *"give exactly one of --spacing, --like, --like-vol and --back"* ]]
    assert_exit 2 resample --spacing 1 --back -o "$T/out.vxp"
    [ ! -e "$T/out.vxp" ]
}

@test "a float label volume is bad input (3), named, and nothing is written" {
    py '
c = {"id": "f", "vols": {"image": vxp.Vol(np.zeros((4, 4, 4), np.int16), np.eye(4)),
                        "label": vxp.Vol(np.zeros((4, 4, 4), np.float32), np.eye(4))}}
vxp.write(open(sys.argv[1], "wb"), [c])' "$T/in.vxp"
    assert_exit 3 resample --spacing 2 -i "$T/in.vxp" -o "$T/out.vxp"
    [ "$output" = "resample: error: case 'f': volume 'label': a label volume must have an integer dtype (u8, i16, u16, i32), not f32" ]
    [ ! -e "$T/out.vxp" ]
    assert_exit 3 resample --spacing 2 --labels image,label -i "$T/in.vxp" -o "$T/out.vxp"
    [ ! -e "$T/out.vxp" ]
}

@test "a volume named by --vol, --labels or --like-vol that the case lacks is bad input (3)" {
    vol-read "$G/ct.nii.gz" --label "$G/seg.nii.gz" --id ct > "$T/in.vxp"
    for opt in vol:nosuch labels:nosuch vol:image,nosuch labels:label,nosuch; do
        assert_exit 3 resample --spacing 2 "--${opt%%:*}" "${opt#*:}" -i "$T/in.vxp" -o "$T/out.vxp"
        [ "$output" = "resample: error: case 'ct': no volume 'nosuch' (named by --${opt%%:*})" ]
        [ ! -e "$T/out.vxp" ]
    done
    assert_exit 3 resample --like-vol nosuch -i "$T/in.vxp" -o "$T/out.vxp"
    [ "$output" = "resample: error: case 'ct': no volume 'nosuch' (named by --like-vol)" ]
    [ ! -e "$T/out.vxp" ]
}

@test "--back without a record is bad input (3); --like with a missing file is a runtime error (1)" {
    vol-read "$G/ct.nii.gz" > "$T/in.vxp"
    assert_exit 3 resample --back -i "$T/in.vxp" -o "$T/out.vxp"
    [[ "$output" == "resample: error: case 'ct': no meta 'resample' record to go back to"* ]]
    [ ! -e "$T/out.vxp" ]
    assert_exit 1 resample --like "$T/nosuch.nii.gz" -i "$T/in.vxp" -o "$T/out.vxp"
    [[ "$output" == "resample: error: '$T/nosuch.nii.gz': "* ]]
    [ ! -e "$T/out.vxp" ]
}

@test "reorient: a bad axis code is a usage error (2); a missing --vol is bad input (3)" {
    vol-read "$G/ct.nii.gz" > "$T/in.vxp"
    for code in RAR XYZ RA RASL ras; do
        assert_exit 2 reorient --to "$code" -i "$T/in.vxp" -o "$T/out.vxp"
        [ "${lines[0]}" = "reorient: error: option '--to': '$code' is not an axis code (one letter of R/L, A/P and S/I each, e.g. RAS, LPS, PIR)" ]
        [ ! -e "$T/out.vxp" ]
    done
    assert_exit 3 reorient --vol nosuch -i "$T/in.vxp" -o "$T/out.vxp"
    [ "$output" = "reorient: error: case 'ct': no volume 'nosuch' (named by --vol)" ]
    [ ! -e "$T/out.vxp" ]
}
