#!/usr/bin/env python3
"""check_resample.py - run-side helper of the resample/reorient golden tests (tests/shell/resample.bats).

  check_resample.py read GOLDEN NAME       vol-read arguments of case NAME, one per line (files under
                                           GOLDEN), or the one .vxp stream file to use as input
  check_resample.py args GOLDEN NAME       the program, then its arguments, one per line
  check_resample.py compare GOLDEN NAME OUT.vxp
                                           compare the output volume with the peer's: dtype, dims,
                                           affine (1e-9 mm), voxels (cmp 'exact': equal; 'float':
                                           |a - b| <= 1e-4 * max(|b|, 1)) over the npz's mask if any
  check_resample.py names GOLDEN           all case names

Exit 0 when equal, 1 with a description of the first differences otherwise.
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vxp  # noqa: E402


def case(golden, name):
    with open(os.path.join(golden, "cases.json")) as fh:
        for c in json.load(fh):
            if c["name"] == name:
                return c
    sys.exit("check_resample: no case %r" % name)


def compare(golden, name, out):
    c = case(golden, name)
    exp = np.load(os.path.join(golden, name + ".npz"))
    with open(out, "rb") as fh:
        cases = list(vxp.read(fh))
    if len(cases) != 1 or c["vol"] not in cases[0]["vols"]:
        return "want one case with volume %r, got %s" % (c["vol"], [list(x["vols"]) for x in cases])
    v = cases[0]["vols"][c["vol"]]
    got_dt = vxp.NAMES[np.dtype(v.data.dtype)]
    if got_dt != c["dtype"]:
        return "dtype %s, the peer's %s" % (got_dt, c["dtype"])
    b = exp["data"]
    if v.data.shape != b.shape:
        return "dims %s, the peer's %s" % (v.data.shape, b.shape)
    da = np.abs(v.affine - exp["affine"]).max()
    if not da <= 1e-9:
        return "affine differs by %g mm:\n%s\npeer:\n%s" % (da, v.affine, exp["affine"])
    mask = exp["mask"] if "mask" in exp else np.ones(b.shape, bool)
    x, y = v.data[mask].astype(np.float64), b[mask].astype(np.float64)
    d = np.abs(x - y)
    if c["cmp"] == "exact":
        bad = d != 0
    else:
        bad = ~(d <= 1e-4 * np.maximum(np.abs(y), 1.0))
    rel = (d / np.maximum(np.abs(y), 1.0)).max() if d.size else 0.0
    print("%s: %d of %d voxels compared (%s, peer: %s): max |diff| %.3g, max relative %.3g" %
          (name, mask.sum(), mask.size, c["cmp"], c["peer"], d.max() if d.size else 0, rel))
    if bad.any():
        idx = np.argwhere(mask)[bad][:5]
        return "%d voxels differ, e.g. %s" % (bad.sum(), ["%s: %g vs %g" % (tuple(i), v.data[tuple(i)], b[tuple(i)])
                                                         for i in idx])
    return None


def main():
    cmd, golden = sys.argv[1], sys.argv[2]
    if cmd == "names":
        with open(os.path.join(golden, "cases.json")) as fh:
            print("\n".join(c["name"] for c in json.load(fh)))
        return
    c = case(golden, sys.argv[3])
    if cmd == "read":
        for a in c["read"]:
            print(os.path.join(golden, a) if a.endswith((".nii.gz", ".vxp")) else a)
    elif cmd == "args":
        print(c["prog"])
        for a in c["args"]:
            print(os.path.join(golden, a) if a.endswith(".nii.gz") else a)
    elif cmd == "compare":
        err = compare(golden, sys.argv[3], sys.argv[4])
        if err:
            sys.exit("%s: %s" % (sys.argv[3], err))
    else:
        sys.exit("check_resample: unknown command %r" % cmd)


if __name__ == "__main__":
    main()
