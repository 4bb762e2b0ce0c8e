#!/usr/bin/env python3
"""Two models' tidy metric tables for the report tests (seeded, written into DIR):
A.tsv and B.tsv with columns case, class, name, metric, value; cases s1..s5 and s10 (natural
order), classes 1, 2, 3 (named), 10 (unnamed; model A only, in some cases) and the group 'all';
metrics tp (a count the report leaves out by default), dice and hd95 (lower is better).
Edge values: a NaN dice (A, class 3, s2), an infinite hd95 (B, class 2, s4).

  make_report_tables.py DIR
"""
import os, sys

import numpy as np

out = sys.argv[1]
rng = np.random.default_rng(20240828)
cases = ["s1", "s2", "s3", "s4", "s5", "s10"]
names = {"1": "vertebrae_C1", "2": "vertebrae_C2", "3": "vertebrae_C3"}
for model, shift in (("A", 0.0), ("B", -0.04)):
    rows = []
    for case in cases:
        classes = ["1", "2", "3"] + (["10"] if model == "A" and case in ("s1", "s3", "s10") else [])
        dice = {}
        for c in classes:
            d = float(np.clip(0.9 + shift + rng.normal(0, 0.03), 0, 1))
            h = float(2.0 - 10 * shift + rng.gamma(2.0, 0.4))
            if model == "A" and c == "3" and case == "s2": d = float("nan")
            if model == "B" and c == "2" and case == "s4": h = float("inf")
            dice[c] = d
            rows.append((case, c, names.get(c, ""), "tp", str(int(rng.integers(100, 5000)))))
            rows.append((case, c, names.get(c, ""), "dice", repr(d)))
            rows.append((case, c, names.get(c, ""), "hd95", repr(h)))
        ok = [v for v in dice.values() if v == v]
        rows.append((case, "all", "1-3", "dice", repr(float(np.mean(ok)))))
    with open(os.path.join(out, f"{model}.tsv"), "w") as f:
        f.write("case\tclass\tname\tmetric\tvalue\n")
        for r in rows:
            f.write("\t".join(r) + "\n")
