"""train_check.py - helpers for tests/shell/train.bats and bench/bench_train*.sh.

  synth OUT [--n N] [--seed S] [--dims X,Y,Z] [--classes K] [--bad nolabel|grid|range]
        a stream of N synthetic cases (f32 image: noise plus one bright ball per class, u8 label
        of the balls) with meta.labels, deterministic from the seed; --bad spoils the last case
  cmp A B [--rtol R] [--atol A]
        the tensors of two safetensors files agree within rtol/atol (same names and shapes);
        prints the largest differences, exit 1 otherwise
  meta FILE KEY        print a __metadata__ value
  jsonl FILE           check every line is a JSON object with a known "type"; print the count
                       of each type and the first and last epoch losses
  svg FILE             parse as XML, print the number of polylines with points
  dice A B LABEL PRED  Dice per class (numpy) of the volumes LABEL vs PRED of streams A, B (first case)
  casedice A B LABEL PRED  Dice per class averaged over the cases holding it (all cases, paired by id)
  valdice LOG          the Dice per class of the last validation line of a --log-json file
"""
import json
import struct
import sys
import xml.etree.ElementTree as ET

import numpy as np

sys.path.insert(0, __import__("os").path.dirname(__file__))
import vxp  # noqa: E402


def read_st(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
        data = f.read()
    meta = h.pop("__metadata__", {})
    out = {}
    for k, v in h.items():
        assert v["dtype"] == "F32", (k, v["dtype"])
        b, e = v["data_offsets"]
        out[k] = np.frombuffer(data[b:e], dtype="<f4").reshape(v["shape"])
    return out, meta


def synth(args):
    out = args[0]
    opt = dict(zip(args[1::2], args[2::2]))
    n, seed = int(opt.get("--n", 2)), int(opt.get("--seed", 0))
    dims = [int(x) for x in opt.get("--dims", "24,20,16").split(",")]
    k = int(opt.get("--classes", 3))
    bad = opt.get("--bad")
    rng = np.random.default_rng(seed)
    aff = np.diag([1.5, 1.5, 2.0, 1.0])
    cases = []
    for i in range(n):
        img = rng.normal(0, 0.3, dims).astype(np.float32)
        lab = np.zeros(dims, np.uint8)
        g = np.indices(dims).astype(np.float32)
        for c in range(1, k):
            ctr = [rng.uniform(0.3 * d, 0.7 * d) for d in dims]
            r = rng.uniform(2.5, 4.0)
            ball = sum((g[a] - ctr[a]) ** 2 for a in range(3)) <= r * r
            lab[ball] = c
            img[ball] += 1.0 + c
        vols = {"image": vxp.Vol(img, aff), "label": vxp.Vol(lab, aff)}
        if bad and i == n - 1:
            if bad == "nolabel":
                del vols["label"]
            elif bad == "grid":
                vols["label"] = vxp.Vol(lab[:-1], aff)
            elif bad == "range":
                lab[0, 0, 0] = k
                vols["label"] = vxp.Vol(lab, aff)
        cases.append({"id": "syn%03d" % i, "vols": vols,
                      "meta": {"labels": {str(c): "ball%d" % c for c in range(1, k)}}})
    with open(out, "wb") as f:
        vxp.write(f, cases)


def cmp(args):
    a, b = args[0], args[1]
    opt = dict(zip(args[2::2], args[3::2]))
    rtol, atol = float(opt.get("--rtol", 1e-4)), float(opt.get("--atol", 1e-6))
    ta, _ = read_st(a)
    tb, _ = read_st(b)
    if sorted(ta) != sorted(tb):
        print("different tensors:", sorted(set(ta) ^ set(tb)))
        return 1
    worst, bad = 0.0, 0
    for k in ta:
        x, y = ta[k].astype(np.float64), tb[k].astype(np.float64)
        if x.shape != y.shape:
            print(k, "shapes", x.shape, y.shape)
            return 1
        d = np.abs(x - y)
        worst = max(worst, float(d.max(initial=0)))
        if not np.all(d <= atol + rtol * np.abs(y)):
            bad += 1
            print("%s: max |diff| %.3g" % (k, d.max()))
    print("%d tensors, max |diff| %.3g, %d outside rtol %g atol %g" % (len(ta), worst, bad, rtol, atol))
    return 1 if bad else 0


def jsonl(args):
    counts, losses = {}, []
    for line in open(args[0]):
        o = json.loads(line)
        assert isinstance(o, dict) and o["type"] in ("iter", "epoch", "val", "checkpoint"), line
        counts[o["type"]] = counts.get(o["type"], 0) + 1
        if o["type"] == "epoch":
            losses.append(o["loss"])
    print(" ".join("%s=%d" % kv for kv in sorted(counts.items())),
          "first_loss=%.6g last_loss=%.6g" % (losses[0], losses[-1]) if losses else "")


def svg(args):
    root = ET.parse(args[0]).getroot()
    ns = "{http://www.w3.org/2000/svg}"
    lines = [p for p in root.iter(ns + "polyline") if p.get("points", "").strip()]
    print(len(lines))


def dice(args):
    a = next(vxp.read(open(args[0], "rb")))
    b = next(vxp.read(open(args[1], "rb")))
    ref, pred = a["vols"][args[2]].data, b["vols"][args[3]].data
    out = {}
    for c in sorted(set(np.unique(ref).tolist()) - {0}):
        r, p = ref == c, pred == c
        out[c] = 2.0 * np.sum(r & p) / (np.sum(r) + np.sum(p))
    print(" ".join("%d:%.4f" % kv for kv in out.items()))
    print("min %.4f" % min(out.values()))


def casedice(args):
    """Dice per class averaged over the cases whose reference holds the class (the trainer's window
    validation): streams A (reference volume LABEL) and B (prediction PRED), cases paired by id."""
    refs = {c["id"]: c["vols"][args[2]].data for c in vxp.read(open(args[0], "rb"))}
    sums, counts = {}, {}
    for c in vxp.read(open(args[1], "rb")):
        ref, pred = refs[c["id"]], c["vols"][args[3]].data
        for k in sorted(set(np.unique(ref).tolist()) - {0}):
            r, p = ref == k, pred == k
            sums[k] = sums.get(k, 0.0) + 2.0 * np.sum(r & p) / (np.sum(r) + np.sum(p))
            counts[k] = counts.get(k, 0) + 1
    print(" ".join("%d:%.6f" % (k, sums[k] / counts[k]) for k in sorted(sums)))


def valdice(args):
    """The Dice per class of the last validation line of a --log-json file, as casedice prints it."""
    last = [o for o in map(json.loads, open(args[0])) if o["type"] == "val"][-1]
    print(" ".join("%d:%.6f" % (int(k), v) for k, v in sorted(last["dice"].items(), key=lambda kv: int(kv[0]))))


if __name__ == "__main__":
    cmd, rest = sys.argv[1], sys.argv[2:]
    if cmd == "synth":
        synth(rest)
    elif cmd == "cmp":
        sys.exit(cmp(rest))
    elif cmd == "meta":
        print(read_st(rest[0])[1].get(rest[1], ""))
    elif cmd == "jsonl":
        jsonl(rest)
    elif cmd == "svg":
        svg(rest)
    elif cmd == "dice":
        dice(rest)
    elif cmd == "casedice":
        casedice(rest)
    elif cmd == "valdice":
        valdice(rest)
    else:
        sys.exit("unknown command " + cmd)
