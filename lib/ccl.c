/* ccl.c - see ccl.h */
#include "ccl.h"
#include "parallel.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

int vp_ccl_dtype_ok(enum vp_dtype t) { return t == VP_U8 || t == VP_U16 || t == VP_I16 || t == VP_I32; }

/* Neighbour rows that come before a row (dy, dz) and the x tolerance t of each: runs a and b of those
 * rows touch when b.x0 <= a.x1 + t and a.x0 <= b.x1 + t. Rows with dz = 0 or dy = 0 share a face
 * plane with the row, so 18- and 26-connectivity allow a step in x; diagonal rows (dy and dz both
 * non-zero) allow one for 26 only. Each unordered pair of neighbouring rows appears once. */
struct nbr { int dy, dz; uint32_t t; };
static const struct nbr nbr6[] = {{-1, 0, 0}, {0, -1, 0}};
static const struct nbr nbr18[] = {{-1, 0, 1}, {-1, -1, 0}, {0, -1, 1}, {1, -1, 0}};
static const struct nbr nbr26[] = {{-1, 0, 1}, {-1, -1, 1}, {0, -1, 1}, {1, -1, 1}};

static const struct nbr *nbrs(int conn, int *n)
{
    if (conn == 6) { *n = 2; return nbr6; }
    *n = 4;
    return conn == 18 ? nbr18 : nbr26;
}

/* ---- run extraction: one row of n elements of 1, 2 or 4 bytes ---- */

static inline int zero8(const void *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    return w == 0;
}

/* Runs of equal non-zero value; with x0 non-NULL also stores their ends and values. Returns the count. */
#define SCAN_FN(NAME, T)                                                                            \
    static uint64_t NAME(const T *p, uint32_t n, uint32_t *x0, uint32_t *x1, uint32_t *val)        \
    {                                                                                               \
        const uint32_t step = 8 / sizeof(T);                                                        \
        uint64_t k = 0;                                                                             \
        uint32_t x = 0;                                                                             \
        while (x < n) {                                                                             \
            while (x + step <= n && zero8(p + x)) x += step;                                        \
            while (x < n && !p[x]) x++;                                                             \
            if (x >= n) break;                                                                      \
            T v = p[x];                                                                             \
            uint32_t s = x++;                                                                       \
            while (x < n && p[x] == v) x++;                                                         \
            if (x0) { x0[k] = s; x1[k] = x - 1; val[k] = (uint32_t)v; }                             \
            k++;                                                                                    \
        }                                                                                           \
        return k;                                                                                   \
    }
SCAN_FN(scan8, uint8_t)
SCAN_FN(scan16, uint16_t)
SCAN_FN(scan32, uint32_t)

struct lab {
    const unsigned char *data;
    size_t es;
    uint64_t nx, ny, nz;
    uint64_t *row;
    uint32_t *x0, *x1, *val, *parent;
    int conn;
    uint64_t slab_z; /* z slices per slab */
};

static uint64_t scan_row(const struct lab *L, uint64_t r, int fill)
{
    const void *p = L->data + r * L->nx * L->es;
    uint32_t *x0 = NULL, *x1 = NULL, *val = NULL;
    if (fill) { x0 = L->x0 + L->row[r]; x1 = L->x1 + L->row[r]; val = L->val + L->row[r]; }
    uint32_t n = (uint32_t)L->nx;
    if (L->es == 1) return scan8(p, n, x0, x1, val);
    if (L->es == 2) return scan16(p, n, x0, x1, val);
    return scan32(p, n, x0, x1, val);
}

static void count_rows(void *ctx, uint64_t b, uint64_t e, int w)
{
    struct lab *L = ctx;
    for (uint64_t r = b; r < e; r++) L->row[r + 1] = scan_row(L, r, 0);
}

static void fill_rows(void *ctx, uint64_t b, uint64_t e, int w)
{
    struct lab *L = ctx;
    for (uint64_t r = b; r < e; r++) scan_row(L, r, 1);
}

/* ---- union-find: the smaller index is the root, so parent[i] <= i always ---- */

static inline uint32_t find(uint32_t *p, uint32_t i)
{
    while (p[i] != i) {
        p[i] = p[p[i]];
        i = p[i];
    }
    return i;
}

static inline void unite(uint32_t *p, uint32_t a, uint32_t b)
{
    a = find(p, a);
    b = find(p, b);
    if (a < b) p[b] = a;
    else if (b < a) p[a] = b;
}

