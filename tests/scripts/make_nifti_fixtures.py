"""make_nifti_fixtures.py OUTDIR - NIfTI test files written with nibabel, and what nibabel says about them.

Writes OUTDIR/NAME.nii[.gz] for a set of cases that exercise the header paths voxpipe must read the
way nibabel does (sform / qform / base affine precedence, qfac, permuted axes, NIfTI-2, big-endian,
scl_slope/scl_inter, dtype conversion, 4D channels), and OUTDIR/expected.json:

    {NAME: {"file": "NAME.nii.gz", "affine": 4x4 (img.affine = header.get_best_affine()),
            "shape": [...], "axcodes": "LPS", "zooms": header.get_zooms()[:3],
            "vp_dtype": "i16" (what voxpipe must produce), "values": "NAME.npy",
            "version": 1|2, "datatype": header datatype code, "qform_code", "sform_code",
            "sha256": of the .npy values}, ...}

NAME.npy holds nibabel's voxel values: np.asanyarray(img.dataobj) for unscaled files, get_fdata()
(float64) for scaled ones. Every expected value is read back from the written file with nib.load,
never taken from the arrays used to make it. Volumes are small (7x9x11-ish) with non-symmetric
random content so that a swapped or flipped axis shows.
"""
import hashlib
import json
import logging
import os
import sys

import nibabel as nib
import numpy as np
from nibabel.volumeutils import array_to_file

# the m_ and n_ fixtures are repaired by nibabel's header check on every load; that is the point
logging.getLogger("nibabel.global").setLevel(logging.ERROR)

# voxpipe's stream dtypes (tests/scripts/vxp.py)
VP_NUMPY = {"u8": np.uint8, "i16": np.int16, "u16": np.uint16, "i32": np.int32, "f32": np.float32}
NATIVE = {np.dtype(np.uint8): "u8", np.dtype(np.int16): "i16", np.dtype(np.uint16): "u16",
          np.dtype(np.int32): "i32", np.dtype(np.float32): "f32"}


def vp_dtype_for(img):
    """The voxpipe dtype a NIfTI image must be read as (lib/nifti.h contract): the file's type when
    voxpipe has it and there is no scaling; otherwise, for integer data with integer slope and
    intercept, the narrowest of u8 (only for uint8 files) / i16 / u16 / i32 holding the scaled
    values; anything else (float64, fractional scaling, ...) float32."""
    raw = np.dtype(img.get_data_dtype()).newbyteorder("=")
    slope, inter = slope_inter(img)
    if slope == 1 and inter == 0 and raw in NATIVE:
        return NATIVE[raw]
    if raw.kind in "iu" and slope == np.floor(slope) and inter == np.floor(inter):
        vals = img.get_fdata()
        lo, hi = float(vals.min()), float(vals.max())
        if raw == np.uint8 and lo >= 0 and hi <= 255:
            return "u8"
        if lo >= -32768 and hi <= 32767:
            return "i16"
        if lo >= 0 and hi <= 65535:
            return "u16"
        if lo >= -2**31 and hi <= 2**31 - 1:
            return "i32"
    return "f32"


def slope_inter(img):
    """The scaling nibabel applies to a loaded image (nib.load moves scl_slope/scl_inter from the
    header into the array proxy and resets the header's copy)."""
    return float(img.dataobj.slope), float(img.dataobj.inter)


def nib_values(img):
    """nibabel's voxel values: raw array when unscaled, get_fdata() (float64) when scaled."""
    if slope_inter(img) == (1.0, 0.0):
        return np.asanyarray(img.dataobj)
    return img.get_fdata()


def rot(axis, deg):
    t = np.deg2rad(deg)
    c, s = np.cos(t), np.sin(t)
    i, j = [(1, 2), (0, 2), (0, 1)][axis]
    m = np.eye(3)
    m[i, i] = c
    m[j, j] = c
    m[i, j] = -s
    m[j, i] = s
    return m


def affine(R, zooms, offset):
    a = np.eye(4)
    a[:3, :3] = np.asarray(R) @ np.diag(zooms)
    a[:3, 3] = offset
    return a


SHAPE = (7, 9, 11)


