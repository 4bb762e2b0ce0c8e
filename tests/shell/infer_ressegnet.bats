#!/usr/bin/env bats
# infer-ressegnet: labels and probabilities against MONAI's sliding_window_inference on the same
# SegResNet and volume (tests/golden/segresnet/sw_*, made by tests/scripts/make_golden_segresnet.py),
# pass-through, determinism over --threads, bad inputs (exit code, message, no output left).
load helpers
bats_require_minimum_version 1.5.0

G="$VOXPIPE_ROOT/tests/golden/segresnet"
CHK="$VOXPIPE_ROOT/tests/scripts/segresnet_check.py"

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
