/* classbox.h - the classes of a predicted and a reference label volume and where they lie: one pass
 * over both volumes finds every nonzero label value, its voxel count in each volume and the
 * bounding box of the union of its two masks; then one class's two masks are cut out of the
 * volumes on that box plus a one-voxel margin (the input of surface.h).
 *
 * Label volumes are 3D, one channel, u8, u16, i16, i32, or f16/f32 holding integers. The pass runs
 * on vp_threads threads over rows, each worker with its own table, merged at the end: counts and
 * boxes are the same for every thread count; a bad voxel is reported from the first row holding one
 * (the prediction checked before the reference).
 *
 * Ownership: a vp_classboxes owns its array (vp_classboxes_free); masks are written into caller
 * buffers.
 */
#ifndef VP_CLASSBOX_H
#define VP_CLASSBOX_H

#include <stddef.h>
#include <stdint.h>

#include "volume.h"

#define VP_CLASSBOX_MAX 4096 /* distinct nonzero values in one case: more is not a label volume */

typedef struct vp_classbox {
    int64_t id;
    uint64_t npred, nref; /* voxels of the class in each volume */
    uint64_t lo[3], hi[3]; /* inclusive bounding box of the union of the two masks */
} vp_classbox;

typedef struct vp_classboxes {
    size_t n;
    vp_classbox *b; /* ascending id */
} vp_classboxes;

/* Scan both volumes (same dims, checked by the caller). On bad input prints "<ctx>: volume
 * '<name>': ..." (a float or multi-channel volume, a non-integer value with its voxel index, more
 * than VP_CLASSBOX_MAX values) and returns -1; 0 ok. */
int vp_classbox_scan(const vp_vol *pred, const char *pname, const vp_vol *ref, const char *rname,
                     const char *ctx, vp_classboxes *out);
void vp_classboxes_free(vp_classboxes *c);

/* The box of class `id` or NULL when it occurs in neither volume. */
const vp_classbox *vp_classbox_find(const vp_classboxes *c, int64_t id);

/* Dims of the padded box of b: its size plus 2 along each axis. */
void vp_classbox_dims(const vp_classbox *b, uint64_t dims[3]);

/* Cut class `id` of v out on b's padded box into m (vp_classbox_dims bytes): 1 (VP_MASK_IN) where
 * v == id, 0 elsewhere in the image, 2 (VP_MASK_OUT) beyond the image. */
void vp_classbox_mask(const vp_vol *v, int64_t id, const vp_classbox *b, uint8_t *m);

#endif
