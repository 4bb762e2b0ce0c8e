/* labelclean.h - per-class clean-up of an integer label volume (what label-clean does): keep each
 * class's largest connected component, drop small islands, give removed voxels to a touching class,
 * fill holes; and the change log these operations (and spineorder.h) keep.
 *
 * Every non-zero value is a class; components come from lib/ccl.h with the chosen connectivity and
 * never cross class boundaries. vp_label_clean() runs, in this order:
 *   1. removal: with `largest`, every component of a class but its largest (ties: the first in
 *      ccl.h numbering order) is removed; with `min_size` > 0, every component with fewer voxels
 *      (or, with `min_size_mm3`, a smaller volume: voxels x |det| of the affine's 3x3 part) is
 *      removed. Removed voxels become 0, or with `reassign` the class with the most contacts with
 *      the component: pairs (voxel of the component, voxel of a class that is kept) that are
 *      neighbours under the connectivity; ties go to the lower class value, no contact gives 0.
 *      All removals are decided on the same labelling and applied at once.
 *   2. fill holes: for each class c (ascending), the holes of the mask v == c as
 *      scipy.ndimage.binary_fill_holes(v == c, structure) finds them with the connectivity's
 *      structure (components of the complement that do not touch the volume border); the voxels of
 *      those holes that are 0 become c. A 0 voxel inside holes of several classes goes to the class
 *      whose hole (complement component) is smallest, the innermost; ties to the lower class.
 *      Voxels of other classes inside a hole are left as they are.
 *
 * Ownership: the log owns its entries (vp_lc_log_free); vp_label_clean() changes the volume in place.
 */
#ifndef VP_LABELCLEAN_H
#define VP_LABELCLEAN_H

#include <stdint.h>
#include <msgpack.h>

#include "ccl.h"
#include "volume.h"

struct vp_lc_opts {
    int conn;          /* 6, 18 or 26 */
    int largest;       /* keep the largest component of each class */
    double min_size;   /* remove components below this size; 0 = off */
    int min_size_mm3;  /* min_size is in mm^3, not voxels */
    int reassign;      /* removed voxels go to the most touching kept class instead of 0 */
    int fill_holes;
};

/* One change, for stderr and meta "label_clean". */
struct vp_lc_change {
    char op[16];               /* "largest", "min-size", "fill-holes", "spine-order" */
    int64_t from, to;          /* class before and after (0: background) */
    uint64_t components, voxels;
    int has_pos;               /* a single component: where it is */
    double centroid[3], s_mm;  /* mean voxel index (x, y, z); world S coordinate (mm) */
    char why[160];             /* free text ("" for none) */
};

struct vp_lc_log {
    int n, cap;
    struct vp_lc_change *v;
};

void vp_lc_log_add(struct vp_lc_log *l, const struct vp_lc_change *c);
void vp_lc_log_free(struct vp_lc_log *l);
/* Pack the entries as an array of maps {"op", "from", "to", "components", "voxels"[, "centroid",
 * "s_mm"][, "why"]}. */
void vp_lc_log_pack(const struct vp_lc_log *l, msgpack_packer *pk);

/* Volume of one voxel in mm^3: |det| of the affine's 3x3 part. */
double vp_voxel_volume(const double affine[16]);

/* Run steps 1 and 2 above on v (u8, u16, i16, i32; one channel) as o asks, appending to log.
 * 0 ok; -1 after printing "<ctx>: why" (float dtype, several channels). */
int vp_label_clean(vp_vol *v, const struct vp_lc_opts *o, struct vp_lc_log *log, const char *ctx);

/* For every component k of c with removed[k]: to[k] = the class with the most contacts with it among
 * the components that are not removed (ties: the lower class), 0 when it touches none. */
void vp_lc_reassign_targets(const vp_ccl *c, const uint8_t *removed, int64_t *to);

/* Value of voxel i of an integer volume (u8, u16, i16, i32). */
int64_t vp_label_get(const vp_vol *v, uint64_t i);
void vp_label_set(vp_vol *v, uint64_t i, int64_t val);

#endif
