/* nn_train_unet.c - trainable PlainConvUNet (the architecture of nn_unet.h) with a hand-written
 * reverse pass and deep supervision. Parameters are registered in PlainConvUNet's state_dict order
 * under its names, every decoder stage's seg layer included (nnU-Net trains them all);
 * initialisation as nnU-Net's InitWeights_He(1e-2): conv and transposed-conv weights normal with
 * std sqrt(2 / (1 + 0.01^2)) / sqrt(fan_in), biases 0, InstanceNorm 1 and 0.
 *
 * Saved by forward (pointers into the tape): each conv block's input x, conv output c (the norm's
 * input) and leaky-relu output y; each transposed conv's input; the decoder stages' outputs (the
 * seg layers' inputs). With deep supervision, forward returns the seg layers' logits of every
 * decoder stage, highest resolution first (nnU-Net's order); otherwise only the last.
 */
#include "nn_train_int.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ublk {
    int w, b, g, be;
    vp_conv3d_params p;
    vp_tensor *x, *c, *y; /* saved */
} ublk;

typedef struct unt {
    vp_unet_cfg c;
    ublk *enc[VP_UNET_MAXSTAGE], *dec[VP_UNET_MAXSTAGE];
    int tw[VP_UNET_MAXSTAGE], tb[VP_UNET_MAXSTAGE], sw[VP_UNET_MAXSTAGE], sb[VP_UNET_MAXSTAGE];
    vp_tape tape;
    vp_tensor *skip[VP_UNET_MAXSTAGE], *tin[VP_UNET_MAXSTAGE], *dout[VP_UNET_MAXSTAGE];
    vp_tensor *cat[VP_UNET_MAXSTAGE];
    int nseg; /* seg outputs of the last forward */
} unt;

static int fwd(vp_trainable *m, const vp_nn_backend *be, const vp_tensor *x, int all, vp_tensor **out, int *nout);
static int bwd(vp_trainable *m, const vp_nn_grad *gr, vp_tensor *const *dout, int nout);
static void release(vp_trainable *m) { vp_tape_clear(&((unt *)m->impl)->tape); }
static void free_impl(vp_trainable *m)
{
    unt *u = m->impl;
    vp_tape_clear(&u->tape);
    free(u->tape.t);
    for (int s = 0; s < VP_UNET_MAXSTAGE; s++) free(u->enc[s]), free(u->dec[s]);
    free(u);
    m->impl = NULL;
}

static void ints(char *buf, size_t n, const int *v, int k, int per)
{
    buf[0] = 0;
    for (int i = 0; i < k; i++)
        snprintf(buf + strlen(buf), n - strlen(buf), "%s%d", !i ? "" : per > 1 && i % per == 0 ? ";" : ",", v[i]);
}

static int meta(const vp_trainable *m, char k[][64], char v[][256])
{
    const unt *u = m->impl;
    const vp_unet_cfg *c = &u->c;
    int n = 0;
#define KV(key, ...) snprintf(k[n], 64, "%s", key), snprintf(v[n], 256, __VA_ARGS__), n++;
#define KL(key, arr, cnt, per) snprintf(k[n], 64, "%s", key), ints(v[n], 256, arr, cnt, per), n++;
    KV("architecture", "PlainConvUNet")
    KV("input_channels", "%d", c->in_ch)
    KV("num_classes", "%d", c->n_classes)
    KV("n_stages", "%d", c->n_stages)
    KL("features_per_stage", c->features, c->n_stages, 1)
    KL("kernel_sizes", &c->kernel[0][0], 3 * c->n_stages, 3)
    KL("strides", &c->stride[0][0], 3 * c->n_stages, 3)
    KL("n_conv_per_stage", c->n_conv, c->n_stages, 1)
    KL("n_conv_per_stage_decoder", c->n_conv_dec, c->n_stages - 1, 1)
    KL("patch_size", c->patch, 3, 1)
    KV("conv_bias", "%d", c->conv_bias)
    KV("norm_eps", "%.9g", c->norm_eps)
    KV("nonlin_slope", "%.9g", c->slope)
    KV("axes", "zyx")
#undef KV
#undef KL
    return n;
}

static const vp_train_ops ops = {"unet", fwd, bwd, release, free_impl, meta};

