/* nn_segresnet.c - MONAI SegResNet: configuration from metadata, weight loading, forward pass. */
#include "nn_segresnet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

typedef struct resblock {
    vp_tensor *g1, *b1, *g2, *b2; /* norm1/norm2 weight and bias (C) */
    vp_tensor *w1, *w2;           /* conv1/conv2 (C, C, 3, 3, 3) */
} resblock;

struct vp_segresnet {
    vp_segresnet_cfg cfg;
    vp_tensor *w_init;                           /* convInit (F, in, 3,3,3) */
    vp_tensor *w_pre[VP_SEGRESNET_MAXLEVELS];    /* down_layers.i.0 (C, C/2, 3,3,3), i > 0 */
    resblock *down[VP_SEGRESNET_MAXLEVELS];      /* blocks_down[i] each */
    vp_tensor *w_up1[VP_SEGRESNET_MAXLEVELS];    /* up_samples.j.0 (C/2, C, 1,1,1) */
    vp_tensor *w_dec[VP_SEGRESNET_MAXLEVELS], *b_dec[VP_SEGRESNET_MAXLEVELS]; /* deconv (C/2, C/2, 2,2,2) */
    resblock *up[VP_SEGRESNET_MAXLEVELS];        /* blocks_up[j] each */
    vp_tensor *g_fin, *b_fin, *w_fin, *bias_fin; /* conv_final.0 (norm), conv_final.2.conv */
};

/* ---- configuration ---- */

static int parse_int(const char *where, const char *key, const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < lo || v > hi)
        return vp_error("%s: metadata %s: '%s' is not an integer in [%d, %d]", where, key, s, lo, hi);
    *out = (int)v;
    return 0;
}

static int parse_list(const char *where, const char *key, const char *s, int *out, int *n, int allow_empty)
{
    *n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > 64 || *n == VP_SEGRESNET_MAXLEVELS || (*end && *end != ','))
            return vp_error("%s: metadata %s: '%s' is not a comma-separated list of at most %d counts",
                            where, key, s, VP_SEGRESNET_MAXLEVELS);
        out[(*n)++] = (int)v;
        p = *end ? end + 1 : end;
    }
    if (*n == 0 && !allow_empty) return vp_error("%s: metadata %s is empty", where, key);
    return 0;
}

static const char *meta(const vp_safetensors *st, const char *key, const char *def)
{
    const char *v = vp_st_meta(st, key);
    return v ? v : def;
}

