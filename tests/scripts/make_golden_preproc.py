"""make_golden_preproc.py DATA_DIR OUT_DIR - golden files for crop/uncrop and normalize, made by the
peers themselves: MONAI 1.x transforms (CropForegroundd, SpatialCrop, ScaleIntensityRange,
NormalizeIntensity, GaussianSmooth, ScaleIntensity), scipy.ndimage.gaussian_filter, and nnU-Net's
CTNormalization written out from nnunetv2/preprocessing/normalization/default_normalization_schemes.py
with the foreground statistics of nnunetv2's DatasetFingerprintExtractor.collect_foreground_intensities
(all foreground voxels of one case, not a 10000-voxel sample).

    .venv/bin/python tests/scripts/make_golden_preproc.py ../shared/data tests/golden/preproc

Writes (all deterministic; every file < 200 KB):
  norm_in.vxp        case 'ct_crop': the shared CT (example_ct_sm) cut to x 44:76, y 4:36, z 5:25
                     (32x32x20, body, air and spine): 'image' i16, 'label' u8 (TotalSegmentator ids),
                     'masked' i16 (the CT where label == 0 set to 0, for the non-zero modes)
  norm_synth.vxp     case 'synth': 'mc' f32 12x10x8x2 (channels with different scales, zeros in one)
                     and 'thin' f32 3x20x2 (axes shorter than the Gaussian radius)
  norm_<name>.npy    the peer's float32 output for each entry of norm.json
  norm.json          [{name, input, case, vol, args (normalize options), peer, golden, stats?}]
  ct_stats.txt       P0.5,P99.5,MEAN,STD of the whole shared CT's foreground, for --ct-stats
  crop.json          [{name, args (crop options), peer, box, shape, affine, sha256 {vol: hex}}]: MONAI's
                     output on the whole shared CT + labels; sha256 of each volume's voxel bytes in
                     the stream's layout (x fastest, little-endian)
"""
import hashlib
import json
import os
import sys

import nibabel as nib
import numpy as np
import scipy
import scipy.ndimage as ndi
import torch
import monai
from monai.data import MetaTensor
from monai.transforms import (CropForegroundd, GaussianSmooth, NormalizeIntensity, ScaleIntensity,
                              ScaleIntensityRange, SpatialCropd)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vxp  # noqa: E402

DATA, OUT = sys.argv[1], sys.argv[2]
os.makedirs(OUT, exist_ok=True)
torch.set_num_threads(1)
ct_nii = nib.load(os.path.join(DATA, "totalseg", "example_ct_sm.nii.gz"))
CT = np.asanyarray(ct_nii.dataobj).astype(np.int16)
SEG = np.asanyarray(nib.load(os.path.join(DATA, "totalseg", "example_seg.nii.gz")).dataobj).astype(np.uint8)
AFF = ct_nii.affine  # vol-read uses nibabel's get_best_affine(), the same here (sform)
MONAI_V = f"MONAI {monai.__version__} (torch {torch.__version__})"


def shift(aff, lo):
    a = aff.copy()
    a[:3, 3] = aff[:3, :3] @ np.asarray(lo, float) + aff[:3, 3]
    return a


# ---------------- normalize ----------------
X0, Y0, Z0 = 44, 4, 5
img = CT[X0:X0 + 32, Y0:Y0 + 32, Z0:Z0 + 20].copy()
lab = SEG[X0:X0 + 32, Y0:Y0 + 32, Z0:Z0 + 20].copy()
masked = np.where(lab > 0, img, 0).astype(np.int16)
caff = shift(AFF, (X0, Y0, Z0))
rs = np.random.RandomState(1234)
mc = np.stack([rs.normal(100, 30, (12, 10, 8)), rs.normal(-5, 0.5, (12, 10, 8))], axis=-1).astype(np.float32)
mc[:3, :, :, 1] = 0  # zeros in one channel
thin = rs.uniform(-1, 1, (3, 20, 2)).astype(np.float32)
saff = np.diag([1.5, 1.0, 2.5, 1.0])
with open(os.path.join(OUT, "norm_in.vxp"), "wb") as f:
    vxp.write(f, [{"id": "ct_crop", "meta": {}, "vols": {"image": vxp.Vol(img, caff), "label": vxp.Vol(lab, caff),
                                                         "masked": vxp.Vol(masked, caff)}}])
