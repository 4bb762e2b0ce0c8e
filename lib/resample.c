/* resample.c - see resample.h: grids, the per-voxel paths (nearest, labels, oblique) and dispatch.
 * The separable path is in resample_sep.c, the one-dimensional pieces in resample_1d.c. */
#include "resample_core.h"
#include "parallel.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

void vp_resample_opts_default(struct vp_resample_opts *o)
{
    memset(o, 0, sizeof *o);
    o->order = 1;
    o->mode = VP_EXTEND_NEAREST;
    o->label_mode = VP_LABEL_NEAREST;
}

static double col_norm(const double a[16], int c)
{
    return sqrt(a[c] * a[c] + a[4 + c] * a[4 + c] + a[8 + c] * a[8 + c]);
}

int vp_grid_for_spacing(const vp_vol *v, const double sp[3], struct vp_grid *g, const char *ctx)
{
    memcpy(g->affine, v->affine, sizeof g->affine);
    for (int a = 0; a < 3; a++) {
        double s = col_norm(v->affine, a);
        double d = rint((double)(v->dims[a] - 1) * s / sp[a] + 1.0);
        if (!(d >= 1)) d = 1;
        if (d > (double)VP_MAX_DIM) {
            vp_error("%s: spacing %g mm along axis %d gives %.0f voxels (at most %llu)", ctx, sp[a], a, d,
                     (unsigned long long)VP_MAX_DIM);
            return -1;
        }
        g->dims[a] = (uint64_t)d;
        for (int r = 0; r < 3; r++) g->affine[r * 4 + a] = v->affine[r * 4 + a] * (sp[a] / s);
    }
    return 0;
}

static double dot3(const double *a, int sa, const double *b, int sb)
{
    return a[0] * b[0] + a[sa] * b[sb] + a[2 * sa] * b[2 * sb];
}

int vp_grid_map(const double A[16], const struct vp_grid *g, double m[3][4])
{
    const double *B = g->affine;
    double d[3] = {B[3] - A[3], B[7] - A[7], B[11] - A[11]};
    double n[3];
    int orth = 1;
    for (int i = 0; i < 3; i++) n[i] = col_norm(A, i);
    for (int i = 0; i < 3; i++)
        for (int j = i + 1; j < 3; j++)
            if (fabs(dot3(A + i, 4, A + j, 4)) > 1e-9 * n[i] * n[j]) orth = 0;
    if (orth) { /* inverse(R) = diag(1/|c_i|^2) R^T: exact for scaled axes */
        for (int i = 0; i < 3; i++) {
            double nn = dot3(A + i, 4, A + i, 4);
            if (!(nn > 0)) return -1;
            for (int j = 0; j < 3; j++) m[i][j] = dot3(A + i, 4, B + j, 4) / nn;
            m[i][3] = dot3(A + i, 4, d, 1) / nn;
        }
    } else { /* cofactors */
        double r[3][3], inv[3][3];
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++) r[i][j] = A[i * 4 + j];
        double det = r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1]) -
                     r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0]) +
                     r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0]);
        if (!(fabs(det) > 0) || !isfinite(det)) return -1;
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++) {
                int i1 = (j + 1) % 3, i2 = (j + 2) % 3, j1 = (i + 1) % 3, j2 = (i + 2) % 3;
                inv[i][j] = (r[i1][j1] * r[i2][j2] - r[i1][j2] * r[i2][j1]) / det;
            }
        for (int i = 0; i < 3; i++) {
            for (int j = 0; j < 3; j++) m[i][j] = inv[i][0] * B[j] + inv[i][1] * B[4 + j] + inv[i][2] * B[8 + j];
            m[i][3] = inv[i][0] * d[0] + inv[i][1] * d[1] + inv[i][2] * d[2];
        }
    }
    int diag = 1;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            if (i == j) continue;
            double reach = fabs(m[i][j]) * (double)(g->dims[j] > 0 ? g->dims[j] - 1 : 0);
            if (reach < 1e-6) m[i][j] = 0;
            else diag = 0;
        }
    return diag;
}

double vp_resample_aa_sigma(const double m[3][4], int a)
{
    double f = sqrt(m[a][0] * m[a][0] + m[a][1] * m[a][1] + m[a][2] * m[a][2]);
    return f > 1 ? (f - 1) / 2 : 0;
}

/* ---- per-voxel paths ---- */

struct pt_ctx {
    const vp_vol *in;
    const void *data;       /* this channel */
    uint64_t n[3], no[3];
    double m[3][4];
    int aligned, order;     /* order of the taps: 0 nearest, 1 labels, 1/3 images */
    enum vp_extend mode;
    double cval;
    int64_t npad;
    int64_t *tidx[3];       /* aligned: per-axis tap tables */
    double *tw[3];
    /* outputs */
    void *out;
    enum vp_dtype ot;
    unsigned char fill[8];  /* cval in the output type */
    enum vp_label_mode lmode;
    const double *coef;     /* images order 1/3: coefficient array, dims L */
    int64_t L[3];
};

