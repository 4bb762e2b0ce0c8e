#!/usr/bin/env python3
"""Make the resample benchmark's input once, deterministically (bench/bench_resample.sh):
a 512x512x141 int16 CT at 0.98 x 0.98 x 2 mm, the shared example CT upsampled (scipy zoom, order 1)
plus seeded Gaussian noise (sigma 10 HU), as an uncompressed NIfTI.

usage: gen_resample.py SRC.nii.gz OUT.nii
"""
import os
import sys

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

src, out = sys.argv[1:3]
if os.path.exists(out):
    sys.exit(0)
img = nib.load(src)
a = np.asarray(img.dataobj, dtype=np.float32)
shape = (512, 512, 141)
big = ndi.zoom(a, [s / n for s, n in zip(shape, a.shape)], order=1, mode="nearest", grid_mode=True)
assert big.shape == shape, big.shape
big += np.random.default_rng(20240603).normal(0.0, 10.0, size=shape).astype(np.float32)
data = np.clip(np.rint(big), -32768, 32767).astype(np.int16)
aff = np.diag([0.98, 0.98, 2.0, 1.0])
aff[:3, 3] = img.affine[:3, 3]
tmp = out + ".tmp.nii"
nib.save(nib.Nifti1Image(data, aff), tmp)
os.replace(tmp, out)
