#!/usr/bin/env python3
"""metric-dice vs numpy and MONAI on a 512x512x400 label pair with 25 classes, side by side.

usage: bench_metrics_overlap.py BIN_DIR OUT_DIR

Data (made once, deterministically, under OUT_DIR): a reference with 25 stacked elliptic
"vertebrae" (16 slices each, about 4 % of the voxels foreground) and a prediction whose
ellipses are shifted by 2 voxels, 3 % wider and start one slice later; u8, 0.8x0.8x1 mm.
Stored as a voxpipe stream (ovl_pair.vxp, one case with volumes 'label' and 'pred') and as .npy.

Timed:
  voxpipe  `metric-dice -i ovl_pair.vxp -o /dev/null` (all 14 metrics of 25 classes), the whole
           process: reading the 200 MiB stream from the page cache included; --threads = CPUs and 1;
           also its one counting pass alone (as metric-dice -v reports it)
  numpy    a loop over the 25 classes on arrays already in memory: p == c, r == c, the three
           counts with np.count_nonzero, then the metrics (load time not counted)
  MONAI    monai.metrics.compute_dice on one class at a time ([1, 1, 512, 512, 400] float32
           one-hot masks, conversion not timed: the 26-channel one-hot of the whole volume needs
           2 x 10.9 GB, more than this machine has); Dice only. It takes 4-6 s per class here, so
           it runs once, on BENCH_MONAI_CLASSES classes (default 5), and the time for 25 classes
           is that x 25 / BENCH_MONAI_CLASSES (printed as an estimate).
metric-dice and numpy run BENCH_ROUNDS times (default 3), interleaved; medians and the ratios are
printed. Before timing, all give the same Dice (numpy 1e-12 for all 25 classes; MONAI 1e-6, it is
float32, for the classes it ran on).
"""
import os
import re
import statistics
import subprocess
import sys
import time

import numpy as np

BIN, OUT = sys.argv[1:3]
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "scripts"))
import vxp  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
MONAI_CLASSES = int(os.environ.get("BENCH_MONAI_CLASSES", "5"))
SHAPE = (512, 512, 400)
VXP = os.path.join(OUT, "ovl_pair.vxp")


def make():
    x, y = np.meshgrid(np.arange(SHAPE[0], dtype=np.float32), np.arange(SHAPE[1], dtype=np.float32), indexing="ij")
    ref = np.zeros(SHAPE, np.uint8)
    pred = np.zeros(SHAPE, np.uint8)
    for k in range(25):
        z0 = k * 16
        cx, cy, ax, ay = 256 + 10 * np.sin(k / 4), 240 + 6 * k / 25, 70 + k, 50 + k / 2
        e = ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 <= 1
        ref[:, :, z0:z0 + 15][e] = k + 1
        e2 = ((x - cx - 2) / (ax * 1.03)) ** 2 + ((y - cy + 1) / (ay * 1.03)) ** 2 <= 1
        pred[:, :, z0 + 1:z0 + 16][e2] = k + 1
    aff = np.diag([0.8, 0.8, 1.0, 1.0])
    tmp = VXP + ".tmp"
    with open(tmp, "wb") as f:
        vxp.write(f, [{"id": "bench", "meta": {}, "vols": {"label": vxp.Vol(ref, aff), "pred": vxp.Vol(pred, aff)}}])
    np.save(os.path.join(OUT, "ovl_ref.npy"), ref)
    np.save(os.path.join(OUT, "ovl_pred.npy"), pred)
    os.replace(tmp, VXP)


def numpy_metrics(p, r):
    n = p.size
    out = {}
    for c in range(1, 26):
        pc, rc = p == c, r == c
        tp = np.count_nonzero(pc & rc)
        pp, rp = np.count_nonzero(pc), np.count_nonzero(rc)
        fp, fn = pp - tp, rp - tp
        tn = n - tp - fp - fn
        out[c] = {"dice": 2 * tp / (2 * tp + fp + fn), "iou": tp / (tp + fp + fn), "accuracy": (tp + tn) / n,
                  "precision": tp / (tp + fp), "sensitivity": tp / (tp + fn), "specificity": tn / (tn + fp),
                  "kappa": 2 * (tp * tn - fn * fp) / ((tp + fp) * (fp + tn) + (tp + fn) * (fn + tn)),
                  "auc": 1 - (fp / (fp + tn) + fn / (tp + fn)) / 2,
                  "volume_similarity": 1 - abs(fn - fp) / (2 * tp + fp + fn)}
    return out