/* Join the runs of row ra to the touching runs of equal value in row rb. */
static void join_rows(struct lab *L, uint64_t ra, uint64_t rb, uint32_t t)
{
    uint64_t ie = L->row[ra + 1], j = L->row[rb], je = L->row[rb + 1];
    for (uint64_t i = L->row[ra]; i < ie; i++) {
        while (j < je && L->x1[j] + t < L->x0[i]) j++;
        for (uint64_t k = j; k < je && L->x0[k] <= L->x1[i] + t; k++)
            if (L->val[k] == L->val[i]) unite(L->parent, (uint32_t)i, (uint32_t)k);
    }
}

/* Join row (y, z) to its earlier neighbours; dz = -1 rows only when z - 1 >= zmin. */
static void join_row(struct lab *L, uint64_t y, uint64_t z, uint64_t zmin, int only_dz)
{
    int nn;
    const struct nbr *nb = nbrs(L->conn, &nn);
    uint64_t r = y + L->ny * z;
    for (int k = 0; k < nn; k++) {
        if (only_dz && !nb[k].dz) continue;
        int64_t yy = (int64_t)y + nb[k].dy, zz = (int64_t)z + nb[k].dz;
        if (yy < 0 || yy >= (int64_t)L->ny || zz < (int64_t)zmin) continue;
        join_rows(L, r, (uint64_t)yy + L->ny * (uint64_t)zz, nb[k].t);
    }
}

static void join_slabs(void *ctx, uint64_t b, uint64_t e, int w)
{
    struct lab *L = ctx;
    for (uint64_t s = b; s < e; s++) {
        uint64_t z0 = s * L->slab_z, z1 = z0 + L->slab_z < L->nz ? z0 + L->slab_z : L->nz;
        for (uint64_t z = z0; z < z1; z++)
            for (uint64_t y = 0; y < L->ny; y++) join_row(L, y, z, z0, 0);
    }
}

/* ---- numbering and statistics ---- */

struct acc {
    uint64_t size, sum[3], key;
    uint32_t lo[3], hi[3], first_run;
};

struct keyidx { uint64_t key; uint32_t idx; };

static int cmp_key(const void *a, const void *b)
{
    uint64_t x = ((const struct keyidx *)a)->key, y = ((const struct keyidx *)b)->key;
    return x < y ? -1 : x > y;
}

static int64_t value_at(const vp_vol *v, uint64_t i)
{
    switch (v->dtype) {
    case VP_U8: return ((const uint8_t *)v->data)[i];
    case VP_U16: return ((const uint16_t *)v->data)[i];
    case VP_I16: return ((const int16_t *)v->data)[i];
    default: return ((const int32_t *)v->data)[i];
    }
}

/* Statistics of the provisional components (numbered in run order) and their final order. */
static void number_components(vp_ccl *c, const vp_vol *v, uint32_t nprov)
{
    uint64_t nx = c->dims[0], ny = c->dims[1], nz = c->dims[2];
    struct acc *a = vp_calloc(nprov ? nprov : 1, sizeof *a);
    for (uint32_t k = 0; k < nprov; k++) {
        a[k].key = UINT64_MAX;
        a[k].lo[0] = a[k].lo[1] = a[k].lo[2] = UINT32_MAX;
    }
    for (uint64_t r = 0; r < ny * nz; r++) {
        uint32_t y = (uint32_t)(r % ny), z = (uint32_t)(r / ny);
        for (uint64_t i = c->row[r]; i < c->row[r + 1]; i++) {
            struct acc *p = &a[c->comp[i]];
            uint32_t s = c->x0[i], e = c->x1[i];
            uint64_t len = (uint64_t)e - s + 1;
            if (!p->size) p->first_run = (uint32_t)i;
            p->size += len;
            p->sum[0] += ((uint64_t)s + e) * len / 2;
            p->sum[1] += (uint64_t)y * len;
            p->sum[2] += (uint64_t)z * len;
            if (s < p->lo[0]) p->lo[0] = s;
            if (e > p->hi[0]) p->hi[0] = e;
            if (y < p->lo[1]) p->lo[1] = y;
            if (y > p->hi[1]) p->hi[1] = y;
            if (z < p->lo[2]) p->lo[2] = z;
            if (z > p->hi[2]) p->hi[2] = z;
            uint64_t key = ((uint64_t)s * ny + y) * nz + z;
            if (key < p->key) p->key = key;
        }
    }
    struct keyidx *ki = vp_malloc((nprov ? nprov : 1) * sizeof *ki);
    for (uint32_t k = 0; k < nprov; k++) ki[k] = (struct keyidx){a[k].key, k};
    qsort(ki, nprov, sizeof *ki, cmp_key);
    uint32_t *rank = vp_malloc((nprov ? nprov : 1) * sizeof *rank);
    c->comps = vp_calloc(nprov ? nprov : 1, sizeof *c->comps);
    for (uint32_t f = 0; f < nprov; f++) {
        const struct acc *p = &a[ki[f].idx];
        struct vp_ccl_comp *q = &c->comps[f];
        rank[ki[f].idx] = f;
        q->size = p->size;
        for (int d = 0; d < 3; d++) {
            q->lo[d] = p->lo[d];
            q->hi[d] = p->hi[d];
            q->centroid[d] = (double)p->sum[d] / (double)p->size;
        }
        q->first[0] = (uint32_t)(p->key / (ny * nz));
        q->first[1] = (uint32_t)(p->key / nz % ny);
        q->first[2] = (uint32_t)(p->key % nz);
        /* the value at the start of the component's first run */
        uint32_t i = p->first_run;
        uint64_t lo = 0, hi = ny * nz; /* row of run i: the last r with row[r] <= i */
        while (hi - lo > 1) {
            uint64_t mid = lo + (hi - lo) / 2;
            if (c->row[mid] <= i) lo = mid;
            else hi = mid;
        }
        q->cls = value_at(v, lo * nx + c->x0[i]);
    }
    for (uint64_t i = 0; i < c->nruns; i++) c->comp[i] = rank[c->comp[i]];
    c->ncomp = nprov;
    free(a);
    free(ki);
    free(rank);
}

