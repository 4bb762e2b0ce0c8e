#!/usr/bin/env python3
"""Make the deterministic 512x512x400 int16 benchmark volume from the real CT.

usage: gen_volume.py SRC.nii.gz OUTDIR

Upsamples SRC (example_ct_sm.nii.gz, 122x101x30 at 3 mm) to 512x512x400 by separable
linear interpolation (corner-aligned), adds seeded Gaussian noise (sigma 20 HU, numpy
default_rng(20240601)) so gzip sees realistic entropy, rounds to int16 and writes
OUTDIR/ct512.nii and OUTDIR/ct512.nii.gz (nibabel, default gzip level), plus
OUTDIR/ct_sm.nii, an uncompressed copy of SRC. Files are written
to a temporary name and renamed, so an interrupted run never leaves a half file that a
later run would reuse. Existing files are kept.
"""
import os
import sys

import nibabel as nib
import numpy as np

SHAPE = (512, 512, 400)
SEED = 20240601
SIGMA = 20.0


def upsample_axis(a, axis, n):
    src = a.shape[axis]
    x = np.linspace(0.0, src - 1.0, n, dtype=np.float64)
    i0 = np.floor(x).astype(np.intp)
    i0 = np.minimum(i0, src - 2)
    f = (x - i0).astype(np.float32)
    shp = [1] * a.ndim
    shp[axis] = n
    f = f.reshape(shp)
    lo = np.take(a, i0, axis=axis)
    hi = np.take(a, i0 + 1, axis=axis)
    return lo * (1 - f) + hi * f


def make(src_path):
    img = nib.load(src_path)
    a = np.asanyarray(img.dataobj).astype(np.float32)
    for ax in (2, 1, 0):
        a = upsample_axis(a, ax, SHAPE[ax])
    rng = np.random.default_rng(SEED)
    a += rng.standard_normal(SHAPE, dtype=np.float32) * np.float32(SIGMA)
    np.rint(a, out=a)
    np.clip(a, -32768, 32767, out=a)
    vol = np.ascontiguousarray(a.astype(np.int16), dtype=np.int16)
    del a
    # corner-aligned: new voxel i maps to source voxel i*(n_src-1)/(n_dst-1)
    s = [(img.shape[k] - 1) / (SHAPE[k] - 1) for k in range(3)]
    aff = img.affine @ np.diag([s[0], s[1], s[2], 1.0])
    out = nib.Nifti1Image(vol, aff)
    out.set_data_dtype(np.int16)
    out.header.set_xyzt_units("mm")
    return out


def save_atomic(img, path):
    base = os.path.basename(path)
    tmp = os.path.join(os.path.dirname(path), ".tmp-" + base)
    nib.save(img, tmp)
    os.replace(tmp, path)


def main():
    src, outdir = sys.argv[1], sys.argv[2]
    os.makedirs(outdir, exist_ok=True)
    small = os.path.join(outdir, "ct_sm.nii")  # uncompressed copy of SRC: the nibabel write source
    if not os.path.exists(small):
        save_atomic(nib.load(src), small)
    targets = [os.path.join(outdir, "ct512.nii"), os.path.join(outdir, "ct512.nii.gz")]
    todo = [t for t in targets if not os.path.exists(t)]
    if not todo:
        return
    img = make(src)
    for t in todo:
        print(f"gen_volume: writing {t}", file=sys.stderr)
        save_atomic(img, t)


if __name__ == "__main__":
    main()
