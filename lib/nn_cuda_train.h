/* nn_cuda_train.h - training on a CUDA device: the optimizer step (AdamW, SGD nesterov), gradient
 * clipping and mixed-precision loss scaling on device buffers (lib/cuda/nn_cuda_train.cu), and the
 * backward-op table (nn_grad.h) that runs the backward ops on the device (lib/nn_grad_cuda.c).
 *
 * Ownership: vp_cuda_opt_new() returns an object that owns its device buffers (f32 master
 * weights, gradients, the optimizer state, the norm partials); vp_cuda_opt_free() releases them
 * (NULL-safe, sets *o to NULL). The host vp_optim given at creation stays the caller's: it keeps
 * the configuration and the step counter (incremented by every step that is not skipped), and
 * receives the device state on vp_cuda_opt_download(), so checkpoints are written by the CPU code
 * in the CPU format.
 *
 * Numerics: the update is nn_optim.c's, element for element in f32 with the same hyper-parameter
 * scalars (computed on the host in f64 as there); the gradient norm is an f64 sum of squares over
 * fixed runs of 256 floats, then runs in order (the same bytes on every run; equal to the CPU's
 * within f64 rounding). Clipping multiplies the gradients by min(max_norm / (norm + 1e-6), 1) as
 * clip_grad_norm_. The loss scaler is torch.cuda.amp.GradScaler's: the loss's gradient is made
 * scale times larger before backward (vp_loss_cfg.grad_scale), the gradients are multiplied by
 * 1/scale on the device, a non-finite norm skips the step (weights, state and step counter
 * unchanged) and halves the scale; growth_interval finite steps in a row double it.
 *
 * Built without CUDA (lib/nn_cuda_stub.c is then used for nn_cuda.h), vp_cuda_opt_new and
 * vp_nn_grad_cuda report "built without CUDA" / return NULL.
 */
#ifndef VP_NN_CUDA_TRAIN_H
#define VP_NN_CUDA_TRAIN_H

#include <stdint.h>

#include "nn_backend.h"
#include "nn_grad.h"
#include "nn_train.h"

#ifdef __cplusplus
extern "C" {
#endif

/* torch.cuda.amp.GradScaler's state and defaults (init_scale 65536, growth 2, backoff 0.5,
 * growth_interval 2000). enabled 0: scale 1, nothing checked beyond the CPU optimizer's own
 * non-finite test. */
typedef struct vp_loss_scaler {
    int enabled;
    float scale, growth, backoff;
    int interval, tracker;
} vp_loss_scaler;

vp_loss_scaler vp_loss_scaler_default(int enabled);

typedef struct vp_cuda_opt vp_cuda_opt;

/* An optimizer for the n flat parameters `params` (host, uploaded as the f32 master weights) on
 * be's device, configured as cfg (the configuration `host` was made with) and starting from the
 * state of `host` (its arrays are uploaded: a restored checkpoint continues). NULL after
 * vp_error(). */
vp_cuda_opt *vp_cuda_opt_new(const vp_nn_backend *be, const vp_optim_cfg *cfg, vp_optim *host, const float *params,
                             int64_t n);
void vp_cuda_opt_free(vp_cuda_opt **o);

/* The device gradient buffer (n floats), for a collective (NCCL) between vp_cuda_opt_upload_grads
 * and vp_cuda_opt_step. */
float *vp_cuda_opt_dev_grads(vp_cuda_opt *o);
/* Copy the host gradients (n floats) into the device buffer. 0 or -1 after vp_error(). */
int vp_cuda_opt_upload_grads(vp_cuda_opt *o, const float *grads);

/* One step from the device gradients: unscale (sc enabled), norm, skip when non-finite (sc
 * enabled: *skipped = 1, scale halved; otherwise an error, as vp_optim_step), clip, update the
 * device weights and state, update the scaler; then the weights are downloaded into params
 * (host, n floats; NULL: not downloaded). *grad_norm (may be NULL) receives the norm of the
 * unscaled gradients before clipping. 0 or -1 after vp_error(). */
int vp_cuda_opt_step(vp_cuda_opt *o, float lr, vp_loss_scaler *sc, float *params, double *grad_norm, int *skipped);

/* The device state (exp_avg, exp_avg_sq or momentum_buffer) into the host vp_optim's arrays, and
 * the weights into params (may be NULL): before a checkpoint. 0 or -1 after vp_error(). */
int vp_cuda_opt_download(vp_cuda_opt *o, float *params);

/* The device master weights (n floats, the layout of vp_trainable_flat_params), for a model whose
 * step runs on the device (vp_trainable_bind_device): forward reads them, the step updates them. */
float *vp_cuda_opt_dev_params(vp_cuda_opt *o);

/* n floats of device memory of be's device set to 0.0f, queued on be's stream. 0 or -1. */
int vp_cuda_zero(const vp_nn_backend *be, float *p, int64_t n);

/* The concat backward (nn_grad.h vp_nn_concat_bwd) on device tensors of be's device, one layout:
 * dy (N, sum of C_k, D, H, W) split into dxs[k] (N, C_k, D, H, W), queued. 0 or -1 after
 * vp_error(). */
int vp_cuda_split_channels(const vp_nn_backend *be, const vp_tensor *dy, vp_tensor *const *dxs, int n);

/* The gradients on the host (n floats), e.g. for tests. 0 or -1 after vp_error(). */
int vp_cuda_opt_download_grads(vp_cuda_opt *o, float *grads);

/* The backward ops of nn_grad.h computed by be's CUDA ops (nn_cuda.h, host tensors staged); NULL
 * when be is not a CUDA backend or the build has none. One CUDA backend per process trains: the
 * table binds the last backend asked for. vp_nn_grad_for() returns it for CUDA backends. */
const vp_nn_grad *vp_nn_grad_cuda(const vp_nn_backend *be);

#ifdef __cplusplus
}
#endif

#endif
