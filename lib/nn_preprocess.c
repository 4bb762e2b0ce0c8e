/* nn_preprocess.c - model-grid preprocessing and the way back (see nn_preprocess.h). */
#include "nn_preprocess.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "normalize.h"
#include "util.h"

#define ANISO 3.0 /* nnunetv2.configuration.ANISO_THRESHOLD */

/* Normalise v (f32, in place) as m says. */
static void normalise(vp_vol *v, const vp_nn_meta *m)
{
    struct vp_elem e = {0};
    uint64_t n = vp_vol_nvox(v);
    switch (m->norm) {
    case VP_NN_NORM_NONE: return;
    case VP_NN_NORM_RANGE:
        e.kind = VP_ELEM_RANGE, e.a0 = m->a_min, e.a1 = m->a_max, e.b0 = m->b_min, e.b1 = m->b_max, e.has_b = 1;
        e.clip = m->clip;
        break;
    case VP_NN_NORM_CT:
        e.kind = VP_ELEM_CT, e.lo = m->lo, e.hi = m->hi, e.sub = m->mean, e.div = m->std;
        break;
    case VP_NN_NORM_ZSCORE: {
        double mean, sd;
        uint64_t cnt;
        vp_moments(v, 0, n, 0, &mean, &sd, &cnt);
        e.kind = VP_ELEM_SUBDIV, e.sub = mean, e.div = sd > 1e-8 ? sd : 1e-8;
        break;
    }
    }
    vp_elem_apply(v, v, 0, n, &e);
}

/* nnU-Net's separate-axis rule on spacings in the volume's order: the coarsest axis when it is
 * unique and max/min > 3 (first the old spacing, then the new), else -1. */
static int lowres_axis(const double sp[3])
{
    double mx = fmax(sp[0], fmax(sp[1], sp[2])), mn = fmin(sp[0], fmin(sp[1], sp[2]));
    if (!(mx / mn > ANISO)) return -2; /* not anisotropic */
    int n = 0, ax = -1;
    for (int a = 0; a < 3; a++)
        if (mx / sp[a] == 1) n++, ax = a;
    return n == 1 ? ax : -1;
}

static int sep_axis_for(const double old_sp[3], const double new_sp[3])
{
    int a = lowres_axis(old_sp);
    if (a == -2) a = lowres_axis(new_sp);
    return a < 0 ? -1 : a;
}

/* The grid of skimage's resize from in (dims n, affine A) to dims o: voxel j sits at input index
 * (j + 0.5) * n / o - 0.5 per axis; axes with keep[a] keep the input's. */
static void resize_grid(const struct vp_grid *in, const uint64_t o[3], struct vp_grid *g)
{
    double f[3], t[3];
    for (int a = 0; a < 3; a++) {
        f[a] = (double)in->dims[a] / (double)o[a];
        t[a] = 0.5 * f[a] - 0.5;
        g->dims[a] = o[a];
    }
    memcpy(g->affine, in->affine, sizeof g->affine);
    for (int r = 0; r < 3; r++) {
        double tr = in->affine[r * 4 + 3];
        for (int a = 0; a < 3; a++) {
            g->affine[r * 4 + a] = in->affine[r * 4 + a] * f[a];
            tr += in->affine[r * 4 + a] * t[a];
        }
        g->affine[r * 4 + 3] = tr;
    }
}

/* skimage's resize clips its output to the input's value range (clip=True, nnU-Net's call): the
 * whole volume, or (sep >= 0) each slice across axis sep to that input slice's range. v and out
 * are f32 with the same size along sep. */
static void clip_to_range(const vp_vol *in, vp_vol *out, int sep)
{
    const float *a = in->data;
    float *o = out->data;
    const uint64_t *n = in->dims, *m = out->dims;
    const uint64_t ns = sep < 0 ? 1 : n[sep];
    for (uint64_t s = 0; s < ns; s++) {
        float lo = INFINITY, hi = -INFINITY;
        for (uint64_t z = 0; z < n[2]; z++)
            for (uint64_t y = 0; y < n[1]; y++)
                for (uint64_t x = 0; x < n[0]; x++) {
                    uint64_t c[3] = {x, y, z};
                    if (sep >= 0 && c[sep] != s) continue;
                    float f = a[(z * n[1] + y) * n[0] + x];
                    if (f < lo) lo = f;
                    if (f > hi) hi = f;
                }
        for (uint64_t z = 0; z < m[2]; z++)
            for (uint64_t y = 0; y < m[1]; y++)
                for (uint64_t x = 0; x < m[0]; x++) {
                    uint64_t c[3] = {x, y, z};
                    if (sep >= 0 && c[sep] != s) continue;
                    float *f = &o[(z * m[1] + y) * m[0] + x];
                    *f = *f < lo ? lo : *f > hi ? hi : *f;
                }
    }
}

