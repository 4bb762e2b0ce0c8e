/* necksplit.h - split one connected component in two at its thinnest neck (e.g. two touching
 * vertebrae that carry the same label and so form one component).
 *
 * vp_neck_split() takes component k of a labelling (lib/ccl.h) and erodes its mask with the
 * 6-neighbour structure (voxels outside the component count as background, as with
 * scipy.ndimage.binary_erosion's border_value=0), one step at a time up to max_erode steps. After
 * each step that leaves two or more pieces (labelled with the labelling's connectivity), the two
 * largest pieces are seeds, grown back level by level: through the voxels that survive one erosion
 * fewer, then fewer still, down to the whole component, breadth-first one layer at a time, a voxel
 * going to the part with more neighbours (under the connectivity) in the last layer, ties to the
 * larger seed; so the result does not depend on memory order or orientation. The split is accepted,
 * and the search stops, when both parts hold at least min_part of the component's voxels.
 * Single-threaded; works inside the component's bounding box.
 *
 * Ownership: a vp_split owns `part`; vp_split_free() releases it.
 */
#ifndef VP_NECKSPLIT_H
#define VP_NECKSPLIT_H

#include <stdint.h>

#include "ccl.h"

typedef struct vp_split {
    uint64_t lo[3], dims[3]; /* the bounding box in the volume */
    uint8_t *part;           /* per box voxel (x fastest): 0 not in the component, 1 or 2 */
    uint64_t size[2];        /* voxels of parts 1 and 2 */
    double centroid[2][3];   /* mean voxel index (x, y, z) in the volume */
    int depth;               /* erosion steps it took */
} vp_split;

/* 1 with *s filled when the component splits within max_erode steps, 0 (nothing to free) when not. */
int vp_neck_split(const vp_ccl *c, uint32_t k, int max_erode, double min_part, vp_split *s);
void vp_split_free(vp_split *s);

#endif
