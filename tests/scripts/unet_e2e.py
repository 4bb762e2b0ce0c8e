#!/usr/bin/env python3
"""End-to-end check of tools/convert_nnunet.py + infer-unet (tests/shell/unet.bats).

  unet_e2e.py make DIR   a fake nnU-Net v2 results folder DIR/results (plans.json, dataset.json,
                         fold_0 and fold_1/checkpoint_final.pth: random PlainConvUNet weights, the
                         full state_dict with PyTorch's duplicate names), DIR/image.vxp (one f32
                         case, 30x21x7 voxels, patch 16x16x8: padded on z), DIR/i16.vxp and
                         DIR/nan.vxp (bad inputs), DIR/expected.npz (nnU-Net's 2-fold ensemble
                         logits, f16 aggregation, computed by tests/scripts/nnunet_ref.py)
  unet_e2e.py check DIR OUT.vxp   the label volume equals argmax of the expected logits except on
                         ties (top two within 2 f16 ulps); prints the count of such voxels
"""
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import nnunet_ref as R  # noqa: E402
import vxp  # noqa: E402

KW = {"n_stages": 3, "features_per_stage": [4, 8, 8], "conv_op": "torch.nn.modules.conv.Conv3d",
      "kernel_sizes": [[1, 3, 3], [3, 3, 3], [3, 3, 3]], "strides": [[1, 1, 1], [1, 2, 2], [2, 2, 2]],
      "n_conv_per_stage": [2, 2, 2], "n_conv_per_stage_decoder": [1, 2], "conv_bias": True,
      "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d", "norm_op_kwargs": {"eps": 1e-05, "affine": True},
      "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}}
PATCH = [8, 16, 16]
LABELS = {"background": 0, "a": 1, "b": 2, "c": 3}


def net_for(seed):
    torch.manual_seed(seed)
    net = R.PlainConvUNet(1, KW["n_stages"], KW["features_per_stage"], KW["kernel_sizes"], KW["strides"],
                          KW["n_conv_per_stage"], len(LABELS), KW["n_conv_per_stage_decoder"], True, 1e-5, True)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if ".norm." in name:
                p.copy_((1 + 0.5 * torch.randn_like(p)) if name.endswith("weight") else 0.5 * torch.randn_like(p))
    net.decoder.deep_supervision = False  # trained with deep supervision, inference without
    return net.eval()


def make(d):
    torch.set_num_threads(1)
    res = os.path.join(d, "results")
    plans = {"dataset_name": "Dataset998_E2E", "plans_name": "nnUNetPlans", "transpose_forward": [0, 1, 2],
             "image_reader_writer": "SimpleITKIO",
             "configurations": {"3d_fullres": {"patch_size": PATCH, "spacing": [2.0, 1.0, 1.0],
                                               "normalization_schemes": ["ZScoreNormalization"],
                                               "architecture": {"network_class_name":
                                                                "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                                                                "arch_kwargs": KW, "_kw_requires_import": []}}}}
    os.makedirs(res, exist_ok=True)
    json.dump(plans, open(os.path.join(res, "plans.json"), "w"))
    json.dump({"channel_names": {"0": "CT"}, "labels": LABELS, "file_ending": ".nii.gz"},
              open(os.path.join(res, "dataset.json"), "w"))
    img_zyx = torch.randn(1, 7, 21, 30)
    total = None
    for fold in (0, 1):
        net = net_for(100 + fold)
        os.makedirs(os.path.join(res, f"fold_{fold}"), exist_ok=True)
        torch.save({"network_weights": net.state_dict(), "trainer_name": "nnUNetTrainer",
                    "inference_allowed_mirroring_axes": (0, 1, 2),
                    "init_args": {"plans": plans, "configuration": "3d_fullres", "fold": fold}},
                   os.path.join(res, f"fold_{fold}", "checkpoint_final.pth"))
        with torch.no_grad():
            p = R.predict_sliding_window_return_logits(net, img_zyx, PATCH, len(LABELS), 0.5, None, torch.half)
        total = p if total is None else total + p  # nnU-Net: prediction += (half)
    total /= 2
    np.savez(os.path.join(d, "expected.npz"), logits=total.float().numpy())
    aff = np.diag([1.0, 1.0, 2.0, 1.0])
    arr = img_zyx[0].numpy().transpose(2, 1, 0).astype(np.float32)  # vxp volumes are [x, y, z]
    for name, a in (("image", arr), ("i16", (arr * 100).astype(np.int16))):
        with open(os.path.join(d, f"{name}.vxp"), "wb") as f:
            vxp.write(f, [{"id": "case1", "vols": {"image": vxp.Vol(a, aff)}, "meta": {}}])
    bad = arr.copy()
    bad[3, 4, 5] = np.nan
    with open(os.path.join(d, "nan.vxp"), "wb") as f:
        vxp.write(f, [{"id": "case1", "vols": {"image": vxp.Vol(bad, aff)}, "meta": {}}])


def check(d, out):
    lg = np.load(os.path.join(d, "expected.npz"))["logits"]  # (K, z, y, x)
    case = list(vxp.read(open(out, "rb")))[0]
    lab = case["vols"]["label"].data.transpose(2, 1, 0).astype(np.int64)
    img = case["vols"]["image"].data
    assert lab.shape == lg.shape[1:], (lab.shape, lg.shape)
    assert np.allclose(case["vols"]["label"].affine, case["vols"]["image"].affine) and img.dtype == np.float32
    want = lg.argmax(0)
    diff = lab != want
    got_v = np.take_along_axis(lg, lab[None], 0)[0]
    want_v = np.take_along_axis(lg, want[None], 0)[0]
    tol = 2 * 2.0 ** -10 * max(1.0, float(np.abs(lg).max()))
    beyond = diff & (want_v - got_v > tol)
    print(f"labels: {lab.size} voxels, {int(diff.sum())} differ, all within f16 ties: {int(beyond.sum()) == 0}; "
          f"classes present {sorted(np.unique(lab).tolist())}")
    return 1 if beyond.any() or len(np.unique(lab)) < 2 else 0


if __name__ == "__main__":
    sys.exit(make(sys.argv[2]) if sys.argv[1] == "make" else check(sys.argv[2], sys.argv[3]))
