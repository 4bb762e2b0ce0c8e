/* resample_sep.c - the separable path of vp_resample (see resample_core.h): when the output grid is
 * axis-aligned with the input (M diagonal), interpolation is a product of one-dimensional ones and
 * runs axis by axis with per-axis tap tables.
 *
 * x: each input row is loaded, [blurred], [padded + prefiltered] and interpolated along x (at
 *    order 1 without blur, gathered straight from the input's own type);
 * y: the x-interpolated rows of a slice are [blurred], [padded + prefiltered] and interpolated along
 *    y; without a filter along y, only the rows an output row needs are made, in a small cache;
 * z: the same with whole xy-slices: without a filter along z (order 1, no blur along z) each worker
 *    makes the slices its output slices need on demand (cache); otherwise all slices are made,
 *    filtered along z, then interpolated.
 * Each step is scipy's arithmetic along one axis (taps, weights, boundary). scipy applies the same
 * operators in another order (prefilter of the whole volume, then one (order+1)^3 sum), which is
 * equal up to rounding because operators along different axes commute.
 */
#include "resample_core.h"
#include "parallel.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

struct plan {
    int64_t n, npad, L;   /* input length, padding each side, coefficient line length */
    uint64_t no;          /* output length */
    int K;                /* taps per output */
    int64_t *idx;         /* no x K, into [0, L) or -1 (cval) */
    double *w;            /* no x K */
    int has_cval;         /* some tap is -1 */
};

static void plan_make(struct plan *p, uint64_t n, uint64_t no, double m, double t, const struct rs_sep *s)
{
    p->n = (int64_t)n;
    p->npad = rs_npad(s->order, s->mode);
    p->L = p->n + 2 * p->npad;
    p->no = no;
    p->K = s->order + 1;
    p->idx = vp_malloc(no * (size_t)p->K * sizeof *p->idx);
    p->w = vp_malloc(no * (size_t)p->K * sizeof *p->w);
    p->has_cval = 0;
    for (uint64_t o = 0; o < no; o++) /* c = m*o + t: the general formula with zero off-diagonals */
        rs_taps(m * (double)o + t, s->order, s->mode, p->n, p->npad, p->idx + o * p->K, p->w + o * p->K);
    for (uint64_t q = 0; q < no * (uint64_t)p->K; q++) p->has_cval |= p->idx[q] < 0;
}

static void plan_free(struct plan *p)
{
    free(p->idx);
    free(p->w);
}

/* a few buffers of `len` doubles keyed by an index, least recently used replaced: the taps of
 * consecutive outputs move monotonically, so each row or slice is made once per run of outputs */
enum { NCACHE = RS_MAXTAP + 1 };
struct cache {
    int64_t key[NCACHE];
    uint64_t used[NCACHE], tick;
    double *buf;
    size_t len;
};

static void cache_init(struct cache *c, double *buf, size_t len)
{
    for (int q = 0; q < NCACHE; q++) c->key[q] = -1, c->used[q] = 0;
    c->tick = 0;
    c->buf = buf;
    c->len = len;
}

/* the buffer of `key`; *miss = 1 when the caller must fill it. Buffers got for one output stay
 * until the next NCACHE - 1 gets, more than the K <= 4 taps of an output need. */
static double *cache_get(struct cache *c, int64_t key, int *miss)
{
    int lru = 0;
    for (int q = 0; q < NCACHE; q++) {
        if (c->key[q] == key) { c->used[q] = ++c->tick; *miss = 0; return c->buf + q * c->len; }
        if (c->used[q] < c->used[lru]) lru = q;
    }
    c->key[lru] = key;
    c->used[lru] = ++c->tick;
    *miss = 1;
    return c->buf + lru * c->len;
}

struct sep_ctx {
    const struct rs_sep *s;
    struct plan px, py, pz;
    struct rs_gauss gx, gy;
    int x_direct;         /* order 1, no blur, no cval taps along x: gather from the input type */
    int y_rows;           /* nothing along y but interpolation: rows on demand */
    double *xy;           /* all xy-slices (nxo x nyo x Lz) when z is filtered, else NULL */
    double **scratch;     /* per worker */
    size_t scratch_len;
};

/* per-worker scratch: row[nx] rowg[nx] line[Lx+1] acc[max(nx,nxo)] cvalrow[nxo] X[...] Xg[ny*nxo]
 * Yp[Ly*nxo] zacc[nxo] slices[NCACHE*nxo*nyo] (the last two for the z cache only) */
struct scratch {
    double *row, *rowg, *line, *acc, *cvalrow, *X, *Xg, *Yp, *zacc, *slices;
};

