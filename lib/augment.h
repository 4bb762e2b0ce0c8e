/* augment.h - nnU-Net v2's training-time data augmentation of an image and its label, seeded.
 *
 * The chain and its defaults follow nnunetv2 nnUNetTrainer.get_training_transforms (3d_fullres,
 * batchgeneratorsv2), in its order:
 *   spatial      p 0.2 rotation (each axis uniform in [-30, 30] degrees), p 0.2 scaling (one factor
 *                in [0.7, 1.4] for all axes), elastic deformation p 0 (when drawn: per axis a
 *                field scale in [0, 0.2] of the patch size and a magnitude in [0, 0.2] voxels,
 *                augment_elastic.c; linear images only), then the patch is sampled: input index c = M (o - (P-1)/2) + centre for output voxel o, M = Rz Ry Rx S
 *                (create_affine_matrix_3d). Image: linear (order 1, what batchgeneratorsv2's
 *                grid_sample uses; order 3 on request, batchgenerators v1's choice), zeros outside
 *                (scipy mode 'grid-constant', cval 0). Label: nearest, 0 outside (nnU-Net pads -1
 *                and RemoveLabelTansform maps it to 0). Without rotation or scaling the patch is a
 *                plain crop (zero padded), as batchgeneratorsv2 does.
 *   noise        p 0.1: + N(0, sigma^2), sigma uniform in [0, 0.1] (one for all channels)
 *   blur         p 0.2: per channel p 0.5, per axis sigma uniform in [0.5, 1]; torch's separable
 *                kernel (size round_to_nearest_odd(6 sigma + 0.5)), reflect padding
 *   brightness   p 0.15: x *= m, m from BGContrast((0.75, 1.25)) per channel
 *   contrast     p 0.15: (x - mean) * m + mean clipped to the channel's [min, max], m as brightness
 *   low-res      p 0.25: per channel p 0.5, scale uniform in [0.5, 1]: nearest-exact down to
 *                round(n * scale), trilinear back (torch.nn.functional.interpolate)
 *   gamma        p 0.1 on the inverted image, then p 0.3 on the image: gamma from
 *                BGContrast((0.7, 1.5)), range and mean/std retained
 *   mirror       each axis flipped with p 0.5
 * BGContrast(lo, hi): with probability 0.5 uniform in [lo, 1), else uniform in [1, hi).
 *
 * Random numbers: splitmix64. Each case gets a key from the seed and its id (FNV-1a), each transform
 * its own stream derived from that key, so a case's draws depend on nothing but (seed, id): not on
 * the order of cases, the thread count, or which other transforms are enabled. The noise field is
 * counter-based (voxels 2j and 2j+1 take r cos t and r sin t, Box-Muller from outputs 2j+1 and 2j+2
 * of the stream seeded with the recorded noise key), so it is the same for any thread count.
 *
 * Ownership: vp_augment_case() replaces the image and label volumes of the case it is given (the old
 * ones are freed) and sets meta "augment"; the config and fixed parameters are the caller's.
 */
#ifndef VP_AUGMENT_H
#define VP_AUGMENT_H

#include <stdint.h>

#include "frame.h"

enum vp_aug_t {
    VP_AUG_ROTATION,
    VP_AUG_SCALING,
    VP_AUG_ELASTIC,
    VP_AUG_NOISE,
    VP_AUG_BLUR,
    VP_AUG_BRIGHTNESS,
    VP_AUG_CONTRAST,
    VP_AUG_LOWRES,
    VP_AUG_GAMMA_INV,
    VP_AUG_GAMMA,
    VP_AUG_FLIP, /* per axis */
    VP_AUG_N
};

#define VP_AUG_MAXCH 16 /* image channels */

/* Names as used in options (--p-NAME), --fixed keys and meta.augment.applied. */
extern const char *const vp_aug_names[VP_AUG_N];

struct vp_aug_fixed {
    int set[VP_AUG_N];     /* this transform is applied with the values below */
    double rotation[3];    /* radians about axes 0, 1, 2 */
    double scale[3];
    double elastic_scale[3], elastic_mag[3]; /* field sigma as a fraction of the patch size; voxels */
    int flip[3];
    double noise;          /* sigma */
    double blur[3];        /* sigma per axis */
    double brightness, contrast, lowres, gamma_inv, gamma;
    int has_centre;
    double centre[3];      /* patch centre in input voxel indices */
};

