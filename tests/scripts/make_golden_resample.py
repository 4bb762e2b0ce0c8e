#!/usr/bin/env python3
"""make_golden_resample.py - golden files for `resample` and `reorient`, computed by the peers.

usage: make_golden_resample.py [DATA_DIR]     (default ../shared/data; writes tests/golden/resample/)

Peers:
  scipy.ndimage   map_coordinates(order 0/1/3, mode nearest | mirror | grid-constant) at the output
                  grid's continuous input indices; gaussian_filter (truncate 4) for --antialias
  MONAI           Spacing(pixdim, mode='bilinear', padding_mode='border'): the grid convention (dims
                  and affine) and the values of --spacing at order 1
  SimpleITK       ResampleImageFilter (NearestNeighbor, Linear, BSpline) onto the same output grid
  numpy           one-hot masks through scipy order 1, then argmax (onehot) or nnU-Net's
                  resize_segmentation rule (largest label with mask >= 0.5)
  nibabel         as_reoriented(ornt_transform(io_orientation(A), axcodes2ornt(CODE)))

Boundary conventions: SimpleITK returns its default value (0) outside [-0.5, n-0.5) of each input
axis and clamps (linear) or mirrors (B-spline) inside it; scipy 'nearest' extends the edge and
'mirror' mirrors everywhere. So SimpleITK is compared only inside that buffer ('mask' in the npz),
its B-spline with `resample --mode mirror` there, and with the default mode only in the interior
(>= 10 input voxels from every face, where the B-spline prefilter's boundary term, which decays as
0.268^d, is below 1e-5 of the data). SimpleITK computes indices through its own matrix inverse:
output voxels whose index lies within 1e-6 of a rounding boundary are left out of the nearest
comparison (the script asserts there are none or few).

Inputs (NIfTI, read by vol-read): ct (int16 crop 32x32x16 of the shared CT, 3 mm), seg (uint8 crop
of its TotalSegmentator labels), obl (int16 40x36x30 synthetic on an oblique grid), ct_pir (ct as
PIR, by nibabel), grid_* (target grids for --like); streams: prob.vxp (2-channel f32), ct_obl.vxp
(ct and obl in one case).
cases.json lists each case: program, input, arguments, output volume, expected npz, comparison.
"""
import json
import os
import sys

import nibabel as nib
import numpy as np
from nibabel import orientations as ornt
from scipy import ndimage as ndi

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import vxp  # noqa: E402

DATA = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "../../../shared/data")
OUT = os.path.join(HERE, "../golden/resample")
os.makedirs(OUT, exist_ok=True)
cases = []


# ---- the grid map, exactly as lib/resample.c vp_grid_map computes it (same operations, same order)
def grid_map(A, B, odims):
    A = [[float(x) for x in r] for r in np.asarray(A)]
    B = [[float(x) for x in r] for r in np.asarray(B)]
    d = [B[0][3] - A[0][3], B[1][3] - A[1][3], B[2][3] - A[2][3]]
    col = lambda M, i: (M[0][i], M[1][i], M[2][i])
    dot = lambda a, b: a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
    n = [np.sqrt(dot(col(A, i), col(A, i))) for i in range(3)]
    orth = all(abs(dot(col(A, i), col(A, j))) <= 1e-9 * n[i] * n[j] for i in range(3) for j in range(i + 1, 3))
    m = [[0.0] * 4 for _ in range(3)]
    if orth:
        for i in range(3):
            nn = dot(col(A, i), col(A, i))
            for j in range(3):
                m[i][j] = dot(col(A, i), col(B, j)) / nn
            m[i][3] = dot(col(A, i), d) / nn
    else:
        r = [row[:3] for row in A[:3]]
        det = (r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1]) - r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0])
               + r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0]))
        inv = [[0.0] * 3 for _ in range(3)]
        for i in range(3):
            for j in range(3):
                i1, i2, j1, j2 = (j + 1) % 3, (j + 2) % 3, (i + 1) % 3, (i + 2) % 3
                inv[i][j] = (r[i1][j1] * r[i2][j2] - r[i1][j2] * r[i2][j1]) / det
        for i in range(3):
            for j in range(3):
                m[i][j] = inv[i][0] * B[0][j] + inv[i][1] * B[1][j] + inv[i][2] * B[2][j]
            m[i][3] = inv[i][0] * d[0] + inv[i][1] * d[1] + inv[i][2] * d[2]
    for i in range(3):
        for j in range(3):
            if i != j and abs(m[i][j]) * (odims[j] - 1) < 1e-6:
                m[i][j] = 0.0
    return np.array(m)


