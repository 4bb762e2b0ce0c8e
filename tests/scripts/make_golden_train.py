#!/usr/bin/env python3
"""Golden files for training (tests/unit/test_nn_train.c): backward ops, losses, and one / twenty
optimizer steps of a SegResNet (MONAI) and a PlainConvUNet (dynamic_network_architectures, with
nnunetv2's own loss classes), all computed by the real packages on CPU in f32.

Packages: torch, monai, nnunetv2 (+ dynamic_network_architectures, batchgeneratorsv2), nibabel, numpy.
Files in tests/golden/train/ (each < 200 KB; tensors F32, integer data stored as f32):
  ops.safetensors        backward of each op vs torch autograd (f64) on small random shapes:
                         per case TAG: TAG.x, TAG.w, TAG.b, TAG.dy, TAG.dx, TAG.dw, TAG.db (as apply);
                         __metadata__ TAG = "op;stride;pad;extra"
  losses.safetensors     logits z / target t; MONAI DiceCELoss and nnU-Net DC_and_CE_loss (batch Dice
                         on / off for both) values and d/dz; deep supervision over 3 outputs (targets made
                         by nnU-Net's DownsampleSegForDSTransform, weights as nnUNetTrainer)
  srn_model.safetensors  SegResNet(init_filters 8, blocks_down 1,2, blocks_up 1, 3 classes), MONAI init
  srn_batch.safetensors  x (2,1,16,16,16) real CT crops normalised, target (2,16,16,16) labels mapped
                         to 3 classes, loss0, losses (20 AdamW steps), __metadata__ with the optimizer
  srn_grads.safetensors  every gradient after the first forward/backward ("grad.NAME")
  srn_step1.safetensors  every weight after the first AdamW step
  unet_*.safetensors     the same for PlainConvUNet (4 stages, anisotropic stride (1,2,2) on stage 1,
                         deep supervision) with SGD nesterov + clip_grad_norm_(12) + poly lr
Run: .venv/bin/python tests/scripts/make_golden_train.py [DATA_DIR]
"""
import os
import sys

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))
from convert_nnunet import clean_state_dict, st_bytes  # noqa: E402

OUT = os.path.join(HERE, "..", "golden", "train")
DATA = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "..", "shared", "data")
torch.set_num_threads(1)
STEPS = 20


def write(name, tensors, meta=None):
    os.makedirs(OUT, exist_ok=True)
    arrs = [(k, (v.detach().cpu().float().numpy() if torch.is_tensor(v) else np.asarray(v, np.float32))) for k, v in tensors]
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(st_bytes(arrs, meta or {}))


def f32(*shape, scale=1.0):
    """Random f32 values, then f64 for the autograd reference."""
    return (scale * torch.randn(*shape)).float().double()


# ---------------------------------------------------------------- ops

