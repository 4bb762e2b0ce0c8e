/* nn_meta.h - what a model file's __metadata__ says about the data around the network: the target
 * spacing, the intensity normalisation and the label names (docs/MODELS.md lists every key).
 *
 * Ownership: vp_nn_meta_read() fills a caller's struct; the label names it allocates are released
 * by vp_nn_meta_free(). The safetensors handle may be closed afterwards.
 *
 * Two key sets are read; the voxpipe.* keys win where both are present:
 *   voxpipe.* (tools/convert_monai.py, SegResNet):
 *     voxpipe.spacing  "X,Y,Z" mm in the volume's voxel order (MONAI's, as Spacingd pixdim)
 *     voxpipe.norm     "range" (MONAI ScaleIntensityRange: voxpipe.a_min, a_max, b_min, b_max,
 *                      voxpipe.clip "1"/"0", default 1), "ct" (nnU-Net CTNormalization with
 *                      voxpipe.ct_lo, ct_hi, ct_mean, ct_std), "zscore" (per image), "none"
 *     voxpipe.labels   JSON object {"1": "name", ...}
 *   nnU-Net (tools/convert_nnunet.py, PlainConvUNet):
 *     spacing          "D,H,W" in the model's axis order; with axes "zyx" (the only one accepted)
 *                      that is (z, y, x) of the volume, reversed here
 *     normalization    JSON list of nnU-Net scheme names per input channel: CTNormalization (with
 *                      intensity_properties {"0": {"mean", "std", "percentile_00_5",
 *                      "percentile_99_5"}}), ZScoreNormalization (per image, no mask),
 *                      NoNormalization
 *     labels           JSON object {"0": "background", "1": "liver", ...}
 * Only single-channel normalisation is supported (one entry); anything else is an error.
 */
#ifndef VP_NN_META_H
#define VP_NN_META_H

#include <msgpack.h>

#include "labels.h"
#include "nn_safetensors.h"

enum vp_nn_norm { VP_NN_NORM_NONE, VP_NN_NORM_RANGE, VP_NN_NORM_CT, VP_NN_NORM_ZSCORE };

typedef struct vp_nn_meta {
    int has_spacing;
    double spacing[3]; /* mm, in the volume's voxel order (x, y, z) */
    enum vp_nn_norm norm;
    int has_norm;                      /* the file says how to normalise (else norm = NONE) */
    double a_min, a_max, b_min, b_max; /* RANGE */
    int clip;                          /* RANGE: clip to b_min..b_max */
    double lo, hi, mean, std;          /* CT */
    int nlabels;
    vp_label_name *labels; /* sorted by id */
} vp_nn_meta;

/* Read the keys above from st into *m (zeroed first). Missing keys leave their part unset (no
 * spacing, no normalisation, no labels); malformed or unsupported values are an error naming the
 * key: -1 after vp_error("WHERE: metadata KEY: why"). */
int vp_nn_meta_read(const vp_safetensors *st, const char *where, vp_nn_meta *m);

void vp_nn_meta_free(vp_nn_meta *m);

/* Pack the label names as voxpipe stores them in meta "labels": {"1": "name", ...}, ids ascending. */
void vp_nn_meta_pack_labels(const vp_nn_meta *m, msgpack_packer *pk);
/* Set the case's meta "labels" to the model's label names (nothing when the model has none). */
struct vp_case;
void vp_nn_meta_set_case_labels(struct vp_case *cs, const vp_nn_meta *m);

/* A one-line description of the preprocessing the metadata asks for ("spacing 1.5,1.5,1.5 mm,
 * ScaleIntensityRange -175..250 -> 0..1 clip"), for -v logs. */
void vp_nn_meta_describe(const vp_nn_meta *m, char *buf, size_t n);

#endif
