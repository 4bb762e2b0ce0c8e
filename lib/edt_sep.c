/* edt_sep.c - the exact separable pass of edt.h: distance along z from a column table (or by walking
 * the column), then per slice and only for the rows holding unsettled queries the envelope along y
 * (searched outward from each row while that is cheaper) and along x. */
#include "edt.h"
#include "edt_int.h"
#include "parallel.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int64_t vp_edt_envelope(const double *f, int64_t n, double w, int64_t *v, double *z, double *h)
{
    int64_t k = -1;
    double inv = 1 / (2 * w);
    for (int64_t q = 0; q < n; q++) {
        if (f[q] == INFINITY) continue;
        double hq = f[q] + w * (double)q * (double)q;
        h[q] = hq;
        if (k < 0) {
            k = 0;
            v[0] = q;
            z[0] = -INFINITY;
            z[1] = INFINITY;
            continue;
        }
        double s;
        for (;;) {
            int64_t p = v[k];
            s = (hq - h[p]) * inv / (double)(q - p);
            if (s > z[k]) break;
            k--; /* z[0] = -inf: never below 0 */
        }
        k++;
        v[k] = q;
        z[k] = s;
        z[k + 1] = INFINITY;
    }
    return k;
}


/* ---- the exact pass. The features of each (x, y) column, z ascending, give the distance along z
 * to the nearest feature of a column at any slice by a binary search. */
struct cols {
    uint64_t *start; /* plane + 1 entries; NULL: no table, columns are scanned in feat */
    uint32_t *z;
    const uint8_t *feat;
    uint64_t plane, nz;
};

/* calls fn(ctx, i) for every nonzero byte m[i], i ascending; zero 8-byte words are skipped at
 * once (the masks here are mostly zero) */
#define FOR_NONZERO(m, n, i, body)                                                                     \
    do {                                                                                               \
        uint64_t i = 0;                                                                                \
        for (; i + 8 <= (n); i += 8) {                                                                 \
            uint64_t w_;                                                                               \
            memcpy(&w_, (m) + i, 8);                                                                   \
            if (!w_) continue;                                                                         \
            for (int j_ = 0; j_ < 8; j_++, i++)                                                        \
                if ((m)[i]) body;                                                                      \
            i -= 8;                                                                                    \
        }                                                                                              \
        for (; i < (n); i++)                                                                           \
            if ((m)[i]) body;                                                                          \
    } while (0)

/* counting sort of the features by column, in parallel over ranges of columns; slices in order
 * keep each column's z ascending */
struct cbuild {
    const uint8_t *feat;
    uint64_t plane, nz;
    struct cols *c;
    uint64_t *pos;
};

static void cols_count(void *vc, uint64_t b, uint64_t e, int worker)
{
    (void)worker;
    struct cbuild *cb = vc;
    uint64_t *cnt = cb->c->start + 1;
    for (uint64_t z = 0; z < cb->nz; z++) {
        const uint8_t *f = cb->feat + z * cb->plane + b;
        uint64_t n = e - b;
        FOR_NONZERO(f, n, p, cnt[b + p]++);
    }
}

static void cols_fill(void *vc, uint64_t b, uint64_t e, int worker)
{
    (void)worker;
    struct cbuild *cb = vc;
    for (uint64_t z = 0; z < cb->nz; z++) {
        const uint8_t *f = cb->feat + z * cb->plane + b;
        uint64_t n = e - b;
        FOR_NONZERO(f, n, p, cb->c->z[cb->pos[b + p]++] = (uint32_t)z);
    }
}

static void cols_build(struct cols *c, const uint8_t *feat, uint64_t plane, uint64_t nz)
{
    struct cbuild cb = {feat, plane, nz, c, NULL};
    uint64_t grain = plane * nz < ((uint64_t)1 << 20) ? plane : plane / 64 > 4096 ? plane / 64 : 4096;
    c->start = vp_calloc(plane + 1, sizeof *c->start);
    vp_parallel_for(plane, grain, cols_count, &cb);
    for (uint64_t p = 0; p < plane; p++) c->start[p + 1] += c->start[p];
    cb.pos = vp_malloc((plane ? plane : 1) * sizeof *cb.pos);
    memcpy(cb.pos, c->start, plane * sizeof *cb.pos);
    c->z = vp_malloc((c->start[plane] ? c->start[plane] : 1) * sizeof *c->z);
    vp_parallel_for(plane, grain, cols_fill, &cb);
    free(cb.pos);
}

