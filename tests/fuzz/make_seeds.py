"""make_seeds.py OUTDIR - small, deterministic seed inputs for the fuzz targets in tests/fuzz.

  OUTDIR/frame/        voxpipe streams: one and two cases, 3D and 4D volumes of each dtype, meta with
                       nested values, a chunked payload (array of bins), keys in reader-unfriendly order,
                       an end-of-stream frame
  OUTDIR/nifti/        NIfTI-1 and NIfTI-2, .nii and .nii.gz, i16/u8/f32/f64 (converted), scaled, swapped
  OUTDIR/safetensors/  model files as safetensors.torch.save_file writes them (f32, f16, bf16, i64, 0-d)
  OUTDIR/dicom/        8x8 CT slices (explicit/implicit little endian, big endian, deflate), an enhanced
                       multi-frame CT with per-frame positions, and the two small codec files of
                       ../shared/data/dicom-codecs (deflate, JPEG 2000) when present
Needs: numpy, msgpack, nibabel, pydicom, torch, safetensors (all in .venv).
"""
import gzip
import io
import os
import shutil
import sys

import msgpack
import nibabel as nib
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import vxp  # noqa: E402

AFF = np.array([[2.0, 0, 0, -10], [0, 2.0, 0, -20], [0, 0, 3.0, -30], [0, 0, 0, 1]])


def put(d, name, data):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def frames(d):
    rng = np.random.default_rng(7)
    img = rng.integers(-100, 100, (5, 4, 3)).astype(np.int16)
    lab = (img > 0).astype(np.uint8)
    c1 = {"id": "c1", "meta": {"labels": {"1": "liver"}, "spacing": [2.0, 2.0, 3.0], "x": [[1, {"a": None}], b"\x00", 1.5]},
          "vols": {"image": vxp.Vol(img, AFF), "label": vxp.Vol(lab, AFF)}}
    put(d, "one.vxp", vxp.pack_case(c1))
    prob = rng.random((3, 2, 2, 2)).astype(np.float32)
    c2 = {"id": "c2", "vols": {"prob": vxp.Vol(prob, AFF), "h": vxp.Vol(rng.random((2, 2, 2)).astype(np.float16), AFF),
                               "u": vxp.Vol(rng.integers(0, 9, (2, 3, 2)).astype(np.uint16), AFF),
                               "i": vxp.Vol(rng.integers(-9, 9, (2, 3, 2)).astype(np.int32), AFF)}}
    put(d, "two.vxp", vxp.pack_case(c1) + vxp.pack_case(c2))
    aff = [float(x) for x in AFF.ravel()]
    # payload as an array of bins (the >4 GiB layout), and keys in an order streaming cannot use
    chunked = {"voxpipe": 1, "id": "chunk", "meta": {}, "vols": {"image": {
        "dims": [4, 2, 2], "dtype": "u8", "affine": aff, "data": [bytes(range(8)), bytes(range(8, 16))]}}}
    put(d, "chunked.vxp", msgpack.packb(chunked, use_bin_type=True))
    odd = {"vols": {"image": {"data": bytes(8), "affine": aff, "dtype": "u8", "dims": [2, 2, 2]}},
           "id": "odd", "extra": {"k": [1, 2]}, "voxpipe": 1}
    put(d, "reordered.vxp", msgpack.packb(odd, use_bin_type=True))
    put(d, "eos.vxp", vxp.pack_case(c1) + msgpack.packb({"voxpipe": 1, "eos": True}))


def nifti(d):
    data = (np.arange(6 * 5 * 4) % 37 - 10).reshape(6, 5, 4)
    aff = np.array([[-1.5, 0.1, 0, 10], [0, 1.5, 0, -20], [0.2, 0, 3.0, 5], [0, 0, 0, 1]])
    for dt in (np.int16, np.uint8, np.float32, np.float64):
        im = nib.Nifti1Image(data.astype(dt), aff)
        b = im.to_bytes()
        put(d, f"n1_{np.dtype(dt).name}.nii", b)
        put(d, f"n1_{np.dtype(dt).name}.nii.gz", gzip.compress(b, mtime=0))
    im = nib.Nifti2Image(data.astype(np.int16), aff)
    put(d, "n2.nii", im.to_bytes())
    im = nib.Nifti1Image(data.astype(np.int16), aff)
    im.header.set_slope_inter(0.5, -3)
    im.header.set_qform(aff, 1)
    im.header.set_sform(None, 0)
    put(d, "scaled_qform.nii", im.to_bytes())
    h = nib.Nifti1Header(endianness=">")
    im = nib.Nifti1Image(data.astype(">i2"), aff, h)
    put(d, "bigendian.nii", im.to_bytes())
    im = nib.Nifti1Image(np.zeros((3, 2, 2, 2), np.float32), aff)
    put(d, "4d.nii.gz", gzip.compress(im.to_bytes(), mtime=0))


