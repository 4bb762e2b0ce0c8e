#!/usr/bin/env python3
"""Peer side of bench/bench_unet_memory.sh.

  unet_memory_peer.py make OUT Z K   OUT/ct.nii.gz: ../shared/data/totalseg/example_ct_sm.nii.gz resampled
                                     to 1.5 mm (scipy zoom, order 1: 244 x 202 x 60) and mirror-extended
                                     along z to Z slices, i16 HU; OUT/results: an nnU-Net v2 results folder,
                                     3d_fullres at 1.5 mm (the image's spacing: nothing is resampled),
                                     CTNormalization, ResidualEncoderUNet (ResEnc layout: stem + BasicBlockD,
                                     features 2,4,8,8, 1 block per stage, strides 1,2,2,2, patch 32 x 64 x 64),
                                     K classes, one fold of seeded weights. Deterministic.
  unet_memory_peer.py run OUT THREADS  nnUNetPredictor (tile step 0.5, Gaussian, no mirroring, CPU,
                                     f16 aggregation) predict_single_npy_array on OUT/ct.nii.gz; the
                                     labels to OUT/nnunet_seg.npy (x, y, z); prints the seconds.
  unet_memory_peer.py agree OUT OUT.vxp  fraction of voxels where the labels agree
  unet_memory_peer.py same A.vxp B.vxp   how many voxels of the two 'label' volumes differ
"""
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "scripts"))
DATA = os.environ.get("VOXPIPE_DATA", os.path.join(HERE, "..", "..", "shared", "data"))
REQ = ["conv_op", "norm_op", "dropout_op", "nonlin"]


def make(out, z, k):
    import nibabel as nib
    import scipy.ndimage as ndi
    import torch
    img = nib.load(os.path.join(DATA, "totalseg", "example_ct_sm.nii.gz"))
    a = np.asarray(img.dataobj).astype(np.float32)
    a = ndi.zoom(a, [s / 1.5 for s in img.header.get_zooms()[:3]], order=1)
    if z > a.shape[2]:
        a = np.pad(a, [(0, 0), (0, 0), ((z - a.shape[2]) // 2, z - a.shape[2] - (z - a.shape[2]) // 2)], mode="symmetric")
    a = np.round(a[:, :, :z]).astype(np.int16)
    aff = np.diag([1.5, 1.5, 1.5, 1.0])
    os.makedirs(out, exist_ok=True)
    nib.save(nib.Nifti1Image(a, aff), os.path.join(out, "ct.nii.gz"))
    kw = {"n_stages": 4, "features_per_stage": [2, 4, 8, 8], "conv_op": "torch.nn.modules.conv.Conv3d",
          "kernel_sizes": [[3, 3, 3]] * 4, "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]],
          "n_blocks_per_stage": [1, 1, 1, 1], "n_conv_per_stage_decoder": [1, 1, 1], "conv_bias": True,
          "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d", "norm_op_kwargs": {"eps": 1e-05, "affine": True},
          "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}}
    v = a.astype(np.float64)
    props = {"mean": float(v.mean()), "std": float(v.std()), "percentile_00_5": float(np.percentile(v, 0.5)),
             "percentile_99_5": float(np.percentile(v, 99.5))}
    conf = {"data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
            "patch_size": [32, 64, 64], "median_image_size_in_voxels": list(a.shape[::-1]), "spacing": [1.5, 1.5, 1.5],
            "normalization_schemes": ["CTNormalization"], "use_mask_for_norm": [False],
            "resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_seg": "resample_data_or_seg_to_shape",
            "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
            "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
            "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
            "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None},
            "architecture": {"network_class_name": "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet",
                             "arch_kwargs": kw, "_kw_requires_import": REQ}, "batch_dice": False}
    plans = {"dataset_name": "Dataset995_Mem", "plans_name": "nnUNetResEncUNetMPlans",
             "original_median_spacing_after_transp": [1.5, 1.5, 1.5], "original_median_shape_after_transp": list(a.shape[::-1]),
             "image_reader_writer": "SimpleITKIO", "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
             "configurations": {"3d_fullres": conf}, "experiment_planner_used": "nnUNetPlannerResEncM",
             "label_manager": "LabelManager", "foreground_intensity_properties_per_channel": {"0": props}}
    labels = {"background": 0, **{f"class_{i}": i for i in range(1, k)}}
    ds = {"channel_names": {"0": "CT"}, "labels": labels, "numTraining": 1, "file_ending": ".nii.gz"}
    res = os.path.join(out, "results")
    os.makedirs(os.path.join(res, "fold_0"), exist_ok=True)
    json.dump(plans, open(os.path.join(res, "plans.json"), "w"), indent=1)
    json.dump(ds, open(os.path.join(res, "dataset.json"), "w"))
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    torch.manual_seed(0)
    net = get_network_from_plans(conf["architecture"]["network_class_name"], kw, REQ, 1, k, allow_init=True,
                                 deep_supervision=False)
    with torch.no_grad():
        for n, p in net.named_parameters():
            if ".norm." in n:
                p.copy_((1 + 0.5 * torch.randn_like(p)) if n.endswith("weight") else 0.5 * torch.randn_like(p))
            elif n.endswith("bias"):
                p.copy_(0.2 * torch.randn_like(p))
    torch.save({"network_weights": net.state_dict(), "trainer_name": "nnUNetTrainer",
                "inference_allowed_mirroring_axes": (0, 1, 2),
                "init_args": {"plans": plans, "configuration": "3d_fullres", "fold": 0, "dataset_json": ds}},
               os.path.join(res, "fold_0", "checkpoint_final.pth"))


def run(out, threads):
    import nibabel as nib
    import torch
    torch.set_num_threads(threads)
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    im = nib.load(os.path.join(out, "ct.nii.gz"))
    a = np.asarray(im.dataobj)
    pred = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False, perform_everything_on_device=False,
                           device=torch.device("cpu"), verbose=False, verbose_preprocessing=False, allow_tqdm=False)
    pred.initialize_from_trained_model_folder(os.path.join(out, "results"), use_folds=(0,), checkpoint_name="checkpoint_final.pth")
    t = time.time()
    seg = pred.predict_single_npy_array(a.transpose(2, 1, 0)[None].astype(np.float32), {"spacing": [1.5, 1.5, 1.5]},
                                        None, None, False)
    print(f"{time.time() - t:.2f}")
    np.save(os.path.join(out, "nnunet_seg.npy"), seg.transpose(2, 1, 0))


def agree(out, vxpf):
    import vxp
    (c,) = list(vxp.read(open(vxpf, "rb")))
    s = np.load(os.path.join(out, "nnunet_seg.npy"))
    lab = c["vols"]["label"].data
    print(f"{(lab == s).mean() * 100:.4f}% of {s.size} voxels, {len(np.unique(s))} classes present")


def same(a, b):
    import vxp
    (ca,), (cb,) = list(vxp.read(open(a, "rb"))), list(vxp.read(open(b, "rb")))
    la, lb = ca["vols"]["label"].data, cb["vols"]["label"].data
    print(f"{int((la != lb).sum())} of {la.size} voxels differ")


if __name__ == "__main__":
    if sys.argv[1] == "same":
        same(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "make":
        make(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif sys.argv[1] == "run":
        run(sys.argv[2], int(sys.argv[3]))
    else:
        agree(sys.argv[2], sys.argv[3])
