#!/usr/bin/env python3
"""Full-size parity of infer-ressegnet and infer-unet with their peers (tests/shell/fullsize.bats).

The committed goldens (make_golden_segresnet.py, make_golden_unet.py) use narrow networks to stay
small; here the networks have the study's full widths and the reference is computed at test time
by the real peer (MONAI, nnunetv2), so nothing large is committed. Weights are random (seeded),
norm affines randomised too; the input is a real CT crop of
$VOXPIPE_DATA/totalseg/example_ct_sm.nii.gz (i16 HU, 3 mm), normalised here (the programs run with
--no-preprocess).

  fullsize_parity.py segresnet-make DIR
      DIR/ckpt.pt      monai.networks.nets.SegResNet(init_filters 32, blocks_down 1,2,2,4,
                       blocks_up 1,1,1, GroupNorm(8), 1 -> 26 channels = background + 25 spine
                       classes), state_dict under 'model' (tools/convert_monai.py converts it)
      DIR/labels.json  the 25 class names
      DIR/in.vxp       case 'ct': 'image' = the crop x 40..104, y 30..94, all 30 slices (64 x 64 x 30),
                       MONAI Label's ScaleIntensityRange(-175, 250 -> 0, 1, clip), f32, the crop's affine
      DIR/ref.npy      MONAI's logits (26, 64, 64, 30), f32: sliding_window_inference(roi 48,48,32,
                       sw_batch_size 1, overlap 0.4, mode gaussian, sigma_scale 0.125, constant
                       padding): 2 x 2 windows, z padded 30 -> 32
  fullsize_parity.py segresnet-check DIR OUT.vxp
      'prob' (f16, written by --prob) against softmax(ref) in f64: |prob - softmax| <= 1e-4 plus
      the f16 rounding of the value (half an f16 ulp); prints the max abs difference, the max
      difference in f16 ulps and how many voxel-classes differ from softmax(ref) rounded to f16.
      'label' = argmax(ref) except where MONAI's top two logits are within 2e-4 (near-ties,
      counted; an exact tie is 0 apart); at least 10 classes present (a degenerate net would
      make the label comparison weak).
  fullsize_parity.py unet-make DIR
      DIR/results/     an nnU-Net v2 trainer folder (plans.json, dataset.json,
                       fold_0/checkpoint_final.pth) for dynamic_network_architectures'
                       PlainConvUNet at TotalSegmentator width: 6 stages, features
                       32,64,128,256,320,320, kernels 3, strides 1,2,2,2,2,2, 2 convs per stage
                       (encoder and decoder), InstanceNorm3d affine, LeakyReLU, 26 classes,
                       patch 64 x 64 x 64 (z, y, x); checkpoint with the full state_dict
                       (duplicate aliases included: the converter drops them)
      DIR/in.vxp       case 'ct': 'image' = the crop x 24..120, y 30..94, all 30 slices, linearly
                       upsampled along z to 64 slices (96 x 64 x 64 voxels, (z, y, x) 64 x 64 x 96:
                       a multiple of 32 on every axis, 2 tiles along x), nnU-Net CTNormalization
                       with the plans' intensity properties (computed from the crop), f32
      DIR/ref.npy      nnunetv2's own logits: nnUNetPredictor.initialize_from_trained_model_folder
                       (fold 0) + predict_sliding_window_return_logits (step 0.5, Gaussian, no
                       mirroring, CPU: f16 aggregation), (26, z, y, x), f16
  fullsize_parity.py unet-check DIR OUT.vxp
      infer-unet writes labels only: 'label' = argmax(ref), except that a voxel may differ where
      voxpipe's class is within 2 f16 ulps (of the maximum) of nnU-Net's maximum logit: ties of
      the f16 aggregation (exact ties and those within 2 ulps are counted); prints the largest
      deficit of voxpipe's class in nnU-Net's logits; at least 10 classes present.
  fullsize_parity.py perturb IN.safetensors OUT.safetensors TENSOR EPS [INDEX]
      copy a model file with one element (flat INDEX, default 0) of the F32 tensor TENSOR increased
      by EPS: fullsize.bats shows with it that each check fails on a slightly wrong network
The peers run with $FULLSIZE_THREADS torch threads (default 2).
Needs: torch, monai, nnunetv2 (dynamic_network_architectures), nibabel, numpy, msgpack (the check
and perturb commands only numpy and msgpack: torch is imported where it is used).
"""
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import vxp  # noqa: E402

