#!/usr/bin/env python3
"""Convert an nnU-Net v2 results folder into voxpipe model files (safetensors) for infer-unet.

  convert_nnunet.py RESULTS_DIR OUT_PREFIX [-c 3d_fullres] [-f 0 1 ...]

RESULTS_DIR is nnU-Net's trainer folder (plans.json, dataset.json, fold_N/checkpoint_final.pth).
One file per fold is written, OUT_PREFIX_fold_N.safetensors; nnU-Net's fold ensemble is run by
giving infer-unet every fold file (-m A -m B ...): it averages the folds' logits as nnU-Net does.
Tensors keep the PlainConvUNet state_dict names (the duplicate aliases PyTorch writes for shared
modules, *.all_modules.* and decoder.encoder.*, are dropped); __metadata__ holds the architecture
(see lib/nn_unet.h for the keys) and, as JSON strings for reference, spacing, normalization,
intensity properties and label names. Plans of both layouts are read: "architecture.arch_kwargs"
(nnU-Net >= 2.3) and the older UNet_base_num_features / conv_kernel_sizes / pool_op_kernel_sizes.
PlainConvUNet and ResidualEncoderUNet (nnU-Net's residual-encoder presets, nnUNetResEncUNet{M,L,XL}Plans:
BasicBlockD blocks, default stem) with InstanceNorm3d + LeakyReLU are supported; anything else is refused.
The model's axes are nnU-Net's array axes; only SimpleITK-ordered (z, y, x) readers are accepted.
Needs torch (to read the checkpoints); the safetensors package is not needed.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np


def st_bytes(tensors, meta):
    """safetensors bytes from [(name, numpy array f32/f16)] and a str->str metadata dict."""
    header, blobs, off = {"__metadata__": {k: str(v) for k, v in meta.items()}}, [], 0
    for name, a in tensors:
        a = np.ascontiguousarray(a)
        dt = {np.dtype("float32"): "F32", np.dtype("float16"): "F16"}[a.dtype]
        b = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def trip(v, n):
    return [list(x) if isinstance(x, (list, tuple)) else [x] * 3 for x in (v if isinstance(v, (list, tuple)) else [v] * n)]


def config_of(plans, name):
    confs = plans["configurations"]
    if name not in confs:
        raise SystemExit(f"convert_nnunet: error: configuration {name!r} not in plans.json ({', '.join(confs)})")
    c = dict(confs[name])
    if "inherits_from" in c:
        base = config_of(plans, c["inherits_from"])
        base.update(c)
        c = base
    return c


def arch_meta(plans, dataset, conf_name, mirror_axes=(0, 1, 2)):
    """The __metadata__ dict for one configuration (raises SystemExit on unsupported setups)."""
    c = config_of(plans, conf_name)
    if "architecture" in c:
        cls = c["architecture"]["network_class_name"].split(".")[-1]
        kw = c["architecture"]["arch_kwargs"]
        n = kw["n_stages"]
        feats, ks, strides = kw["features_per_stage"], kw["kernel_sizes"], kw["strides"]
        nconv = kw["n_blocks_per_stage"] if cls == "ResidualEncoderUNet" else kw["n_conv_per_stage"]
        ndec, bias = kw["n_conv_per_stage_decoder"], kw.get("conv_bias", True)
        if cls == "ResidualEncoderUNet":
            block = str(kw.get("block") or "BasicBlockD").split(".")[-1]
            if block != "BasicBlockD" or kw.get("bottleneck_channels") is not None or kw.get("stem_channels") is not None:
                raise SystemExit(f"convert_nnunet: error: ResidualEncoderUNet with block {block}, bottleneck_channels"
                                 f" {kw.get('bottleneck_channels')}, stem_channels {kw.get('stem_channels')}: only"
                                 " BasicBlockD with the default stem (nnU-Net's ResEnc presets) is supported")
        norm, nonlin = kw.get("norm_op", ""), kw.get("nonlin", "")
        eps = (kw.get("norm_op_kwargs") or {}).get("eps", 1e-5)
        slope = (kw.get("nonlin_kwargs") or {}).get("negative_slope", 0.01)
    else:  # nnU-Net v2 < 2.3 plans
        cls = c.get("UNet_class_name", "PlainConvUNet")
        ks, strides = c["conv_kernel_sizes"], c["pool_op_kernel_sizes"]
        n = len(ks)
        feats = [min(c["UNet_base_num_features"] * 2 ** i, c["unet_max_num_features"]) for i in range(n)]
        nconv, ndec, bias = c["n_conv_per_stage_encoder"], c["n_conv_per_stage_decoder"], True
        norm, nonlin, eps, slope = "torch.nn.modules.instancenorm.InstanceNorm3d", "torch.nn.LeakyReLU", 1e-5, 0.01
    if cls not in ("PlainConvUNet", "ResidualEncoderUNet"):
        raise SystemExit(f"convert_nnunet: error: network class {cls} is not supported"
                         " (PlainConvUNet and ResidualEncoderUNet only)")
    if "InstanceNorm3d" not in norm or "LeakyReLU" not in nonlin:
        raise SystemExit(f"convert_nnunet: error: norm {norm} / nonlin {nonlin}: only InstanceNorm3d + LeakyReLU")
    if len(c["patch_size"]) != 3:
        raise SystemExit("convert_nnunet: error: only 3D configurations are supported")
    reader = plans.get("image_reader_writer", "SimpleITKIO")
    if plans.get("transpose_forward", [0, 1, 2]) != [0, 1, 2] or "SimpleITK" not in reader:
        raise SystemExit(f"convert_nnunet: error: reader {reader} / transpose_forward {plans.get('transpose_forward')}:"
                         " only SimpleITK order without transposition is supported")
    labels = dataset["labels"]
    if any(isinstance(v, (list, tuple)) for v in labels.values()):
        raise SystemExit("convert_nnunet: error: region-based label definitions are not supported")
    nconv = nconv if isinstance(nconv, (list, tuple)) else [nconv] * n
    ndec = ndec if isinstance(ndec, (list, tuple)) else [ndec] * (n - 1)
    j = lambda v: ",".join(str(int(x)) for x in v)
    props = plans.get("foreground_intensity_properties_per_channel", {})
    return {
        "architecture": cls,
        "input_channels": len(dataset.get("channel_names", dataset.get("modality", {"0": ""}))),
        "num_classes": len(labels),
        "n_stages": n,
        "features_per_stage": j(feats),
        "kernel_sizes": ";".join(j(k) for k in trip(ks, n)),
        "strides": ";".join(j(s) for s in trip(strides, n)),
        ("n_blocks_per_stage" if cls == "ResidualEncoderUNet" else "n_conv_per_stage"): j(nconv),
        "n_conv_per_stage_decoder": j(ndec),
        "conv_bias": int(bool(bias)),
        "norm_eps": repr(float(eps)),
        "nonlin_slope": repr(float(slope)),
        "patch_size": j(c["patch_size"]),
        "spacing": ",".join(repr(float(s)) for s in c["spacing"]),
        "axes": "zyx",
        "mirror_axes": j(mirror_axes),
        "normalization": json.dumps(c.get("normalization_schemes", [])),
        "intensity_properties": json.dumps(props),
        "labels": json.dumps({str(v): k for k, v in labels.items()}),
        "configuration": conf_name,
        "source": "nnU-Net v2 " + plans.get("dataset_name", ""),
    }


def clean_state_dict(sd):
    """Drop PyTorch's aliases of shared modules; f32 numpy arrays in the original order."""
    out = []
    for k, v in sd.items():
        if k.startswith("decoder.encoder.") or ".all_modules." in k or k.startswith("_orig_mod."):
            if k.startswith("_orig_mod."):  # torch.compile'd trainer
                k = k[len("_orig_mod."):]
                if k.startswith("decoder.encoder.") or ".all_modules." in k:
                    continue
            else:
                continue
        out.append((k, v.detach().cpu().float().numpy()))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results")
    ap.add_argument("out_prefix")
    ap.add_argument("-c", "--configuration", default=None, help="default: the checkpoint's own")
    ap.add_argument("-f", "--folds", nargs="*", default=None, help="default: every fold_N with checkpoint_final.pth")
    ap.add_argument("--checkpoint", default="checkpoint_final.pth")
    a = ap.parse_args()
    import torch

    with open(os.path.join(a.results, "plans.json")) as f:
        plans = json.load(f)
    with open(os.path.join(a.results, "dataset.json")) as f:
        dataset = json.load(f)
    folds = a.folds
    if folds is None:
        folds = sorted(d[5:] for d in os.listdir(a.results)
                       if d.startswith("fold_") and os.path.isfile(os.path.join(a.results, d, a.checkpoint)))
    if not folds:
        raise SystemExit(f"convert_nnunet: error: {a.results}: no fold_N/{a.checkpoint}")
    for fold in folds:
        path = os.path.join(a.results, f"fold_{fold}", a.checkpoint)
        ck = torch.load(path, map_location="cpu", weights_only=False)
        conf = a.configuration or ck.get("init_args", {}).get("configuration", "3d_fullres")
        mirror = ck.get("inference_allowed_mirroring_axes", (0, 1, 2)) or ()
        meta = arch_meta(plans, dataset, conf, mirror)
        meta["fold"] = str(fold)
        meta["trainer"] = ck.get("trainer_name", "")
        out = f"{a.out_prefix}_fold_{fold}.safetensors"
        write_atomic(out, st_bytes(clean_state_dict(ck["network_weights"]), meta))
        print(f"convert_nnunet: wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
