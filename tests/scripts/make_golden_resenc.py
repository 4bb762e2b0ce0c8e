#!/usr/bin/env python3
"""Golden files for nnU-Net's ResidualEncoderUNet (ResEnc presets) in voxpipe (tests/unit/test_resenc.c).

The plans are nnunetv2's own: nnUNetPlannerResEncM (the planner behind nnUNetResEncUNetMPlans) run on a
tiny dataset (one case: a crop of ../shared/data/totalseg/example_ct_sm.nii.gz with its
TotalSegmentator labels, written to a temporary nnUNet_raw / nnUNet_preprocessed with the fingerprint
computed here), with UNet_base_num_features 4 and UNet_max_features_3d 8 so the weights fit a golden
file; everything else (blocks per stage 1,3,4,6.., kernel sizes, strides, patch size, conv_bias,
InstanceNorm, LeakyReLU) is what the planner writes. The network is built from those plans by
nnunetv2's get_network_from_plans (dynamic_network_architectures ResidualEncoderUNet), weights seeded
and rounded to f16 (stored as F16: exact, so torch and voxpipe use identical values), InstanceNorm
affine and biases randomised. __metadata__ by tools/convert_nnunet.py's arch_meta() from those plans.
Files in tests/golden/resenc/:
  plans.json          the planner's plans (for reference)
  model.safetensors   the network
  fwd.safetensors     x (1,1,4,16,24) and torch's logits y
  sw.safetensors      x: the CT crop, CT-normalised with the plans' intensity properties, shape
                      (1,1,SZ) larger than the patch on some axes and smaller on another (padded);
                      y16: nnUNetPredictor.predict_sliding_window_return_logits (f16 aggregation,
                      mirroring off); ytta16 the same with mirroring over (0, 1, 2)
  tiny_*.safetensors  a 2-stage ResidualEncoderUNet (features 2,4, stride 2) for the error cases: tiny_ok
                      (complete, with x and y), tiny_missing (no skip projection weight), tiny_shape
                      (conv2 of the block with the wrong input channels), tiny_nometa (no
                      n_blocks_per_stage)
  pool.safetensors    avg_pool3d of a random (1,3,4,6,10) tensor with kernel = stride (1,2,2) and (2,2,2)
Run: .venv/bin/python tests/scripts/make_golden_resenc.py   (needs torch, numpy, nibabel, nnunetv2 with
dynamic_network_architectures; DATA from $VOXPIPE_DATA or ../shared/data)
"""
import json
import os
import sys
import tempfile

import nibabel as nib
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))
from convert_nnunet import arch_meta, clean_state_dict, st_bytes  # noqa: E402

OUT = os.path.join(HERE, "..", "golden", "resenc")
DATA = os.environ.get("VOXPIPE_DATA", os.path.join(HERE, "..", "..", "..", "shared", "data"))
LABELS = {"background": 0, "vertebrae": 1, "other": 2}
BOX = (slice(40, 80), slice(36, 68), slice(6, 18))  # (x, y, z) of example_ct_sm: 40 x 32 x 12 at 3 mm


def crop():
    ct = nib.load(os.path.join(DATA, "totalseg", "example_ct_sm.nii.gz"))
    seg = nib.load(os.path.join(DATA, "totalseg", "example_seg.nii.gz"))
    a = np.asarray(ct.dataobj)[BOX].astype(np.int16)
    s = np.asarray(seg.dataobj)[BOX]
    lab = np.where(s == 0, 0, np.where((s >= 25) & (s <= 50), 1, 2)).astype(np.uint8)  # vertebrae C1..S1
    aff = ct.affine.copy()
    aff[:3, 3] = ct.affine[:3, :3] @ np.array([b.start for b in BOX]) + ct.affine[:3, 3]
    return a, lab, aff


def fg_props(a, lab):
    v = a[lab > 0].astype(np.float64)
    return {"mean": float(v.mean()), "std": float(v.std()), "percentile_00_5": float(np.percentile(v, 0.5)),
            "percentile_99_5": float(np.percentile(v, 99.5)), "min": float(v.min()), "max": float(v.max()),
            "median": float(np.median(v))}