def coords(m, odims):
    """continuous input index of every output voxel: ((m0*i + m1*j) + m2*k) + t, as the C code"""
    I, J, K = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in odims], indexing="ij")
    return np.array([m[a, 0] * I + m[a, 1] * J + m[a, 2] * K + m[a, 3] for a in range(3)])


def spacing_grid(A, dims, sp):
    """--spacing's grid (MONAI Spacing's convention); checked against MONAI below"""
    B = np.array(A, dtype=np.float64)
    od = []
    for a in range(3):
        s = float(np.sqrt(A[0, a] * A[0, a] + A[1, a] * A[1, a] + A[2, a] * A[2, a]))
        od.append(int(np.rint((dims[a] - 1) * s / sp[a] + 1.0)))
        B[:3, a] = A[:3, a] * (sp[a] / s)
    return B, tuple(od)


def save_nii(name, data, affine):
    path = os.path.join(OUT, name)
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, 1)
    img.set_sform(affine, 1)
    nib.save(img, path)
    back = nib.load(path)  # the affine as vol-read will see it (float32 sform)
    return np.asarray(back.dataobj), back.affine


def add(name, prog, read, args, vol, data, affine, cmp, peer, mask=None, dtype=None):
    payload = {"data": data, "affine": np.asarray(affine, dtype=np.float64)}
    if mask is not None:
        payload["mask"] = mask
    np.savez_compressed(os.path.join(OUT, name + ".npz"), **payload)
    cases.append({"name": name, "prog": prog, "read": read, "args": args, "vol": vol, "cmp": cmp, "peer": peer,
                  "dtype": dtype or vxp.NAMES[np.dtype(data.dtype)]})


SCIPY_MODE = {"nearest": "nearest", "mirror": "mirror", "constant": "grid-constant"}
GAUSS_MODE = {"nearest": "nearest", "mirror": "mirror", "constant": "constant"}


def scipy_ref(src, A, B, odims, order, mode="nearest", cval=0.0, antialias=False):
    m = grid_map(A, B, odims)
    x = np.asarray(src, dtype=np.float64)
    if antialias and order > 0:
        sig = [max(0.0, (np.sqrt(m[a, 0] ** 2 + m[a, 1] ** 2 + m[a, 2] ** 2) - 1) / 2) for a in range(3)]
        x = ndi.gaussian_filter(x, sig, mode=GAUSS_MODE[mode], cval=cval, truncate=4.0)
    return ndi.map_coordinates(x, coords(m, odims), order=order, mode=SCIPY_MODE[mode], cval=cval)


# ---- inputs
ts = os.path.join(DATA, "totalseg")
ct_img = nib.load(os.path.join(ts, "example_ct_sm.nii.gz"))
seg_img = nib.load(os.path.join(ts, "example_seg.nii.gz"))
box = (slice(44, 76), slice(34, 66), slice(7, 23))
aff0 = ct_img.affine.copy()
aff0[:3, 3] = ct_img.affine[:3, :3] @ [b.start for b in box] + ct_img.affine[:3, 3]
ct, A_ct = save_nii("ct.nii.gz", np.asarray(ct_img.dataobj)[box].astype(np.int16), aff0)
seg, A_seg = save_nii("seg.nii.gz", np.asarray(seg_img.dataobj)[box].astype(np.uint8), aff0)
assert np.array_equal(A_ct, A_seg) and len(np.unique(seg)) > 5
CT = ["ct.nii.gz", "--label", "seg.nii.gz"]