with open(os.path.join(OUT, "norm_synth.vxp"), "wb") as f:
    vxp.write(f, [{"id": "synth", "meta": {}, "vols": {"mc": vxp.Vol(mc, saff), "thin": vxp.Vol(thin, saff)}}])


def chan_first(a):
    """our [x, y, z(, c)] array -> MONAI's channel-first tensor"""
    a = np.asarray(a, np.float32)
    return torch.as_tensor(np.moveaxis(a, -1, 0) if a.ndim == 4 else a[None])


def from_chan_first(t, four):
    a = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    return np.ascontiguousarray(np.moveaxis(a, 0, -1) if four else a[0]).astype(np.float32)


def monai_apply(tf, a):
    return from_chan_first(tf(chan_first(a)), np.asarray(a).ndim == 4)


def ct_props(image, fg_mask):
    """nnU-Net collect_foreground_intensities for one case, over all foreground voxels"""
    fg = image.astype(np.float32)[fg_mask]
    p00_5, p99_5 = np.percentile(fg, (0.5, 99.5))  # numpy default method 'linear'
    return {"mean": float(np.mean(fg)), "std": float(np.std(fg)),
            "percentile_00_5": float(p00_5), "percentile_99_5": float(p99_5)}


def ct_normalization(image, props):
    """nnU-Net v2 CTNormalization.run, as in its source"""
    image = image.astype(np.float32, copy=False)
    np.clip(image, props["percentile_00_5"], props["percentile_99_5"], out=image)
    image -= props["mean"]
    image /= max(props["std"], 1e-8)
    return image


norm = []


def add(name, case, vol, args, peer, out, **extra):
    fn = f"norm_{name}.npy"
    np.save(os.path.join(OUT, fn), np.asarray(out, np.float32))
    norm.append(dict(name=name, input="norm_in.vxp" if case == "ct_crop" else "norm_synth.vxp", case=case, vol=vol,
                     args=["--vol", vol] + args, peer=peer, golden=fn, **extra))


f32 = img.astype(np.float32)
add("range_clip", "ct_crop", "image", ["--range", "-1000,1000,0,1", "--clip"],
    f"{MONAI_V} ScaleIntensityRange(-1000, 1000, 0, 1, clip=True)",
    monai_apply(ScaleIntensityRange(-1000, 1000, 0.0, 1.0, clip=True), f32))
add("range_noclip", "ct_crop", "image", ["--range", "-175,250,-1,1"],
    f"{MONAI_V} ScaleIntensityRange(-175, 250, -1, 1, clip=False)",
    monai_apply(ScaleIntensityRange(-175, 250, -1.0, 1.0, clip=False), f32))
add("zscore", "ct_crop", "image", ["--zscore"], f"{MONAI_V} NormalizeIntensity()",
    monai_apply(NormalizeIntensity(), f32))
add("zscore_nonzero", "ct_crop", "masked", ["--zscore", "--nonzero"], f"{MONAI_V} NormalizeIntensity(nonzero=True)",
    monai_apply(NormalizeIntensity(nonzero=True), masked.astype(np.float32)))
add("zscore_channelwise", "synth", "mc", ["--zscore", "--nonzero", "--channel-wise"],
    f"{MONAI_V} NormalizeIntensity(nonzero=True, channel_wise=True)",
    monai_apply(NormalizeIntensity(nonzero=True, channel_wise=True), mc))
props = ct_props(img, lab > 0)
add("ct_case", "ct_crop", "image", ["--ct", "--fg", "label"],
    "nnU-Net v2 CTNormalization with this case's foreground statistics (numpy "
    f"{np.__version__}: np.percentile linear, np.mean, np.std of float32)", ct_normalization(img, props), stats=props)
