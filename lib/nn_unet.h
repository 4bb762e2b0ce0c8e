/* nn_unet.h - nnU-Net v2's PlainConvUNet and ResidualEncoderUNet (dynamic_network_architectures)
 * forward pass. The residual encoder (ResEnc M/L/XL presets) is in nn_resenc.h; the decoder and
 * everything else are shared.
 *
 * Ownership: vp_unet_load() returns a model that owns its configuration and every weight tensor;
 * vp_unet_free() releases them. vp_unet_forward() allocates its activations itself and frees each
 * one as soon as the network no longer needs it (an encoder skip lives until its decoder stage).
 *
 * Architecture (conv_op Conv3d, conv_bias True, InstanceNorm3d(eps, affine) and LeakyReLU(slope),
 * nonlin_first False, pool 'conv', no dropout at inference):
 *   encoder stage s: n_conv[s] x (conv k_s, stride (first conv only) s_s, padding (k-1)/2 -> norm -> lrelu)
 *   decoder stage s (s = 0 is the lowest): transposed conv (kernel = stride = the encoder stride
 *   below), concat with the encoder skip (upsampled first), n_conv_dec[s] x (conv -> norm -> lrelu)
 *   with the kernel of the skip's stage; the last stage goes through seg_layers[n_stages - 2]
 *   (1x1x1 conv with bias) to the logits. The other seg_layers (deep supervision) are not used.
 * Weights under the state_dict names of PlainConvUNet:
 *   encoder.stages.S.0.convs.C.conv.{weight,bias}, encoder.stages.S.0.convs.C.norm.{weight,bias}
 *   decoder.transpconvs.S.{weight,bias}, decoder.stages.S.convs.C.{conv,norm}.{weight,bias}
 *   decoder.seg_layers.S.{weight,bias}
 * (the aliases .all_modules.0 / .all_modules.1 that PyTorch also writes for conv / norm are accepted).
 *
 * __metadata__ keys (strings; lists comma-separated, per-stage triples separated by ';'):
 *   architecture "PlainConvUNet" or "ResidualEncoderUNet" (then "n_blocks_per_stage" replaces
 *   "n_conv_per_stage"), input_channels, num_classes, n_stages, features_per_stage,
 *   kernel_sizes, strides, n_conv_per_stage, n_conv_per_stage_decoder, patch_size (d,h,w),
 *   optional: conv_bias (default 1), norm_eps (1e-5), nonlin_slope (0.01), axes ("zyx"),
 *   mirror_axes ("0,1,2"), spacing, normalization, labels (JSON, not read here).
 * The model's axes (d, h, w) are the volume's (z, y, x): nnU-Net's SimpleITK reader order.
 */
#ifndef VP_NN_UNET_H
#define VP_NN_UNET_H

#include "nn_backend.h"
#include "nn_safetensors.h"

#define VP_UNET_MAXSTAGE 10

typedef struct vp_unet_cfg {
    int in_ch, n_classes, n_stages;
    int features[VP_UNET_MAXSTAGE];
    int kernel[VP_UNET_MAXSTAGE][3];
    int stride[VP_UNET_MAXSTAGE][3];
    int n_conv[VP_UNET_MAXSTAGE];
    int n_conv_dec[VP_UNET_MAXSTAGE]; /* n_stages - 1 entries */
    int conv_bias;
    float norm_eps, slope;
    int resenc;         /* 1: ResidualEncoderUNet (n_conv[s] = residual blocks of stage s) */
    int patch[3];       /* d, h, w */
    int mirror_axes[3]; /* 1 when TTA may flip that axis (d, h, w) */
} vp_unet_cfg;

typedef struct vp_unet_conv {
    vp_tensor *w, *b, *gamma, *beta;
    int k[3], s[3];
} vp_unet_conv;

/* One BasicBlockD of the residual encoder (nn_resenc.h). */
typedef struct vp_unet_resblock {
    vp_unet_conv c1, c2; /* c2 has no nonlinearity of its own */
    vp_unet_conv proj;   /* skip 1x1x1 conv (no bias) + norm; proj.w NULL: none */
    int pool[3];         /* skip average pool kernel = stride; all 1: none */
} vp_unet_resblock;

typedef struct vp_unet {
    vp_unet_cfg cfg;
    vp_unet_conv stem;                      /* ResEnc only */
    vp_unet_resblock *res[VP_UNET_MAXSTAGE]; /* ResEnc: n_conv[s] blocks each (enc[] unused) */
    vp_unet_conv *enc[VP_UNET_MAXSTAGE]; /* n_conv[s] each */
    vp_unet_conv *dec[VP_UNET_MAXSTAGE]; /* n_conv_dec[s] each */
    vp_tensor *tw[VP_UNET_MAXSTAGE], *tb[VP_UNET_MAXSTAGE];
    vp_tensor *seg_w, *seg_b;
} vp_unet;

/* Read the architecture from st's __metadata__ into cfg; -1 after vp_error("WHERE: ...") naming the
 * missing or malformed key. where names the file in messages. */
int vp_unet_cfg_from_meta(const vp_safetensors *st, const char *where, vp_unet_cfg *cfg);

/* Build the model described by cfg from st's tensors; NULL after vp_error() naming the missing or
 * mis-shaped tensor. */
vp_unet *vp_unet_from_st(const vp_safetensors *st, const char *where, const vp_unet_cfg *cfg);

/* Open path, read the metadata and the weights; NULL after vp_error(). */
vp_unet *vp_unet_load(const char *path);

void vp_unet_free(vp_unet **m);

/* Load one ConvDropoutNormReLU (conv weight, conv bias when with_bias, norm gamma/beta) under
 * prefix ("....convs.C"; the .all_modules.0/1 aliases accepted) as a ci -> co conv with kernel k and
 * stride s into b; -1 after vp_error(). Shared with nn_resenc.c. */
int vp_unet_load_block(const vp_safetensors *st, const char *prefix, int with_bias, int ci, int co, const int k[3],
                       const int s[3], vp_unet_conv *b);

/* conv -> instance norm (-> leaky relu when act) on x: a new tensor, or NULL after vp_error(). */
vp_tensor *vp_unet_block_fwd(const vp_unet *m, const vp_nn_backend *be, const vp_unet_conv *b, const vp_tensor *x, int act);

/* Smallest multiple the input's (d, h, w) must be of: the product of the strides per axis. */
void vp_unet_divisor(const vp_unet_cfg *cfg, int out[3]);

/* logits y (N, n_classes, D, H, W) = net(x (N, in_ch, D, H, W)) on backend be; D, H, W multiples of
 * vp_unet_divisor. 0, or -1 after vp_error(). */
int vp_unet_forward(const vp_unet *m, const vp_nn_backend *be, const vp_tensor *x, vp_tensor *y);

#endif