def rot(axis, ang):
    c, s = np.cos(ang), np.sin(ang)
    R = np.eye(3)
    i, j = [(1, 2), (0, 2), (0, 1)][axis]
    R[i, i] = R[j, j] = c
    R[i, j], R[j, i] = -s, s
    return R


# a smooth synthetic volume with sharp blocks, on an oblique grid
g = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in (40, 36, 30)], indexing="ij")
f = 600 * np.sin(0.31 * g[0] + 0.2 * g[1]) * np.cos(0.17 * g[2] + 0.05 * g[0])
f += 300 * np.exp(-((g[0] - 22) ** 2 + (g[1] - 15) ** 2 + (g[2] - 12) ** 2) / 60.0)
f[8:14, 20:27, 5:25] += 400
A_obl = np.eye(4)
A_obl[:3, :3] = rot(2, 0.35) @ rot(0, 0.3) @ np.diag([1.2, 1.0, 1.5])
A_obl[:3, 3] = [-20.5, 14.25, 30.125]
obl, A_obl = save_nii("obl.nii.gz", np.rint(f).astype(np.int16), A_obl)
OBL = ["obl.nii.gz"]

# ---- scipy, --spacing (separable path)
for name, sp, order, extra in [
        ("sp26_o0", (2.6,) * 3, 0, []), ("sp26_o1", (2.6,) * 3, 1, []), ("sp26_o3", (2.6,) * 3, 3, []),
        ("aniso_o1", (1.9, 2.7, 4.1), 1, []), ("aniso_o3", (1.9, 2.7, 4.1), 3, []),
        ("sp45_o1_aa", (4.5,) * 3, 1, ["--antialias"]), ("sp45_o3_aa", (4.5,) * 3, 3, ["--antialias"]),
        ("sp26_o3_mirror", (2.6,) * 3, 3, ["--mode", "mirror"]),
        ("sp26_o3_const", (2.6,) * 3, 3, ["--mode", "constant", "--fill", "-1000"]),
        ("sp26_o1_const", (2.6,) * 3, 1, ["--mode", "constant", "--fill", "-1000"])]:
    B, od = spacing_grid(A_ct, ct.shape, sp)
    mode = extra[1] if "--mode" in extra else "nearest"
    cval = float(extra[3]) if "--fill" in extra else 0.0
    ref = scipy_ref(ct, A_ct, B, od, order, mode, cval, "--antialias" in extra)
    arg = ",".join("%g" % s for s in sp) if len(set(sp)) > 1 else "%g" % sp[0]
    add(name, "resample", CT, ["--vol", "image", "--spacing", arg, "--order", str(order)] + extra, "image",
        ref.astype(np.int16 if order == 0 else np.float32), B,
        "exact" if order == 0 else "float", "scipy.ndimage map_coordinates order %d mode %s" % (order, mode))

# --keep-dtype: scipy's own cast to int16 (round half away from zero, saturate); voxels whose double
# value lies within 1e-6 of a .5 are left out (a rounding difference there is not an error)
B, od = spacing_grid(A_ct, ct.shape, (2.6,) * 3)
m = grid_map(A_ct, B, od)
ref = ndi.map_coordinates(ct.astype(np.float64), coords(m, od), order=1, mode="nearest")
ref16 = ndi.map_coordinates(ct, coords(m, od), order=1, mode="nearest", output=np.int16)
mask = np.abs(np.abs(ref - np.trunc(ref)) - 0.5) > 1e-6
add("sp26_o1_keep", "resample", CT, ["--vol", "image", "--spacing", "2.6", "--keep-dtype"], "image", ref16, B,
    "exact", "scipy.ndimage map_coordinates order 1, output int16", mask=mask)

