/* surface.c - see surface.h: boundary extraction and directed distances (surface_stats.c pools). */
#include "surface.h"
#include "bytemask.h"
#include "edt.h"
#include "parallel.h"
#include "surface_int.h"
#include "surfel.h"
#include "util.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const vp_conv_names[] = {"voxpipe", "monai", "deepmind", "metricsreloaded", "plastimatch", NULL};

/* ---- boundary voxels on the inner box (the padded box less one voxel on every side): object
 * voxels with a 6-neighbour that is not an object voxel along the axes in `axes` (bit a: axis a) */
struct bctx {
    const uint8_t *m;
    const uint64_t *d;
    unsigned axes;
    uint8_t *b;
};

static void bnd_pass(void *vc, uint64_t zb, uint64_t ze, int worker)
{
    (void)worker;
    struct bctx *c = vc;
    uint64_t d0 = c->d[0], pl = d0 * c->d[1], n0 = d0 - 2, n1 = c->d[1] - 2;
    for (uint64_t z = zb; z < ze; z++)
        for (uint64_t y = 0; y < n1; y++) {
            const uint8_t *m = c->m + (z + 1) * pl + (y + 1) * d0 + 1;
            uint8_t *b = c->b + (z * n1 + y) * n0;
            uint64_t x = 0;
            for (; x + 8 <= n0; x += 8) { /* eight voxels at a time */
                uint64_t w = vp_load8(m + x);
                if (!w) {
                    memset(b + x, 0, 8);
                    continue;
                }
                const uint8_t *q = m + x;
                uint64_t nb[6] = {vp_load8(q - 1), vp_load8(q + 1), vp_load8(q - d0), vp_load8(q + d0), vp_load8(q - pl),
                                  vp_load8(q + pl)};
                uint64_t edge = 0;
                for (int k = 0; k < 6; k++)
                    if (c->axes >> (k / 2) & 1) edge |= ~vp_bytes_eq(nb[k], VP_MASK_IN);
                uint64_t out = vp_bytes_bool(vp_bytes_eq(w, VP_MASK_IN) & edge & VP_BYTES_80);
                memcpy(b + x, &out, 8);
            }
            for (; x < n0; x++) {
                if (m[x] != VP_MASK_IN) {
                    b[x] = 0;
                    continue;
                }
                const uint8_t nb[6] = {m[x - 1], m[x + 1], m[x - d0], m[x + d0], m[x - pl], m[x + pl]};
                uint8_t v = 0;
                for (int k = 0; k < 6; k++) v |= (c->axes >> (k / 2) & 1) && nb[k] != VP_MASK_IN;
                b[x] = v;
            }
        }
}

static uint8_t *boundary(const uint8_t *m, const uint64_t d[3], unsigned axes)
{
    uint64_t n = (d[0] - 2) * (d[1] - 2) * (d[2] - 2);
    struct bctx c = {m, d, axes, vp_malloc(n)};
    vp_parallel_for(d[2] - 2, vp_slice_grain(d[2] - 2, d[0] * d[1]), bnd_pass, &c);
    return c.b;
}

/* ---- neighbourhood codes on the corner lattice: corner (x, y, z) is the centre of padded voxels
 * x..x+1, y..y+1, z..z+1 (the lattice is the inner box plus one along each axis) */
struct cctx {
    const uint8_t *m;
    const uint64_t *d;
    uint8_t *code;
};

static void code_pass(void *vc, uint64_t zb, uint64_t ze, int worker)
{
    (void)worker;
    struct cctx *c = vc;
    uint64_t d0 = c->d[0], pl = d0 * c->d[1], c0 = d0 - 1, c1 = c->d[1] - 1;
    for (uint64_t z = zb; z < ze; z++)
        for (uint64_t y = 0; y < c1; y++) {
            uint8_t *out = c->code + (z * c1 + y) * c0;
            for (uint64_t x = 0; x < c0; x++) {
                unsigned code = 0;
                for (int a = 0; a < 2; a++)
                    for (int b = 0; b < 2; b++)
                        for (int e = 0; e < 2; e++)
                            if (c->m[(z + e) * pl + (y + b) * d0 + x + a] == VP_MASK_IN) code |= 128u >> (4 * a + 2 * b + e);
                out[x] = (uint8_t)code;
            }
        }
}

