#!/usr/bin/env python3
"""hausdorff (voxpipe) vs MONAI, surface-distance and plastimatch, side by side.

usage: bench_hausdorff.py BIN_DIR OUT_DIR

Data, made once and deterministically under OUT_DIR (git-ignored):
  hd_bone.vxp      one case, 512x512x141 at 0.98 x 0.98 x 2 mm: 'label' = a smooth random field
                   (seeded) thresholded at its 90th percentile (a bone-like mask, ~10% of the
                   volume), 'pred' = the same field plus a little finer noise, same threshold
  hd_spine25.vxp   the same masks cut into 25 classes by z slab (vertebra-like), labels 1..25
  hd_ref.nii, hd_pred.nii   the bone pair as NIfTI, for plastimatch's command line

What is timed (wall clock and CPU seconds, medians of the rounds; BENCH_ROUNDS, default 5, for
voxpipe, BENCH_PEER_ROUNDS, default 1, for MONAI and surface-distance, which take 10-60 s each,
BENCH_PLM_ROUNDS, default 3, for plastimatch; BENCH_SD=0 skips surface-distance, BENCH_MONAI=0
MONAI):
  voxpipe          the whole process `hausdorff -i hd_bone.vxp --metrics hd,hd95,assd > /dev/null`:
                   reading the 74 MB stream, one pass, all metrics asked; default threads and
                   --threads 1
  MONAI            compute_hausdorff_distance (max), compute_hausdorff_distance(percentile=95) and
                   compute_average_surface_distance(symmetric=True) on tensors already in memory
                   (CPU; loading not counted), the three calls summed
  surface-distance compute_surface_distances + compute_robust_hausdorff(100) and (95) +
                   compute_average_surface_distance, arrays in memory
  plastimatch      the whole process `plastimatch dice --hausdorff hd_ref.nii hd_pred.nii` (it reads
                   the two uncompressed NIfTI files, 37 MB each, and computes its 8 numbers: HD,
                   HD95, average and max average, on boundaries and on the whole sets), against
                   the whole pipeline `vol-read hd_ref.nii --label hd_pred.nii | hausdorff` (reading
                   the same files) with --metrics hd,hd95,assd and with --convention plastimatch
                   (its 8 numbers and voxpipe's 5 others); only when plastimatch is installed. Its
                   numbers and voxpipe's are printed side by side (plastimatch's Danielsson map is
                   not exact: docs/METRICS.md)
  25 classes       voxpipe: one run over hd_spine25.vxp; MONAI: the three calls per class (its own
                   per-class loop, without building a 26-channel one-hot of 7.7 GB), timed on 3 of
                   the classes and scaled to 25 (all 25 would take 4-5 minutes)
"""
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np

warnings.simplefilter("ignore")
BIN, OUT = sys.argv[1:3]
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "scripts"))
import vxp  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
PEER_ROUNDS = int(os.environ.get("BENCH_PEER_ROUNDS", "1"))
PLM_ROUNDS = int(os.environ.get("BENCH_PLM_ROUNDS", "3"))
MONAI = os.environ.get("BENCH_MONAI", "1") != "0"
SHAPE, SP = (512, 512, 141), (0.98, 0.98, 2.0)
TAG = "hd-bench-v1"


