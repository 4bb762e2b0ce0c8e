/* nn_ops_ref.c - the reference ops: plain loops, one thread, f64 accumulation. This file is the
 * specification of each op (PyTorch semantics, see nn_backend.h); every other backend is tested
 * against it. No processor-specific code and no cleverness here. */
#include "nn_backend.h"
#include "util.h"

#include <math.h>
#include <string.h>

/* Index of (n, c, d, h, w) in a contiguous 5-D tensor. */
#define AT(t, n, c, d, h, w) \
    ((t)->data[((((int64_t)(n) * (t)->shape[1] + (c)) * (t)->shape[2] + (d)) * (t)->shape[3] + (h)) * (t)->shape[4] + (w)])

int vp_nn_ref_conv3d(const vp_tensor *x, const vp_tensor *w, const vp_tensor *b, const vp_conv3d_params *p, vp_tensor *y)
{
    int64_t os[5];
    if (vp_nn_conv3d_shape(x, w, b, p, os) || vp_nn_check_out("conv3d", y, os)) return -1;
    const int64_t Ci = x->shape[1], D = x->shape[2], H = x->shape[3], W = x->shape[4];
    const int64_t KD = w->shape[2], KH = w->shape[3], KW = w->shape[4];
    /* y[n,co,od,oh,ow] = b[co] + sum_{ci,kd,kh,kw} w[co,ci,kd,kh,kw] x[n,ci,od*sd-pd+kd,oh*sh-ph+kh,ow*sw-pw+kw]
     * where the input index is inside the volume (zero padding) */
    for (int64_t n = 0; n < os[0]; n++)
        for (int64_t co = 0; co < os[1]; co++)
            for (int64_t od = 0; od < os[2]; od++)
                for (int64_t oh = 0; oh < os[3]; oh++)
                    for (int64_t ow = 0; ow < os[4]; ow++) {
                        double acc = b ? b->data[co] : 0.0;
                        for (int64_t ci = 0; ci < Ci; ci++)
                            for (int64_t kd = 0; kd < KD; kd++) {
                                int64_t id = od * p->stride[0] - p->pad[0] + kd;
                                if (id < 0 || id >= D) continue;
                                for (int64_t kh = 0; kh < KH; kh++) {
                                    int64_t ih = oh * p->stride[1] - p->pad[1] + kh;
                                    if (ih < 0 || ih >= H) continue;
                                    for (int64_t kw = 0; kw < KW; kw++) {
                                        int64_t iw = ow * p->stride[2] - p->pad[2] + kw;
                                        if (iw < 0 || iw >= W) continue;
                                        acc += (double)AT(w, co, ci, kd, kh, kw) * AT(x, n, ci, id, ih, iw);
                                    }
                                }
                            }
                        AT(y, n, co, od, oh, ow) = (float)acc;
                    }
    return 0;
}

int vp_nn_ref_conv_transpose3d(const vp_tensor *x, const vp_tensor *w, const vp_tensor *b, const vp_conv3d_params *p,
                               vp_tensor *y)
{
    int64_t os[5];
    if (vp_nn_conv_transpose3d_shape(x, w, b, p, os) || vp_nn_check_out("conv_transpose3d", y, os)) return -1;
    const int64_t Ci = x->shape[1], D = x->shape[2], H = x->shape[3], W = x->shape[4];
    const int64_t KD = w->shape[2], KH = w->shape[3], KW = w->shape[4];
    /* The adjoint of conv3d: x[n,ci,i] contributes w[ci,co,k] to y[n,co,i*s-p+k]. Written as a gather,
     * y[n,co,o] = b[co] + sum over ci, k with (o + p - k) = i*s, 0 <= i < in, of w[ci,co,k] x[n,ci,i] */
    for (int64_t n = 0; n < os[0]; n++)
        for (int64_t co = 0; co < os[1]; co++)
            for (int64_t od = 0; od < os[2]; od++)
                for (int64_t oh = 0; oh < os[3]; oh++)
                    for (int64_t ow = 0; ow < os[4]; ow++) {
                        double acc = b ? b->data[co] : 0.0;
                        for (int64_t ci = 0; ci < Ci; ci++)
                            for (int64_t kd = 0; kd < KD; kd++) {
                                int64_t td = od + p->pad[0] - kd;
                                if (td < 0 || td % p->stride[0] || td / p->stride[0] >= D) continue;
                                for (int64_t kh = 0; kh < KH; kh++) {
                                    int64_t th = oh + p->pad[1] - kh;
                                    if (th < 0 || th % p->stride[1] || th / p->stride[1] >= H) continue;
                                    for (int64_t kw = 0; kw < KW; kw++) {
                                        int64_t tw = ow + p->pad[2] - kw;
                                        if (tw < 0 || tw % p->stride[2] || tw / p->stride[2] >= W) continue;
                                        acc += (double)AT(w, ci, co, kd, kh, kw) *
                                               AT(x, n, ci, td / p->stride[0], th / p->stride[1], tw / p->stride[2]);
                                    }
                                }
                            }
                        AT(y, n, co, od, oh, ow) = (float)acc;
                    }
    return 0;
}

