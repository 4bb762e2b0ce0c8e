#!/usr/bin/env python3
"""Side-by-side timing of normalize (voxpipe) against its peers on a 512x512x400 CT.

usage: bench_preproc.py BIN_DIR DATA_DIR OUT_DIR

The volume: the shared CT (example_ct_sm, 122x101x30) upsampled to 512x512x400 with
scipy.ndimage.zoom(order=1) plus seeded noise (numpy default_rng(7), sigma 20 HU), int16, with its
labels upsampled by nearest neighbour (zoom order=0); written once to OUT_DIR/preproc512.vxp
(the stream normalize reads) and .npy files for the peers (temp name + rename; reused if present).

voxpipe: the whole process `normalize MODE --threads T -i preproc512.vxp -o - > /dev/null`: reading
the 210 MB stream, converting to f32, computing, and writing the 420 MB result to a pipe, timed
around the process. Peer: only the transform, in this process, on arrays already in memory (no
interpreter start, no import, no load or save), with torch.set_num_threads(T); scipy is
single-threaded. So the ratio (peer / voxpipe) leaves out all of the peer's I/O and start-up.
Rounds alternate voxpipe and peer; medians are compared, min and max shown. MONAI's GaussianSmooth
(torch conv3d on the CPU) takes about a minute on this volume, so the case that uses it (the MONAI
Label chain) runs the peer BENCH_SLOW_ROUNDS times (default 1, no warm-up), and GaussianSmooth alone
(sigma 1) only with BENCH_FULL=1: the bench stays near 2 minutes.
BENCH_ROUNDS (default 3), BENCH_THREADS (default: the number of CPUs).
"""
import os
import statistics
import subprocess
import sys
import time

import numpy as np

BIN, DATA, OUT = sys.argv[1:4]
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SLOW_ROUNDS = int(os.environ.get("BENCH_SLOW_ROUNDS", "1"))
THREADS = int(os.environ.get("BENCH_THREADS", str(os.cpu_count() or 1)))
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "scripts"))
import vxp  # noqa: E402

SHAPE = (512, 512, 400)
VXP = os.path.join(OUT, "preproc512.vxp")
NPY_CT = os.path.join(OUT, "preproc512_ct.npy")
NPY_LAB = os.path.join(OUT, "preproc512_label.npy")


def generate():
    import nibabel as nib
    import scipy.ndimage as ndi
    src = nib.load(os.path.join(DATA, "totalseg", "example_ct_sm.nii.gz"))
    ct = np.asanyarray(src.dataobj).astype(np.float32)
    lab = np.asanyarray(nib.load(os.path.join(DATA, "totalseg", "example_seg.nii.gz")).dataobj).astype(np.uint8)
    z = [n / s for n, s in zip(SHAPE, ct.shape)]
    big = ndi.zoom(ct, z, order=1, grid_mode=False)[:SHAPE[0], :SHAPE[1], :SHAPE[2]]
    big += np.random.default_rng(7).normal(0, 20, big.shape).astype(np.float32)
    big = np.clip(np.rint(big), -32768, 32767).astype(np.int16)
    blab = ndi.zoom(lab, z, order=0, grid_mode=False)[:SHAPE[0], :SHAPE[1], :SHAPE[2]]
    aff = src.affine.copy()
    aff[:3, :3] = src.affine[:3, :3] @ np.diag([s / n for s, n in zip(ct.shape, SHAPE)])
    for path, arr in ((NPY_CT, big), (NPY_LAB, blab)):
        np.save(path + ".tmp.npy", arr)
        os.replace(path + ".tmp.npy", path)
    with open(VXP + ".tmp", "wb") as f:
        vxp.write(f, [{"id": "ct512", "meta": {}, "vols": {"image": vxp.Vol(big, aff), "label": vxp.Vol(blab, aff)}}])
    os.replace(VXP + ".tmp", VXP)


if not all(os.path.exists(p) for p in (VXP, NPY_CT, NPY_LAB)):
    print("bench_preproc: generating the 512x512x400 volume (once)", file=sys.stderr)
    generate()