def safetensors(d):
    import torch
    from safetensors.torch import save
    torch.manual_seed(3)
    t = {"enc.w": torch.randn(2, 1, 3, 3, 3), "enc.b": torch.randn(2), "half": torch.randn(4).half(),
         "bf": torch.randn(3).bfloat16(), "step": torch.tensor([5], dtype=torch.int64), "scalar": torch.tensor(2.5)}
    put(d, "model.safetensors", save(t, metadata={"arch": "SegResNet", "labels": '{"1": "x\\u00e9"}'}))
    put(d, "empty.safetensors", save({}, metadata={"a": "b"}))
    put(d, "one.safetensors", save({"x": torch.zeros(0, 3)}))


def dicom(d):
    import pydicom
    from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian
    rng = np.random.default_rng(5)

    def base(sop_class="1.2.840.10008.5.1.4.1.1.2", ts=ExplicitVRLittleEndian, rows=8, cols=8):
        fm = FileMetaDataset()
        fm.MediaStorageSOPClassUID = sop_class
        fm.MediaStorageSOPInstanceUID = "1.2.3.4.5.6.7"
        fm.TransferSyntaxUID = ts
        ds = FileDataset("x", {}, file_meta=fm, preamble=b"\0" * 128)
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = "1.2.3.4.5.6.7"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = "1.2.3", "1.2.3.4", "1.2.3.5"
        ds.Modality, ds.PatientID, ds.PatientName, ds.StudyDate = "CT", "P1", "Doe^J", "20200101"
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 1
        return ds

    def save(name, ds, ts):
        b = io.BytesIO()
        pydicom.dcmwrite(b, ds, enforce_file_format=True)
        put(d, name, b.getvalue())

    for name, ts in (("ct_el.dcm", ExplicitVRLittleEndian), ("ct_il.dcm", ImplicitVRLittleEndian),
                     ("ct_eb.dcm", ExplicitVRBigEndian), ("ct_defl.dcm", DeflatedExplicitVRLittleEndian)):
        ds = base(ts=ts)
        ds.ImagePositionPatient, ds.ImageOrientationPatient = [-10, -20, 30], [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing, ds.SliceThickness = [0.7, 0.7], 2.5
        ds.RescaleSlope, ds.RescaleIntercept, ds.InstanceNumber = 1, -1024, 3
        arr = rng.integers(0, 2000, (8, 8)).astype(np.int16)
        ds.PixelData = arr.astype(">i2" if ts == ExplicitVRBigEndian else "<i2").tobytes()
        save(name, ds, ts)
    # enhanced CT: 3 frames 6x6, per-frame positions, shared orientation / pixel measures / rescale
    ds = base("1.2.840.10008.5.1.4.1.1.2.1", rows=6, cols=6)
    ds.NumberOfFrames = 3
    sh = Dataset()
    po = Dataset(); po.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    pm = Dataset(); pm.PixelSpacing = [0.8, 0.8]; pm.SliceThickness = 2.0; pm.SpacingBetweenSlices = 2.0
    pv = Dataset(); pv.RescaleSlope = 1; pv.RescaleIntercept = -1024; pv.RescaleType = "HU"
    sh.PlaneOrientationSequence = Sequence([po]); sh.PixelMeasuresSequence = Sequence([pm])
    sh.PixelValueTransformationSequence = Sequence([pv])
    ds.SharedFunctionalGroupsSequence = Sequence([sh])
    pf = []
    for k in range(3):
        f = Dataset(); pp = Dataset(); pp.ImagePositionPatient = [0, 0, 2.0 * k]
        f.PlanePositionSequence = Sequence([pp]); pf.append(f)
    ds.PerFrameFunctionalGroupsSequence = Sequence(pf)
    ds.PixelData = rng.integers(0, 2000, (3, 6, 6)).astype("<i2").tobytes()
    save("enhanced.dcm", ds, ExplicitVRLittleEndian)
    # 8-bit unsigned, no rescale
    ds = base(rows=4, cols=4)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.ImagePositionPatient, ds.ImageOrientationPatient, ds.PixelSpacing = [0, 0, 0], [1, 0, 0, 0, 1, 0], [1, 1]
    ds.PixelData = bytes(range(16))
    save("u8.dcm", ds, ExplicitVRLittleEndian)
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "data", "dicom-codecs")
    for f in ("deflated.dcm", "jpeg_2000.dcm"):
        if os.path.exists(os.path.join(src, f)):
            shutil.copy(os.path.join(src, f), os.path.join(d, f))
            os.chmod(os.path.join(d, f), 0o644)


def main(out):
    frames(os.path.join(out, "frame"))
    nifti(os.path.join(out, "nifti"))
    safetensors(os.path.join(out, "safetensors"))
    dicom(os.path.join(out, "dicom"))


if __name__ == "__main__":
    main(sys.argv[1])
