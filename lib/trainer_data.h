/* trainer_data.h - the trainers' data side: a seeded generator, the bounded case cache, patch
 * sampling as nnU-Net's data loader, and Dice for validation.
 *
 * Ownership: vp_tcase_from_case() returns a training case that owns its id, image and label
 * (copies; the frame may be freed); vp_tcase_free() releases it. A vp_tcache owns the cases put
 * into it (vp_tcache_insert takes ownership, evicted cases are freed); vp_tcache_free() releases
 * the cache and every case. The sampler writes into buffers the caller allocated.
 *
 * Images are expected preprocessed upstream (resample to the model spacing, normalize): the
 * cache keeps them as given, i16 (u8/i16 input) or f32 (any other dtype), with a u8 label.
 */
#ifndef VP_TRAINER_DATA_H
#define VP_TRAINER_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"

/* ---- xoshiro256** seeded through splitmix64; the state is 4 words, saved in checkpoints. */
typedef struct vp_rng {
    uint64_t s[4];
} vp_rng;

void vp_rng_seed(vp_rng *r, uint64_t seed);
uint64_t vp_rng_next(vp_rng *r);
/* Uniform integer in [0, n) (n >= 1), by Lemire's multiply-shift (bias below 2^-32 for small n). */
uint64_t vp_rng_below(vp_rng *r, uint64_t n);
/* Uniform double in [0, 1). */
double vp_rng_unit(vp_rng *r);
/* The state as 64 hex digits and back (0, or -1 on a malformed string). */
void vp_rng_to_hex(const vp_rng *r, char out[65]);
int vp_rng_from_hex(vp_rng *r, const char *hex);

/* ---- one training case as the cache keeps it */
typedef struct vp_tcase {
    char *id;
    int64_t nx, ny, nz, nc; /* volume order: x fastest; nc image channels */
    int img_f32;            /* 1: img is float, 0: int16_t */
    void *img;              /* nc * nz * ny * nx, channel slowest */
    uint8_t *lab;           /* nz * ny * nx */
    double affine[16];
    int64_t count[256];     /* voxels per label value */
    size_t bytes;           /* memory held by img + lab */
} vp_tcase;

/* A training case from a frame: volumes image_name and label_name, which must share dims and
 * affine (within 1e-4 mm); the label must be an integer volume with values in [0, classes)
 * (classes <= 256), the image must hold no NaN. 0 with *out set, or VP_ERR_DATA after vp_error()
 * naming where (the input), the case and the volume. */
int vp_tcase_from_case(const vp_case *c, const char *image_name, const char *label_name, int classes,
                       const char *where, vp_tcase **out);
void vp_tcase_free(vp_tcase **t);

/* 1 when case id falls into the validation split of fraction frac (a hash of the id, so the split
 * does not depend on the order or the number of cases). */
int vp_tcase_is_val(const char *id, double frac);

/* ---- the cache: cases in arrival order; when their bytes exceed the budget the oldest go first
 * (first in, first out, as MONAI's SmartCacheDataset replaces its oldest items). The newest case
 * always stays, even alone over the budget. */
typedef struct vp_tcache {
    vp_tcase **c;
    int n, cap;
    size_t bytes, budget;
    uint64_t inserted, evicted;
} vp_tcache;

void vp_tcache_init(vp_tcache *k, size_t budget_bytes);
/* Take ownership of t; returns how many old cases were evicted to make room. */
int vp_tcache_insert(vp_tcache *k, vp_tcase *t);
void vp_tcache_free(vp_tcache *k);

/* ---- patch sampling as nnU-Net's nnUNetDataLoader3D */
enum vp_axes { VP_AXES_XYZ, VP_AXES_ZYX }; /* network (d, h, w) = volume (x, y, z) or (z, y, x) */

typedef struct vp_sampler {
    int patch[3];   /* network order (d, h, w) */
    int batch;      /* global batch size */
    double fg_prob; /* the last round(batch * fg_prob) items are forced to contain foreground */
    enum vp_axes axes;
} vp_sampler;

/* 1 when batch item b (of s->batch) is forced to hold foreground: b >= round(batch * (1 - fg_prob)),
 * rounding half to even as Python (nnU-Net's _oversample_last_XX_percent). */
int vp_sampler_force_fg(const vp_sampler *s, int b);

/* nnU-Net's crop bounds on one axis of size dim for a patch of size patch (nnUNetDataLoader.get_bbox):
 * the case is padded on both sides to the patch when smaller; a random crop starts uniformly in
 * [lb, ub]; a crop forced to hold the foreground voxel starts at max(lb, voxel - patch / 2). */
void vp_sampler_bounds(int64_t dim, int64_t patch, int64_t *lb, int64_t *ub);
int64_t vp_sampler_fg_start(int64_t voxel, int64_t patch, int64_t lb);

/* Draw one global batch from the cache with r: per item a case (uniform), then a crop start (a
 * random foreground voxel of a random class present in the case centred in the patch for forced
 * items, else uniform as nnU-Net, with the patch padded when the case is smaller); the random
 * numbers drawn do not depend on b0, b1. Only items [b0, b1) are written: x (b1-b0, nc, d, h, w)
 * f32 (outside the case 0) and y (b1-b0, d, h, w) class indices (outside 0). Cases must share nc. */
void vp_sampler_draw(const vp_sampler *s, const vp_tcache *k, vp_rng *r, int b0, int b1, float *x, int32_t *y);

/* Crop of case t starting at volume coordinates start[3] (x, y, z; may be negative or run past
 * the end: zero padding) of network size s->patch into x (nc, d, h, w) and y (d, h, w). */
void vp_sampler_extract(const vp_sampler *s, const vp_tcase *t, const int64_t start[3], float *x, int32_t *y);

/* The image of t as a network tensor buffer (nc, d, h, w) in network axis order for a whole-case
 * forward: an axis shorter than patch[a] is padded with zeros to it, (patch - n) / 2 before, as
 * MONAI's sliding window pads; a longer one is padded at its end to a multiple of div[a]. dims[3]
 * receives (d, h, w) and off[3] the case coordinate of the tensor's first voxel (<= 0). */
float *vp_tcase_tensor(const vp_tcase *t, enum vp_axes axes, const int div[3], const int patch[3], int64_t dims[3],
                       int64_t off[3]);

/* Per-class overlap of a prediction with t's label: pred is in network order over dims pdims with
 * offset off as vp_tcase_tensor laid it out; inter[c], psum[c], gsum[c] are accumulated for c in
 * [0, classes). */
void vp_tcase_overlap(const vp_tcase *t, enum vp_axes axes, const int32_t *pred, const int64_t pdims[3],
                      const int64_t off[3], int classes, int64_t *inter, int64_t *psum, int64_t *gsum);

#endif
