#!/usr/bin/env python3
"""A small evaluation data set from the shared TotalSegmentator example, for pipelines/evaluate.mk:
N cases (default 4), each a different crop of the 122x101x30 label volumes (x 30..90, y 5..60,
a 24-slice z window shifted by 2 slices per case, so vertebrae are cut differently), written as
DIR/ref/{id}.nii.gz (example_seg, TotalSegmentator's full model), DIR/A/{id}.nii.gz
(example_seg_fast, its fast model) and DIR/B/{id}.nii.gz (the fast labels degraded on purpose: the
T12 mask (id 32) eroded by one voxel, and the lowest three slices of L1 (id 31) mislabelled as L2
(id 30)). Labels stay TotalSegmentator v2 ids; the pipeline maps them (LABELS=spine25).

  make_eval_cases.py SEG SEG_FAST DIR [N]
"""
import os, sys

import nibabel as nib
import numpy as np
from scipy import ndimage

seg_path, fast_path, out = sys.argv[1:4]
n = int(sys.argv[4]) if len(sys.argv) > 4 else 4
seg, fast = nib.load(seg_path), nib.load(fast_path)
for d in ("ref", "A", "B"):
    os.makedirs(os.path.join(out, d), exist_ok=True)


def degrade(a):
    b = a.copy()
    t12 = b == 32
    b[t12 & ~ndimage.binary_erosion(t12)] = 0
    l1 = np.argwhere(b == 31)
    if len(l1):
        z0 = l1[:, 2].min()
        sl = b[:, :, z0:z0 + 3]
        sl[sl == 31] = 30
    return b


for k in range(n):
    z = 2 * k
    box = (slice(30, 90), slice(5, 60), slice(z, z + 24))
    case = f"case{k + 1}"
    for d, img in (("ref", seg), ("A", fast)):
        nib.save(img.slicer[box], os.path.join(out, d, f"{case}.nii.gz"))
    crop = fast.slicer[box]
    b = degrade(np.asanyarray(crop.dataobj))
    nib.save(nib.Nifti1Image(b, crop.affine, crop.header), os.path.join(out, "B", f"{case}.nii.gz"))
