/* augment.c - see augment.h: configuration, drawing a case's parameters, the
 * spatial transform (resample.h with scipy's conventions, or a plain crop), mirroring, and the
 * meta.augment record. The intensity transforms are in augment_intensity.c, elastic deformation in
 * augment_elastic.c, the --fixed parser in augment_fixed.c. */
#include "augment.h"
#include "resample.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const vp_aug_names[VP_AUG_N] = {"rotation", "scaling", "elastic", "noise", "blur", "brightness",
                                            "contrast", "lowres", "gamma_inv", "gamma", "flip"};

void vp_aug_config_default(struct vp_aug_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    static const double p[VP_AUG_N] = {0.2, 0.2, 0, 0.1, 0.2, 0.15, 0.15, 0.25, 0.1, 0.3, 0.5};
    memcpy(cfg->p, p, sizeof p);
    cfg->p_blur_channel = 0.5;
    cfg->p_lowres_channel = 0.5;
    cfg->rot_max = 30.0 / 360.0 * 2.0 * M_PI;
    cfg->order = 1;
    cfg->spatial = cfg->intensity = 1;
}

/* ---- one case's parameters ---- */

struct params {
    int applied[VP_AUG_N];
    double angle[3], scale[3];
    double el_scale[3], el_mag[3];
    uint64_t el_key;
    int flip[3];
    uint64_t pdims[3]; /* output dims */
    double centre[3];
    double m[3][4];    /* input index = m o + t (m[a][3] = t) */
    int resample;      /* else a crop at integer offset centre - (P-1)/2 */
    double noise;
    uint64_t noise_key;
    int nc;
    int ch[VP_AUG_N][VP_AUG_MAXCH]; /* per channel: blur, lowres applied */
    double blur[VP_AUG_MAXCH][3], bright[VP_AUG_MAXCH], contrast[VP_AUG_MAXCH], lowres[VP_AUG_MAXCH],
        gamma_inv[VP_AUG_MAXCH], gamma[VP_AUG_MAXCH];
};

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

/* BGContrast(lo, hi) */
static double bg_contrast(uint64_t *st, double lo, double hi)
{
    if (vp_aug_uniform(st) < 0.5 && lo < 1) return lo + (1 - lo) * vp_aug_uniform(st);
    double a = lo > 1 ? lo : 1;
    return a + (hi - a) * vp_aug_uniform(st);
}