/* distance along z (in voxels) from (p, z) to the nearest feature of column p, GINF if none; without
 * the column table GINF also when it is beyond gmax (the caller's bound) */
static int32_t gval(const struct cols *c, uint64_t p, uint32_t z, uint64_t gmax)
{
    if (!c->start) { /* few queries: walk the column outward from z, as far as gmax */
        const uint8_t *f = c->feat + p;
        for (uint64_t t = 0; t <= gmax && (t <= z || z + t < c->nz); t++)
            if ((t <= z && f[(z - t) * c->plane]) || (z + t < c->nz && f[(z + t) * c->plane])) return (int32_t)t;
        return GINF;
    }
    uint64_t a = c->start[p], b = c->start[p + 1], lo = a, hi = b;
    if (a == b) return GINF;
    while (lo < hi) {
        uint64_t m = lo + (hi - lo) / 2;
        if (c->z[m] < z) lo = m + 1;
        else hi = m;
    }
    int32_t g = lo < b ? (int32_t)(c->z[lo] - z) : GINF;
    if (lo > a && (int32_t)(z - c->z[lo - 1]) < g) g = (int32_t)(z - c->z[lo - 1]);
    return g;
}

/* ---- steps 2 and 3, one z slice at a time, only for the rows holding unsettled queries */
struct scratch {
    double *rowd, *col, *zz, *h;
    int32_t *apex;
    int64_t *v;
    uint64_t *rows, *q0, *q1, *at, *ri; /* per needed row: y, its bounding queries, first output */
    uint64_t *qx;                       /* bounding queries: x and D(x) */
    double *qub, *cap;
};

struct sctx {
    const struct cols *cols;
    const uint8_t *query;  /* NULL: every voxel */
    const uint64_t *nleft; /* unsettled queries per slice */
    uint64_t nx, ny, nz;
    double sp[3], w[3]; /* spacings and their squares */
    const uint64_t *off; /* first output index of each slice */
    double *out;         /* NaN marks the unsettled queries */
    struct scratch *ws;
};

/* the largest g (voxels) with (g sz)^2 < room, for bounding column walks */
static uint64_t gbound(const struct sctx *c, double room)
{
    if (!(room < INFINITY)) return UINT64_MAX;
    return room > 0 ? (uint64_t)(sqrt(room) / c->sp[2]) + 1 : 0;
}

/* Step 2 for column x of slice z at the rows s->rows[ri[k]], k < n (ascending): D = min over y' of
 * (g sz)^2 + ((r - y') sy)^2 and its y', into rowd/apex at row index ri[k]; a D that cannot be
 * below cap[k] (nothing of that row can use it) may be left +inf. Each row is searched outward
 * from r until the next candidates cannot be nearer; when the searches of the column grow beyond
 * ny steps, the column's lower envelope is built instead. Both are exact; the search is what makes
 * a few rows cheap. */
