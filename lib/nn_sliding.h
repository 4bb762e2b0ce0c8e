/* nn_sliding.h - MONAI-style sliding-window inference (monai.inferers.sliding_window_inference,
 * sw_batch_size 1, no buffering) and the volume <-> tensor layout conversions around it.
 *
 * Ownership: vp_sliding_window() returns a new tensor the caller frees (vp_tensor_free); the
 * predictor returns a new tensor per window that the sliding loop frees. Nothing else is kept.
 *
 * What it computes, step for step as MONAI does (f32 throughout):
 *   1. pad: a spatial size s below the ROI r is padded to r, (r - s) / 2 before and the rest after,
 *      with `cval` (padding "constant", MONAI's default, cval 0) or the edge voxel ("replicate").
 *   2. scan interval per axis: r when r equals the (padded) size, else int(r * (1 - overlap)), at
 *      least 1 (_get_scan_interval).
 *   3. window starts per axis (dense_patch_slices): i * interval for i = 0 .. the first i with
 *      i * interval + r >= size, each pulled back to size - r when it runs past the end; windows
 *      in C order of (d, h, w) starts, w fastest.
 *   4. importance map (compute_importance_map): constant 1, or gaussian: per axis
 *      g(t) = exp((t - (r-1)/2)^2 / (-2 sigma^2)), sigma = sigma_scale * r, their outer product,
 *      clamped below at max(min of the map, 1e-3).
 *   5. out += predictor(window) * map over each window, count += map; out /= count; crop the
 *      padding away.
 * Memory, bounded by default (vp_sliding_window_rows): windows run in MONAI's order, d outermost,
 * so once every window starting at d-row s has run, the rows before the next start s' get no more
 * contributions and are final. Only a band of roi[0] rows of the (padded) volume is aggregated,
 * K x roi[0] x H x W floats plus the weights; each final row is divided and handed to an emit
 * callback, then the band moves on. The sums per voxel are the same, in the same order, as with a
 * full-size buffer, so the result is bit for bit the same as vp_sliding_window(), which collects the
 * rows into a full (1, K, D, H, W) tensor as MONAI's output is (4 bytes x classes x voxels).
 * No padded copy of the input is made (windows read through the padding). Deterministic: windows
 * are run in a fixed order.
 */
#ifndef VP_NN_SLIDING_H
#define VP_NN_SLIDING_H

#include "nn_tensor.h"
#include "volume.h"

enum { VP_SW_PAD_CONSTANT = 0, VP_SW_PAD_REPLICATE = 1 };

typedef struct vp_sw_params {
    int roi[3];         /* window size (d, h, w), each >= 1 */
    double overlap;     /* in [0, 1) */
    int gaussian;       /* 1: gaussian importance map, 0: constant */
    double sigma_scale; /* gaussian sigma = sigma_scale * roi */
    int pad_mode;       /* VP_SW_PAD_* */
    float cval;         /* constant padding value */
} vp_sw_params;

/* Run the network on one window x (1, C, rd, rh, rw) into a new *y (1, K, rd, rh, rw). 0 or -1
 * after vp_error(). */
typedef int (*vp_sw_predict_fn)(void *ctx, const vp_tensor *x, vp_tensor **y);

/* Window start positions along one axis of (padded) length size for window r and the overlap;
 * writes at most max starts, returns their number (step 2 and 3 above). */
int vp_sw_starts(int64_t size, int r, double overlap, int64_t *starts, int max);

/* The importance map (rd * rh * rw floats, w fastest) of step 4 into map. */
void vp_sw_importance_map(const vp_sw_params *p, float *map);

/* Called once per final row d (0 <= d < D, ascending) with the aggregated logits of that row,
 * (K, H, W) floats, H and W fastest as in the input tensor. 0 to go on, -1 (after vp_error) to stop. */
typedef int (*vp_sw_emit_fn)(void *ectx, int64_t d, int64_t K, const float *row);

/* Sliding-window inference of x (1, C, D, H, W) with predictor fn in bounded memory: every row of
 * the (1, K, D, H, W) aggregated logits goes to emit as soon as it is final. 0, or -1 after
 * vp_error() (bad parameters, a predictor or emit failure, a predictor output of the wrong shape). */
int vp_sliding_window_rows(const vp_tensor *x, const vp_sw_params *p, vp_sw_predict_fn fn, void *ctx,
                           void (*progress)(int done, int total), vp_sw_emit_fn emit, void *ectx);

/* Sliding-window inference of x (1, C, D, H, W) with predictor fn: *out = new (1, K, D, H, W)
 * aggregated logits. 0, or -1 after vp_error() (bad parameters, a predictor failure, or a
 * predictor output of the wrong shape). `progress`, when not NULL, is called after each window
 * with (done, total). */
int vp_sliding_window(const vp_tensor *x, const vp_sw_params *p, vp_sw_predict_fn fn, void *ctx,
                      void (*progress)(int done, int total), vp_tensor **out);

/* Volume (x fastest, nc channels) to a network tensor (1, nc, nx, ny, nz) in MONAI's axis order
 * (spatial dims in NIfTI voxel order x, y, z: the last, z, fastest), any dtype as f32. The number
 * of NaN voxels is stored in *nan_count. */
vp_tensor *vp_vol_to_tensor(const vp_vol *v, uint64_t *nan_count);

#endif
