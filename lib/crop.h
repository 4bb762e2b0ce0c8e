/* crop.h - crop boxes (MONAI CropForeground semantics), cropping with padding, and the inverse:
 * putting a volume cut from a grid back onto that grid.
 *
 * A box is half-open in voxel indices, lo <= i < hi per axis, and may reach past the image on any
 * side (negative lo, hi > dims): the part outside is padded. Cropping moves the affine's origin to
 * voxel lo; the direction/spacing columns are unchanged.
 *
 * The crop record (box + original dims + original affine) travels in meta "crop", an array used as
 * a stack (oldest first) so that a case cropped twice can be uncropped twice:
 *   "crop": [{"box": [x0, y0, z0, x1, y1, z1], "orig_dims": [nx, ny, nz], "orig_affine": [16 f64]}]
 *
 * Ownership: vp_vol_crop/vp_vol_uncrop return new volumes the caller frees (vp_vol_free); the input
 * is not modified. Meta functions copy what they store. Nothing else allocates for the caller.
 */
#ifndef VP_CROP_H
#define VP_CROP_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "volume.h"

struct vp_box {
    int64_t lo[3], hi[3];
};

enum vp_pad_mode { VP_PAD_CONSTANT, VP_PAD_EDGE };

/* Bounding box of the voxels of v whose value (any channel) is > thr: *b gets [min, max + 1) per
 * axis. Returns 1, or 0 when no voxel is above thr (*b untouched). NaN is never foreground.
 * Multi-threaded over z; the result does not depend on the thread count. */
int vp_fg_bbox(const vp_vol *v, double thr, struct vp_box *b);

/* MONAI generate_spatial_bounding_box's margin step: lo -= margin, hi += margin per axis; with
 * allow_smaller the result is clamped to [0, dims). */
void vp_box_add_margin(struct vp_box *b, const int64_t margin[3], const uint64_t dims[3], int allow_smaller);

/* MONAI CropForeground.compute_bounding_box's k-divisible step: per axis with k > 0, the size s
 * becomes ceil(s / k) * k and lo moves down by floor((new - s) / 2); hi = lo + new. */
void vp_box_k_divisible(struct vp_box *b, const int64_t k[3]);

/* 1 if the box lies inside [0, dims) on every axis, 0 otherwise. */
int vp_box_inside(const struct vp_box *b, const uint64_t dims[3]);
/* 1 if the box shares at least one voxel with [0, dims). */
int vp_box_overlaps(const struct vp_box *b, const uint64_t dims[3]);

/* Encode value x as one voxel of dtype t into out (vp_dtype_size(t) bytes). -1 when x is not
 * exactly representable in an integer dtype (not integral, or out of range) or not finite. */
int vp_dtype_encode(enum vp_dtype t, double x, void *out);

/* The affine of the grid cut at box lo: the origin moves to A * (lo, 1); other columns are kept. */
void vp_affine_shift(const double in[16], const int64_t lo[3], double out[16]);

/* Cut box b out of v (every channel). Voxels of the box outside v are `pad` (already checked by the
 * caller with vp_dtype_encode) in VP_PAD_CONSTANT mode or repeat the nearest edge voxel in
 * VP_PAD_EDGE mode (numpy.pad "edge"). The box must have a size of 1..2^20 per axis. */
vp_vol *vp_vol_crop(const vp_vol *v, const struct vp_box *b, enum vp_pad_mode mode, double pad);

/* The inverse: v holds the box b of a grid with dims orig_dims and affine orig_affine; returns a
 * volume on that grid (v's dtype and channels) with v's voxels inside the box and `fill` elsewhere;
 * voxels of v outside the grid are dropped. v's spatial dims must equal the box size. */
vp_vol *vp_vol_uncrop(const vp_vol *v, const struct vp_box *b, const uint64_t orig_dims[3],
                      const double orig_affine[16], double fill);

struct vp_crop_rec {
    struct vp_box box;
    uint64_t orig_dims[3];
    double orig_affine[16];
};

/* Append r to meta "crop" (creating the array). A "crop" that is not an array is replaced, with a
 * warning. */
void vp_crop_meta_push(vp_case *c, const struct vp_crop_rec *r);

/* Remove the most recent record from meta "crop" into *r (the key goes away with its last record).
 * Returns 1 popped, 0 when the case has no "crop" meta (or an empty array), -1 when it is malformed
 * (why in err: which field is wrong). */
int vp_crop_meta_pop(vp_case *c, struct vp_crop_rec *r, char *err, size_t errlen);


#endif
