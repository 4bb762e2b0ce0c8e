#!/usr/bin/env python3
"""Golden files for SegResNet and sliding-window inference (tests/unit/test_segresnet.c), made by MONAI.

Each model is monai.networks.nets.SegResNet with seeded random weights (norm weights and biases
randomised too, so an affine mix-up shows), saved as safetensors under MONAI's state_dict names
with the voxpipe.* architecture metadata (lib/nn_segresnet.h), written by hand (make_golden_nn.st_bytes)
since the safetensors package is not in the venv. Files in tests/golden/segresnet/:
  model_<name>.safetensors  the model
  fwd_<name>.safetensors  "x" input + "y" MONAI's logits
  sw_<name>.safetensors   "x" a volume (1, C, D, H, W) + "y"
                          monai.inferers.sliding_window_inference logits (roi, overlap, mode
                          gaussian, sigma 0.125, padding in test.padding_mode)
  bad_*.safetensors       models whose metadata or tensors disagree (error tests)
The model of each fwd_/sw_ case is model_<name>.safetensors (sw_* use model_small).
Run: .venv/bin/python tests/scripts/make_golden_segresnet.py   (CPU, deterministic seeds)
"""
import json
import os
import sys

import torch
from monai.inferers import sliding_window_inference
from monai.networks.nets import SegResNet

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_golden_nn import st_bytes  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden", "segresnet")
torch.set_num_threads(1)


def model(seed, init_filters, in_ch, out_ch, blocks_down, blocks_up, mode, groups=8, half=False):
    """A SegResNet with random weights; half=True rounds them to f16 (the file then stores F16)."""
    torch.manual_seed(seed)
    m = SegResNet(spatial_dims=3, init_filters=init_filters, in_channels=in_ch, out_channels=out_ch,
                  blocks_down=blocks_down, blocks_up=blocks_up, upsample_mode=mode, dropout_prob=0.2,
                  norm=("GROUP", {"num_groups": groups}))
    with torch.no_grad():
        for k, p in m.named_parameters():
            if "norm" in k or k.startswith("conv_final.0"):
                p.copy_((1 + 0.3 * torch.randn_like(p)) if k.endswith("weight") else 0.2 * torch.randn_like(p))
            elif k.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            if half:
                p.copy_(p.half().float())
    m.half_file = half
    m.eval()
    meta = {"voxpipe.arch": "segresnet", "voxpipe.in_channels": in_ch, "voxpipe.out_channels": out_ch,
            "voxpipe.init_filters": init_filters, "voxpipe.norm_groups": groups,
            "voxpipe.blocks_down": ",".join(map(str, blocks_down)),
            "voxpipe.blocks_up": ",".join(map(str, blocks_up)), "voxpipe.upsample_mode": mode,
            "voxpipe.roi": "16,16,8", "voxpipe.labels": json.dumps({str(i): f"class{i}" for i in range(1, out_ch)})}
    return m, meta


def tensors(m):
    return [(k, v.detach().clone().half() if m.half_file else v.detach().clone()) for k, v in m.state_dict().items()]


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def forward_case(name, seed, cfg, shape, **kw):
    m, meta = model(seed, *cfg, **kw)
    torch.manual_seed(seed + 1)
    x = torch.randn(*shape)
    with torch.no_grad():
        y = m(x)
    write(f"model_{name}.safetensors", st_bytes(tensors(m), meta))
    write(f"fwd_{name}.safetensors", st_bytes([("x", x), ("y", y)], {"test.case": name}))
    return m, meta


def sw_case(name, m, meta, shape, roi, overlap, padding_mode):
    torch.manual_seed(7)
    x = torch.randn(*shape)
    with torch.no_grad():
        y = sliding_window_inference(x, roi, 1, m, overlap=overlap, mode="gaussian", sigma_scale=0.125,
                                     padding_mode=padding_mode, cval=0.0)
    y = torch.as_tensor(y)
    write(f"sw_{name}.safetensors", st_bytes([("x", x), ("y", y)], {
        "roi": ",".join(map(str, roi)), "overlap": repr(overlap), "padding_mode": padding_mode}))


def main():
    os.makedirs(OUT, exist_ok=True)
    # The MONAI Label layout (blocks 1,2,2,4 / 1,1,1, nontrainable upsampling) kept small for the
    # golden size: init_filters 2 with GroupNorm(2), weights stored F16; anisotropic input
    m, meta = forward_case("small", 11, (2, 1, 3, (1, 2, 2, 4), (1, 1, 1), "nontrainable"), (1, 1, 24, 16, 32),
                           groups=2, half=True)
    # deconv upsampling, GroupNorm(8), F32 weights, 2 input channels, batch 2, 2 levels
    forward_case("deconv", 12, (8, 2, 3, (1, 2), (1,), "deconv"), (2, 2, 16, 8, 12))
    # sliding window: 28 x 13 x 20 with roi 16 x 16 x 8, overlap 0.4: 3 x 1 x 4 windows, H padded
    # (1 before, 2 after)
    sw_case("constant", m, meta, (1, 1, 28, 13, 20), (16, 16, 8), 0.4, "constant")
    sw_case("replicate", m, meta, (1, 1, 28, 13, 20), (16, 16, 8), 0.4, "replicate")

    # bad models (a one-level net, to stay small): a tensor missing, a shape that disagrees with the
    # metadata, wrong arch, wrong block count, unsupported upsampling
    m, meta = model(13, 8, 1, 2, (2,), (), "nontrainable")
    t = tensors(m)
    write("bad_ok.safetensors", st_bytes(t, meta))
    write("bad_missing.safetensors", st_bytes([kv for kv in t if kv[0] != "down_layers.0.2.conv2.conv.weight"], meta))
    write("bad_shape.safetensors", st_bytes(t, dict(meta, **{"voxpipe.init_filters": 16})))
    write("bad_arch.safetensors", st_bytes(t, dict(meta, **{"voxpipe.arch": "unet"})))
    write("bad_blocks.safetensors", st_bytes(t, dict(meta, **{"voxpipe.blocks_down": "1"})))
    write("bad_upmode.safetensors", st_bytes(t, dict(meta, **{"voxpipe.upsample_mode": "pixelshuffle"})))
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} files, {total} bytes, to {os.path.normpath(OUT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
