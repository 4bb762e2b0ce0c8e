#!/usr/bin/env python3
"""Convert a MONAI SegResNet checkpoint into a voxpipe model file (safetensors) for infer-ressegnet.

  convert_monai.py CHECKPOINT OUT.safetensors [architecture options] [preprocessing options]

CHECKPOINT is what torch.save wrote: a state_dict, or a dict holding it under 'model',
'state_dict', 'model_state_dict' or 'network' (MONAI Label, Lightning, plain training loops);
'module.' (DataParallel/DDP) and '_orig_mod.' (torch.compile) prefixes are removed. The
architecture options are monai.networks.nets.SegResNet's; in/out channels and init_filters
default to what the tensors say. The weights are checked by building that SegResNet and loading
them strictly (a missing or unexpected tensor, or a shape mismatch, is an error naming them).
The file holds the tensors under MONAI's state_dict names (f32, or --dtype f16/bf16) and the
__metadata__ keys of docs/MODELS.md (voxpipe.arch, architecture, roi, spacing, normalisation,
labels), written with safetensors.torch.save_file.

Preprocessing options as MONAI Label's segmentation app: --spacing 1.5,1.5,1.5 (Spacingd pixdim,
volume order x,y,z) and --norm range --a-min -175 --a-max 250 --b-min 0 --b-max 1 (clip unless
--no-clip) (ScaleIntensityRanged), or --norm ct --ct LO,HI,MEAN,STD, zscore, none. --labels: a
JSON file or string {"1": "name", ...}.
Needs: torch, monai, safetensors.
"""
import argparse
import json
import os
import sys


def die(msg):
    print(f"convert_monai: error: {msg}", file=sys.stderr)
    sys.exit(1)


def ints(s):
    return [int(x) for x in s.split(",")] if s else []


