#!/usr/bin/env python3
"""nibabel peer for bench/run.sh: one operation per fresh process.

usage: nib_peer.py startup                 import nibabel + numpy, nothing else
       nib_peer.py read FILE               np.asanyarray(nib.load(FILE).dataobj)
       nib_peer.py write SRC.nii OUT.nii.gz
              load SRC into memory (np.array of the dataobj), then nib.save(img, OUT)
              at nibabel's default gzip level (Opener.default_compresslevel)
       nib_peer.py level                   print Opener.default_compresslevel

Prints the in-process time of the operation in seconds (after the imports; for write,
the nib.save alone) on stdout, so the harness can report it next to the process wall time.
"""
import sys
import time

import nibabel as nib
import numpy as np
from nibabel.openers import Opener


def main():
    mode = sys.argv[1]
    if mode == "startup":
        print("0")
    elif mode == "level":
        print(Opener.default_compresslevel)
    elif mode == "read":
        t0 = time.perf_counter()
        a = np.asanyarray(nib.load(sys.argv[2]).dataobj)
        t1 = time.perf_counter()
        assert a.size > 0
        print(f"{t1 - t0:.6f}")
    elif mode == "write":
        src = nib.load(sys.argv[2])
        arr = np.array(src.dataobj)  # in memory, as vol-write holds the frame
        img = nib.Nifti1Image(arr, src.affine)
        img.set_data_dtype(arr.dtype)
        t0 = time.perf_counter()
        nib.save(img, sys.argv[3])
        t1 = time.perf_counter()
        print(f"{t1 - t0:.6f}")
    else:
        sys.exit(f"nib_peer.py: unknown mode {mode!r}")


if __name__ == "__main__":
    main()