int vp_segresnet_cfg_read(const vp_safetensors *st, const char *where, vp_segresnet_cfg *c)
{
    memset(c, 0, sizeof *c);
    c->eps = 1e-5f;
    const char *arch = vp_st_meta(st, "voxpipe.arch");
    if (!arch) return vp_error("%s: metadata voxpipe.arch is missing (expected \"segresnet\")", where);
    if (strcmp(arch, "segresnet"))
        return vp_error("%s: metadata voxpipe.arch is \"%s\", expected \"segresnet\"", where, arch);
    const vp_st_tensor *ti = vp_st_find(st, "convInit.conv.weight");
    const vp_st_tensor *tf = vp_st_find(st, "conv_final.2.conv.weight");
    if (!ti || ti->ndim != 5) return vp_error("%s: tensor convInit.conv.weight is missing or not 5-D", where);
    if (!tf || tf->ndim != 5) return vp_error("%s: tensor conv_final.2.conv.weight is missing or not 5-D", where);
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)ti->shape[1]);
    if (parse_int(where, "voxpipe.in_channels", meta(st, "voxpipe.in_channels", buf), 1, 4096, &c->in_channels)) return -1;
    snprintf(buf, sizeof buf, "%lld", (long long)tf->shape[0]);
    if (parse_int(where, "voxpipe.out_channels", meta(st, "voxpipe.out_channels", buf), 1, 4096, &c->out_channels)) return -1;
    snprintf(buf, sizeof buf, "%lld", (long long)ti->shape[0]);
    if (parse_int(where, "voxpipe.init_filters", meta(st, "voxpipe.init_filters", buf), 1, 4096, &c->init_filters)) return -1;
    if (parse_int(where, "voxpipe.norm_groups", meta(st, "voxpipe.norm_groups", "8"), 1, 4096, &c->norm_groups)) return -1;
    if (parse_list(where, "voxpipe.blocks_down", meta(st, "voxpipe.blocks_down", "1,2,2,4"), c->blocks_down, &c->n_down, 0))
        return -1;
    if (parse_list(where, "voxpipe.blocks_up", meta(st, "voxpipe.blocks_up", "1,1,1"), c->blocks_up, &c->n_up, 1)) return -1;
    if (c->n_up != c->n_down - 1)
        return vp_error("%s: metadata voxpipe.blocks_up has %d entries; with %d down levels it needs %d "
                        "(MONAI's decoder adds one encoder level per up step)", where, c->n_up, c->n_down, c->n_down - 1);
    const char *up = meta(st, "voxpipe.upsample_mode", "nontrainable");
    if (!strcmp(up, "nontrainable")) c->deconv = 0;
    else if (!strcmp(up, "deconv")) c->deconv = 1;
    else return vp_error("%s: metadata voxpipe.upsample_mode \"%s\" is not supported (nontrainable or deconv)", where, up);
    if ((int64_t)c->init_filters << (c->n_down - 1) > 65536)
        return vp_error("%s: init_filters %d with %d levels is too wide", where, c->init_filters, c->n_down);
    for (int i = 0; i < c->n_down; i++) {
        int ch = c->init_filters << i;
        if (ch % c->norm_groups)
            return vp_error("%s: GroupNorm with %d groups cannot split %d channels (level %d)", where, c->norm_groups, ch, i);
    }
    return 0;
}

/* ---- loading ---- */

struct loader {
    const vp_safetensors *st;
    const char *where;
    int used; /* tensors loaded */
    int fail;
};

static vp_tensor *load(struct loader *L, const char *name, int ndim, int64_t a, int64_t b, int64_t k)
{
    if (L->fail) return NULL;
    const vp_st_tensor *t = vp_st_find(L->st, name);
    int64_t shape[5] = {a, b, k, k, k};
    if (!t) {
        vp_error("%s: tensor %s is missing (SegResNet needs it for this architecture)", L->where, name);
        L->fail = 1;
        return NULL;
    }
    vp_tensor *r = vp_st_load_shape(L->st, name, ndim, shape);
    if (!r) {
        vp_error("%s: tensor %s does not fit the architecture in the metadata", L->where, name);
        L->fail = 1;
        return NULL;
    }
    L->used++;
    return r;
}

static resblock *load_blocks(struct loader *L, const char *prefix, int first, int n, int ch)
{
    resblock *rb = vp_calloc((size_t)n ? (size_t)n : 1, sizeof *rb);
    char name[160];
    for (int i = 0; i < n; i++) {
        int j = first + i;
#define LB(field, what, nd, a, b, k)                                   \
    snprintf(name, sizeof name, "%s.%d.%s", prefix, j, what);          \
    rb[i].field = load(L, name, nd, a, b, k);
        LB(g1, "norm1.weight", 1, ch, 0, 0)
        LB(b1, "norm1.bias", 1, ch, 0, 0)
        LB(g2, "norm2.weight", 1, ch, 0, 0)
        LB(b2, "norm2.bias", 1, ch, 0, 0)
        LB(w1, "conv1.conv.weight", 5, ch, ch, 3)
        LB(w2, "conv2.conv.weight", 5, ch, ch, 3)
#undef LB
    }
    return rb;
}