DATA = os.environ.get("VOXPIPE_DATA", os.path.join(HERE, "..", "..", "..", "shared", "data"))
THREADS = int(os.environ.get("FULLSIZE_THREADS", "2"))
SPINE = ([f"vertebrae_C{i}" for i in range(1, 8)] + [f"vertebrae_T{i}" for i in range(1, 13)]
         + [f"vertebrae_L{i}" for i in range(1, 6)] + ["sacrum"])
K = 1 + len(SPINE)  # 26
SEG_ROI, SEG_OVERLAP = (48, 48, 32), 0.4
UNET_PATCH = [64, 64, 64]


def ct_crop(box):
    import nibabel as nib
    ct = nib.load(os.path.join(DATA, "totalseg", "example_ct_sm.nii.gz"))
    a = np.asarray(ct.dataobj)[box].astype(np.float32)
    aff = ct.affine.copy()
    aff[:3, 3] = ct.affine[:3, :3] @ np.array([b.start for b in box]) + ct.affine[:3, 3]
    return a, aff


def write_case(path, img, aff):
    with open(path, "wb") as f:
        vxp.write(f, [{"id": "ct", "vols": {"image": vxp.Vol(img.astype(np.float32), aff)}, "meta": {}}])


def read_case(path):
    (c,) = list(vxp.read(open(path, "rb")))
    return c


def randomise(net, norm_key, seed):
    """Seeded weights; norm affines and biases away from their 1 / 0 defaults."""
    import torch
    torch.manual_seed(seed)
    with torch.no_grad():
        for k, p in net.named_parameters():
            if norm_key(k):
                p.copy_((1 + 0.3 * torch.randn_like(p)) if k.endswith("weight") else 0.2 * torch.randn_like(p))
            elif k.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
    return net.eval()


# ---------------------------------------------------------------- SegResNet / MONAI
def segresnet_make(d):
    import torch
    from monai.inferers import sliding_window_inference
    from monai.networks.nets import SegResNet
    from monai.transforms import ScaleIntensityRange
    torch.set_num_threads(THREADS)
    os.makedirs(d, exist_ok=True)
    torch.manual_seed(32)
    net = SegResNet(spatial_dims=3, init_filters=32, in_channels=1, out_channels=K, blocks_down=(1, 2, 2, 4),
                    blocks_up=(1, 1, 1), upsample_mode="nontrainable", norm=("GROUP", {"num_groups": 8}))
    net = randomise(net, lambda k: "norm" in k or k.startswith("conv_final.0"), 33)
    torch.save({"epoch": 1, "model": net.state_dict()}, os.path.join(d, "ckpt.pt"))
    json.dump({str(i + 1): n for i, n in enumerate(SPINE)}, open(os.path.join(d, "labels.json"), "w"))
    a, aff = ct_crop((slice(40, 104), slice(30, 94), slice(0, 30)))
    x = ScaleIntensityRange(a_min=-175, a_max=250, b_min=0.0, b_max=1.0, clip=True)(torch.from_numpy(a))
    x = torch.as_tensor(x).float()
    write_case(os.path.join(d, "in.vxp"), x.numpy(), aff)
    t = time.time()
    with torch.no_grad():
        y = sliding_window_inference(x[None, None], SEG_ROI, 1, net, overlap=SEG_OVERLAP, mode="gaussian",
                                     sigma_scale=0.125, padding_mode="constant", cval=0.0)
    y = torch.as_tensor(y)[0].float().numpy()
    np.save(os.path.join(d, "ref.npy"), y)
    print(f"MONAI sliding_window_inference: {x.shape[0]}x{x.shape[1]}x{x.shape[2]} roi "
          f"{','.join(map(str, SEG_ROI))} overlap {SEG_OVERLAP}: {time.time() - t:.1f} s ({THREADS} threads); "
          f"{sum(p.numel() for p in net.parameters())} parameters")


