/* nn_segresnet.h - MONAI's SegResNet (monai.networks.nets.SegResNet, 3-D) for inference.
 *
 * Ownership: vp_segresnet_load() returns a model that owns its weight tensors (and nothing else; the
 * safetensors handle may be closed afterwards); vp_segresnet_free() releases it. The forward pass
 * returns a new tensor the caller frees with vp_tensor_free(); every intermediate activation is
 * freed as soon as the graph no longer needs it (the encoder's level outputs live until the decoder
 * level that adds them).
 *
 * Architecture, exactly as MONAI builds it (spatial_dims 3, act ReLU, norm GroupNorm(G, eps 1e-5,
 * affine), use_conv_final true, dropout ignored):
 *   x = convInit(x)                                   3x3x3, no bias
 *   level i (0..L-1): [i > 0: 3x3x3 stride-2 conv C/2 -> C, no bias] then blocks_down[i] ResBlocks
 *     ResBlock(x) = conv2(relu(norm2(conv1(relu(norm1(x)))))) + x, convs 3x3x3 no bias
 *   up j (0..L-2): x = upsample(conv1x1(x)) + level output (L-2-j); then blocks_up[j] ResBlocks
 *     upsample nontrainable: trilinear x2, align_corners False; deconv: ConvTranspose3d k2 s2 + bias
 *   y = conv1x1(relu(GroupNorm(x))) + bias              (conv_final)
 * with C = init_filters * 2^i at level i. Each spatial size of the input must be divisible by
 * 2^(L-1) (MONAI fails on the skip addition otherwise; here a clear error).
 *
 * Model file (safetensors) __metadata__ keys, all strings:
 *   voxpipe.arch           "segresnet" (required)
 *   voxpipe.in_channels    e.g. "1"            voxpipe.out_channels  e.g. "26"
 *   voxpipe.init_filters   e.g. "32"           voxpipe.norm_groups   default "8"
 *   voxpipe.blocks_down    default "1,2,2,4"   voxpipe.blocks_up     default "1,1,1" ("" for none)
 *   voxpipe.upsample_mode  "nontrainable" (default) or "deconv"
 * and, for the inference programs (not read here): voxpipe.roi "96,96,96", voxpipe.spacing
 * "1.5,1.5,1.5", voxpipe.labels '{"1": "C1", ...}' (JSON). in/out_channels and init_filters may be
 * omitted; they are then taken from convInit's and conv_final's tensor shapes. Tensors are MONAI's
 * state_dict names and shapes (f32, f16 or bf16); a missing tensor or a shape that disagrees with
 * the metadata is an error naming the tensor and both shapes.
 */
#ifndef VP_NN_SEGRESNET_H
#define VP_NN_SEGRESNET_H

#include "nn_backend.h"
#include "nn_safetensors.h"

#define VP_SEGRESNET_MAXLEVELS 8

typedef struct vp_segresnet_cfg {
    int in_channels, out_channels, init_filters, norm_groups;
    int n_down, blocks_down[VP_SEGRESNET_MAXLEVELS];
    int n_up, blocks_up[VP_SEGRESNET_MAXLEVELS];
    int deconv; /* 0: nontrainable (trilinear), 1: deconv */
    float eps;  /* GroupNorm eps, 1e-5 */
} vp_segresnet_cfg;

typedef struct vp_segresnet vp_segresnet;

/* Read the architecture from st's metadata into *cfg. -1 after vp_error("WHERE: ...") when a key
 * is missing, malformed or unsupported (where names the file for messages). */
int vp_segresnet_cfg_read(const vp_safetensors *st, const char *where, vp_segresnet_cfg *cfg);

/* Build the model of st's metadata and load every weight; NULL after vp_error() naming the file
 * and the tensor on a missing tensor, wrong shape or unsupported dtype. Extra tensors are an error
 * too (they mean the file is some other architecture). */
vp_segresnet *vp_segresnet_load(const vp_safetensors *st, const char *where);

/* The configuration the model was built with. */
const vp_segresnet_cfg *vp_segresnet_config(const vp_segresnet *m);

/* Smallest multiple every spatial size must be divisible by: 2^(levels - 1). */
int vp_segresnet_divisor(const vp_segresnet *m);

/* Forward x (N, in_channels, D, H, W) to *y (N, out_channels, D, H, W), a new tensor, on backend
 * be. 0, or -1 after vp_error() (bad input shape, an op failing). x is not modified. */
int vp_segresnet_forward(const vp_segresnet *m, const vp_nn_backend *be, const vp_tensor *x, vp_tensor **y);

/* Multiply-accumulates of one forward pass on a D x H x W input (for GFLOP/s reports). */
double vp_segresnet_macs(const vp_segresnet *m, int64_t d, int64_t h, int64_t w);

void vp_segresnet_free(vp_segresnet **m);

#endif