static void scratch_layout(const struct sep_ctx *c, double *base, struct scratch *w, size_t *len)
{
    const struct rs_sep *s = c->s;
    uint64_t nx = s->n[0], ny = s->n[1], nxo = s->no[0], nyo = s->no[1];
    uint64_t xrows = c->y_rows ? NCACHE : ny;
    size_t off = 0;
#define TAKE(f, n) (w->f = base ? base + off : NULL, off += (size_t)(n))
    TAKE(row, nx);
    TAKE(rowg, nx);
    TAKE(line, (uint64_t)c->px.L + 1);
    TAKE(acc, nx > nxo ? nx : nxo);
    TAKE(cvalrow, nxo);
    TAKE(X, xrows * nxo);
    TAKE(Xg, c->y_rows ? 0 : ny * nxo);
    TAKE(Yp, c->y_rows ? 0 : (uint64_t)c->py.L * nxo);
    TAKE(zacc, nxo);
    TAKE(slices, c->xy ? 0 : NCACHE * nxo * nyo);
#undef TAKE
    *len = off;
}

static struct scratch worker_scratch(struct sep_ctx *c, int worker)
{
    struct scratch w;
    size_t len;
    if (!c->scratch[worker]) {
        c->scratch[worker] = vp_malloc(c->scratch_len * sizeof(double));
        scratch_layout(c, c->scratch[worker], &w, &len);
        for (uint64_t i = 0; i < c->s->no[0]; i++) w.cvalrow[i] = c->s->cval;
    }
    scratch_layout(c, c->scratch[worker], &w, &len);
    return w;
}

/* order 1 along x, straight from the input type: out[o] = w0 * in[i0] + w1 * in[i1] */
#define GATHER2(T)                                                                          \
    do {                                                                                    \
        const T *r = (const T *)s->data + off;                                              \
        for (uint64_t o = 0; o < nxo; o++)                                                  \
            out[o] = w[2 * o] * (double)r[ix[2 * o]] + w[2 * o + 1] * (double)r[ix[2 * o + 1]]; \
    } while (0)

/* input row (y, z) interpolated along x into out (nxo) */
static void row_x(const struct sep_ctx *c, uint64_t y, uint64_t z, const struct scratch *w_, double *out)
{
    const struct rs_sep *s = c->s;
    const struct plan *px = &c->px;
    const uint64_t nx = s->n[0], nxo = s->no[0], off = (z * s->n[1] + y) * nx;
    const int64_t *ix = px->idx;
    const double *w = px->w;
    if (c->x_direct) {
        switch (s->t) {
        case VP_U8: GATHER2(uint8_t); return;
        case VP_I16: GATHER2(int16_t); return;
        case VP_U16: GATHER2(uint16_t); return;
        case VP_I32: GATHER2(int32_t); return;
        case VP_F32: GATHER2(float); return;
        default: break; /* f16: through a double row */
        }
    }
    double *line = w_->line;
    rs_load(s->data, s->t, off, nx, w_->row);
    const double *src = w_->row;
    if (c->gx.w) { rs_gauss_lines(w_->row, w_->rowg, (int64_t)nx, 1, &c->gx, s->mode, w_->cvalrow); src = w_->rowg; }
    memcpy(line + px->npad, src, nx * sizeof *line);
    rs_pad_lines(line, px->n, px->npad, 1, s->mode, s->cval);
    line[px->L] = s->cval; /* tap -1 reads here */
    if (s->order == 3) rs_prefilter(line, px->L, 1, s->mode == VP_EXTEND_MIRROR, w_->acc);
    const int K = px->K;
    for (uint64_t o = 0; o < nxo; o++) {
        double v = 0;
        for (int k = 0; k < K; k++) {
            int64_t i = ix[o * K + k];
            v += w[o * K + k] * line[i < 0 ? px->L : i];
        }
        out[o] = v;
    }
}

/* out (n doubles) = sum_k w[k] * rows[k] */
static void combine(double *out, const double *const *rows, const double *w, int K, uint64_t n)
{
    const double *r0 = rows[0], w0 = w[0];
    for (uint64_t i = 0; i < n; i++) out[i] = w0 * r0[i];
    for (int k = 1; k < K; k++) {
        const double *r = rows[k], wk = w[k];
        for (uint64_t i = 0; i < n; i++) out[i] += wk * r[i];
    }
}

/* input slice z interpolated along x then y into dst (nxo x nyo) */
static void slice_xy(const struct sep_ctx *c, uint64_t z, const struct scratch *w, double *dst)
{
    const struct rs_sep *s = c->s;
    const struct plan *py = &c->py;
    const uint64_t ny = s->n[1], nxo = s->no[0], nyo = s->no[1];
    const int K = py->K;
    const double *rows[RS_MAXTAP];
    if (c->y_rows) {
        struct cache rc;
        cache_init(&rc, w->X, nxo);
        for (uint64_t o = 0; o < nyo; o++) {
            for (int k = 0; k < K; k++) {
                int64_t i = py->idx[o * K + k];
                int miss = 0;
                if (i < 0) { rows[k] = w->cvalrow; continue; }
                double *r = cache_get(&rc, i, &miss);
                if (miss) row_x(c, (uint64_t)i, z, w, r);
                rows[k] = r;
            }
            combine(dst + o * nxo, rows, py->w + o * K, K, nxo);
        }
        return;
    }
    for (uint64_t y = 0; y < ny; y++) row_x(c, y, z, w, w->X + y * nxo);
    const double *src = w->X;
    if (c->gy.w) { rs_gauss_lines(w->X, w->Xg, (int64_t)ny, (int64_t)nxo, &c->gy, s->mode, w->cvalrow); src = w->Xg; }
    memcpy(w->Yp + py->npad * nxo, src, ny * nxo * sizeof *w->Yp);
    rs_pad_lines(w->Yp, py->n, py->npad, (int64_t)nxo, s->mode, s->cval);
    if (s->order == 3) rs_prefilter(w->Yp, py->L, (int64_t)nxo, s->mode == VP_EXTEND_MIRROR, w->acc);
    for (uint64_t o = 0; o < nyo; o++) {
        for (int k = 0; k < K; k++) {
            int64_t i = py->idx[o * K + k];
            rows[k] = i < 0 ? w->cvalrow : w->Yp + i * nxo;
        }
        combine(dst + o * nxo, rows, py->w + o * K, K, nxo);
    }
}