/* nnU-Net's order-0 step along the separate axis: output slice k is input slice floor(c + 0.5),
 * c = (n_in / n_out) * (k + 0.5) - 0.5 in double as numpy computes it, clamped to the input
 * (map_coordinates order 0, mode nearest). Computed here rather than through the affines so
 * that coordinates on exact halves round as scipy's do. */
static vp_vol *pick_slices(const vp_vol *t, int sep, const struct vp_grid *to)
{
    const uint64_t dims[4] = {to->dims[0], to->dims[1], to->dims[2], t->dims[3]};
    vp_vol *r = vp_vol_new(dims, t->dtype, to->affine);
    r->has_channels = t->has_channels;
    const size_t es = vp_dtype_size(t->dtype);
    const double scale = (double)t->dims[sep] / (double)to->dims[sep];
    const uint64_t *n = t->dims;
    for (uint64_t c = 0; c < dims[3]; c++)
        for (uint64_t z = 0; z < dims[2]; z++)
            for (uint64_t y = 0; y < dims[1]; y++) {
                uint64_t s[3] = {0, y, z};
                if (sep) {
                    double cc = scale * ((double)s[sep] + 0.5) - 0.5, f = floor(cc + 0.5);
                    s[sep] = f < 0 ? 0 : f > (double)(n[sep] - 1) ? n[sep] - 1 : (uint64_t)f;
                }
                const char *src = (const char *)t->data + (((c * n[2] + s[2]) * n[1] + s[1]) * n[0]) * es;
                char *dst = (char *)r->data + (((c * dims[2] + z) * dims[1] + y) * dims[0]) * es;
                if (sep)
                    memcpy(dst, src, dims[0] * es);
                else
                    for (uint64_t x = 0; x < dims[0]; x++) {
                        double cc = scale * ((double)x + 0.5) - 0.5, f = floor(cc + 0.5);
                        uint64_t sx = f < 0 ? 0 : f > (double)(n[0] - 1) ? n[0] - 1 : (uint64_t)f;
                        memcpy(dst + x * es, src + sx * es, es);
                    }
            }
    return r;
}

/* Resample v (f32 for order 3) from grid `from` (v's own) to grid `to` nnU-Net's way: order
 * `order` on every axis, or with sep >= 0 first the other axes (order) and then axis sep with order
 * 0; order 3 results are clipped as skimage's resize does. */
static vp_vol *resample_nnunet(const vp_vol *v, const struct vp_grid *from, const struct vp_grid *to, int order, int sep,
                               const char *ctx)
{
    struct vp_resample_opts o;
    vp_resample_opts_default(&o);
    o.order = order;
    o.mode = VP_EXTEND_NEAREST;
    if (sep >= 0 && from->dims[sep] == to->dims[sep]) sep = -1;
    struct vp_grid mid = *to;
    if (sep >= 0) {
        uint64_t mid_dims[3] = {to->dims[0], to->dims[1], to->dims[2]};
        mid_dims[sep] = from->dims[sep];
        resize_grid(from, mid_dims, &mid);
    }
    vp_vol *t = vp_resample(v, &mid, &o, ctx);
    if (!t) return NULL;
    if (order == 3 && v->dtype == VP_F32 && t->dtype == VP_F32 && v->dims[3] == 1) clip_to_range(v, t, sep);
    if (sep < 0) return t;
    vp_vol *r = pick_slices(t, sep, to);
    vp_vol_free(&t);
    return r;
}

static void grid_of(const vp_vol *v, struct vp_grid *g)
{
    for (int a = 0; a < 3; a++) g->dims[a] = v->dims[a];
    memcpy(g->affine, v->affine, sizeof g->affine);
}

