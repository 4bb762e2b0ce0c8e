#!/usr/bin/env python3
"""tidy_compare.py - compare a tidy TSV a program wrote with a golden one.

    tidy_compare.py ACTUAL EXPECTED --keys case,class,metric [--rel 1e-12] [--abs 0] [--exact name]
                    [--exact-stats n,df]

Rows are matched by the key columns; both files must hold the same set of keys (each once). The
`value` columns must agree: NaN with NaN, infinities exactly, numbers within
|a - e| <= max(rel * |e|, abs). Rows whose last key (the statistic or metric) is listed in
--exact-stats must agree exactly; columns in --exact must be equal strings. Prints each mismatch
(up to 20) and exits 1 if there is any, else prints a one-line summary and exits 0.
"""
import argparse
import csv
import math
import sys


def load(path, keys):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    out = {}
    for r in rows:
        k = tuple(r[c] for c in keys)
        if k in out:
            sys.exit("%s: key %s appears twice" % (path, k))
        out[k] = r
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("actual")
    ap.add_argument("expected")
    ap.add_argument("--keys", required=True)
    ap.add_argument("--rel", type=float, default=1e-12)
    ap.add_argument("--abs", type=float, default=0.0)
    ap.add_argument("--exact", default="")
    ap.add_argument("--exact-stats", default="")
    a = ap.parse_args()
    keys = a.keys.split(",")
    exact_cols = [c for c in a.exact.split(",") if c]
    exact_stats = set(s for s in a.exact_stats.split(",") if s)
    act, exp = load(a.actual, keys), load(a.expected, keys)
    bad = []
    for k in exp:
        if k not in act:
            bad.append("missing row %s" % (k,))
    for k in act:
        if k not in exp:
            bad.append("unexpected row %s" % (k,))
    worst = 0.0
    for k, e in exp.items():
        if k not in act:
            continue
        r = act[k]
        for c in exact_cols:
            if r[c] != e[c]:
                bad.append("%s: column %s is %r, expected %r" % (k, c, r[c], e[c]))
        try:
            x, y = float(r["value"]), float(e["value"])
        except ValueError:
            bad.append("%s: value %r vs expected %r" % (k, r["value"], e["value"]))
            continue
        if math.isnan(y) or math.isnan(x) or math.isinf(y) or math.isinf(x) or k[-1] in exact_stats:
            ok = (math.isnan(x) and math.isnan(y)) or x == y
        else:
            err = abs(x - y)
            ok = err <= max(a.rel * abs(y), a.abs)
            if y != 0:
                worst = max(worst, err / abs(y))
        if not ok:
            bad.append("%s: value %r, expected %r" % (k, r["value"], e["value"]))
    if bad:
        for b in bad[:20]:
            print(b)
        print("%d mismatches of %d rows (%s vs %s); largest relative difference elsewhere %.3g"
              % (len(bad), len(exp), a.actual, a.expected, worst))
        sys.exit(1)
    print("%d rows agree (largest relative difference %.3g)" % (len(exp), worst))


if __name__ == "__main__":
    main()