int vp_ccl_label(const vp_vol *v, int conn, vp_ccl *out, const char *ctx)
{
    memset(out, 0, sizeof *out);
    if (!vp_ccl_dtype_ok(v->dtype))
        return vp_error("%s: dtype %s: labels must be an integer type (u8, u16, i16, i32)", ctx, vp_dtype_name(v->dtype));
    if (v->dims[3] > 1) return vp_error("%s: %llu channels: labels must be one 3-D volume", ctx, (unsigned long long)v->dims[3]);
    if (conn != 6 && conn != 18 && conn != 26) return vp_error("%s: connectivity %d: must be 6, 18 or 26", ctx, conn);
    struct lab L = {v->data, vp_dtype_size(v->dtype), v->dims[0], v->dims[1], v->dims[2], NULL, NULL, NULL, NULL, NULL, conn, 0};
    uint64_t nrows = L.ny * L.nz;
    L.row = vp_calloc(nrows + 1, sizeof *L.row);
    vp_parallel_for(nrows, 0, count_rows, &L);
    for (uint64_t r = 0; r < nrows; r++) L.row[r + 1] += L.row[r];
    uint64_t nruns = L.row[nrows];
    if (nruns >= UINT32_MAX) {
        free(L.row);
        return vp_error("%s: %llu runs: more than this labeller's limit of 2^32-2", ctx, (unsigned long long)nruns);
    }
    size_t n = nruns ? (size_t)nruns : 1;
    L.x0 = vp_malloc(n * sizeof *L.x0);
    L.x1 = vp_malloc(n * sizeof *L.x1);
    L.val = vp_malloc(n * sizeof *L.val);
    L.parent = vp_malloc(n * sizeof *L.parent);
    vp_parallel_for(nrows, 0, fill_rows, &L);
    for (uint64_t i = 0; i < nruns; i++) L.parent[i] = (uint32_t)i;

    /* unions inside slabs of z in parallel (a slab's unions only touch its own runs), then across
     * the slab borders */
    uint64_t nslab = (uint64_t)vp_parallel_workers() * 4;
    if (nslab > L.nz) nslab = L.nz;
    L.slab_z = (L.nz + nslab - 1) / nslab;
    nslab = (L.nz + L.slab_z - 1) / L.slab_z;
    vp_parallel_for(nslab, 1, join_slabs, &L);
    for (uint64_t s = 1; s < nslab; s++)
        for (uint64_t y = 0; y < L.ny; y++) join_row(&L, y, s * L.slab_z, 0, 1);
    free(L.val);

    /* parent[i] <= i: one forward pass turns roots into provisional numbers (run order) and every
     * other run into its root's number */
    uint32_t *a = L.parent, nprov = 0;
    for (uint64_t i = 0; i < nruns; i++) a[i] = a[i] == i ? nprov++ : a[a[i]];

    out->dims[0] = L.nx;
    out->dims[1] = L.ny;
    out->dims[2] = L.nz;
    out->conn = conn;
    out->nruns = nruns;
    out->row = L.row;
    out->x0 = L.x0;
    out->x1 = L.x1;
    out->comp = a;
    number_components(out, v, nprov);
    return 0;
}

void vp_ccl_free(vp_ccl *c)
{
    free(c->row);
    free(c->x0);
    free(c->x1);
    free(c->comp);
    free(c->comps);
    memset(c, 0, sizeof *c);
}