def monai_dice(p, r, classes):
    import torch
    from monai.metrics import compute_dice
    out, t = {}, 0.0
    for c in classes:
        a = torch.from_numpy((p == c).astype(np.float32))[None, None]
        b = torch.from_numpy((r == c).astype(np.float32))[None, None]
        t0 = time.perf_counter()
        out[c] = float(compute_dice(a, b, include_background=True))
        t += time.perf_counter() - t0
        del a, b
    return out, t


def run_vp(threads):
    """wall time of the whole process, and of its counting pass alone (from -v)"""
    t0 = time.perf_counter()
    r = subprocess.run([os.path.join(BIN, "metric-dice"), "-v", "--threads", str(threads), "-i", VXP, "-o",
                        "/dev/null"], check=True, capture_output=True, text=True)
    t = time.perf_counter() - t0
    m = re.search(r"counted .* in ([0-9.]+) s", r.stderr)
    return t, float(m.group(1))


def main():
    if not os.path.exists(VXP):
        print("generating the 512x512x400 25-class label pair (once)", file=sys.stderr)
        make()
    p = np.load(os.path.join(OUT, "ovl_pred.npy"))
    r = np.load(os.path.join(OUT, "ovl_ref.npy"))
    nt = os.cpu_count() or 1
    # agreement first
    tsv = subprocess.run([os.path.join(BIN, "metric-dice"), "-i", VXP, "--metrics", "dice"], check=True,
                         capture_output=True, text=True).stdout.splitlines()[1:]
    vp = {int(l.split("\t")[1]): float(l.split("\t")[4]) for l in tsv}
    npm = numpy_metrics(p, r)
    try:
        md, t_monai = monai_dice(p, r, range(1, MONAI_CLASSES + 1))
    except ImportError:
        md = None
    for c in range(1, 26):
        assert abs(vp[c] - npm[c]["dice"]) < 1e-12, (c, vp[c], npm[c]["dice"])
        if md and c in md:
            assert abs(vp[c] - md[c]) < 1e-6, (c, vp[c], md[c])
    print("agreement: Dice equal (numpy: 25 classes to 1e-12%s)" % (", MONAI: %d classes to 1e-6" % len(md) if md else ""))

    times = {"vp": [], "vp1": [], "vpc": [], "vpc1": [], "np": []}
    for _ in range(ROUNDS):
        for k, th in (("vp", nt), ("vp1", 1)):
            w, c = run_vp(th)
            times[k].append(w)
            times[k.replace("vp", "vpc")].append(c)
        t0 = time.perf_counter()
        numpy_metrics(p, r)
        times["np"].append(time.perf_counter() - t0)
    if md:
        times["monai"] = [t_monai * 25 / MONAI_CLASSES]
    med = {k: statistics.median(v) for k, v in times.items() if v}
    print("512x512x400 u8, 25 classes, %d rounds (median, min..max)" % ROUNDS)
    rows = [("metric-dice --threads %d (whole process)" % nt, "vp"), ("metric-dice --threads 1", "vp1"),
            ("  its counting pass alone, --threads %d" % nt, "vpc"), ("  its counting pass alone, --threads 1", "vpc1"),
            ("numpy loop over classes (in memory)", "np"), ("MONAI compute_dice per class, est. (Dice only)", "monai")]
    for name, k in rows:
        if k in med:
            print("  %-46s %8.3f s  (%.3f..%.3f)" % (name, med[k], min(times[k]), max(times[k])))
    print("  ratio numpy / metric-dice:  %.1fx   (1 thread: %.1fx; counting pass alone: %.0fx)"
          % (med["np"] / med["vp"], med["np"] / med["vp1"], med["np"] / med["vpc"]))
    if "monai" in med:
        print("  ratio MONAI / metric-dice:  %.0fx   (1 thread: %.0fx; MONAI timed on %d classes, x %g)"
              % (med["monai"] / med["vp"], med["monai"] / med["vp1"], MONAI_CLASSES, 25 / MONAI_CLASSES))


if __name__ == "__main__":
    main()
