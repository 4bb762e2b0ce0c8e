"""make_golden_trainer.py - golden values for the trainers' patch sampler (tests/unit/test_trainer.c),
computed by nnU-Net v2's own data loader code (nnunetv2.training.dataloading.data_loader):

  bbox DIM PATCH LB UB          nnUNetDataLoader.get_bbox on one axis, force_fg False: np.random.randint
                                patched to return its lowest and its highest value
  fg DIM PATCH VOXEL START      get_bbox with force_fg True and one foreground voxel at VOXEL
  oversample BATCH P IDX FLAG   nnUNetDataLoader._oversample_last_XX_percent(IDX) for batch size BATCH

    .venv/bin/python tests/scripts/make_golden_trainer.py   -> tests/golden/trainer/sampler.txt
Needs numpy and nnunetv2 (scripts/requirements-golden.txt).
"""
import os

import numpy as np
from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader

OUT = os.path.join(os.path.dirname(__file__), "..", "golden", "trainer", "sampler.txt")


def loader(patch, batch=2, p=0.33):
    dl = object.__new__(nnUNetDataLoader)  # only the attributes get_bbox and the oversampling read
    dl.patch_size = np.array(patch)
    dl.need_to_pad = np.zeros(len(patch), dtype=int)  # no enlarged patch: augmentation is a separate filter
    dl.has_ignore = False
    dl.annotated_classes_key = tuple([1])
    dl.batch_size = batch
    dl.oversample_foreground_percent = p
    return dl


def main():
    lines = []
    real_randint = np.random.randint
    cases = [(d, p) for d in (1, 3, 4, 7, 16, 33, 40) for p in (1, 2, 5, 8, 16, 32, 33)]
    for dim, patch in cases:
        dl = loader([patch])
        ends = []
        for pick in (lambda lo, hi: lo, lambda lo, hi: hi - 1):
            np.random.randint = pick
            lbs, _ = dl.get_bbox(np.array([dim]), False, None)
            ends.append(lbs[0])
        np.random.randint = real_randint
        lines.append("bbox %d %d %d %d" % (dim, patch, ends[0], ends[1]))
        for voxel in sorted({0, dim // 2, dim - 1}):
            locs = {1: np.array([[0, voxel]])}  # nnU-Net's class_locations: (channel, axis...) rows
            lbs, _ = dl.get_bbox(np.array([dim]), True, locs)
            lines.append("fg %d %d %d %d" % (dim, patch, voxel, lbs[0]))
    for batch in range(1, 9):
        for p in (0.33, 0.5, 1.0, 0.0):
            dl = loader([8], batch, p)
            for i in range(batch):
                lines.append("oversample %d %g %d %d" % (batch, p, i, int(dl._oversample_last_XX_percent(i))))
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(OUT, len(lines), "lines")


if __name__ == "__main__":
    main()
