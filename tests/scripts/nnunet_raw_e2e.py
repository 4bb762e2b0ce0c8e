#!/usr/bin/env python3
"""infer-unet end to end on a raw CT against nnU-Net v2 itself (tests/shell/unet_raw.bats).

  nnunet_raw_e2e.py make DIR [aniso]
      DIR/ct.nii.gz      a crop of ../shared/data/totalseg/example_ct_sm.nii.gz (i16 HU, 3 mm)
      DIR/results/       an nnU-Net v2 trainer folder: plans.json (3d_fullres, CTNormalization with
                         intensity properties computed here from the crop's TotalSegmentator
                         foreground, target spacing (z, y, x) 4.0, 2.5, 2.5 mm, or with 'aniso'
                         6.0, 1.5, 1.5 mm from a 4.5 mm z axis: anisotropic, nnU-Net's separate-z path),
                         dataset.json, fold_0 and fold_1/checkpoint_final.pth with random
                         dynamic_network_architectures PlainConvUNet weights
      DIR/expected.npz   nnU-Net's own result: nnUNetPredictor.initialize_from_trained_model_folder
                         (both folds) + predict_single_npy_array on the raw image, i.e.
                         preprocessing (normalise, resample order 3), sliding window (f16
                         aggregation), fold average, logits resampled back (order 1) and argmax:
                         'seg' and 'prob' (softmax on the input grid), axes (x, y, z)
  nnunet_raw_e2e.py check DIR OUT.vxp
      OUT's 'label' has the input's dims and affine, meta 'labels' the dataset's names, and equals
      nnU-Net's segmentation except where nnU-Net's top two probabilities are within 2e-3 (f16
      aggregation and float rounding in the resampling decide those); prints the counts.
  nnunet_raw_e2e.py setmeta IN OUT KEY VALUE   copy a .safetensors file with __metadata__ KEY set
  nnunet_raw_e2e.py nan CT.nii.gz OUT.vxp       the CT as f32 case 'ct' with one NaN voxel
Needs: torch, nibabel, nnunetv2 (with dynamic_network_architectures).
"""
import json
import os
import sys

import nibabel as nib
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import vxp  # noqa: E402