static void free_blocks(resblock **rb, int n)
{
    if (!*rb) return;
    for (int i = 0; i < n; i++) {
        vp_tensor_free(&(*rb)[i].g1);
        vp_tensor_free(&(*rb)[i].b1);
        vp_tensor_free(&(*rb)[i].g2);
        vp_tensor_free(&(*rb)[i].b2);
        vp_tensor_free(&(*rb)[i].w1);
        vp_tensor_free(&(*rb)[i].w2);
    }
    free(*rb);
    *rb = NULL;
}

vp_segresnet *vp_segresnet_load(const vp_safetensors *st, const char *where)
{
    vp_segresnet_cfg cfg;
    if (vp_segresnet_cfg_read(st, where, &cfg)) return NULL;
    vp_segresnet *m = vp_calloc(1, sizeof *m);
    m->cfg = cfg;
    struct loader L = {st, where, 0, 0};
    int F = cfg.init_filters;
    char name[160];
    m->w_init = load(&L, "convInit.conv.weight", 5, F, cfg.in_channels, 3);
    for (int i = 0; i < cfg.n_down; i++) {
        int ch = F << i;
        if (i > 0) {
            snprintf(name, sizeof name, "down_layers.%d.0.conv.weight", i);
            m->w_pre[i] = load(&L, name, 5, ch, ch / 2, 3);
        }
        snprintf(name, sizeof name, "down_layers.%d", i);
        m->down[i] = load_blocks(&L, name, 1, cfg.blocks_down[i], ch);
    }
    for (int j = 0; j < cfg.n_up; j++) {
        int ch = F << (cfg.n_up - j); /* sample_in_channels */
        snprintf(name, sizeof name, "up_samples.%d.0.conv.weight", j);
        m->w_up1[j] = load(&L, name, 5, ch / 2, ch, 1);
        if (cfg.deconv) {
            snprintf(name, sizeof name, "up_samples.%d.1.deconv.weight", j);
            m->w_dec[j] = load(&L, name, 5, ch / 2, ch / 2, 2);
            snprintf(name, sizeof name, "up_samples.%d.1.deconv.bias", j);
            m->b_dec[j] = load(&L, name, 1, ch / 2, 0, 0);
        }
        snprintf(name, sizeof name, "up_layers.%d", j);
        m->up[j] = load_blocks(&L, name, 0, cfg.blocks_up[j], ch / 2);
    }
    m->g_fin = load(&L, "conv_final.0.weight", 1, F, 0, 0);
    m->b_fin = load(&L, "conv_final.0.bias", 1, F, 0, 0);
    m->w_fin = load(&L, "conv_final.2.conv.weight", 5, cfg.out_channels, F, 1);
    m->bias_fin = load(&L, "conv_final.2.conv.bias", 1, cfg.out_channels, 0, 0);
    if (!L.fail && L.used != vp_st_count(st)) {
        for (int i = 0; i < vp_st_count(st); i++) {
            const char *n = vp_st_at(st, i)->name;
            /* find the first tensor the architecture did not ask for */
            int known = !strcmp(n, "convInit.conv.weight") || !strncmp(n, "down_layers.", 12) ||
                        !strncmp(n, "up_layers.", 10) || !strncmp(n, "up_samples.", 11) || !strncmp(n, "conv_final.", 11);
            if (!known) {
                vp_error("%s: tensor %s is not part of a SegResNet", where, n);
                L.fail = 1;
                break;
            }
        }
        if (!L.fail) {
            vp_error("%s: the file holds %d tensors but a SegResNet with blocks_down/blocks_up/upsample_mode "
                     "of its metadata has %d: the metadata does not match the weights", where, vp_st_count(st), L.used);
            L.fail = 1;
        }
    }
    if (L.fail) {
        vp_segresnet_free(&m);
        return NULL;
    }
    return m;
}