vp_vol *vp_nn_preprocess(const vp_vol *v, const vp_nn_meta *m, enum vp_nn_style style, vp_nn_prep *p, const char *ctx)
{
    memset(p, 0, sizeof *p);
    p->style = style;
    p->sep_axis = -1;
    grid_of(v, &p->in);
    p->model = p->in;
    double sp[3];
    vp_vol_spacing(v, sp);
    if (m->has_spacing)
        for (int a = 0; a < 3; a++)
            if (fabs(sp[a] - m->spacing[a]) > 1e-6 * m->spacing[a]) p->resampled = 1;
    if (style == VP_NN_STYLE_MONAI) {
        vp_vol *r;
        if (p->resampled) {
            if (vp_grid_for_spacing(v, m->spacing, &p->model, ctx)) return NULL;
            struct vp_resample_opts o;
            vp_resample_opts_default(&o);
            o.order = 1;
            o.mode = VP_EXTEND_NEAREST;
            vp_vol *t = vp_resample(v, &p->model, &o, ctx);
            if (!t) return NULL;
            r = t->dtype == VP_F32 ? t : vp_vol_to_f32(t);
            if (r != t) vp_vol_free(&t);
        } else
            r = vp_vol_to_f32(v);
        normalise(r, m);
        return r;
    }
    vp_vol *n = vp_vol_to_f32(v);
    normalise(n, m);
    if (!p->resampled) return n;
    uint64_t nd[3];
    for (int a = 0; a < 3; a++) {
        double d = nearbyint(sp[a] / m->spacing[a] * (double)v->dims[a]);
        if (!(d >= 1) || d > (double)VP_MAX_DIM) {
            vp_vol_free(&n);
            return vp_error("%s: spacing %g mm along axis %d gives %.0f voxels", ctx, m->spacing[a], a, d), NULL;
        }
        nd[a] = (uint64_t)d;
    }
    resize_grid(&p->in, nd, &p->model);
    p->sep_axis = sep_axis_for(sp, m->spacing);
    vp_vol *r = resample_nnunet(n, &p->in, &p->model, 3, p->sep_axis, ctx);
    vp_vol_free(&n);
    return r;
}

static vp_vol *copy_vol(const vp_vol *v)
{
    uint64_t nb;
    vp_vol_nbytes(v->dims, v->dtype, &nb);
    vp_vol *c = vp_vol_new(v->dims, v->dtype, v->affine);
    c->has_channels = v->has_channels;
    memcpy(c->data, v->data, (size_t)nb);
    return c;
}

vp_vol *vp_nn_labels_back(const vp_vol *lab, const vp_nn_prep *p, const char *ctx)
{
    if (!p->resampled) return copy_vol(lab);
    struct vp_resample_opts o;
    vp_resample_opts_default(&o);
    o.is_label = 1;
    o.label_mode = VP_LABEL_NEAREST;
    return vp_resample(lab, &p->in, &o, ctx);
}

vp_vol *vp_nn_linear_back(const vp_vol *v, const vp_nn_prep *p, const char *ctx)
{
    if (!p->resampled) return copy_vol(v);
    if (p->style == VP_NN_STYLE_NNUNET) return resample_nnunet(v, &p->model, &p->in, 1, p->sep_axis, ctx);
    struct vp_resample_opts o;
    vp_resample_opts_default(&o);
    o.order = 1;
    o.mode = VP_EXTEND_NEAREST;
    return vp_resample(v, &p->in, &o, ctx);
}

vp_vol *vp_nn_argmax_back(const void *scores, int half, int K, const vp_nn_prep *p, const char *ctx)
{
    const uint64_t nm = p->model.dims[0] * p->model.dims[1] * p->model.dims[2];
    const uint64_t ni = p->in.dims[0] * p->in.dims[1] * p->in.dims[2];
    const uint64_t d1[4] = {p->in.dims[0], p->in.dims[1], p->in.dims[2], 1};
    vp_vol *lab = vp_vol_new(d1, K > 256 ? VP_U16 : VP_U8, p->in.affine);
    float *best = vp_malloc(sizeof(float) * (size_t)ni);
    for (int k = 0; k < K; k++) {
        vp_vol ch = {{p->model.dims[0], p->model.dims[1], p->model.dims[2], 1}, 0, half ? VP_F16 : VP_F32, {0}, NULL, NULL};
        memcpy(ch.affine, p->model.affine, sizeof ch.affine);
        ch.data = (char *)scores + (size_t)k * nm * (half ? 2 : 4);
        vp_vol *r = p->resampled ? vp_nn_linear_back(&ch, p, ctx) : &ch;
        if (!r) {
            free(best);
            vp_vol_free(&lab);
            return NULL;
        }
        for (uint64_t i = 0; i < ni; i++) {
            float s = r->dtype == VP_F16 ? vp_half_to_float(((const uint16_t *)r->data)[i]) : ((const float *)r->data)[i];
            if (k == 0 || s > best[i]) {
                best[i] = s;
                if (K > 256) ((uint16_t *)lab->data)[i] = (uint16_t)k;
                else ((uint8_t *)lab->data)[i] = (uint8_t)k;
            }
        }
        if (r != &ch) vp_vol_free(&r);
    }
    free(best);
    return lab;
}
