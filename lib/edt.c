/* edt.c - see edt.h */
#include "edt.h"
#include "bytemask.h"
#include "edt_int.h"
#include "parallel.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BALL 200 /* offsets the probe phase tries, about */

int vp_edt_probe = 1;

void vp_edt_1d(const double *f, int64_t n, double w, double *d, int64_t *v, double *z)
{
    double *h = vp_malloc((n ? (size_t)n : 1) * sizeof *h);
    int64_t k = vp_edt_envelope(f, n, w, v, z, h);
    free(h);
    int64_t j = 0;
    for (int64_t q = 0; q < n; q++) {
        if (k < 0) {
            d[q] = INFINITY;
            continue;
        }
        while (z[j + 1] < (double)q) j++;
        double dq = (double)(q - v[j]);
        d[q] = f[v[j]] + w * dq * dq;
    }
}

uint64_t vp_mask_count(const uint8_t *m, uint64_t n)
{
    uint64_t c = 0, i = 0;
    for (; i + 8 <= n; i += 8) c += (uint64_t)vp_bytes_nonzero(vp_load8(m + i));
    for (; i < n; i++) c += m[i] != 0;
    return c;
}

/* ---- the probe phase: offsets in order of distance, the first feature found is the nearest */
struct offset {
    int32_t dx, dy, dz;
    double d;
};

static int cmp_offset(const void *a, const void *b)
{
    const struct offset *x = a, *y = b;
    if (x->d != y->d) return x->d < y->d ? -1 : 1;
    if (x->dz != y->dz) return x->dz < y->dz ? -1 : 1;
    if (x->dy != y->dy) return x->dy < y->dy ? -1 : 1;
    return (x->dx > y->dx) - (x->dx < y->dx);
}

/* every offset within radius r (mm), nearest first; r covers about BALL voxels and at least the
 * 6-neighbourhood unless that would take more than 8 BALL offsets. The probe is exact because the
 * ball holds every offset up to its radius. */
static struct offset *make_ball(const double sp[3], size_t *n, double *radius)
{
    double r = cbrt(BALL * sp[0] * sp[1] * sp[2] / 4.18879);
    for (int a = 0; a < 3; a++)
        if (r < sp[a]) r = sp[a];
    int32_t m[3];
    for (int a = 0; a < 3; a++) m[a] = (int32_t)(r / sp[a]);
    struct offset *o = vp_malloc((size_t)(2 * m[0] + 1) * (size_t)(2 * m[1] + 1) * (size_t)(2 * m[2] + 1) * sizeof *o);
    size_t k = 0;
    for (int32_t dz = -m[2]; dz <= m[2]; dz++)
        for (int32_t dy = -m[1]; dy <= m[1]; dy++)
            for (int32_t dx = -m[0]; dx <= m[0]; dx++) {
                double d = vp_edt_dist3(dx * sp[0], dy * sp[1], dz * sp[2]);
                if (d <= r) o[k++] = (struct offset){dx, dy, dz, d};
            }
    qsort(o, k, sizeof *o, cmp_offset);
    if (k > 8 * BALL) { /* very anisotropic spacing: keep the nearest, cut between distinct distances */
        size_t cut = 8 * BALL;
        while (cut < k && o[cut].d == o[cut - 1].d) cut++;
        if (cut < k) r = o[cut - 1].d;
        k = cut;
    }
    *n = k;
    *radius = r;
    return o;
}

struct pctx {
    const uint8_t *feat, *query;
    uint64_t *nleft; /* per slice: queries left for the exact pass (marked NaN in out) */
    uint64_t nx, ny, nz;
    const struct offset *ball;
    const int64_t *lin; /* the ball's offsets as index differences */
    size_t nball;
    int32_t reach[3]; /* the ball's extent along x, y, z */
    const uint64_t *off;
    double *out;
};

/* distance from query voxel (x, y, z) to the nearest feature within the ball, NaN if none */
static double probe(const struct pctx *c, uint64_t x, uint64_t y, uint64_t z)
{
    uint64_t i = (z * c->ny + y) * c->nx + x;
    if (x >= (uint64_t)c->reach[0] && x + (uint64_t)c->reach[0] < c->nx && y >= (uint64_t)c->reach[1] &&
        y + (uint64_t)c->reach[1] < c->ny && z >= (uint64_t)c->reach[2] && z + (uint64_t)c->reach[2] < c->nz) {
        for (size_t k = 0; k < c->nball; k++) /* inside: no bounds to check */
            if (c->feat[(int64_t)i + c->lin[k]]) return c->ball[k].d;
        return NAN;
    }
    for (size_t k = 0; k < c->nball; k++) {
        const struct offset *f = &c->ball[k];
        int64_t xx = (int64_t)x + f->dx, yy = (int64_t)y + f->dy, zz = (int64_t)z + f->dz;
        if (xx < 0 || yy < 0 || zz < 0 || xx >= (int64_t)c->nx || yy >= (int64_t)c->ny || zz >= (int64_t)c->nz)
            continue;
        if (c->feat[(int64_t)i + c->lin[k]]) return f->d;
    }
    return NAN;
}

