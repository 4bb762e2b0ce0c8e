"""dicom_seg_frames.py - the per-frame source references of a SEG made from an enhanced (multi-frame)
source (tests/shell/dicom_fast.bats).

    dicom_seg_frames.py check SEG.dcm SOURCE.dcm LABELS.vxp
        every SEG frame's DerivationImageSequence/SourceImageSequence must name SOURCE's
        SOPInstanceUID and a ReferencedFrameNumber whose PlanePosition (SOURCE's per-frame
        functional groups) is the SEG frame's ImagePositionPatient; then highdicom's
        get_pixels_by_source_frame (which finds frames by those references) must give, for every
        source frame, the labels of the slice of LABELS.vxp at that frame's position. Prints
        "ok <SEG frames> <source frames>" or the differences.
    dicom_seg_frames.py strip|shift SEG.dcm OUT.dcm
        a broken copy for the negative checks: ReferencedFrameNumber removed, or every frame
        number moved to the next frame (cyclically)
"""
import sys

import numpy as np
import pydicom

sys.path.insert(0, __import__("os").path.dirname(__file__))
import vxp  # noqa: E402


def source_refs(seg):
    for item in seg.PerFrameFunctionalGroupsSequence:
        yield item, item.DerivationImageSequence[0].SourceImageSequence[0]


def check(seg_path, src_path, vxp_path):
    import highdicom as hd

    src = pydicom.dcmread(src_path, stop_before_pixels=True)
    seg = hd.seg.segread(seg_path)
    c = list(vxp.read(open(vxp_path, "rb")))[0]
    lab, names = c["vols"]["label"], c["meta"].get("labels", {})
    nframes = int(src.NumberOfFrames)
    pos = np.array([f.PlanePositionSequence[0].ImagePositionPatient for f in src.PerFrameFunctionalGroupsSequence], float)
    errs = []
    for f, (item, ref) in enumerate(source_refs(seg)):
        if ref.ReferencedSOPInstanceUID != src.SOPInstanceUID:
            errs.append("SEG frame %d: source %s is not the enhanced image" % (f + 1, ref.ReferencedSOPInstanceUID))
            continue
        if "ReferencedFrameNumber" not in ref:
            errs.append("SEG frame %d: no ReferencedFrameNumber" % (f + 1))
            continue
        fn = [int(x) for x in (ref.ReferencedFrameNumber if ref["ReferencedFrameNumber"].VM > 1 else [ref.ReferencedFrameNumber])]
        ipp = np.array(item.PlanePositionSequence[0].ImagePositionPatient, float)
        if len(fn) != 1 or not 1 <= fn[0] <= nframes or np.abs(pos[fn[0] - 1] - ipp).max() > 1e-3:
            errs.append("SEG frame %d at %s: references source frame(s) %s, elsewhere" % (f + 1, ipp.tolist(), fn))
    if errs:
        print("\n".join(errs[:10]))
        return
    # highdicom places the SEG frames by those references; segment number -> label value
    value_of = {}
    for d in seg.SegmentSequence:
        val = [int(k) for k, v in names.items() if v == d.SegmentLabel]
        value_of[d.SegmentNumber] = val[0] if val else int(d.SegmentLabel)
    px = seg.get_pixels_by_source_frame(src.SOPInstanceUID, list(range(1, nframes + 1)), combine_segments=True,
                                        skip_overlap_checks=True)
    lut = np.zeros(max(value_of) + 1, np.int64)
    for sn, v in value_of.items():
        lut[sn] = v
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lab.affine
    inv = np.linalg.inv(lps)
    for f in range(nframes):
        k = float((inv @ np.r_[pos[f], 1])[2])
        kk = int(round(k))
        if abs(k - kk) > 1e-3 or not 0 <= kk < lab.data.shape[2]:
            errs.append("source frame %d: not a slice of the label grid" % (f + 1))
            continue
        want = lab.data[:, :, kk].T  # rows x columns
        got = lut[px[f]]
        if not np.array_equal(got, want):
            errs.append("source frame %d (slice %d): %d pixels differ" % (f + 1, kk, int((got != want).sum())))
    if errs:
        print("\n".join(errs[:10]))
    else:
        print("ok %d %d" % (len(seg.PerFrameFunctionalGroupsSequence), nframes))


def broken(how, seg_path, out):
    seg = pydicom.dcmread(seg_path)
    refs = [r for _, r in source_refs(seg)]
    nums = [int(r.ReferencedFrameNumber) for r in refs]
    for i, r in enumerate(refs):
        if how == "strip":
            del r.ReferencedFrameNumber
        else:
            r.ReferencedFrameNumber = nums[(i + 1) % len(nums)]
    seg.save_as(out)


if __name__ == "__main__":
    if sys.argv[1] == "check":
        check(*sys.argv[2:5])
    else:
        broken(sys.argv[1], sys.argv[2], sys.argv[3])