static uint8_t *corner_codes(const uint8_t *m, const uint64_t d[3])
{
    uint64_t n = (d[0] - 1) * (d[1] - 1) * (d[2] - 1);
    struct cctx c = {m, d, vp_malloc(n)};
    vp_parallel_for(d[2] - 1, vp_slice_grain(d[2] - 1, d[0] * d[1]), code_pass, &c);
    return c.code;
}

/* distances from the query elements to the feature elements, into a new vp_dir */
static void directed(const uint8_t *feat, const uint8_t *query, const uint64_t d[3], const double sp[3],
                     struct vp_dir *D)
{
    uint64_t n = d[0] * d[1] * d[2];
    D->n = vp_mask_count(query, n);
    D->d = vp_malloc((D->n ? D->n : 1) * sizeof(double));
    D->w = NULL;
    vp_edt_query(feat, query, d, sp, D->d);
}

/* MetricsReloaded: scipy's distance_transform_edt of an input without background measures every
 * voxel to the virtual index (-1, 0, 0) of the whole image; those distances replace +inf */
static void scipy_empty_edt(const struct vp_surface_in *in, const uint8_t *query, const uint64_t d[3],
                            struct vp_dir *D)
{
    uint64_t k = 0;
    for (uint64_t z = 0; z < d[2]; z++)
        for (uint64_t y = 0; y < d[1]; y++)
            for (uint64_t x = 0; x < d[0]; x++) {
                if (!query[(z * d[1] + y) * d[0] + x]) continue;
                double gx = (double)(in->origin[0] + 1 + (int64_t)x + 1) * in->sp[0];
                double gy = (double)(in->origin[1] + 1 + (int64_t)y) * in->sp[1];
                double gz = (double)(in->origin[2] + 1 + (int64_t)z) * in->sp[2];
                D->d[k++] = sqrt(gx * gx + gy * gy + gz * gz);
            }
}

static void surfels(const struct vp_surface_in *in, struct vp_dir *P, struct vp_dir *R)
{
    uint64_t cd[3] = {in->dims[0] - 1, in->dims[1] - 1, in->dims[2] - 1}, n = cd[0] * cd[1] * cd[2];
    uint8_t *cp = corner_codes(in->pred, in->dims), *cr = corner_codes(in->ref, in->dims);
    uint8_t *bp = vp_malloc(n), *br = vp_malloc(n);
    for (uint64_t i = 0; i < n; i++) {
        bp[i] = cp[i] != 0 && cp[i] != 255;
        br[i] = cr[i] != 0 && cr[i] != 255;
    }
    directed(br, bp, cd, in->sp, P);
    directed(bp, br, cd, in->sp, R);
    double area[256];
    vp_surfel_areas(in->sp, area);
    P->w = vp_malloc((P->n ? P->n : 1) * sizeof(double));
    R->w = vp_malloc((R->n ? R->n : 1) * sizeof(double));
    uint64_t kp = 0, kr = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (bp[i]) P->w[kp++] = area[cp[i]];
        if (br[i]) R->w[kr++] = area[cr[i]];
    }
    free(cp);
    free(cr);
    free(bp);
    free(br);
}

/* plastimatch: one EDT per direction serves the boundary voxels of `a` and its voxels outside `b`
 * (the "set" distances; voxels inside b count 0). Distances are stored as float, and where b has
 * no boundary voxel they are FLT_MAX, as in plastimatch's distance map. */
