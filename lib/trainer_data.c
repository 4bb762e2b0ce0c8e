/* trainer_data.c - seeded generator, bounded case cache, nnU-Net-style patch sampling (see trainer_data.h). */
#include "trainer_data.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* ---- generator */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void vp_rng_seed(vp_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t vp_rng_next(vp_rng *r)
{
    uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

uint64_t vp_rng_below(vp_rng *r, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)vp_rng_next(r) * n) >> 64);
}

double vp_rng_unit(vp_rng *r) { return (double)(vp_rng_next(r) >> 11) * 0x1.0p-53; }

void vp_rng_to_hex(const vp_rng *r, char out[65])
{
    for (int i = 0; i < 4; i++) snprintf(out + 16 * i, 17, "%016llx", (unsigned long long)r->s[i]);
}

int vp_rng_from_hex(vp_rng *r, const char *hex)
{
    if (!hex || strlen(hex) != 64) return -1;
    for (int i = 0; i < 4; i++) {
        uint64_t v = 0;
        for (int j = 0; j < 16; j++) {
            char ch = hex[16 * i + j];
            int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
            if (d < 0) return -1;
            v = v << 4 | (uint64_t)d;
        }
        r->s[i] = v;
    }
    return (r->s[0] | r->s[1] | r->s[2] | r->s[3]) ? 0 : -1;
}

/* ---- training cases */

static int is_int_dtype(enum vp_dtype t) { return t == VP_U8 || t == VP_I16 || t == VP_U16 || t == VP_I32; }

int vp_tcase_from_case(const vp_case *c, const char *image_name, const char *label_name, int classes,
                       const char *where, vp_tcase **out)
{
    *out = NULL;
    const vp_vol *im = vp_case_vol(c, image_name), *lb = vp_case_vol(c, label_name);
    if (!im) return vp_error("%s: case '%s': no image volume '%s'", where, c->id, image_name), VP_ERR_DATA;
    if (!lb) return vp_error("%s: case '%s': no label volume '%s'", where, c->id, label_name), VP_ERR_DATA;
    if (lb->dims[3] != 1)
        return vp_error("%s: case '%s': volume '%s': a label has one channel, not %llu", where, c->id, label_name,
                        (unsigned long long)lb->dims[3]), VP_ERR_DATA;
    if (!is_int_dtype(lb->dtype))
        return vp_error("%s: case '%s': volume '%s': dtype %s is not an integer label type", where, c->id, label_name,
                        vp_dtype_name(lb->dtype)), VP_ERR_DATA;
    for (int a = 0; a < 3; a++)
        if (im->dims[a] != lb->dims[a])
            return vp_error("%s: case '%s': volume '%s' is %llux%llux%llu but '%s' is %llux%llux%llu: not the same grid",
                            where, c->id, label_name, (unsigned long long)lb->dims[0], (unsigned long long)lb->dims[1],
                            (unsigned long long)lb->dims[2], image_name, (unsigned long long)im->dims[0],
                            (unsigned long long)im->dims[1], (unsigned long long)im->dims[2]), VP_ERR_DATA;
    for (int i = 0; i < 16; i++)
        if (fabs(im->affine[i] - lb->affine[i]) > 1e-4)
            return vp_error("%s: case '%s': volume '%s': affine differs from '%s' (entry %d: %g vs %g): not the same grid",
                            where, c->id, label_name, image_name, i, lb->affine[i], im->affine[i]), VP_ERR_DATA;
    if (im->dims[3] > 64)
        return vp_error("%s: case '%s': volume '%s': %llu channels (at most 64)", where, c->id, image_name,
                        (unsigned long long)im->dims[3]), VP_ERR_DATA;

    vp_tcase *t = vp_calloc(1, sizeof *t);
    t->id = vp_strdup(c->id);
    t->nx = (int64_t)im->dims[0], t->ny = (int64_t)im->dims[1], t->nz = (int64_t)im->dims[2], t->nc = (int64_t)im->dims[3];
    memcpy(t->affine, im->affine, sizeof t->affine);
    uint64_t nv = (uint64_t)(t->nx * t->ny * t->nz), ni = nv * (uint64_t)t->nc;
    t->img_f32 = !(im->dtype == VP_U8 || im->dtype == VP_I16);
    t->img = vp_malloc(ni * (t->img_f32 ? sizeof(float) : sizeof(int16_t)));
    t->lab = vp_malloc(nv);
    t->bytes = ni * (t->img_f32 ? sizeof(float) : sizeof(int16_t)) + nv;
    for (uint64_t i = 0; i < ni; i++) {
        double v = vp_vol_get(im, i);
        if (isnan(v)) {
            vp_error("%s: case '%s': volume '%s': NaN at voxel %llu", where, c->id, image_name, (unsigned long long)i);
            vp_tcase_free(&t);
            return VP_ERR_DATA;
        }
        if (t->img_f32) ((float *)t->img)[i] = (float)v;
        else ((int16_t *)t->img)[i] = (int16_t)v;
    }
    for (uint64_t i = 0; i < nv; i++) {
        double v = vp_vol_get(lb, i);
        if (v < 0 || v >= classes) {
            vp_error("%s: case '%s': volume '%s': value %g at voxel %llu is not a class in [0, %d)", where, c->id,
                     label_name, v, (unsigned long long)i, classes);
            vp_tcase_free(&t);
            return VP_ERR_DATA;
        }
        t->lab[i] = (uint8_t)v;
        t->count[t->lab[i]]++;
    }
    *out = t;
    return 0;
}