def make_data():
    paths = [os.path.join(OUT, f) for f in ("hd_bone.vxp", "hd_spine25.vxp", "hd_ref.nii", "hd_pred.nii")]
    stamp = os.path.join(OUT, "hd_bench.stamp")
    if all(os.path.exists(p) for p in paths) and os.path.exists(stamp) and open(stamp).read() == TAG:
        return
    from scipy import ndimage
    import nibabel as nib
    print("bench_hausdorff: generating the 512x512x141 mask pair (once)", file=sys.stderr)
    rng = np.random.default_rng(20240527)
    field = ndimage.zoom(rng.standard_normal((40, 40, 12)), (512 / 40, 512 / 40, 141 / 12), order=1)
    fine = ndimage.zoom(rng.standard_normal((128, 128, 36)), (4, 4, 141 / 36), order=1)
    assert field.shape == SHAPE and fine.shape == SHAPE
    t = np.quantile(field[::4, ::4, ::2], 0.9)
    ref = (field > t).astype(np.uint8)
    pred = (field + 0.08 * fine > t).astype(np.uint8)
    del fine
    aff = np.diag(list(SP) + [1.0])
    with open(paths[0] + ".tmp", "wb") as f:
        vxp.write(f, [{"id": "bone", "meta": {}, "vols": {"label": vxp.Vol(ref, aff), "pred": vxp.Vol(pred, aff)}}])
    slab = (1 + np.arange(SHAPE[2]) * 25 // SHAPE[2]).astype(np.uint8)
    with open(paths[1] + ".tmp", "wb") as f:
        vxp.write(f, [{"id": "spine25", "meta": {}, "vols": {"label": vxp.Vol(ref * slab, aff),
                                                             "pred": vxp.Vol(pred * slab, aff)}}])
    nib.save(nib.Nifti1Image(ref, aff), paths[2] + ".tmp.nii")
    nib.save(nib.Nifti1Image(pred, aff), paths[3] + ".tmp.nii")
    for p in paths[:2]:
        os.replace(p + ".tmp", p)
    for p in paths[2:]:
        os.replace(p + ".tmp.nii", p)
    open(stamp, "w").write(TAG)


def run(cmd):
    """wall and CPU (user + sys of the children) seconds of one shell command"""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(["bash", "-o", "pipefail", "-c", cmd], check=True, stdout=subprocess.DEVNULL)
    t = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return t, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def timed(f):
    """wall and CPU (this process, all threads) seconds of f()"""
    c0, t0 = time.process_time(), time.perf_counter()
    f()
    return time.perf_counter() - t0, time.process_time() - c0


def med(f, rounds):
    """per-component medians of (wall, cpu) over the rounds"""
    runs = [f() for _ in range(rounds)]
    return tuple(statistics.median(r[i] for r in runs) for i in range(2))


def load(path):
    c = next(vxp.read(open(path, "rb")))
    return c["vols"]["pred"].data, c["vols"]["label"].data


def monai_three(pred, ref):
    import torch
    from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance
    yp = torch.as_tensor(pred[None, None])
    yt = torch.as_tensor(ref[None, None])
    kw = dict(include_background=True, spacing=list(SP))

    def f():
        compute_hausdorff_distance(yp, yt, **kw)
        compute_hausdorff_distance(yp, yt, percentile=95, **kw)
        compute_average_surface_distance(yp, yt, symmetric=True, **kw)
    return timed(f)


def surface_distance_three(pred, ref):
    if not hasattr(np, "Inf"):
        np.Inf = np.inf  # the package predates NumPy 2
    import surface_distance as sd

    def f():
        d = sd.compute_surface_distances(ref.astype(bool), pred.astype(bool), list(SP))
        sd.compute_robust_hausdorff(d, 100)
        sd.compute_robust_hausdorff(d, 95)
        sd.compute_average_surface_distance(d)
    return timed(f)


def row(name, ours, peer, goal):
    ratio, cratio = peer[0] / ours[0], peer[1] / ours[1]
    verdict = "" if goal is None else ("PASS" if ratio >= goal else "MISS") + " (goal %gx)" % goal
    print("%-46s %8.3f s %9.3f s %8.1fx | cpu %7.3f s %8.2f s %7.1fx  %s" % (name, ours[0], peer[0], ratio, ours[1],
                                                                           peer[1], cratio, verdict))


def plastimatch_rows(hd, three):
    """plastimatch dice --hausdorff vs vol-read | hausdorff on the same .nii pair, and their numbers"""
    ref, pred = os.path.join(OUT, "hd_ref.nii"), os.path.join(OUT, "hd_pred.nii")
    pipe = "%s/vol-read %s --image-name label --label %s --label-name pred | %s" % (BIN, ref, pred, hd)
    plm_cmd = "plastimatch dice --hausdorff %s %s" % (ref, pred)
    plm = med(lambda: run(plm_cmd), PLM_ROUNDS)
    row("vs plastimatch dice --hausdorff (.nii, %d runs)" % PLM_ROUNDS, med(lambda: run("%s %s" % (pipe, three)), ROUNDS),
        plm, 5)
    row("  voxpipe --convention plastimatch, all metrics", med(lambda: run(pipe + " --convention plastimatch"), ROUNDS),
        plm, 5)
    out = subprocess.run(["bash", "-c", plm_cmd], capture_output=True, text=True, check=True).stdout
    theirs = dict(re.findall(r"^(.*\S) = (\S+)$", out, re.M))
    ours = subprocess.run(["bash", "-o", "pipefail", "-c", pipe + " --convention plastimatch"], capture_output=True,
                          text=True, check=True).stdout
    ours = {l.split("\t")[3]: float(l.split("\t")[4]) for l in ours.splitlines()[1:]}
    labels = [("hd", "Hausdorff distance (boundary)"), ("hd95", "Percent (0.95) Hausdorff distance (boundary)"),
              ("masd", "Avg average Hausdorff distance (boundary)"), ("ahd", "Max average Hausdorff distance (boundary)"),
              ("hd_set", "Hausdorff distance"), ("hd95_set", "Percent (0.95) Hausdorff distance"),
              ("masd_set", "Avg average Hausdorff distance"), ("ahd_set", "Max average Hausdorff distance")]
    print("  the same pair's numbers, voxpipe --convention plastimatch (exact distances) vs plastimatch:")
    for m, label in labels:
        a, b = ours[m], float(theirs[label])
        print("    %-9s %-12.6f %-12.6f rel %.2g" % (m, a, b, abs(a - b) / max(abs(a), abs(b), 1e-300)))


def main():
    make_data()
    bone = os.path.join(OUT, "hd_bone.vxp")
    spine = os.path.join(OUT, "hd_spine25.vxp")
    hd = os.path.join(BIN, "hausdorff")
    three = "--metrics hd,hd95,assd"
    ours = med(lambda: run("%s -i %s %s" % (hd, bone, three)), ROUNDS)
    print("%-46s %10s %11s %9s | %9s %10s %8s" % ("HD + HD95 + ASSD, 512x512x141 at 0.98x0.98x2", "voxpipe",
                                                  "peer", "wall", "voxpipe", "peer", "cpu"))
    if MONAI:
        ours1 = med(lambda: run("%s --threads 1 -i %s %s" % (hd, bone, three)), ROUNDS)
        pred, ref = load(bone)
        monai = med(lambda: monai_three(pred, ref), PEER_ROUNDS)
        row("vs MONAI compute_* (CPU, median of %d)" % PEER_ROUNDS, ours, monai, 20)
        row("vs MONAI, voxpipe --threads 1", ours1, monai, None)
    if os.environ.get("BENCH_SD", "1") != "0":
        if not MONAI:
            pred, ref = load(bone)
        row("vs surface-distance (1 round)", ours, med(lambda: surface_distance_three(pred, ref), 1), None)
    if shutil.which("plastimatch"):
        plastimatch_rows(hd, three)
    else:
        print("plastimatch: not installed (Debian package plastimatch); skipped (goal: 5x its 2.2 s)")
    if not MONAI:
        return
    ours25 = med(lambda: run("%s -i %s %s" % (hd, spine, three)), ROUNDS)
    p25, r25 = load(spine)
    sample = [1, 13, 25]
    m = [monai_three(p25 == c, r25 == c) for c in sample]
    m25 = (sum(x[0] for x in m) * 25 / len(sample), sum(x[1] for x in m) * 25 / len(sample))
    row("25 classes: one voxpipe run vs MONAI x25 (*)", ours25, m25, None)
    print("(*) MONAI's per-class time measured on classes %s and multiplied by 25/%d" % (sample, len(sample)))
    print("voxpipe, 1 class vs 25 classes in one pass: %.3f s vs %.3f s wall, %.3f s vs %.3f s cpu"
          % (ours[0], ours25[0], ours[1], ours25[1]))


if __name__ == "__main__":
    main()
