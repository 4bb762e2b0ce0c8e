#!/usr/bin/env python3
"""infer-ressegnet end to end on a raw CT against MONAI (tests/shell/infer_ressegnet.bats).

  segresnet_raw_e2e.py make DIR [tiny]
      DIR/ct.nii.gz    a crop of ../shared/data/totalseg/example_ct_sm.nii.gz (i16 HU, 3 mm), 60 x 50
                       x 22 voxels; with 'tiny' 12 x 10 x 6 (14 x 12 x 7 on the 2 mm grid: smaller
                       than the ROI on every axis, padded as MONAI pads, constant 0)
      DIR/ckpt.pt      a training-loop checkpoint {"epoch", "model": state_dict with DDP's
                       'module.' prefixes} of a random monai.networks.nets.SegResNet (init_filters 4,
                       blocks 1,2,2,4 / 1,1,1, GroupNorm(2), 3 classes)
      DIR/expected.npz MONAI's result, MONAI Label's segmentation chain: Spacing(pixdim 2.0, 2.0,
                       2.5, bilinear, border) -> ScaleIntensityRange(-175, 250, 0, 1, clip) ->
                       sliding_window_inference(roi 32,32,16, overlap 0.25, gaussian) -> argmax ->
                       SpatialResample(mode 0: scipy order-0 nearest, what MONAI's Invertd of
                       Spacingd does with an integer mode) back onto the input grid ('nearest'
                       in torch's grid_sample rounds exact halves, 1.5 -> 2 but 4.5 -> 4, plus
                       float32 noise; a 2 mm -> 3 mm grid hits them): 'label', 'tie' (voxels
                       whose top two softmax values on the network grid are within 1e-3, carried
                       back the same way), 'affine'
  segresnet_raw_e2e.py check DIR OUT.vxp
      OUT's 'label' has the input's dims and affine, meta 'labels' the names given to the
      converter, and equals MONAI's label except on ties; prints the counts.
Needs: torch, monai, nibabel.
"""
import os
import sys

import nibabel as nib
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import vxp  # noqa: E402

DATA = os.environ.get("VOXPIPE_DATA", os.path.join(HERE, "..", "..", "..", "shared", "data"))
SPACING, ROI, OVERLAP = (2.0, 2.0, 2.5), (32, 32, 16), 0.25
NAMES = {"1": "bone", "2": "soft_tissue"}


def net():
    from monai.networks.nets import SegResNet
    torch.manual_seed(5)
    m = SegResNet(spatial_dims=3, init_filters=4, in_channels=1, out_channels=3, blocks_down=(1, 2, 2, 4),
                  blocks_up=(1, 1, 1), norm=("GROUP", {"num_groups": 2}))
    with torch.no_grad():
        for k, p in m.named_parameters():
            if "norm" in k:
                p.copy_((1 + 0.3 * torch.randn_like(p)) if k.endswith("weight") else 0.3 * torch.randn_like(p))
            elif k.endswith("bias"):
                p.copy_(0.2 * torch.randn_like(p))
    return m.eval()


def make(d, tiny=False):
    from monai.data import MetaTensor
    from monai.inferers import sliding_window_inference
    from monai.transforms import ScaleIntensityRange, Spacing, SpatialResample
    torch.set_num_threads(1)
    ct = nib.load(os.path.join(DATA, "totalseg", "example_ct_sm.nii.gz"))
    box = (slice(52, 64), slice(40, 50), slice(12, 18)) if tiny else (slice(30, 90), slice(30, 80), slice(4, 26))
    a = np.asarray(ct.dataobj)[box].astype(np.int16)
    aff = ct.affine.copy()
    aff[:3, 3] = ct.affine[:3, :3] @ np.array([b.start for b in box]) + ct.affine[:3, 3]
    os.makedirs(d, exist_ok=True)
    nib.save(nib.Nifti1Image(a, aff), os.path.join(d, "ct.nii.gz"))
    m = net()
    torch.save({"epoch": 3, "model": {"module." + k: v for k, v in m.state_dict().items()}}, os.path.join(d, "ckpt.pt"))
    img = MetaTensor(torch.from_numpy(a[None].astype(np.float32)), affine=torch.from_numpy(aff))
    x = Spacing(pixdim=SPACING, mode="bilinear", padding_mode="border")(img)
    x = ScaleIntensityRange(a_min=-175, a_max=250, b_min=0.0, b_max=1.0, clip=True)(x)
    with torch.no_grad():
        y = sliding_window_inference(x[None], ROI, 1, m, overlap=OVERLAP, mode="gaussian", sigma_scale=0.125)[0]
    p = torch.softmax(y.as_tensor() if hasattr(y, "as_tensor") else y, 0)
    srt = torch.sort(p, 0).values
    tie = ((srt[-1] - srt[-2]) <= 1e-3).float()[None]
    lab = MetaTensor(torch.argmax(p, 0, keepdim=True).float(), affine=x.affine)
    back = SpatialResample(mode=0, padding_mode="nearest")  # order 0: scipy map_coordinates, as lib/resample
    out = back(lab, dst_affine=torch.from_numpy(aff), spatial_size=a.shape)
    tie_b = back(MetaTensor(tie, affine=x.affine), dst_affine=torch.from_numpy(aff), spatial_size=a.shape)
    np.savez(os.path.join(d, "expected.npz"), label=np.asarray(out[0]).astype(np.uint8),
             tie=np.asarray(tie_b[0]) > 0.5, affine=aff, grid=np.array(x.shape[1:]), tiny=tiny)


def check(d, out):
    e = np.load(os.path.join(d, "expected.npz"))
    (c,) = list(vxp.read(open(out, "rb")))
    lab = c["vols"]["label"]
    want = e["label"]
    assert lab.data.shape == want.shape, (lab.data.shape, want.shape)
    assert np.allclose(lab.affine, e["affine"]), "label affine differs from the input's"
    assert c["meta"].get("labels") == NAMES, c["meta"].get("labels")
    diff = lab.data != want
    bad = diff & ~e["tie"]
    print(f"labels: {want.size} voxels (network grid {e['grid'].tolist()}), {diff.sum()} differ from MONAI's, "
          f"{bad.sum()} outside ties; classes present {sorted(np.unique(want).tolist())}")
    assert len(np.unique(want)) > 1, "degenerate: one class only"
    assert not bad.any()
    if e["tiny"]:
        assert all(g < r for g, r in zip(e["grid"], ROI)), f"grid {e['grid']} not smaller than the ROI {ROI}"


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], len(sys.argv) > 3 and sys.argv[3] == "tiny")
    else:
        check(sys.argv[2], sys.argv[3])