static void column(const struct sctx *c, struct scratch *s, uint32_t z, uint64_t x, const uint64_t *ri,
                   const double *cap, uint64_t n)
{
    uint64_t nx = c->nx, ny = c->ny, steps = 0, k = 0;
    double capmax = 0;
    for (; k < n && steps <= ny; k++) {
        uint64_t r = s->rows[ri[k]];
        double bound = cap[k] < INFINITY ? cap[k] * (1 + 1e-9) + 1e-300 : INFINITY, best = bound;
        int64_t by = -1;
        capmax = fmax(capmax, bound);
        for (uint64_t t = 0;; t++) {
            double ty = (double)t * c->sp[1], cost = ty * ty;
            if (cost >= best || (t > r && r + t >= ny) || ++steps > ny) break;
            for (int side = 0; side < 2; side++) {
                if (side ? (!t || r + t >= ny) : t > r) continue;
                uint64_t y = side ? r + t : r - t;
                int32_t g = gval(c->cols, y * nx + x, z, gbound(c, best - cost));
                if (g == GINF) continue;
                double v = (double)g * (double)g * c->w[2] + cost;
                if (v < best) best = v, by = (int64_t)y;
            }
        }
        if (steps > ny) break; /* this row is redone from the envelope */
        s->rowd[ri[k] * nx + x] = by < 0 ? INFINITY : best;
        s->apex[ri[k] * nx + x] = (int32_t)by;
    }
    if (k == n) return;
    for (uint64_t j = k; j < n; j++) capmax = fmax(capmax, cap[j] < INFINITY ? cap[j] * (1 + 1e-9) + 1e-300 : INFINITY);
    uint64_t gmax = gbound(c, capmax);
    for (uint64_t y = 0; y < ny; y++) {
        int32_t g = gval(c->cols, y * nx + x, z, gmax);
        s->col[y] = g == GINF ? INFINITY : (double)g * (double)g * c->w[2];
    }
    int64_t m = vp_edt_envelope(s->col, (int64_t)ny, c->w[1], s->v, s->zz, s->h), j = 0;
    for (; k < n; k++) {
        uint64_t r = s->rows[ri[k]], at = ri[k] * nx + x;
        if (m < 0) {
            s->rowd[at] = INFINITY;
            s->apex[at] = -1;
            continue;
        }
        while (s->zz[j + 1] < (double)r) j++;
        int64_t p = s->v[j];
        double dy = (double)((int64_t)r - p);
        s->rowd[at] = s->col[p] + c->w[1] * dy * dy;
        s->apex[at] = (int32_t)p;
    }
}

#define FEW 8 /* a row with at most this many unsettled queries bounds its columns by their distances */

static void slice_pass(void *vc, uint64_t b, uint64_t e, int worker)
{
    struct sctx *c = vc;
    struct scratch *s = &c->ws[worker];
    uint64_t nx = c->nx, ny = c->ny, plane = nx * ny;
    for (uint64_t z = b; z < e; z++) {
        if (!c->nleft[z]) continue;
        /* the rows with unsettled queries; for a row with few, the bound D(xq) (squared distance to
         * the nearest feature in column xq, an upper bound of the answer) of each query xq: a column
         * x can only matter where D(xq) - ((x - xq) sx)^2 > 0 for one of them */
        uint64_t nr = 0, nq = 0;
        double *o = c->out + c->off[z], inf = INFINITY;
        for (uint64_t y = 0; y < ny; y++) {
            const uint8_t *qr = c->query ? c->query + z * plane + y * nx : NULL;
            uint64_t q0 = nq, one = nr;
            for (uint64_t x = 0; x < nx; x++) {
                if (qr && !qr[x]) continue;
                double v = *o++;
                if (v == v) continue; /* settled by the probe */
                if (nq - q0 < FEW) {
                    s->rows[nr] = y;
                    column(c, s, (uint32_t)z, x, &one, &inf, 1);
                    s->qx[nq] = x;
                    s->qub[nq] = s->rowd[nr * nx + x];
                }
                nq++;
            }
            if (nq > q0) {
                s->rows[nr] = y;
                s->q0[nr] = nq - q0 <= FEW ? q0 : UINT64_MAX; /* many: no bounds */
                s->q1[nr] = nq;
                s->at[nr++] = (uint64_t)(o - c->out) - (qr ? vp_mask_count(qr, nx) : nx);
                if (nq > q0 + FEW) nq = q0 + FEW; /* only the first FEW were stored */
            }
        }
        for (uint64_t i = 0; i < nr; i++)
            for (uint64_t x = 0; x < nx; x++) s->rowd[i * nx + x] = INFINITY;
        for (uint64_t x = 0; x < nx; x++) {
            uint64_t n = 0;
            for (uint64_t i = 0; i < nr; i++) {
                double cap = INFINITY;
                if (s->q0[i] != UINT64_MAX) {
                    cap = -INFINITY;
                    for (uint64_t q = s->q0[i]; q < s->q1[i]; q++) {
                        double dx = ((double)x - (double)s->qx[q]) * c->sp[0];
                        cap = fmax(cap, s->qub[q] - dx * dx);
                    }
                    if (cap < 0) continue; /* no query of this row can reach column x */
                }
                s->ri[n] = i;
                s->cap[n++] = cap;
            }
            if (n) column(c, s, (uint32_t)z, x, s->ri, s->cap, n);
        }
        /* step 3: along x per row, at the unsettled queries. The distance is then computed from
         * the offsets to the nearest feature, sqrt((dx sx)^2 + (dy sy)^2 + (dz sz)^2) summed in that
         * order, as scipy's distance_transform_edt does. */
        for (uint64_t i = 0; i < nr; i++) {
            uint64_t y = s->rows[i];
            const uint8_t *qr = c->query ? c->query + z * plane + y * nx : NULL;
            o = c->out + s->at[i];
            const double *row = s->rowd + i * nx;
            int64_t k = vp_edt_envelope(row, (int64_t)nx, c->w[0], s->v, s->zz, s->h), j = 0;
            for (uint64_t x = 0; x < nx; x++) {
                if (qr && !qr[x]) continue;
                if (*o == *o) { /* settled by the probe */
                    o++;
                    continue;
                }
                if (k < 0) {
                    *o++ = INFINITY;
                    continue;
                }
                while (s->zz[j + 1] < (double)x) j++;
                int64_t px = s->v[j], py = s->apex[i * nx + (uint64_t)px];
                *o++ = vp_edt_dist3((double)((int64_t)x - px) * c->sp[0], (double)((int64_t)y - py) * c->sp[1],
                             (double)gval(c->cols, (uint64_t)py * nx + (uint64_t)px, (uint32_t)z, UINT64_MAX) * c->sp[2]);
            }
        }
    }
}