void vp_tcase_free(vp_tcase **t)
{
    if (!*t) return;
    free((*t)->id);
    free((*t)->img);
    free((*t)->lab);
    free(*t);
    *t = NULL;
}

int vp_tcase_is_val(const char *id, double frac)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a, then mixed */
    for (const unsigned char *p = (const unsigned char *)id; *p; p++) h = (h ^ *p) * 1099511628211ull;
    uint64_t x = h;
    return (double)(splitmix64(&x) >> 11) * 0x1.0p-53 < frac;
}

/* ---- cache */

void vp_tcache_init(vp_tcache *k, size_t budget_bytes)
{
    memset(k, 0, sizeof *k);
    k->budget = budget_bytes;
}

int vp_tcache_insert(vp_tcache *k, vp_tcase *t)
{
    if (k->n == k->cap) {
        k->cap = k->cap ? 2 * k->cap : 16;
        k->c = vp_realloc(k->c, (size_t)k->cap * sizeof *k->c);
    }
    k->c[k->n++] = t;
    k->bytes += t->bytes;
    k->inserted++;
    int ev = 0;
    while (k->n > 1 && k->bytes > k->budget) {
        k->bytes -= k->c[0]->bytes;
        vp_tcase_free(&k->c[0]);
        memmove(k->c, k->c + 1, (size_t)(k->n - 1) * sizeof *k->c);
        k->n--;
        ev++;
    }
    k->evicted += (uint64_t)ev;
    return ev;
}

void vp_tcache_free(vp_tcache *k)
{
    for (int i = 0; i < k->n; i++) vp_tcase_free(&k->c[i]);
    free(k->c);
    memset(k, 0, sizeof *k);
}

/* ---- sampling */

/* network axis a (d, h, w) -> volume axis (0 x, 1 y, 2 z) */
static int vol_axis(enum vp_axes axes, int a) { return axes == VP_AXES_XYZ ? a : 2 - a; }

static int64_t case_dim(const vp_tcase *t, int va) { return va == 0 ? t->nx : va == 1 ? t->ny : t->nz; }

int vp_sampler_force_fg(const vp_sampler *s, int b)
{
    return b >= (int)nearbyint(s->batch * (1.0 - s->fg_prob)); /* Python's round: half to even */
}

void vp_sampler_bounds(int64_t dim, int64_t patch, int64_t *lb, int64_t *ub)
{
    int64_t need = patch > dim ? patch - dim : 0;
    *lb = -((need + 1) / 2); /* Python's -need // 2 (floor) */
    *ub = dim + need / 2 + need % 2 - patch;
}

int64_t vp_sampler_fg_start(int64_t voxel, int64_t patch, int64_t lb)
{
    return voxel - patch / 2 > lb ? voxel - patch / 2 : lb;
}

/* The k-th voxel (in storage order) of label value cls. */
static void kth_voxel(const vp_tcase *t, int cls, int64_t k, int64_t v[3])
{
    int64_t nv = t->nx * t->ny * t->nz, i = 0;
    for (; i < nv; i++)
        if (t->lab[i] == cls && k-- == 0) break;
    v[0] = i % t->nx, v[1] = i / t->nx % t->ny, v[2] = i / (t->nx * t->ny);
}