static void draw(const vp_case *c, const vp_vol *img, const struct vp_aug_config *cfg, struct params *P)
{
    memset(P, 0, sizeof *P);
    uint64_t key = vp_aug_mix(vp_aug_mix(cfg->seed) ^ fnv1a(c->id));
    uint64_t st[VP_AUG_N + 1];
    for (int t = 0; t <= VP_AUG_N; t++) st[t] = vp_aug_mix(key + (uint64_t)(t + 1) * 0x9E3779B97F4A7C15ULL);
    const struct vp_aug_fixed *f = cfg->fixed;
    P->nc = (int)img->dims[3];
    for (int t = 0; t < VP_AUG_N; t++) {
        int group = t <= VP_AUG_ELASTIC || t == VP_AUG_FLIP ? cfg->spatial : cfg->intensity;
        if (f) P->applied[t] = group && f->set[t];
        else if (t != VP_AUG_FLIP) P->applied[t] = group && vp_aug_uniform(&st[t]) < cfg->p[t];
    }
    for (int a = 0; a < 3; a++) P->scale[a] = 1;
    /* spatial */
    if (P->applied[VP_AUG_ROTATION])
        for (int a = 0; a < 3; a++)
            P->angle[a] = f ? f->rotation[a] : -cfg->rot_max + 2 * cfg->rot_max * vp_aug_uniform(&st[VP_AUG_ROTATION]);
    if (P->applied[VP_AUG_SCALING]) {
        double s = f ? 0 : 0.7 + 0.7 * vp_aug_uniform(&st[VP_AUG_SCALING]); /* uniform(0.7, 1.4) */
        for (int a = 0; a < 3; a++) P->scale[a] = f ? f->scale[a] : s;
    }
    if (P->applied[VP_AUG_ELASTIC]) {
        for (int a = 0; a < 3; a++) P->el_scale[a] = f ? f->elastic_scale[a] : 0.2 * vp_aug_uniform(&st[VP_AUG_ELASTIC]);
        for (int a = 0; a < 3; a++) P->el_mag[a] = f ? f->elastic_mag[a] : 0.2 * vp_aug_uniform(&st[VP_AUG_ELASTIC]);
        P->el_key = vp_aug_mix(st[VP_AUG_ELASTIC] ^ 0x656c6173ULL);
    }
    if (cfg->spatial) {
        int any = 0;
        for (int a = 0; a < 3; a++) {
            P->flip[a] = f ? f->flip[a] && f->set[VP_AUG_FLIP] : vp_aug_uniform(&st[VP_AUG_FLIP]) < cfg->p[VP_AUG_FLIP];
            any |= P->flip[a];
        }
        P->applied[VP_AUG_FLIP] = any;
    }
    /* patch placement: nnU-Net's random crop (a uniform integer corner; centred when the volume is
     * smaller than the patch) */
    uint64_t *pd = P->pdims;
    for (int a = 0; a < 3; a++) {
        uint64_t s = img->dims[a];
        pd[a] = cfg->has_patch ? cfg->patch[a] : s;
        double corner;
        if (s >= pd[a]) corner = floor(vp_aug_uniform(&st[VP_AUG_N]) * (double)(s - pd[a] + 1));
        else corner = -(double)((pd[a] - s + 1) / 2);
        P->centre[a] = f && f->has_centre ? f->centre[a] : corner + ((double)pd[a] - 1) / 2;
    }
    /* M = Rz Ry Rx S, as batchgeneratorsv2 create_affine_matrix_3d */
    double *g = P->angle, c0 = cos(g[0]), s0 = sin(g[0]), c1 = cos(g[1]), s1 = sin(g[1]), c2 = cos(g[2]), s2 = sin(g[2]);
    double Rx[3][3] = {{1, 0, 0}, {0, c0, -s0}, {0, s0, c0}}, Ry[3][3] = {{c1, 0, s1}, {0, 1, 0}, {-s1, 0, c1}},
           Rz[3][3] = {{c2, -s2, 0}, {s2, c2, 0}, {0, 0, 1}}, T[3][3], R[3][3];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) T[i][j] = Rz[i][0] * Ry[0][j] + Rz[i][1] * Ry[1][j] + Rz[i][2] * Ry[2][j];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) R[i][j] = T[i][0] * Rx[0][j] + T[i][1] * Rx[1][j] + T[i][2] * Rx[2][j];
    P->resample = P->applied[VP_AUG_ROTATION] || P->applied[VP_AUG_SCALING];
    for (int i = 0; i < 3; i++) {
        double t = P->centre[i];
        for (int j = 0; j < 3; j++) {
            P->m[i][j] = P->resample ? R[i][j] * P->scale[j] : i == j;
            t -= P->m[i][j] * (((double)pd[j] - 1) / 2);
        }
        P->m[i][3] = t;
        if (t != floor(t)) P->resample = 1; /* a given centre off the integer crop positions */
    }
    /* intensity */
    if (P->applied[VP_AUG_NOISE]) {
        P->noise = f ? f->noise : 0.1 * vp_aug_uniform(&st[VP_AUG_NOISE]);
        P->noise_key = vp_aug_mix(st[VP_AUG_NOISE] ^ 0x6e6f697365ULL);
    }
    for (int ch = 0; ch < P->nc; ch++) {
        if (P->applied[VP_AUG_BLUR] && (f || vp_aug_uniform(&st[VP_AUG_BLUR]) < cfg->p_blur_channel)) {
            P->ch[VP_AUG_BLUR][ch] = 1;
            for (int a = 0; a < 3; a++) P->blur[ch][a] = f ? f->blur[a] : 0.5 + 0.5 * vp_aug_uniform(&st[VP_AUG_BLUR]);
        }
        if (P->applied[VP_AUG_BRIGHTNESS])
            P->bright[ch] = f ? f->brightness : bg_contrast(&st[VP_AUG_BRIGHTNESS], 0.75, 1.25);
        if (P->applied[VP_AUG_CONTRAST])
            P->contrast[ch] = f ? f->contrast : bg_contrast(&st[VP_AUG_CONTRAST], 0.75, 1.25);
        if (P->applied[VP_AUG_LOWRES] && (f || vp_aug_uniform(&st[VP_AUG_LOWRES]) < cfg->p_lowres_channel)) {
            P->ch[VP_AUG_LOWRES][ch] = 1;
            P->lowres[ch] = f ? f->lowres : 0.5 + 0.5 * vp_aug_uniform(&st[VP_AUG_LOWRES]);
        }
        if (P->applied[VP_AUG_GAMMA_INV]) P->gamma_inv[ch] = f ? f->gamma_inv : bg_contrast(&st[VP_AUG_GAMMA_INV], 0.7, 1.5);
        if (P->applied[VP_AUG_GAMMA]) P->gamma[ch] = f ? f->gamma : bg_contrast(&st[VP_AUG_GAMMA], 0.7, 1.5);
    }
}

