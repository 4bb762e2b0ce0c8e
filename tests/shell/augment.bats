#!/usr/bin/env bats
# augment: fixed transforms against their peers (scipy map_coordinates, batchgeneratorsv2) on a real
# CT crop, reproducibility, the rates of the random draws, identity, ZeroMQ, bad input.
bats_require_minimum_version 1.5.0
load helpers

G="$VOXPIPE_ROOT/tests/golden/augment"
CHECK="$SCRIPTS/check_augment.py"

# golden NAME: run augment with the arguments cases.tsv gives NAME on ct.vxp, compare with NAME.npz
golden() {
    local args
    args=$(awk -F'\t' -v n="$1" '$1 == n {print $2}' "$G/cases.tsv")
    [ -n "$args" ]
    eval augment "$args" -i "$G/ct.vxp" -o "$T/out.vxp"
    run "$VOXPIPE_PY" "$CHECK" golden "$G/$1.npz" "$T/out.vxp"
    echo "$output"
    [ "$status" -eq 0 ]
}

# py CODE ARGS...: run Python with vxp importable
py() { "$VOXPIPE_PY" -c "import sys; sys.path.insert(0, '$SCRIPTS'); import vxp, numpy as np
$1" "${@:2}"; }

# tiny N OUT [LABEL_DIMS] [LABEL_AFFINE_SHIFT]: N cases of a 4x4x4 i16 image and u8 label
tiny() {
    py 'n, out = int(sys.argv[1]), sys.argv[2]
ld = [int(v) for v in sys.argv[3].split(",")] if len(sys.argv) > 3 and sys.argv[3] else [4, 4, 4]
sh = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
rng = np.random.default_rng(7)
A = np.diag([1.5, 1.5, 3.0, 1.0]); B = A.copy(); B[0, 3] += sh
cs = [{"id": "c%04d" % i, "meta": {"keep": i},
       "vols": {"image": vxp.Vol(rng.integers(-100, 100, (4, 4, 4)).astype(np.int16), A),
                "label": vxp.Vol(rng.integers(0, 3, ld).astype(np.uint8), B)}} for i in range(n)]
vxp.write(open(out, "wb"), cs)' "$@"
}

@test "rotation + scaling, linear: image as scipy map_coordinates(order 1, grid-constant), label nearest, affine" {
    golden rot_scale_o1
}

@test "rotation + scaling, --order 3: image as scipy map_coordinates(order 3, grid-constant)" {
    golden rot_scale_o3
}

@test "anisotropic scaling with the patch reaching outside the input: zeros outside" {
    golden scale_edge
}

@test "rotation about one axis, whole volume" {
    golden rot_z_whole
}

@test "flips: exact mirror of image and label, affine adjusted" {
    golden flip
}

@test "brightness equals batchgeneratorsv2 MultiplicativeBrightnessTransform" {
    golden brightness
}

@test "contrast (< 1 and > 1, range kept) equals batchgeneratorsv2 ContrastTransform" {
    golden contrast_lo
    golden contrast_hi
}

@test "gamma and inverted gamma (stats retained) equal batchgeneratorsv2 GammaTransform" {
    golden gamma
    golden gamma_inv
}

@test "blur equals batchgeneratorsv2 GaussianBlurTransform" {
    golden blur
}

@test "low resolution equals batchgeneratorsv2 SimulateLowResolutionTransform" {
    golden lowres
    golden lowres_77
}

@test "the chain in nnU-Net's order (spatial, brightness, gamma, mirror) equals the peers composed" {
    golden combo
}

@test "noise: out - in is sigma times the recorded counter-based normal field, sample std near sigma" {
    augment --fixed 'noise=0.08' --seed 5 -i "$G/ct.vxp" -o "$T/out.vxp"
    run "$VOXPIPE_PY" "$CHECK" noise "$G/ct.vxp" "$T/out.vxp" 0.08
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "elastic deformation: scipy gaussian_filter(wrap) field through map_coordinates, image and label" {
    augment --seed 4 --fixed 'elastic_scale=0.1,0.15,0.2;elastic_mag=3,2,1.5;centre=17.5,17.5,8.5' \
        -i "$G/ct.vxp" -o "$T/out.vxp"
    run "$VOXPIPE_PY" "$CHECK" elastic "$G/ct.vxp" "$T/out.vxp" 17.5,17.5,8.5
    echo "$output"
    [ "$status" -eq 0 ]
    # a kernel wider than the patch (folded onto the period), the patch reaching outside
    augment --seed 5 --fixed 'elastic_scale=0.4;elastic_mag=2;centre=10,25,9' --patch 30,30,16 \
        -i "$G/ct.vxp" -o "$T/out2.vxp"
    run "$VOXPIPE_PY" "$CHECK" elastic "$G/ct.vxp" "$T/out2.vxp" 10,25,9
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "random spatial draws keep label values within the input's set" {
    for s in 1 2 3 4; do
        augment --seed $s --p-rotation 1 --p-scaling 1 --patch 30,30,16 -i "$G/ct.vxp" -o "$T/o$s.vxp"
        run "$VOXPIPE_PY" "$CHECK" labels "$G/ct.vxp" "$T/o$s.vxp"
        echo "$output"
        [ "$status" -eq 0 ]
    done
}

@test "same seed: identical bytes, twice and with --threads 1 vs 2; another seed differs" {
    D=$TS
    vol-read "$D/example_ct_sm.nii.gz" --label "$D/example_seg.nii.gz" > "$T/in.vxp"
    all="--p-rotation 1 --p-scaling 1 --p-elastic 1 --p-noise 1 --p-blur 1 --p-blur-channel 1 --p-brightness 1 --p-contrast 1 --p-lowres 1 --p-lowres-channel 1 --p-gamma-inv 1 --p-gamma 1"
    augment --seed 11 $all --threads 2 < "$T/in.vxp" > "$T/a.vxp"
    augment --seed 11 $all --threads 2 < "$T/in.vxp" > "$T/b.vxp"
    augment --seed 11 $all --threads 1 < "$T/in.vxp" > "$T/c.vxp"
    augment --seed 12 $all --threads 2 < "$T/in.vxp" > "$T/d.vxp"
    cmp "$T/a.vxp" "$T/b.vxp"
    cmp "$T/a.vxp" "$T/c.vxp"
    ! cmp -s "$T/a.vxp" "$T/d.vxp"
    # and the defaults with a patch, also thread-independent
    augment --seed 3 --patch 64,64,24 --threads 1 < "$T/in.vxp" > "$T/e.vxp"
    augment --seed 3 --patch 64,64,24 --threads 2 < "$T/in.vxp" > "$T/f.vxp"
    cmp "$T/e.vxp" "$T/f.vxp"
}

@test "a case's result depends on seed and id only, not on the order of the cases" {
    tiny 2 "$T/ab.vxp"
    py 'cs = list(vxp.read(open(sys.argv[1], "rb"))); vxp.write(open(sys.argv[2], "wb"), cs[::-1])' "$T/ab.vxp" "$T/ba.vxp"
    augment --seed 9 --p-rotation 1 --p-noise 1 < "$T/ab.vxp" > "$T/oab.vxp"
    augment --seed 9 --p-rotation 1 --p-noise 1 < "$T/ba.vxp" > "$T/oba.vxp"
    run py 'a = {c["id"]: c for c in vxp.read(open(sys.argv[1], "rb"))}
b = {c["id"]: c for c in vxp.read(open(sys.argv[2], "rb"))}
for k in a:
    for v in ("image", "label"):
        assert np.array_equal(a[k]["vols"][v].data, b[k]["vols"][v].data), (k, v)
    assert a[k]["meta"]["augment"] == b[k]["meta"]["augment"]
assert not np.array_equal(a["c0000"]["vols"]["image"].data, a["c0001"]["vols"]["image"].data)
print("ok", sorted(a))' "$T/oab.vxp" "$T/oba.vxp"
    echo "$output"
    [ "$status" -eq 0 ]
}

# Rates: 2000 cases; each transform's count is binomial(n, p) (flip: 3n draws). A bound of 4.5
# standard deviations fails a correct implementation with probability below 7e-6 per transform
# (and the draws are seeded, so the test is deterministic), while an error of 0.04 in p is caught.
# The defaults are those nnunetv2's own chain holds (nnunet_defaults.json, read from its objects).
@test "nnU-Net's default probabilities: applied rates within 4.5 binomial sd" {
    tiny 2000 "$T/many.vxp"
    augment --seed 1 < "$T/many.vxp" > "$T/out.vxp"
    run "$VOXPIPE_PY" "$CHECK" rates "$T/out.vxp" "@$G/nnunet_defaults.json"
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "overridden probabilities: applied rates within 4.5 binomial sd" {
    tiny 2000 "$T/many.vxp"
    augment --seed 2 --p-rotation 0.5 --p-scaling 0.05 --p-elastic 0.3 --p-noise 0.9 --p-blur 0 --p-gamma 1 --p-flip 0.1 \
        < "$T/many.vxp" > "$T/out.vxp"
    run "$VOXPIPE_PY" "$CHECK" rates "$T/out.vxp" '{"rotation": 0.5, "scaling": 0.05, "elastic": 0.3, "noise": 0.9, "blur": 0,
        "gamma": 1, "flip": 0.1, "lowres": 0.25}'
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "--only spatial / intensity: only that group is drawn" {
    tiny 200 "$T/many.vxp"
    augment --only spatial --seed 4 < "$T/many.vxp" > "$T/s.vxp"
    augment --only intensity --seed 4 < "$T/many.vxp" > "$T/i.vxp"
    run py 'sp = {"rotation", "scaling", "flip"}  # elastic: p 0 by default
s = set(); i = set()
for c in vxp.read(open(sys.argv[1], "rb")): s |= set(c["meta"]["augment"]["applied"])
for c in vxp.read(open(sys.argv[2], "rb")): i |= set(c["meta"]["augment"]["applied"])
print(sorted(s), sorted(i))
assert s == sp and i and not (i & sp)' "$T/s.vxp" "$T/i.vxp"
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "identity (all probabilities 0): the input unchanged, meta and provenance added" {
    augment --p-rotation 0 --p-scaling 0 --p-elastic 0 --p-noise 0 --p-blur 0 --p-brightness 0 --p-contrast 0 --p-lowres 0 \
        --p-gamma-inv 0 --p-gamma 0 --p-flip 0 -i "$G/ct.vxp" -o "$T/out.vxp"
    run "$VOXPIPE_PY" "$CHECK" same "$G/ct.vxp" "$T/out.vxp"
    echo "$output"
    [ "$status" -eq 0 ]
    run py 'c = next(vxp.read(open(sys.argv[1], "rb"))); m = c["meta"]
print(m["augment"]["applied"], [p["program"] for p in m["provenance"]])' "$T/out.vxp"
    [ "$output" = "[] ['augment']" ]
}

@test "other volumes and meta pass through" {
    tiny 1 "$T/one.vxp"
    py 'c = next(vxp.read(open(sys.argv[1], "rb"))); c["vols"]["extra"] = vxp.Vol(np.arange(8, dtype=np.float32).reshape(2, 2, 2), np.eye(4))
vxp.write(open(sys.argv[1], "wb"), [c])' "$T/one.vxp"
    augment --seed 1 --p-rotation 1 < "$T/one.vxp" > "$T/out.vxp"
    run py 'c = next(vxp.read(open(sys.argv[1], "rb")))
print(c["meta"]["keep"], c["vols"]["extra"].data.ravel().tolist(), c["vols"]["image"].data.dtype, c["meta"]["augment"]["applied"][0])' "$T/out.vxp"
    echo "$output"
    [ "$output" = "0 [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0] float32 rotation" ]
}

@test "over ZeroMQ (-o >ipc://) the receiver gets the same bytes as over a pipe" {
    augment --seed 8 --p-rotation 1 --patch 20,20,10 -i "$G/ct.vxp" -o "$T/pipe.vxp"
    vol-cat -i "@ipc://$T/sock" -o "$T/zmq.vxp" & c=$!
    augment --seed 8 --p-rotation 1 --patch 20,20,10 -i "$G/ct.vxp" -o ">ipc://$T/sock"
    wait $c
    vol-cat < "$T/pipe.vxp" > "$T/pipe2.vxp"
    run py 'a = next(vxp.read(open(sys.argv[1], "rb"))); b = next(vxp.read(open(sys.argv[2], "rb")))
assert all(np.array_equal(a["vols"][k].data, b["vols"][k].data) for k in ("image", "label"))
print(a["meta"]["augment"] == b["meta"]["augment"])' "$T/pipe2.vxp" "$T/zmq.vxp"
    [ "$output" = "True" ]
}

# ---- bad input: exit code, one clear message, no output file

@test "bad input: --label named but the case has no such volume" {
    tiny 1 "$T/in.vxp"
    py 'c = next(vxp.read(open(sys.argv[1], "rb"))); del c["vols"]["label"]; vxp.write(open(sys.argv[1], "wb"), [c])' "$T/in.vxp"
    refuses augment 3 augment --label label -i "$T/in.vxp" -o "$T/out.vxp"
    says "case 'c0000'" "no label volume 'label'"
    nothing_left in.vxp
    # without --label an image-only case is fine
    augment --seed 1 --p-rotation 1 -i "$T/in.vxp" -o "$T/ok.vxp"
    [ -s "$T/ok.vxp" ]
}

@test "bad input: label dims differ from the image's" {
    tiny 1 "$T/in.vxp" 4,4,5
    refuses augment 3 augment -i "$T/in.vxp" -o "$T/out.vxp"
    says "case 'c0000'" "volume 'label'" "differs from image 'image'"
    nothing_left in.vxp
}

@test "bad input: label affine differs from the image's" {
    tiny 1 "$T/in.vxp" "" 0.5
    refuses augment 3 augment -i "$T/in.vxp" -o "$T/out.vxp"
    says "case 'c0000'" "volume 'label'" "grid"
    nothing_left in.vxp
}

@test "bad input: a float label, or no image volume" {
    tiny 1 "$T/in.vxp"
    py 'c = next(vxp.read(open(sys.argv[1], "rb"))); l = c["vols"]["label"]; c["vols"]["label"] = vxp.Vol(l.data.astype(np.float32), l.affine)
vxp.write(open(sys.argv[1], "wb"), [c])' "$T/in.vxp"
    refuses augment 3 augment -i "$T/in.vxp" -o "$T/out.vxp"
    says "volume 'label'" "integer dtype"
    refuses augment 3 augment --image ct -i "$T/in.vxp" -o "$T/out.vxp"
    says "case 'c0000'" "no image volume 'ct'"
    nothing_left in.vxp
}

@test "bad input: non-finite or out-of-range parameters are usage errors" {
    tiny 1 "$T/in.vxp"
    refuses augment 2 augment --fixed 'rotation=nan,0,0' -i "$T/in.vxp" -o "$T/out.vxp"
    says "--fixed: rotation" "not finite"
    refuses augment 2 augment --fixed 'scaling=inf' -i "$T/in.vxp" -o "$T/out.vxp"
    says "--fixed: scaling"
    refuses augment 2 augment --fixed 'gamma=0' -i "$T/in.vxp" -o "$T/out.vxp"
    says "--fixed: gamma"
    refuses augment 2 augment --fixed 'wobble=1' -i "$T/in.vxp" -o "$T/out.vxp"
    says "unknown key 'wobble'"
    refuses augment 2 augment --p-rotation nan -i "$T/in.vxp" -o "$T/out.vxp"
    refuses augment 2 augment --p-noise 1.5 -i "$T/in.vxp" -o "$T/out.vxp"
    refuses augment 2 augment --patch 0,4,4 -i "$T/in.vxp" -o "$T/out.vxp"
    says "--patch"
    refuses augment 2 augment --order 2 -i "$T/in.vxp" -o "$T/out.vxp"
    refuses augment 2 augment --order 3 --p-elastic 0.5 -i "$T/in.vxp" -o "$T/out.vxp"
    says "elastic"
    refuses augment 2 augment --fixed 'elastic_scale=0.1' -i "$T/in.vxp" -o "$T/out.vxp"
    says "elastic_mag"
    nothing_left in.vxp
}
