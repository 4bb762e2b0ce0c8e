"""make_bad_inputs.py OUTDIR - write malformed voxpipe streams and NIfTI files for the bad-input tests
(tests/shell/bad_input.bats). Every file is small and deterministic; the name says what is wrong:

  good.vxp                 a valid one-case stream (case 'good'), the base of several cases below
  trunc_payload.vxp        case 'trunc1' cut in the middle of the 'data' payload
  trunc_header.vxp         case 'trunc2' cut in the middle of the 'affine' array (before any payload)
  trunc_id.vxp             cut inside the 'id' string: the case id is not known yet ("frame 1")
  version2.vxp             {"voxpipe": 2, ...}
  second_frame_v2.vxp      a valid case then a frame with format version 2 ("frame 2")
  size_mismatch.vxp        case 'mismatch': dims 4x4x4 f32 (256 bytes) with a 100-byte payload
  dims_overflow.vxp        case 'huge': dims [2^20, 2^20, 2^20, 4096] f32 (2^74 bytes), 16-byte payload
  zero_spacing.vxp         case 'flat': affine with a zero first column
  nan_affine.vxp           case 'nanaff': NaN in the affine
  not_map_array.vxp        top-level value is an array
  not_map_int.vxp          top-level value is an int
  bin_4g.vxp               case 'liar': 1 KiB file whose 'data' bin32 header declares 4290772992 bytes
                           (dims 2048x2048x1023 u8 agree, so only the input length can refute it)
  meta_bin_4g.vxp          case 'liarmeta': 1 KiB file whose meta value is a bin32 declaring 4 GiB - 1
  long_id.vxp              id of 2000 bytes (limit VP_MAX_ID = 1024)
  deep_meta.vxp            case 'deep': meta value nested 1000 arrays deep (limit VP_MAX_DEPTH = 32)
  neg_pixdim.nii.gz        sform_code 0, qform_code 1, pixdim[1] = -1.5
  nan_pixdim.nii.gz        sform_code 0, qform_code 0, pixdim[2] = NaN
  zero_pixdim.nii.gz       sform_code 0, qform_code 0, pixdim[3] = 0
  corrupt.nii.gz           valid gzip member header followed by garbage deflate data
  truncated.nii.gz         a valid .nii.gz cut in half
  truncated.nii            a valid .nii cut in the voxel data
  good.nii.gz              a valid NIfTI (for the output tests)
"""
import gzip
import os
import struct
import sys

import msgpack
import nibabel as nib
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vxp  # noqa: E402

AFF = [2.0, 0, 0, -10, 0, 2.0, 0, -20, 0, 0, 3.0, -30, 0, 0, 0, 1]


def vol_msg(dims, dtype, data, affine=AFF):
    return {"dims": list(dims), "dtype": dtype, "affine": [float(x) for x in affine], "data": data}


def frame(cid, vols, meta=None, version=1):
    f = {"voxpipe": version}
    if cid is not None:
        f["id"] = cid
    f["meta"] = meta if meta is not None else {}
    f["vols"] = vols
    return msgpack.packb(f, use_bin_type=True)


def good_case(cid):
    arr = np.arange(64, dtype=np.float32).reshape(4, 4, 4)
    return vxp.pack_case({"id": cid, "vols": {"image": vxp.Vol(arr, np.array(AFF).reshape(4, 4))}})


def nifti_bytes(sform_code, qform_code, pixdim_patch):
    """A 8x8x8 int16 NIfTI-1 single file, header patched after nibabel wrote it."""
    data = (np.arange(512, dtype=np.int16) % 97).reshape(8, 8, 8)
    img = nib.Nifti1Image(data, np.diag([1.5, 1.5, 2.0, 1.0]))
    b = bytearray(img.to_bytes())
    assert struct.unpack_from("<i", b, 0)[0] == 348
    struct.pack_into("<h", b, 252, qform_code)  # qform_code
    struct.pack_into("<h", b, 254, sform_code)  # sform_code
    for i, v in pixdim_patch.items():
        struct.pack_into("<f", b, 76 + 4 * i, v)  # pixdim[i]
    return bytes(b)


