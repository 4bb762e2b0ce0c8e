#!/usr/bin/env python3
"""The Python peer of dcm-fetch --dicomweb for bench/bench_dicomweb.sh: what a Python pipeline does
without voxpipe. QIDO-RS for the series of a study, WADO-RS of each (multipart/related), the parts
split, read with pydicom, slices ordered along the normal, stacked and rescaled to HU.

usage: dicomweb_peer.py URL STUDY_UID [--check STREAM]
--check: the volume must equal the image of the (one-case) voxpipe stream STREAM; exit 1 if not.
Needs requests, pydicom, numpy (and msgpack through tests/scripts/vxp.py for --check).
"""
import io
import os
import re
import sys

import numpy as np
import pydicom
import requests


def series_of(url, study):
    r = requests.get(f"{url}/studies/{study}/series", headers={"Accept": "application/dicom+json"}, timeout=30)
    r.raise_for_status()
    return [d["0020000E"]["Value"][0] for d in (r.json() if r.content else [])]


def instances(url, study, series):
    r = requests.get(f"{url}/studies/{study}/series/{series}", timeout=30,
                     headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'})
    r.raise_for_status()
    b = re.search(r'boundary="?([^";]+)"?', r.headers["Content-Type"]).group(1).encode()
    out = []
    for part in r.content.split(b"--" + b)[1:]:
        if part.startswith(b"--"):
            break
        head, _, body = part.partition(b"\r\n\r\n")
        out.append(pydicom.dcmread(io.BytesIO(body[:-2])))
    return out


def volume(dss):
    o = np.array(dss[0].ImageOrientationPatient, float)
    n = np.cross(o[:3], o[3:])
    dss.sort(key=lambda d: float(np.dot(n, np.array(d.ImagePositionPatient, float))))
    v = np.stack([d.pixel_array.astype(np.float64) * float(getattr(d, "RescaleSlope", 1))
                  + float(getattr(d, "RescaleIntercept", 0)) for d in dss])
    return v.astype(np.int16) if np.all(v == np.round(v)) and v.min() >= -32768 and v.max() <= 32767 else v


def main():
    url, study = sys.argv[1], sys.argv[2]
    vols = [volume(instances(url, study, s)) for s in series_of(url, study)]
    if "--check" in sys.argv:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import vxp
        cases = list(vxp.read(open(sys.argv[sys.argv.index("--check") + 1], "rb")))
        ref = cases[0]["vols"]["image"].data
        v = vols[0]
        ok = len(cases) == len(vols) == 1 and any(
            c.shape == ref.shape and np.array_equal(c, ref) for c in (v, v.T, v[::-1], v[::-1].T))
        print("peer voxels equal dcm-fetch's:", ok, v.shape, ref.shape)
        sys.exit(0 if ok else 1)
    print(sum(v.size for v in vols))


if __name__ == "__main__":
    main()
