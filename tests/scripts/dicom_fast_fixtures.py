"""dicom_fast_fixtures.py - uncompressed series for dcm-fetch's in-place read (tests/shell/dicom_fast.bats)
and the reference it is compared with, computed here with numpy from the raw PixelData bytes.

    dicom_fast_fixtures.py values DIR KIND
        rewrites the explicit little endian series in DIR (dicom_fixtures.py uncompressed) in place:
        u16       BitsStored 16, unsigned, no rescale, half the slices + 40000 (over i16: u16 output)
        i32       intercept -40000 (below i16, signed output: i32)
        signed12  BitsStored 12, signed, garbage in the 4 unused high bits (mask + sign extension)
        float     RescaleSlope 0.5 (not integral: f32)
        smallu8   BitsAllocated 8, values 0..255, no rescale (u8)
    dicom_fast_fixtures.py bigendian IN.dcm OUT.dcm
        IN with PixelData as OW (16-bit words, swapped in big endian; OB would stay a byte stream),
        converted to explicit VR big endian by DCMTK's dcmconv +tb
    dicom_fast_fixtures.py check OUT.vxp DIR
        the volume in OUT.vxp against the files of DIR: slices ordered by ImagePositionPatient along
        the normal, values = stored bits (masked to BitsStored, sign-extended) * slope + intercept
        from the raw bytes; prints "ok DTYPE SHAPE" or what differs
"""
import os
import sys

import numpy as np
import pydicom

sys.path.insert(0, os.path.dirname(__file__))
import vxp  # noqa: E402


def files(d):
    return sorted(os.path.join(d, f) for f in os.listdir(d))


def values(d, kind):
    for i, p in enumerate(files(d)):
        ds = pydicom.dcmread(p)
        a = np.frombuffer(ds.PixelData, "<u2").astype(np.int64).reshape(ds.Rows, ds.Columns)
        a = a & 0x0FFF
        if kind == "u16":
            ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 15, 0
            ds.RescaleSlope, ds.RescaleIntercept = 1, 0
            a = a + (40000 if i % 2 else 0)
        elif kind == "i32":
            ds.RescaleIntercept = -40000
        elif kind == "signed12":
            ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, 1
            ds.RescaleSlope, ds.RescaleIntercept = 1, 0
            a = (a - 2048) & 0x0FFF  # 12-bit two's complement, both signs
            a = a | (((np.arange(a.size).reshape(a.shape) * 7919) % 16) << 12)  # junk above BitsStored
        elif kind == "float":
            ds.RescaleSlope = 0.5
        elif kind == "smallu8":
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
            ds.RescaleSlope, ds.RescaleIntercept = 1, 0
            ds.PixelData = (a % 256).astype(np.uint8).tobytes()
            ds["PixelData"].VR = "OB"
            ds.save_as(p, enforce_file_format=True)
            continue
        ds.PixelData = a.astype("<u2").tobytes()
        ds.save_as(p, enforce_file_format=True)


def bigendian(src, dst):
    import subprocess

    ds = pydicom.dcmread(src)
    ds["PixelData"].VR = "OW"
    ds.save_as(dst + ".le", enforce_file_format=True)
    subprocess.run(["dcmconv", "+tb", dst + ".le", dst], check=True)
    os.unlink(dst + ".le")


def reference(d):
    sl = []
    for p in files(d):
        ds = pydicom.dcmread(p)  # deflate is inflated on reading
        if ds.file_meta.TransferSyntaxUID.is_encapsulated:
            ds.decompress()  # RLE (pydicom's own decoder): native little endian from here
        iop = np.array(ds.ImageOrientationPatient, float)
        n = np.cross(iop[:3], iop[3:])
        ba, bs, sg = int(ds.BitsAllocated), int(ds.BitsStored), int(ds.PixelRepresentation)
        little = ds.file_meta.TransferSyntaxUID != pydicom.uid.ExplicitVRBigEndian or ds["PixelData"].VR == "OB"
        raw = np.frombuffer(ds.PixelData, ("<" if little else ">") + ("u1" if ba == 8 else "u2")).astype(np.int64)
        raw = raw[: ds.Rows * ds.Columns] & ((1 << bs) - 1)
        if sg:
            raw = np.where(raw >= 1 << (bs - 1), raw - (1 << bs), raw)
        v = raw * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
        sl.append((float(np.dot(n, np.array(ds.ImagePositionPatient, float))), v.reshape(ds.Rows, ds.Columns).T))
    sl.sort(key=lambda t: t[0])
    return np.stack([s[1] for s in sl], axis=2)


def check(out, d):
    c = list(vxp.read(open(out, "rb")))[0]
    v = c["vols"]["image"].data
    ref = reference(d)
    if v.shape != ref.shape:
        print("shape %s, reference %s" % (v.shape, ref.shape))
        return
    diff = np.abs(v.astype(np.float64) - ref)
    if diff.max() > 0:
        print("%d voxels differ (max %g)" % (int((diff > 0).sum()), float(diff.max())))
        return
    print("ok %s %s range %g..%g" % (v.dtype, v.shape, float(ref.min()), float(ref.max())))


if __name__ == "__main__":
    if sys.argv[1] == "values":
        values(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "bigendian":
        bigendian(sys.argv[2], sys.argv[3])
    else:
        check(sys.argv[2], sys.argv[3])
