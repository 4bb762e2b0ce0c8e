#!/usr/bin/env python3
"""Golden files for the inference preprocessing (lib/nn_preprocess, lib/nn_meta;
tests/unit/test_nn_preprocess.c), made by the peers themselves on crops of the real CT
../shared/data/totalseg/example_ct_sm.nii.gz (i16 HU, 3 mm).

tests/golden/nnprep/<case>.safetensors, each holding
  x        the raw crop (F32 of the i16 values), shape (nz, ny, nx) = the volume, x fastest
  y        the peer's preprocessed image, shape (nz', ny', nx')
and __metadata__: "affine" (16 numbers, the crop's voxel-to-RAS), "style" (monai | nnunet) and the
model metadata keys infer-ressegnet / infer-unet read (docs/MODELS.md), so the unit test reads them
with vp_nn_meta_read:
  nnunet_iso    nnU-Net v2 DefaultPreprocessor.run_case_npy: CTNormalization (intensity properties
                computed here from the crop's TotalSegmentator foreground) then resampling to
                (z, y, x) 4.0, 2.5, 2.5 mm (order 3, skimage resize)
  nnunet_aniso  the same to 6.0, 1.5, 1.5 mm from a crop relabelled to 4.5 mm slices: anisotropic,
                in-plane order 3 then order 0 along z
  monai         MONAI Spacing(2.0, 2.0, 2.5 mm, bilinear, border) + ScaleIntensityRange(-175, 250,
                0, 1, clip)
Run: .venv/bin/python tests/scripts/make_golden_nnprep.py   (needs torch, monai, nnunetv2, nibabel)
"""
import json
import os
import sys

import nibabel as nib
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))
from convert_nnunet import st_bytes  # noqa: E402

DATA = os.environ.get("VOXPIPE_DATA", os.path.join(HERE, "..", "..", "..", "shared", "data"))
OUT = os.path.join(HERE, "..", "golden", "nnprep")


def crop(box, zscale=1.0):
    ct = nib.load(os.path.join(DATA, "totalseg", "example_ct_sm.nii.gz"))
    seg = nib.load(os.path.join(DATA, "totalseg", "example_seg.nii.gz"))
    a = np.asarray(ct.dataobj)[box].astype(np.int16)
    aff = ct.affine.copy()
    aff[:3, 3] = ct.affine[:3, :3] @ np.array([b.start for b in box]) + ct.affine[:3, 3]
    aff[:3, 2] *= zscale
    fg = np.asarray(seg.dataobj)[box] > 0
    return a, aff, fg


def nnunet_case(name, box, target, zscale=1.0):
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
    a, aff, fg = crop(box, zscale)
    v = a[fg].astype(np.float64)
    props = {"mean": float(v.mean()), "std": float(v.std()), "percentile_00_5": float(np.percentile(v, 0.5)),
             "percentile_99_5": float(np.percentile(v, 99.5))}
    conf = {"data_identifier": "x", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
            "patch_size": [8, 16, 16], "median_image_size_in_voxels": [8, 16, 16], "spacing": target,
            "normalization_schemes": ["CTNormalization"], "use_mask_for_norm": [False],
            "resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_seg": "resample_data_or_seg_to_shape",
            "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
            "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
            "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
            "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None},
            "architecture": {"network_class_name": "x", "arch_kwargs": {}, "_kw_requires_import": []}}
    plans = {"dataset_name": "D", "plans_name": "nnUNetPlans", "original_median_spacing_after_transp": target,
             "original_median_shape_after_transp": [8, 16, 16], "image_reader_writer": "SimpleITKIO",
             "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2], "configurations": {"3d_fullres": conf},
             "experiment_planner_used": "x", "label_manager": "LabelManager",
             "foreground_intensity_properties_per_channel": {"0": props}}
    pm = PlansManager(plans)
    sp = np.sqrt((aff[:3, :3] ** 2).sum(0))
    img = a.transpose(2, 1, 0)[None].astype(np.float32)
    y, _, _ = DefaultPreprocessor(verbose=False).run_case_npy(img, None, {"spacing": [float(s) for s in sp[::-1]]}, pm,
                                                               pm.get_configuration("3d_fullres"),
                                                               {"channel_names": {"0": "CT"}, "labels": {"background": 0}})
    meta = {"style": "nnunet", "affine": ",".join(repr(float(x)) for x in aff.ravel()),
            "spacing": ",".join(repr(float(s)) for s in target), "axes": "zyx",
            "normalization": json.dumps(["CTNormalization"]), "intensity_properties": json.dumps({"0": props}),
            "labels": json.dumps({"0": "background", "1": "a \"quoted\" name", "2": "caf\u00e9 \ud83e\uddb4"})}
    write(name, a.transpose(2, 1, 0).astype(np.float32), y[0].astype(np.float32), meta)


def monai_case(name, box, pixdim):
    from monai.data import MetaTensor
    from monai.transforms import ScaleIntensityRange, Spacing
    a, aff, _ = crop(box)
    x = MetaTensor(torch.from_numpy(a[None].astype(np.float32)))
    x.affine = torch.from_numpy(aff)
    y = Spacing(pixdim=pixdim, mode="bilinear", padding_mode="border")(x)
    y = ScaleIntensityRange(a_min=-175, a_max=250, b_min=0.0, b_max=1.0, clip=True)(y)
    meta = {"style": "monai", "affine": ",".join(repr(float(v)) for v in aff.ravel()),
            "voxpipe.spacing": ",".join(map(repr, pixdim)), "voxpipe.norm": "range", "voxpipe.a_min": "-175",
            "voxpipe.a_max": "250", "voxpipe.b_min": "0", "voxpipe.b_max": "1", "voxpipe.clip": "1",
            "voxpipe.labels": json.dumps({"2": "b", "1": "a"})}
    write(name, a.transpose(2, 1, 0).astype(np.float32), np.asarray(y[0]).transpose(2, 1, 0).astype(np.float32), meta)


def write(name, x, y, meta):
    data = st_bytes([("x", np.ascontiguousarray(x)), ("y", np.ascontiguousarray(y))], meta)
    with open(os.path.join(OUT, name + ".safetensors"), "wb") as f:
        f.write(data)
    print(f"{name}: x {x.shape} -> y {y.shape}, {len(data)} bytes", file=sys.stderr)


def main():
    import warnings
    warnings.filterwarnings("ignore")
    os.makedirs(OUT, exist_ok=True)
    nnunet_case("nnunet_iso", (slice(40, 80), slice(36, 68), slice(8, 24)), [4.0, 2.5, 2.5])
    nnunet_case("nnunet_aniso", (slice(50, 70), slice(40, 56), slice(10, 22)), [6.0, 1.5, 1.5], zscale=1.5)
    monai_case("monai", (slice(40, 72), slice(36, 64), slice(8, 20)), (2.0, 2.0, 2.5))


if __name__ == "__main__":
    main()