static void plm_direction(const uint8_t *ma, const uint8_t *mb, const uint8_t *ba, const uint8_t *bb,
                          const uint64_t dims[3], const double sp[3], struct vp_dir *B, struct vp_dir *S)
{
    uint64_t nd[3] = {dims[0] - 2, dims[1] - 2, dims[2] - 2}, n = nd[0] * nd[1] * nd[2];
    uint8_t *q = vp_malloc(n);
    uint64_t nin = 0, nboth = 0, i = 0;
    for (uint64_t z = 0; z < nd[2]; z++)
        for (uint64_t y = 0; y < nd[1]; y++) {
            uint64_t o = ((z + 1) * dims[1] + y + 1) * dims[0] + 1;
            for (uint64_t x = 0; x < nd[0]; x++, i++) {
                int ina = ma[o + x] == VP_MASK_IN, inb = mb[o + x] == VP_MASK_IN;
                nin += ina;
                nboth += ina && inb;
                q[i] = ba[i] || (ina && !inb);
            }
        }
    struct vp_dir all;
    directed(bb, q, nd, sp, &all);
    B->n = vp_mask_count(ba, n);
    B->d = vp_malloc((B->n ? B->n : 1) * sizeof(double));
    S->n = nin;
    S->d = vp_malloc((nin ? nin : 1) * sizeof(double));
    uint64_t k = 0, kb = 0, ks = 0;
    i = 0;
    for (uint64_t z = 0; z < nd[2]; z++)
        for (uint64_t y = 0; y < nd[1]; y++) {
            uint64_t o = ((z + 1) * dims[1] + y + 1) * dims[0] + 1;
            for (uint64_t x = 0; x < nd[0]; x++, i++) {
                if (!q[i]) continue;
                double dv = all.d[k++];
                dv = dv < FLT_MAX ? (float)dv : FLT_MAX; /* +inf without features */
                if (ba[i]) B->d[kb++] = dv;
                if (ma[o + x] == VP_MASK_IN && mb[o + x] != VP_MASK_IN) S->d[ks++] = dv;
            }
        }
    for (uint64_t j = 0; j < nboth; j++) S->d[ks++] = 0;
    B->w = S->w = NULL;
    free(all.d);
    free(q);
}

void vp_surface_metrics(const struct vp_surface_in *in, const struct vp_surface_opts *o, struct vp_surface_res *r)
{
    struct vp_dir P = {0}, R = {0}, PS = {0}, RS = {0};
    const uint64_t *d = in->dims;
    uint64_t nd[3] = {d[0] - 2, d[1] - 2, d[2] - 2};
    if (o->conv == VP_CONV_DEEPMIND) {
        surfels(in, &P, &R);
    } else {
        unsigned axes = 7;
        if (o->conv == VP_CONV_PLASTIMATCH) /* "adaptive padding": an axis one voxel thick is ignored */
            for (int a = 0; a < 3; a++)
                if (nd[a] == 1) axes &= ~(1u << a);
        uint8_t *bp = boundary(in->pred, d, axes);
        uint8_t *br = boundary(in->ref, d, axes);
        if (o->conv == VP_CONV_PLASTIMATCH) {
            plm_direction(in->pred, in->ref, bp, br, d, in->sp, &P, &PS);
            plm_direction(in->ref, in->pred, br, bp, d, in->sp, &R, &RS);
        } else {
            directed(br, bp, nd, in->sp, &P);
            directed(bp, br, nd, in->sp, &R);
            if (o->conv == VP_CONV_METRICSRELOADED && !P.n != !R.n) scipy_empty_edt(in, P.n ? bp : br, nd, P.n ? &P : &R);
            if (o->conv == VP_CONV_MONAI) {
                for (uint64_t i = 0; i < P.n; i++) P.d[i] = (float)P.d[i];
                for (uint64_t i = 0; i < R.n; i++) R.d[i] = (float)R.d[i];
            }
        }
        free(bp);
        free(br);
    }
    r->npred = P.n;
    r->nref = R.n;
    vp_surface_pool(o, &P, &R, &PS, &RS, r->v);
    struct vp_dir *all[4] = {&P, &R, &PS, &RS};
    for (int i = 0; i < 4; i++) {
        free(all[i]->d);
        free(all[i]->w);
    }
}
