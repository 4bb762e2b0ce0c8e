#!/usr/bin/env python3
"""tools/convert_nnunet.py + infer-unet on a ResEnc (ResidualEncoderUNet) results folder, end to end on
a raw CT, against nnU-Net v2 itself (tests/shell/unet_resenc.bats).

  nnunet_resenc_e2e.py make DIR [resample]
      DIR/results/     an nnU-Net v2 trainer folder whose plans.json is what nnunetv2's
                       nnUNetPlannerResEncM writes for a one-case dataset (a crop of the shared CT with
                       its TotalSegmentator labels; tests/scripts/make_golden_resenc.py plan(), features
                       4..8 to stay small), dataset.json, fold_0 and fold_1/checkpoint_final.pth with
                       seeded random weights built by nnunetv2's get_network_from_plans. With
                       'resample' the planner's target spacing is overwritten with 4.0 x 2.5 x 2.5 mm
                       (z, y, x; nnU-Net's overwrite_target_spacing), so preprocessing resamples.
      DIR/ct.nii.gz    a larger crop of example_ct_sm.nii.gz (i16 HU, 60 x 48 x 20 at 3 mm: several tiles)
      DIR/expected.npz nnUNetPredictor (both folds, f16 aggregation, no mirroring) +
                       predict_single_npy_array on the raw image: 'seg', 'prob' (x, y, z), 'affine'
  nnunet_resenc_e2e.py check DIR OUT.vxp   as tests/scripts/nnunet_raw_e2e.py check
Needs: torch, nibabel, nnunetv2 (with dynamic_network_architectures).
"""
import json
import os
import sys
import tempfile

import nibabel as nib
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_golden_resenc as G  # noqa: E402
import nnunet_raw_e2e as E  # noqa: E402

BIG = (slice(30, 90), slice(30, 78), slice(4, 24))


def make(d, resample=False):
    torch.set_num_threads(1)
    a, lab, aff = G.crop()
    with tempfile.TemporaryDirectory() as tmp:
        plans, ds = G.plan(a, lab, aff, tmp)
    if resample:
        plans["configurations"]["3d_fullres"]["spacing"] = [4.0, 2.5, 2.5]
    assert plans["configurations"]["3d_fullres"]["architecture"]["network_class_name"].endswith("ResidualEncoderUNet")
    ct = nib.load(os.path.join(G.DATA, "totalseg", "example_ct_sm.nii.gz"))
    big = np.asarray(ct.dataobj)[BIG].astype(np.int16)
    baff = ct.affine.copy()
    baff[:3, 3] = ct.affine[:3, :3] @ np.array([b.start for b in BIG]) + ct.affine[:3, 3]
    os.makedirs(d, exist_ok=True)
    nib.save(nib.Nifti1Image(big, baff), os.path.join(d, "ct.nii.gz"))
    res = os.path.join(d, "results")
    os.makedirs(res, exist_ok=True)
    json.dump(plans, open(os.path.join(res, "plans.json"), "w"), indent=1)
    json.dump(ds, open(os.path.join(res, "dataset.json"), "w"))
    for fold in (0, 1):
        os.makedirs(os.path.join(res, f"fold_{fold}"), exist_ok=True)
        torch.save({"network_weights": G.build(plans, ds, 300 + fold).state_dict(), "trainer_name": "nnUNetTrainer",
                    "inference_allowed_mirroring_axes": (0, 1, 2),
                    "init_args": {"plans": plans, "configuration": "3d_fullres", "fold": fold, "dataset_json": ds}},
                   os.path.join(res, f"fold_{fold}", "checkpoint_final.pth"))
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    pred = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False, perform_everything_on_device=False,
                           device=torch.device("cpu"), verbose=False, verbose_preprocessing=False, allow_tqdm=False)
    pred.initialize_from_trained_model_folder(res, use_folds=(0, 1), checkpoint_name="checkpoint_final.pth")
    sp = np.sqrt((baff[:3, :3] ** 2).sum(0))
    img = big.transpose(2, 1, 0)[None].astype(np.float32)
    s, p = pred.predict_single_npy_array(img, {"spacing": [float(x) for x in sp[::-1]]}, None, None, True)
    np.savez(os.path.join(d, "expected.npz"), seg=s.transpose(2, 1, 0), prob=p.transpose(0, 3, 2, 1), affine=baff)


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], len(sys.argv) > 3 and sys.argv[3] == "resample")
    else:
        E.check(sys.argv[2], sys.argv[3])