static void make_tables(struct pt_ctx *c)
{
    int K = c->order + 1;
    for (int a = 0; a < 3; a++) {
        c->tidx[a] = vp_malloc(c->no[a] * (size_t)K * sizeof *c->tidx[a]);
        c->tw[a] = vp_malloc(c->no[a] * (size_t)K * sizeof *c->tw[a]);
        for (uint64_t o = 0; o < c->no[a]; o++)
            rs_taps(c->m[a][a] * (double)o + c->m[a][3], c->order, c->mode, (int64_t)c->n[a], c->npad,
                    c->tidx[a] + o * K, c->tw[a] + o * K);
    }
}

/* taps of output voxel (i, j, k) along each axis */
static inline void point_taps(const struct pt_ctx *c, uint64_t i, uint64_t j, uint64_t k, int64_t idx[3][RS_MAXTAP],
                              double w[3][RS_MAXTAP])
{
    int K = c->order + 1;
    if (c->aligned) {
        uint64_t o[3] = {i, j, k};
        for (int a = 0; a < 3; a++) {
            memcpy(idx[a], c->tidx[a] + o[a] * K, (size_t)K * sizeof **idx);
            memcpy(w[a], c->tw[a] + o[a] * K, (size_t)K * sizeof **w);
        }
        return;
    }
    double di = (double)i, dj = (double)j, dk = (double)k;
    for (int a = 0; a < 3; a++) {
        double cc = c->m[a][0] * di + c->m[a][1] * dj + c->m[a][2] * dk + c->m[a][3];
        rs_taps(cc, c->order, c->mode, (int64_t)c->n[a], c->npad, idx[a], w[a]);
    }
}

static inline int64_t get_label(const void *d, enum vp_dtype t, uint64_t i)
{
    switch (t) {
    case VP_U8: return ((const uint8_t *)d)[i];
    case VP_I16: return ((const int16_t *)d)[i];
    case VP_U16: return ((const uint16_t *)d)[i];
    case VP_I32: return ((const int32_t *)d)[i];
    default: return 0;
    }
}

static inline double get_value(const void *d, enum vp_dtype t, uint64_t i)
{
    switch (t) {
    case VP_F32: return ((const float *)d)[i];
    case VP_F16: return vp_half_to_float(((const uint16_t *)d)[i]);
    default: return (double)get_label(d, t, i);
    }
}

static void put_label(void *d, enum vp_dtype t, uint64_t i, int64_t v)
{
    switch (t) {
    case VP_U8: ((uint8_t *)d)[i] = (uint8_t)v; break;
    case VP_I16: ((int16_t *)d)[i] = (int16_t)v; break;
    case VP_U16: ((uint16_t *)d)[i] = (uint16_t)v; break;
    case VP_I32: ((int32_t *)d)[i] = (int32_t)v; break;
    default: break;
    }
}

/* nearest neighbour: voxels copied as bytes (images of any dtype, labels). On an aligned grid a
 * row reads one input row through the x table; otherwise each voxel has its own taps. */
static void rows_nearest(void *ctx, uint64_t r0, uint64_t r1, int worker)
{
    const struct pt_ctx *c = ctx;
    const size_t es = vp_dtype_size(c->ot);
    const unsigned char *in = c->data;
    int64_t idx[3][RS_MAXTAP];
    double w[3][RS_MAXTAP];
    for (uint64_t r = r0; r < r1; r++) {
        uint64_t j = r % c->no[1], k = r / c->no[1];
        unsigned char *out = (unsigned char *)c->out + r * c->no[0] * es;
        if (c->aligned) {
            int64_t iy = c->tidx[1][j], iz = c->tidx[2][k];
            const int64_t *ix = c->tidx[0];
            const unsigned char *row = in + ((uint64_t)(iz < 0 ? 0 : iz) * c->n[1] + (uint64_t)(iy < 0 ? 0 : iy)) * c->n[0] * es;
            for (uint64_t i = 0; i < c->no[0]; i++) {
                const unsigned char *src = iy < 0 || iz < 0 || ix[i] < 0 ? c->fill : row + (uint64_t)ix[i] * es;
                switch (es) {
                case 1: out[i] = *src; break;
                case 2: memcpy(out + 2 * i, src, 2); break;
                case 4: memcpy(out + 4 * i, src, 4); break;
                default: memcpy(out + i * es, src, es);
                }
            }
            continue;
        }
        for (uint64_t i = 0; i < c->no[0]; i++) {
            point_taps(c, i, j, k, idx, w);
            const void *src = c->fill;
            if (idx[0][0] >= 0 && idx[1][0] >= 0 && idx[2][0] >= 0)
                src = in + (((uint64_t)idx[2][0] * c->n[1] + (uint64_t)idx[1][0]) * c->n[0] + (uint64_t)idx[0][0]) * es;
            memcpy(out + i * es, src, es);
        }
    }
    (void)worker;
}