def f16_ulp(v):
    """The spacing of f16 values at |v| (normal range; subnormals 2^-24)."""
    v = np.abs(np.asarray(v, dtype=np.float64))
    e = np.floor(np.log2(np.maximum(v, 2.0 ** -14)))
    return 2.0 ** (e - 10)


def segresnet_check(d, out):
    y = np.load(os.path.join(d, "ref.npy")).astype(np.float64)  # (K, X, Y, Z)
    c = read_case(out)
    lab, prob = c["vols"]["label"].data, c["vols"]["prob"].data
    ok = True
    assert lab.shape == y.shape[1:] and prob.shape == y.shape[1:] + (K,), (lab.shape, prob.shape, y.shape)
    assert prob.dtype == np.float16, prob.dtype
    e = np.exp(y - y.max(0))
    sm = np.moveaxis(e / e.sum(0), 0, -1)  # (X, Y, Z, K), f64
    p = prob.astype(np.float64)
    diff = np.abs(p - sm)
    bound = 1e-4 + 0.5 * f16_ulp(sm)
    ulps = np.abs(p - sm.astype(np.float16).astype(np.float64)) / f16_ulp(sm)
    print(f"prob: max abs diff to MONAI's softmax {diff.max():.3g} (f16 output; half an f16 ulp at 1 is 2.4e-4), "
          f"max excess over the f16 rounding {max(0.0, (diff - 0.5 * f16_ulp(sm)).max()):.3g}; "
          f"{int((ulps > 0).sum())} of {ulps.size} values differ from softmax(MONAI) rounded to f16, "
          f"by at most {ulps.max():.0f} ulp")
    if (diff > bound).any():
        i = np.unravel_index(np.argmax(diff - bound), diff.shape)
        print(f"FAIL: {int((diff > bound).sum())} probabilities beyond 1e-4 + f16 rounding; worst at {i}: "
              f"{p[i]} vs {sm[i]}")
        ok = False
    want = y.argmax(0)
    srt = np.sort(y, 0)
    gap = srt[-1] - srt[-2]
    tie, exact = gap <= 2e-4, gap == 0
    differ = lab != want
    bad = differ & ~tie
    classes = np.unique(want)
    print(f"labels: {want.size} voxels, {int(differ.sum())} differ from MONAI's argmax, {int(bad.sum())} of them "
          f"outside near-ties; near-ties (top two logits within 2e-4) {int(tie.sum())}, exact ties {int(exact.sum())}; "
          f"{len(classes)} classes present; logits range {y.min():.3g}..{y.max():.3g}")
    if bad.any():
        print("FAIL: labels differ outside near-ties")
        ok = False
    if len(classes) < 10:
        print("FAIL: degenerate reference (fewer than 10 classes)")
        ok = False
    return 0 if ok else 1


