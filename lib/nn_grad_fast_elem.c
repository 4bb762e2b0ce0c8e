/* nn_grad_fast_elem.c - the CPU backward ops other than the convolutions (see nn_grad_fast_elem.h). */
#include "nn_grad.h"
#include "nn_grad_fast_elem.h"
#include "parallel.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef float v8 __attribute__((vector_size(8 * sizeof(float))));
typedef int v8i __attribute__((vector_size(8 * sizeof(int))));

static int check_bias(const char *op, const vp_tensor *db, int64_t n)
{
    if (db && (db->ndim != 1 || db->shape[0] != n || !db->data))
        return vp_error("%s: bias gradient: expected (%lld) elements", op, (long long)n);
    return 0;
}

/* ---- group norm */

struct gn_job {
    const float *x, *dy, *gamma;
    float *dx;
    double *dg, *db; /* (N, C) partials */
    int64_t C, S, cpg;
    int groups;
    float eps;
};

/* Sums in f64 with 4 independent accumulators (fixed order: the same bytes for any thread count). */
static double sum4(const float *x, int64_t n)
{
    double a[4] = {0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int k = 0; k < 4; k++) a[k] += x[i + k];
    for (; i < n; i++) a[0] += x[i];
    return (a[0] + a[1]) + (a[2] + a[3]);
}
static double sqdev4(const float *x, int64_t n, double mean)
{
    double a[4] = {0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int k = 0; k < 4; k++) a[k] += (x[i + k] - mean) * (x[i + k] - mean);
    for (; i < n; i++) a[0] += (x[i] - mean) * (x[i] - mean);
    return (a[0] + a[1]) + (a[2] + a[3]);
}
/* *sdx = sum dy (x - mean), *sd = sum dy. */
static void dot4(const float *x, const float *dy, int64_t n, double mean, double *sdx, double *sd)
{
    double a[4] = {0, 0, 0, 0}, b[4] = {0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int k = 0; k < 4; k++) a[k] += dy[i + k] * (x[i + k] - mean), b[k] += dy[i + k];
    for (; i < n; i++) a[0] += dy[i] * (x[i] - mean), b[0] += dy[i];
    *sdx = (a[0] + a[1]) + (a[2] + a[3]);
    *sd = (b[0] + b[1]) + (b[2] + b[3]);
}

/* One (n, group): two passes for the statistics, one for the per-channel sums, one writing
 * dx = rstd (dy gamma - mean(dy gamma) - xhat mean(dy gamma xhat)) as k1 dy + k2 x + k3 in f32
 * vectors (coefficients in f64). */
static void gn_range(void *ctx, uint64_t begin, uint64_t end, int worker)
{
    const struct gn_job *j = ctx;
    for (uint64_t it = begin; it < end; it++) {
        const int64_t n = (int64_t)it / j->groups, g = (int64_t)it % j->groups, m = j->cpg * j->S, S = j->S;
        const int64_t base = (n * j->C + g * j->cpg) * S;
        const float *xs = j->x + base, *ds = j->dy + base;
        const double mean = m ? sum4(xs, m) / (double)m : 0.0;
        const double rstd = 1.0 / sqrt((m ? sqdev4(xs, m, mean) / (double)m : 0.0) + (double)j->eps);
        double s1 = 0, s2 = 0;
        for (int64_t c = 0; c < j->cpg; c++) {
            const double ga = j->gamma ? j->gamma[g * j->cpg + c] : 1.0;
            double a, b;
            dot4(xs + c * S, ds + c * S, S, mean, &a, &b);
            a *= rstd; /* sum dy xhat */
            s1 += b * ga, s2 += a * ga;
            j->dg[n * j->C + g * j->cpg + c] = a;
            j->db[n * j->C + g * j->cpg + c] = b;
        }
        if (!j->dx) continue;
        const double m1 = s1 / (double)m, m2 = s2 / (double)m;
        for (int64_t c = 0; c < j->cpg; c++) {
            const double ga = j->gamma ? j->gamma[g * j->cpg + c] : 1.0;
            const float k1 = (float)(rstd * ga), k2 = (float)(-rstd * rstd * m2), k3 = (float)(rstd * (mean * rstd * m2 - m1));
            const float *xc = xs + c * S, *dc = ds + c * S;
            float *oc = j->dx + base + c * S;
            int64_t i = 0;
            for (; i + 8 <= S; i += 8) {
                v8 xv, dv, r;
                memcpy(&xv, xc + i, sizeof xv), memcpy(&dv, dc + i, sizeof dv);
                r = dv * k1 + xv * k2 + k3;
                memcpy(oc + i, &r, sizeof r);
            }
            for (; i < S; i++) oc[i] = dc[i] * k1 + xc[i] * k2 + k3;
        }
    }
}