int vp_nn_ref_group_norm(const vp_tensor *x, int groups, float eps, const vp_tensor *gamma, const vp_tensor *beta,
                         vp_tensor *y)
{
    if (vp_nn_check_norm("group_norm", x, groups, gamma, beta, y)) return -1;
    const int64_t N = x->shape[0], C = x->shape[1], S = x->shape[2] * x->shape[3] * x->shape[4];
    const int64_t cpg = C / groups, m = cpg * S; /* channels per group; elements per group */
    /* per (n, g): mean and biased variance over its cpg channels x D x H x W elements (two passes),
     * then y = (x - mean) / sqrt(var + eps) * gamma[c] + beta[c] */
    for (int64_t n = 0; n < N; n++)
        for (int64_t g = 0; g < groups; g++) {
            const float *xs = x->data + (n * C + g * cpg) * S;
            float *ys = y->data + (n * C + g * cpg) * S;
            double sum = 0, ss = 0;
            for (int64_t i = 0; i < m; i++) sum += xs[i];
            double mean = m ? sum / (double)m : 0.0;
            for (int64_t i = 0; i < m; i++) ss += (xs[i] - mean) * (xs[i] - mean);
            double rstd = 1.0 / sqrt((m ? ss / (double)m : 0.0) + (double)eps);
            for (int64_t c = 0; c < cpg; c++) {
                double ga = gamma ? gamma->data[g * cpg + c] : 1.0, be = beta ? beta->data[g * cpg + c] : 0.0;
                for (int64_t i = c * S; i < (c + 1) * S; i++) ys[i] = (float)((xs[i] - mean) * rstd * ga + be);
            }
        }
    return 0;
}

int vp_nn_ref_relu(const vp_tensor *x, vp_tensor *y)
{
    if (vp_nn_check_act("relu", "input", x) || vp_nn_check_out("relu", y, x->shape)) return -1;
    for (int64_t i = 0, n = vp_tensor_numel(x); i < n; i++) y->data[i] = x->data[i] < 0 ? 0.0f : x->data[i]; /* NaN passes, as torch.relu */
    return 0;
}

int vp_nn_ref_leaky_relu(const vp_tensor *x, float slope, vp_tensor *y)
{
    if (vp_nn_check_act("leaky_relu", "input", x) || vp_nn_check_out("leaky_relu", y, x->shape)) return -1;
    for (int64_t i = 0, n = vp_tensor_numel(x); i < n; i++) y->data[i] = x->data[i] > 0 ? x->data[i] : x->data[i] * slope;
    return 0;
}

/* Source index and weights along one axis for scale 2, align_corners=False (PyTorch's
 * area_pixel_compute_source_index): src = max((o + 0.5) / 2 - 0.5, 0), i1 clamped to the edge. */
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

