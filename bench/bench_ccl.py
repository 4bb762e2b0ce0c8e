"""bench_ccl.py BIN_DIR DATA_DIR OUT_DIR - label-clean --largest vs a Python loop of scipy.ndimage.label.

The input is made once, deterministically: the shared TotalSegmentator labels (example_seg.nii.gz,
122x101x30 at 3 mm) with every id folded onto 25 classes (1 + (id-1) % 25), upsampled by nearest
neighbour to 512x512x400 (0.71 x 0.59 x 0.225 mm) and sprinkled with 30000 cubic islands (1-3 voxels
a side) of random classes (numpy seed 1234): OUT_DIR/ccl/lab512.nii (uint8, 100 MiB) and the same
volume as a voxpipe stream, OUT_DIR/ccl/lab512.vxp.

Timed, medians reported: voxpipe BENCH_ROUNDS times (default 5), split before and after the peer's
BENCH_PEER_ROUNDS (default 1: one round takes about a minute on 2 cores):
  voxpipe   label-clean --vol image --largest -i lab512.vxp -o out.vxp (a whole process: reads and
            writes the 100 MiB stream), with --threads N (BENCH_THREADS, default: CPUs) and 1
  peer      in one Python process, on an in-memory copy of the array (loading, copying and saving
            not timed): for c in 1..25: lab, n = ndimage.label(a == c, structure 26);
            a[(a == c) & (lab != largest)] = 0, largest = argmax of bincount(lab[a == c])[1:] + 1
The output of the first peer round is compared voxel for voxel with voxpipe's.
"""
import os
import statistics
import subprocess
import sys
import time

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

BIN, DATA, OUT = sys.argv[1:4]
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
PEER_ROUNDS = int(os.environ.get("BENCH_PEER_ROUNDS", "1"))
THREADS = int(os.environ.get("BENCH_THREADS", str(os.cpu_count() or 1)))
D = os.path.join(OUT, "ccl")
SHAPE = (512, 512, 400)


def generate():
    src = nib.load(os.path.join(DATA, "totalseg", "example_seg.nii.gz"))
    a = np.asanyarray(src.dataobj).astype(np.int32)
    cls = np.where(a > 0, 1 + (a - 1) % 25, 0).astype(np.uint8)
    idx = [np.minimum((np.arange(n) + 0.5) * m / n, m - 1).astype(np.intp) for n, m in zip(SHAPE, cls.shape)]
    big = cls[np.ix_(*idx)]
    rng = np.random.default_rng(1234)
    for _ in range(30000):
        s = int(rng.integers(1, 4))
        x, y, z = (int(rng.integers(0, n - s)) for n in SHAPE)
        big[x:x + s, y:y + s, z:z + s] = int(rng.integers(1, 26))
    aff = src.affine.copy()
    aff[:3, :3] = aff[:3, :3] @ np.diag([m / n for n, m in zip(SHAPE, cls.shape)])
    nib.save(nib.Nifti1Image(big, aff), os.path.join(D, "lab512.nii"))
    subprocess.run([os.path.join(BIN, "vol-read"), os.path.join(D, "lab512.nii"), "-o", os.path.join(D, "lab512.vxp")], check=True)


def peer(a):
    s = ndi.generate_binary_structure(3, 3)
    for c in range(1, 26):
        m = a == c
        lab, n = ndi.label(m, structure=s)
        if n > 1:
            keep = int(np.argmax(np.bincount(lab[m])[1:])) + 1  # sizes from the mask's voxels only
            a[m & (lab != keep)] = 0
    return a


def voxpipe(threads, out):
    t = time.perf_counter()
    subprocess.run([os.path.join(BIN, "label-clean"), "-q", "--threads", str(threads), "--vol", "image", "--largest",
                    "-i", os.path.join(D, "lab512.vxp"), "-o", out], check=True)
    return time.perf_counter() - t


def main():
    os.makedirs(D, exist_ok=True)
    if not (os.path.exists(os.path.join(D, "lab512.nii")) and os.path.exists(os.path.join(D, "lab512.vxp"))):
        print("generating the 512x512x400 25-class label volume (once)", flush=True)
        generate()
    a0 = np.asarray(nib.load(os.path.join(D, "lab512.nii")).dataobj).copy()
    print("input: %s %s, %d classes, %d labelled voxels" % (a0.shape, a0.dtype, len(np.unique(a0)) - 1, int((a0 > 0).sum())))

    out = os.path.join(D, "out.vxp")
    vox = ["voxpipe --threads %d" % THREADS, "voxpipe --threads 1"]
    times = {vox[0]: [], vox[1]: [], "scipy loop": []}

    def vox_rounds(n, first):
        for r in range(n):
            for k in (vox if (r + first) % 2 == 0 else vox[::-1]):
                times[k].append(voxpipe(int(k.split()[-1]), out))

    def peer_round():
        a = a0.copy()
        t = time.perf_counter()
        peer(a)
        times["scipy loop"].append(time.perf_counter() - t)
        return a

    vox_rounds(ROUNDS // 2, 0)
    # the first peer round's output is compared with voxpipe's (the last voxpipe output)
    want = peer_round()
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "scripts"))
    import vxp
    got = list(vxp.read(open(out, "rb")))[0]["vols"]["image"].data
    same = np.array_equal(got, want)
    print("outputs identical: %s (%d voxels removed)" % (same, int((a0 != want).sum())), flush=True)
    del got, want
    for r in range(PEER_ROUNDS - 1):
        peer_round()
    vox_rounds(ROUNDS - ROUNDS // 2, 1)
    os.remove(out)
    med = {k: statistics.median(v) for k, v in times.items()}
    print("\n%-22s %9s %9s %9s   %s" % ("", "median s", "min s", "max s", "vs scipy loop"))
    for k, v in times.items():
        print("%-22s %9.3f %9.3f %9.3f   %6.1fx" % (k, med[k], min(v), max(v), med["scipy loop"] / med[k]))
    best = med["scipy loop"] / med["voxpipe --threads %d" % THREADS]
    print("\nlabel-clean --largest (whole process, stream in and out) vs scipy loop (compute only): "
          "%.1fx faster with %d threads, %.1fx with 1 (goal >= 5x): %s"
          % (best, THREADS, med["scipy loop"] / med["voxpipe --threads 1"], "PASS" if best >= 5 and same else "MISS"))


if __name__ == "__main__":
    main()
