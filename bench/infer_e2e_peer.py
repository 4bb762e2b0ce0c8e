#!/usr/bin/env python3
"""MONAI side of bench/bench_infer_e2e.sh: raw CT -> labels on the input grid, MONAI Label's chain.

  infer_e2e_peer.py make CT.nii.gz CKPT.pt          a random SegResNet checkpoint (init_filters 8,
                                                    26 classes, seed 0)
  infer_e2e_peer.py run CT.nii.gz CKPT.pt OUT.npy THREADS
      Spacing(2 mm, bilinear, border) -> ScaleIntensityRange(-175, 250, 0, 1, clip) ->
      sliding_window_inference(roi 64,64,32, overlap 0.25, gaussian, sw_batch_size 1) -> argmax ->
      SpatialResample(order 0) onto the input grid; the label as u8 .npy
"""
import sys
import warnings

import nibabel as nib
import numpy as np
import torch

warnings.filterwarnings("ignore")
ROI, SP = (64, 64, 32), (2.0, 2.0, 2.0)


def net():
    from monai.networks.nets import SegResNet
    return SegResNet(spatial_dims=3, init_filters=8, in_channels=1, out_channels=26)


def main():
    if sys.argv[1] == "make":
        torch.manual_seed(0)
        torch.save({"model": net().state_dict()}, sys.argv[3])
        return
    from monai.data import MetaTensor
    from monai.inferers import sliding_window_inference
    from monai.transforms import ScaleIntensityRange, Spacing, SpatialResample
    ct, ck, out, threads = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    torch.set_num_threads(threads)
    m = net()
    m.load_state_dict(torch.load(ck, map_location="cpu")["model"])
    m.eval()
    im = nib.load(ct)
    a = np.asarray(im.dataobj)
    x = MetaTensor(torch.from_numpy(a[None].astype(np.float32)))
    x.affine = torch.from_numpy(im.affine)
    x = Spacing(pixdim=SP, mode="bilinear", padding_mode="border")(x)
    x = ScaleIntensityRange(a_min=-175, a_max=250, b_min=0.0, b_max=1.0, clip=True)(x)
    with torch.no_grad():
        y = sliding_window_inference(x[None], ROI, 1, m, overlap=0.25, mode="gaussian", sigma_scale=0.125)[0]
    lab = MetaTensor(torch.argmax(y, 0, keepdim=True).float(), affine=x.affine)
    del y
    back = SpatialResample(mode=0, padding_mode="nearest")(lab, dst_affine=torch.from_numpy(im.affine), spatial_size=a.shape)
    np.save(out, np.asarray(back[0]).astype(np.uint8))


if __name__ == "__main__":
    main()
