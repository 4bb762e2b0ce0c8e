/* overlap.h - overlap metrics of a predicted and a reference label volume on the same grid.
 *
 * One pass over both volumes counts every (prediction value, reference value) pair that occurs: a
 * sparse joint histogram, so any class, and any group of classes (a mask "value in set"), gets its
 * confusion counts TP, FP, FN, TN without another pass. The pass is multi-threaded (parallel.h) over
 * ranges of voxels; runs of equal pairs are counted in a register and each worker keeps its own
 * pair table, merged at the end, so the counts are exact and the same for every --threads.
 * Label volumes may be u8, u16, i16, i32, or f16/f32 holding integer values only.
 *
 * The metrics of one mask follow from its counts (N = TP + FP + FN + TN):
 *   dice 2TP/(2TP+FP+FN)            iou TP/(TP+FP+FN)               accuracy (TP+TN)/N
 *   precision TP/(TP+FP)            sensitivity TP/(TP+FN)          specificity TN/(TN+FP)
 *   balanced_accuracy (sensitivity + specificity)/2
 *   kappa (Cohen's, binary) 2(TP*TN - FN*FP) / ((TP+FP)(FP+TN) + (TP+FN)(FN+TN))
 *   auc 1 - (FPR + FNR)/2 with FPR = FP/(FP+TN), FNR = FN/(TP+FN) (the ROC area of a binary mask)
 *   volume_similarity 1 - |FN-FP|/(2TP+FP+FN)
 * A metric is undefined when a denominator of its formula is zero (e.g. dice when both masks are
 * empty, precision when the prediction is empty); it then takes the value of the empty rule:
 * NaN (default), 1 or 0.
 *
 * Ownership: vp_overlap_count() fills a vp_confusion that the caller releases with
 * vp_confusion_free(); everything else works on caller memory.
 */
#ifndef VP_OVERLAP_H
#define VP_OVERLAP_H

#include <stddef.h>
#include <stdint.h>

#include "volume.h"

#define VP_OVERLAP_MAX_VALUES 4096 /* distinct label values in one case: more is not a label volume */

typedef struct vp_pair {
    int64_t pred, ref;
    uint64_t n; /* voxels with this prediction and this reference value, > 0 */
} vp_pair;

typedef struct vp_confusion {
    uint64_t nvox;
    size_t npairs;
    vp_pair *pairs; /* sorted by (pred, ref) */
    size_t nvals;
    int64_t *vals; /* distinct values in either volume, ascending */
} vp_confusion;

struct vp_counts {
    uint64_t tp, fp, fn, tn;
};

enum vp_empty { VP_EMPTY_NAN, VP_EMPTY_ONE, VP_EMPTY_ZERO };
extern const char *const vp_empty_names[]; /* "nan", "one", "zero", NULL */

enum vp_ovm {
    VP_OVM_TP, VP_OVM_FP, VP_OVM_FN, VP_OVM_TN,
    VP_OVM_DICE, VP_OVM_IOU, VP_OVM_ACCURACY, VP_OVM_BALANCED_ACCURACY, VP_OVM_PRECISION,
    VP_OVM_SENSITIVITY, VP_OVM_SPECIFICITY, VP_OVM_KAPPA, VP_OVM_AUC, VP_OVM_VOLUME_SIMILARITY,
    VP_OVM_N
};
/* "tp", "fp", "fn", "tn", "dice", "iou", "accuracy", "balanced_accuracy", "precision",
 * "sensitivity", "specificity", "kappa", "auc", "volume_similarity"; NULL-terminated. */
extern const char *const vp_ovm_names[];

/* Do a and b share a grid: equal dims (3D, one channel each) and affines equal within 1e-4 mm
 * relative? 1 yes; 0 no, with the difference described in why ("dims 4x4x4 vs 4x4x5", ...). */
int vp_overlap_same_grid(const vp_vol *a, const vp_vol *b, char *why, size_t whylen);

/* Count the value pairs of pred and ref (same grid; checked). On bad input prints
 * "<ctx>: ..." naming the volume by pname/rname (different grids, non-integer values, a float or
 * multi-channel volume, more than VP_OVERLAP_MAX_VALUES values) and returns -1; 0 ok. */
int vp_overlap_count(const vp_vol *pred, const char *pname, const vp_vol *ref, const char *rname,
                     const char *ctx, vp_confusion *cf);

void vp_confusion_free(vp_confusion *cf);

/* Confusion counts of the masks "value in set" (set: sorted ascending, no duplicates). */
void vp_confusion_counts(const vp_confusion *cf, const int64_t *set, size_t nset, struct vp_counts *out);

/* Value of metric m from the counts, with the empty rule for an undefined metric. */
double vp_overlap_metric(enum vp_ovm m, const struct vp_counts *c, enum vp_empty rule);

#endif