struct vp_aug_config {
    uint64_t seed;
    double p[VP_AUG_N];      /* probability of each transform (flip: per axis) */
    double p_blur_channel;   /* 0.5 */
    double p_lowres_channel; /* 0.5 */
    double rot_max;          /* radians: pi / 6 */
    int order;               /* image interpolation: 1 or 3 */
    int spatial, intensity;  /* which groups run */
    int has_patch;
    uint64_t patch[3];
    const struct vp_aug_fixed *fixed; /* when set: exactly its transforms, with its values */
};

/* nnU-Net v2's defaults (probabilities above, order 1, both groups, whole volume, seed 0). */
void vp_aug_config_default(struct vp_aug_config *cfg);

/* Parse a --fixed specification "key=v[,v,v];key=v..." with keys rotation (3 radians), scaling (1 or
 * 3 factors), elastic_scale and elastic_mag (1 or 3 each, both needed), flip (3 of 0/1), noise, blur (1 or 3 sigmas), brightness, contrast, lowres, gamma_inv,
 * gamma, centre (3 voxel indices). Every value must be finite (scaling, blur, lowres, gamma > 0).
 * Returns 0, or -1 after printing "--fixed: ..." (the caller exits 2). */
int vp_aug_parse_fixed(const char *spec, struct vp_aug_fixed *f);

/* Augment one case: the volume named image (required; any dtype, up to VP_AUG_MAXCH channels) and,
 * when present, label (integer dtype, the image's dims and affine). label_required: a missing label
 * is an error rather than an image-only case. The outputs carry the affine of the sampled grid
 * (A_in times the patch transform), so they stay registered in world space. The image becomes f32
 * unless nothing at all was applied (then both volumes are left exactly as they were). Returns 0, or
 * VP_ERR_DATA after printing "case 'ID': ...". */
int vp_augment_case(vp_case *c, const char *image, const char *label, int label_required,
                    const struct vp_aug_config *cfg);

/* ---- pieces, for tests and the bench (augment_intensity.c) ----
 * Each works in place on one channel x of n[0]*n[1]*n[2] floats, x fastest, on vp_threads threads;
 * the result does not depend on the thread count. */
void vp_aug_noise(float *x, uint64_t nvox, double sigma, uint64_t key);
void vp_aug_blur(float *x, const uint64_t n[3], const double sigma[3]);
void vp_aug_brightness(float *x, uint64_t nvox, double m);
void vp_aug_contrast(float *x, uint64_t nvox, double m);
void vp_aug_lowres(float *x, const uint64_t n[3], double scale);
void vp_aug_gamma(float *x, uint64_t nvox, double gamma, int invert);

/* Elastic deformation (augment_elastic.c). The displacement field of a patch of n voxels: 3
 * components of n[0]*n[1]*n[2] doubles each (f, component-major), as described there. */
void vp_aug_elastic_field(double *f, const uint64_t n[3], const double sigma[3], const double mag[3], uint64_t key);
/* Sample `in` at input index m (o + f(o)) + t for each output voxel o of a patch of p voxels: images
 * linearly into f32, labels by nearest neighbour (dtype kept); 0 outside. The affine is copied from
 * `in` (the caller sets it). */
vp_vol *vp_aug_warp(const vp_vol *in, const uint64_t p[3], const double m[3][4], const double *field, int is_label);

/* splitmix64: the finaliser, and uniform [0, 1) / standard normal from a stream state. */
uint64_t vp_aug_mix(uint64_t z);
double vp_aug_uniform(uint64_t *state);
double vp_aug_normal_at(uint64_t key, uint64_t i); /* the i-th value of a counter-based N(0, 1) field */
void vp_aug_normal_pair(uint64_t key, uint64_t j, double out[2]); /* values 2j and 2j+1 */
void vp_aug_normal_fill(double *dst, uint64_t key, uint64_t first, uint64_t n); /* values first.. */

#endif