void vp_sampler_extract(const vp_sampler *s, const vp_tcase *t, const int64_t start[3], float *x, int32_t *y)
{
    int64_t P[3] = {s->patch[0], s->patch[1], s->patch[2]}, pv = P[0] * P[1] * P[2];
    int va[3] = {vol_axis(s->axes, 0), vol_axis(s->axes, 1), vol_axis(s->axes, 2)};
    int64_t vstride[3] = {1, t->nx, t->nx * t->ny}, nv = t->nx * t->ny * t->nz;
    for (int64_t d = 0; d < P[0]; d++)
        for (int64_t h = 0; h < P[1]; h++)
            for (int64_t w = 0; w < P[2]; w++) {
                int64_t o = (d * P[1] + h) * P[2] + w, q[3] = {d, h, w}, idx = 0;
                int inside = 1;
                for (int a = 0; a < 3; a++) {
                    int64_t c = start[va[a]] + q[a];
                    if (c < 0 || c >= case_dim(t, va[a])) inside = 0;
                    idx += c * vstride[va[a]];
                }
                y[o] = inside ? t->lab[idx] : 0;
                for (int64_t ch = 0; ch < t->nc; ch++)
                    x[ch * pv + o] = !inside ? 0.0f
                                     : t->img_f32 ? ((const float *)t->img)[ch * nv + idx]
                                                  : (float)((const int16_t *)t->img)[ch * nv + idx];
            }
}

void vp_sampler_draw(const vp_sampler *s, const vp_tcache *k, vp_rng *r, int b0, int b1, float *x, int32_t *y)
{
    int64_t pv = (int64_t)s->patch[0] * s->patch[1] * s->patch[2];
    for (int b = 0; b < s->batch; b++) {
        const vp_tcase *t = k->c[vp_rng_below(r, (uint64_t)k->n)];
        int64_t psz[3], lb[3], ub[3], start[3]; /* volume axes */
        for (int a = 0; a < 3; a++) psz[vol_axis(s->axes, a)] = s->patch[a];
        for (int va = 0; va < 3; va++) vp_sampler_bounds(case_dim(t, va), psz[va], &lb[va], &ub[va]);
        int forced = vp_sampler_force_fg(s, b), ncls = 0, cls[256];
        if (forced)
            for (int c = 1; c < 256; c++)
                if (t->count[c]) cls[ncls++] = c;
        if (forced && ncls) {
            int c = cls[vp_rng_below(r, (uint64_t)ncls)];
            int64_t v[3];
            kth_voxel(t, c, (int64_t)vp_rng_below(r, (uint64_t)t->count[c]), v);
            for (int va = 0; va < 3; va++) start[va] = vp_sampler_fg_start(v[va], psz[va], lb[va]);
        } else {
            for (int va = 0; va < 3; va++) start[va] = lb[va] + (int64_t)vp_rng_below(r, (uint64_t)(ub[va] - lb[va] + 1));
        }
        if (b >= b0 && b < b1) vp_sampler_extract(s, t, start, x + (b - b0) * t->nc * pv, y + (b - b0) * pv);
    }
}

float *vp_tcase_tensor(const vp_tcase *t, enum vp_axes axes, const int div[3], const int patch[3], int64_t dims[3],
                      int64_t off[3])
{
    vp_sampler s = {{0, 0, 0}, 1, 0, axes};
    int64_t start[3];
    for (int a = 0; a < 3; a++) {
        int va = vol_axis(axes, a);
        int64_t n = case_dim(t, va);
        if (n < patch[a]) { /* MONAI sliding window: pad to the window, (diff // 2) before */
            dims[a] = patch[a];
            off[a] = -((patch[a] - n) / 2);
        } else { /* the whole case, padded at the end to the divisor */
            dims[a] = (n + div[a] - 1) / div[a] * div[a];
            off[a] = 0;
        }
        s.patch[a] = (int)dims[a];
        start[va] = off[a];
    }
    int64_t pv = dims[0] * dims[1] * dims[2];
    float *x = vp_malloc((size_t)(pv * t->nc) * sizeof *x);
    int32_t *y = vp_malloc((size_t)pv * sizeof *y);
    vp_sampler_extract(&s, t, start, x, y);
    free(y);
    return x;
}

void vp_tcase_overlap(const vp_tcase *t, enum vp_axes axes, const int32_t *pred, const int64_t pdims[3],
                      const int64_t off[3], int classes, int64_t *inter, int64_t *psum, int64_t *gsum)
{
    for (int64_t z = 0; z < t->nz; z++)
        for (int64_t yy = 0; yy < t->ny; yy++)
            for (int64_t xx = 0; xx < t->nx; xx++) {
                int64_t q0 = (axes == VP_AXES_XYZ ? xx : z) - off[0], q1 = yy - off[1];
                int64_t q2 = (axes == VP_AXES_XYZ ? z : xx) - off[2];
                int p = pred[(q0 * pdims[1] + q1) * pdims[2] + q2];
                int g = t->lab[(z * t->ny + yy) * t->nx + xx];
                if (p >= 0 && p < classes) psum[p]++;
                gsum[g]++;
                if (p == g) inter[g]++;
            }
}
