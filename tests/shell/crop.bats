#!/usr/bin/env bats
# crop and uncrop: MONAI CropForeground/SpatialCrop goldens (exact voxels), crop | uncrop identity,
# derived volumes put back, the crop stack, explicit boxes, and the bad inputs of issue 3.
load helpers
load preproc_helpers
bats_require_minimum_version 1.5.0

setup_file() {
    make_ct_stream
}

setup() {
    T="${VOXPIPE_TMP:-$BATS_TMPDIR}/crop-$BATS_TEST_NUMBER"
    rm -rf "$T" && mkdir -p "$T"
    CT_VXP="$BATS_FILE_TMPDIR/ct.vxp"
}

# golden NAME : crop the shared CT + labels with the golden's options and compare with MONAI
golden() {
    local -a args
    mapfile -t args < <("$VOXPIPE_PY" "$CHECK" args "$G" crop "$1")
    crop "${args[@]}" -i "$CT_VXP" -o "$T/out.vxp"
    run "$VOXPIPE_PY" "$CHECK" crop "$G" "$1" "$T/out.vxp"
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "body at HU > -500, margin 6 mm, k-divisible 16 (box past the image, zero padding) = MONAI" {
    golden body_m2_k16
}

@test "body, k-divisible 32, edge padding = MONAI CropForegroundd(mode='edge')" {
    golden body_k32_edge
}

@test "body, margin 2vox, k 16,16,8, --pad-value image=-1024 (label padded 0) = MONAI" {
    golden body_m2_pad
}

@test "labels > 0, margin 3,3,1 voxels, --allow-smaller = MONAI allow_smaller=True" {
    golden label_m331_smaller
}

@test "labels > 0, margin 9 mm (3 voxels), k-divisible 16 = MONAI" {
    golden label_m9mm_k16
}

@test "--center/--size inside the image = MONAI SpatialCrop(roi_center, roi_size)" {
    golden center_size
}

@test "crop | uncrop: labels byte for byte, CT identical inside the box and 0 outside, meta restored" {
    crop --foreground --select label --margin 6 --k-divisible 16 -i "$CT_VXP" -o "$T/c.vxp"
    uncrop -i "$T/c.vxp" -o "$T/back.vxp"
    run py '
a, = load(sys.argv[1]); c, = load(sys.argv[2]); b, = load(sys.argv[3])
for name, va in a["vols"].items():
    vb = b["vols"][name]
    assert va.data.dtype == vb.data.dtype and va.data.shape == vb.data.shape, name
    assert va.affine.tobytes() == vb.affine.tobytes(), name + ": affine not bit-identical"
assert a["vols"]["label"].data.tobytes() == b["vols"]["label"].data.tobytes(), "label differs"
ct, back = a["vols"]["image"].data, b["vols"]["image"].data
x0, y0, z0, x1, y1, z1 = c["meta"]["crop"][0]["box"]
box = np.zeros(ct.shape, bool); box[max(x0, 0):x1, max(y0, 0):y1, max(z0, 0):z1] = True
assert np.array_equal(back[box], ct[box]), "CT differs inside the box"
assert not back[~box].any(), "outside the box is not 0"
assert (~box).any() and (box).any()
ma = {k: v for k, v in a["meta"].items() if k != "provenance"}
mb = {k: v for k, v in b["meta"].items() if k != "provenance"}
assert ma == mb, (ma.keys(), mb.keys())
print([p["program"] for p in b["meta"]["provenance"]])' "$CT_VXP" "$T/c.vxp" "$T/back.vxp"
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$output" = "['vol-read', 'crop', 'uncrop']" ]
}

@test "crop | uncrop with a box covering the image: the whole stream is byte-identical but for provenance" {
    crop --foreground --threshold -5000 -i "$CT_VXP" | uncrop -o "$T/back.vxp"
    run py '
a, = load(sys.argv[1]); b, = load(sys.argv[2])
assert b["meta"].pop("provenance")[-2:] == [{"program": p, "version": a["meta"]["provenance"][0]["version"], "args": g}
    for p, g in (("crop", ["--foreground", "--threshold", "-5000"]), ("uncrop", []))]
a["meta"].pop("provenance")
assert vxp.pack_case(a) == vxp.pack_case(b)
print("identical")' "$CT_VXP" "$T/back.vxp"
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "volumes added after the crop (prediction u8, probabilities f32 x2) go back onto the original grid" {
    crop --foreground --select label --margin 3vox -i "$CT_VXP" -o "$T/c.vxp"
    py '
c, = load(sys.argv[1])
lab = c["vols"]["label"]
p = np.stack([(lab.data > 0), (lab.data == 0)], -1).astype(np.float32)
c["vols"]["pred"] = vxp.Vol(lab.data.copy(), lab.affine)
c["vols"]["probs"] = vxp.Vol(p, lab.affine)
vxp.write(open(sys.argv[2], "wb"), [c])' "$T/c.vxp" "$T/c2.vxp"
    uncrop --vol pred --vol probs --fill probs=0.5 -i "$T/c2.vxp" -o "$T/u.vxp"
    run py '
a, = load(sys.argv[1]); u, = load(sys.argv[2])
lab = a["vols"]["label"].data
pred, probs = u["vols"]["pred"], u["vols"]["probs"]
assert pred.data.tobytes() == lab.tobytes(), "prediction differs from the labels it was cut from"
assert pred.affine.tobytes() == a["vols"]["label"].affine.tobytes()
assert probs.data.shape == lab.shape + (2,) and probs.data.dtype == np.float32
fg = np.argwhere(lab > 0); lo, hi = fg.min(0) - 3, fg.max(0) + 4
box = np.zeros(lab.shape, bool); box[max(lo[0], 0):hi[0], max(lo[1], 0):hi[1], max(lo[2], 0):hi[2]] = True
assert np.array_equal(probs.data[..., 0][box], (lab > 0)[box].astype(np.float32))
assert np.array_equal(probs.data[..., 1][box], (lab == 0)[box].astype(np.float32))
assert np.all(probs.data[~box] == 0.5), "fill"
assert (~box).any()
print(u["vols"]["image"].data.shape)  # not in --vol: stays on the cropped grid' "$CT_VXP" "$T/u.vxp"
    echo "$output"
    [ "$status" -eq 0 ]
    cropped=$(py 'c, = load(sys.argv[1]); print(c["vols"]["image"].data.shape)' "$T/c.vxp")
    [ "$output" = "$cropped" ]
}

@test "crop twice, uncrop twice: the crop stack gives back the original grid" {
    crop --foreground --select label -i "$CT_VXP" | crop --box 2,3,1,40,50,20 --k-divisible 8 --allow-outside \
        -o "$T/cc.vxp"
    uncrop -i "$T/cc.vxp" -o "$T/u1.vxp"
    uncrop -i "$T/u1.vxp" -o "$T/u2.vxp"
    run py '
a, = load(sys.argv[1]); cc, = load(sys.argv[2]); u1, = load(sys.argv[3]); u2, = load(sys.argv[4])
assert len(cc["meta"]["crop"]) == 2 and len(u1["meta"]["crop"]) == 1 and "crop" not in u2["meta"]
assert u1["vols"]["label"].data.shape == tuple(np.subtract(cc["meta"]["crop"][0]["box"][3:], cc["meta"]["crop"][0]["box"][:3]))
inner = cc["meta"]["crop"][1]["box"]
lab, back = a["vols"]["label"].data, u2["vols"]["label"].data
assert back.shape == lab.shape and u2["vols"]["label"].affine.tobytes() == a["vols"]["label"].affine.tobytes()
o = cc["meta"]["crop"][0]["box"][:3]
sl = tuple(slice(o[i] + max(inner[i], 0), o[i] + inner[i + 3]) for i in range(3))
assert np.array_equal(back[sl], lab[sl]) and back.sum() == back[sl].sum()
print(inner)' "$CT_VXP" "$T/cc.vxp" "$T/u1.vxp" "$T/u2.vxp"
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "--box gives numpy's slice and the affine origin A @ (x0, y0, z0)" {
    crop --box 10,20,3,50,61,27 -i "$CT_VXP" -o "$T/b.vxp"
    run py '
a, = load(sys.argv[1]); b, = load(sys.argv[2])
for n in ("image", "label"):
    va, vb = a["vols"][n], b["vols"][n]
    assert vb.data.tobytes(order="F") == va.data[10:50, 20:61, 3:27].tobytes(order="F"), n
    want = va.affine.copy(); want[:3, 3] = va.affine[:3, :3] @ [10, 20, 3] + va.affine[:3, 3]
    assert np.allclose(vb.affine, want, rtol=0, atol=1e-9), n
c = b["meta"]["crop"][0]
assert c["box"] == [10, 20, 3, 50, 61, 27] and c["orig_dims"] == list(a["vols"]["image"].data.shape)
assert c["orig_affine"] == a["vols"]["image"].affine.ravel().tolist()
print("ok")' "$CT_VXP" "$T/b.vxp"
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "--center in RAS mm and --size in mm: the voxel nearest the point, size / spacing voxels" {
    pt=$(py 'a, = load(sys.argv[1]); A = a["vols"]["image"].affine; print(",".join("%.3f" % x for x in (A @ [61.2, 40.4, 12.6, 1])[:3]))' "$CT_VXP")
    crop --center "${pt}mm" --size 30mm -i "$CT_VXP" -o "$T/c.vxp"
    run py '
a, = load(sys.argv[1]); c, = load(sys.argv[2]); p = [float(x) for x in sys.argv[3].split(",")]
A = a["vols"]["image"].affine
v = np.floor(np.linalg.solve(A[:3, :3], np.asarray(p) - A[:3, 3]) + 0.5).astype(int)
s = np.floor(30 / np.linalg.norm(A[:3, :3], axis=0) + 0.5).astype(int)
lo = v - s // 2
assert c["meta"]["crop"][0]["box"] == lo.tolist() + (lo + s).tolist(), (c["meta"]["crop"][0]["box"], lo, s)
im = a["vols"]["image"].data
assert np.array_equal(c["vols"]["image"].data, im[lo[0]:lo[0] + s[0], lo[1]:lo[1] + s[1], lo[2]:lo[2] + s[2]])
print(v.tolist(), s.tolist())' "$CT_VXP" "$T/c.vxp" "$pt"
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "--allow-outside pads a box reaching past the image like numpy.pad (constant per volume, edge)" {
    crop --box=-4,90,-2,30,110,5 --allow-outside --pad-value image=-1024 -i "$CT_VXP" -o "$T/c.vxp"
    crop --box=-4,90,-2,30,110,5 --allow-outside --pad-mode edge -i "$CT_VXP" -o "$T/e.vxp"
    run py '
a, = load(sys.argv[1]); c, = load(sys.argv[2]); e, = load(sys.argv[3])
pad = ((4, 0), (0, 110 - 101), (2, 0))
for n, cv in (("image", -1024), ("label", 0)):
    src = a["vols"][n].data[0:30, 90:101, 0:5]
    assert np.array_equal(c["vols"][n].data, np.pad(src, pad, mode="constant", constant_values=cv)), n
    assert np.array_equal(e["vols"][n].data, np.pad(src, pad, mode="edge")), n + " edge"
print(c["vols"]["image"].data.shape)' "$CT_VXP" "$T/c.vxp" "$T/e.vxp"
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "the foreground box is the same for any --threads" {
    crop --foreground --threshold -500 --margin 6 --threads 1 -i "$CT_VXP" -o "$T/t1.vxp"
    crop --foreground --threshold -500 --margin 6 --threads 3 -i "$CT_VXP" -o "$T/t3.vxp"
    cmp "$T/t1.vxp" "$T/t3.vxp"
}

@test "no foreground: a warning, and the case keeps its whole grid (k-divisible still applies)" {
    run --separate-stderr crop --foreground --threshold 5000 --k-divisible 8 -i "$CT_VXP" -o "$T/n.vxp"
    [ "$status" -eq 0 ]
    [[ "$stderr" == *"crop: warning: case 'example_ct_sm': no voxel of volume 'image' is above 5000"* ]]
    run py '
a, = load(sys.argv[1]); c, = load(sys.argv[2])
n = np.array(a["vols"]["image"].data.shape); k = -(-n // 8) * 8; lo = -((k - n) // 2)  # MONAI k_divisible
assert c["meta"]["crop"][0]["box"] == lo.tolist() + (lo + k).tolist(), c["meta"]["crop"][0]["box"]
assert np.array_equal(c["vols"]["image"].data[-lo[0]:-lo[0] + n[0], -lo[1]:-lo[1] + n[1], -lo[2]:-lo[2] + n[2]], a["vols"]["image"].data)
print("ok")' "$CT_VXP" "$T/n.vxp"
    echo "$output"
    [ "$status" -eq 0 ]
}

# ---- bad input (issue 3 item 6): exit code, message, nothing written

@test "a crop box outside the image: exit 3, box and image size named, no output" {
    refuses crop 3 crop --box 200,0,0,210,10,10 -i "$CT_VXP" -o "$T/out.vxp"
    says "case 'example_ct_sm': crop box [200,210)x[0,10)x[0,10) is outside the image 122x101x30 of volume 'image'"
    nothing_left
    refuses crop 3 crop --box 200,0,0,210,10,10 --allow-outside -i "$CT_VXP" -o "$T/out.vxp"
    nothing_left
}

@test "a crop box reaching past the image without --allow-outside: exit 3, the option suggested" {
    refuses crop 3 crop --box 100,0,0,130,10,10 -i "$CT_VXP" -o "$T/out.vxp"
    says "crop box [100,130)x[0,10)x[0,10) is outside the image 122x101x30" "(--allow-outside pads it)"
    nothing_left
    refuses crop 3 crop --center 5,5,5 --size 20 -i "$CT_VXP" -o "$T/out.vxp"
    says "crop box [-5,15)x[-5,15)x[-5,15)"
    nothing_left
}

@test "a missing --select volume: exit 3, no output" {
    refuses crop 3 crop --foreground --select body -i "$CT_VXP" -o "$T/out.vxp"
    says "case 'example_ct_sm': no volume 'body' (--select)"
    nothing_left
}

@test "volumes on different grids: exit 3, both named" {
    py 'a, = load(sys.argv[1]); a["vols"]["small"] = vxp.Vol(np.zeros((4, 4, 4), np.uint8), np.eye(4)); vxp.write(open(sys.argv[2], "wb"), [a])' \
        "$CT_VXP" "$T/in.vxp"
    refuses crop 3 crop --foreground -i "$T/in.vxp" -o "$T/out.vxp"
    says "volume 'small' (4x4x4) is not on the grid of volume 'image' (122x101x30"
    nothing_left in.vxp
}

@test "uncrop without crop meta: exit 3, no output" {
    refuses uncrop 3 uncrop -i "$CT_VXP" -o "$T/out.vxp"
    says "case 'example_ct_sm': no crop record in meta 'crop'"
    nothing_left
}

@test "uncrop with a malformed crop record: exit 3, the field named" {
    crop --box 0,0,0,10,10,10 -i "$CT_VXP" -o "$T/c.vxp"
    py 'c, = load(sys.argv[1]); c["meta"]["crop"][0]["orig_dims"] = [122, 0, 30]; vxp.write(open(sys.argv[2], "wb"), [c])' "$T/c.vxp" "$T/bad.vxp"
    refuses uncrop 3 uncrop -i "$T/bad.vxp" -o "$T/out.vxp"
    says "case 'example_ct_sm': meta 'crop': field 'orig_dims': entry 1 is not an integer in 1.."
    py 'c, = load(sys.argv[1]); c["meta"]["crop"] = "box"; vxp.write(open(sys.argv[2], "wb"), [c])' "$T/c.vxp" "$T/bad2.vxp"
    refuses uncrop 3 uncrop -i "$T/bad2.vxp" -o "$T/out.vxp"
    says "meta 'crop': not an array of crop records"
    nothing_left c.vxp bad.vxp bad2.vxp
}

@test "uncrop of a volume not on the cropped grid (other dims, moved affine) or a missing --vol: exit 3" {
    crop --box 0,0,0,10,10,10 -i "$CT_VXP" -o "$T/c.vxp"
    py 'c, = load(sys.argv[1]); c["vols"]["pred"] = vxp.Vol(np.zeros((10, 10, 9), np.uint8), c["vols"]["image"].affine); vxp.write(open(sys.argv[2], "wb"), [c])' "$T/c.vxp" "$T/dims.vxp"
    refuses uncrop 3 uncrop -i "$T/dims.vxp" -o "$T/out.vxp"
    says "volume 'pred': dims 10x10x9 are not the crop box size 10x10x10"
    py 'c, = load(sys.argv[1]); A = c["vols"]["image"].affine.copy(); A[0, 3] += 1.5; c["vols"]["pred"] = vxp.Vol(np.zeros((10, 10, 10), np.uint8), A); vxp.write(open(sys.argv[2], "wb"), [c])' "$T/c.vxp" "$T/aff.vxp"
    refuses uncrop 3 uncrop -i "$T/aff.vxp" -o "$T/out.vxp"
    says "volume 'pred': field 'affine': entry 3"
    refuses uncrop 3 uncrop --vol prediction -i "$T/c.vxp" -o "$T/out.vxp"
    says "no volume 'prediction' (--vol)"
    nothing_left c.vxp dims.vxp aff.vxp
}

@test "option values out of range: exit 2 (negative margin, K < 1, empty box, two kinds of box, unfit pad value)" {
    refuses crop 2 crop --foreground --margin=-3 -i "$CT_VXP" -o "$T/out.vxp"
    says "option '--margin'"
    refuses crop 2 crop --foreground --k-divisible 0 -i "$CT_VXP" -o "$T/out.vxp"
    says "option '--k-divisible'"
    refuses crop 2 crop --box 5,5,5,5,10,10 -i "$CT_VXP" -o "$T/out.vxp"
    says "option '--box': '5,5,5,5,10,10': empty on axis 0"
    refuses crop 2 crop --foreground --box 0,0,0,5,5,5 -i "$CT_VXP" -o "$T/out.vxp"
    says "give exactly one of"
    refuses crop 2 crop --center 5,5,5 -i "$CT_VXP" -o "$T/out.vxp"
    says "--center and --size go together"
    refuses crop 2 crop --foreground --pad-value -1024 -i "$CT_VXP" -o "$T/out.vxp"
    says "volume 'label': pad value -1024 does not fit dtype u8 (give --pad-value label=V)"
    refuses uncrop 2 uncrop --fill x= -i "$CT_VXP" -o "$T/out.vxp"
    nothing_left
}
