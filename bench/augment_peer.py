#!/usr/bin/env python3
"""augment_peer.py - voxpipe `augment` vs batchgeneratorsv2 (nnU-Net v2's chain), side by side.

usage: augment_peer.py AUGMENT_BIN OUT_DIR THREADS

Input (made once, deterministically, under OUT_DIR): a 160^3 int16 CT-like volume (smoothed seeded
noise + spheres) with a uint8 label of 6 classes, as nnU-Net's data loader hands SpatialTransform a
patch larger than the 128^3 it cuts out. Two comparisons, medians over interleaved rounds:
  all      every transform applied with fixed values (rotation, scaling, noise, blur, brightness,
           contrast, low-res, both gammas, mirroring), one case -> a 128^3 patch
  defaults nnU-Net's default probabilities: voxpipe over a stream of 6 cases, the peer
           nnUNetTrainer.get_training_transforms(...) called 6 times; time per case
voxpipe: the whole process (stream file in, stream to /dev/null), --threads THREADS.
peer: in-process, compute only, torch.set_num_threads(THREADS).
Differences that favour the peer are left in: its label path interpolates one-hot (bilinear with
nearest tie-break; voxpipe: nearest), voxpipe also reads and writes the stream.
"""
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "scripts"))
import vxp  # noqa: E402

AUG, OUT, THREADS = sys.argv[1], sys.argv[2], int(sys.argv[3])
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
N = 160
P = (128, 128, 128)
NCASES = 6
ROT, SCALE = (0.3, -0.2, 0.25), 1.15
FIXED = ("rotation=0.3,-0.2,0.25;scaling=1.15;noise=0.05;blur=0.8;brightness=1.1;contrast=0.9;lowres=0.7;"
         "gamma_inv=1.2;gamma=0.8;flip=1,0,1")
torch.set_num_threads(THREADS)


def make_input():
    path = os.path.join(OUT, "aug_in.vxp")
    many = os.path.join(OUT, "aug_in8.vxp")
    if os.path.exists(path) and os.path.exists(many):
        return path, many
    from scipy import ndimage as ndi
    rng = np.random.default_rng(2024)
    img = ndi.gaussian_filter(rng.normal(0, 1, (N, N, N)), 3) * 3000
    lab = np.zeros((N, N, N), np.uint8)
    g = np.mgrid[0:N, 0:N, 0:N]
    for k in range(1, 6):
        c = rng.uniform(30, 130, 3)
        r = rng.uniform(10, 25)
        m = ((g - c[:, None, None, None]) ** 2).sum(0) < r * r
        lab[m] = k
        img[m] += 200 * k
    img = np.clip(img, -1024, 2000).astype(np.int16)
    aff = np.diag([1.5, 1.5, 1.5, 1.0])
    vol = {"image": vxp.Vol(img, aff), "label": vxp.Vol(lab, aff)}
    with open(path, "wb") as f:
        vxp.write(f, [{"id": "bench", "vols": vol, "meta": {}}])
    with open(many, "wb") as f:
        vxp.write(f, [{"id": "bench%d" % i, "vols": vol, "meta": {}} for i in range(NCASES)])
    return path, many