/* ---- spatial ---- */

/* out affine = A_in * [m t; 0 0 0 1] */
static void patch_affine(const double ain[16], const double m[3][4], double out[16])
{
    double T[16] = {m[0][0], m[0][1], m[0][2], m[0][3], m[1][0], m[1][1], m[1][2], m[1][3],
                    m[2][0], m[2][1], m[2][2], m[2][3], 0, 0, 0, 1};
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            double s = 0;
            for (int k = 0; k < 4; k++) s += ain[i * 4 + k] * T[k * 4 + j];
            out[i * 4 + j] = s;
        }
}

/* the patch of v at integer offset off (zeros outside), dtype kept, or converted to f32 */
static vp_vol *crop(const vp_vol *v, const uint64_t pd[3], const int64_t off[3], int to_f32)
{
    enum vp_dtype ot = to_f32 ? VP_F32 : v->dtype;
    uint64_t dims[4] = {pd[0], pd[1], pd[2], v->dims[3]};
    vp_vol *o = vp_vol_new(dims, ot, v->affine);
    o->has_channels = v->has_channels;
    size_t es = vp_dtype_size(v->dtype), os = vp_dtype_size(ot);
    const uint64_t *n = v->dims;
    for (uint64_t c = 0; c < dims[3]; c++)
        for (uint64_t z = 0; z < pd[2]; z++) {
            int64_t iz = (int64_t)z + off[2];
            if (iz < 0 || iz >= (int64_t)n[2]) continue;
            for (uint64_t y = 0; y < pd[1]; y++) {
                int64_t iy = (int64_t)y + off[1];
                if (iy < 0 || iy >= (int64_t)n[1]) continue;
                uint64_t src = ((c * n[2] + (uint64_t)iz) * n[1] + (uint64_t)iy) * n[0];
                uint64_t dst = ((c * pd[2] + z) * pd[1] + y) * pd[0];
                for (uint64_t x = 0; x < pd[0]; x++) {
                    int64_t ix = (int64_t)x + off[0];
                    if (ix < 0 || ix >= (int64_t)n[0]) continue;
                    if (to_f32) ((float *)o->data)[dst + x] = (float)vp_vol_get(v, src + (uint64_t)ix);
                    else memcpy((char *)o->data + (dst + x) * os, (const char *)v->data + (src + (uint64_t)ix) * es, es);
                }
            }
        }
    return o;
}

