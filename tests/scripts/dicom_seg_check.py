"""dicom_seg_check.py - label volumes for dcm-store and the check of its SEG with highdicom
(tests/shell/dicom_seg.bats).

    dicom_seg_check.py labels IN.vxp OUT.vxp
        adds a volume "label" on the image's grid, classes from HU thresholds (bone left/right of the
        middle column, air-like soft tissue) and meta "labels" naming vertebrae, the sacrum and one
        class without a specific code
    dicom_seg_check.py check SEG.dcm LABELS.vxp
        reads the SEG with highdicom.seg.segread and rebuilds the label volume in world coordinates
        from the plane positions, orientation and spacing; prints "ok <segments> <frames>" when it
        equals the input labels, the references match meta.dicom and the vertebra/sacrum codes equal
        pydicom's SNOMED CT codes; else the differences
"""
import re
import sys

import numpy as np

sys.path.insert(0, __import__("os").path.dirname(__file__))
import vxp  # noqa: E402

NAMES = {"1": "vertebrae_L1", "2": "sacrum", "3": "soft_tissue", "5": "vertebrae_T12"}


def labels(src, dst):
    c = list(vxp.read(open(src, "rb")))[0]
    img = c["vols"]["image"].data
    lab = np.zeros(img.shape, np.uint8)
    mid = img.shape[0] // 2
    lab[(img > 200)] = 1
    lab[:mid][img[:mid] > 200] = 2
    lab[(img > -100) & (img < 0)] = 3
    lab[:, :, 3:5][img[:, :, 3:5] > 500] = 5
    c["vols"]["label"] = vxp.Vol(lab, c["vols"]["image"].affine)
    c["meta"]["labels"] = NAMES
    vxp.write(open(dst, "wb"), [c])


def check(seg_path, vxp_path):
    import highdicom as hd
    from pydicom.sr.codedict import codes

    c = list(vxp.read(open(vxp_path, "rb")))[0]
    lab = c["vols"]["label"]
    meta, names = c["meta"]["dicom"], c["meta"].get("labels", {})
    seg = hd.seg.segread(seg_path)
    errs = []
    if seg.StudyInstanceUID != meta["StudyInstanceUID"]:
        errs.append("StudyInstanceUID")
    if seg.FrameOfReferenceUID != meta["FrameOfReferenceUID"]:
        errs.append("FrameOfReferenceUID")
    if seg.ReferencedSeriesSequence[0].SeriesInstanceUID != meta["SeriesInstanceUID"]:
        errs.append("ReferencedSeriesSequence")
    value_of = {}
    for d in seg.SegmentSequence:
        name = d.SegmentLabel
        val = [int(k) for k, v in names.items() if v == name]
        val = val[0] if val else int(name)
        value_of[d.SegmentNumber] = val
        t = d.SegmentedPropertyTypeCodeSequence[0]
        m = re.match(r"vertebrae_([CTL]\d+)$", name)
        want = getattr(codes.SCT, m.group(1) + "Vertebra") if m else codes.SCT.Sacrum if name == "sacrum" else None
        if want is not None and (t.CodeValue, t.CodingSchemeDesignator) != (want.value, want.scheme_designator):
            errs.append("code of %s: %s" % (name, t.CodeValue))
        if len(d.RecommendedDisplayCIELabValue) != 3:
            errs.append("colour of %s" % name)
    px = seg.pixel_array
    if px.ndim == 2:
        px = px[None]
    sh = seg.SharedFunctionalGroupsSequence[0]
    iop = np.array(sh.PlaneOrientationSequence[0].ImageOrientationPatient, float)
    ps = np.array(sh.PixelMeasuresSequence[0].PixelSpacing, float)
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lab.affine
    inv = np.linalg.inv(lps)
    rec = np.zeros(lab.data.shape, np.int64)
    sops = meta["SOPInstanceUIDs"]
    for f, item in enumerate(seg.PerFrameFunctionalGroupsSequence):
        ipp = np.array(item.PlanePositionSequence[0].ImagePositionPatient, float)
        sn = item.SegmentIdentificationSequence[0].ReferencedSegmentNumber
        r, q = np.nonzero(px[f])
        world = ipp[None] + q[:, None] * ps[1] * iop[None, :3] + r[:, None] * ps[0] * iop[None, 3:]
        ijk = (inv @ np.c_[world, np.ones(len(world))].T)[:3].T
        k = int(round(float((inv @ np.r_[ipp, 1])[2])))
        src = item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        if src != sops[k]:
            errs.append("frame %d: source image %s, slice %d is %s" % (f, src, k, sops[k]))
        idx = np.rint(ijk).astype(int)
        if len(idx) and (np.abs(ijk - idx).max() > 1e-3 or (idx < 0).any() or (idx >= lab.data.shape).any()):
            errs.append("frame %d: off the label grid" % f)
            continue
        cur = rec[idx[:, 0], idx[:, 1], idx[:, 2]]
        if (cur != 0).any():
            errs.append("frame %d: overlaps another segment" % f)
        rec[idx[:, 0], idx[:, 1], idx[:, 2]] = value_of[sn]
    diff = int((rec != lab.data).sum())
    if diff:
        errs.append("%d voxels differ from the input labels" % diff)
    if errs:
        print("\n".join(errs))
    else:
        print("ok %d %d" % (len(seg.SegmentSequence), len(seg.PerFrameFunctionalGroupsSequence)))


if __name__ == "__main__":
    {"labels": lambda: labels(sys.argv[2], sys.argv[3]), "check": lambda: check(sys.argv[2], sys.argv[3])}[sys.argv[1]]()
