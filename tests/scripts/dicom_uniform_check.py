"""dicom_uniform_check.py - the reference for dcm-fetch --uniform (tests/shell/dicom_geometry.bats),
written apart from the C code with pydicom, numpy and scipy.

    dicom_uniform_check.py OURS.vxp SRC_DIR

From the source slices (HU) and their ImagePositionPatient/ImageOrientationPatient/PixelSpacing:
the output grid keeps the first slice's (along the normal) in-plane axes and spacing, widened to hold
every shifted slice; steps along the normal by the median gap between neighbouring slices, from the
first to the last. Each output voxel is the source value at its world position: within a slice by
scipy.ndimage.map_coordinates (order 1, mode grid-constant: outside is the series
minimum, blended in at the edges), between slices linearly along
the normal; integers rounded half up. Prints 'ok <shape> <max affine error> <voxels off by 1>' when
the shape matches, the affine is within 1e-4 mm and no voxel differs by more than 1 (float rounding
at .5 may flip a few by 1; at most 1 in 10^4 allowed), else what differs.
"""
import os
import sys

import numpy as np
import pydicom
from scipy.ndimage import map_coordinates

sys.path.insert(0, os.path.dirname(__file__))
import vxp  # noqa: E402


def main(ours_path, src):
    v = list(vxp.read(open(ours_path, "rb")))[0]["vols"]["image"]
    sl = []
    for f in sorted(os.listdir(src)):
        d = pydicom.dcmread(os.path.join(src, f))
        hu = d.pixel_array.astype(np.float64) * float(d.get("RescaleSlope", 1)) + float(d.get("RescaleIntercept", 0))
        sl.append((np.array(d.ImagePositionPatient, float), hu, d))
    d0 = sl[0][2]
    iop = np.array(d0.ImageOrientationPatient, float)
    r, c = iop[:3], iop[3:]
    n = np.cross(r, c)
    n /= np.linalg.norm(n)
    psr, psc = [float(x) for x in d0.PixelSpacing]
    sl.sort(key=lambda s: float(s[0] @ n))
    o = sl[0][0]
    p = np.array([(s[0] - o) @ n for s in sl])
    si = np.array([(o - s[0]) @ r / psc for s in sl])
    sj = np.array([(o - s[0]) @ c / psr for s in sl])
    step = float(np.median(np.diff(p)))
    nz = int(round(p[-1] / step)) + 1
    rows, cols = sl[0][1].shape
    i0, i1 = int(np.floor(-si.max() + 1e-6)), int(np.ceil(cols - 1 - si.min() - 1e-6))
    j0, j1 = int(np.floor(-sj.max() + 1e-6)), int(np.ceil(rows - 1 - sj.min() - 1e-6))
    fill = min(s[1].min() for s in sl)
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1], lps[:3, 2] = r * psc, c * psr, n * step
    lps[:3, 3] = o + i0 * r * psc + j0 * c * psr
    want_aff = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    shape = (i1 - i0 + 1, j1 - j0 + 1, nz)
    errs = []
    if v.data.shape != shape:
        errs.append("shape %s, expected %s" % (v.data.shape, shape))
    aerr = float(np.abs(v.affine - want_aff).max())
    if aerr > 1e-4:
        errs.append("affine differs by %g:\n%s\nexpected\n%s" % (aerr, v.affine, want_aff))
    if errs:
        print("\n".join(errs))
        return
    ii, jj = np.meshgrid(np.arange(i0, i1 + 1), np.arange(j0, j1 + 1), indexing="ij")

    def at(k):  # source slice k sampled on the output grid (x = column, y = row)
        return map_coordinates(sl[k][1], [jj + sj[k], ii + si[k]], order=1, mode="grid-constant", cval=fill)

    want = np.empty(shape)
    for z in range(nz):
        t = z * step
        k = min(int(np.searchsorted(p, t, side="right")) - 1, len(p) - 2)
        w = (t - p[k]) / (p[k + 1] - p[k])
        w = 0.0 if abs(w) < 1e-6 else 1.0 if abs(w - 1) < 1e-6 else min(max(w, 0.0), 1.0)
        want[:, :, z] = at(k) if w == 0 else at(k + 1) if w == 1 else (1 - w) * at(k) + w * at(k + 1)
    if v.data.dtype != np.float32:
        want = np.floor(want + 0.5)
    diff = np.abs(want - v.data.astype(np.float64))
    off1 = int((diff > 0).sum())
    if diff.max() > 1 or off1 > diff.size // 10000:
        bad = np.argwhere(diff > 1)
        print("%d voxels differ (%d by more than 1; max %g; first at %s)" % (off1, len(bad), diff.max(), bad[:3].tolist()))
        return
    print("ok", v.data.shape, "%.2g" % aerr, off1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
