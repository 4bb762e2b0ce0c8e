/* nn_infer_cuda_unet.h - nnU-Net v2 inference (PlainConvUNet and ResidualEncoderUNet, nn_unet.h)
 * with everything on a CUDA device, as infer-unet runs it with --backend cuda[:N[:MATH]]:
 *   - the device-resident network (lib/cuda/nn_cuda_unet.cu): the weights of a loaded vp_unet
 *     uploaded once, activations from the device's stream-ordered pool in NCDHW or NDHWC,
 *     conv (+ bias) then InstanceNorm fused with LeakyReLU (vp_cuda_norm_act), transposed convs,
 *     skip concatenation, the residual blocks' average-pool / 1x1x1 projection skips, the seg head;
 *   - nnU-Net's sliding window on the device (lib/cuda/nn_cuda_unet_sw.cu): the image uploaded
 *     once, tiles cut on the device at nnU-Net's origins (zero padding read through), mirroring TTA
 *     (flipped tiles, flipped predictions summed in nnU-Net's order, divided), several models
 *     (folds), the Gaussian importance map, f16 (nnU-Net's torch.half buffers, every sum rounded
 *     as PyTorch does) or f32 aggregation in a ring band of patch-depth rows per model (device
 *     memory follows the tile, not the volume), the final rows divided and averaged over the
 *     models exactly as nn_predict_nnunet.c does (its CPU twin), the argmax on the device.
 *     Only the labels come back, or, when the caller asks for them (the image was resampled and
 *     the logits must go back through nnU-Net's per-class resampling), the averaged logits.
 *   - the tiled fallback: when the case does not fit (the whole image and labels on the device
 *     plus an estimate of one tile batch's buffers and activations exceed what is free, or the
 *     budget of VP_CUDA_MEM_LIMIT_MIB), the image stays on the host, the slab of patch-depth rows
 *     one d-row of tiles reads is uploaded at each new origin, and the labels come back band by
 *     band (the logits always do): the same tiles and sums, so labels and logits are bit for bit
 *     the whole-volume path's. Only when one batch of tiles itself does not fit does a case fail
 *     (out of device memory).
 * In a build without CUDA the functions fail with "built without CUDA" (the stubs in
 * nn_infer_cuda_unet.c), and the caller exits VP_ERR_DEVICE.
 *
 * Ownership: vp_cuda_unet_upload returns a device model that owns its device weights (the host
 * model stays the caller's); vp_cuda_unet_free releases it (NULL-safe, sets *m to NULL).
 * vp_infer_cuda_unet_open returns a handle owning the device models of every fold;
 * vp_infer_cuda_unet_free releases it. vp_cuda_nnunet_predict / vp_infer_cuda_unet_run free every
 * device buffer they allocated before returning, on success and on failure (out of device
 * memory included). The caller owns images, labels and logits.
 */
#ifndef VP_NN_INFER_CUDA_UNET_H
#define VP_NN_INFER_CUDA_UNET_H

#include "nn_cuda.h"
#include "nn_predict_nnunet.h"
#include "nn_unet.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vp_cuda_unet vp_cuda_unet;

/* The network of the loaded (and so validated) host model m on be's device, activations in
 * layout (VP_CUDA_NCDHW or VP_CUDA_NDHWC). NULL after vp_error() (out of device memory: "cannot
 * put the model on the device" after the backend's message). */
vp_cuda_unet *vp_cuda_unet_upload(const vp_nn_backend *be, const vp_unet *m, int layout);

/* logits y (N, n_classes, D, H, W) = the network on x (N, in_ch, D, H, W), both device tensors of
 * the model's device fitting its layout (one-channel tensors fit both), D, H, W multiples of
 * vp_unet_divisor; y allocated by the caller. Queued on the backend's stream; the CPU twin is
 * vp_unet_forward. 0 or -1 after vp_error(). */
int vp_cuda_unet_forward(const vp_cuda_unet *m, const vp_tensor *x, vp_tensor *y);

void vp_cuda_unet_free(vp_cuda_unet **m);

/* The backend and the activation layout of a device model. */
const vp_nn_backend *vp_cuda_unet_backend(const vp_cuda_unet *m);
int vp_cuda_unet_layout(const vp_cuda_unet *m);

/* nnU-Net's prediction (vp_nnunet_predict_rows, same tiles, order and sums) of the host image
 * img (1, C, D, H, W) with the n device models ms (same configuration cfg), `batch` tiles (1..64)
 * per forward pass. mode: VP_CUDA_SW_WHOLE (the image and labels on the device), VP_CUDA_SW_TILED
 * (a slab of the image and a band of labels) or VP_CUDA_SW_AUTO (tiled when the whole image and
 * labels, (C + 1) x D*H*W x 4 bytes, plus the estimate for one tile batch exceed the device's
 * free memory, the stream-ordered pool's unused part counted free, within VP_CUDA_MEM_LIMIT_MIB
 * when set; -v says so); *took_tiled (when not NULL) gets 1 when the tiled path ran. labels
 * (host, D*H*W, w fastest), when not NULL, receives the argmax of the averaged logits (first of
 * equal maxima); logits (host, K*D*H*W values, f16 bits when o->half, else f32), when not NULL,
 * the averaged logits; both the same bits on either path. 0, or -1 after vp_error() (out of
 * device memory names the buffer). */
int vp_cuda_nnunet_predict(vp_cuda_unet *const *ms, int n, const vp_unet_cfg *cfg, const vp_tensor *img,
                           const vp_nnunet_opts *o, int batch, int mode, int *took_tiled, int32_t *labels, void *logits);

/* ---- what infer-unet calls */
typedef struct vp_infer_cuda_unet vp_infer_cuda_unet;

/* The n host models (loaded by vp_unet_load, same patch, classes, channels) on be's device, in
 * the layout vp_infer_cuda_layout(be) picks (NCDHW for f32, NDHWC for tf32/f16/bf16,
 * VP_CUDA_LAYOUT overrides); batch tiles per forward pass (1..64). NULL after vp_error(): not a
 * CUDA backend, a batch out of range, models that differ, out of device memory for the weights. */
vp_infer_cuda_unet *vp_infer_cuda_unet_open(const vp_nn_backend *be, vp_unet *const *models, int n, int batch);

/* "device-resident U-Net (PlainConvUNet, 2 folds), NCDHW activations, f32 math, 1 tile per pass" */
const char *vp_infer_cuda_unet_describe(const vp_infer_cuda_unet *ic, char *buf, size_t len);

/* Predict img (1, C, D, H, W) as vp_cuda_nnunet_predict in mode VP_CUDA_SW_AUTO (the tiled path
 * when the case does not fit): labels (D*H*W int32) and/or logits. */
int vp_infer_cuda_unet_run(vp_infer_cuda_unet *ic, const vp_tensor *img, const vp_nnunet_opts *o, int32_t *labels,
                           void *logits);

/* 1 when the last vp_infer_cuda_unet_run took the tiled path (the case did not fit), else 0. */
int vp_infer_cuda_unet_tiled(const vp_infer_cuda_unet *ic);

/* Device memory held at the peak since the last call (the measurement restarts). */
size_t vp_infer_cuda_unet_peak_bytes(const vp_infer_cuda_unet *ic);

void vp_infer_cuda_unet_free(vp_infer_cuda_unet **ic);

#ifdef __cplusplus
}
#endif

#endif