def main(out):
    os.makedirs(out, exist_ok=True)

    def put(name, data):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)

    put("good.vxp", good_case("good"))

    # truncated frames
    t1 = good_case("trunc1")
    assert t1[-259:-256] == b"\xc5\x01\x00"  # bin16 header of the 256-byte payload, last in the frame
    put("trunc_payload.vxp", t1[:-100])  # 156 of the 256 payload bytes
    t2 = good_case("trunc2")
    put("trunc_header.vxp", t2[:t2.index(b"affine") + 20])
    t3 = good_case("trunc_id_case")
    put("trunc_id.vxp", t3[:t3.index(b"trunc_id") + 4])

    # format version
    arr = np.zeros((2, 2, 2), np.uint8)
    put("version2.vxp", frame("v2case", {"image": vol_msg((2, 2, 2), "u8", arr.tobytes())}, version=2))
    put("second_frame_v2.vxp", good_case("first") + frame("v2case", {}, version=2))

    # sizes
    put("size_mismatch.vxp", frame("mismatch", {"image": vol_msg((4, 4, 4), "f32", bytes(100))}))
    put("dims_overflow.vxp", frame("huge", {"image": vol_msg((2**20, 2**20, 2**20, 4096), "f32", bytes(16))}))

    # geometry
    aff0 = list(AFF)
    aff0[0] = aff0[4] = aff0[8] = 0.0
    put("zero_spacing.vxp", frame("flat", {"image": vol_msg((2, 2, 2), "u8", bytes(8), aff0)}))
    affn = list(AFF)
    affn[5] = float("nan")
    put("nan_affine.vxp", frame("nanaff", {"image": vol_msg((2, 2, 2), "u8", bytes(8), affn)}))

    # not a map at the top level
    put("not_map_array.vxp", msgpack.packb([1, 2, 3]))
    put("not_map_int.vxp", msgpack.packb(42))

    # a bin32 header that lies about its length (4290772992 = 2048*2048*1023 bytes) in a 1 KiB file
    head = msgpack.packb({"voxpipe": 1, "id": "liar", "meta": {}}, use_bin_type=True)
    head = bytes([0x84]) + head[1:]  # 4 keys: the 4th ('vols') follows
    vol = msgpack.packb("vols") + bytes([0x81]) + msgpack.packb("image") + bytes([0x84])
    for k, v in (("dims", [2048, 2048, 1023]), ("dtype", "u8"), ("affine", AFF)):
        vol += msgpack.packb(k) + msgpack.packb(v)
    vol += msgpack.packb("data") + b"\xc6" + struct.pack(">I", 2048 * 2048 * 1023)
    liar = head + vol
    put("bin_4g.vxp", liar + bytes(1024 - len(liar)))
    # the same lie inside meta (captured raw, bounded by the 64 MiB meta budget)
    m = msgpack.packb({"voxpipe": 1, "id": "liarmeta"}, use_bin_type=True)
    m = bytes([0x84]) + m[1:] + msgpack.packb("meta") + bytes([0x81]) + msgpack.packb("blob")
    m += b"\xc6" + struct.pack(">I", 0xFFFFFFFF)
    put("meta_bin_4g.vxp", m + bytes(1024 - len(m)))

    # limits
    put("long_id.vxp", frame("x" * 2000, {"image": vol_msg((2, 2, 2), "u8", bytes(8))}))
    deep = b"\x91" * 1000 + b"\xc0"
    d = msgpack.packb({"voxpipe": 1, "id": "deep"}, use_bin_type=True)
    d = bytes([0x84]) + d[1:] + msgpack.packb("meta") + bytes([0x81]) + msgpack.packb("nested") + deep
    d += msgpack.packb("vols") + bytes([0x80])
    put("deep_meta.vxp", d)

    # NIfTI with bad pixdim where it is the spacing (sform_code 0)
    put("good.nii.gz", gzip.compress(nifti_bytes(1, 1, {}), mtime=0))
    put("neg_pixdim.nii.gz", gzip.compress(nifti_bytes(0, 1, {1: -1.5}), mtime=0))
    put("nan_pixdim.nii.gz", gzip.compress(nifti_bytes(0, 0, {2: float("nan")}), mtime=0))
    put("zero_pixdim.nii.gz", gzip.compress(nifti_bytes(0, 0, {3: 0.0}), mtime=0))

    # corrupt / truncated gzip
    # member header: magic, CM=8 (deflate), no flags, mtime 0, XFL 0, OS 255; then 0xff bytes: the first
    # deflate block says BFINAL=1 BTYPE=11, a reserved block type
    put("corrupt.nii.gz", b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + b"\xff" * 1014)
    rng = np.random.default_rng(0)
    noise = rng.integers(-30000, 30000, size=(32, 32, 32), dtype=np.int16)
    full = nib.Nifti1Image(noise, np.diag([1.0, 1.0, 1.0, 1.0])).to_bytes()
    gz = gzip.compress(full, mtime=0)
    assert len(gz) > 20000
    put("truncated.nii.gz", gz[:len(gz) // 2])
    put("truncated.nii", full[:len(full) - 1000])


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_bad_inputs.py OUTDIR")
    main(sys.argv[1])