int vp_nn_ref_upsample_trilinear2x(const vp_tensor *x, vp_tensor *y)
{
    if (vp_nn_check_act("upsample_trilinear2x", "input", x)) return -1;
    int64_t os[5] = {x->shape[0], x->shape[1], 2 * x->shape[2], 2 * x->shape[3], 2 * x->shape[4]};
    if (vp_nn_check_out("upsample_trilinear2x", y, os)) return -1;
    for (int64_t n = 0; n < os[0]; n++)
        for (int64_t c = 0; c < os[1]; c++)
            for (int64_t od = 0; od < os[2]; od++) {
                int64_t d0, d1;
                float a0, a1;
                lin_src(od, x->shape[2], &d0, &d1, &a0, &a1);
                for (int64_t oh = 0; oh < os[3]; oh++) {
                    int64_t h0, h1;
                    float b0, b1;
                    lin_src(oh, x->shape[3], &h0, &h1, &b0, &b1);
                    for (int64_t ow = 0; ow < os[4]; ow++) {
                        int64_t w0, w1;
                        float c0, c1;
                        lin_src(ow, x->shape[4], &w0, &w1, &c0, &c1);
                        double v = a0 * (b0 * ((double)c0 * AT(x, n, c, d0, h0, w0) + (double)c1 * AT(x, n, c, d0, h0, w1)) +
                                         b1 * ((double)c0 * AT(x, n, c, d0, h1, w0) + (double)c1 * AT(x, n, c, d0, h1, w1))) +
                                   a1 * (b0 * ((double)c0 * AT(x, n, c, d1, h0, w0) + (double)c1 * AT(x, n, c, d1, h0, w1)) +
                                         b1 * ((double)c0 * AT(x, n, c, d1, h1, w0) + (double)c1 * AT(x, n, c, d1, h1, w1)));
                        AT(y, n, c, od, oh, ow) = (float)v;
                    }
                }
            }
    return 0;
}

int vp_nn_ref_add(const vp_tensor *a, const vp_tensor *b, vp_tensor *y)
{
    char s[96], t[96];
    if (vp_nn_check_act("add", "a", a) || vp_nn_check_act("add", "b", b)) return -1;
    if (!vp_tensor_same_shape(a, b))
        return vp_error("add: shapes %s and %s differ", vp_tensor_shape_str(a, s, sizeof s), vp_tensor_shape_str(b, t, sizeof t));
    if (vp_nn_check_out("add", y, a->shape)) return -1;
    for (int64_t i = 0, n = vp_tensor_numel(a); i < n; i++) y->data[i] = a->data[i] + b->data[i];
    return 0;
}

int vp_nn_ref_concat(const vp_tensor *const *xs, int n, vp_tensor *y)
{
    int64_t os[5];
    if (vp_nn_concat_shape(xs, n, os) || vp_nn_check_out("concat", y, os)) return -1;
    const int64_t S = os[2] * os[3] * os[4];
    for (int64_t b = 0; b < os[0]; b++) {
        float *dst = y->data + b * os[1] * S;
        for (int i = 0; i < n; i++) {
            int64_t cs = xs[i]->shape[1] * S;
            memcpy(dst, xs[i]->data + b * cs, (size_t)cs * sizeof(float));
            dst += cs;
        }
    }
    return 0;
}

int vp_nn_ref_softmax_c(const vp_tensor *x, vp_tensor *y)
{
    if (vp_nn_check_act("softmax_c", "input", x) || vp_nn_check_out("softmax_c", y, x->shape)) return -1;
    const int64_t N = x->shape[0], C = x->shape[1], S = x->shape[2] * x->shape[3] * x->shape[4];
    /* per voxel: y[c] = exp(x[c] - max) / sum_c' exp(x[c'] - max) */
    for (int64_t n = 0; n < N; n++)
        for (int64_t v = 0; v < S; v++) {
            const float *xp = x->data + n * C * S + v;
            float *yp = y->data + n * C * S + v;
            float mx = -INFINITY;
            for (int64_t c = 0; c < C; c++) mx = xp[c * S] > mx ? xp[c * S] : mx;
            double sum = 0;
            for (int64_t c = 0; c < C; c++) sum += exp((double)xp[c * S] - mx);
            for (int64_t c = 0; c < C; c++) yp[c * S] = (float)(exp((double)xp[c * S] - mx) / sum);
        }
    return 0;
}

int vp_nn_ref_argmax_c(const vp_tensor *x, int32_t *out)
{
    if (vp_nn_check_act("argmax_c", "input", x)) return -1;
    const int64_t N = x->shape[0], C = x->shape[1], S = x->shape[2] * x->shape[3] * x->shape[4];
    for (int64_t n = 0; n < N; n++)
        for (int64_t v = 0; v < S; v++) {
            const float *xp = x->data + n * C * S + v;
            int32_t best = 0;
            for (int64_t c = 1; c < C; c++)
                if (xp[c * S] > xp[best * S]) best = (int32_t)c; /* strict: the first maximum wins */
            out[n * S + v] = best;
        }
    return 0;
}

