/* normalize.c - see normalize.h */
#include "normalize.h"
#include "bigbuf.h"
#include "parallel.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK ((uint64_t)1 << 16) /* voxels per work item; fixed, so reductions do not depend on threads */

vp_vol *vp_vol_new_f32(const vp_vol *like)
{
    vp_vol *o = vp_vol_wrap(like->dims, VP_F32, like->affine, vp_big_alloc(vp_vol_nvox(like) * sizeof(float)), 0);
    o->has_channels = like->has_channels;
    return o;
}

vp_vol *vp_vol_to_f32(const vp_vol *v)
{
    vp_vol *o = vp_vol_new_f32(v);
    struct vp_elem copy = {.kind = VP_ELEM_COPY};
    vp_elem_apply(v, o, 0, vp_vol_nvox(v), &copy);
    return o;
}

/* src voxels [i, i+n) as float into d */
static void convert(const vp_vol *v, uint64_t i, uint64_t n, float *restrict d)
{
#define CONV(T)                                                \
    do {                                                       \
        const T *restrict s = (const T *)v->data + i;          \
        for (uint64_t k = 0; k < n; k++) d[k] = (float)s[k];   \
    } while (0)
    switch (v->dtype) {
    case VP_U8: CONV(uint8_t); break;
    case VP_I16: CONV(int16_t); break;
    case VP_U16: CONV(uint16_t); break;
    case VP_I32: CONV(int32_t); break;
    case VP_F32: memcpy(d, (const float *)v->data + i, n * sizeof(float)); break;
    default: for (uint64_t k = 0; k < n; k++) d[k] = (float)vp_vol_get(v, i + k);
    }
#undef CONV
}

static void elem(const struct vp_elem *op, float *restrict x, uint64_t n)
{
    switch (op->kind) {
    case VP_ELEM_COPY: break;
    case VP_ELEM_RANGE: {
        float a0 = (float)op->a0, da = (float)(op->a1 - op->a0), db = (float)(op->b1 - op->b0), b0 = (float)op->b0,
              lo = (float)op->b0, hi = (float)op->b1;
        for (uint64_t k = 0; k < n; k++) {
            float t = (x[k] - a0) / da;
            if (op->has_b) t = t * db + b0;
            if (op->clip) t = t < lo ? lo : t > hi ? hi : t;
            x[k] = t;
        }
        break;
    }
    case VP_ELEM_SUBDIV: {
        float sub = (float)op->sub, div = (float)op->div;
        if (op->nonzero) {
            for (uint64_t k = 0; k < n; k++)
                if (x[k] != 0) x[k] = (x[k] - sub) / div;
        } else
            for (uint64_t k = 0; k < n; k++) x[k] = (x[k] - sub) / div;
        break;
    }
    case VP_ELEM_CT: {
        float lo = (float)op->lo, hi = (float)op->hi, mean = (float)op->sub, sd = (float)(op->div > 1e-8 ? op->div : 1e-8);
        for (uint64_t k = 0; k < n; k++) {
            float t = x[k] < lo ? lo : x[k] > hi ? hi : x[k];
            t -= mean;
            x[k] = t / sd;
        }
        break;
    }
    case VP_ELEM_MINMAX: {
        float mn = (float)op->a0, mx = (float)op->a1, db = (float)(op->b1 - op->b0), b0 = (float)op->b0;
        if (mn == mx) {
            for (uint64_t k = 0; k < n; k++) x[k] = x[k] * b0;
            break;
        }
        float d = mx - mn;
        for (uint64_t k = 0; k < n; k++) x[k] = (x[k] - mn) / d * db + b0;
        break;
    }
    }
}

struct apply_ctx {
    const vp_vol *src;
    vp_vol *dst;
    uint64_t off;
    const struct vp_elem *op;
};

static void apply_range(void *p, uint64_t b, uint64_t e, int worker)
{
    struct apply_ctx *c = p;
    float *d = (float *)c->dst->data + c->off + b;
    if (c->src->data != c->dst->data) convert(c->src, c->off + b, e - b, d);
    elem(c->op, d, e - b);
}