static void probe_pass(void *vc, uint64_t b, uint64_t e, int worker)
{
    (void)worker;
    struct pctx *c = vc;
    uint64_t nx = c->nx, ny = c->ny, plane = nx * ny;
    for (uint64_t z = b; z < e; z++) {
        double *o = c->out + c->off[z];
        uint64_t tried = 0, missed = 0, given_up = 0;
        for (uint64_t y = 0; y < ny; y++)
            for (uint64_t x = 0; x < nx; x++) {
                uint64_t i = z * plane + y * nx + x;
                if (c->query && x + 8 <= nx && !vp_load8(c->query + i)) { /* 8 non-queries */
                    x += 7;
                    continue;
                }
                if (c->query && !c->query[i]) continue;
                double d = NAN;
                if (c->feat[i]) { /* on a feature: the common case */
                    d = 0;
                } else if (tried < 64 || missed * 4 < tried * 3) { /* give up probing where it mostly fails */
                    tried++;
                    d = probe(c, x, y, z);
                    missed += d != d;
                } else {
                    given_up++;
                }
                *o++ = d;
            }
        c->nleft[z] = missed + given_up;
    }
}

struct cctx {
    const uint8_t *query;
    uint64_t plane;
    uint64_t *cnt;
};

static void count_pass(void *vc, uint64_t b, uint64_t e, int worker)
{
    (void)worker;
    struct cctx *c = vc;
    for (uint64_t z = b; z < e; z++) c->cnt[z] = vp_mask_count(c->query + z * c->plane, c->plane);
}

static int any(const uint8_t *m, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        if (m[i]) return 1;
    return 0;
}

uint64_t vp_edt_query(const uint8_t *feat, const uint8_t *query, const uint64_t dims[3], const double sp[3],
                      double *out)
{
    uint64_t nz = dims[2], plane = dims[0] * dims[1];
    uint64_t *off = vp_malloc((nz + 1) * sizeof *off), *nleft = vp_malloc(nz * sizeof *nleft);
    /* queries per slice, and where each slice's outputs start */
    if (query) {
        struct cctx cc = {query, plane, nleft};
        vp_parallel_for(nz, vp_slice_grain(nz, plane), count_pass, &cc);
    } else {
        for (uint64_t z = 0; z < nz; z++) nleft[z] = plane;
    }
    off[0] = 0;
    for (uint64_t z = 0; z < nz; z++) off[z + 1] = off[z] + nleft[z];
    uint64_t nq = off[nz], nu = nq;
    if (!nq || !any(feat, plane * nz)) {
        for (uint64_t i = 0; i < nq; i++) out[i] = INFINITY;
    } else {
        size_t nball = 0;
        double radius = 0;
        if (vp_edt_probe) {
            struct offset *ball = make_ball(sp, &nball, &radius);
            int64_t *lin = vp_malloc(nball * sizeof *lin);
            struct pctx pc = {feat, query, nleft, dims[0], dims[1], nz, ball, lin, nball, {0, 0, 0}, off, out};
            for (size_t k = 0; k < nball; k++) {
                lin[k] = ((int64_t)ball[k].dz * (int64_t)dims[1] + ball[k].dy) * (int64_t)dims[0] + ball[k].dx;
                int32_t r[3] = {abs(ball[k].dx), abs(ball[k].dy), abs(ball[k].dz)};
                for (int a = 0; a < 3; a++)
                    if (r[a] > pc.reach[a]) pc.reach[a] = r[a];
            }
            vp_parallel_for(nz, vp_slice_grain(nz, plane), probe_pass, &pc);
            free(lin);
            free(ball);
            nu = 0;
            for (uint64_t z = 0; z < nz; z++) nu += nleft[z];
        } else {
            for (uint64_t i = 0; i < nq; i++) out[i] = NAN;
        }
        if (nu) vp_edt_separable(feat, query, dims, sp, off, nleft, nu, out);
        vp_debug("edt: %lu queries, %lu left by the probe (radius %.3g mm, %zu offsets)", (unsigned long)nq,
                 (unsigned long)nu, radius, nball);
    }
    free(nleft);
    free(off);
    return nq;
}
