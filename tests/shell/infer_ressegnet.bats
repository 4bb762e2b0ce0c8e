#!/usr/bin/env bats
# infer-ressegnet: labels and probabilities against MONAI's sliding_window_inference on the same
# SegResNet and volume (tests/golden/segresnet/sw_*, made by tests/scripts/make_golden_segresnet.py),
# pass-through, determinism over --threads, bad inputs (exit code, message, no output left).
load helpers
bats_require_minimum_version 1.5.0

G="$VOXPIPE_ROOT/tests/golden/segresnet"
CHK="$VOXPIPE_ROOT/tests/scripts/segresnet_check.py"
RAW="$VOXPIPE_ROOT/tests/scripts/segresnet_raw_e2e.py"
CONV="$VOXPIPE_ROOT/tools/convert_monai.py"

# a raw CT crop, a DDP training checkpoint, MONAI's result; the converted model with MONAI Label's
# preprocessing in its metadata
make_raw() {
    "$VOXPIPE_PY" "$RAW" make "$T" "$@" 2>/dev/null
    "$VOXPIPE_PY" "$CONV" "$T/ckpt.pt" "$T/model.safetensors" --norm-groups 2 --roi 32,32,16 --spacing 2,2,2.5 \
        --norm range --a-min -175 --a-max 250 --b-min 0 --b-max 1 --labels '{"1": "bone", "2": "soft_tissue"}' 2>/dev/null
}

