"""make_hardening_inputs.py OUTDIR - malformed inputs for tests/shell/hardening.bats, one per kind of
damage named in the hardening issue that tests/shell/bad_input.bats does not already cover. Small and
deterministic; the file name says what is wrong.

Streams (each one case 'h', a 2x2x2 u8 volume 'image' unless said):
  good.vxp                  valid two-case stream (ids h1, h2), image i16 + label u8, for the control
                            and the mid-stream tests
  good_then_trunc.vxp       case h1 valid, then case h2 cut inside its payload
  dims_str.vxp              dims is a string            dtype_int.vxp   dtype is an integer
  affine_str.vxp            affine holds a string       dims_neg.vxp    dims holds -2 (negative int)
  dims_u64max.vxp           dims holds 2^64-1           dims_float.vxp  dims holds 2.0
  affine_inf32.vxp          affine holds float32 +inf   meta_map32.vxp  meta map32 declaring 2^32-1 keys
  id_str32.vxp              id str32 declaring 2^32-1 bytes in a small file
  vols_key_int.vxp          a volume named by an integer key
  chunks_huge.vxp           data is an array32 declaring 2^32-1 chunks
NIfTI (8x8x8 int16 from nibabel, header patched):
  voxoff_eof.nii            vox_offset 1e9 (past the end of the file)
  dims_bitpix.nii           dim[1..3] 32767 each (fits int64, beyond 2^20 per axis) - and
  dims_ovf2.nii.gz          NIfTI-2 with dim[1..3] = 2^62 (product overflows 64 bits)
  dim_neg.nii               dim[2] = -8
  dim0_9.nii                dim[0] = 9
  slope_nan.nii             scl_slope NaN (nibabel: no scaling; read as stored)
  slope_ok_inter_nan.nii    scl_slope 2, scl_inter NaN (nibabel refuses)
  datatype_bad.nii          datatype 1234
safetensors (from safetensors.torch.save with one f32 tensor 'w' of shape (2, 3), then patched):
  st_hlen_huge.safetensors  header length 2^64-1
  st_off_out.safetensors    data_offsets [0, 4096] past the end of the file
  st_dtype_len.safetensors  dtype F16 where the 24 bytes hold 6 f32 (length != numel * 2)
  st_overlap.safetensors    two tensors on the same bytes
  st_shape_ovf.safetensors  shape [2^32, 2^32, 16] (numel * size overflows 64 bits)
DICOM (8x8 CT slice written with pydicom, explicit VR little endian):
  dcm_good.dcm              valid
  dcm_trunc.dcm             cut in the middle of the pixel data
  dcm_bits0.dcm             BitsAllocated 0
  dcm_frames.dcm            NumberOfFrames 100000 (rows*cols*frames far beyond the file)
  dcm_rows0.dcm             Rows 0
Needs: numpy, msgpack, nibabel, pydicom, torch, safetensors.
"""
import gzip
import io
import json
import os
import struct
import sys

import msgpack
import nibabel as nib
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vxp  # noqa: E402

AFF = [1.5, 0, 0, -10, 0, 1.5, 0, -20, 0, 0, 2.5, -30, 0, 0, 0, 1]


def vol(dims=(2, 2, 2), dtype="u8", data=bytes(8), affine=AFF):
    return {"dims": dims, "dtype": dtype, "affine": affine, "data": data}


def frame(cid, vols, meta=None):
    return msgpack.packb({"voxpipe": 1, "id": cid, "meta": meta or {}, "vols": vols}, use_bin_type=True)


def streams(put):
    rng = np.random.default_rng(11)
    aff = np.array(AFF, float).reshape(4, 4)

    def case(cid):
        img = rng.integers(-500, 500, (6, 5, 4)).astype(np.int16)
        lab = (img > 100).astype(np.uint8)
        return vxp.pack_case({"id": cid, "vols": {"image": vxp.Vol(img, aff), "label": vxp.Vol(lab, aff)}})
    h1, h2 = case("h1"), case("h2")
    put("good.vxp", h1 + h2)
    put("good_then_trunc.vxp", h1 + h2[:-20])
    put("dims_str.vxp", frame("h", {"image": vol(dims="2x2x2")}))
    put("dtype_int.vxp", frame("h", {"image": vol(dtype=8)}))
    put("affine_str.vxp", frame("h", {"image": vol(affine=AFF[:5] + ["x"] + AFF[6:])}))
    put("dims_neg.vxp", frame("h", {"image": vol(dims=[2, -2, 2])}))
    put("dims_u64max.vxp", frame("h", {"image": vol(dims=[2, 2**64 - 1, 2])}))
    put("dims_float.vxp", frame("h", {"image": vol(dims=[2, 2.0, 2])}))
    f = frame("h", {"image": vol(affine=AFF[:4] + [1.0e300] + AFF[5:])})
    i = f.index(struct.pack(">d", 1.0e300))
    put("affine_inf32.vxp", f[:i - 1] + b"\xca" + struct.pack(">f", float("inf")) + f[i + 8:])
    # meta map32 claiming 2^32-1 entries, then one entry and the end of the file
    m = msgpack.packb({"voxpipe": 1, "id": "h"}, use_bin_type=True)
    m = bytes([0x84]) + m[1:] + msgpack.packb("meta") + b"\xdf" + struct.pack(">I", 2**32 - 1) + msgpack.packb("a") + b"\x01"
    put("meta_map32.vxp", m)
    s = bytes([0x83]) + msgpack.packb("voxpipe") + b"\x01" + msgpack.packb("id") + b"\xdb" + struct.pack(">I", 2**32 - 1) + b"abc"
    put("id_str32.vxp", s)
    f = msgpack.packb({"voxpipe": 1, "id": "h", "meta": {}, "vols": {7: vol()}}, use_bin_type=True, strict_map_key=False) \
        if "strict_map_key" in msgpack.packb.__code__.co_varnames else None
    if f is None:
        f = msgpack.Packer(use_bin_type=True).pack({"voxpipe": 1, "id": "h", "meta": {}, "vols": {7: vol()}})
    put("vols_key_int.vxp", f)
    f = frame("h", {"image": vol(data=[bytes(8)])})
    i = f.rindex(b"\x91\xc4\x08")
    put("chunks_huge.vxp", f[:i] + b"\xdd" + struct.pack(">I", 2**32 - 1) + f[i + 1:])


