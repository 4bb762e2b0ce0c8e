/* nn_grad_ref.c - the reference backward ops (see nn_grad.h): plain loops, one thread, f64
 * accumulation, written as the adjoint of the forward loops in nn_ops_ref.c. This is the
 * specification the CPU versions (nn_grad_fast.c) are tested against. */
#include "nn_grad.h"
#include "nn_cuda_train.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define AT(t, n, c, d, h, w) \
    ((t)->data[((((int64_t)(n) * (t)->shape[1] + (c)) * (t)->shape[2] + (d)) * (t)->shape[3] + (h)) * (t)->shape[4] + (w)])

/* dy must have the shape conv3d(x, w) would produce; dx/x has the input's shape. */
static int check_conv(const char *op, const vp_tensor *x, const vp_tensor *w, const vp_tensor *dy,
                      const vp_conv3d_params *p)
{
    int64_t os[5];
    if (vp_nn_check_act(op, "gradient", dy) || vp_nn_conv3d_shape(x, w, NULL, p, os)) return -1;
    for (int i = 0; i < 5; i++)
        if (dy->shape[i] != os[i]) {
            char a[96], b[96], c[96];
            return vp_error("%s: gradient %s does not match input %s with weight %s", op, vp_tensor_shape_str(dy, a, sizeof a),
                            vp_tensor_shape_str(x, b, sizeof b), vp_tensor_shape_str(w, c, sizeof c));
        }
    return 0;
}

static int check_bias(const char *op, const vp_tensor *db, int64_t n)
{
    if (db && (db->ndim != 1 || db->shape[0] != n || !db->data))
        return vp_error("%s: bias gradient: expected (%lld) elements", op, (long long)n);
    return 0;
}

/* db[c] = sum over n and space of dy[n, c]. */
static void bias_grad(const vp_tensor *dy, vp_tensor *db)
{
    const int64_t N = dy->shape[0], C = dy->shape[1], S = dy->shape[2] * dy->shape[3] * dy->shape[4];
    for (int64_t c = 0; c < C; c++) {
        double acc = 0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < S; i++) acc += dy->data[(n * C + c) * S + i];
        db->data[c] = (float)acc;
    }
}

int vp_nn_ref_conv3d_bwd_data(const vp_tensor *dy, const vp_tensor *w, const vp_conv3d_params *p, vp_tensor *dx)
{
    if (check_conv("conv3d_bwd_data", dx, w, dy, p)) return -1;
    const int64_t N = dx->shape[0], Ci = dx->shape[1], D = dx->shape[2], H = dx->shape[3], W = dx->shape[4];
    const int64_t Co = dy->shape[1], Do = dy->shape[2], Ho = dy->shape[3], Wo = dy->shape[4];
    const int64_t KD = w->shape[2], KH = w->shape[3], KW = w->shape[4];
    /* dx[n,ci,id,ih,iw] = sum over co, k and outputs o with o*s - p + k = i of w[co,ci,k] dy[n,co,o] */
    for (int64_t n = 0; n < N; n++)
        for (int64_t ci = 0; ci < Ci; ci++)
            for (int64_t id = 0; id < D; id++)
                for (int64_t ih = 0; ih < H; ih++)
                    for (int64_t iw = 0; iw < W; iw++) {
                        double acc = 0;
                        for (int64_t co = 0; co < Co; co++)
                            for (int64_t kd = 0; kd < KD; kd++) {
                                int64_t td = id + p->pad[0] - kd;
                                if (td < 0 || td % p->stride[0] || td / p->stride[0] >= Do) continue;
                                for (int64_t kh = 0; kh < KH; kh++) {
                                    int64_t th = ih + p->pad[1] - kh;
                                    if (th < 0 || th % p->stride[1] || th / p->stride[1] >= Ho) continue;
                                    for (int64_t kw = 0; kw < KW; kw++) {
                                        int64_t tw = iw + p->pad[2] - kw;
                                        if (tw < 0 || tw % p->stride[2] || tw / p->stride[2] >= Wo) continue;
                                        acc += (double)AT(w, co, ci, kd, kh, kw) *
                                               AT(dy, n, co, td / p->stride[0], th / p->stride[1], tw / p->stride[2]);
                                    }
                                }
                            }
                        AT(dx, n, ci, id, ih, iw) = (float)acc;
                    }
    return 0;
}

