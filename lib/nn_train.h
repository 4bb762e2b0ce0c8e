/* nn_train.h - training in the nn engine: a model being trained (parameters + gradients in two flat
 * f32 buffers), one training step (forward keeping what backward needs, loss, backward), the
 * losses, the optimizers, and checkpoints in the safetensors format the inference programs read.
 *
 * This header is the contract between the engine side (lib/nn_grad*.c, lib/nn_loss.c,
 * lib/nn_optim.c, lib/nn_train_*.c) and the trainer programs (trainers/, lib/trainer*.c): the
 * trainers only see vp_trainable, vp_loss_cfg and vp_optim.
 *
 * Ownership: vp_trainable_* constructors return a model that owns its parameter buffer, gradient
 * buffer and every saved activation; vp_trainable_free() releases all of it. Parameters and
 * gradients are contiguous: vp_trainable_flat_params()/flat_grads() expose them as one array each
 * (in the order of vp_trainable_param(), each tensor's elements row-major), so one all-reduce
 * covers every gradient and a checkpoint is one write. vp_optim owns its state buffers (same
 * layout as the parameters).
 *
 * Numerics follow PyTorch f32 on CPU: torch.nn's default initialisation distributions (seeded with
 * voxpipe's own generator, so not torch's bytes; parity tests load the peer's weights), MONAI DiceCELoss and nnU-Net's DC_and_CE_loss with deep supervision, torch.optim.AdamW
 * and torch.optim.SGD(nesterov) update formulas, clip_grad_norm_.
 *
 * Reverse pass (lib/nn_train_segresnet.c, lib/nn_train_unet.c): hand-written per architecture, no
 * recomputation. Forward allocates every activation on a tape owned by the model and keeps
 * pointers to what backward needs (each conv's input, each norm's input, each activation's
 * output); backward walks the layers in reverse with the backward ops of lib/nn_grad.h (the
 * reference ones for the "ref" backend, the multi-threaded CPU ones otherwise), writing each
 * parameter's gradient into its slice of the flat gradient buffer, and the tape is released at
 * the end of the step. Activation and gradient buffers come from an arena the model owns
 * (nn_train_arena.h): sized on the first step, reused by later steps of the same shape. Norm
 * statistics are recomputed from the saved inputs (cheap, exact).
 * Implementation files: nn_train.c (registry, step, save/load; private nn_train_int.h), nn_loss.c
 * (nn_loss.h), nn_optim.c, nn_st_write.c (nn_st_write.h).
 */
#ifndef VP_NN_TRAIN_H
#define VP_NN_TRAIN_H

#include <stdint.h>

#include "nn_backend.h"
#include "nn_segresnet.h"
#include "nn_unet.h"

/* One parameter: its state_dict name (MONAI / nnU-Net names, as the inference loaders expect), its
 * weights and its gradient (views into the flat buffers; same shape). */
typedef struct vp_param {
    const char *name;
    vp_tensor w;
    vp_tensor g;
} vp_param;

typedef struct vp_trainable vp_trainable;

typedef enum vp_loss_kind {
    VP_LOSS_DICECE,     /* MONAI DiceCELoss(softmax=True, to_onehot_y=True), lambda_dice = lambda_ce = 1 */
    VP_LOSS_NNUNET_DCCE /* nnU-Net DC_and_CE_loss (soft Dice without background + CE), deep supervision */
} vp_loss_kind;

typedef struct vp_loss_cfg {
    vp_loss_kind kind;
    int include_background; /* Dice over class 0 too (MONAI default 1; nnU-Net 0) */
    int batch_dice;         /* Dice summed over the batch before the ratio (nnU-Net option) */
    float smooth_nr, smooth_dr; /* as the peer's defaults (MONAI 1e-5 / 1e-5; nnU-Net's MemoryEfficientSoftDiceLoss) */
    int deep_supervision;   /* nnU-Net: weights 1/2^i over the decoder outputs, lowest dropped, normalised */
    float grad_scale;       /* > 0: d(loss)/d(logits) multiplied by it before backward (mixed-precision loss
                             * scaling, nn_cuda_train.h; the loss value is not); 0: 1 */
} vp_loss_cfg;

/* Defaults of MONAI Label's segmentation trainer (kind DICECE) or nnU-Net 3d_fullres (NNUNET_DCCE). */
vp_loss_cfg vp_loss_cfg_default(vp_loss_kind kind);

/* A new SegResNet / PlainConvUNet with freshly initialised weights (seeded, reproducible). NULL
 * after vp_error() on a bad configuration. */
vp_trainable *vp_trainable_new_segresnet(const vp_segresnet_cfg *cfg, uint64_t seed);
vp_trainable *vp_trainable_new_unet(const vp_unet_cfg *cfg, uint64_t seed);

/* A model read from a safetensors file (an inference model, or a checkpoint written by
 * vp_trainable_save); the architecture comes from its __metadata__. NULL after vp_error(). */
vp_trainable *vp_trainable_load(const char *path);

void vp_trainable_free(vp_trainable **m);

/* "segresnet" or "unet". */
const char *vp_trainable_arch(const vp_trainable *m);
/* in_channels / number of classes. */
int vp_trainable_in_channels(const vp_trainable *m);
int vp_trainable_classes(const vp_trainable *m);
/* Each spatial size of a training patch must be a multiple of this per axis (d, h, w). */
void vp_trainable_divisor(const vp_trainable *m, int out[3]);