whole = ct_props(CT, SEG > 0)
with open(os.path.join(OUT, "ct_stats.txt"), "w") as f:
    f.write("%r,%r,%r,%r\n" % (whole["percentile_00_5"], whole["percentile_99_5"], whole["mean"], whole["std"]))
add("ct_given", "ct_crop", "image", ["--ct-stats", "@ct_stats.txt"],
    "nnU-Net v2 CTNormalization with given intensity properties (those of the whole shared CT)",
    ct_normalization(img, whole), stats=whole)
add("gauss_monai", "ct_crop", "image", ["--gaussian", "0.4"], f"{MONAI_V} GaussianSmooth(sigma=0.4)",
    monai_apply(GaussianSmooth(sigma=0.4), f32))
add("gauss_monai_aniso", "ct_crop", "image", ["--gaussian", "1.5,1,0"], f"{MONAI_V} GaussianSmooth(sigma=(1.5, 1, 0))",
    monai_apply(GaussianSmooth(sigma=(1.5, 1.0, 0.0)), f32))
add("gauss_monai_mm", "ct_crop", "image", ["--gaussian", "4.5mm"],
    f"{MONAI_V} GaussianSmooth(sigma=1.5) (4.5 mm at 3 mm spacing)", monai_apply(GaussianSmooth(sigma=1.5), f32))
add("gauss_scipy", "ct_crop", "image", ["--gaussian", "1.2", "--kernel", "scipy"],
    f"scipy {scipy.__version__} ndimage.gaussian_filter(sigma=1.2, mode='reflect', truncate=4.0)",
    ndi.gaussian_filter(f32, 1.2, mode="reflect", truncate=4.0))
add("gauss_scipy_thin", "synth", "thin", ["--gaussian", "2", "--kernel", "scipy"],
    f"scipy {scipy.__version__} ndimage.gaussian_filter(sigma=2) on 3x20x2 (radius 8 > axis)",
    ndi.gaussian_filter(thin, 2.0, mode="reflect", truncate=4.0))
add("gauss_monai_thin", "synth", "thin", ["--gaussian", "2"], f"{MONAI_V} GaussianSmooth(sigma=2) on 3x20x2",
    monai_apply(GaussianSmooth(sigma=2.0), thin))
add("minmax", "ct_crop", "image", ["--minmax", "-1,1"], f"{MONAI_V} ScaleIntensity(minv=-1, maxv=1)",
    monai_apply(ScaleIntensity(minv=-1.0, maxv=1.0), f32))
chain = [NormalizeIntensity(nonzero=True), GaussianSmooth(sigma=0.4), ScaleIntensity(minv=-1.0, maxv=1.0)]
t = chan_first(masked)
for tf in chain:
    t = tf(t)
add("chain_monailabel", "ct_crop", "masked", ["--chain", "monailabel"],
    f"{MONAI_V} NormalizeIntensity(nonzero=True), GaussianSmooth(0.4), ScaleIntensity(-1, 1)", from_chan_first(t, False))
with open(os.path.join(OUT, "norm.json"), "w") as f:
    json.dump(norm, f, indent=1)

# ---------------- crop ----------------


def sha(a):
    return hashlib.sha256(np.asarray(a).tobytes(order="F")).hexdigest()


def monai_crop(tf):
    d = {"image": MetaTensor(torch.as_tensor(CT[None]), affine=torch.as_tensor(AFF)),
         "label": MetaTensor(torch.as_tensor(SEG[None]), affine=torch.as_tensor(AFF))}
    o = tf(d)
    im, lb = o["image"], o["label"]
    a_im, a_lb = im.numpy()[0], lb.numpy()[0]
    assert a_im.dtype == np.int16 and a_lb.dtype == np.uint8
    return a_im, a_lb, np.asarray(im.affine, float)


crops = []