int vp_ccl_touches_border(const vp_ccl *c, uint32_t k)
{
    const struct vp_ccl_comp *p = &c->comps[k];
    for (int d = 0; d < 3; d++)
        if (p->lo[d] == 0 || p->hi[d] + 1 == c->dims[d]) return 1;
    return 0;
}

/* ---- per-voxel output ---- */

struct paint {
    const vp_ccl *c;
    void *data;
    enum vp_dtype dtype;
    const uint8_t *change;
    const int64_t *to;
};

static void ids_rows(void *ctx, uint64_t b, uint64_t e, int w)
{
    const struct paint *P = ctx;
    const vp_ccl *c = P->c;
    uint64_t nx = c->dims[0];
    for (uint64_t r = b; r < e; r++) {
        int32_t *row = (int32_t *)P->data + r * nx;
        memset(row, 0, nx * sizeof *row);
        for (uint64_t i = c->row[r]; i < c->row[r + 1]; i++)
            for (uint32_t x = c->x0[i]; x <= c->x1[i]; x++) row[x] = (int32_t)c->comp[i] + 1;
    }
}

void vp_ccl_ids(const vp_ccl *c, int32_t *ids)
{
    struct paint P = {c, ids, VP_I32, NULL, NULL};
    vp_parallel_for(c->dims[1] * c->dims[2], 0, ids_rows, &P);
}

#define PAINT_RUN(T)                                                      \
    do {                                                                  \
        T *p = (T *)P->data + r * nx, val = (T)P->to[k];                  \
        for (uint32_t x = c->x0[i]; x <= c->x1[i]; x++) p[x] = val;       \
    } while (0)

static void paint_rows(void *ctx, uint64_t b, uint64_t e, int w)
{
    const struct paint *P = ctx;
    const vp_ccl *c = P->c;
    uint64_t nx = c->dims[0];
    for (uint64_t r = b; r < e; r++)
        for (uint64_t i = c->row[r]; i < c->row[r + 1]; i++) {
            uint32_t k = c->comp[i];
            if (!P->change[k]) continue;
            switch (P->dtype) {
            case VP_U8: PAINT_RUN(uint8_t); break;
            case VP_U16: PAINT_RUN(uint16_t); break;
            case VP_I16: PAINT_RUN(int16_t); break;
            default: PAINT_RUN(int32_t); break;
            }
        }
}

void vp_ccl_paint(const vp_ccl *c, vp_vol *v, const uint8_t *change, const int64_t *to)
{
    struct paint P = {c, v->data, v->dtype, change, to};
    vp_parallel_for(c->dims[1] * c->dims[2], 0, paint_rows, &P);
}

/* ---- contacts ---- */

static inline uint64_t overlap(int64_t a0, int64_t a1, int64_t b0, int64_t b1)
{
    int64_t lo = a0 > b0 ? a0 : b0, hi = a1 < b1 ? a1 : b1;
    return hi >= lo ? (uint64_t)(hi - lo + 1) : 0;
}

void vp_ccl_contacts(const vp_ccl *c, vp_ccl_contact_fn fn, void *ctx)
{
    int nn;
    const struct nbr *nb = nbrs(c->conn, &nn);
    uint64_t ny = c->dims[1], nz = c->dims[2];
    for (uint64_t z = 0; z < nz; z++)
        for (uint64_t y = 0; y < ny; y++) {
            uint64_t r = y + ny * z, ib = c->row[r], ie = c->row[r + 1];
            for (uint64_t i = ib; i + 1 < ie; i++) /* neighbours along x in the row itself */
                if (c->x1[i] + 1 == c->x0[i + 1]) fn(ctx, c->comp[i], c->comp[i + 1], 1);
            for (int k = 0; k < nn; k++) {
                int64_t yy = (int64_t)y + nb[k].dy, zz = (int64_t)z + nb[k].dz;
                if (yy < 0 || yy >= (int64_t)ny || zz < 0) continue;
                uint64_t rb = (uint64_t)yy + ny * (uint64_t)zz, j = c->row[rb], je = c->row[rb + 1];
                uint32_t t = nb[k].t;
                for (uint64_t i = ib; i < ie; i++) {
                    while (j < je && c->x1[j] + t < c->x0[i]) j++;
                    for (uint64_t q = j; q < je && c->x0[q] <= c->x1[i] + t; q++) {
                        if (c->comp[q] == c->comp[i]) continue;
                        int64_t a0 = c->x0[i], a1 = c->x1[i], b0 = c->x0[q], b1 = c->x1[q];
                        uint64_t n = overlap(a0, a1, b0, b1);
                        if (t) n += overlap(a0, a1, b0 - 1, b1 - 1) + overlap(a0, a1, b0 + 1, b1 + 1);
                        if (n) fn(ctx, c->comp[i], c->comp[q], n);
                    }
                }
            }
        }
}