void vp_elem_apply(const vp_vol *src, vp_vol *dst, uint64_t off, uint64_t n, const struct vp_elem *op)
{
    struct apply_ctx c = {src, dst, off, op};
    vp_parallel_for(n, CHUNK, apply_range, &c);
}

/* ---- histograms of 8- and 16-bit integer volumes ---- */

static int small_int(enum vp_dtype t) { return t == VP_U8 || t == VP_I16 || t == VP_U16; }

static int fg_at(const vp_vol *m, uint64_t i)
{
    return m->dtype == VP_U8 ? ((const uint8_t *)m->data)[i] > 0 : vp_vol_get(m, i) > 0;
}

struct hist_ctx {
    const vp_vol *img, *mask; /* mask may be NULL: every voxel */
    uint64_t off;
    uint64_t **per_worker;
    int64_t base;
};

static void hist_range(void *p, uint64_t b, uint64_t e, int worker)
{
    struct hist_ctx *c = p;
    uint64_t *h = c->per_worker[worker];
    const vp_vol *m = c->mask;
#define HIST(T)                                                                          \
    do {                                                                                 \
        const T *s = (const T *)c->img->data + c->off;                                   \
        if (!m)                                                                          \
            for (uint64_t i = b; i < e; i++) h[(int64_t)s[i] - c->base]++;              \
        else if (m->dtype == VP_U8)                                                      \
            for (uint64_t i = b; i < e; i++) h[(int64_t)s[i] - c->base] += ((const uint8_t *)m->data)[c->off + i] > 0; \
        else                                                                             \
            for (uint64_t i = b; i < e; i++) if (fg_at(m, c->off + i)) h[(int64_t)s[i] - c->base]++; \
    } while (0)
    switch (c->img->dtype) {
    case VP_U8: HIST(uint8_t); break;
    case VP_I16: HIST(int16_t); break;
    default: HIST(uint16_t); break;
    }
#undef HIST
}

/* Histogram (65536 bins from *base) of voxels off .. off+n-1 of a u8/i16/u16 volume where mask > 0
 * (all with mask NULL): one per worker, merged; integer counts, so the same for any thread count. */
static uint64_t *hist16(const vp_vol *img, uint64_t off, uint64_t n, const vp_vol *mask, int64_t *base)
{
    int nw = vp_parallel_workers();
    struct hist_ctx c = {img, mask, off, vp_calloc((size_t)nw, sizeof(uint64_t *)), img->dtype == VP_I16 ? -32768 : 0};
    for (int w = 0; w < nw; w++) c.per_worker[w] = vp_calloc(65536, sizeof(uint64_t));
    vp_parallel_for(n, CHUNK, hist_range, &c);
    uint64_t *h = c.per_worker[0];
    for (int w = 1; w < nw; w++) {
        for (int i = 0; i < 65536; i++) h[i] += c.per_worker[w][i];
        free(c.per_worker[w]);
    }
    free(c.per_worker);
    *base = c.base;
    return h;
}

/* count, mean and population std of a histogram; sums in bin order (exact integer sum) */
static uint64_t hist_moments(const uint64_t *h, int64_t base, double *mean, double *std)
{
    uint64_t cnt = 0;
    int64_t sum = 0;
    for (int i = 0; i < 65536; i++) { cnt += h[i]; sum += (int64_t)h[i] * (i + base); }
    if (!cnt) { *mean = *std = 0; return 0; }
    double m = (double)sum / (double)cnt, q = 0;
    for (int i = 0; i < 65536; i++)
        if (h[i]) { double d = (double)(i + base) - m; q += (double)h[i] * d * d; }
    *mean = m;
    *std = sqrt(q / (double)cnt);
    return cnt;
}

/* ---- reductions ---- */

