#!/usr/bin/env bats
# infer-unet and tools/convert_nnunet.py on a fake nnU-Net v2 results folder (2 folds), against
# nnU-Net's ensemble computed by tests/scripts/nnunet_ref.py (tests/scripts/unet_e2e.py; the image
# there is already normalised: --no-preprocess), and end to end on a raw CT crop against nnunetv2's
# own nnUNetPredictor (tests/scripts/nnunet_raw_e2e.py: preprocessing, prediction, export).
load helpers
bats_require_minimum_version 1.5.0
RAW="$VOXPIPE_ROOT/tests/scripts/nnunet_raw_e2e.py"

make_raw() {
    "$VOXPIPE_PY" "$RAW" make "$T" "$@" 2>/dev/null
    "$VOXPIPE_PY" "$VOXPIPE_ROOT/tools/convert_nnunet.py" "$T/results" "$T/model" 2>/dev/null
}

make_fixture() {
    "$VOXPIPE_PY" "$SCRIPTS/unet_e2e.py" make "$T"
    "$VOXPIPE_PY" "$VOXPIPE_ROOT/tools/convert_nnunet.py" "$T/results" "$T/model"
}

@test "convert_nnunet writes one file per fold; infer-unet's 2-fold ensemble labels equal nnU-Net's" {
    make_fixture
    [ -f "$T/model_fold_0.safetensors" ] && [ -f "$T/model_fold_1.safetensors" ]
    infer-unet --no-preprocess -m "$T/model_fold_0.safetensors" -m "$T/model_fold_1.safetensors" -i "$T/image.vxp" -o "$T/out.vxp"
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

@test "infer-unet --no-preprocess refuses an image of the wrong dtype (exit 3, no output left)" {
    make_fixture
    assert_exit 3 infer-unet --no-preprocess -m "$T/model_fold_0.safetensors" -i "$T/i16.vxp" -o "$T/out.vxp"
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
    sed -i 's/unet.PlainConvUNet/unet.ResidualUNet/' "$T/results/plans.json"
    run "$VOXPIPE_PY" "$VOXPIPE_ROOT/tools/convert_nnunet.py" "$T/results" "$T/bad"
    [ "$status" -ne 0 ]
    [[ "$output" == *"network class ResidualUNet is not supported"* ]]
    [ ! -e "$T/bad_fold_0.safetensors" ]
}

@test "raw i16 CT end to end (CTNormalization, resampled to 4 x 2.5 x 2.5 mm and back, 2 folds) = nnUNetPredictor" {
    make_raw
    vol-read "$T/ct.nii.gz" | infer-unet -m "$T/model_fold_0.safetensors" -m "$T/model_fold_1.safetensors" -o "$T/out.vxp"
    run "$VOXPIPE_PY" "$RAW" check "$T" "$T/out.vxp"
    echo "$output"
    [ "$status" -eq 0 ]
    # the class names reach vol-info
    run vol-info -i "$T/out.vxp"
    [[ "$output" == *vertebrae* ]]
}

@test "raw CT, anisotropic target spacing (nnU-Net's separate z: order 3 in-plane, order 0 along z) = nnUNetPredictor" {
    make_raw aniso
    vol-read "$T/ct.nii.gz" | infer-unet --threads 2 -m "$T/model_fold_0.safetensors" -m "$T/model_fold_1.safetensors" -o "$T/out.vxp"
    run "$VOXPIPE_PY" "$RAW" check "$T" "$T/out.vxp"
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "infer-unet refuses a model whose metadata is malformed or unsupported (exit 3, names the key, no output)" {
    make_raw
    vol-read "$T/ct.nii.gz" -o "$T/ct.vxp"
    "$VOXPIPE_PY" "$RAW" setmeta "$T/model_fold_0.safetensors" "$T/badnorm.safetensors" normalization '["RescaleTo01Normalization"]'
    refuses infer-unet 3 infer-unet -m "$T/badnorm.safetensors" -i "$T/ct.vxp" -o "$T/out.vxp"
    says "badnorm.safetensors: metadata normalization: scheme RescaleTo01Normalization is not supported"
    "$VOXPIPE_PY" "$RAW" setmeta "$T/model_fold_0.safetensors" "$T/badlab.safetensors" labels '{"1": "a",'
    refuses infer-unet 3 infer-unet -m "$T/badlab.safetensors" -i "$T/ct.vxp" -o "$T/out.vxp"
    says "badlab.safetensors: metadata labels: not a JSON object"
    "$VOXPIPE_PY" "$RAW" setmeta "$T/model_fold_0.safetensors" "$T/badsp.safetensors" spacing '4,0,2.5'
    refuses infer-unet 3 infer-unet -m "$T/badsp.safetensors" -i "$T/ct.vxp" -o "$T/out.vxp"
    says "badsp.safetensors: metadata spacing: '4,0,2.5' is not D,H,W of positive mm"
    "$VOXPIPE_PY" "$RAW" setmeta "$T/model_fold_0.safetensors" "$T/noprops.safetensors" intensity_properties '{}'
    refuses infer-unet 3 infer-unet -m "$T/noprops.safetensors" -i "$T/ct.vxp" -o "$T/out.vxp"
    says "metadata intensity_properties: channel \"0\" has no number percentile_00_5"
    [ ! -e "$T/out.vxp" ]
}

@test "infer-unet: NaN voxels in a raw image are refused after preprocessing (exit 3, no output)" {
    make_raw
    "$VOXPIPE_PY" "$RAW" nan "$T/ct.nii.gz" "$T/nan.vxp"
    refuses infer-unet 3 infer-unet -m "$T/model_fold_0.safetensors" -i "$T/nan.vxp" -o "$T/out.vxp"
    says "case 'ct': volume 'image': NaN at voxel"
    [ ! -e "$T/out.vxp" ]
}
