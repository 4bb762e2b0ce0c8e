/* classbox.c - see classbox.h */
#include "classbox.h"
#include "bytemask.h"
#include "edt.h"
#include "parallel.h"
#include "surface.h"
#include "util.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CAP 8192 /* open-addressing table per worker: > 2 * VP_CLASSBOX_MAX */

struct slot {
    int used;
    vp_classbox b;
};

struct wtab {
    struct slot *s;
    size_t n;
    int full;
    uint64_t bad;  /* smallest voxel index with a non-integer value, UINT64_MAX if none */
    int bad_ref;   /* ... in the reference (else the prediction) */
    double bad_val;
};

struct sctx {
    const vp_vol *v[2];
    uint64_t nx, ny;
    struct wtab *w;
    int64_t *row[1]; /* per worker: one row of float labels as integers */
};

/* voxel i of v as an integer; 0 ok, -1 not an integer (*x holds the value) */
static int get_int(const vp_vol *v, uint64_t i, int64_t *out, double *x)
{
    const void *d = v->data;
    switch (v->dtype) {
    case VP_U8: *out = ((const uint8_t *)d)[i]; return 0;
    case VP_U16: *out = ((const uint16_t *)d)[i]; return 0;
    case VP_I16: *out = ((const int16_t *)d)[i]; return 0;
    case VP_I32: *out = ((const int32_t *)d)[i]; return 0;
    default:
        *x = vp_vol_get(v, i);
        if (!isfinite(*x) || *x != floor(*x) || fabs(*x) > 9007199254740992.0) return -1;
        *out = (int64_t)*x;
        return 0;
    }
}

static vp_classbox *lookup(struct wtab *t, int64_t id)
{
    uint64_t h = (uint64_t)id * 0x9E3779B97F4A7C15ull;
    for (size_t k = (size_t)(h >> 51) & (CAP - 1);; k = (k + 1) & (CAP - 1)) {
        struct slot *s = &t->s[k];
        if (s->used && s->b.id == id) return &s->b;
        if (!s->used) {
            if (t->n >= VP_CLASSBOX_MAX) {
                t->full = 1;
                return NULL;
            }
            s->used = 1;
            s->b = (vp_classbox){id, 0, 0, {UINT64_MAX, UINT64_MAX, UINT64_MAX}, {0, 0, 0}};
            t->n++;
            return &s->b;
        }
    }
}

static void grow(vp_classbox *b, uint64_t x0, uint64_t x1, uint64_t y, uint64_t z)
{
    if (x0 < b->lo[0]) b->lo[0] = x0;
    if (x1 > b->hi[0]) b->hi[0] = x1;
    if (y < b->lo[1]) b->lo[1] = y;
    if (y > b->hi[1]) b->hi[1] = y;
    if (z < b->lo[2]) b->lo[2] = z;
    if (z > b->hi[2]) b->hi[2] = z;
}

/* runs of equal values in one row of an integer volume: count and box per nonzero value; zero
 * runs are skipped 8 bytes at a time. -1 when the table is full. */
#define RUNS(T)                                                                                        \
    do {                                                                                               \
        const T *row = (const T *)v->data + base;                                                      \
        const uint64_t step = 8 / sizeof(T);                                                           \
        for (uint64_t x = 0; x < nx;) {                                                                \
            T val = row[x];                                                                            \
            uint64_t e = x + 1;                                                                        \
            if (!val)                                                                                  \
                for (uint64_t w_; e + step <= nx && (memcpy(&w_, row + e, 8), !w_);) e += step;       \
            while (e < nx && row[e] == val) e++;                                                       \
            if (val && add_run(t, (int64_t)val, k, x, e - 1, y, z)) return -1;                        \
            x = e;                                                                                     \
        }                                                                                              \
    } while (0)

static int add_run(struct wtab *t, int64_t val, int k, uint64_t x0, uint64_t x1, uint64_t y, uint64_t z)
{
    vp_classbox *b = lookup(t, val);
    if (!b) return -1;
    *(k ? &b->nref : &b->npred) += x1 - x0 + 1;
    grow(b, x0, x1, y, z);
    return 0;
}

