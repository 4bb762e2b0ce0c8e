/* nn_loss.h - the training losses of nn_train.h (MONAI DiceCELoss, nnU-Net DC_and_CE_loss) with
 * their gradients with respect to the logits, and nnU-Net's deep-supervision helpers.
 *
 * Ownership: nothing is allocated for the caller; dlogits is the caller's tensor.
 *
 * Numerics: softmax, sums and ratios in f64 per voxel / per (batch, class); the peers compute in
 * f32, so values agree to about 1e-6 relative.
 */
#ifndef VP_NN_LOSS_H
#define VP_NN_LOSS_H

#include <stdint.h>

#include "nn_train.h"

/* Loss of logits (N, C, D, H, W) against target (N*D*H*W class indices in [0, C)) as lc says
 * (deep_supervision is ignored here: one output). *loss receives the value; dlogits (same shape
 * as logits, may be NULL) receives weight * d(loss)/d(logits). 0, or -1 after vp_error() (a
 * target out of range names its voxel; shapes that disagree). */
int vp_loss_eval(const vp_loss_cfg *lc, const vp_tensor *logits, const int32_t *target, double weight, double *loss,
                 vp_tensor *dlogits);

/* nnU-Net's deep-supervision weights for n outputs (highest resolution first): 1/2^i, the last
 * set to 0, normalised to sum 1 (n == 1: {1}). */
void vp_loss_ds_weights(int n, double *w);

/* Target for a lower-resolution output, as nnU-Net's DownsampleSegForDSTransform
 * (interpolate(mode='nearest-exact')): out[n][d][h][w] = in[n][src(d)][src(h)][src(w)] with
 * src(o) = min(floor((o + 0.5) * in_size / out_size), in_size - 1) in f32. */
void vp_loss_downsample_target(const int32_t *in, int64_t n, const int64_t in_dims[3], const int64_t out_dims[3],
                               int32_t *out);

#endif