int vp_trainable_nparams(const vp_trainable *m);
vp_param *vp_trainable_param(vp_trainable *m, int i);
/* The flat buffers and their length in floats. */
float *vp_trainable_flat_params(vp_trainable *m, int64_t *n);
float *vp_trainable_flat_grads(vp_trainable *m, int64_t *n);

/* Zero the gradients, run forward on x (N, in_ch, D, H, W), compute the loss against target
 * (N*D*H*W class indices, row-major (n, d, h, w), each in [0, classes)), run backward and leave
 * d(loss)/d(param) in the gradient buffer; *loss receives the loss value. The loss is the mean over
 * the batch as the peers compute it, so averaging gradients of equal-sized shards across ranks
 * equals one rank with the whole batch (except batch_dice, which is per rank). 0, or -1 after
 * vp_error() (bad shapes, a target out of range, an op failing). */
int vp_train_step_grads(vp_trainable *m, const vp_nn_backend *be, const vp_tensor *x, const int32_t *target,
                        const vp_loss_cfg *lc, double *loss);

/* Run the steps of m on the device of CUDA backend be: forward reads the weights at dev_params,
 * backward writes the gradients to dev_grads (device memory of n floats each in the flat layout,
 * e.g. vp_cuda_opt's buffers: nn_cuda_train.h), every activation and gradient buffer is a device
 * tensor of m's arena, in the layout inference picks for be's math (vp_infer_cuda_layout: NDHWC,
 * channels last, for tf32/f16/bf16, NCDHW for f32; VP_CUDA_LAYOUT=ncdhw|ndhwc overrides, and
 * VP_TRAIN_LAYOUT=ncdhw|ndhwc overrides that for training alone); the loss reads the logits in
 * their layout, weights and their gradients stay in PyTorch's layout. A step then uploads the batch and its targets (every output's,
 * packed in one copy), computes the loss and its gradient on the device (nn_cuda_loss.h) and
 * downloads only the loss scalars (VP_TRAIN_HOST_LOSS=1: the loss on the host instead, the logits
 * down and their gradient up); the host flat buffers are no longer written by steps (the caller
 * downloads the weights when it needs them).
 * vp_trainable_forward returns host logits. be NULL unbinds (host again). Not between a forward
 * and its backward. 0, or -1 after vp_error(). */
int vp_trainable_bind_device(vp_trainable *m, const vp_nn_backend *be, float *dev_params, float *dev_grads);

/* Inference forward (no saved activations): logits *y (N, classes, D, H, W), a new host tensor. */
int vp_trainable_forward(vp_trainable *m, const vp_nn_backend *be, const vp_tensor *x, vp_tensor **y);

/* Write the weights under their state_dict names plus the architecture __metadata__ (the keys the
 * inference loaders read) and the extra key/value pairs given (e.g. voxpipe.spacing, labels,
 * voxpipe.roi, normalization), to path atomically (temp, fsync, rename). The file loads in
 * infer-ressegnet / infer-unet and in vp_trainable_load. 0, or -1 after vp_error(). */
int vp_trainable_save(const vp_trainable *m, const char *path, int n_extra, const char *const *keys,
                      const char *const *values);

/* Optimizers, as torch.optim computes them. */
typedef enum vp_optim_kind { VP_OPTIM_ADAMW, VP_OPTIM_SGD } vp_optim_kind;

typedef struct vp_optim_cfg {
    vp_optim_kind kind;
    float lr;            /* AdamW (MONAI Label): 1e-4; SGD (nnU-Net): 1e-2 */
    float weight_decay;  /* AdamW 1e-5; SGD 3e-5 */
    float beta1, beta2, eps; /* AdamW 0.9, 0.999, 1e-8 */
    float momentum;      /* SGD 0.99 */
    int nesterov;        /* SGD 1 */
    float poly_exponent; /* > 0: lr = lr0 * (1 - epoch / max_epochs)^exp (nnU-Net 0.9); 0: constant */
    float clip_norm;     /* > 0: clip_grad_norm_ to this (nnU-Net 12); 0: off */
} vp_optim_cfg;

vp_optim_cfg vp_optim_cfg_default(vp_optim_kind kind);

typedef struct vp_optim vp_optim;

/* An optimizer for n_params floats (the model's flat buffer). NULL after vp_error(). */
vp_optim *vp_optim_new(const vp_optim_cfg *cfg, int64_t n_params);
void vp_optim_free(vp_optim **o);

/* The learning rate for an epoch (poly decay when configured). */
float vp_optim_lr(const vp_optim *o, int epoch, int max_epochs);

/* One update of params from grads with learning rate lr (clipping first when configured);
 * *grad_norm (may be NULL) receives the total L2 norm before clipping. */
int vp_optim_step(vp_optim *o, float *params, float *grads, int64_t n, float lr, double *grad_norm);

/* The optimizer state as named flat arrays, for checkpoints (e.g. "adamw.exp_avg", "adamw.exp_avg_sq",
 * "sgd.momentum_buffer") plus the step counter; vp_optim_state_set restores them. */
int vp_optim_state_count(const vp_optim *o);
float *vp_optim_state(vp_optim *o, int i, const char **name, int64_t *n);
int64_t vp_optim_step_count(const vp_optim *o);
void vp_optim_set_step_count(vp_optim *o, int64_t steps);

#endif