struct red_ctx {
    const vp_vol *v;
    uint64_t off;
    int nonzero;
    double mean;
    double *sum;     /* per chunk */
    uint64_t *count; /* per chunk */
    double *mn, *mx; /* per chunk */
};

/* value k of the chunk as double; the chunk is converted to float first (the peers' f32 values) */
static void red_range(void *p, uint64_t b, uint64_t e, int worker, int what)
{
    struct red_ctx *c = p;
    float buf[4096];
    uint64_t ci = b / CHUNK;
    double s = 0, lo = INFINITY, hi = -INFINITY;
    uint64_t cnt = 0;
    for (uint64_t i = b; i < e; i += 4096) {
        uint64_t m = e - i < 4096 ? e - i : 4096;
        convert(c->v, c->off + i, m, buf);
        for (uint64_t k = 0; k < m; k++) {
            float x = buf[k];
            if (isnan(x) || (c->nonzero && x == 0)) continue;
            cnt++;
            if (what == 0) s += x;
            else if (what == 1) { double d = (double)x - c->mean; s += d * d; }
            else { if (x < lo) lo = x; if (x > hi) hi = x; }
        }
    }
    c->sum[ci] = s;
    c->count[ci] = cnt;
    if (what == 2) { c->mn[ci] = lo; c->mx[ci] = hi; }
}
static void red_sum(void *p, uint64_t b, uint64_t e, int w) { red_range(p, b, e, w, 0); }
static void red_sq(void *p, uint64_t b, uint64_t e, int w) { red_range(p, b, e, w, 1); }
static void red_mm(void *p, uint64_t b, uint64_t e, int w) { red_range(p, b, e, w, 2); }

void vp_moments(const vp_vol *v, uint64_t off, uint64_t n, int nonzero, double *mean, double *std, uint64_t *count)
{
    if (small_int(v->dtype)) { /* one pass, exact sums */
        int64_t base;
        uint64_t *h = hist16(v, off, n, NULL, &base);
        if (nonzero) h[-base] = 0;
        *count = hist_moments(h, base, mean, std);
        free(h);
        return;
    }
    uint64_t nch = (n + CHUNK - 1) / CHUNK;
    struct red_ctx c = {v, off, nonzero, 0, vp_calloc(nch + 1, sizeof(double)), vp_calloc(nch + 1, sizeof(uint64_t)), NULL, NULL};
    vp_parallel_for(n, CHUNK, red_sum, &c);
    double s = 0;
    uint64_t cnt = 0;
    for (uint64_t i = 0; i < nch; i++) { s += c.sum[i]; cnt += c.count[i]; }
    *count = cnt;
    if (!cnt) { *mean = *std = 0; free(c.sum); free(c.count); return; }
    c.mean = s / (double)cnt;
    vp_parallel_for(n, CHUNK, red_sq, &c);
    double q = 0;
    for (uint64_t i = 0; i < nch; i++) q += c.sum[i];
    *mean = c.mean;
    *std = sqrt(q / (double)cnt);
    free(c.sum);
    free(c.count);
}

void vp_minmax(const vp_vol *v, uint64_t off, uint64_t n, double *mn, double *mx)
{
    uint64_t nch = (n + CHUNK - 1) / CHUNK;
    struct red_ctx c = {v, off, 0, 0, vp_calloc(nch + 1, sizeof(double)), vp_calloc(nch + 1, sizeof(uint64_t)),
                        vp_calloc(nch + 1, sizeof(double)), vp_calloc(nch + 1, sizeof(double))};
    vp_parallel_for(n, CHUNK, red_mm, &c);
    double lo = INFINITY, hi = -INFINITY;
    uint64_t cnt = 0;
    for (uint64_t i = 0; i < nch; i++) {
        if (!c.count[i]) continue;
        cnt += c.count[i];
        if (c.mn[i] < lo) lo = c.mn[i];
        if (c.mx[i] > hi) hi = c.mx[i];
    }
    *mn = cnt ? lo : NAN;
    *mx = cnt ? hi : NAN;
    free(c.sum); free(c.count); free(c.mn); free(c.mx);
}

