"""make_golden_ccl.py [OUTDIR] - golden files for lib/ccl and label-clean, made with scipy.ndimage.

Writes into OUTDIR (default tests/golden/ccl):
  syn_NAME.vxp    small synthetic label volumes (volume "label"), one case each, as input streams
  NAME_cC.npz     expected results for connectivity C, one array per key (label volumes in their input dtype,
                  component ids as int32), all indexed [x, y, z] like nibabel's arrays
  manifest.tsv    one line per check: INPUT  KEY  VOL  ARGS...  where INPUT is syn_NAME.vxp, or
                  v2 / spine25 for the shared TotalSegmentator labels read by
                  `vol-read example_ct_sm.nii.gz --label example_seg.nii.gz` (raw v2 ids), mapped by
                  `label-map --preset spine25` for spine25; KEY is NAME_cC.npz:ARRAY; VOL is the
                  volume of label-clean's output to compare (label, or comp for --components comp)

The peers, per connectivity C (structure = generate_binary_structure(3, 1|2|3) for 6|18|26):
  ids       scipy.ndimage.label of each class's mask; components of all classes numbered together
            by the C-order position of their first voxel (for one class: exactly ndimage.label's ids)
  largest   per class, all components but the largest (ties: the lowest id) set to 0
  min-size  components with size * |det(affine)| < N set to 0
  reassign  removed components take the kept class with the most neighbour-voxel contacts (pairs
            (voxel of the component, kept voxel) at an offset of the structure; ties: the lower
            class; none: 0)
  fill      per class c ascending: binary_fill_holes(a == c, structure) minus the class, its 0 voxels
            become c; a voxel in holes of several classes goes to the class whose hole (an
            ndimage.label component of the holes) is smallest, ties to the lower class
For one class, `fill` is also what MONAI's FillHoles(connectivity) gives (checked when monai is
installed). MONAI's KeepLargestConnectedComponent needs scikit-image, not installed here.
The real labels are read with nibabel, and mapped to spine25 with the table written out below
(TotalSegmentator v2 ids 50..44 = C1..C7, 43..32 = T1..T12, 31..27 = L1..L5, 26, 25 = sacrum).
"""
import itertools
import os
import sys

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vxp  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DATA = os.environ.get("VOXPIPE_DATA", os.path.join(ROOT, "..", "shared", "data"))
RANK = {6: 1, 18: 2, 26: 3}


def structure(conn):
    return ndi.generate_binary_structure(3, RANK[conn])


def offsets(conn):
    s = structure(conn)
    return [tuple(d) for d in itertools.product((-1, 0, 1), repeat=3) if any(d) and s[d[0] + 1, d[1] + 1, d[2] + 1]]


def classes(a):
    return [int(c) for c in np.unique(a) if c != 0]


def ids_all(a, conn):
    """component ids of all classes together, in C order of each component's first voxel"""
    s = structure(conn)
    comps = []  # (first flat C index, class, per-class id)
    labs = {}
    for c in classes(a):
        lab, n = ndi.label(a == c, structure=s)
        labs[c] = lab
        u, first = np.unique(lab.ravel(order="C"), return_index=True)
        comps += [(int(f), c, int(k)) for k, f in zip(u, first) if k]
    comps.sort()
    out = np.zeros(a.shape, np.int32)
    remap = {c: np.zeros(labs[c].max() + 1, np.int32) for c in labs}
    for new, (_, c, k) in enumerate(comps, 1):
        remap[c][k] = new
    for c, lab in labs.items():
        m = lab > 0
        out[m] = remap[c][lab[m]]
    if len(classes(a)) == 1:  # one class: exactly what ndimage.label gives
        assert np.array_equal(out, ndi.label(a != 0, structure=s)[0])
    return out


def sizes(ids):
    return np.bincount(ids.ravel())


def removed_largest(a, ids):
    """ids of components that are not the largest of their class"""
    sz = sizes(ids)
    cls = np.zeros(len(sz), np.int64)
    cls[ids.ravel()] = a.ravel()
    rem = set()
    for c in classes(a):
        ks = [k for k in range(1, len(sz)) if cls[k] == c]
        best = max(ks, key=lambda k: (sz[k], -k))
        rem |= {k for k in ks if k != best}
    return rem


def removed_small(ids, n, vv=1.0):
    sz = sizes(ids)
    return {k for k in range(1, len(sz)) if sz[k] * vv < n}


