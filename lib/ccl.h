/* ccl.h - connected-component labelling of 3D integer label volumes (6/18/26-connectivity).
 *
 * vp_ccl_label() labels every non-zero voxel of a u8/u16/i16/i32 volume in one pass: two voxels are
 * in the same component when they hold the same value and are joined by a path of such voxels under
 * the connectivity (6: faces, 18: faces and edges, 26: faces, edges and corners; the structures of
 * scipy.ndimage.generate_binary_structure(3, 1|2|3)). Components therefore never cross class
 * boundaries, and a 0/1 mask gives the components of the mask.
 *
 * Method: each row (fixed y, z) is cut into runs of equal non-zero value; a run is joined to the
 * runs of the same value in the neighbouring rows it touches, with union-find (path halving, the
 * smaller run index as root). Slabs of z are labelled in parallel (lib/parallel.h) and then joined
 * across slab borders. Time and memory are linear in voxels + runs; the volume itself is not copied.
 *
 * Numbering: components are numbered as scipy.ndimage.label numbers them on the numpy array indexed
 * [x, y, z] (what nibabel's get_fdata() returns): in the C order of that array of each component's
 * first voxel, i.e. sorted by the smallest (x, y, z) of the component, x most significant. voxpipe's
 * memory order is the transpose (x fastest), so this is not the order of the first voxel in memory;
 * it is fixed by the voxels alone, whatever the thread count or slab layout.
 *
 * Ownership: a vp_ccl owns its arrays; vp_ccl_free() releases them. It keeps no pointer to the
 * volume: functions that need the voxels take the volume again.
 */
#ifndef VP_CCL_H
#define VP_CCL_H

#include <stdint.h>

#include "volume.h"

struct vp_ccl_comp {
    int64_t cls;           /* the voxel value of the component */
    uint64_t size;         /* voxels */
    uint32_t lo[3], hi[3]; /* bounding box, inclusive voxel indices (x, y, z) */
    double centroid[3];    /* mean voxel index (x, y, z) */
    uint32_t first[3];     /* smallest (x, y, z), x most significant: the numbering key */
};

typedef struct vp_ccl {
    uint64_t dims[3];
    int conn;                  /* 6, 18 or 26 */
    uint64_t nruns;
    uint64_t *row;             /* runs of row r = y + ny*z are [row[r], row[r+1]); ny*nz + 1 entries */
    uint32_t *x0, *x1;         /* run i covers x0[i] <= x <= x1[i] */
    uint32_t *comp;            /* component index of run i (component number - 1) */
    uint32_t ncomp;
    struct vp_ccl_comp *comps; /* ncomp entries, in numbering order */
} vp_ccl;

/* Whether vp_ccl_label() accepts dtype t (u8, u16, i16, i32). */
int vp_ccl_dtype_ok(enum vp_dtype t);

/* Label the non-zero voxels of v (3-D, or 4-D with one channel) with connectivity conn (6, 18, 26)
 * into *out. On error (float dtype, several channels, bad conn, more than 2^32-2 runs) prints
 * "<ctx>: why" and returns -1 with *out empty; 0 ok. */
int vp_ccl_label(const vp_vol *v, int conn, vp_ccl *out, const char *ctx);

void vp_ccl_free(vp_ccl *c);

/* Component number (1..ncomp, 0 = background) of every voxel, x fastest, into ids (nx*ny*nz). */
void vp_ccl_ids(const vp_ccl *c, int32_t *ids);

/* Give the voxels of every component k with change[k] != 0 the value to[k] in v (the volume that
 * was labelled; to[k] must fit its dtype). */
void vp_ccl_paint(const vp_ccl *c, vp_vol *v, const uint8_t *change, const int64_t *to);

/* Call fn(ctx, a, b, n) for every pair of touching runs of different components a != b (so of
 * different values), n = the number of voxel pairs between them that are neighbours under the
 * connectivity; a pair of components may be reported several times (once per pair of runs), the
 * counts add up. Sequential, in a fixed order. */
typedef void (*vp_ccl_contact_fn)(void *ctx, uint32_t a, uint32_t b, uint64_t n);
void vp_ccl_contacts(const vp_ccl *c, vp_ccl_contact_fn fn, void *ctx);

/* Whether component k touches the border of the volume (its bounding box reaches a face). */
int vp_ccl_touches_border(const vp_ccl *c, uint32_t k);

#endif