static int row_runs(struct wtab *t, const vp_vol *v, int k, uint64_t base, uint64_t nx, uint64_t y, uint64_t z,
                    int64_t *tmp)
{
    switch (v->dtype) {
    case VP_U8: RUNS(uint8_t); return 0;
    case VP_U16: RUNS(uint16_t); return 0;
    case VP_I16: RUNS(int16_t); return 0;
    case VP_I32: RUNS(int32_t); return 0;
    default: break;
    }
    for (uint64_t x = 0; x < nx; x++) { /* float labels: integers checked first */
        double val;
        if (get_int(v, base + x, &tmp[x], &val)) {
            if (base + x < t->bad) {
                t->bad = base + x;
                t->bad_ref = k;
                t->bad_val = val;
            }
            return -1; /* the rest of this range has larger indices */
        }
    }
    for (uint64_t x = 0; x < nx;) {
        uint64_t e = x + 1;
        while (e < nx && tmp[e] == tmp[x]) e++;
        if (tmp[x] && add_run(t, tmp[x], k, x, e - 1, y, z)) return -1;
        x = e;
    }
    return 0;
}

static void scan_rows(void *vc, uint64_t rb, uint64_t re, int worker)
{
    struct sctx *c = vc;
    struct wtab *t = &c->w[worker];
    int64_t *tmp = c->row[0] + (size_t)worker * c->nx;
    for (uint64_t r = rb; r < re; r++)
        for (int k = 0; k < 2; k++)
            if (row_runs(t, c->v[k], k, r * c->nx, c->nx, r % c->ny, r / c->ny, tmp)) return;
}