DATA = os.environ.get("VOXPIPE_DATA", os.path.join(HERE, "..", "..", "..", "shared", "data"))
KW = {"n_stages": 3, "features_per_stage": [4, 8, 8], "conv_op": "torch.nn.modules.conv.Conv3d",
      "kernel_sizes": [[1, 3, 3], [3, 3, 3], [3, 3, 3]], "strides": [[1, 1, 1], [1, 2, 2], [2, 2, 2]],
      "n_conv_per_stage": [2, 2, 2], "n_conv_per_stage_decoder": [1, 2], "conv_bias": True,
      "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d", "norm_op_kwargs": {"eps": 1e-05, "affine": True},
      "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}}
REQ = ["conv_op", "norm_op", "dropout_op", "nonlin"]
PATCH = [8, 16, 16]
LABELS = {"background": 0, "vertebrae": 1, "other": 2}


def net_for(seed):
    from dynamic_network_architectures.architectures.unet import PlainConvUNet
    import pydoc
    kw = dict(KW)
    for k in REQ:
        kw[k] = pydoc.locate(kw[k]) if kw[k] else None
    torch.manual_seed(seed)
    net = PlainConvUNet(1, num_classes=len(LABELS), deep_supervision=True, **kw)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if ".norm." in name:
                p.copy_((1 + 0.5 * torch.randn_like(p)) if name.endswith("weight") else 0.5 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.3 * torch.randn_like(p))
    return net


def plans_for(spacing, props):
    conf = {"data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor",
            "batch_size": 2, "patch_size": PATCH, "median_image_size_in_voxels": [20, 40, 40], "spacing": spacing,
            "normalization_schemes": ["CTNormalization"], "use_mask_for_norm": [False],
            "resampling_fn_data": "resample_data_or_seg_to_shape",
            "resampling_fn_seg": "resample_data_or_seg_to_shape",
            "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
            "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
            "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
            "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None},
            "architecture": {"network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                             "arch_kwargs": KW, "_kw_requires_import": REQ},
            "batch_dice": False}
    return {"dataset_name": "Dataset997_RawE2E", "plans_name": "nnUNetPlans",
            "original_median_spacing_after_transp": spacing, "original_median_shape_after_transp": [20, 40, 40],
            "image_reader_writer": "SimpleITKIO", "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
            "configurations": {"3d_fullres": conf}, "experiment_planner_used": "ExperimentPlanner",
            "label_manager": "LabelManager", "foreground_intensity_properties_per_channel": {"0": props}}


def make(d, aniso=False):
    torch.set_num_threads(1)
    ct = nib.load(os.path.join(DATA, "totalseg", "example_ct_sm.nii.gz"))
    seg = nib.load(os.path.join(DATA, "totalseg", "example_seg.nii.gz"))
    box = (slice(40, 80), slice(36, 68), slice(8, 24))
    a = np.asarray(ct.dataobj)[box].astype(np.int16)
    aff = ct.affine.copy()
    aff[:3, 3] = ct.affine[:3, :3] @ np.array([b.start for b in box]) + ct.affine[:3, 3]
    if aniso:  # a 4.5 mm slice spacing: nnU-Net then resamples z separately (order 0)
        aff[:3, 2] *= 1.5
    spacing_xyz = np.sqrt((aff[:3, :3] ** 2).sum(0))
    target = [6.0, 1.5, 1.5] if aniso else [4.0, 2.5, 2.5]  # (z, y, x)
    fg = np.asarray(seg.dataobj)[box] > 0
    v = a[fg].astype(np.float64)
    props = {"mean": float(v.mean()), "std": float(v.std()), "percentile_00_5": float(np.percentile(v, 0.5)),
             "percentile_99_5": float(np.percentile(v, 99.5)), "min": float(v.min()), "max": float(v.max()),
             "median": float(np.median(v))}
    os.makedirs(d, exist_ok=True)
    nib.save(nib.Nifti1Image(a, aff), os.path.join(d, "ct.nii.gz"))
    res = os.path.join(d, "results")
    plans = plans_for(target, props)
    os.makedirs(res, exist_ok=True)
    json.dump(plans, open(os.path.join(res, "plans.json"), "w"), indent=1)
    json.dump({"channel_names": {"0": "CT"}, "labels": LABELS, "numTraining": 1, "file_ending": ".nii.gz"},
              open(os.path.join(res, "dataset.json"), "w"))
    for fold in (0, 1):
        os.makedirs(os.path.join(res, f"fold_{fold}"), exist_ok=True)
        torch.save({"network_weights": net_for(200 + fold).state_dict(), "trainer_name": "nnUNetTrainer",
                    "inference_allowed_mirroring_axes": (0, 1, 2),
                    "init_args": {"plans": plans, "configuration": "3d_fullres", "fold": fold,
                                  "dataset_json": {}}},
                   os.path.join(res, f"fold_{fold}", "checkpoint_final.pth"))
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    pred = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False, perform_everything_on_device=False,
                           device=torch.device("cpu"), verbose=False, verbose_preprocessing=False, allow_tqdm=False)
    pred.initialize_from_trained_model_folder(res, use_folds=(0, 1), checkpoint_name="checkpoint_final.pth")
    img = a.transpose(2, 1, 0)[None].astype(np.float32)  # SimpleITK order (z, y, x)
    s, p = pred.predict_single_npy_array(img, {"spacing": [float(x) for x in spacing_xyz[::-1]]}, None, None, True)
    np.savez(os.path.join(d, "expected.npz"), seg=s.transpose(2, 1, 0), prob=p.transpose(0, 3, 2, 1),
             affine=aff)


def check(d, out):
    e = np.load(os.path.join(d, "expected.npz"))
    (c,) = list(vxp.read(open(out, "rb")))
    lab = c["vols"]["label"]
    want, prob = e["seg"], e["prob"]
    assert lab.data.shape == want.shape, (lab.data.shape, want.shape)
    assert np.allclose(lab.affine, e["affine"]), "label affine differs from the input's"
    assert c["meta"].get("labels") == {str(v): k for k, v in LABELS.items()}, c["meta"].get("labels")
    srt = np.sort(prob, 0)
    tie = (srt[-1] - srt[-2]) <= 2e-3
    diff = lab.data != want
    bad = diff & ~tie
    print(f"labels: {want.size} voxels, {diff.sum()} differ from nnU-Net's, {bad.sum()} outside ties; "
          f"classes present {sorted(np.unique(want).tolist())}")
    assert len(np.unique(want)) > 1, "degenerate: one class only"
    assert not bad.any()


def setmeta(src, dst, key, value):
    import struct
    b = open(src, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    h.setdefault("__metadata__", {})[key] = value
    hb = json.dumps(h).encode()
    hb += b" " * (-len(hb) % 8)
    open(dst, "wb").write(struct.pack("<Q", len(hb)) + hb + b[8 + n:])


def nan_case(ct, out):
    im = nib.load(ct)
    a = np.asarray(im.dataobj).astype(np.float32)
    a[5, 6, 7] = np.nan
    with open(out, "wb") as f:
        vxp.write(f, [{"id": "ct", "vols": {"image": vxp.Vol(a, im.affine)}, "meta": {}}])


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], len(sys.argv) > 3 and sys.argv[3] == "aniso")
    elif sys.argv[1] == "setmeta":
        setmeta(*sys.argv[2:6])
    elif sys.argv[1] == "nan":
        nan_case(sys.argv[2], sys.argv[3])
    else:
        check(sys.argv[2], sys.argv[3])