static vp_vol *spatial(const vp_vol *v, const struct params *P, const double *field, int is_label, int order,
                       const char *ctx)
{
    vp_vol *o;
    if (field) {
        o = vp_aug_warp(v, P->pdims, P->m, field, is_label);
    } else if (P->resample) {
        vp_vol id = *v; /* the same voxels on an identity affine: the map is then exactly m */
        memset(id.affine, 0, sizeof id.affine);
        for (int i = 0; i < 4; i++) id.affine[i * 5] = 1;
        struct vp_grid g;
        memcpy(g.dims, P->pdims, sizeof g.dims);
        patch_affine(id.affine, P->m, g.affine);
        struct vp_resample_opts ro;
        vp_resample_opts_default(&ro);
        ro.order = order;
        ro.mode = VP_EXTEND_CONSTANT;
        ro.cval = 0;
        ro.is_label = is_label;
        ro.label_mode = VP_LABEL_NEAREST;
        o = vp_resample(&id, &g, &ro, ctx);
        if (!o) return NULL;
        if (!is_label && o->dtype != VP_F32) { /* f16 stays f16 in resample: widen */
            vp_vol *w = crop(o, P->pdims, (int64_t[3]){0, 0, 0}, 1);
            vp_vol_free(&o);
            o = w;
        }
    } else {
        int64_t off[3];
        for (int a = 0; a < 3; a++) off[a] = (int64_t)P->m[a][3];
        o = crop(v, P->pdims, off, !is_label);
    }
    patch_affine(v->affine, P->m, o->affine);
    return o;
}

/* mirror the volume along the axes in flip[], adjusting its affine: row by row into a new buffer */
static void mirror(vp_vol *v, const int flip[3])
{
    size_t es = vp_dtype_size(v->dtype);
    const uint64_t *n = v->dims;
    size_t rowb = n[0] * es;
    unsigned char *src = v->data, *dst = vp_malloc(vp_vol_nvox(v) * es);
    for (uint64_t c = 0; c < n[3]; c++)
        for (uint64_t z = 0; z < n[2]; z++)
            for (uint64_t y = 0; y < n[1]; y++) {
                uint64_t fy = flip[1] ? n[1] - 1 - y : y, fz = flip[2] ? n[2] - 1 - z : z;
                const unsigned char *s = src + ((c * n[2] + fz) * n[1] + fy) * rowb;
                unsigned char *d = dst + ((c * n[2] + z) * n[1] + y) * rowb;
                if (!flip[0]) memcpy(d, s, rowb);
                else
                    for (uint64_t x = 0; x < n[0]; x++) memcpy(d + x * es, s + (n[0] - 1 - x) * es, es);
            }
    memcpy(src, dst, vp_vol_nvox(v) * es);
    free(dst);
    for (int a = 0; a < 3; a++) {
        if (!flip[a]) continue;
        for (int r = 0; r < 3; r++) {
            v->affine[r * 4 + 3] += v->affine[r * 4 + a] * (double)(n[a] - 1);
            v->affine[r * 4 + a] = -v->affine[r * 4 + a];
        }
    }
}

/* ---- the record ---- */

static void pack_d3(msgpack_packer *pk, const char *k, const double *v)
{
    vp_pack_cstr(pk, k);
    msgpack_pack_array(pk, 3);
    for (int a = 0; a < 3; a++) msgpack_pack_double(pk, v[a]);
}

/* per channel: the value, or nil where the transform did not touch the channel */
static void pack_ch(msgpack_packer *pk, const struct params *P, enum vp_aug_t t, const double *v)
{
    vp_pack_cstr(pk, vp_aug_names[t]);
    msgpack_pack_array(pk, (size_t)P->nc);
    for (int c = 0; c < P->nc; c++) {
        int on = t == VP_AUG_LOWRES || t == VP_AUG_BLUR ? P->ch[t][c] : 1;
        if (!on) msgpack_pack_nil(pk);
        else if (t == VP_AUG_BLUR) {
            msgpack_pack_array(pk, 3);
            for (int a = 0; a < 3; a++) msgpack_pack_double(pk, P->blur[c][a]);
        } else msgpack_pack_double(pk, v[c]);
    }
}

