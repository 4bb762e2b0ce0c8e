"""ccl_check.py GOLDEN_DIR - compare label-clean outputs with golden arrays, exactly.

Reads lines "OUTPUT_STREAM  NPZ:ARRAY  VOL" on stdin; for each, the volume VOL of the (single) case in
OUTPUT_STREAM must have the golden array's shape, dtype and values. Prints one line per mismatch
(with the number of differing voxels) and "checked N" at the end; exit 1 if anything differed.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vxp  # noqa: E402


def main():
    gdir = sys.argv[1]
    cache = {}
    bad = n = 0
    for line in sys.stdin:
        if not line.strip():
            continue
        out, key, vol = line.split("\t")[:3]
        vol = vol.strip()
        npz, arr = key.split(":")
        if npz not in cache:
            cache[npz] = np.load(os.path.join(gdir, npz))
        want = cache[npz][arr]
        n += 1
        try:
            cases = list(vxp.read(open(out, "rb")))
            got = cases[0]["vols"][vol].data
        except Exception as e:  # missing or unreadable output
            print("%s: %s: cannot read %s: %s" % (key, out, vol, e))
            bad += 1
            continue
        if got.shape != want.shape or got.dtype != want.dtype:
            print("%s: shape/dtype %s %s, want %s %s" % (key, got.shape, got.dtype, want.shape, want.dtype))
            bad += 1
        elif not np.array_equal(got, want):
            print("%s: %d of %d voxels differ" % (key, int((got != want).sum()), want.size))
            bad += 1
    print("checked %d, %d differ" % (n, bad))
    sys.exit(1 if bad or not n else 0)


if __name__ == "__main__":
    main()
