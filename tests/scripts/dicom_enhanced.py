"""dicom_enhanced.py - an Enhanced (multi-frame) CT Image from a single-frame CT series, for
tests/shell/dicom_geometry.bats, with highdicom's legacy converter (PS3.3 A.70 Legacy Converted
Enhanced CT: per-frame PlanePositionSequence, shared or per-frame PlaneOrientationSequence,
PixelMeasuresSequence and PixelValueTransformationSequence).

    dicom_enhanced.py SRC_DIR OUT.dcm

SRC_DIR needs UIDs (dicom_fixtures.py identify). The frames go in a fixed shuffled order (the odd
files by name, then the even ones), not along the slice normal, so a reader has to place each frame
by its own position. Written explicit VR little endian, pixels decoded by pydicom.
"""
import os
import sys

import pydicom
from highdicom.legacy import LegacyConvertedEnhancedCTImage
from pydicom.uid import ExplicitVRLittleEndian


def main(src, out):
    files = sorted(os.path.join(src, f) for f in os.listdir(src))
    ds = [pydicom.dcmread(f) for f in files]
    ds = ds[1::2] + ds[0::2]
    for d in ds:  # decoded pixels: the converter copies PixelData as it is
        arr = d.pixel_array
        d.PixelData = arr.tobytes()
        d.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    e = LegacyConvertedEnhancedCTImage(ds, series_instance_uid="1.2.826.0.1.3680043.8.498.3001", series_number=99,
                                       sop_instance_uid="1.2.826.0.1.3680043.8.498.3002", instance_number=1)
    e.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    e.save_as(out, enforce_file_format=True)
    print("%d frames, %s" % (e.NumberOfFrames, e.SOPClassUID.name))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