static void record(vp_case *c, const struct params *P, const struct vp_aug_config *cfg)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int napplied = 0, nint = 0;
    for (int t = 0; t < VP_AUG_N; t++) napplied += P->applied[t];
    for (int t = VP_AUG_NOISE; t <= VP_AUG_GAMMA; t++) nint += P->applied[t] && t != VP_AUG_NOISE;
    msgpack_pack_map(&pk, 9 + (size_t)nint + (P->applied[VP_AUG_NOISE] ? 2 : 0) + (P->applied[VP_AUG_ELASTIC] ? 3 : 0));
    vp_pack_cstr(&pk, "seed");
    msgpack_pack_uint64(&pk, cfg->seed);
    vp_pack_cstr(&pk, "applied");
    msgpack_pack_array(&pk, (size_t)napplied);
    for (int t = 0; t < VP_AUG_N; t++)
        if (P->applied[t]) vp_pack_cstr(&pk, vp_aug_names[t]);
    vp_pack_cstr(&pk, "order");
    msgpack_pack_int(&pk, cfg->order);
    pack_d3(&pk, "rotation", P->angle);
    pack_d3(&pk, "scaling", P->scale);
    pack_d3(&pk, "centre", P->centre);
    vp_pack_cstr(&pk, "flip");
    msgpack_pack_array(&pk, 3);
    for (int a = 0; a < 3; a++) msgpack_pack_int(&pk, P->flip[a]);
    vp_pack_cstr(&pk, "patch");
    msgpack_pack_array(&pk, 3);
    for (int a = 0; a < 3; a++) msgpack_pack_uint64(&pk, P->pdims[a]);
    vp_pack_cstr(&pk, "matrix"); /* input voxel index = matrix (3x4, row-major) * (o, 1) */
    msgpack_pack_array(&pk, 12);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++) msgpack_pack_double(&pk, P->m[i][j]);
    if (P->applied[VP_AUG_ELASTIC]) {
        pack_d3(&pk, "elastic_scale", P->el_scale);
        pack_d3(&pk, "elastic_mag", P->el_mag);
        vp_pack_cstr(&pk, "elastic_key");
        msgpack_pack_uint64(&pk, P->el_key);
    }
    if (P->applied[VP_AUG_NOISE]) {
        vp_pack_cstr(&pk, "noise");
        msgpack_pack_double(&pk, P->noise);
        vp_pack_cstr(&pk, "noise_key");
        msgpack_pack_uint64(&pk, P->noise_key);
    }
    if (P->applied[VP_AUG_BLUR]) pack_ch(&pk, P, VP_AUG_BLUR, NULL);
    if (P->applied[VP_AUG_BRIGHTNESS]) pack_ch(&pk, P, VP_AUG_BRIGHTNESS, P->bright);
    if (P->applied[VP_AUG_CONTRAST]) pack_ch(&pk, P, VP_AUG_CONTRAST, P->contrast);
    if (P->applied[VP_AUG_LOWRES]) pack_ch(&pk, P, VP_AUG_LOWRES, P->lowres);
    if (P->applied[VP_AUG_GAMMA_INV]) pack_ch(&pk, P, VP_AUG_GAMMA_INV, P->gamma_inv);
    if (P->applied[VP_AUG_GAMMA]) pack_ch(&pk, P, VP_AUG_GAMMA, P->gamma);
    vp_case_meta_set_sbuf(c, "augment", &sb);
    msgpack_sbuffer_destroy(&sb);
}

/* ---- the case ---- */

static int same_grid(const vp_vol *a, const vp_vol *b)
{
    for (int i = 0; i < 3; i++)
        if (a->dims[i] != b->dims[i]) return 0;
    for (int i = 0; i < 16; i++)
        if (fabs(a->affine[i] - b->affine[i]) > 1e-6 * (1 + fabs(a->affine[i]))) return 0;
    return 1;
}

