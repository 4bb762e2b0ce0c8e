#!/usr/bin/env bats
# infer-unet with nnU-Net's residual-encoder U-Net (ResidualEncoderUNet, the ResEnc presets) and the
# bounded-memory aggregation. The results folders come from tests/scripts/nnunet_resenc_e2e.py: plans
# written by nnunetv2's own nnUNetPlannerResEncM for a crop of the shared CT, two folds of seeded
# weights, and nnUNetPredictor's segmentation of a larger raw crop (expected.npz).
load helpers
bats_require_minimum_version 1.5.0
E2E="$VOXPIPE_ROOT/tests/scripts/nnunet_resenc_e2e.py"
G="$VOXPIPE_ROOT/tests/golden/resenc"

# same_labels A.vxp B.vxp : the 'label' volumes (voxels, dims, affine) are identical and hold >= 2 classes
same_labels() {
    run "$VOXPIPE_PY" -c "
import sys; sys.path.insert(0, sys.argv[1]); import vxp, numpy as np
(a,), (b,) = list(vxp.read(open(sys.argv[2], 'rb'))), list(vxp.read(open(sys.argv[3], 'rb')))
la, lb = a['vols']['label'], b['vols']['label']
n = int((la.data != lb.data).sum()) if la.data.shape == lb.data.shape else -1
print('differ', n, 'classes', len(np.unique(la.data)), 'affine equal', np.array_equal(la.affine, lb.affine))
sys.exit(0 if n == 0 and len(np.unique(la.data)) >= 2 and np.array_equal(la.affine, lb.affine) else 1)" "$SCRIPTS" "$1" "$2"
    echo "$output"
    [ "$status" -eq 0 ]
}

make_resenc() {
    "$VOXPIPE_PY" "$E2E" make "$T" "$@" >/dev/null 2>&1
    "$VOXPIPE_PY" "$VOXPIPE_ROOT/tools/convert_nnunet.py" "$T/results" "$T/model" 2>/dev/null
}

@test "convert_nnunet writes ResidualEncoderUNet folds; infer-unet on raw CT (planner's 3 mm grid, 2 folds) = nnUNetPredictor" {
    make_resenc
    run "$VOXPIPE_PY" -c "import json,struct,sys; b=open(sys.argv[1],'rb').read(); n=struct.unpack('<Q',b[:8])[0]; m=json.loads(b[8:8+n])['__metadata__']; print(m['architecture'], m['n_blocks_per_stage'])" "$T/model_fold_0.safetensors"
    echo "$output"
    [[ "$output" == "ResidualEncoderUNet 1,3,4,6" ]]
    vol-read "$T/ct.nii.gz" | infer-unet -m "$T/model_fold_0.safetensors" -m "$T/model_fold_1.safetensors" -o "$T/out.vxp"
    run "$VOXPIPE_PY" "$E2E" check "$T" "$T/out.vxp"
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "ResEnc, resampled to 4 x 2.5 x 2.5 mm and back (2 folds, --threads 2) = nnUNetPredictor" {
    make_resenc resample
    vol-read "$T/ct.nii.gz" | infer-unet --threads 2 -m "$T/model_fold_0.safetensors" -m "$T/model_fold_1.safetensors" -o "$T/out.vxp"
    run "$VOXPIPE_PY" "$E2E" check "$T" "$T/out.vxp"
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "banded labels = labels from the whole-grid logits (--whole-logits) (f16 and f32, TTA, 2 folds), and the same for 1 and 2 threads" {
    make_resenc
    vol-read "$T/ct.nii.gz" -o "$T/ct.vxp"
    M=(-m "$T/model_fold_0.safetensors" -m "$T/model_fold_1.safetensors")
    for agg in f16 f32; do
        infer-unet --threads 1 "${M[@]}" --tta --agg $agg -i "$T/ct.vxp" -o "$T/band_$agg.vxp"
        infer-unet --threads 2 "${M[@]}" --tta --agg $agg -i "$T/ct.vxp" -o "$T/band2_$agg.vxp"
        infer-unet --threads 2 "${M[@]}" --tta --agg $agg --whole-logits -i "$T/ct.vxp" -o "$T/whole_$agg.vxp"
        same_labels "$T/band_$agg.vxp" "$T/whole_$agg.vxp"
        cmp "$T/band_$agg.vxp" "$T/band2_$agg.vxp"
    done
}

@test "convert_nnunet refuses a ResidualEncoderUNet with bottleneck blocks (no output)" {
    make_resenc
    "$VOXPIPE_PY" - "$T/results/plans.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
p["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]["block"] = "dynamic_network_architectures.building_blocks.residual.BottleneckD"
json.dump(p, open(sys.argv[1], "w"))
PY
    run "$VOXPIPE_PY" "$VOXPIPE_ROOT/tools/convert_nnunet.py" "$T/results" "$T/bad"
    echo "$output"
    [ "$status" -ne 0 ]
    [[ "$output" == *"ResidualEncoderUNet with block BottleneckD"*"only BasicBlockD"* ]]
    [ ! -e "$T/bad_fold_0.safetensors" ]
}

@test "infer-unet refuses ResEnc models with a missing or mis-shaped tensor or missing metadata (exit 3, no output)" {
    refuses infer-unet 3 infer-unet -m "$G/tiny_missing.safetensors" -i /dev/null -o "$T/out.vxp"
    says 'tensor "encoder.stages.1.blocks.0.skip.1.conv.weight" missing'
    refuses infer-unet 3 infer-unet -m "$G/tiny_shape.safetensors" -i /dev/null -o "$T/out.vxp"
    says 'tensor "encoder.stages.1.blocks.1.conv2.conv.weight": shape'
    refuses infer-unet 3 infer-unet -m "$G/tiny_nometa.safetensors" -i /dev/null -o "$T/out.vxp"
    says '__metadata__ has no "n_blocks_per_stage"'
    nothing_left
}

@test "train-unet refuses a ResEnc model as --init (inference only, exit 3)" {
    vol-read "$TS/example_ct_sm.nii.gz" -l "$TS/example_seg.nii.gz" -o "$T/case.vxp"
    refuses train-unet 3 train-unet --init "$G/tiny_ok.safetensors" -i "$T/case.vxp" -o "$T/ck" --epochs 1 --classes 118
    says "ResidualEncoderUNet models are not trainable here"
    [ ! -e "$T/ck/last.safetensors" ]
}