def ops():
    torch.manual_seed(11)
    T, meta = [], {}

    def conv(tag, xs, ws, s, p, bias):
        x, w = f32(*xs).requires_grad_(), f32(*ws, scale=0.3).requires_grad_()
        b = f32(ws[0]).requires_grad_() if bias else None
        y = F.conv3d(x, w, b, s, p)
        dy = f32(*y.shape)
        y.backward(dy)
        T.extend([(tag + ".x", x), (tag + ".w", w), (tag + ".dy", dy), (tag + ".dx", x.grad), (tag + ".dw", w.grad)])
        if bias:
            T.extend([(tag + ".b", b), (tag + ".db", b.grad)])
        meta[tag] = "conv3d;%s;%s;%d" % (",".join(map(str, s)), ",".join(map(str, p)), int(bias))

    def convt(tag, xs, ws, s):
        x, w, b = f32(*xs).requires_grad_(), f32(*ws, scale=0.3).requires_grad_(), f32(ws[1]).requires_grad_()
        y = F.conv_transpose3d(x, w, b, s)
        dy = f32(*y.shape)
        y.backward(dy)
        T.extend([(tag + ".x", x), (tag + ".w", w), (tag + ".b", b), (tag + ".dy", dy), (tag + ".dx", x.grad),
                  (tag + ".dw", w.grad), (tag + ".db", b.grad)])
        meta[tag] = "conv_transpose3d;%s;0,0,0;1" % ",".join(map(str, s))

    def gnorm(tag, xs, groups):
        x = (f32(*xs) * 2 + 0.5).requires_grad_()
        g, b = (1 + 0.3 * f32(xs[1])).requires_grad_(), f32(xs[1]).requires_grad_()
        y = F.group_norm(x, groups, g, b, 1e-5)
        dy = f32(*y.shape)
        y.backward(dy)
        T.extend([(tag + ".x", x), (tag + ".w", g), (tag + ".b", b), (tag + ".dy", dy), (tag + ".dx", x.grad),
                  (tag + ".dw", g.grad), (tag + ".db", b.grad)])
        meta[tag] = "group_norm;;;%d" % groups

    def elem(tag, kind, xs):
        x = f32(*xs).requires_grad_()
        y = F.relu(x) if kind == "relu" else F.leaky_relu(x, 0.01) if kind == "leaky_relu" else \
            F.interpolate(x, scale_factor=2, mode="trilinear", align_corners=False)
        dy = f32(*y.shape)
        y.backward(dy)
        T.extend([(tag + ".x", x), (tag + ".y", y), (tag + ".dy", dy), (tag + ".dx", x.grad)])
        meta[tag] = kind + ";;;0"

    conv("c1", (2, 3, 5, 6, 7), (4, 3, 3, 3, 3), (1, 1, 1), (1, 1, 1), True)
    conv("c2", (1, 2, 7, 8, 9), (3, 2, 3, 3, 3), (2, 2, 2), (1, 1, 1), False)
    conv("c3", (2, 2, 4, 6, 10), (3, 2, 1, 3, 3), (1, 2, 2), (0, 1, 1), True)
    conv("c4", (2, 4, 3, 4, 5), (2, 4, 1, 1, 1), (1, 1, 1), (0, 0, 0), True)
    conv("c5", (1, 3, 6, 5, 19), (5, 3, 3, 3, 3), (2, 1, 2), (1, 1, 1), False)
    convt("t1", (1, 4, 3, 4, 5), (4, 3, 2, 2, 2), (2, 2, 2))
    convt("t2", (2, 3, 4, 3, 5), (3, 2, 1, 2, 2), (1, 2, 2))
    gnorm("g1", (2, 8, 3, 4, 5), 4)
    gnorm("g2", (2, 3, 4, 5, 6), 3)
    elem("r1", "relu", (2, 3, 4, 5, 6))
    elem("l1", "leaky_relu", (2, 3, 4, 5, 6))
    elem("u1", "upsample", (1, 2, 3, 4, 5))
    write("ops.safetensors", T, meta)


# ---------------------------------------------------------------- losses

def nn_loss(batch_dice):
    from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
    return DC_and_CE_loss({"batch_dice": batch_dice, "smooth": 1e-5, "do_bg": False, "ddp": False}, {}, weight_ce=1,
                          weight_dice=1, ignore_label=None, dice_class=MemoryEfficientSoftDiceLoss)


def ds_weights(n):  # nnUNetTrainer._build_loss
    w = np.array([1 / (2 ** i) for i in range(n)])
    w[-1] = 0
    return w / w.sum()


def ds_targets(seg, scales):
    """nnU-Net's DownsampleSegForDSTransform, per sample (C, D, H, W), stacked over the batch."""
    from batchgeneratorsv2.transforms.utils.deep_supervision_downsampling import DownsampleSegForDSTransform
    tr = DownsampleSegForDSTransform(ds_scales=scales)
    per = [tr._apply_to_segmentation(s) for s in seg]
    return [torch.stack([p[i] for p in per]) for i in range(len(scales))]


def losses():
    from monai.losses import DiceCELoss
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
    torch.manual_seed(12)
    T = []
    z = (2 * torch.randn(2, 3, 4, 6, 8)).requires_grad_()
    t = torch.randint(0, 3, (2, 1, 4, 6, 8))
    t[1, 0, :2] = 0  # class 2 missing from part of one case
    T += [("z", z), ("t", t[:, 0].float())]
    l = DiceCELoss(to_onehot_y=True, softmax=True)(z, t.float())
    l.backward()
    T += [("monai.loss", l.reshape(1)), ("monai.dz", z.grad)]
    z.grad = None  # batch Dice (DiceLoss batch=True: sums over the batch before the ratio)
    l = DiceCELoss(to_onehot_y=True, softmax=True, batch=True)(z, t.float())
    l.backward()
    T += [("monai_batch.loss", l.reshape(1)), ("monai_batch.dz", z.grad)]
    for bd in (0, 1):
        z.grad = None
        l = nn_loss(bool(bd))(z, t)
        l.backward()
        T += [("nnunet%d.loss" % bd, l.reshape(1)), ("nnunet%d.dz" % bd, z.grad)]
    # deep supervision: strides (1,1,1),(1,2,2),(2,2,2),(2,2,2) -> 3 outputs (nnUNetTrainer scales)
    strides = [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]]
    scales = [list(i) for i in 1 / np.cumprod(np.vstack(strides), axis=0)][:-1]
    seg = torch.randint(0, 3, (2, 1, 6, 12, 20))
    tg = ds_targets(seg, scales)
    zs = [(2 * torch.randn(2, 3, *g.shape[2:])).requires_grad_() for g in tg]
    w = ds_weights(len(zs))
    l = DeepSupervisionWrapper(nn_loss(True), w)(zs, tg)
    l.backward()
    T += [("ds.t", seg[:, 0].float()), ("ds.loss", l.reshape(1)), ("ds.weights", torch.tensor(w).float())]
    for i in range(len(zs)):
        T += [("ds.z%d" % i, zs[i]), ("ds.dz%d" % i, zs[i].grad if zs[i].grad is not None else torch.zeros_like(zs[i])),
              ("ds.t%d" % i, tg[i][:, 0].float())]
    write("losses.safetensors", T)