@test "label = argmax and --prob = softmax of MONAI's sliding window (roi from metadata, constant padding)" {
    "$VOXPIPE_PY" "$CHK" make "$G/sw_constant.safetensors" "$T/in.vxp"
    infer-ressegnet -m "$G/model_small.safetensors" --prob -i "$T/in.vxp" -o "$T/out.vxp"
    run "$VOXPIPE_PY" "$CHK" check "$G/sw_constant.safetensors" "$T/out.vxp"
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "--padding replicate --roi 16,16,8 = MONAI padding_mode replicate" {
    "$VOXPIPE_PY" "$CHK" make "$G/sw_replicate.safetensors" "$T/in.vxp"
    infer-ressegnet -m "$G/model_small.safetensors" --padding replicate --roi 16,16,8 -i "$T/in.vxp" -o "$T/out.vxp"
    run "$VOXPIPE_PY" "$CHK" check "$G/sw_replicate.safetensors" "$T/out.vxp"
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "same bytes for --threads 1 and 2" {
    "$VOXPIPE_PY" "$CHK" make "$G/sw_constant.safetensors" "$T/in.vxp"
    infer-ressegnet --threads 1 -m "$G/model_small.safetensors" --prob -i "$T/in.vxp" -o "$T/a.vxp"
    infer-ressegnet --threads 2 -m "$G/model_small.safetensors" --prob -i "$T/in.vxp" -o "$T/b.vxp"
    cmp "$T/a.vxp" "$T/b.vxp"
}

@test "a model whose tensors do not match its metadata: exit 3, message, no output" {
    "$VOXPIPE_PY" "$CHK" make "$G/sw_constant.safetensors" "$T/in.vxp"
    assert_exit 3 infer-ressegnet -m "$G/bad_missing.safetensors" --roi 16,16,16 -i "$T/in.vxp" -o "$T/out.vxp"
    [[ "$output" == *"tensor down_layers.0.2.conv2.conv.weight is missing"* ]]
    [ ! -e "$T/out.vxp" ]
}

@test "an image with a NaN voxel: exit 3 naming case and volume, no output" {
    "$VOXPIPE_PY" "$CHK" make "$G/sw_constant.safetensors" "$T/in.vxp" nan
    assert_exit 3 infer-ressegnet -m "$G/model_small.safetensors" -i "$T/in.vxp" -o "$T/out.vxp"
    [[ "$output" == *"case 'c1': volume 'image' has 1 NaN voxel"* ]]
    [ ! -e "$T/out.vxp" ]
}

@test "no image volume: exit 3; roi not divisible by the network's 2^(levels-1): exit 2" {
    "$VOXPIPE_PY" "$CHK" make "$G/sw_constant.safetensors" "$T/in.vxp"
    assert_exit 3 infer-ressegnet -m "$G/model_small.safetensors" --vol nosuch -i "$T/in.vxp" -o "$T/out.vxp"
    [[ "$output" == *"case 'c1': no volume 'nosuch'"* ]]
    [ ! -e "$T/out.vxp" ]
    assert_exit 2 infer-ressegnet -m "$G/model_small.safetensors" --roi 16,16,12 -i "$T/in.vxp" -o "$T/out.vxp"
    [[ "$output" == *"divisible by 8"* ]]
    [ ! -e "$T/out.vxp" ]
}

@test "convert_monai (DDP checkpoint) + raw i16 CT: Spacing 2,2,2.5 + ScaleIntensityRange + sliding window + back = MONAI" {
    make_raw
    vol-read "$T/ct.nii.gz" | infer-ressegnet -m "$T/model.safetensors" --overlap 0.25 -o "$T/out.vxp"
    run "$VOXPIPE_PY" "$RAW" check "$T" "$T/out.vxp"
    echo "$output"
    [ "$status" -eq 0 ]
    run vol-info -i "$T/out.vxp"
    [[ "$output" == *soft_tissue* ]]
}

@test "a raw CT smaller than the ROI on every axis: padded as MONAI pads (constant 0), output on the input grid = MONAI" {
    make_raw tiny
    vol-read "$T/ct.nii.gz" | infer-ressegnet -m "$T/model.safetensors" --overlap 0.25 -o "$T/out.vxp"
    run "$VOXPIPE_PY" "$RAW" check "$T" "$T/out.vxp"
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "--aggregate band (default, bounded) and f32 (whole volume, as MONAI), --threads 1 and 2: the same bytes, with --prob" {
    make_raw
    vol-read "$T/ct.nii.gz" -o "$T/ct.vxp"
    infer-ressegnet --threads 2 -m "$T/model.safetensors" --overlap 0.25 --prob -i "$T/ct.vxp" -o "$T/band.vxp"
    infer-ressegnet --threads 1 -m "$T/model.safetensors" --overlap 0.25 --prob -i "$T/ct.vxp" -o "$T/band1.vxp"
    infer-ressegnet -m "$T/model.safetensors" --overlap 0.25 --prob --aggregate f32 -i "$T/ct.vxp" -o "$T/f32.vxp"
    infer-ressegnet -m "$T/model.safetensors" --overlap 0.5 --prob -i "$T/ct.vxp" -o "$T/other.vxp"
    # label and prob bytes (provenance differs: it holds the arguments)
    same='import sys; sys.path.insert(0, sys.argv[1]); import vxp
a, b = (list(vxp.read(open(f, "rb")))[0]["vols"] for f in sys.argv[2:4])
sys.exit(0 if all(a[k].data.tobytes() == b[k].data.tobytes() for k in ("label", "prob")) else 1)'
    "$VOXPIPE_PY" -c "$same" "$SCRIPTS" "$T/band.vxp" "$T/f32.vxp"
    "$VOXPIPE_PY" -c "$same" "$SCRIPTS" "$T/band.vxp" "$T/band1.vxp"
    # and another overlap gives other probabilities (the comparison can fail)
    ! "$VOXPIPE_PY" -c "$same" "$SCRIPTS" "$T/band.vxp" "$T/other.vxp"
}

@test "convert_monai refuses a checkpoint that does not match the architecture options (no file left)" {
    make_raw
    run "$VOXPIPE_PY" "$CONV" "$T/ckpt.pt" "$T/bad.safetensors" --norm-groups 2 --blocks-down 1,2,2
    echo "$output"
    [ "$status" -ne 0 ]
    [[ "$output" == *"convert_monai: error: the checkpoint does not match SegResNet"* ]]
    [[ "$output" == *"Unexpected key(s)"* ]]
    [ ! -e "$T/bad.safetensors" ] && [ ! -e "$T/bad.safetensors.tmp" ]
}

@test "infer-ressegnet refuses malformed preprocessing metadata (exit 3, names the key, no output)" {
    make_raw
    vol-read "$T/ct.nii.gz" -o "$T/ct.vxp"
    "$VOXPIPE_PY" "$SCRIPTS/nnunet_raw_e2e.py" setmeta "$T/model.safetensors" "$T/b1.safetensors" voxpipe.norm window
    refuses infer-ressegnet 3 infer-ressegnet -m "$T/b1.safetensors" -i "$T/ct.vxp" -o "$T/out.vxp"
    says "b1.safetensors: metadata voxpipe.norm: 'window' is not range, ct, zscore or none"
    "$VOXPIPE_PY" "$SCRIPTS/nnunet_raw_e2e.py" setmeta "$T/model.safetensors" "$T/b2.safetensors" voxpipe.spacing 2,2
    refuses infer-ressegnet 3 infer-ressegnet -m "$T/b2.safetensors" -i "$T/ct.vxp" -o "$T/out.vxp"
    says "metadata voxpipe.spacing: '2,2' is not X,Y,Z of positive mm"
    "$VOXPIPE_PY" "$SCRIPTS/nnunet_raw_e2e.py" setmeta "$T/model.safetensors" "$T/b3.safetensors" voxpipe.a_max x
    refuses infer-ressegnet 3 infer-ressegnet -m "$T/b3.safetensors" -i "$T/ct.vxp" -o "$T/out.vxp"
    says "metadata voxpipe.a_max: 'x' is not a number"
    [ ! -e "$T/out.vxp" ]
}