/* labels by linear interpolation of one-hot masks: per distinct label among the 8 taps, the sum of
 * its tap weights, each ((wx * wy) * wz) added in scipy's tap order (z fastest) */
static void rows_labels(void *ctx, uint64_t r0, uint64_t r1, int worker)
{
    const struct pt_ctx *c = ctx;
    int64_t idx[3][RS_MAXTAP];
    double w[3][RS_MAXTAP];
    int64_t fill = get_label(c->fill, c->ot, 0);
    for (uint64_t r = r0; r < r1; r++) {
        uint64_t j = r % c->no[1], k = r / c->no[1];
        for (uint64_t i = 0; i < c->no[0]; i++) {
            point_taps(c, i, j, k, idx, w);
            int64_t lab[8];
            double sum[8];
            int nl = 0;
            for (int tx = 0; tx < 2; tx++)
                for (int ty = 0; ty < 2; ty++)
                    for (int tz = 0; tz < 2; tz++) {
                        int64_t ix = idx[0][tx], iy = idx[1][ty], iz = idx[2][tz], l = fill;
                        if (ix >= 0 && iy >= 0 && iz >= 0)
                            l = get_label(c->data, c->in->dtype, ((uint64_t)iz * c->n[1] + (uint64_t)iy) * c->n[0] + (uint64_t)ix);
                        double v = 1.0 * w[0][tx] * w[1][ty] * w[2][tz];
                        int q = 0;
                        while (q < nl && lab[q] != l) q++;
                        if (q == nl) { lab[nl] = l; sum[nl++] = 0.0; }
                        sum[q] += v;
                    }
            int64_t best = 0;
            if (c->lmode == VP_LABEL_ONEHOT) { /* argmax; ties to the smaller label (numpy argmax) */
                double bs = -1;
                for (int q = 0; q < nl; q++)
                    if (sum[q] > bs || (sum[q] == bs && lab[q] < best)) { bs = sum[q]; best = lab[q]; }
            } else { /* nnU-Net: labels in ascending order overwrite where their mask >= 0.5 */
                int found = 0;
                for (int q = 0; q < nl; q++)
                    if (sum[q] >= 0.5 && (!found || lab[q] > best)) { best = lab[q]; found = 1; }
            }
            put_label(c->out, c->ot, r * c->no[0] + i, best);
        }
    }
    (void)worker;
}

/* images, order 1/3, general grid: the (order+1)^3 taps summed in scipy's order */
static void rows_general(void *ctx, uint64_t r0, uint64_t r1, int worker)
{
    const struct pt_ctx *c = ctx;
    int64_t idx[3][RS_MAXTAP];
    double w[3][RS_MAXTAP];
    int K = c->order + 1;
    double *acc = vp_malloc(c->no[0] * sizeof *acc);
    const int64_t sy = c->L[0], sz = c->L[0] * c->L[1];
    for (uint64_t r = r0; r < r1; r++) {
        uint64_t j = r % c->no[1], k = r / c->no[1];
        for (uint64_t i = 0; i < c->no[0]; i++) {
            point_taps(c, i, j, k, idx, w);
            double t = 0.0;
            for (int tx = 0; tx < K; tx++)
                for (int ty = 0; ty < K; ty++)
                    for (int tz = 0; tz < K; tz++) {
                        int64_t ix = idx[0][tx], iy = idx[1][ty], iz = idx[2][tz];
                        double coeff = ix < 0 || iy < 0 || iz < 0 ? c->cval
                                       : c->coef ? c->coef[iz * sz + iy * sy + ix]
                                                 : get_value(c->data, c->in->dtype, (uint64_t)(iz * sz + iy * sy + ix));
                        coeff *= w[0][tx];
                        coeff *= w[1][ty];
                        coeff *= w[2][tz];
                        t += coeff;
                    }
            acc[i] = t;
        }
        rs_store(acc, c->no[0], c->ot, c->out, r * c->no[0]);
    }
    free(acc);
    (void)worker;
}

static int is_float(enum vp_dtype t) { return t == VP_F16 || t == VP_F32; }

/* The output volume, not zeroed (every voxel is written). A large one is aligned to 2 MiB and
 * asks for transparent huge pages: first-touch page faults are a good part of the time of a
 * pass this fast. */
