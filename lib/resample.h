/* resample.h - resampling a volume onto another voxel grid (spacing change, another volume's grid,
 * oblique grids), with scipy.ndimage's interpolation and boundary conventions.
 *
 * A grid is dims + a voxel-to-RAS affine. Output voxel o maps to the input's continuous index
 *     c = inverse(A_in) * A_out * o          (vp_grid_map: c = M o + t)
 * and the input is interpolated there, exactly as scipy.ndimage.map_coordinates(input, c, order,
 * mode) does (same tap positions, same B-spline weights, same boundary rules, spline prefilter for
 * order 3 with scipy's 12-voxel pre-padding for modes 'nearest' and 'grid-constant'):
 *   - VP_EXTEND_NEAREST  scipy mode='nearest' (MONAI padding_mode 'border', nnU-Net/skimage 'edge'):
 *                        outside the input the edge voxels extend; the default.
 *   - VP_EXTEND_MIRROR   scipy mode='mirror' (whole-sample symmetric; what ITK's B-spline uses).
 *   - VP_EXTEND_CONSTANT scipy mode='grid-constant': outside the input the value is `cval`.
 * When M is diagonal (the output grid is axis-aligned with the input: a pure zoom/shift/flip) a
 * separable path runs axis by axis with precomputed per-axis weights; otherwise each output voxel
 * is interpolated from its (order+1)^3 taps (reading the input as it is at order 1; at order 3 or
 * with anti-aliasing from a double coefficient array, 8 bytes per input voxel plus the padding).
 * Both give scipy's result up to rounding (order 0 and the label modes bit-exactly: they use the
 * same coordinates and tap sums as scipy). The separable path keeps no whole intermediate volume
 * at order 1 (rows and slices are made on demand), one of nxo x nyo x nz doubles at order 3.
 *
 * Ownership: vp_resample() returns a new volume owned by the caller (vp_vol_free); a
 * vp_resample_entry owns its names and grids (vp_resample_entry_free). The input volume is never
 * modified.
 */
#ifndef VP_RESAMPLE_H
#define VP_RESAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "volume.h"

enum vp_extend { VP_EXTEND_NEAREST, VP_EXTEND_MIRROR, VP_EXTEND_CONSTANT };

/* How label volumes are resampled. */
enum vp_label_mode {
    VP_LABEL_NEAREST, /* nearest neighbour (scipy order 0): labels copied, never invented */
    VP_LABEL_ONEHOT,  /* each label's one-hot mask interpolated linearly, argmax; ties -> smaller id */
    VP_LABEL_NNUNET,  /* nnU-Net's resize_segmentation(order=1): the largest label whose linearly
                         interpolated mask is >= 0.5, else 0 */
};

struct vp_grid {
    uint64_t dims[3];
    double affine[16];
};

struct vp_resample_opts {
    int order;              /* images: 0 nearest, 1 linear, 3 cubic B-spline */
    enum vp_extend mode;    /* what lies outside the input */
    double cval;            /* the value outside for VP_EXTEND_CONSTANT (cast to the output dtype) */
    int antialias;          /* images of order 1/3: Gaussian prefilter along axes that shrink */
    int keep_dtype;         /* order 1/3 of an integer image: round back to its dtype (else f32) */
    int is_label;           /* resample as labels (label_mode; `order` and `antialias` unused) */
    enum vp_label_mode label_mode;
};

void vp_resample_opts_default(struct vp_resample_opts *o);

/* The output grid for a target spacing sp[3] (mm, > 0), MONAI Spacing(d)'s convention: each
 * affine column keeps its direction and is scaled to length sp[a]; the affine's translation (the
 * centre of voxel 0) is kept; dims[a] = rint((n_a - 1) * s_a / sp[a]) + 1 with s_a the input
 * spacing (column norm) and rint rounding half to even like numpy.round. So the first voxel's
 * centre stays put and the last lands within half an output voxel of the input's last voxel.
 * Returns 0, or -1 after "<ctx>: ..." when the new dims exceed the format's limits. */
int vp_grid_for_spacing(const vp_vol *v, const double sp[3], struct vp_grid *g, const char *ctx);

/* The map from output voxel index to input continuous index: c[a] = M[a][0]*i + M[a][1]*j +
 * M[a][2]*k + t[a] (m[a][3] holds t[a]), M = inverse(A_in) * A_out. When A_in's columns are
 * orthogonal, inverse(A_in) is computed as diag(1/|col|^2) * A_in^T (exact for scaled axes, so
 * 3 mm -> 1.5 mm gives coordinates 0, 0.5, 1, ... exactly); otherwise by cofactors. Off-diagonal
 * entries whose effect over the whole output grid stays below 1e-6 voxel are set to 0. Returns 1
 * when M is then diagonal (separable path), 0 when not, -1 when A_in is singular. */
int vp_grid_map(const double in_aff[16], const struct vp_grid *out, double m[3][4]);

/* Resample every channel of `in` onto grid g. Output dtype: the input's for order 0 and labels;
 * for order 1/3 f32 when the input is an integer type (unless keep_dtype: rounded half away from
 * zero and saturated, as scipy casts), else the input's float type. Runs on vp_threads threads;
 * the output bytes do not depend on the thread count. Errors (a float label volume, a singular
 * affine, sizes beyond the limits) print "<ctx>: ..." and return NULL. */
vp_vol *vp_resample(const vp_vol *in, const struct vp_grid *g, const struct vp_resample_opts *o, const char *ctx);

/* The Gaussian sigma (in input voxels) the anti-aliasing uses along input axis a:
 * max(0, (f - 1) / 2) with f = sqrt(sum_j M[a][j]^2) the output step measured in input voxels
 * (skimage.transform.resize's rule; f = new/old spacing for a plain zoom). */
double vp_resample_aa_sigma(const double m[3][4], int a);

/* ---- meta "resample": where the volumes came from, so that a later step can go back ----
 * An array with one record per resampling, oldest first:
 *   {"from": {VOL: GRID, ...}, "to": {VOL: GRID, ...}},  GRID = {"dims": [nx, ny, nz], "affine": [16]}
 * naming each volume that was resampled, its grid before and after. */
struct vp_resample_entry {
    int n;
    char **names;
    struct vp_grid *from, *to;
};
struct vp_case;
/* Append (name, from, to) to an entry (copies name). */
void vp_resample_entry_add(struct vp_resample_entry *e, const char *name, const struct vp_grid *from,
                           const struct vp_grid *to);
void vp_resample_entry_free(struct vp_resample_entry *e);
/* Append e as the newest record of meta "resample" (a non-array value is replaced, with a warning). */
void vp_resample_meta_push(struct vp_case *c, const struct vp_resample_entry *e);
/* Remove the newest record into *e (the key goes when it was the last). 0 ok; -1 after
 * "case 'ID': ..." when there is none or it is malformed. */
int vp_resample_meta_pop(struct vp_case *c, struct vp_resample_entry *e);

#endif