import torch  # noqa: E402
import scipy  # noqa: E402
import scipy.ndimage as ndi  # noqa: E402
import monai  # noqa: E402
from monai.transforms import (GaussianSmooth, NormalizeIntensity, ScaleIntensity,  # noqa: E402
                              ScaleIntensityRange)

torch.set_num_threads(THREADS)
CT = np.load(NPY_CT)
LAB = np.load(NPY_LAB)
CT_T = torch.as_tensor(CT[None])  # MONAI's channel-first input, int16 as loaded
subprocess.run(["cat", VXP], stdout=subprocess.DEVNULL, check=True)  # the stream in the page cache


def nnunet_ct(image, fg_mask):
    fg = image.astype(np.float32)[fg_mask]
    p0, p1 = np.percentile(fg, (0.5, 99.5))
    props = dict(mean=float(np.mean(fg)), std=float(np.std(fg)), lo=float(p0), hi=float(p1))
    image = image.astype(np.float32)
    np.clip(image, props["lo"], props["hi"], out=image)
    image -= props["mean"]
    image /= max(props["std"], 1e-8)
    return image


def chain(t):
    for tf in (NormalizeIntensity(nonzero=True), GaussianSmooth(sigma=0.4), ScaleIntensity(minv=-1.0, maxv=1.0)):
        t = tf(t)
    return t


CASES = [
    ("--range -1000,1000,0,1 --clip", f"MONAI {monai.__version__} ScaleIntensityRange(clip=True)",
     lambda: ScaleIntensityRange(-1000, 1000, 0.0, 1.0, clip=True)(CT_T)),
    ("--zscore", "MONAI NormalizeIntensity()", lambda: NormalizeIntensity()(CT_T)),
    ("--ct --fg label", f"nnU-Net CTNormalization + case fg stats (numpy {np.__version__})",
     lambda: nnunet_ct(CT, LAB > 0)),
    ("--gaussian 1 --kernel scipy", f"scipy {scipy.__version__} gaussian_filter(f32, sigma=1)",
     lambda: ndi.gaussian_filter(CT.astype(np.float32), 1.0)),
    ("--gaussian 1", "MONAI GaussianSmooth(sigma=1)", lambda: GaussianSmooth(sigma=1.0)(CT_T)),
    ("--chain monailabel", "MONAI NormalizeIntensity(nonzero)+GaussianSmooth(0.4)+ScaleIntensity(-1,1)",
     lambda: chain(CT_T)),
]
if os.environ.get("BENCH_FULL") != "1":
    CASES = [c for c in CASES if c[0] != "--gaussian 1"]


def run_vox(opts):
    cmd = [os.path.join(BIN, "normalize")] + opts.split() + ["--threads", str(THREADS), "-i", VXP, "-o", "-"]
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def run_peer(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def fmt(ts):
    return f"{statistics.median(ts):6.2f} s ({min(ts):.2f}-{max(ts):.2f})"


print(f"volume 512x512x400 int16 ({os.path.getsize(VXP) / 2**20:.0f} MiB stream), {ROUNDS} rounds, "
      f"{THREADS} threads (voxpipe --threads, torch.set_num_threads), torch {torch.__version__}")
print(f"{'normalize options':32s} {'voxpipe (process, I/O incl.)':30s} {'peer (transform only)':28s} "
      f"{'peer/voxpipe':>12s}  peer")
rows = []
for opts, peer, fn in CASES:
    slow = "GaussianSmooth" in peer
    if not slow:
        run_peer(fn)  # warm-up (torch kernels)
    tv, tp = [], []
    for r in range(ROUNDS):
        if r % 2 == 0:
            tv.append(run_vox(opts))
        if r < (SLOW_ROUNDS if slow else ROUNDS):
            tp.append(run_peer(fn))
        if r % 2 == 1:
            tv.append(run_vox(opts))
    ratio = statistics.median(tp) / statistics.median(tv)
    rows.append((opts, ratio))
    print(f"{opts:32s} {fmt(tv):30s} {fmt(tp):28s} {ratio:11.1f}x  {peer}", flush=True)