def rand(rng, dtype, lo, hi, shape=SHAPE):
    return rng.integers(lo, hi, size=shape, endpoint=True).astype(dtype)


def write_scaled(path, data, aff, slope, inter, klass=nib.Nifti1Image, endianness=None):
    """Write raw integer data with the given scl_slope/scl_inter in the header (nib.save recomputes
    scaling from the data, so the header and the array go through nibabel's lower-level writers)."""
    hdr = klass.header_class(endianness=endianness) if endianness else klass.header_class()
    hdr.set_data_shape(data.shape)
    hdr.set_data_dtype(data.dtype)
    hdr.set_sform(aff, code=1)
    hdr.set_qform(aff, code=1)
    hdr.set_xyzt_units("mm")
    hdr["scl_slope"] = slope
    hdr["scl_inter"] = inter
    hdr["vox_offset"] = 0  # nibabel picks the minimum for a single file
    with nib.openers.ImageOpener(path, "wb") as f:
        hdr.write_to(f)
        array_to_file(data, f, hdr.get_data_dtype(), offset=int(hdr["vox_offset"]), order="F")


def make(outdir):
    rng = np.random.default_rng(20240531)
    os.makedirs(outdir, exist_ok=True)
    cases = {}

    def save(name, img, sform=None, qform=None, ext=".nii.gz"):
        """sform/qform: (affine, code) to set on the image header before saving."""
        if sform is not None:
            img.header.set_sform(sform[0], code=sform[1])
        if qform is not None:
            img.header.set_qform(qform[0], code=qform[1])
        path = os.path.join(outdir, name + ext)
        # saving straight from the header: nib.save would rewrite sform/qform from img.affine
        hdr = img.header
        hdr.set_data_shape(img.shape)
        with nib.openers.ImageOpener(path, "wb") as f:
            hdr["vox_offset"] = 0
            hdr.write_to(f)
            array_to_file(np.asanyarray(img.dataobj), f, hdr.get_data_dtype(), offset=int(hdr["vox_offset"]),
                          order="F")
        cases[name] = path

    oblique = affine(rot(0, 20) @ rot(1, -12), (0.8, 1.1, 2.5), (-31.5, 12.25, 40.75))
    other = affine(rot(2, 35) @ rot(0, -8), (1.3, 0.6, 1.9), (5.0, -7.0, 9.0))  # decoy: must be ignored

    # (a) oblique sform (code 1) and a different qform (code 1): the sform wins
    img = nib.Nifti1Image(rand(rng, np.int16, -1024, 3000), None)
    img.header.set_data_dtype(np.int16)
    save("a_sform_oblique", img, sform=(oblique, 1), qform=(other, 1))

    # (b) qform only (sform_code 0, srow filled with a decoy), oblique, det < 0 -> qfac -1
    qfac_aff = affine(rot(0, 20) @ rot(1, -12), (0.8, 1.1, -2.5), (-31.5, 12.25, 40.75))
    img = nib.Nifti1Image(rng.standard_normal(SHAPE).astype(np.float32) * 100, None)
    img.header.set_data_dtype(np.float32)
    save("b_qform_qfac", img, sform=(other, 0), qform=(qfac_aff, 1), ext=".nii")

    # (c) LPS, sform + qform; and the same with qform only (rotation by 180 deg: quaternion w = 0)
    lps = affine(np.diag([-1.0, -1.0, 1.0]), (0.7, 0.75, 1.5), (90.0, 120.5, -60.0))
    img = nib.Nifti1Image(rand(rng, np.uint8, 0, 255), None)
    img.header.set_data_dtype(np.uint8)
    save("c_lps", img, sform=(lps, 1), qform=(lps, 1))
    img = nib.Nifti1Image(rand(rng, np.int16, -500, 500), None)
    img.header.set_data_dtype(np.int16)
    save("c_lps_qform", img, sform=(other, 0), qform=(lps, 1), ext=".nii")

    # (d) PIR: voxel i -> posterior, j -> inferior, k -> right (axes permuted)
    P = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    pir = affine(P, (0.9, 1.2, 3.0), (-15.0, 100.0, 80.0))
    img = nib.Nifti1Image(rand(rng, np.int16, -1000, 1000), None)
    img.header.set_data_dtype(np.int16)
    save("d_pir", img, sform=(pir, 1), qform=(pir, 1))
    img = nib.Nifti1Image(rand(rng, np.uint16, 0, 4000), None)
    img.header.set_data_dtype(np.uint16)
    save("d_pir_qform", img, sform=(other, 0), qform=(pir, 2), ext=".nii")

    # (e) neither sform nor qform (both codes 0, both filled with decoys): nibabel's base affine
    img = nib.Nifti1Image(rand(rng, np.int16, -100, 100, shape=(8, 9, 10)), None)
    img.header.set_data_dtype(np.int16)
    img.header.set_sform(other, code=0)
    img.header.set_qform(other, code=0)
    img.header.set_zooms((1.5, 2.0, 2.5))  # after set_qform, which writes the decoy's zooms to pixdim
    save("e_no_xform", img)

    # (f) NIfTI-2, oblique, offsets beyond float32 precision; and a NIfTI-2 qform-only file
    n2aff = oblique.copy()
    n2aff[:3, 3] = (-123.456789012345, 98.7654321098765, 0.123456789012345)
    img = nib.Nifti2Image(rand(rng, np.int32, -100000, 100000), None)
    img.header.set_data_dtype(np.int32)
    save("f_nifti2_oblique", img, sform=(n2aff, 1), qform=(n2aff, 1))
    n2q = qfac_aff.copy()
    n2q[:3, 3] = n2aff[:3, 3]
    img = nib.Nifti2Image(rand(rng, np.int16, -3000, 3000), None)
    img.header.set_data_dtype(np.int16)
    save("f_nifti2_qform", img, sform=(other, 0), qform=(n2q, 1), ext=".nii")

    # (h) big-endian files: oblique int16, and big-endian scaled data
    img = nib.Nifti1Image(rand(rng, np.int16, -2000, 2000), None, nib.Nifti1Header(endianness=">"))
    img.header.set_data_dtype(">i2")
    save("h_bigendian_i16", img, sform=(oblique, 1), qform=(oblique, 1), ext=".nii")
    img = nib.Nifti1Image(rng.standard_normal(SHAPE).astype(">f4"), None, nib.Nifti1Header(endianness=">"))
    img.header.set_data_dtype(">f4")
    save("h_bigendian_f32", img, sform=(lps, 1), qform=(lps, 1))
    path = os.path.join(outdir, "h_bigendian_scaled.nii.gz")
    write_scaled(path, rand(rng, np.int16, -2000, 2000), pir, 0.5, 0.25, endianness=">")
    cases["h_bigendian_scaled"] = path
    img = nib.Nifti2Image(rand(rng, np.uint16, 0, 60000), None, nib.Nifti2Header(endianness=">"))
    img.header.set_data_dtype(">u2")
    save("h_nifti2_bigendian", img, sform=(n2aff, 1), qform=(n2aff, 1), ext=".nii")

    # (i) scl_slope / scl_inter: integer result, fractional slope, slope on int8
    path = os.path.join(outdir, "i_scaled_u16_inter.nii.gz")
    write_scaled(path, rand(rng, np.uint16, 0, 3000), oblique, 1.0, -1024.0)
    cases["i_scaled_u16_inter"] = path
    path = os.path.join(outdir, "i_scaled_i16_half.nii")
    write_scaled(path, rand(rng, np.int16, -3000, 3000), lps, 0.5, 0.0)
    cases["i_scaled_i16_half"] = path
    path = os.path.join(outdir, "i_scaled_u16_wide.nii.gz")  # slope 2, inter 10: values past int16 -> u16
    write_scaled(path, rand(rng, np.uint16, 0, 30000), lps, 2.0, 10.0)
    cases["i_scaled_u16_wide"] = path
    path = os.path.join(outdir, "i_scaled_u8_inter.nii.gz")  # uint8 + 5, still within 0..255 -> u8
    write_scaled(path, rand(rng, np.uint8, 0, 250), pir, 1.0, 5.0)
    cases["i_scaled_u8_inter"] = path
    path = os.path.join(outdir, "i_scaled_f32.nii")  # float data with scaling
    write_scaled(path, rng.standard_normal(SHAPE).astype(np.float32), oblique, 3.5, -1.25)
    cases["i_scaled_f32"] = path

    # (j) float64 (voxpipe stores float32), int8, and the plain types voxpipe has
    img = nib.Nifti1Image(rng.standard_normal(SHAPE) * 1e3, None)
    img.header.set_data_dtype(np.float64)
    save("j_float64", img, sform=(oblique, 1), qform=(oblique, 1))
    img = nib.Nifti1Image(rand(rng, np.int8, -128, 127), None)
    img.header.set_data_dtype(np.int8)
    save("j_int8", img, sform=(pir, 1), qform=(pir, 1), ext=".nii")
    img = nib.Nifti1Image(rand(rng, np.uint16, 0, 65535), None)
    img.header.set_data_dtype(np.uint16)
    save("j_uint16", img, sform=(oblique, 1), qform=(oblique, 1))

    # (k) 4D: 3 channels
    img = nib.Nifti1Image(rng.standard_normal(SHAPE + (3,)).astype(np.float32), None)
    img.header.set_data_dtype(np.float32)
    save("k_4d_3ch", img, sform=(oblique, 1), qform=(oblique, 1))
    img = nib.Nifti1Image(rand(rng, np.int16, -1000, 1000, shape=SHAPE + (3,)), None)
    img.header.set_data_dtype(np.int16)
    save("k_4d_3ch_qform", img, sform=(other, 0), qform=(pir, 1), ext=".nii")

    # (l) qform near a 180-degree rotation: 0 < 1 - (b^2 + c^2 + d^2) < 3 float32 eps, where nibabel's
    # fillpositive() sets w = 0 (nibabel >= 5; a plain sqrt would give w ~ 4e-4)
    img = nib.Nifti1Image(rand(rng, np.int16, -1000, 1000), None)
    img.header.set_data_dtype(np.int16)
    img.header.set_sform(other, code=0)
    img.header.set_qform(oblique, code=1)
    axis = np.array([0.48, -0.6, 0.64]) / np.linalg.norm([0.48, -0.6, 0.64])
    bcd = (axis * np.sqrt(1 - 4e-4 ** 2)).astype(np.float32)
    img.header["quatern_b"], img.header["quatern_c"], img.header["quatern_d"] = bcd
    save("l_qform_near180", img, ext=".nii")

    # (m) an sform_code nibabel does not know (7): nibabel's header check sets it to 0 on load, so the
    # qform is the affine, not the (decoy) srow
    img = nib.Nifti1Image(rand(rng, np.int16, -1000, 1000), None)
    img.header.set_data_dtype(np.int16)
    img.header.set_sform(other, code=1)
    img.header.set_qform(oblique, code=1)
    img.header["sform_code"] = 7
    save("m_bad_sform_code", img)

    # (n) qfac (pixdim[0]) 0: nibabel's header check sets it to 1
    img = nib.Nifti1Image(rand(rng, np.int16, -1000, 1000), None)
    img.header.set_data_dtype(np.int16)
    img.header.set_sform(other, code=0)
    img.header.set_qform(oblique, code=1)
    img.header["pixdim"][0] = 0
    save("n_qfac_zero", img, ext=".nii")

    # what nibabel says about each file, from the file
    expected = {}
    for name, path in sorted(cases.items()):
        img = nib.load(path)
        hdr = img.header
        aff = hdr.get_best_affine()
        assert np.array_equal(aff, img.affine), name
        vals = nib_values(img)
        np.save(os.path.join(outdir, name + ".npy"), vals)
        expected[name] = {
            "file": os.path.basename(path),
            "affine": aff.tolist(),
            "shape": list(img.shape),
            "axcodes": "".join(nib.aff2axcodes(aff)),
            "zooms": [float(z) for z in hdr.get_zooms()[:3]],
            "voxel_sizes": [float(z) for z in nib.affines.voxel_sizes(aff)],
            "vp_dtype": vp_dtype_for(img),
            "values": name + ".npy",
            "sha256": hashlib.sha256(np.ascontiguousarray(vals).tobytes()).hexdigest(),
            "version": 2 if isinstance(hdr, nib.Nifti2Header) else 1,
            "datatype": int(hdr["datatype"]),
            "qform_code": int(hdr["qform_code"]),
            "sform_code": int(hdr["sform_code"]),
            "endianness": hdr.endianness,
            "pixdim0": float(hdr["pixdim"][0]),
            "slope_inter": list(slope_inter(img)),
        }
    # the cases must be what they claim: fail here rather than test a fixture that isn't one
    E = expected
    assert E["a_sform_oblique"]["sform_code"] == 1 and E["a_sform_oblique"]["qform_code"] == 1
    a_q = nib.load(cases["a_sform_oblique"]).header.get_qform()
    assert not np.allclose(a_q, E["a_sform_oblique"]["affine"], atol=1e-3), "qform decoy equals sform"
    for n in ("b_qform_qfac", "c_lps_qform", "d_pir_qform", "f_nifti2_qform", "k_4d_3ch_qform"):
        assert E[n]["sform_code"] == 0 and E[n]["qform_code"] > 0, n
        srow = nib.load(cases[n]).header.get_sform()
        assert not np.allclose(srow, E[n]["affine"], atol=1e-3), n + ": sform decoy equals qform"
    assert E["b_qform_qfac"]["pixdim0"] == -1 and E["f_nifti2_qform"]["pixdim0"] == -1
    assert E["e_no_xform"]["sform_code"] == 0 and E["e_no_xform"]["qform_code"] == 0
    assert E["c_lps"]["axcodes"] == "LPS" and E["d_pir"]["axcodes"] == "PIR"
    assert E["d_pir_qform"]["axcodes"] == "PIR" and E["c_lps_qform"]["axcodes"] == "LPS"
    assert E["f_nifti2_oblique"]["version"] == 2 and E["h_nifti2_bigendian"]["version"] == 2
    for n in ("h_bigendian_i16", "h_bigendian_f32", "h_bigendian_scaled", "h_nifti2_bigendian"):
        assert E[n]["endianness"] == ">", n
    assert E["i_scaled_u16_inter"]["vp_dtype"] == "i16" and E["i_scaled_i16_half"]["vp_dtype"] == "f32"
    assert E["i_scaled_u8_inter"]["vp_dtype"] == "u8" and E["i_scaled_u8_inter"]["slope_inter"] == [1, 5]
    assert E["j_float64"]["datatype"] == 64 and E["j_int8"]["datatype"] == 256
    assert E["k_4d_3ch"]["shape"] == list(SHAPE) + [3]
    q = nib.load(cases["l_qform_near180"]).header
    w2 = 1 - np.array([q["quatern_b"], q["quatern_c"], q["quatern_d"]], dtype=np.float64) @ \
        np.array([q["quatern_b"], q["quatern_c"], q["quatern_d"]], dtype=np.float64)
    assert 0 < w2 < abs(q.quaternion_threshold) and q.get_qform_quaternion()[0] == 0, w2
    assert E["l_qform_near180"]["sform_code"] == 0 and E["l_qform_near180"]["qform_code"] == 1
    with open(cases["m_bad_sform_code"], "rb") as f:
        raw = nib.Nifti1Header.from_fileobj(__import__("gzip").GzipFile(fileobj=f), check=False)
    assert raw["sform_code"] == 7 and E["m_bad_sform_code"]["sform_code"] == 0
    with open(cases["n_qfac_zero"], "rb") as f:
        assert nib.Nifti1Header.from_fileobj(f, check=False)["pixdim"][0] == 0
    assert E["n_qfac_zero"]["pixdim0"] == 1
    assert any(p.endswith(".nii") for p in cases.values()) and any(p.endswith(".nii.gz") for p in cases.values())
    with open(os.path.join(outdir, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
    return expected


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_nifti_fixtures.py OUTDIR")
    exp = make(sys.argv[1])
    for name, e in sorted(exp.items()):
        print(name, e["file"], e["shape"], e["axcodes"], e["vp_dtype"], "q%d s%d" % (e["qform_code"], e["sform_code"]))
