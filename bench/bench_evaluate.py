#!/usr/bin/env python3
"""pipelines/evaluate.mk (voxpipe: metric-dice + hausdorff per case and model under make -j2, then
ttest and report) against bench/evaluate_peer.py (nibabel + MONAI metrics + scipy), side by side.

Data (made once, deterministically, under OUT/evaluate/data): N cases (BENCH_CASES, default 4) of
the shared TotalSegmentator example upsampled 2x (nearest; 244x202x60 at 1.5 mm), case k rolled by k
voxels along z; the reference = example_seg, model A = example_seg_fast, model B = the fast labels
with T12 eroded by one voxel and the lowest three slices of L1 labelled L2.

What is timed (wall and CPU of the whole process tree; rounds interleaved, the order rotated):
  voxpipe  rm -rf the output; make -j2 -f pipelines/evaluate.mk LABELS=spine25: per case and model
           14 overlap and 9 distance metrics per class, the model tables, ttest (4 tests, CIs, Holm,
           Bonferroni), the report (Markdown + HTML + 21 PNG figures)
  peer     the same cases: Dice, HD, HD95, ASSD per class (MONAI), Student and paired t-tests, one
           Markdown table: less work than voxpipe's
BENCH_ROUNDS (default 5) and BENCH_PEER_ROUNDS (default 1) set the repetitions.

  bench_evaluate.py BIN_DIR OUT_DIR SEG SEG_FAST
"""
import os, resource, statistics, subprocess, sys, time

import nibabel as nib
import numpy as np
from scipy import ndimage

BIN, OUT, SEG, FAST = sys.argv[1:5]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = int(os.environ.get("BENCH_CASES", "4"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
PEER_ROUNDS = int(os.environ.get("BENCH_PEER_ROUNDS", "1"))
D = os.path.join(OUT, "evaluate")
DATA = os.path.join(D, "data")


def degrade(a):
    b = a.copy()
    t12 = b == 32
    b[t12 & ~ndimage.binary_erosion(t12)] = 0
    l1 = np.argwhere(b == 31)
    if len(l1):
        z0 = l1[:, 2].min()
        sl = b[:, :, z0:z0 + 3]
        sl[sl == 31] = 30
    return b


def make_data():
    stamp = os.path.join(DATA, f".made-{N}")
    if os.path.exists(stamp):
        return
    seg, fast = nib.load(SEG), nib.load(FAST)
    aff = seg.affine.copy()
    aff[:3, :3] /= 2
    up = lambda a: np.repeat(np.repeat(np.repeat(a, 2, 0), 2, 1), 2, 2)
    s, f = up(np.asanyarray(seg.dataobj)), up(np.asanyarray(fast.dataobj))
    for d in ("ref", "A", "B"):
        os.makedirs(os.path.join(DATA, d), exist_ok=True)
    for k in range(N):
        for d, a in (("ref", s), ("A", f), ("B", degrade(f))):
            img = nib.Nifti1Image(np.roll(a, k, axis=2).astype(np.uint8), aff)
            img.set_sform(aff, 1); img.set_qform(aff, 1)
            nib.save(img, os.path.join(DATA, d, f"case{k + 1}.nii.gz"))
    open(stamp, "w").close()


def sh(cmd):
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    t1 = time.perf_counter()
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode:
        sys.exit(f"bench_evaluate: command failed (exit {p.returncode}): {cmd}\n{p.stderr}")
    return t1 - t0, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


make_data()
py = sys.executable
vox_out, peer_out = os.path.join(D, "voxpipe"), os.path.join(D, "peer")
vox = (f"rm -rf {vox_out} && make -s -j2 -f {ROOT}/pipelines/evaluate.mk BIN={BIN} REF={DATA}/ref LABELS=spine25 "
       f"OUT={vox_out} PRED_DIRS='A={DATA}/A B={DATA}/B'")
peer = f"rm -rf {peer_out} && {py} {ROOT}/bench/evaluate_peer.py {DATA}/ref {peer_out} A={DATA}/A B={DATA}/B"
runs = {"voxpipe": [], "peer": []}
for r in range(max(ROUNDS, PEER_ROUNDS)):
    order = [("voxpipe", vox), ("peer", peer)]
    if r % 2: order.reverse()
    for key, cmd in order:
        if len(runs[key]) < (ROUNDS if key == "voxpipe" else PEER_ROUNDS):
            runs[key].append(sh(cmd))

med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in runs.items()}
shape = nib.load(os.path.join(DATA, "ref", "case1.nii.gz")).shape
print(f"{N} cases x 2 models, {shape[0]}x{shape[1]}x{shape[2]} at 1.5 mm, 4 vertebrae; "
      f"rounds: voxpipe {ROUNDS}, peer {PEER_ROUNDS}; median wall (CPU) seconds")
print(f"{'task':<44} {'voxpipe':>16} {'peer (MONAI)':>16} {'ratio':>7}")
print(f"{'score, compare, report (evaluate.mk -j2)':<44} {med['voxpipe'][0]:>7.2f} ({med['voxpipe'][1]:>6.2f}) "
      f"{med['peer'][0]:>7.2f} ({med['peer'][1]:>6.2f}) {med['peer'][0] / med['voxpipe'][0]:>6.1f}x")
print("details: voxpipe walls " + " ".join(f"{w:.2f}" for w, _ in runs["voxpipe"]) +
      "; peer walls " + " ".join(f"{w:.2f}" for w, _ in runs["peer"]))