# ---- MONAI Spacing: the grid convention and bilinear values
import monai  # noqa: E402
import torch  # noqa: E402
from monai.data import MetaTensor  # noqa: E402
from monai.transforms import Spacing  # noqa: E402

for name, sp in [("monai_sp26", (2.6,) * 3), ("monai_aniso", (1.9, 2.7, 4.1)), ("monai_up", (2.2, 2.4, 2.0))]:
    mt = MetaTensor(torch.from_numpy(ct[None].astype(np.float64)), affine=torch.from_numpy(A_ct))
    out = Spacing(pixdim=sp, mode="bilinear", padding_mode="border", dtype=torch.float64)(mt)
    B, od = spacing_grid(A_ct, ct.shape, sp)
    assert tuple(out.shape[1:]) == od and np.array_equal(out.affine.numpy(), B), (name, out.shape, out.affine)
    arg = ",".join("%g" % s for s in sp) if len(set(sp)) > 1 else "%g" % sp[0]
    add(name, "resample", CT, ["--vol", "image", "--spacing", arg], "image", out[0].numpy().astype(np.float32),
        out.affine.numpy(), "float", "MONAI %s Spacing(pixdim, bilinear, border)" % monai.__version__)

# ---- labels (exact: the same coordinates and tap sums as scipy)
labs = np.unique(seg)


def label_ref(B, od, how):
    C = coords(grid_map(A_seg, B, od), od)
    if how == "nearest":
        return ndi.map_coordinates(seg, C, order=0, mode="nearest")
    P = np.stack([ndi.map_coordinates((seg == lab).astype(np.float64), C, order=1, mode="nearest") for lab in labs])
    if how == "onehot":
        return labs[np.argmax(P, axis=0)].astype(seg.dtype)
    r = np.zeros(od, seg.dtype)  # nnU-Net resize_segmentation: ascending labels, mask >= 0.5 overwrites
    for i, lab in enumerate(labs):
        r[P[i] >= 0.5] = lab
    return r


refs = {}
for how in ("nearest", "onehot", "nnunet"):
    for tag, sp in (("sp26", (2.6,) * 3), ("sp15", (1.5,) * 3)):  # 1.5: coordinates at exact halves
        B, od = spacing_grid(A_seg, seg.shape, sp)
        refs[how, tag] = label_ref(B, od, how)
        add("label_%s_%s" % (tag, how), "resample", CT, ["--vol", "label", "--spacing", "%g" % sp[0], "--label-mode", how],
            "label", refs[how, tag], B, "exact", "scipy order 0" if how == "nearest" else "numpy one-hot + scipy order 1 + " + how)
assert not np.array_equal(refs["onehot", "sp26"], refs["nearest", "sp26"])
assert not np.array_equal(refs["onehot", "sp15"], refs["nnunet", "sp15"]), "onehot and nnunet rules should differ somewhere"

# ---- --like: target grids (axis-parallel with flips beyond the edges; oblique)
B = np.eye(4)
B[:3, :3] = np.diag([-2.7, 3.1, 2.3])
B[:3, 3] = A_ct[:3, 3] + [97.37, -4.41, -2.93]
_, B_flip = save_nii("grid_flip.nii.gz", np.zeros((36, 33, 23), np.uint8), B)
B = np.eye(4)
B[:3, :3] = rot(2, -0.4) @ rot(1, 0.25) @ np.diag([2.2, 2.5, 2.9])
B[:3, 3] = A_ct[:3, 3] + [-3.3, 18.7, -4.1]
_, B_obl = save_nii("grid_obl.nii.gz", np.zeros((38, 36, 18), np.uint8), B)
for gname, B, od in (("flip", B_flip, (36, 33, 23)), ("obl", B_obl, (38, 36, 18))):
    for order in (0, 1, 3):
        ref = scipy_ref(ct, A_ct, B, od, order)
        add("like_%s_o%d" % (gname, order), "resample", CT, ["--vol", "image", "--like", "grid_%s.nii.gz" % gname,
            "--order", str(order)], "image", ref.astype(np.int16 if order == 0 else np.float32), B,
            "exact" if order == 0 else "float", "scipy.ndimage map_coordinates order %d" % order)
    add("like_%s_label_onehot" % gname, "resample", CT, ["--vol", "label", "--like", "grid_%s.nii.gz" % gname,
        "--label-mode", "onehot"], "label", label_ref(B, od, "onehot"), B, "exact", "numpy one-hot + scipy order 1")

