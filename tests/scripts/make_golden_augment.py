#!/usr/bin/env python3
"""make_golden_augment.py - golden files for `augment`, computed by the peers on a real CT crop.

usage: make_golden_augment.py [DATA_DIR]     (default ../shared/data; writes tests/golden/augment/)

Input: ct.vxp, one case "ct" with image (int16) and label (uint8, TotalSegmentator v2 ids): the
crop [40:76, 36:72, 6:24] of totalseg/example_ct_sm.nii.gz and example_seg.nii.gz (3 mm), its
affine nibabel's get_best_affine() shifted to the crop (what vol-read + crop would give).

Peers, each on parameters fixed with `augment --fixed` (cases.tsv: name, augment arguments):
  spatial      batchgeneratorsv2 create_affine_matrix_3d(angles, scales) = M; output voxel o samples
               input index M (o - (P-1)/2) + centre with scipy.ndimage.map_coordinates: the image at
               order 1 (or 3) with mode='grid-constant', cval=0 (torch grid_sample's zeros padding),
               the label at order 0, same mode (nnU-Net's -1 padding becomes 0). 'ties' marks output
               voxels whose label coordinate lies within 1e-9 of a rounding boundary (left out).
  flips        numpy.flip of the arrays.
  intensity    batchgeneratorsv2's own transforms (_apply_to_image with the parameters given):
               MultiplicativeBrightnessTransform, ContrastTransform(preserve_range=True),
               GammaTransform(p_retain_stats=1, inverted or not), GaussianBlurTransform (torch
               kernel, reflect padding), SimulateLowResolutionTransform (nearest-exact down,
               trilinear up), on the image as float32 (torch, 1 thread).
  combo        the spatial peer, then brightness and gamma by batchgeneratorsv2, then numpy.flip:
               nnU-Net's order.
Each case's npz holds the expected image (f32) [and label], with rtol/atol for the image.

nnunet_defaults.json: the probabilities of nnunetv2's own chain, read from the transform objects
nnUNetTrainer.get_training_transforms builds for a 3d_fullres patch (SpatialTransform p_rotation,
p_scaling, p_elastic_deform; each RandomTransform's apply_probability and p_per_channel);
MirrorTransform draws each axis with a hard-coded torch.rand(1) < 0.5.
"""
import json
import os
import sys

import nibabel as nib
import numpy as np
import torch
from scipy import ndimage as ndi

from batchgeneratorsv2.transforms.intensity.brightness import MultiplicativeBrightnessTransform
from batchgeneratorsv2.transforms.intensity.contrast import ContrastTransform
from batchgeneratorsv2.transforms.intensity.gamma import GammaTransform
from batchgeneratorsv2.transforms.noise.gaussian_blur import GaussianBlurTransform
from batchgeneratorsv2.transforms.spatial.low_resolution import SimulateLowResolutionTransform
from batchgeneratorsv2.transforms.spatial.spatial import create_affine_matrix_3d

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import vxp  # noqa: E402

OUT = os.path.join(HERE, "..", "golden", "augment")
CROP = (slice(40, 76), slice(36, 72), slice(6, 24))
torch.set_num_threads(1)


def load(data):
    ts = os.path.join(data, "totalseg")
    ct = nib.load(os.path.join(ts, "example_ct_sm.nii.gz"))
    seg = nib.load(os.path.join(ts, "example_seg.nii.gz"))
    img = np.asarray(ct.dataobj).astype(np.int16)[CROP]
    lab = np.asarray(seg.dataobj).astype(np.uint8)[CROP]
    aff = ct.header.get_best_affine().copy()
    off = np.array([s.start for s in CROP] + [1.0])
    aff[:3, 3] = (aff @ off)[:3]
    return img, lab, aff


