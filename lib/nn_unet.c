/* nn_unet.c - PlainConvUNet: metadata, weights, forward (see nn_unet.h). */
#include "nn_unet.h"

#include "nn_resenc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Parse up to max integers separated by ',' or ';' (whitespace and brackets ignored); count or -1. */
static int parse_ints(const char *s, int *out, int max)
{
    int n = 0;
    while (*s) {
        if (strchr(" \t,;[]", *s)) {
            s++;
            continue;
        }
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || n == max || v < -1000000 || v > 1000000) return -1;
        out[n++] = (int)v;
        s = end;
    }
    return n;
}

static int meta_ints(const vp_safetensors *st, const char *where, const char *key, int *out, int want, int required)
{
    const char *s = vp_st_meta(st, key);
    if (!s) return required ? vp_error("%s: __metadata__ has no \"%s\"", where, key) : 0;
    int n = parse_ints(s, out, want);
    if (n != want)
        return vp_error("%s: __metadata__ \"%s\" = \"%s\": expected %d integers", where, key, s, want);
    return 1;
}

static int meta_pos(const vp_safetensors *st, const char *where, const char *key, int *out, int lo, int hi)
{
    if (meta_ints(st, where, key, out, 1, 1) < 0) return -1;
    if (*out < lo || *out > hi) return vp_error("%s: __metadata__ \"%s\" = %d: must be in [%d, %d]", where, key, *out, lo, hi);
    return 0;
}

int vp_unet_cfg_from_meta(const vp_safetensors *st, const char *where, vp_unet_cfg *c)
{
    memset(c, 0, sizeof *c);
    const char *arch = vp_st_meta(st, "architecture");
    if (!arch) return vp_error("%s: __metadata__ has no \"architecture\" (not a voxpipe model file?)", where);
    if (!strcmp(arch, "ResidualEncoderUNet")) c->resenc = 1;
    else if (strcmp(arch, "PlainConvUNet"))
        return vp_error("%s: architecture \"%s\" is not PlainConvUNet or ResidualEncoderUNet", where, arch);
    if (meta_pos(st, where, "input_channels", &c->in_ch, 1, 4096) || meta_pos(st, where, "num_classes", &c->n_classes, 1, 65535) ||
        meta_pos(st, where, "n_stages", &c->n_stages, 2, VP_UNET_MAXSTAGE))
        return -1;
    int S = c->n_stages, tmp[3 * VP_UNET_MAXSTAGE];
    if (meta_ints(st, where, "features_per_stage", c->features, S, 1) < 0 ||
        meta_ints(st, where, c->resenc ? "n_blocks_per_stage" : "n_conv_per_stage", c->n_conv, S, 1) < 0 ||
        meta_ints(st, where, "n_conv_per_stage_decoder", c->n_conv_dec, S - 1, 1) < 0 ||
        meta_ints(st, where, "patch_size", c->patch, 3, 1) < 0)
        return -1;
    if (meta_ints(st, where, "kernel_sizes", tmp, 3 * S, 1) < 0) return -1;
    memcpy(c->kernel, tmp, sizeof(int) * 3 * S);
    if (meta_ints(st, where, "strides", tmp, 3 * S, 1) < 0) return -1;
    memcpy(c->stride, tmp, sizeof(int) * 3 * S);
    for (int s = 0; s < S; s++) {
        if (c->features[s] < 1 || c->n_conv[s] < 1 || (s < S - 1 && c->n_conv_dec[s] < 1))
            return vp_error("%s: __metadata__: stage %d: features and conv counts must be >= 1", where, s);
        for (int a = 0; a < 3; a++)
            if (c->kernel[s][a] < 1 || c->kernel[s][a] % 2 == 0 || c->stride[s][a] < 1 || c->stride[s][a] > 8)
                return vp_error("%s: __metadata__: stage %d: kernel sizes must be odd and >= 1, strides 1..8", where, s);
    }
    for (int a = 0; a < 3; a++)
        if (c->patch[a] < 1) return vp_error("%s: __metadata__ \"patch_size\": entries must be >= 1", where);
    c->conv_bias = 1;
    if (meta_ints(st, where, "conv_bias", &c->conv_bias, 1, 0) < 0) return -1;
    const char *e = vp_st_meta(st, "norm_eps"), *sl = vp_st_meta(st, "nonlin_slope"), *ax = vp_st_meta(st, "axes");
    c->norm_eps = e ? strtof(e, NULL) : 1e-5f;
    c->slope = sl ? strtof(sl, NULL) : 0.01f;
    if (!(c->norm_eps > 0)) return vp_error("%s: __metadata__ \"norm_eps\" must be > 0", where);
    if (ax && strcmp(ax, "zyx"))
        return vp_error("%s: __metadata__ \"axes\" = \"%s\": only \"zyx\" (SimpleITK order) is supported", where, ax);
    const char *m = vp_st_meta(st, "mirror_axes");
    int mx[3], nm = m ? parse_ints(m, mx, 3) : 3;
    if (nm < 0) return vp_error("%s: __metadata__ \"mirror_axes\" = \"%s\": expected up to 3 of 0, 1, 2", where, m);
    for (int i = 0; i < nm; i++) {
        int a = m ? mx[i] : i;
        if (a < 0 || a > 2) return vp_error("%s: __metadata__ \"mirror_axes\": axis %d out of range", where, a);
        c->mirror_axes[a] = 1;
    }
    return 0;
}

