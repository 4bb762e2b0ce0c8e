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

/* The aggregation band: padded rows [base, base + r0) along d, per model the logit sums
 * (K, r0, PH, PW) in the aggregation dtype, and the importance-weight sums (r0, PH, PW) (the same
 * for every model: same patch, same tiles). */
struct band {
    int K, half, n;
    int64_t r0, PH, PW, plane, base;
    uint16_t **h; /* n models, when half */
    float **f;    /* n models, otherwise */
    uint16_t *wh;
    float *wf;
};

static void band_init(struct band *b, int K, int half, int n, int64_t r0, int64_t PH, int64_t PW)
{
    memset(b, 0, sizeof *b);
    b->K = K, b->half = half, b->n = n, b->r0 = r0, b->PH = PH, b->PW = PW, b->plane = PH * PW;
    const size_t cnt = (size_t)((int64_t)K * r0 * b->plane);
    if (half) {
        b->h = vp_calloc((size_t)n, sizeof *b->h);
        for (int i = 0; i < n; i++) b->h[i] = vp_calloc(cnt, 2);
        b->wh = vp_calloc((size_t)(r0 * b->plane), 2);
    } else {
        b->f = vp_calloc((size_t)n, sizeof *b->f);
        for (int i = 0; i < n; i++) b->f[i] = vp_calloc(cnt, sizeof(float));
        b->wf = vp_calloc((size_t)(r0 * b->plane), sizeof(float));
    }
}

static void band_free(struct band *b)
{
    for (int i = 0; i < b->n; i++) {
        if (b->h) free(b->h[i]);
        if (b->f) free(b->f[i]);
    }
    free(b->h), free(b->f), free(b->wh), free(b->wf);
}

/* Shift a (planes, r0, plane) array of es-byte values by sh rows (rows below the new base are
 * dropped), zeroing the rows that come in at the end. */
static void shift_rows(unsigned char *a, int64_t planes, int64_t r0, int64_t plane, int64_t sh, size_t es)
{
    const int64_t keep = r0 - sh > 0 ? r0 - sh : 0, fresh = r0 - keep;
    for (int64_t k = 0; k < planes; k++) {
        unsigned char *p = a + (size_t)(k * r0 * plane) * es;
        if (keep) memmove(p, p + (size_t)((r0 - keep) * plane) * es, (size_t)(keep * plane) * es);
        memset(p + (size_t)(keep * plane) * es, 0, (size_t)(fresh * plane) * es);
    }
}

static void band_advance(struct band *b, int64_t nb)
{
    const int64_t sh = nb - b->base;
    const size_t es = b->half ? 2 : 4;
    for (int i = 0; i < b->n; i++)
        shift_rows(b->half ? (unsigned char *)b->h[i] : (unsigned char *)b->f[i], b->K, b->r0, b->plane, sh, es);
    shift_rows(b->half ? (unsigned char *)b->wh : (unsigned char *)b->wf, 1, b->r0, b->plane, sh, es);
    b->base = nb;
}

/* Padded rows [from, to) are final: divide each model's sums by the weights, average the models
 * as nnU-Net does (prediction = first; += each next, in the aggregation dtype; / n), crop the
 * padding (lo, the input's H, W) and emit the rows that lie inside the input. */
static int band_emit(const struct band *b, int64_t from, int64_t to, const int64_t lo[3], const int64_t in[3], void *row,
                     vp_nnunet_emit_fn emit, void *ectx)
{
    const int64_t H = in[1], W = in[2];
    for (int64_t pr = from; pr < to; pr++) {
        const int64_t d = pr - lo[0], slot = pr - b->base;
        if (d < 0 || d >= in[0]) continue;
        for (int64_t k = 0; k < b->K; k++)
            for (int64_t h = 0; h < H; h++) {
                const int64_t so = slot * b->plane + (h + lo[1]) * b->PW + lo[2], ao = k * b->r0 * b->plane + so;
                const int64_t oo = (k * H + h) * W;
                if (b->half) {
                    uint16_t *o = (uint16_t *)row + oo;
                    const uint16_t *w = b->wh + so;
                    for (int64_t x = 0; x < W; x++) {
                        uint16_t sum = f2h(h2f(b->h[0][ao + x]) / h2f(w[x]));
                        for (int i = 1; i < b->n; i++) sum = f2h(h2f(sum) + h2f(f2h(h2f(b->h[i][ao + x]) / h2f(w[x]))));
                        o[x] = b->n > 1 ? f2h(h2f(sum) / (float)b->n) : sum;
                    }
                } else {
                    float *o = (float *)row + oo;
                    const float *w = b->wf + so;
                    for (int64_t x = 0; x < W; x++) {
                        float sum = b->f[0][ao + x] / w[x];
                        for (int i = 1; i < b->n; i++) sum += b->f[i][ao + x] / w[x];
                        o[x] = b->n > 1 ? sum / (float)b->n : sum;
                    }
                }
            }
        if (emit(ectx, d, row)) return -1;
    }
    return 0;
}