def apply_removal(a, ids, rem, conn, reassign):
    out = a.copy()
    rem_mask = np.isin(ids, sorted(rem)) if rem else np.zeros(a.shape, bool)
    kept = np.where(rem_mask, 0, a).astype(np.int64)
    target = {k: 0 for k in rem}
    if reassign and rem:
        counts = {}
        for d in offsets(conn):
            s1 = tuple(slice(max(0, -x), a.shape[i] - max(0, x)) for i, x in enumerate(d))
            s2 = tuple(slice(max(0, x), a.shape[i] - max(0, -x)) for i, x in enumerate(d))
            src, dst = ids[s1], kept[s2]
            m = rem_mask[s1] & (dst != 0)
            pairs, cnt = np.unique(np.stack([src[m].astype(np.int64), dst[m]]), axis=1, return_counts=True)
            for (k, c), n in zip(pairs.T, cnt):
                counts[(int(k), int(c))] = counts.get((int(k), int(c)), 0) + int(n)
        best = {}
        for (k, c), n in sorted(counts.items()):
            if n > best.get(k, (0, 0))[0]:
                best[k] = (n, c)
        target.update({k: c for k, (n, c) in best.items()})
    newval = np.zeros(ids.max() + 1, np.int64)
    for k in rem:
        newval[k] = target[k]
    out[rem_mask] = newval[ids[rem_mask]]
    return out


def fill_holes(a, conn):
    s = structure(conn)
    out = a.copy()
    best = np.full(a.shape, np.iinfo(np.int64).max)
    for c in classes(a):
        m = a == c
        h = ndi.binary_fill_holes(m, structure=s) & ~m
        lab, n = ndi.label(h, structure=s)
        hs = sizes(lab)[lab]
        sel = h & (a == 0) & (hs < best)
        out[sel] = c
        best[sel] = hs[sel]
    return out


def voxel_volume(affine):
    return abs(np.linalg.det(np.asarray(affine)[:3, :3]))


# ---- inputs

def blobs(rng, shape, ncls, thresh, smooth=1.2):
    """smoothed-noise blobs of ncls classes, plus single-voxel islands"""
    a = np.zeros(shape, np.int32)
    for c in range(1, ncls + 1):
        f = ndi.gaussian_filter(rng.standard_normal(shape), smooth)
        a[(f > thresh) & (a == 0)] = c
    isl = rng.random(shape) < 0.01
    a[isl] = rng.integers(1, ncls + 1, isl.sum())
    return a


def shell_case():
    """nested shells: holes inside holes, a hole open to the border, a hole closed only for 26"""
    a = np.zeros((34, 32, 19), np.uint8)
    g = np.indices(a.shape)
    r = np.sqrt((g[0] - 11.5) ** 2 + (g[1] - 10) ** 2 + (g[2] - 9) ** 2)
    a[(r >= 7) & (r < 9)] = 2          # class 2 closed shell around a cavity
    a[r < 4] = 1                       # class 1 ball inside the cavity
    a[r < 1.5] = 0                     # with its own hole: in holes of 2 and 1, goes to 1 (innermost)
    r5 = np.sqrt((g[0] - 27) ** 2 + (g[1] - 10) ** 2 + (g[2] - 9) ** 2)
    a[(r5 >= 3) & (r5 < 5)] = 5        # class 5 shell ...
    a[(g[0] == 27) & (g[1] == 10) & (r5 >= 3) & (r5 < 5) & (g[2] > 9)] = 0  # ... with a tunnel: open
    a[2:8, 22:28, 0:6] = 3             # class 3 box at the border, hollow, open at z = 0
    a[3:7, 23:27, 0:5] = 0
    b = np.zeros((7, 7, 7), bool)       # class 4: a cube shell whose hole leaks only through a corner
    b[:, :, :] = True
    b[1:6, 1:6, 1:6] = False
    b[6, 6, 6] = False                 # corner voxel open: cavity reaches outside through (5,5,5)-(6,6,6)
    a[14:21, 23:30, 11:18][b] = 4
    a[15:20, 24:29, 12:17][2, 2, 2] = 4  # one voxel of class 4 inside its own hole
    a[16, 25, 12] = 2                  # another class inside the class-4 hole
    return a


def diag_case(rng):
    """sparse voxels: 6-, 18- and 26-components all differ"""
    a = (rng.random((17, 13, 11)) < 0.3).astype(np.uint8)
    a[a == 1] = rng.integers(1, 3, int(a.sum()))
    return a


