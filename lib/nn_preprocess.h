/* nn_preprocess.h - an image onto the model's grid and intensity scale, as MONAI (MONAI Label's
 * segmentation app) or nnU-Net v2 prepare it, and the network's output back onto the image's grid.
 *
 * Ownership: vp_nn_preprocess() returns a new f32 volume the caller frees (vp_vol_free); the back
 * functions return new volumes too. A vp_nn_prep is a plain record (no memory of its own).
 *
 * MONAI style (infer-ressegnet), MONAI Label's pre-transforms in this order:
 *   Spacingd(pixdim = voxpipe.spacing, mode bilinear, padding border): lib/resample order 1, mode
 *     nearest, onto vp_grid_for_spacing()'s grid (MONAI's: first voxel centre kept);
 *   ScaleIntensityRanged(a_min, a_max, b_min, b_max, clip) (or the other voxpipe.norm schemes).
 *   Back: the argmax label resampled nearest (order 0, scipy's rounding) onto the input grid through
 *   the affines, as MONAI's SpatialResample / Invertd with mode 0 does (MONAI Label's Restored
 *   instead resizes by shape with torch's 'nearest', half a voxel off); probabilities, when asked
 *   for, linearly (order 1, border) per channel.
 * nnU-Net style (infer-unet), nnU-Net v2's DefaultPreprocessor and export:
 *   normalisation first, on the input grid (CTNormalization: clip to percentile_00_5 ..
 *     percentile_99_5, - mean, / max(std, 1e-8); ZScoreNormalization over the image);
 *   resampling to the plans' spacing: new shape round(n * old / new spacing) per axis, skimage
 *     resize's grid (input index (o + 0.5) * n_in / n_out - 0.5), cubic B-spline (order 3,
 *     edge mode) as resample_data_or_seg_to_shape; when either spacing is anisotropic (max/min > 3)
 *     with a single coarsest axis, that axis is resampled separately with order 0 (order_z 0);
 *   back: the logits of each class resampled linearly (order 1, order 0 on a separate axis) onto the
 *     input grid and the argmax taken there (nnU-Net's convert_predicted_logits_to_segmentation_
 *     with_correct_shape), one class at a time so only one class is held at the input's size.
 *   Not reproduced: crop_to_nonzero (a CT has no zero border in practice; nnU-Net would set labels
 *   outside the non-zero box to 0) and transpositions (the converter refuses them).
 * An image already on the model's spacing (within 1e-6 relative per axis) is not resampled.
 */
#ifndef VP_NN_PREPROCESS_H
#define VP_NN_PREPROCESS_H

#include "nn_meta.h"
#include "resample.h"
#include "volume.h"

enum vp_nn_style { VP_NN_STYLE_MONAI, VP_NN_STYLE_NNUNET };

typedef struct vp_nn_prep {
    enum vp_nn_style style;
    int resampled;        /* the image was resampled: outputs must go back */
    struct vp_grid in;    /* the input image's grid */
    struct vp_grid model; /* the grid the network saw */
    int sep_axis;         /* nnU-Net: volume axis resampled separately with order 0, or -1 */
} vp_nn_prep;

/* Preprocess one channel image v (any dtype) as m says, in style: a new f32 volume on the model
 * grid; *p records the grids. NULL after vp_error("<ctx>: ...") (a resampling failure). */
vp_vol *vp_nn_preprocess(const vp_vol *v, const vp_nn_meta *m, enum vp_nn_style style, vp_nn_prep *p, const char *ctx);

/* An integer label volume on the model grid to the input grid, nearest neighbour (a copy when
 * nothing was resampled). NULL after vp_error(). */
vp_vol *vp_nn_labels_back(const vp_vol *lab, const vp_nn_prep *p, const char *ctx);

/* A (multi-channel) f16/f32 volume on the model grid to the input grid, linear per channel as the
 * style does (nnU-Net: order 0 along the separate axis). NULL after vp_error(). */
vp_vol *vp_nn_linear_back(const vp_vol *v, const vp_nn_prep *p, const char *ctx);

/* nnU-Net's export: argmax over K class scores on the model grid (channel k at scores + k * nv,
 * f16 bits when half, else f32; nv = voxels of the model grid, x fastest) after resampling each
 * class linearly onto the input grid; the first of equal maxima wins. Returns a new u8 (u16 above
 * 256 classes) volume on the input grid, or NULL after vp_error(). */
vp_vol *vp_nn_argmax_back(const void *scores, int half, int K, const vp_nn_prep *p, const char *ctx);

#endif
