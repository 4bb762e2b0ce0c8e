/* nn_grad_fast_norm.c - the CPU backward of group norm (instance norm: groups = C), alone or fused
 * with the backward of the leaky ReLU that follows it (see nn_grad_fast_elem.h).
 *
 * One work item per (n, group), three passes over its data: (1) the mean, (2) per channel the sums
 * of (x - mean)^2, g (x - mean) and g, where g is dy or, fused, the leaky ReLU's backward
 * y > 0 ? dy : slope dy computed in registers (the bytes leaky_relu_bwd would have written),
 * (3) dx = k1 g + k2 x + k3. Sums are f64 in 16 lanes (two 8-lane vectors, fixed order, combined
 * lane by lane at the end); the three instruction-set variants (nn_isa.h) do the same operations
 * without fused multiply-adds, so the bytes depend neither on the thread count nor on the variant.
 *
 * Ownership: per-call partials (N x C doubles, two arrays) are allocated and freed inside.
 */
#include "nn_grad.h"
#include "nn_grad_fast_elem.h"
#include "nn_isa.h"
#include "nn_simd.h"
#include "parallel.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define AI __attribute__((always_inline))

struct gn_job {
    const float *x, *y, *dy, *gamma; /* y: the leaky ReLU's output when fused, else NULL */
    float *dx;
    double *dg, *db; /* (N, C) partials */
    int64_t C, S, cpg;
    int groups;
    float eps, slope;
};

/* *g = the gradient reaching the norm's output at i..i+15 (by pointer: a vector return value would
 * change the ABI), or at i. */
static inline AI void grad16(v16 *g, const struct gn_job *j, const float *y, const float *dy, int64_t i)
{
    v16 v;
    memcpy(g, dy + i, sizeof *g);
    if (!y) return;
    memcpy(&v, y + i, sizeof v);
    v16i pos = v > 0;
    *g = (v16)(((v16i)*g & pos) | ((v16i)(*g * j->slope) & ~pos));
}
static inline AI float grad1(const struct gn_job *j, const float *y, const float *dy, int64_t i)
{
    return !y || y[i] > 0 ? dy[i] : dy[i] * j->slope;
}
/* lanes 0-7 / 8-15 of a v16 as f64 */
#define lo8(v) __builtin_convertvector(__builtin_shufflevector((v), (v), 0, 1, 2, 3, 4, 5, 6, 7), v8d)
#define hi8(v) __builtin_convertvector(__builtin_shufflevector((v), (v), 8, 9, 10, 11, 12, 13, 14, 15), v8d)
/* lanes of a and b added in a fixed order, then t */
static inline AI double hsum(const v8d *a, const v8d *b, double t)
{
    v8d s = *a + *b;
    return (((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]))) + t;
}

static inline AI void gn_item(const struct gn_job *j, int64_t it)
{
    const int64_t n = it / j->groups, g = it % j->groups, S = j->S, m = j->cpg * S;
    const int64_t base = (n * j->C + g * j->cpg) * S;
    const float *xs = j->x + base, *ds = j->dy + base, *ys = j->y ? j->y + base : NULL;
    const v8d z = {0};
    v8d a0 = z, a1 = z;
    double t = 0;
    for (int64_t c = 0; c < j->cpg; c++) {
        const float *xc = xs + c * S;
        int64_t i = 0;
        for (; i + 16 <= S; i += 16) {
            v16 v;
            memcpy(&v, xc + i, sizeof v);
            a0 += lo8(v), a1 += hi8(v);
        }
        for (; i < S; i++) t += xc[i];
    }
    const double mean = m ? hsum(&a0, &a1, t) / (double)m : 0.0;
    double *sdx = j->dg + n * j->C + g * j->cpg, *sd = j->db + n * j->C + g * j->cpg, sq = 0;
    for (int64_t c = 0; c < j->cpg; c++) {
        const float *xc = xs + c * S, *dc = ds + c * S, *yc = ys ? ys + c * S : NULL;
        const v8d mv = z + mean;
        v8d q0 = z, q1 = z, p0 = z, p1 = z, b0 = z, b1 = z;
        double tq = 0, tp = 0, tb = 0;
        int64_t i = 0;
        for (; i + 16 <= S; i += 16) {
            v16 v, gv;
            grad16(&gv, j, yc, dc, i);
            memcpy(&v, xc + i, sizeof v);
            const v8d d0 = lo8(v) - mv, d1 = hi8(v) - mv, g0 = lo8(gv), g1 = hi8(gv);
            q0 += d0 * d0, q1 += d1 * d1, p0 += g0 * d0, p1 += g1 * d1, b0 += g0, b1 += g1;
        }
        for (; i < S; i++) {
            const double d = xc[i] - mean, gg = grad1(j, yc, dc, i);
            tq += d * d, tp += gg * d, tb += gg;
        }
        sq += hsum(&q0, &q1, tq);
        sdx[c] = hsum(&p0, &p1, tp), sd[c] = hsum(&b0, &b1, tb);
    }
    const double rstd = 1.0 / sqrt((m ? sq / (double)m : 0.0) + (double)j->eps);
    double s1 = 0, s2 = 0;
    for (int64_t c = 0; c < j->cpg; c++) {
        const double ga = j->gamma ? j->gamma[g * j->cpg + c] : 1.0;
        sdx[c] *= rstd; /* sum g xhat */
        s1 += sd[c] * ga, s2 += sdx[c] * ga;
    }
    if (!j->dx) return;
    const double m1 = s1 / (double)m, m2 = s2 / (double)m;
    for (int64_t c = 0; c < j->cpg; c++) {
        const double ga = j->gamma ? j->gamma[g * j->cpg + c] : 1.0;
        const float k1 = (float)(rstd * ga), k2 = (float)(-rstd * rstd * m2), k3 = (float)(rstd * (mean * rstd * m2 - m1));
        const float *xc = xs + c * S, *dc = ds + c * S, *yc = ys ? ys + c * S : NULL;
        float *oc = j->dx + base + c * S;
        int64_t i = 0;
        for (; i + 16 <= S; i += 16) {
            v16 v, gv, r;
            grad16(&gv, j, yc, dc, i);
            memcpy(&v, xc + i, sizeof v);
            r = gv * k1 + v * k2 + k3;
            memcpy(oc + i, &r, sizeof r);
        }
        for (; i < S; i++) oc[i] = grad1(j, yc, dc, i) * k1 + xc[i] * k2 + k3;
    }
}