# ---------------------------------------------------------------- optimizers

def optim():
    """3 steps of SGD (nesterov, clip_grad_norm_ active, poly lr) and AdamW on two tensors, with given
    gradients; everything flattened in parameter order (the layout of vp_trainable's flat buffers)."""
    torch.manual_seed(15)
    shapes = [(5, 3), (7,)]
    p0 = [torch.randn(*s) for s in shapes]
    gs = [[3 * torch.randn(*s) for s in shapes] for _ in range(3)]
    flat = lambda ts: torch.cat([t.reshape(-1) for t in ts])
    T = [("p0", flat(p0))] + [("g%d" % i, flat(g)) for i, g in enumerate(gs)]
    for kind in ("sgd", "adamw"):
        ps = [p.clone().requires_grad_() for p in p0]
        if kind == "sgd":
            opt = torch.optim.SGD(ps, 0.1, weight_decay=3e-2, momentum=0.99, nesterov=True)
        else:
            opt = torch.optim.AdamW(ps, 1e-2, weight_decay=1e-1)
        norms = []
        for i, g in enumerate(gs):
            for p, gi in zip(ps, g):
                p.grad = gi.clone()
            if kind == "sgd":
                for grp in opt.param_groups:
                    grp["lr"] = 0.1 * (1 - i / 10) ** 0.9
                norms.append(float(torch.nn.utils.clip_grad_norm_(ps, 1.0)))
            opt.step()
            T.append(("%s.p%d" % (kind, i + 1), flat(ps)))
        if kind == "sgd":
            T.append(("sgd.norms", torch.tensor(norms)))
    write("optim.safetensors", T)


# ---------------------------------------------------------------- real data

def batch(patch, corners):
    ct = nib.load(os.path.join(DATA, "totalseg", "example_ct_sm.nii.gz")).get_fdata().astype(np.float32).transpose(2, 1, 0)
    sg = np.asarray(nib.load(os.path.join(DATA, "totalseg", "example_seg.nii.gz")).dataobj).astype(np.int32).transpose(2, 1, 0)
    xs, ys = [], []
    for c in corners:
        sl = tuple(slice(a, a + p) for a, p in zip(c, patch))
        xs.append(ct[sl]), ys.append(sg[sl])
    x, y = np.stack(xs)[:, None], np.stack(ys)
    x = (np.clip(x, -1000, 1000) - x.mean()) / x.std()
    labs, cnt = np.unique(y[y > 0], return_counts=True)
    top = labs[np.argsort(-cnt)][:2]  # the two largest structures -> classes 1, 2; the rest background
    t = np.zeros_like(y)
    for i, v in enumerate(top):
        t[y == v] = i + 1
    return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(t.astype(np.int64)), [int(v) for v in top]


def grads_and_steps(prefix, net, opt, step_fn, lrs, meta, clip=0):
    names = [n for n, _ in clean_state_dict(net.state_dict())]
    params = dict(net.named_parameters())
    losses = []
    for i in range(STEPS):
        for g in opt.param_groups:
            g["lr"] = lrs[i]
        loss = step_fn()
        losses.append(loss)
        if i == 0:  # before clipping: vp_train_step_grads' output; vp_optim_step clips
            # a parameter autograd never reached (nnU-Net's lowest deep-supervision head, weight 0) has
            # grad None: its gradient is 0 (torch's optimizers then skip it; ours apply weight decay)
            write(prefix + "_grads.safetensors", [("grad." + n, params[n].grad if params[n].grad is not None
                                                   else torch.zeros_like(params[n])) for n in names])
        if clip:
            norm = torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
            print("%s step %d: loss %.6f, gradient norm %.4f (clipped to %g)" % (prefix, i, loss, norm, clip))
        opt.step()
        if i == 0:
            write(prefix + "_step1.safetensors", [(n, params[n]) for n in names])
    return losses