def add_crop(name, args, peer, tf, box):
    a_im, a_lb, aff = monai_crop(tf)
    crops.append(dict(name=name, args=args, peer=f"{MONAI_V} {peer}", box=[int(x) for x in box], shape=list(a_im.shape),
                      affine=[float(x) for x in aff.ravel()], sha256={"image": sha(a_im), "label": sha(a_lb)}))


def body(x):
    return x > -500


def labelled(x):
    return x > 0


for name, args, sel, key, margin, k, allow, mode in [
    ("body_m2_k16", ["--foreground", "--threshold", "-500", "--margin", "6", "--k-divisible", "16"],
     body, "image", 2, 16, False, "constant"),
    ("body_k32_edge", ["--foreground", "--threshold", "-500", "--k-divisible", "32", "--pad-mode", "edge"],
     body, "image", 0, 32, False, "edge"),
    ("label_m331_smaller", ["--foreground", "--select", "label", "--margin", "3,3,1vox", "--allow-smaller"],
     labelled, "label", (3, 3, 1), 1, True, "constant"),
    ("label_m9mm_k16", ["--foreground", "--select", "label", "--margin", "9mm", "--k-divisible", "16"],
     labelled, "label", 3, 16, False, "constant"),
]:
    cf = CropForegroundd(keys=["image", "label"], source_key=key, select_fn=sel, margin=margin, k_divisible=k,
                         allow_smaller=allow, mode=mode)
    src = CT if key == "image" else SEG
    s, e = cf.cropper.compute_bounding_box(torch.as_tensor(src[None]))
    add_crop(name, args, f"CropForegroundd(source_key={key!r}, select_fn=x > {-500 if key == 'image' else 0}, "
             f"margin={margin}, k_divisible={k}, allow_smaller={allow}, mode={mode!r})", cf, list(s) + list(e))

# pad values per volume: image with -1024, label with 0 (two MONAI croppers on the same box)
cf_i = CropForegroundd(keys=["image"], source_key="image", select_fn=body, margin=2, k_divisible=(16, 16, 8),
                       allow_smaller=False, mode="constant", value=-1024)
cf_l = CropForegroundd(keys=["label"], source_key="image", select_fn=body, margin=2, k_divisible=(16, 16, 8),
                       allow_smaller=False, mode="constant", value=0)
d = {"image": MetaTensor(torch.as_tensor(CT[None]), affine=torch.as_tensor(AFF)),
     "label": MetaTensor(torch.as_tensor(SEG[None]), affine=torch.as_tensor(AFF))}
oi = cf_i({"image": d["image"]})["image"]
ol = cf_l({"image": d["image"], "label": d["label"]})["label"]
s, e = cf_i.cropper.compute_bounding_box(torch.as_tensor(CT[None]))
crops.append(dict(name="body_m2_pad", args=["--foreground", "--threshold", "-500", "--margin", "2vox", "--k-divisible",
                                            "16,16,8", "--pad-value", "image=-1024"],
                  peer=f"{MONAI_V} CropForegroundd(select_fn=x > -500, margin=2, k_divisible=(16, 16, 8), value=-1024 "
                       "for image, 0 for label)", box=[int(x) for x in list(s) + list(e)], shape=list(oi.shape[1:]),
                  affine=[float(x) for x in np.asarray(oi.affine).ravel()],
                  sha256={"image": sha(oi.numpy()[0]), "label": sha(ol.numpy()[0])}))
# centre + size inside the image: MONAI SpatialCrop(roi_center, roi_size)
sc = SpatialCropd(keys=["image", "label"], roi_center=(60, 50, 15), roi_size=(32, 32, 16))
add_crop("center_size", ["--center", "60,50,15", "--size", "32,32,16"], "SpatialCropd(roi_center=(60, 50, 15), "
         "roi_size=(32, 32, 16))", sc, [60 - 16, 50 - 16, 15 - 8, 60 + 16, 50 + 16, 15 + 8])
with open(os.path.join(OUT, "crop.json"), "w") as f:
    json.dump(crops, f, indent=1)
print(f"wrote {len(norm)} normalize and {len(crops)} crop goldens to {OUT}")