VP_NN_ISA_RANGES_EXACT(gn_range, gn_item(ctx, (int64_t)i), gn_item(ctx, (int64_t)i), gn_item(ctx, (int64_t)i))

static int check_vec(const char *op, const char *what, const vp_tensor *t, int64_t n)
{
    if (t && (t->ndim != 1 || t->shape[0] != n || !t->data))
        return vp_error("%s: %s: expected (%lld) elements", op, what, (long long)n);
    return 0;
}

static int gn_run(const char *op, const vp_tensor *x, const vp_tensor *y, const vp_tensor *dy, int groups, float eps,
                  float slope, const vp_tensor *gamma, vp_tensor *dx, vp_tensor *dgamma, vp_tensor *dbeta)
{
    char s[96], t[96];
    if (vp_nn_check_act(op, "input", x) || vp_nn_check_act(op, "gradient", dy) || (y && vp_nn_check_act(op, "output", y)))
        return -1;
    if (!vp_tensor_same_shape(x, dy))
        return vp_error("%s: gradient %s does not match input %s", op, vp_tensor_shape_str(dy, s, sizeof s), vp_tensor_shape_str(x, t, sizeof t));
    if (y && !vp_tensor_same_shape(x, y))
        return vp_error("%s: output %s does not match input %s", op, vp_tensor_shape_str(y, s, sizeof s), vp_tensor_shape_str(x, t, sizeof t));
    if (groups < 1 || x->shape[1] % groups) return vp_error("%s: %lld channels not divisible into %d groups", op, (long long)x->shape[1], groups);
    const int64_t N = x->shape[0], C = x->shape[1];
    if (check_vec(op, "gamma", gamma, C) || check_vec(op, "gamma gradient", dgamma, C) || check_vec(op, "beta gradient", dbeta, C))
        return -1;
    if (dx && vp_nn_check_out(op, dx, x->shape)) return -1;
    if (dx && (dx->data == x->data || (y && dx->data == y->data))) return vp_error("%s: dx must not be the input or the output", op);
    struct gn_job j = {x->data, y ? y->data : NULL, dy->data, gamma ? gamma->data : NULL, dx ? dx->data : NULL, NULL, NULL,
                       C, x->shape[2] * x->shape[3] * x->shape[4], C / groups, groups, eps, slope};
    j.dg = vp_calloc((size_t)(2 * N * C + 1), sizeof(double));
    j.db = j.dg + N * C;
    int isa;
    vp_parallel_for((uint64_t)(N * groups), 1, gn_range_pick(&isa), &j);
    for (int64_t c = 0; c < C; c++) {
        double a = 0, b = 0;
        for (int64_t n = 0; n < N; n++) a += j.dg[n * C + c], b += j.db[n * C + c];
        if (dgamma) dgamma->data[c] = (float)a;
        if (dbeta) dbeta->data[c] = (float)b;
    }
    free(j.dg);
    return 0;
}

int vp_nn_fast_group_norm_bwd(const vp_tensor *x, const vp_tensor *dy, int groups, float eps, const vp_tensor *gamma,
                              vp_tensor *dx, vp_tensor *dgamma, vp_tensor *dbeta)
{
    return gn_run("group_norm_bwd", x, NULL, dy, groups, eps, 0.0f, gamma, dx, dgamma, dbeta);
}

int vp_nn_fast_group_norm_leaky_relu_bwd(const vp_tensor *x, const vp_tensor *y, const vp_tensor *dy, int groups, float eps,
                                         float slope, const vp_tensor *gamma, vp_tensor *dx, vp_tensor *dgamma, vp_tensor *dbeta)
{
    if (!y) return vp_error("group_norm_leaky_relu_bwd: the leaky ReLU's output is missing");
    return gn_run("group_norm_leaky_relu_bwd", x, y, dy, groups, eps, slope, gamma, dx, dgamma, dbeta);
}

int vp_nn_group_norm_leaky_relu_bwd(const vp_nn_grad *gr, const vp_tensor *x, const vp_tensor *y, vp_tensor *dy, int groups,
                                    float eps, float slope, const vp_tensor *gamma, vp_tensor *dx, vp_tensor *dgamma,
                                    vp_tensor *dbeta)
{
    if (gr->group_norm_leaky_relu_bwd) return gr->group_norm_leaky_relu_bwd(x, y, dy, groups, eps, slope, gamma, dx, dgamma, dbeta);
    return gr->leaky_relu_bwd(y, dy, slope, dy) || gr->group_norm_bwd(x, dy, groups, eps, gamma, dx, dgamma, dbeta) ? -1 : 0;
}