/* Load name (or, when missing, alias) with the given shape; NULL after vp_error(). */
static vp_tensor *load2(const vp_safetensors *st, const char *name, const char *alias, int ndim, const int64_t *shape)
{
    if (!vp_st_find(st, name) && alias && vp_st_find(st, alias)) name = alias;
    return vp_st_load_shape(st, name, ndim, shape);
}

int vp_unet_load_block(const vp_safetensors *st, const char *prefix, int with_bias, int ci, int co, const int k[3],
                       const int s[3], vp_unet_conv *b)
{
    char n1[256], n2[256];
    int64_t ws[5] = {co, ci, k[0], k[1], k[2]}, vs[1] = {co};
    memcpy(b->k, k, sizeof b->k);
    memcpy(b->s, s, sizeof b->s);
    snprintf(n1, sizeof n1, "%s.conv.weight", prefix), snprintf(n2, sizeof n2, "%s.all_modules.0.weight", prefix);
    if (!(b->w = load2(st, n1, n2, 5, ws))) return -1;
    if (with_bias) {
        snprintf(n1, sizeof n1, "%s.conv.bias", prefix), snprintf(n2, sizeof n2, "%s.all_modules.0.bias", prefix);
        if (!(b->b = load2(st, n1, n2, 1, vs))) return -1;
    }
    snprintf(n1, sizeof n1, "%s.norm.weight", prefix), snprintf(n2, sizeof n2, "%s.all_modules.1.weight", prefix);
    if (!(b->gamma = load2(st, n1, n2, 1, vs))) return -1;
    snprintf(n1, sizeof n1, "%s.norm.bias", prefix), snprintf(n2, sizeof n2, "%s.all_modules.1.bias", prefix);
    if (!(b->beta = load2(st, n1, n2, 1, vs))) return -1;
    return 0;
}