def spatial(img, lab, angles, scales, centre, patch, order):
    m = create_affine_matrix_3d(angles, scales)
    o = np.stack(np.meshgrid(*[np.arange(p, dtype=np.float64) for p in patch], indexing="ij"))
    g = o - ((np.array(patch, dtype=np.float64) - 1) / 2)[:, None, None, None]
    c = np.einsum("ij,j...->i...", m, g) + np.asarray(centre, dtype=np.float64)[:, None, None, None]
    im = ndi.map_coordinates(img.astype(np.float64), c, order=order, mode="grid-constant", cval=0.0)
    lb = ndi.map_coordinates(lab, c, order=0, mode="grid-constant", cval=0)
    frac = np.abs(c - np.floor(c) - 0.5)
    ties = np.any(frac < 1e-9, axis=0)
    T = np.eye(4)
    T[:3, :3] = m
    T[:3, 3] = np.asarray(centre, dtype=np.float64) - m @ ((np.array(patch, dtype=np.float64) - 1) / 2)
    return im.astype(np.float32), lb, ties, T


def t(x):
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)[None].copy())


def brightness(x, m):
    tr = MultiplicativeBrightnessTransform((1, 1), False, 1)
    return tr._apply_to_image(t(x), apply_to_channel=torch.tensor([0]), multipliers=torch.tensor([m]))[0].numpy()


def contrast(x, m):
    tr = ContrastTransform((1, 1), True, False, 1)
    return tr._apply_to_image(t(x), apply_to_channel=torch.tensor([0]), multipliers=torch.tensor([m]))[0].numpy()


def gamma(x, g, inv):
    tr = GammaTransform((1, 1), float(inv), False, 1, 1)
    return tr._apply_to_image(t(x), apply_to_channel=torch.tensor([0]), retain_stats=torch.tensor([True]),
                              invert_image=torch.tensor([bool(inv)]), gamma=torch.tensor([g]))[0].numpy()


def blur(x, sig):
    tr = GaussianBlurTransform((1, 1), False, False, 1, benchmark=False)
    return tr._apply_to_image(t(x), apply_to_channel=torch.tensor([True]), sigmas=[list(sig)])[0].numpy()


def lowres(x, s):
    tr = SimulateLowResolutionTransform((1, 1), False, True, None)
    return tr._apply_to_image(t(x), apply_to_channel=torch.tensor([0]), scales=torch.tensor([[s, s, s]]))[0].numpy()


def write_defaults():
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    chain = nnUNetTrainer.get_training_transforms((128, 128, 128), (-30. / 360 * 2. * np.pi, 30. / 360 * 2. * np.pi),
                                                  None, (0, 1, 2), False).transforms
    names = {"GaussianNoiseTransform": "noise", "GaussianBlurTransform": "blur",
             "MultiplicativeBrightnessTransform": "brightness", "ContrastTransform": "contrast",
             "SimulateLowResolutionTransform": "lowres"}
    p = {}
    for tr in chain:
        kind = type(tr).__name__
        if kind == "SpatialTransform":
            p.update(rotation=tr.p_rotation, scaling=tr.p_scaling, elastic=tr.p_elastic_deform)
        elif kind == "RandomTransform":
            inner = tr.transform
            k = type(inner).__name__
            if k == "GammaTransform":
                k = "gamma_inv" if inner.p_invert_image == 1 else "gamma"
            else:
                k = names[k]
            p[k] = tr.apply_probability
            if inner.p_per_channel != 1:
                p[k + "_channel"] = inner.p_per_channel
        elif kind == "MirrorTransform":
            assert tuple(tr.allowed_axes) == (0, 1, 2)
            p["flip"] = 0.5
    with open(os.path.join(OUT, "nnunet_defaults.json"), "w") as f:
        json.dump(p, f, indent=1, sort_keys=True)