# ---------------------------------------------------------------- PlainConvUNet / nnU-Net
KW = {"n_stages": 6, "features_per_stage": [32, 64, 128, 256, 320, 320], "conv_op": "torch.nn.modules.conv.Conv3d",
      "kernel_sizes": [[3, 3, 3]] * 6, "strides": [[1, 1, 1]] + [[2, 2, 2]] * 5,
      "n_conv_per_stage": [2] * 6, "n_conv_per_stage_decoder": [2] * 5, "conv_bias": True,
      "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d", "norm_op_kwargs": {"eps": 1e-05, "affine": True},
      "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}}
REQ = ["conv_op", "norm_op", "dropout_op", "nonlin"]


def unet_net():
    import pydoc
    import torch
    from dynamic_network_architectures.architectures.unet import PlainConvUNet
    kw = dict(KW)
    for k in REQ:
        kw[k] = pydoc.locate(kw[k]) if kw[k] else None
    torch.manual_seed(64)
    net = PlainConvUNet(1, num_classes=K, deep_supervision=False, **kw)
    return randomise(net, lambda k: ".norm." in k, 65)


def unet_make(d):
    import torch
    torch.set_num_threads(THREADS)
    os.makedirs(d, exist_ok=True)
    a, aff = ct_crop((slice(24, 120), slice(30, 94), slice(0, 30)))  # x, y, z: 96 x 64 x 30
    # z 30 -> 64 slices, linear (align-corners grid): a real CT crop on a 64-slice grid
    zi = np.linspace(0, a.shape[2] - 1, 64)
    z0 = np.minimum(np.floor(zi).astype(int), a.shape[2] - 2)
    w = (zi - z0).astype(np.float32)
    a = a[:, :, z0] * (1 - w) + a[:, :, z0 + 1] * w
    aff[:3, 2] *= (30 - 1) / (64 - 1)
    v = a.astype(np.float64).ravel()
    v = v[v > -500]  # "foreground": body
    props = {"mean": float(v.mean()), "std": float(v.std()), "percentile_00_5": float(np.percentile(v, 0.5)),
             "percentile_99_5": float(np.percentile(v, 99.5)), "min": float(v.min()), "max": float(v.max()),
             "median": float(np.median(v))}
    img = (np.clip(a, props["percentile_00_5"], props["percentile_99_5"]) - props["mean"]) / max(props["std"], 1e-8)
    img = img.astype(np.float32)
    write_case(os.path.join(d, "in.vxp"), img, aff)

    spacing = [float(x) for x in np.sqrt((aff[:3, :3] ** 2).sum(0))[::-1]]  # z, y, x
    conf = {"data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor",
            "batch_size": 2, "patch_size": UNET_PATCH, "median_image_size_in_voxels": [64, 64, 96],
            "spacing": spacing, "normalization_schemes": ["CTNormalization"], "use_mask_for_norm": [False],
            "resampling_fn_data": "resample_data_or_seg_to_shape",
            "resampling_fn_seg": "resample_data_or_seg_to_shape",
            "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
            "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
            "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
            "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0,
                                                   "force_separate_z": None},
            "architecture": {"network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                             "arch_kwargs": KW, "_kw_requires_import": REQ},
            "batch_dice": False}
    plans = {"dataset_name": "Dataset996_FullSize", "plans_name": "nnUNetPlans",
             "original_median_spacing_after_transp": spacing, "original_median_shape_after_transp": [64, 64, 96],
             "image_reader_writer": "SimpleITKIO", "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
             "configurations": {"3d_fullres": conf}, "experiment_planner_used": "ExperimentPlanner",
             "label_manager": "LabelManager", "foreground_intensity_properties_per_channel": {"0": props}}
    labels = {"background": 0, **{n: i + 1 for i, n in enumerate(SPINE)}}
    res = os.path.join(d, "results")
    os.makedirs(os.path.join(res, "fold_0"), exist_ok=True)
    json.dump(plans, open(os.path.join(res, "plans.json"), "w"), indent=1)
    json.dump({"channel_names": {"0": "CT"}, "labels": labels, "numTraining": 1, "file_ending": ".nii.gz"},
              open(os.path.join(res, "dataset.json"), "w"))
    net = unet_net()
    torch.save({"network_weights": net.state_dict(), "trainer_name": "nnUNetTrainer",
                "inference_allowed_mirroring_axes": (0, 1, 2),
                "init_args": {"plans": plans, "configuration": "3d_fullres", "fold": 0, "dataset_json": {}}},
               os.path.join(res, "fold_0", "checkpoint_final.pth"))

    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    pred = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False, perform_everything_on_device=False,
                           device=torch.device("cpu"), verbose=False, verbose_preprocessing=False, allow_tqdm=False)
    pred.initialize_from_trained_model_folder(res, use_folds=(0,), checkpoint_name="checkpoint_final.pth")
    torch.set_num_threads(THREADS)  # the predictor may change it
    x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 1, 0)))[None]  # (1, z, y, x)
    t = time.time()
    y = pred.predict_sliding_window_return_logits(x)
    assert y.dtype == torch.half, y.dtype
    np.save(os.path.join(d, "ref.npy"), y.numpy())
    print(f"nnunetv2 predict_sliding_window_return_logits: (z,y,x) {tuple(x.shape[1:])} patch {UNET_PATCH}: "
          f"{time.time() - t:.1f} s ({THREADS} threads); {sum(p.numel() for p in net.parameters())} parameters")


