#!/usr/bin/env python3
"""tests/gpu/bench_torch.py - the PyTorch side of the GPU benchmark (tests/gpu/check.sh runs it).

SegResNet as MONAI builds it (init_filters 32, blocks_down 1,2,2,4, blocks_up 1,1,1, GroupNorm 8,
in 1, out 105: the MONAI whole-body CT bundle's network), written here in plain torch with MONAI's
state_dict names so that only torch is needed (MONAI's class is used instead when importable),
random weights (seed 0). It
  1. writes the model as safetensors with voxpipe's metadata (OUT/segresnet32.safetensors) for the
     voxpipe side (build/gpu/bench_segresnet),
  2. times the forward pass on 96^3 patches, batch 2: eager f32, eager TF32, and eager with AMP
     (autocast f16) + channels_last_3d -- median of 10 after 3 warm-ups, CUDA-synchronised,
  3. times whole-volume sliding-window inference (roi 96, overlap 0.25, gaussian, sw batch 2, AMP +
     channels-last, argmax on the device, labels to the host) on a CT-sized volume (default
     192x192x160 voxels, 1.5 mm: 29 x 29 x 24 cm),
and reports TFLOP/s (2 x the convolutions' multiply-adds, counted with forward hooks) against the
GPU's dense peak, and torch.cuda.max_memory_allocated per run. One line per result on stdout,
prefixed "torch:", and a JSON file OUT/torch.json.

usage: bench_torch.py OUT_DIR [D H W]      needs: torch (CUDA); nothing else
"""
import json
import math
import os
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# dense (no sparsity) peak TFLOP/s: (f32 FMA, tf32, f16/bf16 tensor cores), by device name
PEAKS = [("H200", (67.0, 494.7, 989.4)), ("H100 SXM", (67.0, 494.7, 989.4)), ("H100 80GB HBM3", (67.0, 494.7, 989.4)),
         ("H100 NVL", (60.0, 417.5, 835.0)), ("H100 PCIe", (51.0, 378.0, 756.0)), ("H100", (51.0, 378.0, 756.0)),
         ("A100", (19.5, 156.0, 312.0))]