vp_unet *vp_unet_from_st(const vp_safetensors *st, const char *where, const vp_unet_cfg *c)
{
    (void)where;
    vp_unet *m = vp_calloc(1, sizeof *m);
    m->cfg = *c;
    const int S = c->n_stages, one[3] = {1, 1, 1};
    char pre[160];
    int ci = c->in_ch;
    if (c->resenc && vp_resenc_load(st, m)) goto fail;
    for (int s = 0; s < S && !c->resenc; s++) {
        m->enc[s] = vp_calloc((size_t)c->n_conv[s], sizeof(vp_unet_conv));
        for (int j = 0; j < c->n_conv[s]; j++) {
            snprintf(pre, sizeof pre, "encoder.stages.%d.0.convs.%d", s, j);
            if (vp_unet_load_block(st, pre, c->conv_bias, j ? c->features[s] : ci, c->features[s], c->kernel[s], j ? one : c->stride[s], &m->enc[s][j]))
                goto fail;
        }
        ci = c->features[s];
    }
    for (int d = 0; d < S - 1; d++) {
        const int below = S - 1 - d, skip = S - 2 - d; /* encoder stages feeding decoder stage d */
        const int cb = c->features[below], cs = c->features[skip];
        int64_t tws[5] = {cb, cs, c->stride[below][0], c->stride[below][1], c->stride[below][2]}, vs[1] = {cs};
        snprintf(pre, sizeof pre, "decoder.transpconvs.%d.weight", d);
        if (!(m->tw[d] = vp_st_load_shape(st, pre, 5, tws))) goto fail;
        if (c->conv_bias) {
            snprintf(pre, sizeof pre, "decoder.transpconvs.%d.bias", d);
            if (!(m->tb[d] = vp_st_load_shape(st, pre, 1, vs))) goto fail;
        }
        m->dec[d] = vp_calloc((size_t)c->n_conv_dec[d], sizeof(vp_unet_conv));
        for (int j = 0; j < c->n_conv_dec[d]; j++) {
            snprintf(pre, sizeof pre, "decoder.stages.%d.convs.%d", d, j);
            if (vp_unet_load_block(st, pre, c->conv_bias, j ? cs : 2 * cs, cs, c->kernel[skip], one, &m->dec[d][j])) goto fail;
        }
    }
    int64_t sws[5] = {c->n_classes, c->features[0], 1, 1, 1}, sbs[1] = {c->n_classes};
    snprintf(pre, sizeof pre, "decoder.seg_layers.%d.weight", S - 2);
    if (!(m->seg_w = vp_st_load_shape(st, pre, 5, sws))) goto fail;
    snprintf(pre, sizeof pre, "decoder.seg_layers.%d.bias", S - 2);
    if (!(m->seg_b = vp_st_load_shape(st, pre, 1, sbs))) goto fail;
    return m;
fail:
    vp_unet_free(&m);
    return NULL;
}

vp_unet *vp_unet_load(const char *path)
{
    vp_safetensors *st = vp_st_open(path);
    if (!st) return NULL;
    vp_unet_cfg cfg;
    vp_unet *m = vp_unet_cfg_from_meta(st, path, &cfg) ? NULL : vp_unet_from_st(st, path, &cfg);
    vp_st_close(&st);
    return m;
}

static void free_blocks(vp_unet_conv **bp, int n)
{
    vp_unet_conv *b = *bp;
    if (!b) return;
    for (int j = 0; j < n; j++)
        vp_tensor_free(&b[j].w), vp_tensor_free(&b[j].b), vp_tensor_free(&b[j].gamma), vp_tensor_free(&b[j].beta);
    free(b);
    *bp = NULL;
}

void vp_unet_free(vp_unet **mp)
{
    vp_unet *m = *mp;
    if (!m) return;
    vp_resenc_free(m);
    for (int s = 0; s < m->cfg.n_stages; s++) {
        free_blocks(&m->enc[s], m->cfg.n_conv[s]);
        if (s < m->cfg.n_stages - 1) free_blocks(&m->dec[s], m->cfg.n_conv_dec[s]);
        vp_tensor_free(&m->tw[s]), vp_tensor_free(&m->tb[s]);
    }
    vp_tensor_free(&m->seg_w), vp_tensor_free(&m->seg_b);
    free(m);
    *mp = NULL;
}

void vp_unet_divisor(const vp_unet_cfg *c, int out[3])
{
    for (int a = 0; a < 3; a++) {
        out[a] = 1;
        for (int s = 0; s < c->n_stages; s++) out[a] *= c->stride[s][a];
    }
}

vp_tensor *vp_unet_block_fwd(const vp_unet *m, const vp_nn_backend *be, const vp_unet_conv *b, const vp_tensor *x, int act)
{
    vp_conv3d_params p = {{b->s[0], b->s[1], b->s[2]}, {(b->k[0] - 1) / 2, (b->k[1] - 1) / 2, (b->k[2] - 1) / 2}, {0}};
    int64_t os[5];
    if (vp_nn_conv3d_shape(x, b->w, b->b, &p, os)) return NULL;
    vp_tensor *t = vp_tensor_new(5, os), *y = vp_tensor_new(5, os);
    if (be->conv3d(be, x, b->w, b->b, &p, t) || be->instance_norm(be, t, m->cfg.norm_eps, b->gamma, b->beta, y) ||
        (act && be->leaky_relu(be, y, m->cfg.slope, y))) {
        vp_tensor_free(&t), vp_tensor_free(&y);
        return NULL;
    }
    vp_tensor_free(&t);
    return y;
}

