"""dicom_fixtures.py - DICOM inputs for tests/shell/dicom.bats, made with pydicom from the shared series.

    dicom_fixtures.py identify SRC_DIR DST_DIR   copies with names, IDs, dates, UIDs, institution and a
                                                 private tag filled in (file names hold the name too)
    dicom_fixtures.py tilt SRC_DIR DST_DIR [R]   positions sheared along y by R mm per mm of z (default 0.176,
                                                 a gantry tilt of ~10 degrees)
    dicom_fixtures.py tiltiop SRC_DIR DST_DIR DEG  a scanner's gantry tilt: ImageOrientationPatient's column
                                                 direction rotated by DEG about x, GantryDetectorTilt DEG,
                                                 positions still along z (the table's travel)
    dicom_fixtures.py irregular SRC_DIR DST_DIR  the slices from the 6th to the 10th (by position) moved
                                                 0.8 mm up: gaps of 2.8 and 1.2 mm among 2 mm ones
    dicom_fixtures.py uncompressed SRC_DIR DST_DIR N   N slices, explicit little endian, 512x512,
                                                 tiling the decoded series along z (for the benchmark)
    dicom_fixtures.py leaks STREAM DICOM_DIR     prints every identifying value of the DICOM files
                                                 that occurs in the stream's bytes ("none" if none)
"""
import os
import sys

import numpy as np
import pydicom
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

IDENTIFYING_VRS = {"PN", "LO", "SH", "DA", "TM", "DT", "UI", "AS", "ST", "LT", "UT"}


def files(d):
    return sorted(os.path.join(d, f) for f in os.listdir(d))


def identify(src, dst):
    os.makedirs(dst, exist_ok=True)
    study, series = "1.2.826.0.1.3680043.8.498.1001", "1.2.826.0.1.3680043.8.498.1002"
    for i, f in enumerate(files(src)):
        ds = pydicom.dcmread(f)
        ds.PatientName = "Doe^Jane^Quinn"
        ds.PatientID = "PID-7788991"
        ds.PatientBirthDate = "19610203"
        ds.OtherPatientIDs = "OTHER-4455667"
        ds.InstitutionName = "Saint Example Hospital"
        ds.ReferringPhysicianName = "Welby^Marcus"
        ds.AccessionNumber = "ACC9988776"
        ds.StudyID = "STUDY4242"
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series
        ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.2%03d" % i
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        ds.StudyTime = "101112"
        ds.add_new(0x00110010, "LO", "ACME PRIVATE")
        ds.add_new(0x00111001, "LO", "PrivateSecretValue")
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(os.path.join(dst, "Doe_Jane_%s.dcm" % ds.SOPInstanceUID), enforce_file_format=True)


def tilt(src, dst, r=0.176):
    os.makedirs(dst, exist_ok=True)
    for f in files(src):
        ds = pydicom.dcmread(f)
        x, y, z = [float(v) for v in ds.ImagePositionPatient]
        ds.ImagePositionPatient = [x, y + r * z, z]
        ds.save_as(os.path.join(dst, os.path.basename(f)))


def tiltiop(src, dst, deg):
    os.makedirs(dst, exist_ok=True)
    t = np.radians(deg)
    for f in files(src):
        ds = pydicom.dcmread(f)
        ds.ImageOrientationPatient = [1, 0, 0, 0, float(np.cos(t)), float(np.sin(t))]
        ds.GantryDetectorTilt = deg
        ds.save_as(os.path.join(dst, os.path.basename(f)))


def irregular(src, dst):
    os.makedirs(dst, exist_ok=True)
    zs = sorted(float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]) for f in files(src))
    moved = set(zs[5:10])
    for f in files(src):
        ds = pydicom.dcmread(f)
        x, y, z = [float(v) for v in ds.ImagePositionPatient]
        if z in moved:
            ds.ImagePositionPatient = [x, y, z + 0.8]
        ds.save_as(os.path.join(dst, os.path.basename(f)))


def uncompressed(src, dst, n):
    os.makedirs(dst, exist_ok=True)
    srcs = [pydicom.dcmread(f) for f in files(src)]
    srcs.sort(key=lambda d: float(d.ImagePositionPatient[2]))
    pix = [d.pixel_array for d in srcs] if hasattr(srcs[0], "pixel_array") else None
    series = generate_uid(entropy_srcs=["voxpipe-bench"])
    for k in range(n):
        d = srcs[k % len(srcs)].copy()
        a = pix[k % len(srcs)] if pix else np.zeros((d.Rows, d.Columns), np.uint16)
        d.PixelData = np.ascontiguousarray(a.astype(np.uint16)).tobytes()
        d.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        x, y, _ = [float(v) for v in d.ImagePositionPatient]
        d.ImagePositionPatient = [x, y, -800.0 + 2.0 * k]
        d.SeriesInstanceUID = series
        d.SOPInstanceUID = generate_uid(entropy_srcs=["voxpipe-bench", str(k)])
        d.InstanceNumber = k + 1
        d.save_as(os.path.join(dst, "slice%04d.dcm" % k), enforce_file_format=True)


def leaks(stream, d):
    data = open(stream, "rb").read()
    values = set()
    for f in files(d):
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        values.add(os.path.basename(f))
        for el in ds.iterall():
            if el.VR in IDENTIFYING_VRS or el.tag.is_private:
                vs = el.value if isinstance(el.value, (list, pydicom.multival.MultiValue)) else [el.value]
                for v in vs:
                    s = str(v).strip()
                    if el.VR == "UI" and s.startswith("1.2.840.10008."):
                        continue  # standard UIDs (transfer syntax, SOP class) identify no one
                    if len(s) >= 6:
                        values.add(s)
                        if el.VR == "PN":
                            values.update(p for p in s.split("^") if len(p) >= 4)
    found = sorted(v for v in values if v.encode() in data)
    print("\n".join(found) if found else "none")
    print("checked %d values" % len(values), file=sys.stderr)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "identify":
        identify(sys.argv[2], sys.argv[3])
    elif cmd == "tilt":
        tilt(sys.argv[2], sys.argv[3], *[float(a) for a in sys.argv[4:5]])
    elif cmd == "tiltiop":
        tiltiop(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    elif cmd == "irregular":
        irregular(sys.argv[2], sys.argv[3])
    elif cmd == "uncompressed":
        uncompressed(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif cmd == "leaks":
        leaks(sys.argv[2], sys.argv[3])