def unwrap(ck):
    """The state_dict inside a checkpoint, with DDP / compile prefixes removed."""
    import torch
    sd = ck
    for key in ("model", "state_dict", "model_state_dict", "network", "net"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
            break
    if not isinstance(sd, dict) or not any(torch.is_tensor(v) for v in sd.values()):
        die("no state_dict found (looked for a dict of tensors, or one under 'model', 'state_dict', "
            "'model_state_dict', 'network', 'net')")
    out = {}
    for k, v in sd.items():
        if not torch.is_tensor(v):
            continue
        for p in ("module.", "_orig_mod."):
            while k.startswith(p):
                k = k[len(p):]
        out[k] = v.detach().cpu()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("out")
    ap.add_argument("--in-channels", type=int)
    ap.add_argument("--out-channels", type=int)
    ap.add_argument("--init-filters", type=int)
    ap.add_argument("--blocks-down", default="1,2,2,4")
    ap.add_argument("--blocks-up", default="1,1,1")
    ap.add_argument("--norm-groups", type=int, default=8)
    ap.add_argument("--upsample-mode", default="nontrainable", choices=["nontrainable", "deconv"])
    ap.add_argument("--roi", default="96,96,96", help="sliding-window size X,Y,Z (voxpipe.roi)")
    ap.add_argument("--spacing", help="target spacing X,Y,Z mm (voxpipe.spacing); omit: no resampling")
    ap.add_argument("--norm", default="none", choices=["range", "ct", "zscore", "none"])
    ap.add_argument("--a-min", type=float)
    ap.add_argument("--a-max", type=float)
    ap.add_argument("--b-min", type=float, default=0.0)
    ap.add_argument("--b-max", type=float, default=1.0)
    ap.add_argument("--no-clip", action="store_true")
    ap.add_argument("--ct", help="LO,HI,MEAN,STD for --norm ct")
    ap.add_argument("--labels", help="JSON file or string {\"1\": \"name\", ...}")
    ap.add_argument("--dtype", default="f32", choices=["f32", "f16", "bf16"])
    a = ap.parse_args()

    import torch
    from monai.networks.nets import SegResNet
    from safetensors.torch import save_file

    try:
        ck = torch.load(a.checkpoint, map_location="cpu", weights_only=True)
    except Exception:  # checkpoints holding optimiser objects, numpy scalars ...
        ck = torch.load(a.checkpoint, map_location="cpu", weights_only=False)
    sd = unwrap(ck)
    w0, wf = sd.get("convInit.conv.weight"), sd.get("conv_final.2.conv.weight")
    if w0 is None or wf is None:
        die("not a SegResNet state_dict: convInit.conv.weight / conv_final.2.conv.weight missing")
    in_ch = a.in_channels or int(w0.shape[1])
    init = a.init_filters or int(w0.shape[0])
    out_ch = a.out_channels or int(wf.shape[0])
    bd, bu = ints(a.blocks_down), ints(a.blocks_up)
    net = SegResNet(spatial_dims=3, init_filters=init, in_channels=in_ch, out_channels=out_ch, blocks_down=bd,
                    blocks_up=bu, upsample_mode=a.upsample_mode, norm=("GROUP", {"num_groups": a.norm_groups}))
    try:
        net.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        die("the checkpoint does not match SegResNet(init_filters=%d, in_channels=%d, out_channels=%d, "
            "blocks_down=%s, blocks_up=%s, upsample_mode=%s): %s" % (init, in_ch, out_ch, bd, bu, a.upsample_mode,
                                                                  str(e).replace("\n", " ")))
    roi = ints(a.roi)
    div = 2 ** (len(bd) - 1)
    if len(roi) != 3 or any(r <= 0 or r % div for r in roi):
        die(f"--roi {a.roi}: three sizes, each divisible by {div}")
    meta = {"voxpipe.arch": "segresnet", "voxpipe.in_channels": str(in_ch), "voxpipe.out_channels": str(out_ch),
            "voxpipe.init_filters": str(init), "voxpipe.norm_groups": str(a.norm_groups),
            "voxpipe.blocks_down": ",".join(map(str, bd)), "voxpipe.blocks_up": ",".join(map(str, bu)),
            "voxpipe.upsample_mode": a.upsample_mode, "voxpipe.roi": ",".join(map(str, roi)),
            "voxpipe.norm": a.norm, "voxpipe.source": "MONAI checkpoint " + os.path.basename(a.checkpoint)}
    if a.spacing:
        sp = [float(x) for x in a.spacing.split(",")]
        if len(sp) != 3 or min(sp) <= 0:
            die(f"--spacing {a.spacing}: X,Y,Z of positive mm")
        meta["voxpipe.spacing"] = ",".join(repr(x) for x in sp)
    if a.norm == "range":
        if a.a_min is None or a.a_max is None or a.a_min == a.a_max:
            die("--norm range needs --a-min and --a-max (different)")
        meta.update({"voxpipe.a_min": repr(a.a_min), "voxpipe.a_max": repr(a.a_max), "voxpipe.b_min": repr(a.b_min),
                     "voxpipe.b_max": repr(a.b_max), "voxpipe.clip": "0" if a.no_clip else "1"})
    elif a.norm == "ct":
        v = [float(x) for x in (a.ct or "").split(",") if x]
        if len(v) != 4:
            die("--norm ct needs --ct LO,HI,MEAN,STD")
        meta.update(dict(zip(("voxpipe.ct_lo", "voxpipe.ct_hi", "voxpipe.ct_mean", "voxpipe.ct_std"), map(repr, v))))
    if a.labels:
        txt = open(a.labels).read() if os.path.isfile(a.labels) else a.labels
        try:
            lab = json.loads(txt)
            assert isinstance(lab, dict) and all(int(k) >= 0 and isinstance(n, str) for k, n in lab.items())
        except Exception:
            die("--labels: not a JSON object {\"1\": \"name\", ...}")
        meta["voxpipe.labels"] = json.dumps({str(int(k)): n for k, n in sorted(lab.items(), key=lambda kv: int(kv[0]))})
    dt = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[a.dtype]
    tensors = {k: v.to(dt).contiguous() for k, v in net.state_dict().items()}
    tmp = a.out + ".tmp"
    save_file(tensors, tmp, metadata=meta)
    os.replace(tmp, a.out)
    print(f"convert_monai: wrote {a.out} ({len(tensors)} tensors, {a.dtype})", file=sys.stderr)


if __name__ == "__main__":
    main()
