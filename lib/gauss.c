/* gauss.c - see gauss.h */
#include "gauss.h"
#include "bigbuf.h"
#include "parallel.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int vp_gauss_radius(double sigma, enum vp_gauss_kind kind)
{
    if (!(sigma > 0)) return 0;
    if (kind == VP_GAUSS_MONAI) { /* tail = int(max(sigma * 4, 0.5) + 0.5) */
        double t = sigma * 4.0;
        return (int)((t > 0.5 ? t : 0.5) + 0.5);
    }
    return sigma > 1e-15 ? (int)(4.0 * sigma + 0.5) : 0; /* scipy: int(truncate * sd + 0.5) */
}

int vp_gauss_kernel(double sigma, enum vp_gauss_kind kind, double *w)
{
    int r = vp_gauss_radius(sigma, kind);
    if (r == 0) { w[0] = 1; return 0; }
    if (kind == VP_GAUSS_MONAI) {
        double t = 0.70710678 / sigma; /* MONAI's constant */
        for (int i = -r; i <= r; i++) {
            double x = 0.5 * (erf(t * (i + 0.5)) - erf(t * (i - 0.5)));
            w[i + r] = x > 0 ? x : 0;
        }
    } else {
        double sum = 0;
        for (int i = -r; i <= r; i++) sum += w[i + r] = exp(-0.5 / (sigma * sigma) * (double)i * (double)i);
        for (int i = 0; i <= 2 * r; i++) w[i] /= sum;
    }
    return r;
}

/* out[x] += w * in[x] for x < n, four lanes at a time (GCC/Clang vector extension: -O2 does not
 * vectorise these loops by itself). Per element the same multiply then add as the scalar loop, so
 * the result does not depend on n or alignment. */
typedef float vf4 __attribute__((vector_size(16)));

static inline void axpy(float *restrict out, const float *restrict in, float w, uint64_t n)
{
    uint64_t x = 0;
    vf4 wv = {w, w, w, w};
    for (; x + 8 <= n; x += 8) {
        vf4 a0, a1, b0, b1;
        memcpy(&a0, out + x, 16);
        memcpy(&a1, out + x + 4, 16);
        memcpy(&b0, in + x, 16);
        memcpy(&b1, in + x + 4, 16);
        a0 += wv * b0;
        a1 += wv * b1;
        memcpy(out + x, &a0, 16);
        memcpy(out + x + 4, &a1, 16);
    }
    for (; x < n; x++) out[x] += w * in[x];
}

/* Source index of position i (may be outside [0, n)) along an axis, or -1 for a zero. */
static int64_t src_index(int64_t i, int64_t n, enum vp_gauss_kind kind)
{
    if (i >= 0 && i < n) return i;
    if (kind == VP_GAUSS_MONAI) return -1;
    int64_t m = i % (2 * n);
    if (m < 0) m += 2 * n;
    return m < n ? m : 2 * n - 1 - m;
}

struct pass {
    const float *in;
    float *out;
    uint64_t nx, ny, nz; /* per channel; z counts channel * nz slices for the x and y passes */
    int r;
    const float *w;     /* 2r + 1 weights */
    const int64_t *map; /* n + 2r entries: source index of position i - r along the axis, or -1 */
};

/* x pass: one row at a time through a padded line buffer */
static void pass_x(void *p, uint64_t b, uint64_t e, int worker)
{
    const struct pass *s = p;
    uint64_t nx = s->nx;
    int r = s->r;
    float *line = vp_malloc((nx + 2 * (uint64_t)r) * sizeof *line);
    for (uint64_t row = b; row < e; row++) {
        const float *in = s->in + row * nx;
        float *out = s->out + row * nx;
        for (uint64_t i = 0; i < nx + 2 * (uint64_t)r; i++) line[i] = s->map[i] < 0 ? 0.0f : in[s->map[i]];
        for (uint64_t x = 0; x < nx; x++) out[x] = 0;
        for (int k = 0; k <= 2 * r; k++) axpy(out, line + k, s->w[k], nx); /* tap by tap, same order per voxel */
    }
    free(line);
}