class Conv(nn.Module):  # MONAI's Convolution wrapper: the Conv3d is .conv
    def __init__(self, ci, co, k=3, stride=1, bias=False):
        super().__init__()
        self.conv = nn.Conv3d(ci, co, k, stride=stride, padding=k // 2, bias=bias)

    def forward(self, x):
        return self.conv(x)


class ResBlock(nn.Module):
    def __init__(self, c, groups=8):
        super().__init__()
        self.norm1, self.norm2 = nn.GroupNorm(groups, c), nn.GroupNorm(groups, c)
        self.conv1, self.conv2 = Conv(c, c), Conv(c, c)

    def forward(self, x):
        y = self.conv1(F.relu(self.norm1(x)))
        return self.conv2(F.relu(self.norm2(y))) + x


class SegResNet(nn.Module):  # monai.networks.nets.SegResNet, upsample_mode nontrainable, no dropout
    def __init__(self, init_filters=32, in_channels=1, out_channels=105, blocks_down=(1, 2, 2, 4), blocks_up=(1, 1, 1), groups=8):
        super().__init__()
        f = init_filters
        self.convInit = Conv(in_channels, f)
        self.down_layers = nn.ModuleList()
        for i, n in enumerate(blocks_down):
            c = f * 2 ** i
            pre = Conv(c // 2, c, stride=2) if i > 0 else nn.Identity()
            self.down_layers.append(nn.Sequential(pre, *[ResBlock(c, groups) for _ in range(n)]))
        self.up_layers, self.up_samples = nn.ModuleList(), nn.ModuleList()
        for j, n in enumerate(blocks_up):
            c = f * 2 ** (len(blocks_up) - j)
            self.up_samples.append(nn.Sequential(Conv(c, c // 2, k=1), nn.Upsample(scale_factor=2, mode="trilinear", align_corners=False)))
            self.up_layers.append(nn.Sequential(*[ResBlock(c // 2, groups) for _ in range(n)]))
        self.conv_final = nn.Sequential(nn.GroupNorm(groups, f), nn.ReLU(), Conv(f, out_channels, k=1, bias=True))

    def forward(self, x):
        x = self.convInit(x)
        skips = []
        for d in self.down_layers:
            x = d(x)
            skips.append(x)
        skips.reverse()
        for i, (up, ul) in enumerate(zip(self.up_samples, self.up_layers)):
            x = ul(up(x) + skips[i + 1])
        return self.conv_final(x)


def build(out_channels):
    torch.manual_seed(0)
    try:
        from monai.networks.nets import SegResNet as MonaiSegResNet
        m = MonaiSegResNet(spatial_dims=3, init_filters=32, in_channels=1, out_channels=out_channels, norm=("GROUP", {"num_groups": 8}))
        impl = "monai"
    except Exception:
        m = SegResNet(32, 1, out_channels)
        impl = "plain torch (MONAI's structure and names)"
    with torch.no_grad():
        for k, p in m.named_parameters():
            if "norm" in k or k.startswith("conv_final.0"):
                p.copy_((1 + 0.3 * torch.randn_like(p)) if k.endswith("weight") else 0.2 * torch.randn_like(p))
    return m.eval(), impl


def save_safetensors(path, m, out_channels):
    header, blobs, off = {"__metadata__": {
        "voxpipe.arch": "segresnet", "voxpipe.in_channels": "1", "voxpipe.out_channels": str(out_channels),
        "voxpipe.init_filters": "32", "voxpipe.norm_groups": "8", "voxpipe.blocks_down": "1,2,2,4",
        "voxpipe.blocks_up": "1,1,1", "voxpipe.upsample_mode": "nontrainable", "voxpipe.roi": "96,96,96",
        "voxpipe.spacing": "1.5,1.5,1.5"}}, [], 0
    for k, v in m.state_dict().items():
        if not v.is_floating_point():
            continue
        b = v.detach().float().contiguous().cpu().numpy().astype("<f4").tobytes()
        header[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    os.replace(tmp, path)


def conv_macs(m, shape):
    """multiply-adds of the convolutions of one forward pass on an input of this shape (hooks)"""
    total = [0]

    def hook(mod, inp, out):
        total[0] += out.numel() * mod.in_channels // mod.groups * math.prod(mod.kernel_size)

    hs = [mod.register_forward_hook(hook) for mod in m.modules() if isinstance(mod, nn.Conv3d)]
    with torch.no_grad():
        m(torch.zeros(shape, device="cuda"))
    for h in hs:
        h.remove()
    return total[0]


def timed(fn, reps=10, warm=3):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return ts[len(ts) // 2]


def gaussian_map(roi, sigma_scale=0.125, device="cuda"):
    g = []
    for r in roi:
        t = torch.arange(r, dtype=torch.float32, device=device)
        s = sigma_scale * r
        g.append(torch.exp(-((t - (r - 1) / 2) ** 2) / (2 * s * s)))
    m = g[0][:, None, None] * g[1][None, :, None] * g[2][None, None, :]
    m = m / m.max()
    return m.clamp_min(max(m.min().item(), 1e-3))


def starts(size, r, overlap):
    if size <= r:
        return [0]
    step = max(int(r * (1 - overlap)), 1)
    out, i = [], 0
    while True:
        s = min(i * step, size - r)
        out.append(s)
        if s + r >= size:
            return out
        i += 1


def sliding_window(m, x, roi=(96, 96, 96), overlap=0.25, sw_batch=2):
    """MONAI-style sliding window (gaussian, constant padding to roi), f16 aggregation on the device, argmax"""
    D, H, W = x.shape[2:]
    pad = [max(r - s, 0) for r, s in zip(roi, (D, H, W))]
    if any(pad):
        x = F.pad(x, (pad[2] // 2, pad[2] - pad[2] // 2, pad[1] // 2, pad[1] - pad[1] // 2, pad[0] // 2, pad[0] - pad[0] // 2))
    Dp, Hp, Wp = x.shape[2:]
    g = gaussian_map(roi)
    acc, cnt = None, torch.zeros((Dp, Hp, Wp), device="cuda")
    wins = [(a, b, c) for a in starts(Dp, roi[0], overlap) for b in starts(Hp, roi[1], overlap) for c in starts(Wp, roi[2], overlap)]
    for i in range(0, len(wins), sw_batch):
        ws = wins[i:i + sw_batch]
        xb = torch.cat([x[:, :, a:a + roi[0], b:b + roi[1], c:c + roi[2]] for a, b, c in ws]).contiguous(memory_format=torch.channels_last_3d)
        with torch.autocast("cuda", dtype=torch.float16):
            yb = m(xb)
        if acc is None:
            acc = torch.zeros((yb.shape[1], Dp, Hp, Wp), device="cuda", dtype=torch.float16)
        for j, (a, b, c) in enumerate(ws):
            acc[:, a:a + roi[0], b:b + roi[1], c:c + roi[2]] += (yb[j] * g).half()
            cnt[a:a + roi[0], b:b + roi[1], c:c + roi[2]] += g
    lab = (acc.float() / cnt).argmax(0)
    lab = lab[pad[0] // 2:pad[0] // 2 + D, pad[1] // 2:pad[1] // 2 + H, pad[2] // 2:pad[2] // 2 + W]
    return lab.to(torch.int32).cpu()


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/tmp/gpu"
    vol = tuple(int(v) for v in sys.argv[2:5]) if len(sys.argv) >= 5 else (192, 192, 160)
    os.makedirs(out, exist_ok=True)
    if not torch.cuda.is_available():
        print("torch: SKIP: torch sees no CUDA device")
        return 0
    K = 105
    name = torch.cuda.get_device_name(0)
    peak = next((p for k, p in PEAKS if k in name), None)
    m, impl = build(K)
    save_safetensors(os.path.join(out, "segresnet32.safetensors"), m, K)
    m = m.cuda()
    res = {"device": name, "impl": impl, "torch": torch.__version__, "peak_tflops": peak}
    macs = conv_macs(m, (2, 1, 96, 96, 96))
    res["patch_gflop"] = 2 * macs / 1e9
    x = torch.randn(2, 1, 96, 96, 96, device="cuda")

    def run(label, mm, xx, amp, tf32):
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()

        def f():
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16, enabled=amp):
                return mm(xx)
        t = timed(f)
        mem = torch.cuda.max_memory_allocated()
        tfl = 2 * macs / t / 1e12
        pk = peak[2 if amp else 1 if tf32 else 0] if peak else None
        res[label] = {"ms": t * 1e3, "tflops": tfl, "peak_mem_mib": mem / 2 ** 20}
        print(f"torch: segresnet32 96^3 batch 2 {label}: median {t * 1e3:.2f} ms, {tfl:.1f} TFLOP/s"
              + (f" ({100 * tfl / pk:.1f}% of {pk:.0f} peak)" if pk else "") + f", peak memory {mem / 2 ** 20:.0f} MiB")

    torch.backends.cudnn.benchmark = True
    run("eager_f32", m, x, False, False)
    run("eager_tf32", m, x, False, True)
    mcl = m.to(memory_format=torch.channels_last_3d)
    run("amp_f16_channels_last", mcl, x.contiguous(memory_format=torch.channels_last_3d), True, False)

    # whole volume
    torch.manual_seed(1)
    v = torch.randn(1, 1, *vol)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    sliding_window(mcl, v.cuda())  # warm-up
    torch.cuda.synchronize()
    ts = []
    for _ in range(3):
        t0 = time.perf_counter()
        lab = sliding_window(mcl, v.cuda())  # upload, infer, labels back
        ts.append(time.perf_counter() - t0)
    ts.sort()
    mem = torch.cuda.max_memory_allocated()
    res["whole_volume"] = {"shape": vol, "ms": ts[1] * 1e3, "peak_mem_mib": mem / 2 ** 20, "labels": int(lab.numel())}
    print(f"torch: whole volume {vol[0]}x{vol[1]}x{vol[2]} sliding window (roi 96, overlap 0.25, sw batch 2, AMP f16 + channels-last): "
          f"median {ts[1] * 1e3:.0f} ms, peak memory {mem / 2 ** 20:.0f} MiB")
    with open(os.path.join(out, "torch.json"), "w") as f:
        json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
