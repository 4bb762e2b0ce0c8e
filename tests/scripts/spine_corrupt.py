"""spine_corrupt.py KIND [--reorient] [--expect FILE] < IN.vxp > OUT.vxp

Makes a deliberate vertebra-labelling error in the spine25 volume "label" of the one case of a stream
(the shared TotalSegmentator labels mapped with label-map --preset spine25: T11, T12, L1, L2 = 18..21),
the kind of error label-clean --spine-order must repair. KIND:
  none       no change (the reference)
  swap       T12 and L1 exchange labels
  duplicate  L1 is labelled L2 (two L2 components, no L1)
  split40    the lowest 40% of L1's voxels (by S) are labelled L2: a fragment of L1
  split60    the lowest 60% of L1's voxels are labelled L2: a split vertebra with two big parts
  island     a 2x2x2 island of T12 and one of C3 in empty space away from the spine
  combo      swap and island together
--reorient permutes and flips the axes (voxel axes become I, R, P; the affine changes with them so
the world positions stay), so the repair must find S/I from the affine.
--expect FILE writes the changes the repair must report, computed here from the clean labels:
[{"from": id, "to": id, "voxels": n}, ...] (one per changed component).
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vxp  # noqa: E402

T11, T12, L1, L2, C3 = 18, 19, 20, 21, 3


def lowest_part(a, cls, frac):
    """mask of the fraction frac of class cls's voxels lowest along z (RAS input: z is S)"""
    idx = np.argwhere(a == cls)
    order = np.lexsort((idx[:, 1], idx[:, 0], idx[:, 2]))  # by z, ties by x then y
    part = idx[order[: int(round(frac * len(idx)))]]
    m = np.zeros(a.shape, bool)
    m[tuple(part.T)] = True
    return m


def empty_spot(a, x, y, z):
    """a 2x2x2 block at (x, y, z) with nothing within 4 voxels"""
    assert not a[x - 4:x + 6, y - 4:y + 6, z - 4:z + 6].any(), "island spot not empty"
    m = np.zeros(a.shape, bool)
    m[x:x + 2, y:y + 2, z:z + 2] = True
    return m


def corrupt(a, kind):
    b = a.copy()
    exp = []
    n = {c: int((a == c).sum()) for c in (T12, L1)}
    if kind in ("swap", "combo"):
        b[a == T12] = L1
        b[a == L1] = T12
        exp += [{"from": L1, "to": T12, "voxels": n[T12]}, {"from": T12, "to": L1, "voxels": n[L1]}]
    if kind == "duplicate":
        b[a == L1] = L2
        exp += [{"from": L2, "to": L1, "voxels": n[L1]}]
    if kind in ("split40", "split60"):
        m = lowest_part(a, L1, 0.4 if kind == "split40" else 0.6)
        b[m] = L2
        exp += [{"from": L2, "to": L1, "voxels": int(m.sum())}]
    if kind in ("island", "combo"):
        for cls, spot in ((T12, (20, 60, 12)), (C3, (100, 30, 6))):
            m = empty_spot(a, *spot)
            b[m] = cls
            exp += [{"from": cls, "to": 0, "voxels": int(m.sum())}]
    if kind not in ("none", "swap", "duplicate", "split40", "split60", "island", "combo"):
        sys.exit("spine_corrupt.py: unknown kind " + kind)
    return b, exp


def reorient(arr, affine):
    """new[i, j, k] = old[x = j, y = ny-1-k, z = nz-1-i]: axes I, R, P for a RAS input"""
    nx, ny, nz = arr.shape
    new = arr.transpose(2, 0, 1)[::-1, :, ::-1]
    m = np.array([[0, 1, 0, 0], [0, 0, -1, ny - 1], [-1, 0, 0, nz - 1], [0, 0, 0, 1]], float)
    return np.ascontiguousarray(new), affine @ m


def main():
    args = sys.argv[1:]
    kind = args[0]
    expect = args[args.index("--expect") + 1] if "--expect" in args else None
    cases = list(vxp.read(sys.stdin.buffer))
    c = cases[0]
    v = c["vols"]["label"]
    b, exp = corrupt(v.data, kind)
    aff = v.affine
    if "--reorient" in args:
        b, aff = reorient(b, aff)
    c["vols"]["label"] = vxp.Vol(b.astype(v.data.dtype), aff)
    vxp.write(sys.stdout.buffer, [c])
    if expect:
        with open(expect, "w") as f:
            json.dump(exp, f)


if __name__ == "__main__":
    main()
