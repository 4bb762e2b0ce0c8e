"""dicom_check.py - compare dcm-fetch's output with dcm2niix's NIfTI of the same DICOM data.

    dicom_check.py STREAM.vxp REF.nii DICOMFILE [--no-geometry]

dcm2niix may flip or permute axes to its own conventions, so the comparison is in world space:
M = inv(A_ref) @ A_ours maps our voxel indices to dcm2niix's; it must be a signed permutation with
integral translation (checked to 1e-4 mm through the affines), and the voxels, brought onto our grid
through M, must equal ours exactly. The expected values are dcm2niix's stored (unscaled) integers
with the DICOM RescaleSlope/Intercept applied (read with pydicom), in our dtype.
With --no-geometry (files without ImagePositionPatient/Orientation, where both tools invent an
affine) only the directions are used to align the grids; the translation is not compared.
Prints 'ok <dtype> <shape> <max affine error mm>' or raises.
"""
import sys

import nibabel as nib
import numpy as np
import pydicom

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import vxp  # noqa: E402


def main():
    stream, ref, dcm = sys.argv[1:4]
    nogeo = "--no-geometry" in sys.argv
    cases = list(vxp.read(open(stream, "rb")))
    assert len(cases) == 1, "expected one case, got %d" % len(cases)
    v = cases[0]["vols"]["image"]
    ours, A = v.data, v.affine
    img = nib.load(ref)
    raw = np.asanyarray(img.dataobj.get_unscaled())
    while raw.ndim > 3:
        assert raw.shape[-1] == 1
        raw = raw[..., 0]
    while raw.ndim < 3:
        raw = raw[..., None]
    B = img.affine
    ds = pydicom.dcmread(dcm, stop_before_pixels=True)
    src = ds
    if "RescaleSlope" not in ds:  # enhanced images: in the (first frame's or shared) functional groups
        for fg in ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence"):
            if fg in ds and "PixelValueTransformationSequence" in ds[fg].value[0]:
                src = ds[fg].value[0].PixelValueTransformationSequence[0]
                break
    slope = float(src.get("RescaleSlope", 1) or 1)
    inter = float(src.get("RescaleIntercept", 0) or 0)
    M = np.linalg.inv(B) @ A
    R = np.round(M[:3, :3])
    if nogeo:
        R = np.sign(np.round(M[:3, :3] / np.abs(M[:3, :3]).max(axis=0, keepdims=True)))
    assert all((np.abs(R) == 1).sum(axis=0) == 1) and all((np.abs(R) == 1).sum(axis=1) == 1), "not a permutation: %s" % M
    err = 0.0
    if not nogeo:
        Mi = np.eye(4)
        Mi[:3, :3] = R
        Mi[:3, 3] = np.round(M[:3, 3])
        err = float(np.abs(B @ Mi - A).max())
        assert err <= 1e-4, "affines differ by %g mm:\nours\n%s\ndcm2niix\n%s" % (err, A, B)
    # ref axis for each of our axes, and whether it runs backwards
    axes = [int(np.nonzero(R[:, b])[0][0]) for b in range(3)]
    arr = np.transpose(raw, axes)
    for b in range(3):
        a = axes[b]
        if R[a, b] < 0:
            arr = np.flip(arr, axis=b)
            if not nogeo:
                assert round(M[a, 3]) == raw.shape[a] - 1, "flip without matching translation"
        elif not nogeo:
            assert round(M[a, 3]) == 0, "translation %s" % M[:3, 3]
    assert arr.shape == ours.shape, "shape %s vs dcm2niix %s" % (ours.shape, arr.shape)
    want = arr.astype(np.float64) * slope + inter
    if ours.dtype == np.float32:
        want = want.astype(np.float32)
    bad = np.count_nonzero(want != ours)
    assert bad == 0, "%d voxels differ (first: ours %s, dcm2niix %s)" % (
        bad, ours[want != ours][:5], want[want != ours][:5])
    print("ok", ours.dtype, ours.shape, "%.2g" % err)


if __name__ == "__main__":
    main()