/* Run n blocks on *x, replacing it (the input is freed when own is set). */
static int blocks_fwd(const vp_unet *m, const vp_nn_backend *be, const vp_unet_conv *b, int n, vp_tensor **x, int own)
{
    for (int j = 0; j < n; j++) {
        vp_tensor *y = vp_unet_block_fwd(m, be, &b[j], *x, 1);
        if (own || j) vp_tensor_free(x);
        if (!y) return -1;
        *x = y;
    }
    return 0;
}

int vp_unet_forward(const vp_unet *m, const vp_nn_backend *be, const vp_tensor *x, vp_tensor *y)
{
    const vp_unet_cfg *c = &m->cfg;
    const int S = c->n_stages;
    int div[3];
    char sh[64];
    vp_unet_divisor(c, div);
    if (vp_nn_check_act("unet", "input", x)) return -1;
    if (x->shape[1] != c->in_ch)
        return vp_error("unet: input %s has %lld channels, the model takes %d", vp_tensor_shape_str(x, sh, sizeof sh),
                        (long long)x->shape[1], c->in_ch);
    for (int a = 0; a < 3; a++)
        if (x->shape[2 + a] % div[a])
            return vp_error("unet: input %s: spatial size must be a multiple of (%d,%d,%d)", vp_tensor_shape_str(x, sh, sizeof sh),
                            div[0], div[1], div[2]);
    int64_t want[5] = {x->shape[0], c->n_classes, x->shape[2], x->shape[3], x->shape[4]};
    if (vp_nn_check_out("unet", y, want)) return -1;

    vp_tensor *skips[VP_UNET_MAXSTAGE] = {0}, *cur = NULL;
    int rc = -1;
    vp_tensor *stem = NULL;
    if (c->resenc && !(stem = vp_resenc_stem(m, be, x))) goto out;
    for (int s = 0; s < S; s++) {
        vp_tensor *in = s ? skips[s - 1] : (vp_tensor *)x;
        if (c->resenc) {
            skips[s] = vp_resenc_stage(m, be, s, s ? in : stem);
            if (!s) vp_tensor_free(&stem);
            if (!skips[s]) goto out;
            continue;
        }
        if (blocks_fwd(m, be, m->enc[s], c->n_conv[s], &in, 0)) goto out;
        skips[s] = in;
    }
    cur = skips[S - 1];
    skips[S - 1] = NULL;
    for (int d = 0; d < S - 1; d++) {
        const int skip = S - 2 - d;
        vp_conv3d_params p = {{c->stride[skip + 1][0], c->stride[skip + 1][1], c->stride[skip + 1][2]}, {0}, {0}};
        int64_t us[5], cs[5];
        if (vp_nn_conv_transpose3d_shape(cur, m->tw[d], m->tb[d], &p, us)) goto out;
        vp_tensor *up = vp_tensor_new(5, us);
        if (be->conv_transpose3d(be, cur, m->tw[d], m->tb[d], &p, up)) {
            vp_tensor_free(&up);
            goto out;
        }
        vp_tensor_free(&cur);
        const vp_tensor *pair[2] = {up, skips[skip]};
        if (vp_nn_concat_shape(pair, 2, cs)) {
            vp_tensor_free(&up);
            goto out;
        }
        cur = vp_tensor_new(5, cs);
        int crc = be->concat(be, pair, 2, cur);
        vp_tensor_free(&up), vp_tensor_free(&skips[skip]);
        if (crc || blocks_fwd(m, be, m->dec[d], c->n_conv_dec[d], &cur, 1)) goto out;
    }
    vp_conv3d_params p1 = {{1, 1, 1}, {0}, {0}};
    rc = be->conv3d(be, cur, m->seg_w, m->seg_b, &p1, y);
out:
    vp_tensor_free(&cur);
    for (int s = 0; s < S; s++) vp_tensor_free(&skips[s]);
    return rc;
}
