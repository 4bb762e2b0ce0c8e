#!/usr/bin/env python3
"""Golden files for PlainConvUNet and nnU-Net's sliding-window predictor (tests/unit/test_unet.c).

Made by the real peers: the network is dynamic_network_architectures' PlainConvUNet, the f16
sliding window (y16, nnU-Net's own aggregation) is nnunetv2's
nnUNetPredictor.predict_sliding_window_return_logits (manual_initialization, CPU, mirroring off or
on), the importance maps nnunetv2's compute_gaussian. nnU-Net has no f32 aggregation; y32 (the
exact variant voxpipe offers with --agg f32) comes from tests/scripts/nnunet_ref.py, whose f16
result is checked here to equal nnunetv2's bit for bit, so the two differ only in the dtype.
Weights are random (seeded), InstanceNorm affine included, rounded to f16 (stored as F16: exact,
and small) so torch and voxpipe use identical values. The small error-case networks (tiny_*) still
come from nnunet_ref.py (same module tree, hence the same state_dict names).
A full-size-width configuration (32..320 features) is not included: its weights alone are
megabytes, far above the ~200 KB budget of a golden file.
Files in tests/golden/unet/:
  model.safetensors   the network, tensors under PlainConvUNet's names, __metadata__ written by
                      tools/convert_nnunet.py's arch_meta() from a synthetic plans.json
  fwd.safetensors     x (1,1,8,16,24) and torch's logits y
  sw.safetensors      image x (1,6,29,37) (smaller than the patch on d: padded), nnU-Net's logits
                      with f16 aggregation (y16, as nnU-Net does) and the same in f32 (y32)
  sw_tta.safetensors  the same with mirroring over axes 0,1,2
Run: .venv/bin/python tests/scripts/make_golden_unet.py   (needs torch, numpy, nnunetv2 with
dynamic_network_architectures)
"""
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))
import nnunet_ref as R  # noqa: E402
from convert_nnunet import arch_meta, clean_state_dict, st_bytes  # noqa: E402

OUT = os.path.join(HERE, "..", "golden", "unet")
torch.manual_seed(20240611)
torch.set_num_threads(1)

PLANS = {
    "dataset_name": "Dataset999_Golden",
    "configurations": {"3d_fullres": {
        "patch_size": [8, 16, 16], "spacing": [3.0, 1.5, 1.5], "normalization_schemes": ["CTNormalization"],
        "architecture": {
            "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
            "arch_kwargs": {
                "n_stages": 4, "features_per_stage": [4, 8, 16, 16], "conv_op": "torch.nn.modules.conv.Conv3d",
                "kernel_sizes": [[1, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]],
                "strides": [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]],
                "n_conv_per_stage": [2, 2, 2, 2], "n_conv_per_stage_decoder": [2, 2, 2], "conv_bias": True,
                "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d", "norm_op_kwargs": {"eps": 1e-05, "affine": True},
                "dropout_op": None, "dropout_op_kwargs": None,
                "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}},
        }}},
}
DATASET = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "liver": 1, "spleen": 2}}