def peer_all():
    from batchgeneratorsv2.transforms.intensity.brightness import MultiplicativeBrightnessTransform
    from batchgeneratorsv2.transforms.intensity.contrast import ContrastTransform
    from batchgeneratorsv2.transforms.intensity.gamma import GammaTransform
    from batchgeneratorsv2.transforms.intensity.gaussian_noise import GaussianNoiseTransform
    from batchgeneratorsv2.transforms.noise.gaussian_blur import GaussianBlurTransform
    from batchgeneratorsv2.transforms.spatial.low_resolution import SimulateLowResolutionTransform
    from batchgeneratorsv2.transforms.spatial.mirroring import MirrorTransform
    from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform
    from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms
    from batchgeneratorsv2.transforms.utils.remove_label import RemoveLabelTansform

    def angle(image, dim):  # sample_scalar calls it per axis
        return ROT[dim]

    return ComposeTransforms([
        SpatialTransform(P, patch_center_dist_from_border=0, random_crop=False, p_elastic_deform=0, p_rotation=1,
                         rotation=angle, p_scaling=1, scaling=SCALE, p_synchronize_scaling_across_axes=1,
                         bg_style_seg_sampling=False, border_mode_seg="constant", padding_value_seg=-1),
        GaussianNoiseTransform(noise_variance=0.05, p_per_channel=1, synchronize_channels=True),
        GaussianBlurTransform(blur_sigma=0.8, synchronize_channels=False, synchronize_axes=False, p_per_channel=1,
                              benchmark=True),
        MultiplicativeBrightnessTransform(multiplier_range=1.1, synchronize_channels=False, p_per_channel=1),
        ContrastTransform(contrast_range=0.9, preserve_range=True, synchronize_channels=False, p_per_channel=1),
        SimulateLowResolutionTransform(scale=0.7, synchronize_channels=False, synchronize_axes=True, ignore_axes=None,
                                       allowed_channels=None, p_per_channel=1),
        GammaTransform(gamma=1.2, p_invert_image=1, synchronize_channels=False, p_per_channel=1, p_retain_stats=1),
        GammaTransform(gamma=0.8, p_invert_image=0, synchronize_channels=False, p_per_channel=1, p_retain_stats=1),
        MirrorTransform(allowed_axes=(0, 2)),
        RemoveLabelTansform(-1, 0),
    ])


def peer_defaults():
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    return nnUNetTrainer.get_training_transforms(P, (-30. / 360 * 2. * np.pi, 30. / 360 * 2. * np.pi), None,
                                                 (0, 1, 2), False)


def main():
    path, many = make_input()
    c = next(vxp.read(open(path, "rb")))
    img = torch.from_numpy(c["vols"]["image"].data.astype(np.float32)[None].copy())
    seg = torch.from_numpy(c["vols"]["label"].data.astype(np.int16)[None].copy())
    t_all, t_def = peer_all(), peer_defaults()
    np.random.seed(0)
    torch.manual_seed(0)

    def run_peer(tr, n):
        t0 = time.perf_counter()
        for _ in range(n):
            out = tr(image=img.clone(), segmentation=seg.clone())
            assert tuple(out["image"].shape[1:]) == P
        return (time.perf_counter() - t0) / n

    def run_vp(args, src, n):
        t0 = time.perf_counter()
        subprocess.run([AUG, "--threads", str(THREADS), "--patch", "128,128,128", "-i", src, "-o", "/dev/null"] + args,
                       check=True)
        return (time.perf_counter() - t0) / n

    run_peer(t_all, 1)  # warm-up (the blur benchmark picks its convolution here)
    run_peer(t_def, 2)
    res = {k: [] for k in ("vp_all", "peer_all", "vp_def", "peer_def")}
    for r in range(ROUNDS):
        order = [("vp_all", lambda: run_vp(["--fixed", FIXED, "--seed", str(r)], path, 1)),
                 ("peer_all", lambda: run_peer(t_all, 1)),
                 ("vp_def", lambda: run_vp(["--seed", str(r)], many, NCASES)),
                 ("peer_def", lambda: run_peer(t_def, NCASES))]
        k = r % len(order)
        for name, fn in order[k:] + order[:k]:
            res[name].append(fn())
    med = {k: statistics.median(v) for k, v in res.items()}
    print("%-44s %12s %12s %8s" % ("augment, 160^3 int16 + label -> 128^3 patch", "voxpipe s", "peer s", "ratio"))
    print("%-44s %12.3f %12.3f %7.2fx" % ("every transform applied (fixed values)", med["vp_all"], med["peer_all"],
                                          med["peer_all"] / med["vp_all"]))
    print("%-44s %12.3f %12.3f %7.2fx" % ("nnU-Net default probabilities, per case", med["vp_def"], med["peer_def"],
                                          med["peer_def"] / med["vp_def"]))
    print("medians of %d interleaved rounds; threads %d; min/max voxpipe all %.3f/%.3f, peer all %.3f/%.3f"
          % (ROUNDS, THREADS, min(res["vp_all"]), max(res["vp_all"]), min(res["peer_all"]), max(res["peer_all"])))
    print("peer: batchgeneratorsv2 (SpatialTransform ... MirrorTransform) and nnunetv2 "
          "nnUNetTrainer.get_training_transforms, torch %s" % torch.__version__)


if __name__ == "__main__":
    main()
