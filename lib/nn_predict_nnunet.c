/* nn_predict_nnunet.c - nnU-Net's sliding-window predictor (see nn_predict_nnunet.h). */
#include "nn_predict_nnunet.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "volume.h"

#define MAXSTEPS 4096

int vp_nnunet_steps(int64_t image, int tile, double step, int64_t *out, int max)
{
    double target = tile * step;
    int n = (int)ceil((double)(image - tile) / target) + 1;
    double actual = n > 1 ? (double)(image - tile) / (n - 1) : 99999999999.0;
    for (int i = 0; i < n && i < max; i++) out[i] = (int64_t)nearbyint(actual * i); /* np.round: half to even */
    return n;
}

/* scipy.ndimage's 1-D Gaussian kernel (truncate 4), normalised; value at offset x from the centre. */
static void kernel1d(int n, double *out)
{
    const double sd = n / 8.0;
    const int r = (int)(4.0 * sd + 0.5), c = n / 2;
    double *phi = vp_malloc(sizeof(double) * (size_t)(2 * r + 1)), sum = 0;
    for (int x = -r; x <= r; x++) sum += phi[x + r] = exp(-0.5 / (sd * sd) * x * x);
    for (int i = 0; i < n; i++) out[i] = abs(i - c) <= r ? phi[i - c + r] / sum : 0.0;
    free(phi);
}

void vp_nnunet_gaussian(const int p[3], int half, float *out)
{
    double *k[3];
    for (int a = 0; a < 3; a++) k[a] = vp_malloc(sizeof(double) * (size_t)p[a]), kernel1d(p[a], k[a]);
    const double mx = k[0][p[0] / 2] * k[1][p[1] / 2] * k[2][p[2] / 2], scale = mx / 10.0;
    const int64_t n = (int64_t)p[0] * p[1] * p[2];
    float mn = INFINITY;
    for (int d = 0, i = 0; d < p[0]; d++)
        for (int h = 0; h < p[1]; h++)
            for (int w = 0; w < p[2]; w++, i++) {
                float v = (float)(k[0][d] * k[1][h] * k[2][w] / scale);
                if (half) v = vp_half_to_float(vp_float_to_half(v));
                out[i] = v;
                if (v != 0 && v < mn) mn = v;
            }
    for (int64_t i = 0; i < n; i++)
        if (out[i] == 0) out[i] = mn;
    for (int a = 0; a < 3; a++) free(k[a]);
}

static inline float h2f(uint16_t h) { return vp_half_to_float(h); }
static inline uint16_t f2h(float f) { return vp_float_to_half(f); }

/* Flip a (1, C, D, H, W) tensor along the given spatial axes (mask bit a: axis a), into y. */
static void flip(const vp_tensor *x, int mask, vp_tensor *y)
{
    const int64_t C = x->shape[1], D = x->shape[2], H = x->shape[3], W = x->shape[4];
    for (int64_t c = 0; c < C; c++)
        for (int64_t d = 0; d < D; d++)
            for (int64_t h = 0; h < H; h++) {
                const int64_t sd = mask & 1 ? D - 1 - d : d, sh = mask & 2 ? H - 1 - h : h;
                const float *src = x->data + ((c * D + sd) * H + sh) * W;
                float *dst = y->data + ((c * D + d) * H + h) * W;
                if (mask & 4)
                    for (int64_t w = 0; w < W; w++) dst[w] = src[W - 1 - w];
                else
                    memcpy(dst, src, sizeof(float) * (size_t)W);
            }
}

/* The tile's prediction (nnUNetPredictor._internal_maybe_mirror_and_predict) into pred. */
static int predict_tile(const vp_unet *m, const vp_nn_backend *be, const vp_tensor *x, int tta, vp_tensor *pred)
{
    if (vp_unet_forward(m, be, x, pred)) return -1;
    if (!tta) return 0;
    int axes[3], na = 0, combos[7], nc = 0;
    for (int a = 0; a < 3; a++)
        if (m->cfg.mirror_axes[a]) axes[na++] = a;
    /* itertools.combinations(axes, r) for r = 1..na, in order */
    for (int r = 1; r <= na; r++)
        for (int s = 0; s < (1 << na); s++) {
            if (__builtin_popcount((unsigned)s) != r) continue;
            int mask = 0;
            for (int i = 0; i < na; i++)
                if (s & (1 << i)) mask |= 1 << axes[i];
            combos[nc++] = mask;
        }
    /* popcount order within r: combinations are lexicographic; for na <= 3 the subsets of equal
     * size enumerated by increasing s are {0},{1},{2} and {0,1},{0,2},{1,2}: lexicographic too. */
    vp_tensor *xf = vp_tensor_new(5, x->shape), *yf = vp_tensor_new(5, pred->shape), *yb = vp_tensor_new(5, pred->shape);
    int rc = 0;
    for (int c = 0; c < nc && !rc; c++) {
        flip(x, combos[c], xf);
        if ((rc = vp_unet_forward(m, be, xf, yf))) break;
        flip(yf, combos[c], yb);
        for (int64_t i = 0; i < vp_tensor_numel(pred); i++) pred->data[i] += yb->data[i];
    }
    const float div = (float)(nc + 1);
    for (int64_t i = 0; i < vp_tensor_numel(pred); i++) pred->data[i] /= div;
    vp_tensor_free(&xf), vp_tensor_free(&yf), vp_tensor_free(&yb);
    return rc;
}