def unet_check(d, out):
    lg = np.load(os.path.join(d, "ref.npy")).astype(np.float64)  # (K, z, y, x), f16 values
    c = read_case(out)
    lab = c["vols"]["label"].data.transpose(2, 1, 0).astype(np.int64)
    assert lab.shape == lg.shape[1:], (lab.shape, lg.shape)
    assert np.allclose(c["vols"]["label"].affine, c["vols"]["image"].affine)
    want = lg.argmax(0)
    srt = np.sort(lg, 0)
    gap = srt[-1] - srt[-2]
    tol = 2 * f16_ulp(srt[-1])
    tie, exact = gap <= tol, gap == 0
    differ = lab != want
    got_v = np.take_along_axis(lg, lab[None], 0)[0]
    deficit = (srt[-1] - got_v)  # 0 where voxpipe's class is nnU-Net's maximum (or equal to it)
    bad = differ & (deficit > tol)
    classes = np.unique(want)
    print(f"labels: {want.size} voxels, {int(differ.sum())} differ from nnU-Net's argmax, {int(bad.sum())} of them "
          f"outside f16 ties; exact ties {int(exact.sum())}, within 2 f16 ulps {int(tie.sum())}; largest logit "
          f"deficit of voxpipe's class in nnU-Net's logits {deficit.max():.3g}; {len(classes)} classes present; "
          f"logits range {lg.min():.3g}..{lg.max():.3g}")
    ok = True
    if bad.any():
        print("FAIL: labels differ outside f16 ties")
        ok = False
    if len(classes) < 10:
        print("FAIL: degenerate reference (fewer than 10 classes)")
        ok = False
    return 0 if ok else 1


def perturb(src, dst, name, eps, index=0):
    import struct
    b = bytearray(open(src, "rb").read())
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    t = h[name]
    assert t["dtype"] == "F32", t["dtype"]
    o = 8 + n + t["data_offsets"][0] + 4 * int(index)
    assert o + 4 <= 8 + n + t["data_offsets"][1], "index out of range"
    v = struct.unpack("<f", b[o:o + 4])[0]
    b[o:o + 4] = struct.pack("<f", v + float(eps))
    open(dst, "wb").write(bytes(b))
    print(f"{name}[{index}]: {v} -> {v + float(eps)}")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "segresnet-make":
        segresnet_make(sys.argv[2])
    elif cmd == "segresnet-check":
        sys.exit(segresnet_check(sys.argv[2], sys.argv[3]))
    elif cmd == "unet-make":
        unet_make(sys.argv[2])
    elif cmd == "unet-check":
        sys.exit(unet_check(sys.argv[2], sys.argv[3]))
    elif cmd == "perturb":
        perturb(*sys.argv[2:7])
    else:
        sys.exit(f"unknown command {cmd}")
