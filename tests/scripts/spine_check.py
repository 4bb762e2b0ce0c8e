"""spine_check.py OUT.vxp REF.vxp EXPECT.json [--exact | --max-wrong FRAC]

Checks a label-clean --spine-order result (volume "label" of OUT.vxp) against the clean labels
(REF.vxp) and the changes spine_corrupt.py says the repair must report (EXPECT.json):
  --exact          the labels equal REF voxel for voxel, and meta.label_clean lists exactly the
                   expected (from, to, voxels) changes, all with op "spine-order"
  --max-wrong F    (a component had to be cut in two: its boundary is approximate) every vertebra of
                   REF has its own label on most of its voxels in OUT, at most F of REF's vertebra
                   voxels are labelled otherwise in OUT, and the logged (from, to) pairs are the
                   expected ones
Prints what it found; exit 1 on a mismatch.
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vxp  # noqa: E402


def main():
    out, ref, exp_path = sys.argv[1:4]
    mode = sys.argv[4]
    o = list(vxp.read(open(out, "rb")))[0]
    r = list(vxp.read(open(ref, "rb")))[0]
    got, want = o["vols"]["label"].data, r["vols"]["label"].data
    log = o["meta"].get("label_clean")
    exp = json.load(open(exp_path))
    ok = True
    if log is None or any(e["op"] != "spine-order" for e in log):
        print("meta label_clean missing or with other ops: %r" % (log,))
        return 1
    print("logged:", sorted((e["from"], e["to"], e["voxels"]) for e in log))
    print("expected:", sorted((e["from"], e["to"], e["voxels"]) for e in exp))
    if mode == "--exact":
        if not np.array_equal(got, want):
            print("labels differ from the reference on %d voxels" % int((got != want).sum()))
            ok = False
        if sorted((e["from"], e["to"], e["voxels"]) for e in log) != sorted((e["from"], e["to"], e["voxels"]) for e in exp):
            print("logged changes differ from the expected ones")
            ok = False
    else:
        frac = float(sys.argv[5])
        vert = want > 0
        wrong = int((got[vert] != want[vert]).sum())
        print("wrong: %d of %d vertebra voxels (%.3f, allowed %.3f)" % (wrong, int(vert.sum()), wrong / vert.sum(), frac))
        if wrong > frac * vert.sum():
            ok = False
        for c in np.unique(want[vert]):
            vals, cnt = np.unique(got[want == c], return_counts=True)
            if vals[np.argmax(cnt)] != c:
                print("vertebra %d is mostly labelled %d" % (c, vals[np.argmax(cnt)]))
                ok = False
        if {(e["from"], e["to"]) for e in log} != {(e["from"], e["to"]) for e in exp}:
            print("logged (from, to) pairs differ from the expected ones")
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
