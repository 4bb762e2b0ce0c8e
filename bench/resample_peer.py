#!/usr/bin/env python3
"""Timing of bench/bench_resample.sh: voxpipe `resample` against scipy.ndimage.zoom(order=1) and
SimpleITK's ResampleImageFilter (linear), 512x512x141 int16 at 0.98x0.98x2 mm -> 1.5 mm isotropic.

usage: resample_peer.py RESAMPLE_BIN CT.nii CT.vps OUT_DIR

voxpipe is timed as a whole process (reading the stream file, resampling, writing the output stream
to /dev/null); the peers are timed in-process around the resampling call only (data already loaded,
no I/O, no interpreter start). Rounds interleave the commands so that the noise of a shared machine
hits every side alike; ratios use the medians. Threads: SimpleITK gets the same count as voxpipe
(sitk.ProcessObject.SetGlobalDefaultNumberOfThreads); scipy has one thread.
Environment: BENCH_ROUNDS (default 5), BENCH_SCIPY_ROUNDS (default 3).
"""
import os
import statistics
import subprocess
import sys
import time

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

BIN, NII, VPS, OUT = sys.argv[1:5]
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
SCIPY_ROUNDS = int(os.environ.get("BENCH_SCIPY_ROUNDS", "3"))
NCPU = os.cpu_count() or 1
TARGET = 1.5

img = nib.load(NII)
a = np.asarray(img.dataobj)
A = img.affine
sp = np.sqrt((A[:3, :3] ** 2).sum(0))
odims = tuple(int(np.rint((n - 1) * s / TARGET + 1.0)) for n, s in zip(a.shape, sp))  # resample's grid
LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def sitk_image(arr, aff):
    im = sitk.GetImageFromArray(np.ascontiguousarray(arr.transpose(2, 1, 0)))
    L = LPS @ aff
    s = np.sqrt((L[:3, :3] ** 2).sum(0))
    im.SetSpacing([float(x) for x in s])
    im.SetOrigin([float(x) for x in L[:3, 3]])
    im.SetDirection([float(x) for x in (L[:3, :3] / s).ravel()])
    return im


src = sitk_image(a, A)
B = A.copy()
B[:3, :3] = A[:3, :3] * (TARGET / sp)
ref = sitk_image(np.zeros(odims, np.uint8), B)


def run_vox(threads):
    t0 = time.perf_counter()
    with open(os.devnull, "wb") as null:
        subprocess.run([BIN, "--threads", str(threads), "--spacing", str(TARGET), "--order", "1", "-i", VPS],
                       stdout=null, check=True)
    return time.perf_counter() - t0


def run_sitk(threads):
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    t0 = time.perf_counter()
    out = sitk.Resample(src, ref, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    dt = time.perf_counter() - t0
    run_sitk.out = out
    return dt


def run_scipy():
    t0 = time.perf_counter()
    z = ndi.zoom(a, [o / n for o, n in zip(odims, a.shape)], order=1, output=np.float32)
    dt = time.perf_counter() - t0
    assert z.shape == odims, z.shape
    return dt


# the same work: voxpipe's output equals SimpleITK's on the same grid (inside SimpleITK's buffer)
vox_out = os.path.join(OUT, "rs_vox.vps")
subprocess.run([BIN, "--spacing", str(TARGET), "--order", "1", "-i", VPS, "-o", vox_out], check=True)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../tests/scripts"))
import vxp  # noqa: E402

with open(vox_out, "rb") as fh:
    v = list(vxp.read(fh))[0]["vols"]["image"].data
os.remove(vox_out)
run_sitk(NCPU)
s = sitk.GetArrayFromImage(run_sitk.out).transpose(2, 1, 0)
inner = tuple(slice(0, n - 1) for n in odims)  # the last plane may fall outside SimpleITK's buffer
check = np.abs(v[inner].astype(np.float64) - s[inner]).max()

times = {k: [] for k in ("vox_n", "vox_1", "sitk_n", "sitk_1", "scipy")}
for r in range(ROUNDS):
    order = ["vox_n", "sitk_n", "vox_1", "sitk_1"] + (["scipy"] if r < SCIPY_ROUNDS else [])
    order = order[r % len(order):] + order[:r % len(order)]
    for k in order:
        if k == "scipy":
            times[k].append(run_scipy())
        elif k.startswith("vox"):
            times[k].append(run_vox(NCPU if k == "vox_n" else 1))
        else:
            times[k].append(run_sitk(NCPU if k == "sitk_n" else 1))

med = {k: statistics.median(v) for k, v in times.items()}
print("input %s int16 at %s mm -> %s at %.1f mm isotropic, order 1 (linear); %d rounds (scipy %d)" %
      ("x".join(map(str, a.shape)), "x".join("%g" % x for x in sp), "x".join(map(str, odims)), TARGET, ROUNDS,
       min(ROUNDS, SCIPY_ROUNDS)))
print("check: voxpipe vs SimpleITK on the same grid: max |diff| %.3g HU" % check)
print("%-58s %9s %9s" % ("", "median s", "min s"))
rows = [("voxpipe resample, %d threads (whole process, stream in/out)" % NCPU, "vox_n"),
        ("SimpleITK Resample linear, %d threads (in-process)" % NCPU, "sitk_n"),
        ("scipy.ndimage.zoom order 1, 1 thread (in-process)", "scipy"),
        ("voxpipe resample, 1 thread (whole process)", "vox_1"),
        ("SimpleITK Resample linear, 1 thread (in-process)", "sitk_1")]
for label, k in rows:
    print("%-58s %9.3f %9.3f" % (label, med[k], min(times[k])))
res = []
for label, peer, vox, goal in (("vs SimpleITK, %d threads" % NCPU, "sitk_n", "vox_n", 2.0),
                               ("vs scipy zoom (voxpipe %d threads)" % NCPU, "scipy", "vox_n", 10.0),
                               ("vs SimpleITK, 1 thread", "sitk_1", "vox_1", 2.0)):
    ratio = med[peer] / med[vox]
    res.append(ratio >= goal)
    print("speed-up %-40s %6.1fx  (goal >= %gx: %s; best-of ratio %.1fx)" %
          (label, ratio, goal, "PASS" if ratio >= goal else "MISS", min(times[peer]) / min(times[vox])))