def plan(a, lab, aff, tmp, base=4, max_feat=8, planner_name="nnUNetPlannerResEncM"):
    """Run nnunetv2's ResEnc planner on a one-case dataset; returns (plans, dataset_json)."""
    raw, pre = os.path.join(tmp, "raw"), os.path.join(tmp, "preprocessed")
    os.environ["nnUNet_raw"], os.environ["nnUNet_preprocessed"] = raw, pre
    os.environ["nnUNet_results"] = os.path.join(tmp, "results")
    name = "Dataset996_ResEnc"
    for d in ("imagesTr", "labelsTr"):
        os.makedirs(os.path.join(raw, name, d), exist_ok=True)
    os.makedirs(os.path.join(pre, name), exist_ok=True)
    nib.save(nib.Nifti1Image(a, aff), os.path.join(raw, name, "imagesTr", "ct_0000.nii.gz"))
    nib.save(nib.Nifti1Image(lab, aff), os.path.join(raw, name, "labelsTr", "ct.nii.gz"))
    ds = {"channel_names": {"0": "CT"}, "labels": LABELS, "numTraining": 1, "file_ending": ".nii.gz"}
    json.dump(ds, open(os.path.join(raw, name, "dataset.json"), "w"))
    sp_zyx = [float(x) for x in np.sqrt((aff[:3, :3] ** 2).sum(0))[::-1]]
    fp = {"spacings": [sp_zyx], "shapes_after_crop": [list(a.shape[::-1])],
          "foreground_intensity_properties_per_channel": {"0": fg_props(a, lab)},
          "median_relative_size_after_cropping": 1.0}
    json.dump(fp, open(os.path.join(pre, name, "dataset_fingerprint.json"), "w"))
    from nnunetv2.experiment_planning.experiment_planners.residual_unets import residual_encoder_unet_planners as P
    planner = getattr(P, planner_name)(name)
    planner.UNet_base_num_features, planner.UNet_max_features_3d = base, max_feat
    plans = planner.plan_experiment()
    return json.loads(json.dumps(plans)), ds  # as written to / read from plans.json


def build(plans, ds, seed):
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    arch = plans["configurations"]["3d_fullres"]["architecture"]
    torch.manual_seed(seed)
    net = get_network_from_plans(arch["network_class_name"], arch["arch_kwargs"], arch["_kw_requires_import"], 1,
                                 len(ds["labels"]), allow_init=True, deep_supervision=False)
    with torch.no_grad():
        for n, p in net.named_parameters():
            if ".norm." in n:
                p.copy_((1 + 0.5 * torch.randn_like(p)) if n.endswith("weight") else 0.5 * torch.randn_like(p))
            elif n.endswith("bias"):
                p.copy_(0.2 * torch.randn_like(p))
            p.copy_(p.half().float())
    return net.eval()


def predictor(net, plans, ds, mirror):
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
    p = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=mirror is not None,
                        perform_everything_on_device=False, device=torch.device("cpu"), verbose=False,
                        allow_tqdm=False)
    pm = PlansManager(plans)
    p.manual_initialization(net, pm, pm.get_configuration("3d_fullres"), None, ds, "nnUNetTrainer", mirror)
    return p


def ct_normalise(a_zyx, props):
    """nnunetv2's CTNormalization (its own class)."""
    from nnunetv2.preprocessing.normalization.default_normalization_schemes import CTNormalization
    n = CTNormalization(use_mask_for_norm=False, intensityproperties=props)
    return n.run(a_zyx.astype(np.float32), None)


def write(name, tensors, meta=None):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(st_bytes([(k, v.numpy() if torch.is_tensor(v) else v) for k, v in tensors], meta or {}))


