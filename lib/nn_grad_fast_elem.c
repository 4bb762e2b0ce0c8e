/* nn_grad_fast_elem.c - the CPU backward ops other than the convolutions and the norm (see
 * nn_grad_fast_elem.h; the norm is in nn_grad_fast_norm.c). */
#include "nn_grad.h"
#include "nn_grad_fast_elem.h"
#include "nn_isa.h"
#include "nn_simd.h"
#include "parallel.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>


/* ---- element-wise: parallel over fixed chunks, the reference's arithmetic per element; 16 at a
 * time on AVX-512 and AVX2, plain loops on the baseline */

struct ew_job {
    const float *y, *dy;
    float *dx;
    float slope;
    int leaky; /* 0: relu (dx = 0 where y <= 0), 1: leaky relu (dx = slope dy there) */
    int64_t n;
};

static inline __attribute__((always_inline)) void ew_chunk(const struct ew_job *j, int64_t c, int vec)
{
    const int64_t a = c * 65536, b = a + 65536 < j->n ? a + 65536 : j->n;
    const float *y = j->y, *dy = j->dy, slope = j->slope; /* locals: the stores cannot alias them */
    float *dx = j->dx;
    int64_t i = a;
    /* explicit vectors (dx may be dy: no alias-versioned autovectorisation) */
    if (vec && j->leaky)
        for (; i + 16 <= b; i += 16) {
            v16 g, v;
            memcpy(&g, dy + i, sizeof g), memcpy(&v, y + i, sizeof v);
            v16i pos = v > 0, r = ((v16i)g & pos) | ((v16i)(g * slope) & ~pos);
            memcpy(dx + i, &r, sizeof r);
        }
    else if (vec)
        for (; i + 16 <= b; i += 16) {
            v16 g, v;
            memcpy(&g, dy + i, sizeof g), memcpy(&v, y + i, sizeof v);
            v16i r = (v16i)g & (v > 0);
            memcpy(dx + i, &r, sizeof r);
        }
    if (j->leaky)
        for (; i < b; i++) dx[i] = y[i] > 0 ? dy[i] : dy[i] * slope;
    else
        for (; i < b; i++) dx[i] = y[i] > 0 ? dy[i] : 0.0f;
}

VP_NN_ISA_RANGES_EXACT(ew_range, ew_chunk(ctx, (int64_t)i, 1), ew_chunk(ctx, (int64_t)i, 1), ew_chunk(ctx, (int64_t)i, 0))

static int ew_bwd(const char *op, const vp_tensor *y, const vp_tensor *dy, float slope, int leaky, vp_tensor *dx)
{
    char s[96], t[96];
    if (vp_nn_check_act(op, "output", y) || vp_nn_check_act(op, "gradient", dy)) return -1;
    if (!vp_tensor_same_shape(y, dy))
        return vp_error("%s: gradient %s does not match %s", op, vp_tensor_shape_str(dy, s, sizeof s), vp_tensor_shape_str(y, t, sizeof t));
    if (vp_nn_check_out(op, dx, y->shape)) return -1;
    struct ew_job j = {y->data, dy->data, dx->data, slope, leaky, vp_tensor_numel(y)};
    int isa;
    vp_parallel_for((uint64_t)((j.n + 65535) / 65536), 1, ew_range_pick(&isa), &j);
    return 0;
}

int vp_nn_fast_relu_bwd(const vp_tensor *y, const vp_tensor *dy, vp_tensor *dx) { return ew_bwd("relu_bwd", y, dy, 0.0f, 0, dx); }
int vp_nn_fast_leaky_relu_bwd(const vp_tensor *y, const vp_tensor *dy, float slope, vp_tensor *dx)
{
    return ew_bwd("leaky_relu_bwd", y, dy, slope, 1, dx);
}

/* ---- trilinear upsampling: one (n, c) volume per work item, the reference's arithmetic */

struct up_job {
    const float *dy;
    float *dx;
    int64_t D, H, W;
};

static void up_range(void *ctx, uint64_t begin, uint64_t end, int worker)
{
    const struct up_job *j = ctx;
    const int64_t v = j->D * j->H * j->W;
    double *a = vp_malloc((size_t)(v + 1) * sizeof *a);
    for (uint64_t i = begin; i < end; i++) vp_nn_upsample_bwd_plane(j->dy + (int64_t)i * 8 * v, j->dx + (int64_t)i * v, j->D, j->H, j->W, a);
    free(a);
}

int vp_nn_fast_upsample_trilinear2x_bwd(const vp_tensor *dy, vp_tensor *dx)
{
    if (vp_nn_upsample_bwd_check(dy, dx)) return -1;
    struct up_job j = {dy->data, dx->data, dx->shape[2], dx->shape[3], dx->shape[4]};
    vp_parallel_for((uint64_t)(dx->shape[0] * dx->shape[1]), 1, up_range, &j);
    return 0;
}


/* ---- gradient accumulation (nn_grad.h): element-wise, parallel over fixed chunks */

struct acc_job {
    float *dst;
    const float *src;
    int64_t n;
};

static void acc_range(void *ctx, uint64_t begin, uint64_t end, int worker)
{
    const struct acc_job *j = ctx;
    float *d = j->dst;
    const float *s = j->src;
    const int64_t a = (int64_t)begin * 65536, b = (int64_t)end * 65536 < j->n ? (int64_t)end * 65536 : j->n;
    for (int64_t i = a; i < b; i++) d[i] += s[i];
}

int vp_nn_accumulate(vp_tensor *dst, const vp_tensor *src)
{
    char s[96], t[96];
    if (!vp_tensor_same_shape(dst, src))
        return vp_error("accumulate: shapes %s and %s differ", vp_tensor_shape_str(dst, s, sizeof s), vp_tensor_shape_str(src, t, sizeof t));
    struct acc_job j = {dst->data, src->data, vp_tensor_numel(dst)};
    vp_parallel_for((uint64_t)((j.n + 65535) / 65536), 1, acc_range, &j);
    return 0;
}