# --like-vol: the oblique volume onto the CT's grid, read together in one case (the CT stays as it is)
with open(os.path.join(OUT, "ct_obl.vxp"), "wb") as fh:
    vxp.write(fh, [{"id": "ct_obl", "vols": {"image": vxp.Vol(ct, A_ct), "obl": vxp.Vol(obl, A_obl)}, "meta": {}}])
for order in (1, 3):
    ref = scipy_ref(obl, A_obl, A_ct, ct.shape, order, antialias=True)
    add("likevol_obl_o%d_aa" % order, "resample", ["ct_obl.vxp"],
        ["--like-vol", "image", "--order", str(order), "--antialias"], "obl", ref.astype(np.float32), A_ct, "float",
        "scipy gaussian_filter + map_coordinates order %d" % order)

# ---- channels: a 2-channel probability-like volume
prob = np.stack([ct.astype(np.float32) / 1000, (seg > 0).astype(np.float32)], axis=-1)[:20, :20, :10]
with open(os.path.join(OUT, "prob.vxp"), "wb") as fh:
    vxp.write(fh, [{"id": "prob", "vols": {"prob": vxp.Vol(prob, A_ct)}, "meta": {}}])
B, od = spacing_grid(A_ct, prob.shape[:3], (3.4,) * 3)
ref = np.stack([scipy_ref(prob[..., c], A_ct, B, od, 3) for c in range(2)], axis=-1)
add("prob_o3", "resample", ["prob.vxp"], ["--spacing", "3.4", "--order", "3"], "prob", ref.astype(np.float32), B,
    "float", "scipy.ndimage map_coordinates order 3, per channel")

# ---- SimpleITK on the same output grid
import SimpleITK as sitk  # noqa: E402

LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def to_sitk(arr, A):
    im = sitk.GetImageFromArray(np.ascontiguousarray(arr.transpose(2, 1, 0)))
    L = LPS @ A
    sp = np.sqrt((L[:3, :3] ** 2).sum(0))
    im.SetSpacing([float(s) for s in sp])
    im.SetOrigin([float(x) for x in L[:3, 3]])
    im.SetDirection([float(x) for x in (L[:3, :3] / sp).ravel()])
    return im


def sitk_ref(src, A, B, od, interp):
    ref = to_sitk(np.zeros(od, np.float32), B)
    out = sitk.Resample(to_sitk(src.astype(np.float32), A), ref, sitk.Transform(), interp, 0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out).transpose(2, 1, 0)


