/* nn_predict_nnunet.h - nnU-Net v2's sliding-window prediction (nnUNetPredictor's
 * predict_sliding_window_return_logits) for PlainConvUNet models, and fold ensembles.
 *
 * Ownership: vp_nnunet_predict() returns a result the caller frees with vp_nnunet_result_free();
 * it holds the aggregated logits of the volume, in f16 (as nnU-Net keeps them) or f32.
 * vp_nnunet_predict_rows() keeps nothing: it hands each final row to a callback.
 *
 * What is reproduced, step by step as nnU-Net does it:
 *   - the image (C, D, H, W) is padded with zeros to at least the patch size, centred
 *     (acvl_utils pad_nd_image: below = diff / 2, above = the rest);
 *   - tile origins per axis from compute_steps_for_sliding_window (step 0.5 of the patch, the
 *     tiles spread evenly, np.round = round half to even); tiles visited d, then h, then w;
 *   - each tile's logits, with --tta averaged with the flipped predictions over every non-empty
 *     combination of the allowed mirror axes (itertools order), times the Gaussian importance map
 *     (compute_gaussian: sigma = patch / 8, scipy gaussian_filter of a centred delta, scaled to a
 *     maximum of 10, cast to the aggregation dtype, zeros replaced by the smallest non-zero value);
 *   - logits and weights summed over the tiles and divided. With half = 1 every sum and the
 *     division are rounded to f16 as PyTorch does on nnU-Net's torch.half buffers (the default,
 *     memory: 2 bytes per class and voxel); half = 0 keeps f32 (4 bytes).
 *   - several models (folds): their logits are summed in the aggregation dtype and divided by
 *     their count, as nnU-Net's predict_logits_from_preprocessed_data.
 * Memory: tiles are visited d-row by d-row, so once every tile starting at d-row s has run, the
 * rows before the next start get no more contributions and are final. Only a band of patch[0]
 * rows of the padded volume is aggregated (per model K x patch[0] x H x W values plus the weights);
 * each final row is divided, averaged over the models, cropped and handed to a callback
 * (vp_nnunet_predict_rows), then the band moves on. Every voxel sees the same operations in the
 * same order as with nnU-Net's full-size buffers, so the values are bit for bit the same;
 * vp_nnunet_predict() collects the rows into a full result (2 or 4 bytes x classes x voxels).
 * The image must already be preprocessed (intensity-normalised, at the model's spacing, in the
 * model's axis order); the caller does that.
 */
#ifndef VP_NN_PREDICT_NNUNET_H
#define VP_NN_PREDICT_NNUNET_H

#include <stdint.h>

#include "nn_unet.h"

typedef struct vp_nnunet_opts {
    double step; /* tile step as a fraction of the patch (nnU-Net: 0.5) */
    int tta;     /* 1: mirroring test-time augmentation over the model's allowed axes */
    int half;    /* 1: aggregate in f16 (nnU-Net), 0: f32 */
} vp_nnunet_opts;

typedef struct vp_nnunet_result {
    int n_classes;
    int64_t dims[3];   /* the input's (D, H, W) */
    int half;
    uint16_t *h;       /* (K, D, H, W) f16 bits when half */
    float *f;          /* (K, D, H, W) otherwise */
} vp_nnunet_result;

/* Tile origins along one axis (compute_steps_for_sliding_window); image >= tile. Returns the
 * count and writes at most max origins to out. */
int vp_nnunet_steps(int64_t image, int tile, double step, int64_t *out, int max);

/* The importance map (compute_gaussian, value_scaling_factor 10) for patch (d, h, w), as the
 * float values of the aggregation dtype (f16-rounded when half). out holds d*h*w floats. */
void vp_nnunet_gaussian(const int patch[3], int half, float *out);

/* Called once per final row d (0 <= d < D, ascending) of the aggregated logits with that row:
 * K x H x W values (class planes H*W apart, W fastest), f16 bits when half, else f32. 0 to go on,
 * -1 (after vp_error) to stop. */
typedef int (*vp_nnunet_emit_fn)(void *ectx, int64_t d, const void *row);

/* Predict image (1, C, D, H, W) with models[0..n) (same architecture and patch) in bounded memory,
 * every final row to emit. 0, or -1 after vp_error(). */
int vp_nnunet_predict_rows(vp_unet *const *models, int n, const vp_nn_backend *be, const vp_tensor *img,
                           const vp_nnunet_opts *o, vp_nnunet_emit_fn emit, void *ectx);

/* Predict image (1, C, D, H, W) with models[0..n) (same architecture and patch); NULL after
 * vp_error(). */
vp_nnunet_result *vp_nnunet_predict(vp_unet *const *models, int n, const vp_nn_backend *be, const vp_tensor *image,
                                    const vp_nnunet_opts *o);

/* Logit of class k at voxel i (0 <= i < D*H*W) as f32. */
float vp_nnunet_logit(const vp_nnunet_result *r, int k, int64_t i);

/* Argmax over classes per voxel (first of equal maxima) into out (D*H*W entries). */
void vp_nnunet_argmax(const vp_nnunet_result *r, int32_t *out);

void vp_nnunet_result_free(vp_nnunet_result **r);

#endif