/* One model over the padded image P (1, C, PD, PH, PW): aggregated logits (K, PD, PH, PW), divided. */
static int predict_one(const vp_unet *m, const vp_nn_backend *be, const vp_tensor *P, const vp_nnunet_opts *o,
                       const float *gauss, uint16_t *acc_h, float *acc_f)
{
    const int *pt = m->cfg.patch, K = m->cfg.n_classes;
    const int64_t C = P->shape[1], PD = P->shape[2], PH = P->shape[3], PW = P->shape[4], nv = PD * PH * PW;
    int64_t st[3][MAXSTEPS];
    int ns[3];
    for (int a = 0; a < 3; a++) {
        ns[a] = vp_nnunet_steps(P->shape[2 + a], pt[a], o->step, st[a], MAXSTEPS);
        if (ns[a] > MAXSTEPS) return vp_error("nnunet: %d tiles along axis %d (at most %d)", ns[a], a, MAXSTEPS);
    }
    uint16_t *nh = o->half ? vp_calloc((size_t)nv, 2) : NULL;
    float *nf = o->half ? NULL : vp_calloc((size_t)nv, sizeof(float));
    vp_tensor *x = vp_tensor_new5(1, C, pt[0], pt[1], pt[2]), *pred = vp_tensor_new5(1, K, pt[0], pt[1], pt[2]);
    const int64_t pv = (int64_t)pt[0] * pt[1] * pt[2];
    int rc = 0;
    for (int i0 = 0; i0 < ns[0] && !rc; i0++)
        for (int i1 = 0; i1 < ns[1] && !rc; i1++)
            for (int i2 = 0; i2 < ns[2] && !rc; i2++) {
                const int64_t o0 = st[0][i0], o1 = st[1][i1], o2 = st[2][i2];
                for (int64_t c = 0; c < C; c++)
                    for (int d = 0; d < pt[0]; d++)
                        for (int h = 0; h < pt[1]; h++)
                            memcpy(x->data + ((c * pt[0] + d) * pt[1] + h) * pt[2],
                                   P->data + ((c * PD + o0 + d) * PH + o1 + h) * PW + o2, sizeof(float) * (size_t)pt[2]);
                if ((rc = predict_tile(m, be, x, o->tta, pred))) break;
                for (int k = 0; k <= K; k++) /* k == K: the weight sum */
                    for (int d = 0; d < pt[0]; d++)
                        for (int h = 0; h < pt[1]; h++) {
                            const int64_t g0 = ((int64_t)d * pt[1] + h) * pt[2];
                            const int64_t a0 = ((o0 + d) * PH + o1 + h) * PW + o2;
                            const float *g = gauss + g0;
                            if (k < K) {
                                const float *p = pred->data + k * pv + g0;
                                if (o->half) {
                                    uint16_t *a = acc_h + k * nv + a0;
                                    for (int w = 0; w < pt[2]; w++) a[w] = f2h(h2f(a[w]) + p[w] * g[w]);
                                } else {
                                    float *a = acc_f + k * nv + a0;
                                    for (int w = 0; w < pt[2]; w++) a[w] += p[w] * g[w];
                                }
                            } else if (o->half) {
                                for (int w = 0; w < pt[2]; w++) nh[a0 + w] = f2h(h2f(nh[a0 + w]) + g[w]);
                            } else {
                                for (int w = 0; w < pt[2]; w++) nf[a0 + w] += g[w];
                            }
                        }
            }
    if (!rc)
        for (int k = 0; k < K; k++)
            for (int64_t i = 0; i < nv; i++) {
                if (o->half)
                    acc_h[k * nv + i] = f2h(h2f(acc_h[k * nv + i]) / h2f(nh[i]));
                else
                    acc_f[k * nv + i] /= nf[i];
            }
    free(nh), free(nf);
    vp_tensor_free(&x), vp_tensor_free(&pred);
    return rc;
}