def nifti(put):
    data = (np.arange(512, dtype=np.int16) % 97).reshape(8, 8, 8)
    base = bytearray(nib.Nifti1Image(data, np.diag([1.5, 1.5, 2.0, 1.0])).to_bytes())

    def patched(fields):
        b = bytearray(base)
        for fmt, off, v in fields:
            struct.pack_into(fmt, b, off, *v)
        return bytes(b)
    put("voxoff_eof.nii", patched([("<f", 108, (1e9,))]))
    put("dims_bitpix.nii", patched([("<3h", 42, (32767, 32767, 32767))]))
    put("dim_neg.nii", patched([("<h", 44, (-8,))]))
    put("dim0_9.nii", patched([("<h", 40, (9,))]))
    put("slope_nan.nii", patched([("<f", 112, (float("nan"),)), ("<f", 116, (5.0,))]))
    put("slope_ok_inter_nan.nii", patched([("<f", 112, (2.0,)), ("<f", 116, (float("nan"),))]))
    put("datatype_bad.nii", patched([("<h", 70, (1234,))]))
    n2 = bytearray(nib.Nifti2Image(data, np.diag([1.5, 1.5, 2.0, 1.0])).to_bytes())
    struct.pack_into("<3q", n2, 24, 2**62, 2**62, 2**62)  # NIfTI-2 dim[1..3] (dim at offset 16)
    put("dims_ovf2.nii.gz", gzip.compress(bytes(n2), mtime=0))


def st_file(header, data):
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def safetensors(put):
    w = np.arange(6, dtype="<f4").tobytes()
    t = {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}
    put("st_hlen_huge.safetensors", struct.pack("<Q", 2**64 - 1) + st_file({"w": t}, w)[8:])
    put("st_off_out.safetensors", st_file({"w": dict(t, data_offsets=[0, 4096])}, w))
    put("st_dtype_len.safetensors", st_file({"w": dict(t, dtype="F16")}, w))
    put("st_overlap.safetensors", st_file({"w": t, "v": t}, w))
    put("st_shape_ovf.safetensors", st_file({"w": dict(t, shape=[2**32, 2**32, 16])}, w))


def dicom(put):
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    def ct(**patch):
        fm = FileMetaDataset()
        fm.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        fm.MediaStorageSOPInstanceUID = "1.2.3.4.5.6.7"
        fm.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset("x", {}, file_meta=fm, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = fm.MediaStorageSOPClassUID, fm.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = "1.2.3", "1.2.3.4", "1.2.3.5"
        ds.Modality, ds.PatientID = "CT", "P1"
        ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 8, 8, 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 1
        ds.ImagePositionPatient, ds.ImageOrientationPatient = [-10, -20, 30], [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing, ds.SliceThickness, ds.RescaleSlope, ds.RescaleIntercept = [0.7, 0.7], 2.5, 1, -1024
        ds.PixelData = (np.arange(64, dtype="<i2") * 13).tobytes()
        for k, v in patch.items():
            setattr(ds, k, v)
        b = io.BytesIO()
        pydicom.dcmwrite(b, ds, enforce_file_format=True)
        return b.getvalue()
    good = ct()
    put("dcm_good.dcm", good)
    put("dcm_trunc.dcm", good[:-50])
    put("dcm_bits0.dcm", ct(BitsAllocated=0))
    put("dcm_frames.dcm", ct(NumberOfFrames=100000))
    put("dcm_rows0.dcm", ct(Rows=0))


def main(out):
    os.makedirs(out, exist_ok=True)

    def put(name, data):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    streams(put)
    nifti(put)
    safetensors(put)
    dicom(put)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_hardening_inputs.py OUTDIR")
    main(sys.argv[1])