static void add_block(vp_trainable *m, ublk *b, const char *prefix, const vp_unet_cfg *c, int ci, int co, const int k[3],
                      const int s[3])
{
    char n[200];
    snprintf(n, sizeof n, "%s.conv.weight", prefix), b->w = vp_tr_add(m, n, 5, (int64_t[]){co, ci, k[0], k[1], k[2]});
    b->b = -1;
    if (c->conv_bias) snprintf(n, sizeof n, "%s.conv.bias", prefix), b->b = vp_tr_add(m, n, 1, (int64_t[]){co});
    snprintf(n, sizeof n, "%s.norm.weight", prefix), b->g = vp_tr_add(m, n, 1, (int64_t[]){co});
    snprintf(n, sizeof n, "%s.norm.bias", prefix), b->be = vp_tr_add(m, n, 1, (int64_t[]){co});
    b->p = (vp_conv3d_params){{s[0], s[1], s[2]}, {(k[0] - 1) / 2, (k[1] - 1) / 2, (k[2] - 1) / 2}, {0, 0, 0}};
}

vp_trainable *vp_trainable_new_unet(const vp_unet_cfg *cfg, uint64_t seed)
{
    const vp_unet_cfg *c = cfg;
    const int S = c->n_stages, one[3] = {1, 1, 1};
    if (c->resenc) return vp_error("unet: ResidualEncoderUNet models are not trainable here (inference only, infer-unet)"), NULL;
    if (c->in_ch < 1 || c->n_classes < 1 || S < 2 || S > VP_UNET_MAXSTAGE || !(c->norm_eps > 0))
        return vp_error("unet: bad configuration (in %d, classes %d, %d stages)", c->in_ch, c->n_classes, S), NULL;
    for (int s = 0; s < S; s++) {
        if (c->features[s] < 1 || c->n_conv[s] < 1 || (s < S - 1 && c->n_conv_dec[s] < 1))
            return vp_error("unet: stage %d: features and conv counts must be >= 1", s), NULL;
        for (int a = 0; a < 3; a++)
            if (c->kernel[s][a] < 1 || c->kernel[s][a] % 2 == 0 || c->stride[s][a] < 1)
                return vp_error("unet: stage %d: kernel sizes must be odd, strides >= 1", s), NULL;
    }
    vp_trainable *m = vp_tr_new(&ops);
    unt *u = vp_calloc(1, sizeof *u);
    m->impl = u;
    u->tape.ar = &m->pool;
    u->c = *c;
    m->in_ch = c->in_ch, m->classes = c->n_classes;
    vp_unet_divisor(c, m->div);
    char pre[160];
    int ci = c->in_ch;
    for (int s = 0; s < S; s++) {
        u->enc[s] = vp_calloc((size_t)c->n_conv[s], sizeof(ublk));
        for (int j = 0; j < c->n_conv[s]; j++) {
            snprintf(pre, sizeof pre, "encoder.stages.%d.0.convs.%d", s, j);
            add_block(m, &u->enc[s][j], pre, c, j ? c->features[s] : ci, c->features[s], c->kernel[s], j ? one : c->stride[s]);
        }
        ci = c->features[s];
    }
    for (int d = 0; d < S - 1; d++) {
        const int skip = S - 2 - d, cs = c->features[skip];
        u->dec[d] = vp_calloc((size_t)c->n_conv_dec[d], sizeof(ublk));
        for (int j = 0; j < c->n_conv_dec[d]; j++) {
            snprintf(pre, sizeof pre, "decoder.stages.%d.convs.%d", d, j);
            add_block(m, &u->dec[d][j], pre, c, j ? cs : 2 * cs, cs, c->kernel[skip], one);
        }
    }
    for (int d = 0; d < S - 1; d++) {
        const int below = S - 1 - d, skip = S - 2 - d;
        snprintf(pre, sizeof pre, "decoder.transpconvs.%d.weight", d);
        u->tw[d] = vp_tr_add(m, pre, 5, (int64_t[]){c->features[below], c->features[skip], c->stride[below][0], c->stride[below][1], c->stride[below][2]});
        u->tb[d] = -1;
        if (c->conv_bias) snprintf(pre, sizeof pre, "decoder.transpconvs.%d.bias", d), u->tb[d] = vp_tr_add(m, pre, 1, (int64_t[]){c->features[skip]});
    }
    for (int d = 0; d < S - 1; d++) {
        snprintf(pre, sizeof pre, "decoder.seg_layers.%d.weight", d);
        u->sw[d] = vp_tr_add(m, pre, 5, (int64_t[]){c->n_classes, c->features[S - 2 - d], 1, 1, 1});
        snprintf(pre, sizeof pre, "decoder.seg_layers.%d.bias", d);
        u->sb[d] = vp_tr_add(m, pre, 1, (int64_t[]){c->n_classes});
    }
    vp_tr_finalize(m);
    vp_rng r = {seed};
    const double gain = sqrt(2.0 / (1.0 + 1e-4));
    for (int i = 0; i < m->np; i++) {
        const char *n = m->params[i].name;
        if (strstr(n, ".norm.")) vp_tr_init_const(m, i, strstr(n, "weight") ? 1.0f : 0.0f);
        else if (m->params[i].w.ndim == 5) vp_tr_init_normal(m, i, gain / sqrt(vp_tr_fan_in(m, i)), &r);
        else vp_tr_init_const(m, i, 0.0f);
    }
    return m;
}