/* all xy-slices, for a filter along z: input slices [z0, z1) */
static void stage_xy(void *ctx, uint64_t z0, uint64_t z1, int worker)
{
    struct sep_ctx *c = ctx;
    struct scratch w = worker_scratch(c, worker);
    const uint64_t plane = c->s->no[0] * c->s->no[1];
    for (uint64_t z = z0; z < z1; z++) slice_xy(c, z, &w, c->xy + ((int64_t)z + c->pz.npad) * plane);
}

/* output slices [o0, o1): interpolation along z of xy-slices, all made (c->xy) or on demand */
static void stage_z(void *ctx, uint64_t o0, uint64_t o1, int worker)
{
    struct sep_ctx *c = ctx;
    const struct rs_sep *s = c->s;
    const struct plan *pz = &c->pz;
    const uint64_t nxo = s->no[0], nyo = s->no[1], plane = nxo * nyo;
    struct scratch w = worker_scratch(c, worker);
    struct cache sc;
    cache_init(&sc, w.slices, plane);
    const int K = pz->K;
    for (uint64_t o = o0; o < o1; o++) {
        const double *sl[RS_MAXTAP];
        for (int k = 0; k < K; k++) {
            int64_t i = pz->idx[o * K + k];
            int miss = 0;
            if (i < 0) sl[k] = NULL;
            else if (c->xy) sl[k] = c->xy + i * plane;
            else {
                double *p = cache_get(&sc, i, &miss);
                if (miss) slice_xy(c, (uint64_t)i, &w, p);
                sl[k] = p;
            }
        }
        for (uint64_t y = 0; y < nyo; y++) {
            const double *rows[RS_MAXTAP];
            for (int k = 0; k < K; k++) rows[k] = sl[k] ? sl[k] + y * nxo : w.cvalrow;
            combine(w.zacc, rows, pz->w + o * K, K, nxo);
            rs_store(w.zacc, nxo, s->ot, s->out, (o * nyo + y) * nxo);
        }
    }
}

void rs_separable(const struct rs_sep *s)
{
    struct sep_ctx c;
    memset(&c, 0, sizeof c);
    c.s = s;
    plan_make(&c.px, s->n[0], s->no[0], s->m[0][0], s->m[0][3], s);
    plan_make(&c.py, s->n[1], s->no[1], s->m[1][1], s->m[1][3], s);
    plan_make(&c.pz, s->n[2], s->no[2], s->m[2][2], s->m[2][3], s);
    if (s->sigma[0] > 0) rs_gauss_make(s->sigma[0], &c.gx);
    if (s->sigma[1] > 0) rs_gauss_make(s->sigma[1], &c.gy);
    c.x_direct = s->order == 1 && !c.gx.w && !c.px.has_cval;
    c.y_rows = s->order < 3 && !c.gy.w;
    int z_filtered = s->order == 3 || s->sigma[2] > 0;
    const uint64_t nxo = s->no[0], nyo = s->no[1];
    if (z_filtered) c.xy = vp_malloc((size_t)c.pz.L * nyo * nxo * sizeof *c.xy);
    scratch_layout(&c, NULL, &(struct scratch){0}, &c.scratch_len);
    int nw = vp_parallel_workers();
    c.scratch = vp_calloc((size_t)nw, sizeof *c.scratch);

    if (z_filtered) {
        vp_parallel_for(s->n[2], 1, stage_xy, &c);
        const int64_t L[3] = {(int64_t)nxo, (int64_t)nyo, c.pz.L};
        rs_filter_axis(c.xy, L, 2, c.pz.n, c.pz.npad, s->sigma[2], s->order == 3, s->mode, s->cval);
        vp_parallel_for(s->no[2], 1, stage_z, &c);
    } else { /* contiguous runs of output slices per worker, few slices made twice */
        uint64_t grain = s->no[2] / (2 * (uint64_t)nw);
        vp_parallel_for(s->no[2], grain ? grain : 1, stage_z, &c);
    }

    for (int i = 0; i < nw; i++) free(c.scratch[i]);
    free(c.scratch);
    free(c.xy);
    rs_gauss_free(&c.gx);
    rs_gauss_free(&c.gy);
    plan_free(&c.px);
    plan_free(&c.py);
    plan_free(&c.pz);
}