def segresnet():
    from monai.losses import DiceCELoss
    from monai.networks.nets import SegResNet
    torch.manual_seed(13)
    net = SegResNet(spatial_dims=3, init_filters=8, in_channels=1, out_channels=3, blocks_down=(1, 2), blocks_up=(1,),
                    norm=("GROUP", {"num_groups": 8}), upsample_mode="nontrainable")
    meta = {"voxpipe.arch": "segresnet", "voxpipe.in_channels": "1", "voxpipe.out_channels": "3",
            "voxpipe.init_filters": "8", "voxpipe.norm_groups": "8", "voxpipe.blocks_down": "1,2",
            "voxpipe.blocks_up": "1", "voxpipe.upsample_mode": "nontrainable"}
    write("srn_model.safetensors", clean_state_dict(net.state_dict()), meta)
    x, t, top = batch((16, 16, 16), [(7, 30, 40), (12, 50, 60)])
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    lr, wd = 1e-3, 1e-5
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=wd)

    def step():
        opt.zero_grad()
        l = loss_fn(net(x), t[:, None].float())
        l.backward()
        return l.item()

    losses = grads_and_steps("srn", net, opt, step, [lr] * STEPS, meta)
    write("srn_batch.safetensors", [("x", x), ("target", t.float()), ("losses", torch.tensor(losses))],
          {"optimizer": "adamw", "lr": repr(lr), "weight_decay": repr(wd), "labels": ",".join(map(str, top))})


def unet():
    from dynamic_network_architectures.architectures.unet import PlainConvUNet
    from dynamic_network_architectures.initialization.weight_init import InitWeights_He
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
    torch.manual_seed(14)
    feats, ks = [2, 4, 8, 8], [[1, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]]
    strides, nconv, ndec = [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]], [2, 2, 2, 2], [2, 2, 2]
    net = PlainConvUNet(1, 4, feats, torch.nn.Conv3d, ks, strides, nconv, 3, ndec, conv_bias=True,
                        norm_op=torch.nn.InstanceNorm3d, norm_op_kwargs={"eps": 1e-5, "affine": True},
                        nonlin=torch.nn.LeakyReLU, nonlin_kwargs={"inplace": True}, deep_supervision=True)
    net.apply(InitWeights_He(1e-2))
    with torch.no_grad():  # non-trivial biases and norm affines, so every parameter is tested
        for n, p in net.named_parameters():
            if ".norm." in n or "all_modules.1" in n:
                p.copy_((1 + 0.2 * torch.randn_like(p)) if n.endswith("weight") else 0.2 * torch.randn_like(p))
            elif n.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
    j = lambda v: ",".join(str(i) for i in v)
    meta = {"architecture": "PlainConvUNet", "input_channels": "1", "num_classes": "3", "n_stages": "4",
            "features_per_stage": j(feats), "kernel_sizes": ";".join(j(k) for k in ks),
            "strides": ";".join(j(s) for s in strides), "n_conv_per_stage": j(nconv),
            "n_conv_per_stage_decoder": j(ndec), "patch_size": "8,16,16", "conv_bias": "1", "norm_eps": "1e-05",
            "nonlin_slope": "0.01", "axes": "zyx"}
    write("unet_model.safetensors", clean_state_dict(net.state_dict()), meta)
    x, t, top = batch((8, 16, 16), [(8, 30, 40), (14, 50, 60)])
    scales = [list(i) for i in 1 / np.cumprod(np.vstack(strides), axis=0)][:-1]
    tg = ds_targets(t[:, None], scales)
    loss_fn = DeepSupervisionWrapper(nn_loss(True), ds_weights(len(scales)))
    lr0, wd = 1e-2, 3e-5
    opt = torch.optim.SGD(net.parameters(), lr0, weight_decay=wd, momentum=0.99, nesterov=True)
    lrs = [lr0 * (1 - i / STEPS) ** 0.9 for i in range(STEPS)]  # PolyLRScheduler, one step per "epoch"

    def step():  # nnUNetTrainer.train_step on CPU
        opt.zero_grad(set_to_none=True)
        l = loss_fn(net(x), tg)
        l.backward()
        return l.item()

    losses = grads_and_steps("unet", net, opt, step, lrs, meta, clip=12)
    write("unet_batch.safetensors", [("x", x), ("target", t.float()), ("losses", torch.tensor(losses))],
          {"optimizer": "sgd", "lr": repr(lr0), "weight_decay": repr(wd), "momentum": "0.99", "poly_exponent": "0.9",
           "clip_norm": "12", "batch_dice": "1", "labels": ",".join(map(str, top))})


if __name__ == "__main__":
    ops()
    losses()
    optim()
    segresnet()
    unet()