def build():
    from dynamic_network_architectures.architectures.unet import PlainConvUNet
    kw = PLANS["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]
    net = PlainConvUNet(1, kw["n_stages"], kw["features_per_stage"], torch.nn.Conv3d, kw["kernel_sizes"], kw["strides"],
                        kw["n_conv_per_stage"], len(DATASET["labels"]), kw["n_conv_per_stage_decoder"], True,
                        torch.nn.InstanceNorm3d, {"eps": 1e-5, "affine": True}, None, None, torch.nn.LeakyReLU,
                        {"inplace": True}, deep_supervision=False)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if ".norm." in name:
                p.copy_((1 + 0.5 * torch.randn_like(p)) if name.endswith("weight") else 0.5 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.2 * torch.randn_like(p))
            p.copy_(p.half().float())
    return net.eval()


def write(name, tensors, meta=None):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(st_bytes([(k, v.numpy() if torch.is_tensor(v) else v) for k, v in tensors], meta or {}))


def predictor(net, mirror):
    """nnunetv2's predictor around net, for predict_sliding_window_return_logits."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
    p = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=mirror is not None,
                        perform_everything_on_device=False, device=torch.device("cpu"), verbose=False,
                        allow_tqdm=False)
    pm = PlansManager(PLANS)
    p.manual_initialization(net, pm, pm.get_configuration("3d_fullres"), None, DATASET, "nnUNetTrainer", mirror)
    return p


def tiny_cases():
    """A 2-stage network for the error cases, and its weights under the all_modules aliases."""
    plans = {"configurations": {"3d_fullres": {
        "patch_size": [4, 4, 4], "spacing": [1.0, 1.0, 1.0],
        "UNet_class_name": "PlainConvUNet", "UNet_base_num_features": 2, "unet_max_num_features": 4,
        "conv_kernel_sizes": [[3, 3, 3], [3, 3, 3]], "pool_op_kernel_sizes": [[1, 1, 1], [2, 2, 2]],
        "n_conv_per_stage_encoder": [1, 1], "n_conv_per_stage_decoder": [1]}}}  # nnU-Net < 2.3 plans layout
    net = R.PlainConvUNet(1, 2, [2, 4], [[3, 3, 3]] * 2, [[1, 1, 1], [2, 2, 2]], [1, 1], 2, [1], True, 1e-5).eval()
    meta = arch_meta(plans, {"channel_names": {"0": "CT"}, "labels": {"background": 0, "a": 1}}, "3d_fullres")
    sd = clean_state_dict(net.state_dict())
    x = torch.randn(1, 1, 4, 6, 8)
    with torch.no_grad():
        y = net(x)
    alias = [(k.replace(".conv.", ".all_modules.0.").replace(".norm.", ".all_modules.1."), v) for k, v in sd]
    write("tiny_alias.safetensors", alias + [("x", x), ("y", y)], meta)
    write("tiny_missing.safetensors", [kv for kv in sd if kv[0] != "decoder.transpconvs.0.bias"], meta)
    write("tiny_shape.safetensors", [(k, v[:, :1] if k == "decoder.stages.0.convs.0.conv.weight" else v) for k, v in sd], meta)
    write("tiny_arch.safetensors", sd, dict(meta, architecture="ResidualEncoderUNet"))
    write("tiny_nometa.safetensors", sd, {k: v for k, v in meta.items() if k != "strides"})


def main():
    os.makedirs(OUT, exist_ok=True)
    net = build()
    meta = arch_meta(PLANS, DATASET, "3d_fullres")
    sd = [(k, v.astype(np.float16)) for k, v in clean_state_dict(net.state_dict())]
    write("model.safetensors", sd, meta)

    with torch.no_grad():
        x = torch.randn(1, 1, 8, 16, 24)
        write("fwd.safetensors", [("x", x), ("y", net(x))])
        img = (torch.randn(1, 6, 29, 37) * 1.5).float()
        patch = PLANS["configurations"]["3d_fullres"]["patch_size"]
        from nnunetv2.inference.sliding_window_prediction import compute_gaussian
        for name, mirror in (("sw", None), ("sw_tta", (0, 1, 2))):
            y16 = predictor(net, mirror).predict_sliding_window_return_logits(img)  # torch.half, as nnU-Net keeps it
            ref16 = R.predict_sliding_window_return_logits(net, img, patch, 3, 0.5, mirror, torch.half)
            assert y16.dtype == torch.half and torch.equal(y16, ref16), f"{name}: nnunet_ref.py's f16 aggregation differs from nnunetv2's"
            y32 = R.predict_sliding_window_return_logits(net, img, patch, 3, 0.5, mirror, torch.float32)
            g16 = compute_gaussian(tuple(patch), 1. / 8, 10, torch.half, torch.device("cpu"))
            g32 = compute_gaussian(tuple(patch), 1. / 8, 10, torch.float32, torch.device("cpu"))
            write(f"{name}.safetensors", [("x", img), ("y16", y16.contiguous()), ("y32", y32.contiguous()),
                                          ("gauss16", g16), ("gauss32", g32)],
                  {"patch_size": ",".join(map(str, patch)), "mirror": "0,1,2" if mirror else ""})
    tiny_cases()
    for f in sorted(os.listdir(OUT)):
        print(f, os.path.getsize(os.path.join(OUT, f)))


if __name__ == "__main__":
    main()