def main():
    data = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "..", "shared", "data")
    os.makedirs(OUT, exist_ok=True)
    img, lab, aff = load(data)
    with open(os.path.join(OUT, "ct.vxp"), "wb") as f:
        vxp.write(f, [{"id": "ct", "vols": {"image": vxp.Vol(img, aff), "label": vxp.Vol(lab, aff)}, "meta": {}}])
    cases = []

    def save(name, args, image, label=None, ties=None, rtol=1e-5, atol=1e-3, T=None):
        d = {"image": image.astype(np.float32), "rtol": rtol, "atol": atol}
        if T is not None:
            d["affine"] = aff @ T  # the sampled grid in world space
        if label is not None:
            d["label"] = label
            d["ties"] = ties
        np.savez_compressed(os.path.join(OUT, name + ".npz"), **d)
        cases.append((name, args))

    f32 = img.astype(np.float32)
    # spatial: rotation + scaling about a centre off the voxel grid, linear and cubic
    rot, sc, ctr, patch = (0.3, -0.2, 0.25), (1.15,) * 3, (17.25, 18.5, 8.75), (28, 28, 14)
    spec = "rotation=%g,%g,%g;scaling=%g;centre=%g,%g,%g" % (*rot, sc[0], *ctr)
    for order in (1, 3):
        im, lb, ties, T = spatial(img, lab, rot, sc, ctr, patch, order)
        save("rot_scale_o%d" % order, "--fixed '%s' --patch 28,28,14 --order %d" % (spec, order), im, lb, ties,
             atol=2e-3 if order == 1 else 5e-3, T=T)
    # anisotropic scaling only (the axis-aligned path), patch reaching outside the input
    sc2, ctr2 = (0.8, 1.25, 1.0), (4.0, 30.5, 3.25)
    im, lb, ties, T = spatial(img, lab, (0, 0, 0), sc2, ctr2, patch, 1)
    save("scale_edge", "--fixed 'scaling=0.8,1.25,1;centre=4,30.5,3.25' --patch 28,28,14", im, lb, ties, T=T)
    # a rotation about one axis only, whole volume
    im, lb, ties, T = spatial(img, lab, (0, 0, 0.5), (1, 1, 1), [(n - 1) / 2 for n in img.shape], img.shape, 1)
    save("rot_z_whole", "--fixed 'rotation=0,0,0.5'", im, lb, ties, T=T)
    # flips (no interpolation): exact; flipping axis a maps o to n-1-o
    F = np.diag([-1.0, 1.0, -1.0, 1.0])
    F[0, 3], F[2, 3] = img.shape[0] - 1, img.shape[2] - 1
    save("flip", "--fixed 'flip=1,0,1'", np.flip(f32, (0, 2)), np.flip(lab, (0, 2)),
         np.zeros(img.shape, bool), rtol=0, atol=0, T=F)
    # intensity, each alone on the whole volume
    save("brightness", "--fixed 'brightness=1.13'", brightness(f32, 1.13), rtol=1e-6, atol=1e-4)
    save("contrast_lo", "--fixed 'contrast=0.8'", contrast(f32, 0.8))
    save("contrast_hi", "--fixed 'contrast=1.2'", contrast(f32, 1.2))
    save("gamma", "--fixed 'gamma=0.8'", gamma(f32, 0.8, False), atol=5e-3)
    save("gamma_inv", "--fixed 'gamma_inv=1.3'", gamma(f32, 1.3, True), atol=5e-3)
    save("blur", "--fixed 'blur=0.6,0.8,1.0'", blur(f32, (0.6, 0.8, 1.0)))
    save("lowres", "--fixed 'lowres=0.6'", lowres(f32, 0.6))
    save("lowres_77", "--fixed 'lowres=0.77'", lowres(f32, 0.77))
    # the chain in nnU-Net's order: spatial, brightness, gamma, mirror
    im, lb, ties, _ = spatial(img, lab, rot, sc, ctr, patch, 1)
    im = gamma(brightness(im, 0.9), 1.2, False)
    save("combo", "--fixed '%s;brightness=0.9;gamma=1.2;flip=0,1,0' --patch 28,28,14" % spec,
         np.flip(im, 1), np.flip(lb, 1), np.flip(ties, 1), atol=5e-3)
    write_defaults()
    with open(os.path.join(OUT, "cases.tsv"), "w") as f:
        for name, args in cases:
            f.write("%s\t%s\n" % (name, args))
    print("wrote %d cases to %s" % (len(cases), OUT))


if __name__ == "__main__":
    main()
