#!/usr/bin/env python3
"""Helpers for tests/shell/infer_ressegnet.bats.

  segresnet_check.py make SW_GOLDEN OUT.vxp [nan]  a case 'c1' whose 'image' is the golden's x
                                                  (MONAI order x, y, z), plus a pass-through volume
                                                  and meta; 'nan' puts one NaN voxel in
  segresnet_check.py check SW_GOLDEN OUT.vxp       label = argmax of MONAI's sliding-window logits
                                                  (except near-ties), prob = their softmax within
                                                  f16 rounding, pass-through kept, provenance added
"""
import json
import struct
import sys

import numpy as np

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import vxp  # noqa: E402


def st_read(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    out = {}
    for k, v in h.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32"
        s, e = v["data_offsets"]
        out[k] = np.frombuffer(b[8 + n + s:8 + n + e], dtype="<f4").reshape(v["shape"])
    return out


AFF = np.diag([1.5, 1.5, 1.5, 1.0])


def make(golden, out, nan=False):
    x = st_read(golden)["x"][0, 0].copy()
    if nan:
        x[3, 4, 5] = np.nan
    tag = np.arange(x.size, dtype=np.int16).reshape(x.shape)
    with open(out, "wb") as f:
        vxp.write(f, [{"id": "c1", "vols": {"image": vxp.Vol(x.astype(np.float32), AFF), "tag": vxp.Vol(tag, AFF)},
                       "meta": {"note": "kept"}}])


def check(golden, out):
    y = st_read(golden)["y"][0].astype(np.float64)  # (K, X, Y, Z)
    (c,) = list(vxp.read(open(out, "rb")))
    lab = c["vols"]["label"]
    assert lab.data.dtype == np.uint8 and lab.data.shape == y.shape[1:], (lab.data.dtype, lab.data.shape)
    assert np.allclose(lab.affine, AFF)
    want = y.argmax(0)
    srt = np.sort(y, 0)
    tie = (srt[-1] - srt[-2]) <= 2e-4
    bad = (lab.data != want) & ~tie
    assert not bad.any(), f"{bad.sum()} labels differ from MONAI's argmax"
    assert (lab.data == want).mean() > 0.99
    assert len(np.unique(want)) > 1, "degenerate golden: one class only"
    if "prob" in c["vols"]:
        p = c["vols"]["prob"].data.astype(np.float64)  # (X, Y, Z, K)
        e = np.exp(y - y.max(0))
        sm = np.moveaxis(e / e.sum(0), 0, -1)
        d = np.abs(p - sm).max()
        assert d <= 1e-3, f"prob differs from softmax by {d}"
        print(f"prob max abs diff {d:.3g}")
    tag = c["vols"]["tag"].data
    assert (tag == np.arange(tag.size, dtype=np.int16).reshape(tag.shape)).all()
    assert c["meta"]["note"] == "kept"
    prov = c["meta"].get("provenance")
    assert prov and "infer-ressegnet" in json.dumps(prov, default=str), prov
    print(f"labels: {(lab.data == want).sum()} of {want.size} equal, {tie.sum()} near-ties")


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3], len(sys.argv) > 4)
    else:
        check(sys.argv[2], sys.argv[3])