vp_nnunet_result *vp_nnunet_predict(vp_unet *const *models, int n, const vp_nn_backend *be, const vp_tensor *img,
                                    const vp_nnunet_opts *o)
{
    const vp_unet_cfg *c = &models[0]->cfg;
    if (vp_nn_check_act("nnunet", "image", img)) return NULL;
    if (img->shape[0] != 1 || img->shape[1] != c->in_ch)
        return vp_error("nnunet: image has %lld channels, the model takes %d", (long long)img->shape[1], c->in_ch), NULL;
    for (int i = 1; i < n; i++)
        if (memcmp(models[i]->cfg.patch, c->patch, sizeof c->patch) || models[i]->cfg.n_classes != c->n_classes ||
            models[i]->cfg.in_ch != c->in_ch)
            return vp_error("nnunet: model %d differs from model 0 in patch size, classes or channels", i), NULL;
    if (!(o->step > 0 && o->step <= 1)) return vp_error("nnunet: tile step %g not in (0, 1]", o->step), NULL;
    /* pad_nd_image: zeros, centred */
    int64_t pd[3], lo[3];
    const int64_t C = img->shape[1];
    for (int a = 0; a < 3; a++) {
        const int64_t s = img->shape[2 + a];
        pd[a] = s > c->patch[a] ? s : c->patch[a];
        lo[a] = (pd[a] - s) / 2;
    }
    vp_tensor *P = vp_tensor_zeros(5, (int64_t[5]){1, C, pd[0], pd[1], pd[2]});
    const int64_t D = img->shape[2], H = img->shape[3], W = img->shape[4];
    for (int64_t ch = 0; ch < C; ch++)
        for (int64_t d = 0; d < D; d++)
            for (int64_t h = 0; h < H; h++)
                memcpy(P->data + ((ch * pd[0] + d + lo[0]) * pd[1] + h + lo[1]) * pd[2] + lo[2],
                       img->data + ((ch * D + d) * H + h) * W, sizeof(float) * (size_t)W);
    const int K = c->n_classes;
    const int64_t nv = pd[0] * pd[1] * pd[2];
    float *gauss = vp_malloc(sizeof(float) * (size_t)c->patch[0] * c->patch[1] * c->patch[2]);
    vp_nnunet_gaussian(c->patch, o->half, gauss);
    uint16_t *ah = o->half ? vp_malloc((size_t)K * nv * 2) : NULL, *sumh = NULL;
    float *af = o->half ? NULL : vp_malloc((size_t)K * nv * sizeof(float)), *sumf = NULL;
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        if (o->half) memset(ah, 0, (size_t)K * nv * 2);
        else memset(af, 0, (size_t)K * nv * sizeof(float));
        if ((rc = predict_one(models[i], be, P, o, gauss, ah, af))) break;
        if (n == 1) break;
        if (i == 0) { /* prediction = first; then prediction += next (in the aggregation dtype) */
            if (o->half) sumh = ah, ah = vp_malloc((size_t)K * nv * 2);
            else sumf = af, af = vp_malloc((size_t)K * nv * sizeof(float));
            continue;
        }
        for (int64_t j = 0; j < K * nv; j++) {
            if (o->half) sumh[j] = f2h(h2f(sumh[j]) + h2f(ah[j]));
            else sumf[j] += af[j];
        }
    }
    if (!rc && n > 1) {
        free(ah), free(af);
        ah = sumh, af = sumf;
        sumh = NULL, sumf = NULL;
        for (int64_t j = 0; j < K * nv; j++) {
            if (o->half) ah[j] = f2h(h2f(ah[j]) / (float)n);
            else af[j] /= (float)n;
        }
    }
    free(sumh), free(sumf), free(gauss);
    vp_tensor_free(&P);
    if (rc) {
        free(ah), free(af);
        return NULL;
    }
    /* crop back to the input grid */
    vp_nnunet_result *r = vp_calloc(1, sizeof *r);
    r->n_classes = K, r->half = o->half;
    r->dims[0] = D, r->dims[1] = H, r->dims[2] = W;
    const size_t es = o->half ? 2 : 4;
    unsigned char *src = o->half ? (unsigned char *)ah : (unsigned char *)af;
    unsigned char *dst = vp_malloc((size_t)K * D * H * W * es);
    for (int64_t k = 0; k < K; k++)
        for (int64_t d = 0; d < D; d++)
            for (int64_t h = 0; h < H; h++)
                memcpy(dst + (((k * D + d) * H + h) * W) * es,
                       src + ((k * nv) + ((d + lo[0]) * pd[1] + h + lo[1]) * pd[2] + lo[2]) * es, (size_t)W * es);
    free(src);
    if (o->half) r->h = (uint16_t *)dst;
    else r->f = (float *)dst;
    return r;
}

float vp_nnunet_logit(const vp_nnunet_result *r, int k, int64_t i)
{
    const int64_t nv = r->dims[0] * r->dims[1] * r->dims[2];
    return r->half ? h2f(r->h[k * nv + i]) : r->f[k * nv + i];
}

void vp_nnunet_argmax(const vp_nnunet_result *r, int32_t *out)
{
    const int64_t nv = r->dims[0] * r->dims[1] * r->dims[2];
    for (int64_t i = 0; i < nv; i++) {
        int best = 0;
        float bv = vp_nnunet_logit(r, 0, i);
        for (int k = 1; k < r->n_classes; k++) {
            float v = vp_nnunet_logit(r, k, i);
            if (v > bv) bv = v, best = k;
        }
        out[i] = best;
    }
}

void vp_nnunet_result_free(vp_nnunet_result **rp)
{
    if (!*rp) return;
    free((*rp)->h), free((*rp)->f), free(*rp);
    *rp = NULL;
}
