"""check_preproc.py - compare crop/normalize output streams with the peer goldens of
make_golden_preproc.py (tests/golden/preproc).

  check_preproc.py args GOLDEN_DIR norm|crop NAME     print the program's options, one per line
                                                      ("@FILE" arguments replaced by FILE's content)
  check_preproc.py norm GOLDEN_DIR NAME OUT.vxp [TOL]  the volume equals the peer's float32 output:
        max |ours - peer| <= TOL * max |peer| (default TOL 1e-5: relative to the volume's largest
        magnitude), dtype f32, same dims and affine as the input; prints the errors reached
  check_preproc.py crop GOLDEN_DIR NAME OUT.vxp       every volume has MONAI's shape and voxel bytes
        (sha256) exactly, the affine within 1e-9 mm, and meta.crop's last box is MONAI's box
  norm entries with "stats" (nnU-Net CT): meta.normalize's last record has the same percentiles
        exactly and mean/std within 1e-6 relative
"""
import hashlib
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vxp  # noqa: E402


def entry(gdir, kind, name):
    with open(os.path.join(gdir, "norm.json" if kind == "norm" else "crop.json")) as f:
        for e in json.load(f):
            if e["name"] == name:
                return e
    sys.exit(f"check_preproc: no golden {kind} '{name}'")


def cases(path):
    with open(path, "rb") as f:
        return {c["id"]: c for c in vxp.read(f)}


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def main():
    mode, gdir = sys.argv[1], sys.argv[2]
    if mode == "args":
        for a in entry(gdir, sys.argv[3], sys.argv[4])["args"]:
            if a.startswith("@"):
                a = open(os.path.join(gdir, a[1:])).read().strip()
            print(a)
        return
    name, out = sys.argv[3], sys.argv[4]
    if mode == "norm":
        e = entry(gdir, "norm", name)
        tol = float(sys.argv[5]) if len(sys.argv) > 5 else 1e-5
        ref = np.load(os.path.join(gdir, e["golden"]))
        inp = cases(os.path.join(gdir, e["input"]))[e["case"]]["vols"][e["vol"]]
        got = cases(out)[e["case"]]["vols"][e["vol"]]
        if got.data.dtype != np.float32:
            fail(f"dtype {got.data.dtype}, want float32")
        if got.data.shape != ref.shape:
            fail(f"shape {got.data.shape}, want {ref.shape}")
        if not np.array_equal(got.affine, inp.affine):
            fail("affine changed")
        scale = float(np.max(np.abs(ref)))
        err = np.abs(got.data.astype(np.float64) - ref.astype(np.float64))
        rel_each = err / np.maximum(np.abs(ref), 1e-30)
        print(f"{name}: max abs err {err.max():.3g}, max err / max|peer| {err.max() / scale:.3g}, "
              f"max elementwise rel err {rel_each.max():.3g}, identical voxels {np.mean(err == 0):.1%} "
              f"(peer: {e['peer']})")
        if not err.max() <= tol * scale:
            fail(f"max abs err {err.max():.3g} > {tol:g} x {scale:.6g}")
        if "stats" in e:  # nnU-Net's intensity properties: percentiles exact, mean/std to 1e-6
            rec = cases(out)[e["case"]]["meta"]["normalize"][-1]
            for k, want in e["stats"].items():
                exact = k.startswith("percentile")
                if (rec[k] != want) if exact else abs(rec[k] - want) > 1e-6 * abs(want):
                    fail(f"meta normalize {k} = {rec[k]!r}, nnU-Net's is {want!r}")
            print(f"{name}: statistics {e['stats']} agree")
        return
    if mode == "crop":
        e = entry(gdir, "crop", name)
        c = next(iter(cases(out).values()))
        for vol, want in e["sha256"].items():
            v = c["vols"][vol]
            if list(v.data.shape) != e["shape"]:
                fail(f"{vol}: shape {list(v.data.shape)}, want {e['shape']}")
            got = hashlib.sha256(np.asarray(v.data).tobytes(order="F")).hexdigest()
            if got != want:
                fail(f"{vol}: voxels differ from MONAI's")
            if np.max(np.abs(v.affine.ravel() - np.asarray(e["affine"]))) > 1e-9:
                fail(f"{vol}: affine {v.affine.ravel().tolist()}, want {e['affine']}")
        box = c["meta"]["crop"][-1]["box"]
        if box != e["box"]:
            fail(f"meta crop box {box}, want {e['box']}")
        print(f"{name}: box {box}, shape {e['shape']}: identical to {e['peer']}")
        return
    sys.exit(f"check_preproc: unknown mode {mode}")


if __name__ == "__main__":
    main()