static vp_vol *new_output(const uint64_t dims[4], enum vp_dtype t, const double affine[16], uint64_t nbytes)
{
    const size_t huge = (size_t)2 << 20;
    void *p = NULL;
    if (nbytes >= 2 * huge) {
        if (posix_memalign(&p, huge, (size_t)nbytes)) p = NULL;
#ifdef MADV_HUGEPAGE
        if (p) madvise(p, ((size_t)nbytes + huge - 1) / huge * huge, MADV_HUGEPAGE);
#endif
    }
    if (!p) p = vp_malloc((size_t)nbytes ? (size_t)nbytes : 1);
    return vp_vol_wrap(dims, t, affine, p, 0);
}

vp_vol *vp_resample(const vp_vol *in, const struct vp_grid *g, const struct vp_resample_opts *o, const char *ctx)
{
    if (o->is_label && is_float(in->dtype)) {
        vp_error("%s: a label volume must have an integer dtype (u8, i16, u16, i32), not %s", ctx, vp_dtype_name(in->dtype));
        return NULL;
    }
    if (!o->is_label && o->order != 0 && o->order != 1 && o->order != 3) {
        vp_error("%s: interpolation order %d is not 0, 1 or 3", ctx, o->order);
        return NULL;
    }
    struct pt_ctx c;
    memset(&c, 0, sizeof c);
    c.in = in;
    int aligned = vp_grid_map(in->affine, g, c.m);
    if (aligned < 0) {
        vp_error("%s: the affine is singular: no voxel-to-world inverse", ctx);
        return NULL;
    }
    enum vp_dtype ot = in->dtype;
    if (!o->is_label && o->order > 0 && !is_float(in->dtype) && !o->keep_dtype) ot = VP_F32;
    uint64_t dims[4] = {g->dims[0], g->dims[1], g->dims[2], in->dims[3]}, nbytes;
    if (vp_vol_nbytes(dims, ot, &nbytes)) {
        vp_error("%s: output %llux%llux%llux%llu is beyond the format's limits", ctx, (unsigned long long)dims[0],
                 (unsigned long long)dims[1], (unsigned long long)dims[2], (unsigned long long)dims[3]);
        return NULL;
    }
    vp_vol *out = new_output(dims, ot, g->affine, nbytes);
    out->has_channels = in->has_channels;

    for (int a = 0; a < 3; a++) c.n[a] = in->dims[a], c.no[a] = g->dims[a];
    c.aligned = aligned;
    c.mode = o->mode;
    c.cval = o->cval;
    c.ot = ot;
    c.lmode = o->label_mode;
    rs_store(&o->cval, 1, ot, c.fill, 0);
    int per_voxel = o->is_label || o->order == 0;
    double sigma[3] = {0, 0, 0};
    if (!per_voxel && o->antialias)
        for (int a = 0; a < 3; a++) sigma[a] = vp_resample_aa_sigma(c.m, a);
    c.order = o->is_label ? (o->label_mode == VP_LABEL_NEAREST ? 0 : 1) : o->order;
    c.npad = per_voxel ? 0 : rs_npad(c.order, c.mode);
    if (aligned && (per_voxel || c.order > 0)) make_tables(&c);

    uint64_t nvin = in->dims[0] * in->dims[1] * in->dims[2], nvout = dims[0] * dims[1] * dims[2];
    uint64_t rows = dims[1] * dims[2];
    for (uint64_t ch = 0; ch < in->dims[3]; ch++) {
        c.data = (const unsigned char *)in->data + ch * nvin * vp_dtype_size(in->dtype);
        c.out = (unsigned char *)out->data + ch * nvout * vp_dtype_size(ot);
        if (c.order == 0 && !o->is_label) {
            vp_parallel_for(rows, 0, rows_nearest, &c);
        } else if (o->is_label) {
            vp_parallel_for(rows, 0, o->label_mode == VP_LABEL_NEAREST ? rows_nearest : rows_labels, &c);
        } else if (aligned) {
            struct rs_sep s = {c.data, in->dtype, {c.n[0], c.n[1], c.n[2]}, {c.no[0], c.no[1], c.no[2]},
                               {{0}}, c.order, c.mode, c.cval, {sigma[0], sigma[1], sigma[2]}, c.out, ot};
            memcpy(s.m, c.m, sizeof s.m);
            rs_separable(&s);
        } else {
            /* order 1 without blur reads the input as it is; otherwise the coefficient array */
            double *coef = NULL;
            if (c.order == 3 || sigma[0] > 0 || sigma[1] > 0 || sigma[2] > 0)
                coef = rs_coefficients(c.data, in->dtype, c.n, c.order, c.mode, c.cval, sigma, c.L);
            else
                for (int a = 0; a < 3; a++) c.L[a] = (int64_t)c.n[a];
            c.coef = coef;
            vp_parallel_for(rows, 0, rows_general, &c);
            free(coef);
        }
    }
    for (int a = 0; a < 3; a++) {
        free(c.tidx[a]);
        free(c.tw[a]);
    }
    return out;
}