static int cmp_box(const void *a, const void *b)
{
    const vp_classbox *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

int vp_classbox_scan(const vp_vol *pred, const char *pname, const vp_vol *ref, const char *rname,
                     const char *ctx, vp_classboxes *out)
{
    out->n = 0;
    out->b = NULL;
    const vp_vol *v[2] = {pred, ref};
    const char *nm[2] = {pname, rname};
    for (int k = 0; k < 2; k++)
        if (v[k]->dims[3] != 1)
            return vp_error("%s: volume '%s': %" PRIu64 " channels; a label volume has one", ctx, nm[k], v[k]->dims[3]);
    int nw = vp_parallel_workers();
    struct sctx c = {{pred, ref}, pred->dims[0], pred->dims[1], vp_calloc((size_t)nw, sizeof(struct wtab)), {0}};
    c.row[0] = vp_malloc((size_t)nw * c.nx * sizeof(int64_t));
    for (int i = 0; i < nw; i++) {
        c.w[i].s = vp_calloc(CAP, sizeof(struct slot));
        c.w[i].bad = UINT64_MAX;
    }
    vp_parallel_for(pred->dims[1] * pred->dims[2], 0, scan_rows, &c);

    int rc = 0, full = 0;
    uint64_t bad = UINT64_MAX;
    struct wtab *bw = NULL;
    for (int i = 0; i < nw; i++) {
        full |= c.w[i].full;
        if (c.w[i].bad < bad) {
            bad = c.w[i].bad;
            bw = &c.w[i];
        }
    }
    if (bw) {
        uint64_t nx = c.nx, ny = c.ny;
        rc = vp_error("%s: volume '%s': value %.9g at voxel (%" PRIu64 ", %" PRIu64 ", %" PRIu64 ") is not an integer label (dtype %s)",
                      ctx, nm[bw->bad_ref], bw->bad_val, bad % nx, bad / nx % ny, bad / (nx * ny), vp_dtype_name(v[bw->bad_ref]->dtype));
    }
    struct wtab all = {vp_calloc(CAP, sizeof(struct slot)), 0, full, 0, 0, 0};
    for (int i = 0; !rc && !all.full && i < nw; i++)
        for (size_t s = 0; s < CAP && !all.full; s++) {
            if (!c.w[i].s[s].used) continue;
            const vp_classbox *src = &c.w[i].s[s].b;
            vp_classbox *b = lookup(&all, src->id);
            if (!b) break;
            b->npred += src->npred;
            b->nref += src->nref;
            for (int a = 0; a < 3; a++) {
                if (src->lo[a] < b->lo[a]) b->lo[a] = src->lo[a];
                if (src->hi[a] > b->hi[a]) b->hi[a] = src->hi[a];
            }
        }
    if (!rc && all.full)
        rc = vp_error("%s: volumes '%s' and '%s' hold more than %d distinct values; not label volumes", ctx, pname,
                      rname, VP_CLASSBOX_MAX);
    if (!rc) {
        out->b = vp_malloc((all.n ? all.n : 1) * sizeof *out->b);
        for (size_t s = 0; s < CAP; s++)
            if (all.s[s].used) out->b[out->n++] = all.s[s].b;
        qsort(out->b, out->n, sizeof *out->b, cmp_box);
    }
    free(all.s);
    for (int i = 0; i < nw; i++) free(c.w[i].s);
    free(c.w);
    free(c.row[0]);
    return rc;
}

void vp_classboxes_free(vp_classboxes *c)
{
    free(c->b);
    c->b = NULL;
    c->n = 0;
}

const vp_classbox *vp_classbox_find(const vp_classboxes *c, int64_t id)
{
    size_t lo = 0, hi = c->n;
    while (lo < hi) {
        size_t m = (lo + hi) / 2;
        if (c->b[m].id == id) return &c->b[m];
        if (c->b[m].id < id) lo = m + 1;
        else hi = m;
    }
    return NULL;
}

void vp_classbox_dims(const vp_classbox *b, uint64_t dims[3])
{
    for (int a = 0; a < 3; a++) dims[a] = b->hi[a] - b->lo[a] + 3;
}

struct mctx {
    const vp_vol *v;
    int64_t id;
    const vp_classbox *b;
    uint64_t d[3];
    uint8_t *m;
};

#define CUT_ROW(T)                                                                                             \
    do {                                                                                                       \
        const T *src = (const T *)c->v->data + base;                                                           \
        for (uint64_t x = x0; x < x1; x++) m[x] = (int64_t)src[x - x0] == c->id ? VP_MASK_IN : VP_MASK_BG;     \
    } while (0)

static void cut_slices(void *vc, uint64_t zb, uint64_t ze, int worker)
{
    (void)worker;
    struct mctx *c = vc;
    const uint64_t *dim = c->v->dims;
    for (uint64_t z = zb; z < ze; z++)
        for (uint64_t y = 0; y < c->d[1]; y++) {
            uint8_t *m = c->m + (z * c->d[1] + y) * c->d[0];
            int64_t iz = (int64_t)(c->b->lo[2] + z) - 1, iy = (int64_t)(c->b->lo[1] + y) - 1;
            if (iz < 0 || iz >= (int64_t)dim[2] || iy < 0 || iy >= (int64_t)dim[1]) {
                memset(m, VP_MASK_OUT, c->d[0]);
                continue;
            }
            /* x range of the padded row inside the image: [x0, x1) in padded coordinates */
            uint64_t x0 = c->b->lo[0] == 0 ? 1 : 0;
            uint64_t x1 = c->b->hi[0] + 1 == dim[0] ? c->d[0] - 1 : c->d[0];
            if (x0) m[0] = VP_MASK_OUT;
            if (x1 < c->d[0]) m[x1] = VP_MASK_OUT;
            uint64_t base = ((uint64_t)iz * dim[1] + (uint64_t)iy) * dim[0] + c->b->lo[0] + x0 - 1;
            switch (c->v->dtype) {
            case VP_U8: {
                const uint8_t *src = (const uint8_t *)c->v->data + base;
                uint64_t x = x0;
                if (c->id < 0 || c->id > 255) { /* not a u8 value */
                    memset(m + x0, VP_MASK_BG, x1 - x0);
                    break;
                }
                for (; x + 8 <= x1; x += 8) { /* eight voxels at a time */
                    uint64_t w = vp_bytes_bool(vp_bytes_eq(vp_load8(src + x - x0), (uint8_t)c->id));
                    memcpy(m + x, &w, 8);
                }
                for (; x < x1; x++) m[x] = src[x - x0] == c->id ? VP_MASK_IN : VP_MASK_BG;
                break;
            }
            case VP_U16: CUT_ROW(uint16_t); break;
            case VP_I16: CUT_ROW(int16_t); break;
            case VP_I32: CUT_ROW(int32_t); break;
            default:
                for (uint64_t x = x0; x < x1; x++)
                    m[x] = vp_vol_get(c->v, base + x - x0) == (double)c->id ? VP_MASK_IN : VP_MASK_BG;
            }
        }
}

void vp_classbox_mask(const vp_vol *v, int64_t id, const vp_classbox *b, uint8_t *m)
{
    struct mctx c = {v, id, b, {0, 0, 0}, m};
    vp_classbox_dims(b, c.d);
    vp_parallel_for(c.d[2], vp_slice_grain(c.d[2], c.d[0] * c.d[1]), cut_slices, &c);
}
