#!/usr/bin/env bats
# infer-unet and tools/convert_nnunet.py on a fake nnU-Net v2 results folder (2 folds), against
# nnU-Net's ensemble computed by tests/scripts/nnunet_ref.py (tests/scripts/unet_e2e.py).
load helpers

make_fixture() {
    "$VOXPIPE_PY" "$SCRIPTS/unet_e2e.py" make "$T"
    "$VOXPIPE_PY" "$VOXPIPE_ROOT/tools/convert_nnunet.py" "$T/results" "$T/model"
}

@test "convert_nnunet writes one file per fold; infer-unet's 2-fold ensemble labels equal nnU-Net's" {
    make_fixture
    [ -f "$T/model_fold_0.safetensors" ] && [ -f "$T/model_fold_1.safetensors" ]
    infer-unet -m "$T/model_fold_0.safetensors" -m "$T/model_fold_1.safetensors" -i "$T/image.vxp" -o "$T/out.vxp"
    run "$VOXPIPE_PY" "$SCRIPTS/unet_e2e.py" check "$T" "$T/out.vxp"
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "infer-unet output is identical for 1 and 2 threads" {
    make_fixture
    infer-unet --threads 1 -m "$T/model_fold_0.safetensors" --tta -i "$T/image.vxp" -o "$T/a.vxp"
    infer-unet --threads 2 -m "$T/model_fold_0.safetensors" --tta -i "$T/image.vxp" -o "$T/b.vxp"
    cmp "$T/a.vxp" "$T/b.vxp"
}

@test "infer-unet refuses an image of the wrong dtype (exit 3, no output left)" {
    make_fixture
    assert_exit 3 infer-unet -m "$T/model_fold_0.safetensors" -i "$T/i16.vxp" -o "$T/out.vxp"
    [[ "$output" == *"infer-unet: error: case 'case1': volume 'image': dtype i16, expected f32 or f16"* ]]
    [ ! -e "$T/out.vxp" ]
}

@test "infer-unet refuses NaN voxels (exit 3, no output left)" {
    make_fixture
    assert_exit 3 infer-unet -m "$T/model_fold_0.safetensors" -i "$T/nan.vxp" -o "$T/out.vxp"
    [[ "$output" == *"volume 'image': NaN at voxel"* ]]
    [ ! -e "$T/out.vxp" ]
}

@test "infer-unet refuses a model with a missing tensor (exit 3)" {
    assert_exit 3 infer-unet -m "$VOXPIPE_ROOT/tests/golden/unet/tiny_missing.safetensors" -i /dev/null -o "$T/out.vxp"
    [[ "$output" == *'tensor "decoder.transpconvs.0.bias" missing'* ]]
    [ ! -e "$T/out.vxp" ]
}

@test "convert_nnunet refuses an unsupported architecture" {
    make_fixture
    sed -i 's/unet.PlainConvUNet/unet.ResidualEncoderUNet/' "$T/results/plans.json"
    run "$VOXPIPE_PY" "$VOXPIPE_ROOT/tools/convert_nnunet.py" "$T/results" "$T/bad"
    [ "$status" -ne 0 ]
    [[ "$output" == *"network class ResidualEncoderUNet is not supported"* ]]
    [ ! -e "$T/bad_fold_0.safetensors" ]
}