/* Add one tile's prediction (K, pt) times the importance map into model mi's band at padded
 * origin (o0, o1, o2); the weights too when add_w. */
static void band_add(struct band *b, int mi, const int pt[3], const float *pred, const float *gauss, int64_t o0, int64_t o1,
                     int64_t o2, int add_w)
{
    const int64_t pv = (int64_t)pt[0] * pt[1] * pt[2], off = o0 - b->base;
    for (int k = 0; k <= b->K; k++) /* k == K: the weight sum */
        for (int d = 0; d < pt[0]; d++)
            for (int h = 0; h < pt[1]; h++) {
                const int64_t g0 = ((int64_t)d * pt[1] + h) * pt[2];
                const int64_t a0 = (off + d) * b->plane + (o1 + h) * b->PW + o2;
                const float *g = gauss + g0;
                if (k < b->K) {
                    const float *p = pred + k * pv + g0;
                    if (b->half) {
                        uint16_t *a = b->h[mi] + k * b->r0 * b->plane + a0;
                        for (int w = 0; w < pt[2]; w++) a[w] = f2h(h2f(a[w]) + p[w] * g[w]);
                    } else {
                        float *a = b->f[mi] + k * b->r0 * b->plane + a0;
                        for (int w = 0; w < pt[2]; w++) a[w] += p[w] * g[w];
                    }
                } else if (!add_w) {
                    break;
                } else if (b->half) {
                    for (int w = 0; w < pt[2]; w++) b->wh[a0 + w] = f2h(h2f(b->wh[a0 + w]) + g[w]);
                } else {
                    for (int w = 0; w < pt[2]; w++) b->wf[a0 + w] += g[w];
                }
            }
}