/* dw[co,ci,k] = sum over n, o of dy[n,co,o] x[n,ci,o*s-p+k] (inside the volume). */
static void weight_grad(const vp_tensor *x, const vp_tensor *dy, const vp_conv3d_params *p, vp_tensor *dw)
{
    const int64_t N = x->shape[0], Ci = x->shape[1], D = x->shape[2], H = x->shape[3], W = x->shape[4];
    const int64_t Co = dy->shape[1], Do = dy->shape[2], Ho = dy->shape[3], Wo = dy->shape[4];
    const int64_t KD = dw->shape[2], KH = dw->shape[3], KW = dw->shape[4];
    for (int64_t co = 0; co < Co; co++)
        for (int64_t ci = 0; ci < Ci; ci++)
            for (int64_t kd = 0; kd < KD; kd++)
                for (int64_t kh = 0; kh < KH; kh++)
                    for (int64_t kw = 0; kw < KW; kw++) {
                        double acc = 0;
                        for (int64_t n = 0; n < N; n++)
                            for (int64_t od = 0; od < Do; od++) {
                                int64_t id = od * p->stride[0] - p->pad[0] + kd;
                                if (id < 0 || id >= D) continue;
                                for (int64_t oh = 0; oh < Ho; oh++) {
                                    int64_t ih = oh * p->stride[1] - p->pad[1] + kh;
                                    if (ih < 0 || ih >= H) continue;
                                    for (int64_t ow = 0; ow < Wo; ow++) {
                                        int64_t iw = ow * p->stride[2] - p->pad[2] + kw;
                                        if (iw < 0 || iw >= W) continue;
                                        acc += (double)AT(dy, n, co, od, oh, ow) * AT(x, n, ci, id, ih, iw);
                                    }
                                }
                            }
                        AT(dw, co, ci, kd, kh, kw) = (float)acc;
                    }
}

int vp_nn_ref_conv3d_bwd_weight(const vp_tensor *x, const vp_tensor *dy, const vp_conv3d_params *p, vp_tensor *dw,
                                vp_tensor *db)
{
    if (!dw) {
        if (vp_nn_check_act("conv3d_bwd_weight", "gradient", dy) || check_bias("conv3d_bwd_weight", db, dy->shape[1])) return -1;
        if (db) bias_grad(dy, db);
        return 0;
    }
    if (check_conv("conv3d_bwd_weight", x, dw, dy, p) || check_bias("conv3d_bwd_weight", db, dw->shape[0])) return -1;
    weight_grad(x, dy, p, dw);
    if (db) bias_grad(dy, db);
    return 0;
}

int vp_nn_ref_conv_transpose3d_bwd_data(const vp_tensor *dy, const vp_tensor *w, const vp_conv3d_params *p, vp_tensor *dx)
{
    /* the adjoint of the transposed convolution is the convolution with the same weight */
    vp_conv3d_params q = *p;
    memset(q.out_pad, 0, sizeof q.out_pad);
    if (check_conv("conv_transpose3d_bwd_data", dy, w, dx, &q)) return -1;
    return vp_nn_ref_conv3d(dy, w, NULL, &q, dx);
}

