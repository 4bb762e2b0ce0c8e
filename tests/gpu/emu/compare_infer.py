#!/usr/bin/env python3
"""tests/gpu/emu/compare_infer.py - compare two infer-ressegnet output streams (tests/gpu/emulate.sh
and tests/gpu/check.sh): the reference (CPU backend) and the one under test (CUDA backend), case by
case: label volumes (dims, affine, voxels), and 'prob' when both have it.

usage: compare_infer.py REF.vxp GOT.vxp [--exact | --agree PCT] [--prob-tol T]
  --exact       every label voxel equal (default)
  --agree PCT   at least PCT percent of the label voxels equal (f16 math / f16 aggregation)
  --prob-tol T  max |prob_ref - prob_got| allowed (default 1e-3: f16 rounding of the probabilities)
prints one line "compare: ..." and exits 0 when the checks hold, 1 otherwise. Needs numpy, msgpack.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
import vxp  # noqa: E402


def main():
    a = sys.argv[1:]
    ref, got = a[0], a[1]
    agree = float(a[a.index("--agree") + 1]) if "--agree" in a else None
    ptol = float(a[a.index("--prob-tol") + 1]) if "--prob-tol" in a else 1e-3
    with open(ref, "rb") as f:
        rc = list(vxp.read(f))
    with open(got, "rb") as f:
        gc = list(vxp.read(f))
    ok, parts = True, []
    if not rc or len(rc) != len(gc):
        print(f"compare: FAIL: {len(rc)} reference case(s), {len(gc)} under test")
        return 1
    for r, g in zip(rc, gc):
        lr, lg = r["vols"].get("label"), g["vols"].get("label")
        if r["id"] != g["id"] or lr is None or lg is None or lr.data.shape != lg.data.shape or lr.data.dtype != lg.data.dtype:
            print(f"compare: FAIL: case {r['id']!r}/{g['id']!r}: label missing or of another shape/dtype")
            return 1
        if not np.array_equal(lr.affine, lg.affine):
            ok = False
            parts.append(f"{r['id']}: label affine differs")
        n = lr.data.size
        diff = int(np.count_nonzero(lr.data != lg.data))
        pct = 100.0 * (n - diff) / n
        classes = len(np.unique(lr.data))
        parts.append(f"{r['id']}: {diff} of {n} labels differ ({pct:.3f}% agree, {classes} classes present)")
        if (agree is None and diff) or (agree is not None and pct < agree):
            ok = False
        pr, pg = r["vols"].get("prob"), g["vols"].get("prob")
        if (pr is None) != (pg is None):
            ok = False
            parts.append("prob in one stream only")
        elif pr is not None:
            if pr.data.shape != pg.data.shape:
                ok = False
                parts.append("prob shapes differ")
            else:
                m = float(np.max(np.abs(pr.data.astype(np.float64) - pg.data.astype(np.float64))))
                parts.append(f"prob max abs {m:.3g} (tolerance {ptol:g})")
                ok = ok and m <= ptol
    print(("compare: ok: " if ok else "compare: FAIL: ") + "; ".join(parts))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