def tie_case():
    """two equal components of one class: --largest keeps the first in numbering order"""
    a = np.zeros((9, 8, 7), np.uint8)
    a[5:7, 1:3, 1:3] = 1
    a[1:3, 4:6, 3:5] = 1
    a[1:3, 1:3, 5:7] = 2
    a[6:8, 5:7, 4:6] = 2
    a[4, 4, 4] = 1
    return a


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "golden", "ccl")
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20240503)
    aff_aniso = np.diag([0.5, 1.25, 2.0, 1.0])
    aff_aniso[:3, 3] = [-10, 20, 5.5]
    obl = np.array([[0, 0, -1.5, 30], [0.9, 0.1, 0, -20], [-0.1, 0.9, 0, 10], [0, 0, 0, 1]])
    syn = {
        "blobs": (blobs(rng, (40, 30, 20), 4, 0.45).astype(np.uint8), aff_aniso),
        "diag": (diag_case(rng), np.eye(4)),
        "shells": (shell_case(), np.eye(4)),
        "ties": (tie_case(), np.eye(4)),
        "i16": ((blobs(rng, (23, 31, 17), 3, 0.5) * -1000).astype(np.int16), obl),
    }
    b = blobs(rng, (19, 11, 29), 3, 0.4)
    syn["i32"] = (np.where(b > 0, b * 70001 + 5, 0).astype(np.int32), obl)
    manifest = []

    def golden(base, a, affine, inp, conns=(6, 18, 26), min_sizes=(), mm3=()):
        vv = voxel_volume(affine)
        for conn in conns:
            arrs = {}
            name = "%s_c%d" % (base, conn)
            ids = ids_all(a, conn)
            arrs["ids%d" % conn] = ids
            manifest.append((inp, "%s.npz:ids%d" % (name, conn), "comp", "--connectivity %d --components comp" % conn))
            rem = removed_largest(a, ids)
            for reas in (0, 1):
                k = "largest%d%s" % (conn, "r" if reas else "")
                arrs[k] = apply_removal(a, ids, rem, conn, reas)
                manifest.append((inp, "%s.npz:%s" % (name, k), "label",
                                 "--connectivity %d --largest%s" % (conn, " --reassign" if reas else "")))
            for n in min_sizes:
                k = "min%d_%d" % (n, conn)
                arrs[k] = apply_removal(a, ids, removed_small(ids, n), conn, 0)
                manifest.append((inp, "%s.npz:%s" % (name, k), "label", "--connectivity %d --min-size %d" % (conn, n)))
                k += "r"
                arrs[k] = apply_removal(a, ids, removed_small(ids, n), conn, 1)
                manifest.append((inp, "%s.npz:%s" % (name, k), "label", "--connectivity %d --min-size %d --reassign" % (conn, n)))
            for n in mm3:
                k = "mm%d_%d" % (n, conn)
                arrs[k] = apply_removal(a, ids, removed_small(ids, n, vv), conn, 0)
                manifest.append((inp, "%s.npz:%s" % (name, k), "label", "--connectivity %d --min-size %dmm3" % (conn, n)))
            k = "fill%d" % conn
            arrs[k] = fill_holes(a, conn)
            manifest.append((inp, "%s.npz:%s" % (name, k), "label", "--connectivity %d --fill-holes" % conn))
            # all together, in label-clean's order: removal, then holes of the result
            k = "all%d" % conn
            arrs[k] = fill_holes(apply_removal(a, ids, rem | removed_small(ids, 3), conn, 1), conn)
            manifest.append((inp, "%s.npz:%s" % (name, k), "label",
                             "--connectivity %d --largest --min-size 3 --reassign --fill-holes" % conn))
            np.savez_compressed(os.path.join(out, name + ".npz"), **arrs)

    # the shells case exercises the innermost rule: filling class after class (ascending, each
    # overwriting) differs from it
    sh = syn["shells"][0]
    naive = sh.copy()
    for c in classes(sh):
        naive[ndi.binary_fill_holes(sh == c) & (sh == 0)] = c
    assert not np.array_equal(naive, fill_holes(sh, 6))

    for name, (a, affine) in syn.items():
        inp = "syn_%s.vxp" % name
        with open(os.path.join(out, inp), "wb") as f:
            vxp.write(f, [{"id": name, "meta": {}, "vols": {"label": vxp.Vol(a, affine)}}])
        golden(name, a, affine, inp, min_sizes=(2, 5), mm3=(10,) if name == "blobs" else ())

    img = nib.load(os.path.join(DATA, "totalseg", "example_seg.nii.gz"))
    v2 = np.asanyarray(img.dataobj).astype(np.uint8)
    golden("real_v2", v2, img.affine, "v2", conns=(6, 26), min_sizes=(50,), mm3=(1000,))
    m = np.zeros(256, np.uint8)
    for k in range(1, 8):
        m[51 - k] = k
    for k in range(1, 13):
        m[44 - k] = 7 + k
    for k in range(1, 6):
        m[32 - k] = 19 + k
    m[25] = m[26] = 25
    golden("real_spine25", m[v2], img.affine, "spine25", conns=(6, 18, 26), min_sizes=(50,))

    # MONAI's FillHoles agrees with this peer on one class at a time (on several classes it differs
    # by design: it also overwrites other classes inside a hole, in the order it visits the labels)
    try:
        import torch
        from monai.transforms import FillHoles
    except ImportError:
        print("monai not installed: FillHoles cross-check skipped")
    else:
        for conn in (6, 18, 26):
            for c in classes(sh):
                one = np.where(sh == c, c, 0).astype(np.int64)
                got = np.asarray(FillHoles(applied_labels=[c], connectivity=RANK[conn])(torch.as_tensor(one[None]))[0])
                assert np.array_equal(got, fill_holes(one, conn)), (conn, c)
        print("monai FillHoles agrees on each single class of the shells case")

    with open(os.path.join(out, "manifest.tsv"), "w") as f:
        for row in manifest:
            f.write("\t".join(row) + "\n")
    total = sum(os.path.getsize(os.path.join(out, x)) for x in os.listdir(out))
    print("wrote %d checks, %d files, %d bytes into %s" % (len(manifest), len(os.listdir(out)), total, out))


if __name__ == "__main__":
    main()