int vp_nn_fast_group_norm_bwd(const vp_tensor *x, const vp_tensor *dy, int groups, float eps, const vp_tensor *gamma,
                               vp_tensor *dx, vp_tensor *dgamma, vp_tensor *dbeta)
{
    const char *op = "group_norm_bwd";
    char s[96], t[96];
    if (vp_nn_check_act(op, "input", x) || vp_nn_check_act(op, "gradient", dy)) return -1;
    if (!vp_tensor_same_shape(x, dy))
        return vp_error("%s: gradient %s does not match input %s", op, vp_tensor_shape_str(dy, s, sizeof s), vp_tensor_shape_str(x, t, sizeof t));
    if (groups < 1 || x->shape[1] % groups) return vp_error("%s: %lld channels not divisible into %d groups", op, (long long)x->shape[1], groups);
    const int64_t N = x->shape[0], C = x->shape[1];
    if ((gamma && check_bias(op, gamma, C)) || check_bias(op, dgamma, C) || check_bias(op, dbeta, C)) return -1;
    if (dx && vp_nn_check_out(op, dx, x->shape)) return -1;
    struct gn_job j = {x->data, dy->data, gamma ? gamma->data : NULL, dx ? dx->data : NULL, NULL, NULL,
                       C, x->shape[2] * x->shape[3] * x->shape[4], C / groups, groups, eps};
    j.dg = vp_calloc((size_t)(2 * N * C), sizeof(double));
    j.db = j.dg + N * C;
    vp_parallel_for((uint64_t)(N * groups), 1, gn_range, &j);
    for (int64_t c = 0; c < C; c++) {
        double a = 0, b = 0;
        for (int64_t n = 0; n < N; n++) a += j.dg[n * C + c], b += j.db[n * C + c];
        if (dgamma) dgamma->data[c] = (float)a;
        if (dbeta) dbeta->data[c] = (float)b;
    }
    free(j.dg);
    return 0;
}

/* ---- element-wise: parallel over fixed chunks, the reference's arithmetic */

struct ew_job {
    const float *y, *dy;
    float *dx;
    float slope; /* 0: relu */
    int64_t n;
};

static void ew_range(void *ctx, uint64_t begin, uint64_t end, int worker)
{
    const struct ew_job *j = ctx;
    for (uint64_t c = begin; c < end; c++) {
        const int64_t a = (int64_t)c * 65536, b = a + 65536 < j->n ? a + 65536 : j->n;
        const float *y = j->y, *dy = j->dy, slope = j->slope; /* locals: the stores cannot alias them */
        float *dx = j->dx;
        /* 8 at a time with explicit vectors (dx may be dy: no alias-versioned autovectorisation) */
        int64_t i = a;
        for (; i + 8 <= b; i += 8) {
            v8 g, v;
            memcpy(&g, dy + i, sizeof g), memcpy(&v, y + i, sizeof v);
            v8i pos = v > 0, r = ((v8i)g & pos) | (slope != 0.0f ? (v8i)(g * slope) & ~pos : (v8i){0});
            memcpy(dx + i, &r, sizeof r);
        }
        for (; i < b; i++) dx[i] = y[i] > 0 ? dy[i] : slope != 0.0f ? dy[i] * slope : 0.0f;
    }
}

static int ew_bwd(const char *op, const vp_tensor *y, const vp_tensor *dy, float slope, vp_tensor *dx)
{
    char s[96], t[96];
    if (vp_nn_check_act(op, "output", y) || vp_nn_check_act(op, "gradient", dy)) return -1;
    if (!vp_tensor_same_shape(y, dy))
        return vp_error("%s: gradient %s does not match %s", op, vp_tensor_shape_str(dy, s, sizeof s), vp_tensor_shape_str(y, t, sizeof t));
    if (vp_nn_check_out(op, dx, y->shape)) return -1;
    struct ew_job j = {y->data, dy->data, dx->data, slope, vp_tensor_numel(y)};
    vp_parallel_for((uint64_t)((j.n + 65535) / 65536), 1, ew_range, &j);
    return 0;
}

int vp_nn_fast_relu_bwd(const vp_tensor *y, const vp_tensor *dy, vp_tensor *dx) { return ew_bwd("relu_bwd", y, dy, 0.0f, dx); }
int vp_nn_fast_leaky_relu_bwd(const vp_tensor *y, const vp_tensor *dy, float slope, vp_tensor *dx)
{
    if (slope == 0.0f) return vp_nn_ref_leaky_relu_bwd(y, dy, slope, dx);
    return ew_bwd("leaky_relu_bwd", y, dy, slope, dx);
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
