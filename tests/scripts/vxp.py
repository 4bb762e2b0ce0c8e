"""vxp.py - an independent Python reader/writer of the voxpipe stream format v1 (docs/FORMAT.md),
built on the msgpack package, used by tests to check the C implementation from the outside and to
craft streams (including malformed ones) that the C writer would never produce.

    cases = list(vxp.read(open('x.vxp', 'rb')))       # [{'id':..., 'vols': {name: Vol}, 'meta': {...}}]
    vxp.write(f, [{'id': 'a', 'vols': {'image': vxp.Vol(arr, affine)}, 'meta': {}}])
"""
import sys

import msgpack
import numpy as np

DTYPES = {"u8": "<u1", "i16": "<i2", "u16": "<u2", "i32": "<i4", "f16": "<f2", "f32": "<f4"}
NAMES = {np.dtype(v): k for k, v in DTYPES.items()}


class Vol:
    """A volume: data is a numpy array indexed [x, y, z] (or [x, y, z, c]), affine a 4x4 array."""

    def __init__(self, data, affine):
        self.data = np.asarray(data)
        self.affine = np.asarray(affine, dtype=np.float64).reshape(4, 4)

    def to_msg(self):
        a = self.data
        dt = NAMES[a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype]
        payload = np.asfortranarray(a.astype(DTYPES[dt])).tobytes(order="F")
        return {"dims": list(a.shape), "dtype": dt, "affine": [float(x) for x in self.affine.ravel()],
                "data": payload}


def vol_from_msg(m):
    dims = m["dims"]
    data = m["data"]
    if isinstance(data, list):
        data = b"".join(data)
    arr = np.frombuffer(data, dtype=DTYPES[m["dtype"]]).reshape(dims, order="F")
    return Vol(arr, np.array(m["affine"], dtype=np.float64).reshape(4, 4))


def read(f):
    """Yield cases from a binary file object; stops at EOF or an end-of-stream frame."""
    unp = msgpack.Unpacker(f, raw=False, max_buffer_size=2**34, strict_map_key=False)
    for frame in unp:
        if frame.get("eos"):
            return
        if frame.get("voxpipe") != 1:
            raise ValueError("unsupported version %r" % frame.get("voxpipe"))
        yield {"id": frame["id"], "meta": frame.get("meta", {}),
               "vols": {k: vol_from_msg(v) for k, v in frame.get("vols", {}).items()}}


def pack_case(case, version=1):
    frame = {"voxpipe": version, "id": case["id"], "meta": case.get("meta", {}),
             "vols": {k: v.to_msg() for k, v in case.get("vols", {}).items()}}
    return msgpack.packb(frame, use_bin_type=True)


def write(f, cases):
    for c in cases:
        f.write(pack_case(c))


if __name__ == "__main__":  # summary of a stream on stdin, for debugging
    for c in read(sys.stdin.buffer):
        print(c["id"], {k: (v.data.dtype.str, v.data.shape) for k, v in c["vols"].items()}, list(c["meta"]))