int vp_augment_case(vp_case *c, const char *image, const char *label, int label_required,
                    const struct vp_aug_config *cfg)
{
    vp_vol *img = vp_case_vol(c, image), *lab = label ? vp_case_vol(c, label) : NULL;
    if (!img) return vp_error("case '%s': no image volume '%s'", c->id, image), VP_ERR_DATA;
    if (label && !lab && label_required)
        return vp_error("case '%s': no label volume '%s' (named by --label)", c->id, label), VP_ERR_DATA;
    if (img->dims[3] > VP_AUG_MAXCH)
        return vp_error("case '%s': volume '%s': %llu channels; at most %d", c->id, image,
                        (unsigned long long)img->dims[3], VP_AUG_MAXCH), VP_ERR_DATA;
    if (lab) {
        if (!same_grid(img, lab))
            return vp_error("case '%s': volume '%s': grid (dims %llux%llux%llu and affine) differs from image '%s' "
                            "(%llux%llux%llu)", c->id, label, (unsigned long long)lab->dims[0],
                            (unsigned long long)lab->dims[1], (unsigned long long)lab->dims[2], image,
                            (unsigned long long)img->dims[0], (unsigned long long)img->dims[1],
                            (unsigned long long)img->dims[2]), VP_ERR_DATA;
        if (lab->dtype == VP_F32 || lab->dtype == VP_F16)
            return vp_error("case '%s': volume '%s': a label volume must have an integer dtype, not %s", c->id, label,
                            vp_dtype_name(lab->dtype)), VP_ERR_DATA;
        if (lab->dims[3] != 1)
            return vp_error("case '%s': volume '%s': a label volume has one channel, not %llu", c->id, label,
                            (unsigned long long)lab->dims[3]), VP_ERR_DATA;
    }
    struct params *P = vp_malloc(sizeof *P);
    draw(c, img, cfg, P);
    int any = cfg->has_patch;
    for (int t = 0; t < VP_AUG_N; t++) any |= P->applied[t];
    record(c, P, cfg);
    if (!any) {
        free(P);
        return 0;
    }
    char ctx[VP_MAX_ID + VP_MAX_NAME + 32];
    snprintf(ctx, sizeof ctx, "case '%s': volume '%s'", c->id, image);
    double *field = NULL;
    if (P->applied[VP_AUG_ELASTIC]) {
        if (cfg->order != 1) {
            free(P);
            return vp_error("case '%s': elastic deformation samples the image linearly only, not at order %d",
                            c->id, cfg->order), VP_ERR_USAGE;
        }
        double sigma[3];
        for (int a = 0; a < 3; a++) sigma[a] = P->el_scale[a] * (double)P->pdims[a];
        field = vp_malloc(3 * P->pdims[0] * P->pdims[1] * P->pdims[2] * sizeof *field);
        vp_aug_elastic_field(field, P->pdims, sigma, P->el_mag, P->el_key);
    }
    vp_vol *oi = spatial(img, P, field, 0, cfg->order, ctx), *ol = NULL;
    if (!oi) return free(field), free(P), VP_ERR_DATA;
    if (lab) {
        snprintf(ctx, sizeof ctx, "case '%s': volume '%s'", c->id, label);
        ol = spatial(lab, P, field, 1, 0, ctx);
        if (!ol) return vp_vol_free(&oi), free(field), free(P), VP_ERR_DATA;
    }
    free(field);
    uint64_t nvox = P->pdims[0] * P->pdims[1] * P->pdims[2];
    float *x = oi->data;
    if (P->applied[VP_AUG_NOISE]) vp_aug_noise(x, nvox * (uint64_t)P->nc, P->noise, P->noise_key);
    for (int ch = 0; ch < P->nc; ch++)
        if (P->ch[VP_AUG_BLUR][ch]) vp_aug_blur(x + ch * nvox, P->pdims, P->blur[ch]);
    for (int ch = 0; ch < P->nc; ch++)
        if (P->applied[VP_AUG_BRIGHTNESS]) vp_aug_brightness(x + ch * nvox, nvox, P->bright[ch]);
    for (int ch = 0; ch < P->nc; ch++)
        if (P->applied[VP_AUG_CONTRAST]) vp_aug_contrast(x + ch * nvox, nvox, P->contrast[ch]);
    for (int ch = 0; ch < P->nc; ch++)
        if (P->ch[VP_AUG_LOWRES][ch]) vp_aug_lowres(x + ch * nvox, P->pdims, P->lowres[ch]);
    for (int ch = 0; ch < P->nc; ch++)
        if (P->applied[VP_AUG_GAMMA_INV]) vp_aug_gamma(x + ch * nvox, nvox, P->gamma_inv[ch], 1);
    for (int ch = 0; ch < P->nc; ch++)
        if (P->applied[VP_AUG_GAMMA]) vp_aug_gamma(x + ch * nvox, nvox, P->gamma[ch], 0);
    if (P->applied[VP_AUG_FLIP]) {
        mirror(oi, P->flip);
        if (ol) mirror(ol, P->flip);
    }
    vp_case_add_vol(c, image, oi);
    if (ol) vp_case_add_vol(c, label, ol);
    free(P);
    return 0;
}