/* ---- percentiles ---- */

double vp_percentile_linear(double q, uint64_t n, double (*kth)(void *ctx, uint64_t k), void *ctx)
{
    double idx = q / 100.0 * (double)(n - 1); /* np.percentile divides q by 100, then (n - 1) * q */
    if (idx <= 0) return kth(ctx, 0);
    if (idx >= (double)(n - 1)) return kth(ctx, n - 1);
    double prev = floor(idx), g = idx - prev;
    double a = kth(ctx, (uint64_t)prev), b = kth(ctx, (uint64_t)prev + 1), d = b - a;
    return g >= 0.5 ? b - d * (1 - g) : a + d * g; /* numpy's _lerp */
}

struct hist {
    uint64_t *h; /* 65536 bins */
    int64_t base;
};

static double hist_kth(void *p, uint64_t k)
{
    const struct hist *H = p;
    uint64_t cum = 0;
    for (int i = 0; i < 65536; i++) {
        cum += H->h[i];
        if (cum > k) return (double)(i + H->base);
    }
    return NAN;
}

/* k-th smallest of a double array (reorders it): quickselect with median-of-three pivots */
static double select_kth(double *a, uint64_t n, uint64_t k)
{
    uint64_t lo = 0, hi = n - 1;
    while (hi > lo) {
        uint64_t mid = lo + (hi - lo) / 2;
        double x = a[lo], y = a[mid], z = a[hi];
        double piv = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
        uint64_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] < piv) i++;
            while (a[j] > piv) j--;
            if (i <= j) {
                double t = a[i]; a[i] = a[j]; a[j] = t;
                i++;
                if (j == 0) break;
                j--;
            }
        }
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else return a[k];
    }
    return a[k];
}

struct sample {
    double *v, *work;
    uint64_t n;
};

static double sample_kth(void *p, uint64_t k)
{
    struct sample *s = p;
    memcpy(s->work, s->v, s->n * sizeof *s->v);
    return select_kth(s->work, s->n, k);
}

int64_t vp_ct_stats(const vp_vol *img, const vp_vol *mask, struct vp_ct_stats *s)
{
    uint64_t n = vp_vol_nvox(img);
    if (small_int(img->dtype)) { /* exact, one pass: a histogram */
        struct hist H;
        H.h = hist16(img, 0, n, mask, &H.base);
        uint64_t cnt = hist_moments(H.h, H.base, &s->mean, &s->std);
        if (cnt) {
            s->p00_5 = vp_percentile_linear(0.5, cnt, hist_kth, &H);
            s->p99_5 = vp_percentile_linear(99.5, cnt, hist_kth, &H);
        }
        free(H.h);
        return (int64_t)cnt;
    }
    uint64_t cnt = 0;
    for (uint64_t i = 0; i < n; i++) cnt += fg_at(mask, i) != 0;
    if (!cnt) return 0;
    struct sample S = {vp_malloc(cnt * sizeof(double)), vp_malloc(cnt * sizeof(double)), cnt};
    uint64_t k = 0;
    double sum = 0;
    int nan = 0;
    for (uint64_t i = 0; i < n; i++)
        if (fg_at(mask, i)) {
            double x = (double)(float)vp_vol_get(img, i); /* the f32 value the peers see */
            if (isnan(x)) nan = 1;
            sum += S.v[k++] = x;
        }
    if (!nan) {
        double mean = sum / (double)cnt, q = 0;
        for (uint64_t i = 0; i < cnt; i++) q += (S.v[i] - mean) * (S.v[i] - mean);
        s->mean = mean;
        s->std = sqrt(q / (double)cnt);
        s->p00_5 = vp_percentile_linear(0.5, cnt, sample_kth, &S);
        s->p99_5 = vp_percentile_linear(99.5, cnt, sample_kth, &S);
    }
    free(S.v);
    free(S.work);
    return nan ? -1 : (int64_t)cnt;
}
