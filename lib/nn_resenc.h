/* nn_resenc.h - the residual encoder of nnU-Net v2's ResidualEncoderUNet (dynamic_network_architectures;
 * the ResEnc M / L / XL presets, nnUNetResEncUNet{M,L,XL}Plans), used by nn_unet.c.
 *
 * Ownership: the stem and the residual blocks belong to the vp_unet they are loaded into;
 * vp_resenc_free() releases them (vp_unet_free() calls it). Forward functions return new
 * activations the caller frees; inputs are left alone.
 *
 * Architecture (block BasicBlockD, ResNet-D; no stochastic depth, no squeeze-excitation):
 *   stem: one conv k_0, stride 1, in_ch -> features[0] -> norm -> lrelu   (encoder.stem.convs.0)
 *   encoder stage s: n_blocks[s] residual blocks (encoder.stages.S.blocks.B); block 0 takes the
 *   previous stage's features (the stem's for s = 0) with the stage's stride, the others stride 1:
 *     y = lrelu(norm(conv2(lrelu(norm(conv1(x))))) + skip(x)),  conv1 stride s_s, conv2 stride 1,
 *     both with the stage's kernel; skip(x) = x, or when strided an average pool (kernel = stride)
 *     and, when the channel count changes, a 1x1x1 conv without bias + norm (skip.{0,1} or skip.0).
 *   The decoder is PlainConvUNet's (nn_unet.c), reading the skips of the residual stages.
 * Weights: encoder.stem.convs.0.{conv,norm}.*, encoder.stages.S.blocks.B.conv{1,2}.{conv,norm}.*,
 * encoder.stages.S.blocks.B.skip.I.{conv.weight,norm.*} (the .all_modules.N aliases accepted).
 */
#ifndef VP_NN_RESENC_H
#define VP_NN_RESENC_H

#include "nn_unet.h"

/* Load the stem and the residual encoder stages of m (m->cfg.resenc set) from st; -1 after
 * vp_error() naming the missing or mis-shaped tensor. */
int vp_resenc_load(const vp_safetensors *st, vp_unet *m);

/* Free what vp_resenc_load() loaded (safe on a partly loaded model). */
void vp_resenc_free(vp_unet *m);

/* The stem on x: a new tensor, or NULL after vp_error(). */
vp_tensor *vp_resenc_stem(const vp_unet *m, const vp_nn_backend *be, const vp_tensor *x);

/* Encoder stage s on x: a new tensor, or NULL after vp_error(). */
vp_tensor *vp_resenc_stage(const vp_unet *m, const vp_nn_backend *be, int s, const vp_tensor *x);

/* Average pooling with kernel = stride = k (no padding; each output the mean of its k0*k1*k2
 * inputs, summed d, h, w in order and divided, as torch's avg_pool3d): y (N, C, D/k0, H/k1, W/k2)
 * from x (N, C, D, H, W), dims multiples of k. The plain reference (nothing faster is needed: it
 * only runs on a block's skip path). 0, or -1 after vp_error(). */
int vp_avgpool3d(const vp_tensor *x, const int k[3], vp_tensor *y);

#endif