/* ---- forward */

static vp_tensor *block_fwd(vp_trainable *m, const vp_nn_backend *be, ublk *b, vp_tensor *x)
{
    unt *u = m->impl;
    int64_t os[5];
    if (!x || vp_nn_conv3d_shape(x, vp_tr_w(m, b->w), vp_tr_wn(m, b->b), &b->p, os)) return NULL;
    b->x = x;
    b->c = vp_tape_new(&u->tape, os);
    b->y = vp_tape_new(&u->tape, os);
    if (be->conv3d(be, x, vp_tr_w(m, b->w), vp_tr_wn(m, b->b), &b->p, b->c) ||
        be->instance_norm(be, b->c, u->c.norm_eps, vp_tr_w(m, b->g), vp_tr_w(m, b->be), b->y) ||
        be->leaky_relu(be, b->y, u->c.slope, b->y))
        return NULL;
    return b->y;
}

static int fwd(vp_trainable *m, const vp_nn_backend *be, const vp_tensor *x, int all, vp_tensor **out, int *nout)
{
    unt *u = m->impl;
    const vp_unet_cfg *c = &u->c;
    const int S = c->n_stages;
    vp_tape_clear(&u->tape);
    *nout = 0;
    vp_tensor *h = (vp_tensor *)x;
    for (int s = 0; s < S; s++) {
        for (int j = 0; j < c->n_conv[s]; j++) h = block_fwd(m, be, &u->enc[s][j], h);
        if (!h) return -1;
        u->skip[s] = h;
    }
    u->nseg = all ? S - 1 : 1;
    for (int d = 0; d < S - 1; d++) {
        const int skip = S - 2 - d;
        const vp_conv3d_params p = {{c->stride[skip + 1][0], c->stride[skip + 1][1], c->stride[skip + 1][2]}, {0, 0, 0}, {0, 0, 0}};
        int64_t us[5], cs[5];
        u->tin[d] = h;
        if (vp_nn_conv_transpose3d_shape(h, vp_tr_w(m, u->tw[d]), vp_tr_wn(m, u->tb[d]), &p, us)) return -1;
        vp_tensor *up = vp_tape_new(&u->tape, us);
        if (be->conv_transpose3d(be, h, vp_tr_w(m, u->tw[d]), vp_tr_wn(m, u->tb[d]), &p, up)) return -1;
        const vp_tensor *pair[2] = {up, u->skip[skip]};
        if (vp_nn_concat_shape(pair, 2, cs)) return -1;
        h = u->cat[d] = vp_tape_new(&u->tape, cs);
        if (be->concat(be, pair, 2, h)) return -1;
        for (int j = 0; j < c->n_conv_dec[d]; j++) h = block_fwd(m, be, &u->dec[d][j], h);
        if (!h) return -1;
        u->dout[d] = h;
        /* output k (highest resolution first) comes from decoder stage S-2-k */
        const int k = S - 2 - d;
        if (k < u->nseg) {
            int64_t os[5] = {h->shape[0], c->n_classes, h->shape[2], h->shape[3], h->shape[4]};
            const vp_conv3d_params p1 = {{1, 1, 1}, {0, 0, 0}, {0, 0, 0}};
            out[k] = vp_tpool_get(&m->pool, os);
            if (be->conv3d(be, h, vp_tr_w(m, u->sw[d]), vp_tr_w(m, u->sb[d]), &p1, out[k])) return -1;
        }
    }
    *nout = u->nseg;
    return 0;
}

/* ---- backward */

/* Through one block: parameter gradients; *dy (gradient of b->y) is replaced by the gradient of
 * b->x (NULL when want_dx is 0). */