int vp_nn_ref_conv_transpose3d_bwd_weight(const vp_tensor *x, const vp_tensor *dy, const vp_conv3d_params *p,
                                          vp_tensor *dw, vp_tensor *db)
{
    /* dw[ci,co,k] = sum x[n,ci,i] dy[n,co,i*s-p+k]: conv3d's weight gradient with x and dy swapped */
    vp_conv3d_params q = *p;
    memset(q.out_pad, 0, sizeof q.out_pad);
    if (vp_nn_check_act("conv_transpose3d_bwd_weight", "gradient", dy)) return -1;
    if (dw && check_conv("conv_transpose3d_bwd_weight", dy, dw, x, &q)) return -1;
    if (check_bias("conv_transpose3d_bwd_weight", db, dy->shape[1])) return -1;
    if (dw) weight_grad(dy, x, &q, dw);
    if (db) bias_grad(dy, db);
    return 0;
}

int vp_nn_ref_group_norm_bwd(const vp_tensor *x, const vp_tensor *dy, int groups, float eps, const vp_tensor *gamma,
                             vp_tensor *dx, vp_tensor *dgamma, vp_tensor *dbeta)
{
    const char *op = "group_norm_bwd";
    char s[96], t[96];
    if (vp_nn_check_act(op, "input", x) || vp_nn_check_act(op, "gradient", dy)) return -1;
    if (!vp_tensor_same_shape(x, dy))
        return vp_error("%s: gradient %s does not match input %s", op, vp_tensor_shape_str(dy, s, sizeof s), vp_tensor_shape_str(x, t, sizeof t));
    if (groups < 1 || x->shape[1] % groups) return vp_error("%s: %lld channels not divisible into %d groups", op, (long long)x->shape[1], groups);
    const int64_t N = x->shape[0], C = x->shape[1], S = x->shape[2] * x->shape[3] * x->shape[4];
    if ((gamma && check_bias(op, gamma, C)) || check_bias(op, dgamma, C) || check_bias(op, dbeta, C)) return -1;
    if (dx && vp_nn_check_out(op, dx, x->shape)) return -1;
    const int64_t cpg = C / groups, m = cpg * S;
    double *dg = vp_calloc((size_t)C * 2, sizeof *dg), *dbt = dg + C;
    for (int64_t n = 0; n < N; n++)
        for (int64_t g = 0; g < groups; g++) {
            const float *xs = x->data + (n * C + g * cpg) * S, *ds = dy->data + (n * C + g * cpg) * S;
            double sum = 0, ss = 0;
            for (int64_t i = 0; i < m; i++) sum += xs[i];
            double mean = m ? sum / (double)m : 0.0;
            for (int64_t i = 0; i < m; i++) ss += (xs[i] - mean) * (xs[i] - mean);
            double rstd = 1.0 / sqrt((m ? ss / (double)m : 0.0) + (double)eps);
            /* xhat = (x - mean) rstd; g = dy gamma; dx = rstd (g - mean(g) - xhat mean(g xhat)) */
            double s1 = 0, s2 = 0;
            for (int64_t c = 0; c < cpg; c++) {
                double ga = gamma ? gamma->data[g * cpg + c] : 1.0;
                for (int64_t i = c * S; i < (c + 1) * S; i++) {
                    double xh = (xs[i] - mean) * rstd;
                    s1 += ds[i] * ga;
                    s2 += ds[i] * ga * xh;
                    dg[g * cpg + c] += ds[i] * xh;
                    dbt[g * cpg + c] += ds[i];
                }
            }
            if (!dx) continue;
            float *o = dx->data + (n * C + g * cpg) * S;
            for (int64_t c = 0; c < cpg; c++) {
                double ga = gamma ? gamma->data[g * cpg + c] : 1.0;
                for (int64_t i = c * S; i < (c + 1) * S; i++) {
                    double xh = (xs[i] - mean) * rstd;
                    o[i] = (float)(rstd * (ds[i] * ga - s1 / (double)m - xh * s2 / (double)m));
                }
            }
        }
    for (int64_t c = 0; c < C; c++) {
        if (dgamma) dgamma->data[c] = (float)dg[c];
        if (dbeta) dbeta->data[c] = (float)dbt[c];
    }
    free(dg);
    return 0;
}