int vp_nn_ref_group_norm_relu(const vp_tensor *x, int groups, float eps, const vp_tensor *gamma, const vp_tensor *beta,
                              vp_tensor *y)
{
    if (x == y) return vp_error("group_norm_relu: the output must not be the input");
    return vp_nn_ref_group_norm(x, groups, eps, gamma, beta, y) || vp_nn_ref_relu(y, y) ? -1 : 0;
}

int vp_nn_ref_conv3d_add(const vp_tensor *x, const vp_tensor *w, const vp_tensor *b, const vp_conv3d_params *p,
                         const vp_tensor *r, vp_tensor *y)
{
    if (r == y || x == y || (r && y && r->data == y->data)) return vp_error("conv3d_add: the output must not be an input");
    return vp_nn_ref_conv3d(x, w, b, p, y) || vp_nn_ref_add(y, r, y) ? -1 : 0;
}

/* ---- the reference backend */

static int ref_supports(const vp_nn_backend *be, vp_nn_op op) { return op >= 0 && op < VP_NN_OP_COUNT; }
static int ref_conv3d(const vp_nn_backend *be, const vp_tensor *x, const vp_tensor *w, const vp_tensor *b,
                      const vp_conv3d_params *p, vp_tensor *y) { return vp_nn_ref_conv3d(x, w, b, p, y); }
static int ref_convt(const vp_nn_backend *be, const vp_tensor *x, const vp_tensor *w, const vp_tensor *b,
                     const vp_conv3d_params *p, vp_tensor *y) { return vp_nn_ref_conv_transpose3d(x, w, b, p, y); }
static int ref_gn(const vp_nn_backend *be, const vp_tensor *x, int groups, float eps, const vp_tensor *g,
                  const vp_tensor *b, vp_tensor *y) { return vp_nn_ref_group_norm(x, groups, eps, g, b, y); }
static int ref_in(const vp_nn_backend *be, const vp_tensor *x, float eps, const vp_tensor *g, const vp_tensor *b,
                  vp_tensor *y)
{
    if (vp_nn_check_act("instance_norm", "input", x)) return -1;
    return vp_nn_ref_group_norm(x, (int)x->shape[1], eps, g, b, y);
}
static int ref_relu(const vp_nn_backend *be, const vp_tensor *x, vp_tensor *y) { return vp_nn_ref_relu(x, y); }
static int ref_lrelu(const vp_nn_backend *be, const vp_tensor *x, float s, vp_tensor *y) { return vp_nn_ref_leaky_relu(x, s, y); }
static int ref_up(const vp_nn_backend *be, const vp_tensor *x, vp_tensor *y) { return vp_nn_ref_upsample_trilinear2x(x, y); }
static int ref_add(const vp_nn_backend *be, const vp_tensor *a, const vp_tensor *b, vp_tensor *y) { return vp_nn_ref_add(a, b, y); }
static int ref_cat(const vp_nn_backend *be, const vp_tensor *const *xs, int n, vp_tensor *y) { return vp_nn_ref_concat(xs, n, y); }
static int ref_smax(const vp_nn_backend *be, const vp_tensor *x, vp_tensor *y) { return vp_nn_ref_softmax_c(x, y); }
static int ref_amax(const vp_nn_backend *be, const vp_tensor *x, int32_t *o) { return vp_nn_ref_argmax_c(x, o); }
static int ref_gn_relu(const vp_nn_backend *be, const vp_tensor *x, int groups, float eps, const vp_tensor *g,
                       const vp_tensor *b, vp_tensor *y) { return vp_nn_ref_group_norm_relu(x, groups, eps, g, b, y); }
static int ref_conv_add(const vp_nn_backend *be, const vp_tensor *x, const vp_tensor *w, const vp_tensor *b,
                        const vp_conv3d_params *p, const vp_tensor *r, vp_tensor *y) { return vp_nn_ref_conv3d_add(x, w, b, p, r, y); }

static const vp_nn_backend ref_backend = {
    .name = "ref", .supports_op = ref_supports,
    .conv3d = ref_conv3d, .conv_transpose3d = ref_convt, .group_norm = ref_gn, .instance_norm = ref_in,
    .relu = ref_relu, .leaky_relu = ref_lrelu, .upsample_trilinear2x = ref_up, .add = ref_add,
    .concat = ref_cat, .softmax_c = ref_smax, .argmax_c = ref_amax,
    .group_norm_relu = ref_gn_relu, .conv3d_add = ref_conv_add,
};

const vp_nn_backend *vp_nn_backend_ref(void) { return &ref_backend; }