/* y pass: per (slice, output row), rows of the same slice weighted and summed, vectorised over x */
static void pass_y(void *p, uint64_t b, uint64_t e, int worker)
{
    const struct pass *s = p;
    uint64_t nx = s->nx, ny = s->ny;
    for (uint64_t idx = b; idx < e; idx++) {
        uint64_t z = idx / ny, y = idx % ny;
        float *out = s->out + (z * ny + y) * nx;
        for (uint64_t x = 0; x < nx; x++) out[x] = 0;
        for (int k = 0; k <= 2 * s->r; k++) {
            int64_t sy = s->map[y + (uint64_t)k];
            if (sy < 0) continue;
            axpy(out, s->in + (z * ny + (uint64_t)sy) * nx, s->w[k], nx);
        }
    }
}

/* z pass: per (channel, y, z) output row, rows y of neighbouring slices; idx runs over nc*ny*nz
 * with z fastest, so the 2r + 1 input rows slide along z and stay in cache */
static void pass_z(void *p, uint64_t b, uint64_t e, int worker)
{
    const struct pass *s = p;
    uint64_t nx = s->nx, ny = s->ny, nz = s->nz;
    for (uint64_t idx = b; idx < e; idx++) {
        uint64_t z = idx % nz, y = (idx / nz) % ny, ch = idx / (ny * nz);
        float *out = s->out + ((ch * nz + z) * ny + y) * nx;
        for (uint64_t x = 0; x < nx; x++) out[x] = 0;
        for (int k = 0; k <= 2 * s->r; k++) {
            int64_t sz = s->map[z + (uint64_t)k];
            if (sz < 0) continue;
            axpy(out, s->in + ((ch * nz + (uint64_t)sz) * ny + y) * nx, s->w[k], nx);
        }
    }
}

void vp_gauss_smooth(vp_vol *v, const double sigma[3], enum vp_gauss_kind kind)
{
    uint64_t n[3] = {v->dims[0], v->dims[1], v->dims[2]}, nc = v->dims[3];
    uint64_t nvox = vp_vol_nvox(v);
    float *cur = v->data, *other = NULL;
    for (int a = 0; a < 3; a++) {
        int r = vp_gauss_radius(sigma[a], kind);
        if (r == 0) continue;
        if (!other) other = vp_big_alloc(nvox * sizeof(float));
        double *wd = vp_malloc((size_t)(2 * r + 1) * sizeof *wd);
        float *w = vp_malloc((size_t)(2 * r + 1) * sizeof *w);
        vp_gauss_kernel(sigma[a], kind, wd);
        for (int k = 0; k <= 2 * r; k++) w[k] = (float)wd[k];
        int64_t *map = vp_malloc((n[a] + 2 * (uint64_t)r) * sizeof *map);
        for (uint64_t i = 0; i < n[a] + 2 * (uint64_t)r; i++) map[i] = src_index((int64_t)i - r, (int64_t)n[a], kind);
        struct pass s = {cur, other, n[0], n[1], n[2], r, w, map};
        /* rows per work item: enough for ~64k voxels, fixed by the shape only */
        uint64_t rows = n[1] * n[2] * nc, grain = (65536 + n[0] - 1) / n[0];
        if (a == 0) vp_parallel_for(rows, grain, pass_x, &s);
        else if (a == 1) { s.nz = n[2] * nc; vp_parallel_for(rows, grain, pass_y, &s); }
        else vp_parallel_for(rows, grain, pass_z, &s);
        free(map);
        free(w);
        free(wd);
        float *t = cur;
        cur = other;
        other = t;
    }
    if (cur != v->data) { /* the result is in the scratch buffer: it becomes the volume's */
        free(v->alloc);     /* == other, the original buffer */
        v->alloc = v->data = cur;
    } else {
        free(other); /* scratch, or NULL */
    }
}