static int check_elem(const char *op, const vp_tensor *y, const vp_tensor *dy, const vp_tensor *dx)
{
    char s[96], t[96];
    if (vp_nn_check_act(op, "output", y) || vp_nn_check_act(op, "gradient", dy)) return -1;
    if (!vp_tensor_same_shape(y, dy))
        return vp_error("%s: gradient %s does not match %s", op, vp_tensor_shape_str(dy, s, sizeof s), vp_tensor_shape_str(y, t, sizeof t));
    return vp_nn_check_out(op, dx, y->shape);
}

int vp_nn_ref_relu_bwd(const vp_tensor *y, const vp_tensor *dy, vp_tensor *dx)
{
    if (check_elem("relu_bwd", y, dy, dx)) return -1;
    for (int64_t i = 0, n = vp_tensor_numel(y); i < n; i++) dx->data[i] = y->data[i] > 0 ? dy->data[i] : 0.0f;
    return 0;
}

int vp_nn_ref_leaky_relu_bwd(const vp_tensor *y, const vp_tensor *dy, float slope, vp_tensor *dx)
{
    if (check_elem("leaky_relu_bwd", y, dy, dx)) return -1;
    for (int64_t i = 0, n = vp_tensor_numel(y); i < n; i++) dx->data[i] = y->data[i] > 0 ? dy->data[i] : dy->data[i] * slope;
    return 0;
}

/* Source indices and weights along one axis, as nn_ops_ref.c's lin_src (scale 2, align_corners False). */
static void lin_src(int64_t o, int64_t in, int64_t *i0, int64_t *i1, float *l0, float *l1)
{
    float src = 0.5f * ((float)o + 0.5f) - 0.5f;
    if (src < 0) src = 0;
    *i0 = (int64_t)src;
    if (*i0 > in - 1) *i0 = in - 1;
    *i1 = *i0 < in - 1 ? *i0 + 1 : *i0;
    *l1 = src - (float)*i0;
    *l0 = 1.0f - *l1;
}

void vp_nn_upsample_bwd_plane(const float *g, float *dx, int64_t D, int64_t H, int64_t W, double *a)
{
    memset(a, 0, (size_t)(D * H * W) * sizeof *a);
    /* each output scatters its 8 trilinear weights back onto the inputs it read */
    for (int64_t od = 0; od < 2 * D; od++) {
        int64_t d[2];
        float wd[2];
        lin_src(od, D, &d[0], &d[1], &wd[0], &wd[1]);
        for (int64_t oh = 0; oh < 2 * H; oh++) {
            int64_t h[2];
            float wh[2];
            lin_src(oh, H, &h[0], &h[1], &wh[0], &wh[1]);
            for (int64_t ow = 0; ow < 2 * W; ow++) {
                int64_t w[2];
                float ww[2];
                lin_src(ow, W, &w[0], &w[1], &ww[0], &ww[1]);
                double v = g[(od * 2 * H + oh) * 2 * W + ow];
                for (int i = 0; i < 2; i++)
                    for (int j = 0; j < 2; j++)
                        for (int k = 0; k < 2; k++) a[(d[i] * H + h[j]) * W + w[k]] += v * wd[i] * wh[j] * ww[k];
            }
        }
    }
    for (int64_t i = 0; i < D * H * W; i++) dx[i] = (float)a[i];
}

int vp_nn_upsample_bwd_check(const vp_tensor *dy, const vp_tensor *dx)
{
    const char *op = "upsample_trilinear2x_bwd";
    if (vp_nn_check_act(op, "gradient", dy) || vp_nn_check_act(op, "input gradient", dx)) return -1;
    int64_t want[5] = {dx->shape[0], dx->shape[1], 2 * dx->shape[2], 2 * dx->shape[3], 2 * dx->shape[4]};
    return vp_nn_check_out(op, dy, want);
}

