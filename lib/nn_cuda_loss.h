/* nn_cuda_loss.h - the training losses of nn_loss.h (MONAI DiceCELoss, nnU-Net DC_and_CE_loss) on
 * a CUDA device (lib/cuda/nn_cuda_loss.cu): device logits in, the loss value (one scalar copied
 * down) and d(loss)/d(logits) on the device out, so a step bound to the device
 * (vp_trainable_bind_device) never brings its logits to the host.
 *
 * Ownership: vp_cuda_targets_upload() returns device memory that only vp_cuda_targets_free()
 * releases; vp_cuda_loss_eval allocates stream-ordered temporaries (partial sums, Dice
 * coefficients, the scalar) and frees them before returning.
 *
 * Numerics: vp_loss_eval's formulas, per voxel in f64 (softmax recomputed in the backward kernel
 * instead of stored); the sums are per-thread f64 runs of LOSS_RUN voxels, combined run by run in
 * index order by one thread per (group, sum) column: no atomics, the same bytes on every run, equal
 * to the host's within f64 rounding (the host adds chunks of 16384 voxels).
 *
 * Built without CUDA, the functions (stubs in lib/nn_grad_cuda.c) report "built without CUDA".
 */
#ifndef VP_NN_CUDA_LOSS_H
#define VP_NN_CUDA_LOSS_H

#include <stdint.h>

#include "nn_backend.h"
#include "nn_train.h"

#ifdef __cplusplus
extern "C" {
#endif

/* n int32 class indices (host) copied to be's device in one copy; NULL after vp_error(). The
 * caller checks their range (vp_train_step_grads does). */
int32_t *vp_cuda_targets_upload(const vp_nn_backend *be, const int32_t *host, int64_t n);
/* Release device targets (NULL-safe; sets *t to NULL). */
void vp_cuda_targets_free(const vp_nn_backend *be, int32_t **t);

/* vp_loss_eval on the device: z (N, C, D, H, W) device logits of be's device (NCDHW or NDHWC:
 * the kernels read it in its own layout, the same sums in the same order, so the loss and dz are
 * the same bytes in both), target N*D*H*W device class indices in [0, C) (voxel order, not checked
 * here), *loss the value (copied down, synchronously), dz (z's shape and layout, device tensor, may
 * be NULL) weight * d(loss)/d(z). 0, or -1 after vp_error() (host tensors, layouts that differ,
 * shapes that disagree, C < 2). */
int vp_cuda_loss_eval(const vp_nn_backend *be, const vp_loss_cfg *lc, const vp_tensor *z, const int32_t *target,
                      double weight, double *loss, vp_tensor *dz);

#ifdef __cplusplus
}
#endif

#endif