void vp_segresnet_free(vp_segresnet **mp)
{
    vp_segresnet *m = *mp;
    if (!m) return;
    vp_tensor_free(&m->w_init);
    for (int i = 0; i < VP_SEGRESNET_MAXLEVELS; i++) {
        vp_tensor_free(&m->w_pre[i]);
        free_blocks(&m->down[i], m->cfg.blocks_down[i]);
        vp_tensor_free(&m->w_up1[i]);
        vp_tensor_free(&m->w_dec[i]);
        vp_tensor_free(&m->b_dec[i]);
        free_blocks(&m->up[i], m->cfg.blocks_up[i]);
    }
    vp_tensor_free(&m->g_fin);
    vp_tensor_free(&m->b_fin);
    vp_tensor_free(&m->w_fin);
    vp_tensor_free(&m->bias_fin);
    free(m);
    *mp = NULL;
}

const vp_segresnet_cfg *vp_segresnet_config(const vp_segresnet *m) { return &m->cfg; }

int vp_segresnet_divisor(const vp_segresnet *m) { return 1 << (m->cfg.n_down - 1); }

/* ---- forward ---- */

/* A new tensor of conv(x, w, b) (stride s, padding k/2). NULL after vp_error(). */
static vp_tensor *conv(const vp_nn_backend *be, const vp_tensor *x, const vp_tensor *w, const vp_tensor *b, int s)
{
    int p = (int)(w->shape[2] / 2);
    vp_conv3d_params cp = {{s, s, s}, {p, p, p}, {0, 0, 0}};
    int64_t sh[5];
    if (vp_nn_conv3d_shape(x, w, b, &cp, sh)) return NULL;
    vp_tensor *y = vp_tensor_new(5, sh);
    if (be->conv3d(be, x, w, b, &cp, y)) vp_tensor_free(&y);
    return y;
}

/* norm -> relu into y (same shape as x, preallocated; not x): one fused op where the backend has it. */
static int norm_relu(const vp_nn_backend *be, const vp_segresnet *m, const vp_tensor *x, const vp_tensor *g,
                     const vp_tensor *b, vp_tensor *y)
{
    return vp_nn_group_norm_relu(be, x, m->cfg.norm_groups, m->cfg.eps, g, b, y);
}

/* One ResBlock; returns a new tensor, x untouched. The residual add is fused into the second
 * convolution where the backend can (vp_nn_conv3d_add). */
static vp_tensor *resblock_fwd(const vp_nn_backend *be, const vp_segresnet *m, const resblock *rb, const vp_tensor *x)
{
    vp_tensor *a = vp_tensor_new(x->ndim, x->shape), *c = NULL;
    if (norm_relu(be, m, x, rb->g1, rb->b1, a)) goto fail;
    if (!(c = conv(be, a, rb->w1, NULL, 1))) goto fail;
    if (norm_relu(be, m, c, rb->g2, rb->b2, a)) goto fail;
    if (vp_nn_conv3d_add(be, a, rb->w2, NULL, &(vp_conv3d_params){{1, 1, 1}, {1, 1, 1}, {0, 0, 0}}, x, c)) goto fail;
    vp_tensor_free(&a);
    return c;
fail:
    vp_tensor_free(&a);
    vp_tensor_free(&c);
    return NULL;
}

/* Run n ResBlocks on *x, replacing it (the input is freed unless keep_input). */
static int blocks_fwd(const vp_nn_backend *be, const vp_segresnet *m, const resblock *rb, int n, vp_tensor **x,
                      int keep_input)
{
    for (int i = 0; i < n; i++) {
        vp_tensor *y = resblock_fwd(be, m, &rb[i], *x);
        if (!y) return -1;
        if (i > 0 || !keep_input) vp_tensor_free(x);
        *x = y;
    }
    return 0;
}

