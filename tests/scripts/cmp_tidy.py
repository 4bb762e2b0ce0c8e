#!/usr/bin/env python3
"""cmp_tidy.py - compare two tidy metric tables (case, class, name, metric, value) value by value.

    cmp_tidy.py GOT.tsv WANT.tsv [--rel 1e-6] [--abs 0] [--report]

Rows are matched on (case, class, metric); both tables must hold the same keys and names. Values
agree when both are NaN, both the same infinity, or |got - want| <= abs + rel * max(|got|, |want|).
Exit 0 when all agree, 1 otherwise (each disagreement printed). --report prints the largest
relative difference and always exits 0 (for peers that are not expected to agree exactly).
"""
import math
import sys


def load(path):
    rows = {}
    with open(path) as f:
        header = f.readline().rstrip("\n").split("\t")
        if header != ["case", "class", "name", "metric", "value"]:
            sys.exit("%s: bad header %r" % (path, header))
        for line in f:
            c, k, n, m, v = line.rstrip("\n").split("\t")
            rows[(c, k, m)] = (n, float(v))
    return rows


def main():
    a = sys.argv[1:]
    rel = float(a[a.index("--rel") + 1]) if "--rel" in a else 1e-6
    ab = float(a[a.index("--abs") + 1]) if "--abs" in a else 0.0
    report = "--report" in a
    got, want = load(a[0]), load(a[1])
    bad = 0
    if set(got) != set(want):
        print("keys differ: only in got %s; only in want %s" % (sorted(set(got) - set(want))[:5], sorted(set(want) - set(got))[:5]))
        bad += 1
    worst = (0.0, None)
    for k in sorted(set(got) & set(want)):
        (ng, g), (nw, w) = got[k], want[k]
        if ng != nw:
            print("%s: name %r vs %r" % (k, ng, nw))
            bad += 1
        if (g != g and w != w) or g == w:
            continue
        if math.isinf(g) or math.isinf(w) or g != g or w != w:
            print("%s: got %r want %r" % (k, g, w))
            bad += 1
            continue
        d = abs(g - w)
        r = d / max(abs(g), abs(w))
        if r > worst[0]:
            worst = (r, k)
        if d > ab + rel * max(abs(g), abs(w)):
            if not report:
                print("%s: got %r want %r (relative difference %.3g)" % (k, g, w, r))
            bad += 1
    if report:
        print("%d values, %d beyond rel %g; largest relative difference %.3g at %s" % (len(want), bad, rel, worst[0], worst[1]))
        return 0
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