B = np.eye(4)
B[:3, :3] = np.diag([1.7, 1.7, 1.7])
corners = np.array([[i, j, k, 1] for i in (0, 39) for j in (0, 35) for k in (0, 29)], np.float64) @ A_obl.T
B[:3, 3] = corners[:, :3].min(0) - 1.3
od_obl = tuple(int(x) for x in np.ceil((corners[:, :3].max(0) - corners[:, :3].min(0) + 2.6) / 1.7))
_, B_ras = save_nii("grid_ras.nii.gz", np.zeros(od_obl, np.uint8), B)
for src, A, read, B, od, tag in ((obl, A_obl, OBL, B_ras, od_obl, "obl"), (ct, A_ct, CT, B_flip, (36, 33, 23), "ct")):
    C = coords(grid_map(A, B, od), od)
    n = np.array(src.shape, np.float64).reshape(3, 1, 1, 1)
    inside = np.all((C >= -0.5 + 1e-6) & (C < n - 0.5 - 1e-6), axis=0)
    frac = C - np.floor(C)
    near_half = np.any(np.abs(frac - 0.5) < 1e-6, axis=0)
    assert inside.sum() > 1000 and near_half.sum() < 10, (tag, inside.sum(), near_half.sum())
    like = "grid_ras.nii.gz" if tag == "obl" else "grid_flip.nii.gz"
    vol = "image"
    add("sitk_%s_nearest" % tag, "resample", read, ["--vol", vol, "--like", like, "--order", "0"], vol,
        sitk_ref(src, A, B, od, sitk.sitkNearestNeighbor).astype(np.int16), B, "exact",
        "SimpleITK %s NearestNeighbor, inside the input buffer" % sitk.Version.VersionString(), mask=inside & ~near_half)
    add("sitk_%s_linear" % tag, "resample", read, ["--vol", vol, "--like", like, "--order", "1"], vol,
        sitk_ref(src, A, B, od, sitk.sitkLinear), B, "float", "SimpleITK Linear, inside the input buffer", mask=inside)
    bs = sitk_ref(src, A, B, od, sitk.sitkBSpline)
    add("sitk_%s_bspline_mirror" % tag, "resample", read, ["--vol", vol, "--like", like, "--order", "3", "--mode", "mirror"],
        vol, bs, B, "float", "SimpleITK BSpline (mirror boundary), inside the input buffer", mask=inside)
    if tag == "obl":
        interior = np.all((C >= 10) & (C <= n - 11), axis=0)
        assert interior.sum() > 500, interior.sum()
        add("sitk_obl_bspline_interior", "resample", read, ["--vol", vol, "--like", like, "--order", "3"], vol, bs, B,
            "float", "SimpleITK BSpline vs mode nearest, >= 10 voxels inside", mask=interior)

# ---- reorient: nibabel
base = nib.Nifti1Image(ct, A_ct)
to_pir = ornt.ornt_transform(ornt.io_orientation(A_ct), ornt.axcodes2ornt(tuple("PIR")))
pir = base.as_reoriented(to_pir)
ct_pir, A_pir = save_nii("ct_pir.nii.gz", np.asarray(pir.dataobj), pir.affine)
seg_pir = nib.Nifti1Image(seg, A_seg).as_reoriented(to_pir)
save_nii("seg_pir.nii.gz", np.asarray(seg_pir.dataobj), seg_pir.affine)
for src, A, read, code, vol in ((ct_pir, A_pir, ["ct_pir.nii.gz", "--label", "seg_pir.nii.gz"], "RAS", "image"),
                                (ct, A_ct, CT, "LPS", "image"), (ct, A_ct, CT, "AIL", "label"),
                                (ct_pir, A_pir, ["ct_pir.nii.gz"], "SLP", "image")):
    data = src if vol == "image" else (seg if code != "RAS" else np.asarray(seg_pir.dataobj))
    img = nib.Nifti1Image(data, A)
    t = ornt.ornt_transform(ornt.io_orientation(A), ornt.axcodes2ornt(tuple(code)))
    r = img.as_reoriented(t)
    assert "".join(nib.aff2axcodes(r.affine)) == code
    add("reorient_%s_%s_%s" % (read[0].split(".")[0], code, vol), "reorient", read, ["--to", code] if code != "RAS" else [],
        vol, np.asarray(r.dataobj), r.affine, "exact", "nibabel %s as_reoriented" % nib.__version__)

with open(os.path.join(OUT, "cases.json"), "w") as fh:
    json.dump(cases, fh, indent=1)
big = [(f, os.path.getsize(os.path.join(OUT, f))) for f in os.listdir(OUT) if os.path.getsize(os.path.join(OUT, f)) > 200_000]
assert not big, big
print("%d cases in %s" % (len(cases), os.path.relpath(OUT)))