static int block_bwd(vp_trainable *m, const vp_nn_grad *gr, ublk *b, vp_tensor **dy, int want_dx)
{
    unt *u = m->impl;
    vp_tensor *dc = vp_tpool_get(&m->pool, b->c->shape), *dx = NULL;
    int e = vp_nn_group_norm_leaky_relu_bwd(gr, b->c, b->y, *dy, (int)b->c->shape[1], u->c.norm_eps, u->c.slope, vp_tr_w(m, b->g), dc,
                                            vp_tr_g(m, b->g), vp_tr_g(m, b->be)) ||
            gr->conv3d_bwd_weight(b->x, dc, &b->p, vp_tr_g(m, b->w), vp_tr_gn(m, b->b));
    if (!e && want_dx) {
        dx = vp_tpool_get(&m->pool, b->x->shape);
        e = gr->conv3d_bwd_data(dc, vp_tr_w(m, b->w), &b->p, dx);
    }
    vp_tpool_put(&m->pool, &dc);
    vp_tpool_put(&m->pool, dy);
    *dy = dx;
    return e ? -1 : 0;
}

static int bwd(vp_trainable *m, const vp_nn_grad *gr, vp_tensor *const *dout, int nout)
{
    unt *u = m->impl;
    const vp_unet_cfg *c = &u->c;
    const int S = c->n_stages;
    vp_tensor *dskip[VP_UNET_MAXSTAGE] = {0}, *dh = NULL, *dseg = NULL;
    const vp_conv3d_params p1 = {{1, 1, 1}, {0, 0, 0}, {0, 0, 0}};
    int rc = -1;
    for (int d = S - 2; d >= 0; d--) {
        const int k = S - 2 - d, skip = S - 2 - d;
        /* the stage output feeds its seg layer (when it had a gradient) and the next transposed conv */
        if (k < nout && dout[k]) {
            dseg = vp_tpool_get(&m->pool, u->dout[d]->shape);
            if (gr->conv3d_bwd_weight(u->dout[d], dout[k], &p1, vp_tr_g(m, u->sw[d]), vp_tr_g(m, u->sb[d])) ||
                gr->conv3d_bwd_data(dout[k], vp_tr_w(m, u->sw[d]), &p1, dseg))
                goto out;
            if (dh) {
                if (vp_tr_accumulate(m, dh, dseg)) goto out;
                vp_tpool_put(&m->pool, &dseg);
            } else {
                dh = dseg, dseg = NULL;
            }
        }
        if (!dh) dh = vp_tpool_zeros(&m->pool, u->dout[d]->shape); /* no gradient reaches this stage */
        for (int j = c->n_conv_dec[d] - 1; j >= 0; j--)
            if (block_bwd(m, gr, &u->dec[d][j], &dh, 1)) goto out;
        /* dh is the concat's gradient: split into the upsampled part and the skip's */
        int64_t us[5];
        memcpy(us, dh->shape, sizeof us);
        us[1] = c->features[skip];
        vp_tensor *dup = vp_tpool_get(&m->pool, us);
        dskip[skip] = vp_tpool_get(&m->pool, us);
        vp_tensor *parts[2] = {dup, dskip[skip]};
        const vp_conv3d_params p = {{c->stride[skip + 1][0], c->stride[skip + 1][1], c->stride[skip + 1][2]}, {0, 0, 0}, {0, 0, 0}};
        vp_tensor *din = vp_tpool_get(&m->pool, u->tin[d]->shape);
        int e = vp_tr_concat_bwd(m, dh, parts, 2) ||
                gr->conv_transpose3d_bwd_weight(u->tin[d], dup, &p, vp_tr_g(m, u->tw[d]), vp_tr_gn(m, u->tb[d])) ||
                gr->conv_transpose3d_bwd_data(dup, vp_tr_w(m, u->tw[d]), &p, din);
        vp_tpool_put(&m->pool, &dup);
        vp_tpool_put(&m->pool, &dh);
        dh = din;
        if (e) goto out;
    }
    /* dh: gradient of the bottleneck output (encoder stage S-1) */
    for (int s = S - 1; s >= 0; s--) {
        if (s < S - 1 && vp_tr_accumulate(m, dh, dskip[s])) goto out;
        for (int j = c->n_conv[s] - 1; j >= 0; j--)
            if (block_bwd(m, gr, &u->enc[s][j], &dh, s > 0 || j > 0)) goto out;
    }
    rc = 0;
out:
    for (int s = 0; s < VP_UNET_MAXSTAGE; s++) vp_tpool_put(&m->pool, &dskip[s]);
    vp_tpool_put(&m->pool, &dh), vp_tpool_put(&m->pool, &dseg);
    return rc;
}