int vp_nn_ref_upsample_trilinear2x_bwd(const vp_tensor *dy, vp_tensor *dx)
{
    if (vp_nn_upsample_bwd_check(dy, dx)) return -1;
    const int64_t D = dx->shape[2], H = dx->shape[3], W = dx->shape[4];
    double *acc = vp_malloc((size_t)(D * H * W + 1) * sizeof *acc);
    for (int64_t nc = 0; nc < dx->shape[0] * dx->shape[1]; nc++)
        vp_nn_upsample_bwd_plane(dy->data + nc * 8 * D * H * W, dx->data + nc * D * H * W, D, H, W, acc);
    free(acc);
    return 0;
}

int vp_nn_add_bwd(const vp_tensor *dy, vp_tensor *da, vp_tensor *db)
{
    if (vp_nn_check_act("add_bwd", "gradient", dy)) return -1;
    if ((da && vp_nn_check_out("add_bwd", da, dy->shape)) || (db && vp_nn_check_out("add_bwd", db, dy->shape))) return -1;
    size_t bytes = (size_t)vp_tensor_numel(dy) * sizeof(float);
    if (da && da != dy) memcpy(da->data, dy->data, bytes);
    if (db && db != dy) memcpy(db->data, dy->data, bytes);
    return 0;
}

int vp_nn_concat_bwd(const vp_tensor *dy, vp_tensor *const *dxs, int n)
{
    if (vp_nn_check_act("concat_bwd", "gradient", dy)) return -1;
    int64_t c = 0;
    for (int i = 0; i < n; i++) {
        if (!dxs[i]) return vp_error("concat_bwd: missing gradient tensor %d", i);
        if (vp_nn_check_act("concat_bwd", "input gradient", dxs[i])) return -1;
        for (int k = 0; k < 5; k++)
            if (k != 1 && dxs[i]->shape[k] != dy->shape[k]) return vp_error("concat_bwd: input %d does not match the gradient outside channels", i);
        c += dxs[i]->shape[1];
    }
    if (c != dy->shape[1]) return vp_error("concat_bwd: inputs have %lld channels, gradient %lld", (long long)c, (long long)dy->shape[1]);
    const int64_t S = dy->shape[2] * dy->shape[3] * dy->shape[4];
    for (int64_t b = 0; b < dy->shape[0]; b++) {
        const float *src = dy->data + b * dy->shape[1] * S;
        for (int i = 0; i < n; i++) {
            int64_t cs = dxs[i]->shape[1] * S;
            memcpy(dxs[i]->data + b * cs, src, (size_t)cs * sizeof(float));
            src += cs;
        }
    }
    return 0;
}

static const vp_nn_grad ref_grad = {
    .name = "ref",
    .conv3d_bwd_data = vp_nn_ref_conv3d_bwd_data,
    .conv3d_bwd_weight = vp_nn_ref_conv3d_bwd_weight,
    .conv_transpose3d_bwd_data = vp_nn_ref_conv_transpose3d_bwd_data,
    .conv_transpose3d_bwd_weight = vp_nn_ref_conv_transpose3d_bwd_weight,
    .group_norm_bwd = vp_nn_ref_group_norm_bwd,
    .relu_bwd = vp_nn_ref_relu_bwd,
    .leaky_relu_bwd = vp_nn_ref_leaky_relu_bwd,
    .upsample_trilinear2x_bwd = vp_nn_ref_upsample_trilinear2x_bwd,
};

const vp_nn_grad *vp_nn_grad_ref(void) { return &ref_grad; }

const vp_nn_grad *vp_nn_grad_for(const vp_nn_backend *be)
{
    const vp_nn_grad *cuda = vp_nn_grad_cuda(be); /* CUDA backends: the device backward ops */
    if (cuda) return cuda;
    return be && be->name && !strcmp(be->name, "ref") ? vp_nn_grad_ref() : vp_nn_grad_cpu();
}