int vp_segresnet_forward(const vp_segresnet *m, const vp_nn_backend *be, const vp_tensor *x, vp_tensor **yout)
{
    const vp_segresnet_cfg *c = &m->cfg;
    char buf[96];
    *yout = NULL;
    if (vp_nn_check_act("segresnet", "input", x)) return -1;
    int div = vp_segresnet_divisor(m);
    if (x->shape[1] != c->in_channels || x->shape[2] % div || x->shape[3] % div || x->shape[4] % div)
        return vp_error("segresnet: input %s: needs %d channels and spatial sizes divisible by %d",
                        vp_tensor_shape_str(x, buf, sizeof buf), c->in_channels, div);
    vp_tensor *skip[VP_SEGRESNET_MAXLEVELS] = {0};
    vp_tensor *h = conv(be, x, m->w_init, NULL, 1), *t = NULL;
    int rc = -1;
    if (!h) goto out;
    for (int i = 0; i < c->n_down; i++) {
        if (i > 0) {
            /* the previous level's output stays alive as a skip; the last level's never is one */
            vp_tensor *d = conv(be, h, m->w_pre[i], NULL, 2);
            if (!d) goto out;
            h = d;
        }
        if (blocks_fwd(be, m, m->down[i], c->blocks_down[i], &h, 0)) goto out;
        if (i < c->n_down - 1) skip[i] = h; /* level output, needed by the decoder */
    }
    for (int j = 0; j < c->n_up; j++) {
        vp_tensor *s = skip[c->n_down - 2 - j];
        t = conv(be, h, m->w_up1[j], NULL, 1);
        if (!t) goto out;
        vp_tensor_free(&h); /* the deepest level or the previous up step: never a skip */
        vp_tensor *u = vp_tensor_new(5, s->shape);
        int e;
        if (c->deconv) {
            vp_conv3d_params cp = {{2, 2, 2}, {0, 0, 0}, {0, 0, 0}};
            int64_t sh[5];
            e = vp_nn_conv_transpose3d_shape(t, m->w_dec[j], m->b_dec[j], &cp, sh) ||
                vp_nn_check_out("segresnet up", u, sh) || be->conv_transpose3d(be, t, m->w_dec[j], m->b_dec[j], &cp, u);
        } else {
            e = be->upsample_trilinear2x(be, t, u);
        }
        vp_tensor_free(&t);
        if (e || be->add(be, u, s, u)) {
            vp_tensor_free(&u);
            goto out;
        }
        vp_tensor_free(&skip[c->n_down - 2 - j]);
        h = u;
        if (blocks_fwd(be, m, m->up[j], c->blocks_up[j], &h, 0)) goto out;
    }
    t = vp_tensor_new(5, h->shape);
    if (norm_relu(be, m, h, m->g_fin, m->b_fin, t)) goto out;
    vp_tensor_free(&h);
    if (!(h = conv(be, t, m->w_fin, m->bias_fin, 1))) goto out;
    *yout = h;
    h = NULL;
    rc = 0;
out:
    for (int i = 0; i < VP_SEGRESNET_MAXLEVELS; i++)
        if (skip[i] != h) vp_tensor_free(&skip[i]);
    vp_tensor_free(&h);
    vp_tensor_free(&t);
    return rc;
}

double vp_segresnet_macs(const vp_segresnet *m, int64_t d, int64_t h, int64_t w)
{
    const vp_segresnet_cfg *c = &m->cfg;
    double vox = (double)d * h * w, macs = vox * c->init_filters * c->in_channels * 27;
    for (int i = 0; i < c->n_down; i++) {
        double v = vox / (double)(1LL << (3 * i)), ch = (double)(c->init_filters << i);
        if (i > 0) macs += v * ch * (ch / 2) * 27;
        macs += c->blocks_down[i] * 2 * v * ch * ch * 27;
    }
    for (int j = 0; j < c->n_up; j++) {
        int lvl = c->n_up - j; /* the level below the output of this up step */
        double ch = (double)(c->init_filters << lvl), vin = vox / (double)(1LL << (3 * lvl)), vout = vin * 8;
        macs += vin * ch * (ch / 2);
        if (c->deconv) macs += vin * (ch / 2) * (ch / 2) * 8;
        macs += c->blocks_up[j] * 2 * vout * (ch / 2) * (ch / 2) * 27;
    }
    return macs + vox * c->init_filters * c->out_channels;
}