void vp_edt_separable(const uint8_t *feat, const uint8_t *query, const uint64_t dims[3], const double sp[3],
                      const uint64_t *off, const uint64_t *nleft, uint64_t nleft_total, double *out)
{
    uint64_t nx = dims[0], ny = dims[1], nz = dims[2], plane = nx * ny;
    /* the column table costs two passes over the box: worth it unless few queries are left */
    struct cols cols = {NULL, NULL, feat, plane, nz};
    if (vp_edt_probe != 2 && nleft_total * 8 >= plane) cols_build(&cols, feat, plane, nz);
    int nw = vp_parallel_workers();
    uint64_t nmax = nx > ny ? nx : ny;
    struct scratch *ws = vp_calloc((size_t)nw, sizeof *ws);
    for (int i = 0; i < nw; i++) {
        ws[i].rowd = vp_malloc(plane * sizeof(double));
        ws[i].apex = vp_malloc(plane * sizeof(int32_t));
        ws[i].col = vp_malloc(ny * sizeof(double));
        ws[i].h = vp_malloc(nmax * sizeof(double));
        ws[i].zz = vp_malloc((nmax + 1) * sizeof(double));
        ws[i].v = vp_malloc(nmax * sizeof(int64_t));
        ws[i].rows = vp_malloc(ny * sizeof(uint64_t));
        ws[i].q0 = vp_malloc(ny * sizeof(uint64_t));
        ws[i].q1 = vp_malloc(ny * sizeof(uint64_t));
        ws[i].qx = vp_malloc(ny * FEW * sizeof(uint64_t));
        ws[i].qub = vp_malloc(ny * FEW * sizeof(double));
        ws[i].cap = vp_malloc(ny * sizeof(double));
        ws[i].ri = vp_malloc(ny * sizeof(uint64_t));
        ws[i].at = vp_malloc(ny * sizeof(uint64_t));
    }
    struct sctx sc = {&cols, query, nleft, nx, ny, nz, {sp[0], sp[1], sp[2]},
                      {sp[0] * sp[0], sp[1] * sp[1], sp[2] * sp[2]}, off, out, ws};
    vp_parallel_for(nz, vp_slice_grain(nz, plane), slice_pass, &sc);
    for (int i = 0; i < nw; i++) {
        free(ws[i].rowd);
        free(ws[i].apex);
        free(ws[i].col);
        free(ws[i].h);
        free(ws[i].zz);
        free(ws[i].v);
        free(ws[i].rows);
        free(ws[i].q0);
        free(ws[i].q1);
        free(ws[i].qx);
        free(ws[i].qub);
        free(ws[i].cap);
        free(ws[i].ri);
        free(ws[i].at);
    }
    free(ws);
    free(cols.start);
    free(cols.z);
}