def tiny_cases(ds):
    from dynamic_network_architectures.architectures.unet import ResidualEncoderUNet
    kw = {"n_stages": 2, "features_per_stage": [2, 4], "conv_op": "torch.nn.modules.conv.Conv3d",
          "kernel_sizes": [[3, 3, 3], [3, 3, 3]], "strides": [[1, 1, 1], [2, 2, 2]], "n_blocks_per_stage": [1, 2],
          "n_conv_per_stage_decoder": [1], "conv_bias": True,
          "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d", "norm_op_kwargs": {"eps": 1e-05, "affine": True},
          "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}}
    plans = {"configurations": {"3d_fullres": {"patch_size": [4, 4, 4], "spacing": [1.0, 1.0, 1.0], "architecture": {
        "network_class_name": "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet", "arch_kwargs": kw,
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]}}}}
    net = ResidualEncoderUNet(1, 2, [2, 4], torch.nn.Conv3d, 3, [1, 2], [1, 2], len(ds["labels"]), [1], True,
                              torch.nn.InstanceNorm3d, {"eps": 1e-5, "affine": True}, None, None, torch.nn.LeakyReLU,
                              {"inplace": True}).eval()
    meta = arch_meta(plans, ds, "3d_fullres")
    sd = clean_state_dict(net.state_dict())
    x = torch.randn(1, 1, 4, 6, 8)
    with torch.no_grad():
        y = net(x)
    proj = "encoder.stages.1.blocks.0.skip.1.conv.weight"
    assert proj in dict(sd), [k for k, _ in sd]
    write("tiny_ok.safetensors", sd + [("x", x), ("y", y)], meta)
    write("tiny_missing.safetensors", [kv for kv in sd if kv[0] != proj], meta)
    c2 = "encoder.stages.1.blocks.1.conv2.conv.weight"
    write("tiny_shape.safetensors", [(k, v[:, :2] if k == c2 else v) for k, v in sd], meta)
    write("tiny_nometa.safetensors", sd, {k: v for k, v in meta.items() if k != "n_blocks_per_stage"})


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    a, lab, aff = crop()
    with tempfile.TemporaryDirectory() as tmp:
        plans, ds = plan(a, lab, aff, tmp)
    conf = plans["configurations"]["3d_fullres"]
    assert conf["architecture"]["network_class_name"].endswith("ResidualEncoderUNet"), conf["architecture"]
    json.dump(plans, open(os.path.join(OUT, "plans.json"), "w"), indent=1)
    net = build(plans, ds, 20261127)
    meta = arch_meta(plans, ds, "3d_fullres")
    write("model.safetensors", [(k, v.astype(np.float16)) for k, v in clean_state_dict(net.state_dict())], meta)
    patch = conf["patch_size"]
    torch.manual_seed(7)
    with torch.no_grad():
        x = torch.randn(1, 1, 4, 16, 24)  # any multiple of the strides; the patch would make the file too big
        write("fwd.safetensors", [("x", x), ("y", net(x))])
        img = ct_normalise(a.transpose(2, 1, 0)[None], plans["foreground_intensity_properties_per_channel"]["0"])
        img = torch.from_numpy(img).half().float()  # stored as f16: exact on both sides
        # larger than the patch on y and x, smaller on z (nnU-Net pads): cut to at most patch+ on each axis
        img = img[:, : patch[0] - 2, : patch[1] + 6, : patch[2] + 9].contiguous()
        out = [("x", img.half())]
        for key, mirror in (("y16", None), ("ytta16", (0, 1, 2))):
            y = predictor(net, plans, ds, mirror).predict_sliding_window_return_logits(img)
            assert y.dtype == torch.half
            out.append((key, y.contiguous()))
        write("sw.safetensors", out, {"patch_size": ",".join(map(str, patch))})
        p = torch.randn(1, 3, 4, 6, 10)
        write("pool.safetensors", [("x", p), ("y122", torch.nn.functional.avg_pool3d(p, (1, 2, 2), (1, 2, 2))),
                                   ("y222", torch.nn.functional.avg_pool3d(p, (2, 2, 2), (2, 2, 2)))])
    tiny_cases(ds)
    print("plans:", json.dumps({k: conf["architecture"]["arch_kwargs"][k] for k in
                                ("n_stages", "features_per_stage", "kernel_sizes", "strides", "n_blocks_per_stage",
                                 "n_conv_per_stage_decoder")}), "patch", patch, "spacing", conf["spacing"])
    for f in sorted(os.listdir(OUT)):
        print(f, os.path.getsize(os.path.join(OUT, f)))


if __name__ == "__main__":
    main()
