/* trainer_cuda.h - the trainers' GPU path (--backend cuda[:N[:MATH]]): the device that runs the
 * forward and backward ops, the optimizer, clipping and loss scaling on the device (nn_cuda_train.h),
 * and with several ranks the gradient all-reduce over NCCL on the device (trainer_nccl.c).
 *
 * What runs where: the model's forward and backward ops run on the CUDA backend (nn_cuda.h) with
 * the model's tensors staged from host memory (each op uploads its inputs and downloads its
 * outputs; the loss and its gradient are computed on the host, nn_loss.c); the flat gradients are
 * then uploaded once, all-reduced on the device (NCCL) when there are several ranks, and the
 * optimizer updates the f32 master weights and its state on the device; the new weights come back
 * for the next forward. MATH f16 turns on dynamic loss scaling (GradScaler: a step with non-finite
 * gradients is skipped and the scale halved); bf16 and tf32 need none. Checkpoints: the device
 * state is downloaded into the host optimizer first, so the files are the CPU trainer's.
 *
 * Ownership: a vp_tcuda owns its device optimizer; vp_tcuda_free releases it (and the NCCL
 * communicator when it made one). The backend is a static object of nn_cuda.h.
 */
#ifndef VP_TRAINER_CUDA_H
#define VP_TRAINER_CUDA_H

#include "nn_cuda.h"
#include "nn_cuda_train.h"
#include "trainer_dist.h"

typedef struct vp_tcuda vp_tcuda;

/* Check spec: "cpu", "cuda", "cuda:N" or "cuda:N:MATH" (MATH f32, tf32, f16, bf16). With several
 * ranks each rank takes GPU (local rank % devices), as the NCCL bootstrap does, so N must be left
 * out ("cuda" or "cuda:MATH"). 0, or VP_ERR_USAGE after vp_error(). Done before any data is read. */
int vp_tcuda_check_spec(const char *spec, const vp_dist *d);

/* The GPU path for model m and host optimizer o (made with cfg, its state possibly restored):
 * *be receives the CUDA backend the steps must use. 0, or an exit code after vp_error():
 * VP_ERR_DEVICE (no GPU, built without CUDA, a device call failed). */
int vp_tcuda_open(const char *spec, vp_dist *d, vp_trainable *m, const vp_optim_cfg *cfg, vp_optim *o,
                  const vp_nn_backend **be, vp_tcuda **out);

/* The loss configuration for the next step: lc with the current loss scale (f16) — a pointer into t. */
const vp_loss_cfg *vp_tcuda_loss(vp_tcuda *t, const vp_loss_cfg *lc);

/* 1 when the gradients are all-reduced on the device (NCCL, several ranks): the host all-reduce
 * is then skipped. */
int vp_tcuda_reduces_on_device(const vp_tcuda *t);

/* One optimizer step from the host gradients g (n floats): upload, all-reduce on the device (see
 * above; what names the step in errors), unscale / skip / clip / update on the device, new weights
 * into the model's flat parameters. *gnorm receives the norm before clipping; *skipped 1 when the
 * loss scaler skipped the step. 0, -1 after vp_error(), or -2 when the all-reduce failed (a rank
 * died: the caller aborts). */
int vp_tcuda_step(vp_tcuda *t, vp_dist *d, const float *g, int64_t n, float lr, double *gnorm, int *skipped,
                  const char *what);

/* Before a checkpoint: the device optimizer state into the host optimizer. 0 or -1 after vp_error(). */
int vp_tcuda_sync(vp_tcuda *t);

void vp_tcuda_free(vp_tcuda **t, vp_dist *d);

/* The loss scaler of the GPU path (scale, growth tracker, ...; enabled only with MATH f16), to save
 * in a checkpoint and set on resume (lib/trainer_state.c). A pointer into t; NULL when t is NULL. */
vp_loss_scaler *vp_tcuda_scaler(vp_tcuda *t);

#endif
