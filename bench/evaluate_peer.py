#!/usr/bin/env python3
"""The Python peer of pipelines/evaluate.mk, as a study's "folder of scripts" would do it: for each
model and case, nibabel loads the reference and the prediction, a lookup table maps TotalSegmentator
ids to spine25, MONAI computes Dice, Hausdorff, HD95 and the symmetric average surface distance per
class (compute_dice, compute_hausdorff_distance, compute_average_surface_distance on one-hot
tensors, with the voxel spacing); then scipy.stats compares the two models per metric and class
(ttest_ind, ttest_rel) and a Markdown table of mean ± sd and p-values is written.

  evaluate_peer.py REF_DIR OUT_DIR NAME=DIR NAME=DIR
"""
import glob, os, sys

import nibabel as nib
import numpy as np
import torch
from monai.metrics import compute_average_surface_distance, compute_dice, compute_hausdorff_distance
from scipy import stats

ref_dir, out = sys.argv[1:3]
models = [a.split("=", 1) for a in sys.argv[3:]]
os.makedirs(out, exist_ok=True)

# TotalSegmentator v2 ids -> spine25 (C1..C7 = 1..7, T1..T12 = 8..19, L1..L5 = 20..24, sacrum/S1 = 25)
lut = np.zeros(256, np.uint8)
for i, v in enumerate(range(50, 25, -1)):  # vertebrae_C1 = 50 ... vertebrae_S1 = 26 in v2
    lut[v] = i + 1
lut[26] = 25
lut[25] = 25  # sacrum

cases = sorted(os.path.basename(p)[:-7] for p in glob.glob(os.path.join(ref_dir, "*.nii.gz")))
vals = {}  # (model, metric, class) -> [values by case]
for name, d in models:
    for case in cases:
        ref = nib.load(os.path.join(ref_dir, case + ".nii.gz"))
        spacing = [float(s) for s in ref.header.get_zooms()[:3]]
        r = lut[np.asanyarray(ref.dataobj)]
        p = lut[np.asanyarray(nib.load(os.path.join(d, case + ".nii.gz")).dataobj)]
        classes = sorted(set(np.unique(r)) | set(np.unique(p)) - {0})
        ohp = torch.from_numpy(np.stack([p == 0] + [p == c for c in classes])[None].astype(np.float32))
        ohr = torch.from_numpy(np.stack([r == 0] + [r == c for c in classes])[None].astype(np.float32))
        res = {"dice": compute_dice(ohp, ohr, include_background=False),
               "hd": compute_hausdorff_distance(ohp, ohr, include_background=False, spacing=spacing),
               "hd95": compute_hausdorff_distance(ohp, ohr, include_background=False, percentile=95, spacing=spacing),
               "assd": compute_average_surface_distance(ohp, ohr, include_background=False, symmetric=True,
                                                        spacing=spacing)}
        for m, t in res.items():
            for j, c in enumerate(classes):
                vals.setdefault((name, m, int(c)), []).append(float(t[0, j]))

with open(os.path.join(out, "report.md"), "w") as f:
    a, b = models[0][0], models[1][0]
    f.write(f"| metric | class | {a} mean ± sd | {b} mean ± sd | p Student | p paired |\n|---|---|---|---|---|---|\n")
    for (name, m, c), x in sorted(vals.items()):
        if name != a or (b, m, c) not in vals:
            continue
        y = vals[(b, m, c)]
        ps = stats.ttest_ind(x, y).pvalue
        pp = stats.ttest_rel(x, y).pvalue if len(x) == len(y) else float("nan")
        f.write(f"| {m} | {c} | {np.mean(x):.3f} ± {np.std(x, ddof=1):.3f} | {np.mean(y):.3f} ± {np.std(y, ddof=1):.3f}"
                f" | {ps:.5f} | {pp:.5f} |\n")