int vp_nnunet_predict_rows(vp_unet *const *models, int n, const vp_nn_backend *be, const vp_tensor *img,
                           const vp_nnunet_opts *o, vp_nnunet_emit_fn emit, void *ectx)
{
    const vp_unet_cfg *c = &models[0]->cfg;
    if (vp_nn_check_act("nnunet", "image", img)) return -1;
    if (img->shape[0] != 1 || img->shape[1] != c->in_ch)
        return vp_error("nnunet: image has %lld channels, the model takes %d", (long long)img->shape[1], c->in_ch);
    for (int i = 1; i < n; i++)
        if (memcmp(models[i]->cfg.patch, c->patch, sizeof c->patch) || models[i]->cfg.n_classes != c->n_classes ||
            models[i]->cfg.in_ch != c->in_ch)
            return vp_error("nnunet: model %d differs from model 0 in patch size, classes or channels", i);
    if (!(o->step > 0 && o->step <= 1)) return vp_error("nnunet: tile step %g not in (0, 1]", o->step);
    /* pad_nd_image: zeros, centred */
    const int *pt = c->patch, K = c->n_classes;
    int64_t pd[3], lo[3], st[3][MAXSTEPS];
    int ns[3];
    const int64_t C = img->shape[1], in[3] = {img->shape[2], img->shape[3], img->shape[4]};
    for (int a = 0; a < 3; a++) {
        pd[a] = in[a] > pt[a] ? in[a] : pt[a];
        lo[a] = (pd[a] - in[a]) / 2;
        ns[a] = vp_nnunet_steps(pd[a], pt[a], o->step, st[a], MAXSTEPS);
        if (ns[a] > MAXSTEPS) return vp_error("nnunet: %d tiles along axis %d (at most %d)", ns[a], a, MAXSTEPS);
    }
    vp_tensor *P = vp_tensor_zeros(5, (int64_t[5]){1, C, pd[0], pd[1], pd[2]});
    for (int64_t ch = 0; ch < C; ch++)
        for (int64_t d = 0; d < in[0]; d++)
            for (int64_t h = 0; h < in[1]; h++)
                memcpy(P->data + ((ch * pd[0] + d + lo[0]) * pd[1] + h + lo[1]) * pd[2] + lo[2],
                       img->data + ((ch * in[0] + d) * in[1] + h) * in[2], sizeof(float) * (size_t)in[2]);
    float *gauss = vp_malloc(sizeof(float) * (size_t)pt[0] * pt[1] * pt[2]);
    vp_nnunet_gaussian(pt, o->half, gauss);
    struct band b;
    band_init(&b, K, o->half, n, pt[0], pd[1], pd[2]);
    void *row = vp_malloc((size_t)K * (size_t)(in[1] * in[2]) * (o->half ? 2 : 4));
    vp_tensor *x = vp_tensor_new5(1, C, pt[0], pt[1], pt[2]), *pred = vp_tensor_new5(1, K, pt[0], pt[1], pt[2]);
    int rc = 0;
    /* nnU-Net's tile order (d, h, w) per model; the models' sums are independent, so running every
     * model on one d-row of tiles before the next gives the same values per voxel */
    for (int i0 = 0; i0 < ns[0] && !rc; i0++) {
        const int64_t o0 = st[0][i0];
        if (o0 > b.base) { /* rows below o0 get no more tiles: final */
            if ((rc = band_emit(&b, b.base, o0, lo, in, row, emit, ectx))) break;
            band_advance(&b, o0);
        }
        for (int mi = 0; mi < n && !rc; mi++)
            for (int i1 = 0; i1 < ns[1] && !rc; i1++)
                for (int i2 = 0; i2 < ns[2] && !rc; i2++) {
                    const int64_t o1 = st[1][i1], o2 = st[2][i2];
                    for (int64_t ch = 0; ch < C; ch++)
                        for (int d = 0; d < pt[0]; d++)
                            for (int h = 0; h < pt[1]; h++)
                                memcpy(x->data + ((ch * pt[0] + d) * pt[1] + h) * pt[2],
                                       P->data + ((ch * pd[0] + o0 + d) * pd[1] + o1 + h) * pd[2] + o2,
                                       sizeof(float) * (size_t)pt[2]);
                    if ((rc = predict_tile(models[mi], be, x, o->tta, pred))) break;
                    band_add(&b, mi, pt, pred->data, gauss, o0, o1, o2, mi == 0);
                }
    }
    if (!rc) rc = band_emit(&b, b.base, b.base + b.r0, lo, in, row, emit, ectx);
    band_free(&b);
    free(row), free(gauss);
    vp_tensor_free(&x), vp_tensor_free(&pred), vp_tensor_free(&P);
    return rc ? -1 : 0;
}

struct collect {
    vp_nnunet_result *r;
    size_t es;
};

static int emit_collect(void *ectx, int64_t d, const void *row)
{
    struct collect *cl = ectx;
    vp_nnunet_result *r = cl->r;
    const int64_t D = r->dims[0], hw = r->dims[1] * r->dims[2];
    unsigned char *dst = r->half ? (unsigned char *)r->h : (unsigned char *)r->f;
    for (int64_t k = 0; k < r->n_classes; k++)
        memcpy(dst + (size_t)((k * D + d) * hw) * cl->es, (const unsigned char *)row + (size_t)(k * hw) * cl->es,
               (size_t)hw * cl->es);
    return 0;
}

vp_nnunet_result *vp_nnunet_predict(vp_unet *const *models, int n, const vp_nn_backend *be, const vp_tensor *img,
                                    const vp_nnunet_opts *o)
{
    if (vp_nn_check_act("nnunet", "image", img)) return NULL;
    vp_nnunet_result *r = vp_calloc(1, sizeof *r);
    r->n_classes = models[0]->cfg.n_classes, r->half = o->half;
    for (int a = 0; a < 3; a++) r->dims[a] = img->shape[2 + a];
    struct collect cl = {r, o->half ? 2 : 4};
    const size_t cnt = (size_t)((int64_t)r->n_classes * r->dims[0] * r->dims[1] * r->dims[2]);
    if (o->half) r->h = vp_malloc(cnt * 2);
    else r->f = vp_malloc(cnt * sizeof(float));
    if (vp_nnunet_predict_rows(models, n, be, img, o, emit_collect, &cl)) {
        vp_nnunet_result_free(&r);
        return NULL;
    }
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
