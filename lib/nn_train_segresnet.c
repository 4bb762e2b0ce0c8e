/* nn_train_segresnet.c - trainable MONAI SegResNet (the architecture of nn_segresnet.h) with a
 * hand-written reverse pass. Parameters are registered in MONAI's state_dict order under its
 * names; initialisation as torch.nn's defaults (conv weights and biases uniform in
 * +-1/sqrt(fan_in), GroupNorm 1 and 0).
 *
 * Saved by forward (pointers into the tape): the network input, each ResBlock's input x,
 * relu(norm1(x)) a1, conv1 output c1 and relu(norm2(c1)) a2, each level's output, the up steps'
 * 1x1 conv inputs and outputs, and the final norm's input and relu output. Backward walks the
 * graph in reverse with these, GroupNorm statistics recomputed from the saved inputs.
 */
#include "nn_train_int.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct rblk {
    int g1, b1, g2, b2, w1, w2;
    vp_tensor *x, *a1, *c1, *a2; /* saved */
} rblk;

typedef struct srn {
    vp_segresnet_cfg c;
    int w_init, w_pre[VP_SEGRESNET_MAXLEVELS], w_up1[VP_SEGRESNET_MAXLEVELS];
    int w_dec[VP_SEGRESNET_MAXLEVELS], b_dec[VP_SEGRESNET_MAXLEVELS];
    rblk *down[VP_SEGRESNET_MAXLEVELS], *up[VP_SEGRESNET_MAXLEVELS];
    int g_fin, b_fin, w_fin, bias_fin;
    vp_tape tape;
    const vp_tensor *x;                        /* the caller's input */
    vp_tensor *lvl[VP_SEGRESNET_MAXLEVELS];    /* level outputs */
    vp_tensor *upin[VP_SEGRESNET_MAXLEVELS], *upt[VP_SEGRESNET_MAXLEVELS]; /* 1x1 conv input / output */
    vp_tensor *fin_in, *fin_a;
} srn;

static const vp_conv3d_params P1 = {{1, 1, 1}, {1, 1, 1}, {0, 0, 0}}, P0 = {{1, 1, 1}, {0, 0, 0}, {0, 0, 0}},
                              P2 = {{2, 2, 2}, {1, 1, 1}, {0, 0, 0}}, PT = {{2, 2, 2}, {0, 0, 0}, {0, 0, 0}};

/* ---- construction */

static void add_blocks(vp_trainable *m, rblk *rb, const char *prefix, int first, int n, int ch)
{
    char name[160];
    int64_t v[1] = {ch}, w[5] = {ch, ch, 3, 3, 3};
    for (int i = 0; i < n; i++) {
        int j = first + i;
#define ADD(field, what, nd, shape) snprintf(name, sizeof name, "%s.%d.%s", prefix, j, what), rb[i].field = vp_tr_add(m, name, nd, shape);
        ADD(g1, "norm1.weight", 1, v)
        ADD(b1, "norm1.bias", 1, v)
        ADD(g2, "norm2.weight", 1, v)
        ADD(b2, "norm2.bias", 1, v)
        ADD(w1, "conv1.conv.weight", 5, w)
        ADD(w2, "conv2.conv.weight", 5, w)
#undef ADD
    }
}

static int fwd(vp_trainable *m, const vp_nn_backend *be, const vp_tensor *x, int all, vp_tensor **out, int *nout);
static int bwd(vp_trainable *m, const vp_nn_grad *gr, vp_tensor *const *dout, int nout);
static void release(vp_trainable *m) { vp_tape_clear(&((srn *)m->impl)->tape); }
static void free_impl(vp_trainable *m)
{
    srn *s = m->impl;
    vp_tape_clear(&s->tape);
    free(s->tape.t);
    for (int i = 0; i < VP_SEGRESNET_MAXLEVELS; i++) free(s->down[i]), free(s->up[i]);
    free(s);
    m->impl = NULL;
}

static void list(char *buf, size_t n, const int *v, int k)
{
    buf[0] = 0;
    for (int i = 0; i < k; i++) snprintf(buf + strlen(buf), n - strlen(buf), "%s%d", i ? "," : "", v[i]);
}

static int meta(const vp_trainable *m, char k[][64], char v[][256])
{
    const srn *s = m->impl;
    int n = 0;
#define KV(key, ...) snprintf(k[n], 64, "%s", key), snprintf(v[n], 256, __VA_ARGS__), n++;
    KV("voxpipe.arch", "segresnet")
    KV("voxpipe.in_channels", "%d", s->c.in_channels)
    KV("voxpipe.out_channels", "%d", s->c.out_channels)
    KV("voxpipe.init_filters", "%d", s->c.init_filters)
    KV("voxpipe.norm_groups", "%d", s->c.norm_groups)
    KV("voxpipe.upsample_mode", "%s", s->c.deconv ? "deconv" : "nontrainable")
#undef KV
    snprintf(k[n], 64, "voxpipe.blocks_down"), list(v[n], 256, s->c.blocks_down, s->c.n_down), n++;
    snprintf(k[n], 64, "voxpipe.blocks_up"), list(v[n], 256, s->c.blocks_up, s->c.n_up), n++;
    return n;
}

static const vp_train_ops ops = {"segresnet", fwd, bwd, release, free_impl, meta};

vp_trainable *vp_trainable_new_segresnet(const vp_segresnet_cfg *cfg, uint64_t seed)
{
    const vp_segresnet_cfg *c = cfg;
    if (c->in_channels < 1 || c->out_channels < 1 || c->init_filters < 1 || c->norm_groups < 1 || c->n_down < 1 ||
        c->n_down > VP_SEGRESNET_MAXLEVELS || c->n_up != c->n_down - 1 || !(c->eps > 0))
        return vp_error("segresnet: bad configuration (in %d, out %d, filters %d, groups %d, %d down / %d up levels, eps %g)",
                        c->in_channels, c->out_channels, c->init_filters, c->norm_groups, c->n_down, c->n_up, c->eps), NULL;
    for (int i = 0; i < c->n_down; i++) {
        if ((c->init_filters << i) % c->norm_groups)
            return vp_error("segresnet: GroupNorm with %d groups cannot split %d channels (level %d)", c->norm_groups,
                            c->init_filters << i, i), NULL;
        if (c->blocks_down[i] < 0 || (i < c->n_up && c->blocks_up[i] < 0)) return vp_error("segresnet: negative block count"), NULL;
    }
    vp_trainable *m = vp_tr_new(&ops);
    srn *s = vp_calloc(1, sizeof *s);
    m->impl = s;
    s->tape.ar = &m->pool;
    s->c = *c;
    m->in_ch = c->in_channels, m->classes = c->out_channels;
    for (int a = 0; a < 3; a++) m->div[a] = 1 << (c->n_down - 1);
    const int F = c->init_filters;
    char name[160];
    s->w_init = vp_tr_add(m, "convInit.conv.weight", 5, (int64_t[]){F, c->in_channels, 3, 3, 3});
    for (int i = 0; i < c->n_down; i++) {
        int64_t ch = (int64_t)F << i;
        s->w_pre[i] = -1;
        if (i > 0) {
            snprintf(name, sizeof name, "down_layers.%d.0.conv.weight", i);
            s->w_pre[i] = vp_tr_add(m, name, 5, (int64_t[]){ch, ch / 2, 3, 3, 3});
        }
        snprintf(name, sizeof name, "down_layers.%d", i);
        s->down[i] = vp_calloc((size_t)c->blocks_down[i] + 1, sizeof(rblk));
        add_blocks(m, s->down[i], name, 1, c->blocks_down[i], (int)ch);
    }
    for (int j = 0; j < c->n_up; j++) {
        snprintf(name, sizeof name, "up_layers.%d", j);
        s->up[j] = vp_calloc((size_t)c->blocks_up[j] + 1, sizeof(rblk));
        add_blocks(m, s->up[j], name, 0, c->blocks_up[j], F << (c->n_up - j - 1));
    }
    for (int j = 0; j < c->n_up; j++) {
        int64_t ch = (int64_t)F << (c->n_up - j);
        snprintf(name, sizeof name, "up_samples.%d.0.conv.weight", j);
        s->w_up1[j] = vp_tr_add(m, name, 5, (int64_t[]){ch / 2, ch, 1, 1, 1});
        s->w_dec[j] = s->b_dec[j] = -1;
        if (c->deconv) {
            snprintf(name, sizeof name, "up_samples.%d.1.deconv.weight", j);
            s->w_dec[j] = vp_tr_add(m, name, 5, (int64_t[]){ch / 2, ch / 2, 2, 2, 2});
            snprintf(name, sizeof name, "up_samples.%d.1.deconv.bias", j);
            s->b_dec[j] = vp_tr_add(m, name, 1, (int64_t[]){ch / 2});
        }
    }
    s->g_fin = vp_tr_add(m, "conv_final.0.weight", 1, (int64_t[]){F});
    s->b_fin = vp_tr_add(m, "conv_final.0.bias", 1, (int64_t[]){F});
    s->w_fin = vp_tr_add(m, "conv_final.2.conv.weight", 5, (int64_t[]){c->out_channels, F, 1, 1, 1});
    s->bias_fin = vp_tr_add(m, "conv_final.2.conv.bias", 1, (int64_t[]){c->out_channels});
    vp_tr_finalize(m);
    /* torch defaults: conv kaiming_uniform(a=sqrt 5) = U(+-1/sqrt(fan_in)), bias the same bound
     * with the weight's fan_in; norms weight 1, bias 0 */
    vp_rng r = {seed};
    for (int i = 0; i < m->np; i++) {
        const char *n = m->params[i].name;
        int norm = strstr(n, "norm") || !strncmp(n, "conv_final.0.", 13);
        if (norm) vp_tr_init_const(m, i, strstr(n, "weight") ? 1.0f : 0.0f);
        else if (m->params[i].w.ndim == 5) vp_tr_init_uniform(m, i, 1.0 / sqrt(vp_tr_fan_in(m, i)), &r);
        else vp_tr_init_uniform(m, i, 1.0 / sqrt(vp_tr_fan_in(m, i - 1)), &r); /* bias after its weight */
    }
    return m;
}

/* ---- forward */

static vp_tensor *conv(srn *s, const vp_nn_backend *be, const vp_tensor *x, const vp_tensor *w, const vp_tensor *b,
                       const vp_conv3d_params *p)
{
    int64_t sh[5];
    if (vp_nn_conv3d_shape(x, w, b, p, sh)) return NULL;
    vp_tensor *y = vp_tape_new(&s->tape, sh);
    return be->conv3d(be, x, w, b, p, y) ? NULL : y;
}

static vp_tensor *norm_relu(srn *s, const vp_nn_backend *be, const vp_tensor *x, const vp_tensor *g, const vp_tensor *b)
{
    vp_tensor *y = vp_tape_new(&s->tape, x->shape);
    if (be->group_norm(be, x, s->c.norm_groups, s->c.eps, g, b, y) || be->relu(be, y, y)) return NULL;
    return y;
}

static vp_tensor *blocks_fwd(vp_trainable *m, const vp_nn_backend *be, rblk *rb, int n, vp_tensor *x)
{
    srn *s = m->impl;
    for (int i = 0; i < n && x; i++) {
        rblk *b = &rb[i];
        b->x = x;
        if (!(b->a1 = norm_relu(s, be, x, vp_tr_w(m, b->g1), vp_tr_w(m, b->b1)))) return NULL;
        if (!(b->c1 = conv(s, be, b->a1, vp_tr_w(m, b->w1), NULL, &P1))) return NULL;
        if (!(b->a2 = norm_relu(s, be, b->c1, vp_tr_w(m, b->g2), vp_tr_w(m, b->b2)))) return NULL;
        vp_tensor *y = conv(s, be, b->a2, vp_tr_w(m, b->w2), NULL, &P1);
        if (!y || be->add(be, y, x, y)) return NULL;
        x = y;
    }
    return x;
}

static int fwd(vp_trainable *m, const vp_nn_backend *be, const vp_tensor *x, int all, vp_tensor **out, int *nout)
{
    srn *s = m->impl;
    const vp_segresnet_cfg *c = &s->c;
    vp_tape_clear(&s->tape);
    s->x = x;
    vp_tensor *h = conv(s, be, x, vp_tr_w(m, s->w_init), NULL, &P1);
    for (int i = 0; i < c->n_down && h; i++) {
        if (i > 0) h = conv(s, be, h, vp_tr_w(m, s->w_pre[i]), NULL, &P2);
        h = blocks_fwd(m, be, s->down[i], c->blocks_down[i], h);
        s->lvl[i] = h;
    }
    for (int j = 0; j < c->n_up && h; j++) {
        vp_tensor *skip = s->lvl[c->n_down - 2 - j];
        s->upin[j] = h;
        vp_tensor *t = s->upt[j] = conv(s, be, h, vp_tr_w(m, s->w_up1[j]), NULL, &P0);
        if (!t) return -1;
        vp_tensor *u = vp_tape_new(&s->tape, skip->shape);
        int64_t us[5];
        if (c->deconv ? vp_nn_conv_transpose3d_shape(t, vp_tr_w(m, s->w_dec[j]), vp_tr_w(m, s->b_dec[j]), &PT, us) ||
                            vp_nn_check_out("segresnet up", u, us) ||
                            be->conv_transpose3d(be, t, vp_tr_w(m, s->w_dec[j]), vp_tr_w(m, s->b_dec[j]), &PT, u)
                      : be->upsample_trilinear2x(be, t, u))
            return -1;
        if (be->add(be, u, skip, u)) return -1;
        h = blocks_fwd(m, be, s->up[j], c->blocks_up[j], u);
    }
    if (!h) return -1;
    s->fin_in = h;
    if (!(s->fin_a = norm_relu(s, be, h, vp_tr_w(m, s->g_fin), vp_tr_w(m, s->b_fin)))) return -1;
    int64_t os[5] = {x->shape[0], c->out_channels, x->shape[2], x->shape[3], x->shape[4]};
    out[0] = vp_tpool_get(&m->pool, os);
    *nout = 1;
    return be->conv3d(be, s->fin_a, vp_tr_w(m, s->w_fin), vp_tr_w(m, s->bias_fin), &P0, out[0]);
}

/* ---- backward */

/* Gradient through a 3x3x3 / 1x1x1 conv: parameter gradients, and dx (new, or NULL when not wanted). */
static int conv_bwd(vp_trainable *m, const vp_nn_grad *gr, const vp_tensor *x, int w, int b, const vp_tensor *dy,
                    const vp_conv3d_params *p, vp_tensor **dx)
{
    if (gr->conv3d_bwd_weight(x, dy, p, vp_tr_g(m, w), vp_tr_gn(m, b))) return -1;
    if (!dx) return 0;
    *dx = vp_tpool_get(&m->pool, x->shape);
    return gr->conv3d_bwd_data(dy, vp_tr_w(m, w), p, *dx);
}

/* d(relu(norm(x)))/dx given the saved relu output a and its gradient da (overwritten). */
static int norm_relu_bwd(vp_trainable *m, const vp_nn_grad *gr, const vp_tensor *x, const vp_tensor *a, vp_tensor *da,
                         int g, int b, vp_tensor **dx)
{
    srn *s = m->impl;
    if (gr->relu_bwd(a, da, da)) return -1;
    *dx = vp_tpool_get(&m->pool, x->shape);
    return gr->group_norm_bwd(x, da, s->c.norm_groups, s->c.eps, vp_tr_w(m, g), *dx, vp_tr_g(m, g), vp_tr_g(m, b));
}

/* ResBlocks in reverse; *dy (gradient of the last block's output) becomes the first block's input
 * gradient. */
static int blocks_bwd(vp_trainable *m, const vp_nn_grad *gr, rblk *rb, int n, vp_tensor **dy)
{
    for (int i = n - 1; i >= 0; i--) {
        rblk *b = &rb[i];
        vp_tensor *da2 = NULL, *dc1 = NULL, *da1 = NULL, *dx = NULL;
        int e = conv_bwd(m, gr, b->a2, b->w2, -1, *dy, &P1, &da2) || norm_relu_bwd(m, gr, b->c1, b->a2, da2, b->g2, b->b2, &dc1) ||
                conv_bwd(m, gr, b->a1, b->w1, -1, dc1, &P1, &da1) || norm_relu_bwd(m, gr, b->x, b->a1, da1, b->g1, b->b1, &dx) ||
                vp_tr_accumulate(m, *dy, dx); /* the residual: dy reaches x directly too */
        vp_tpool_put(&m->pool, &da2), vp_tpool_put(&m->pool, &dc1), vp_tpool_put(&m->pool, &da1), vp_tpool_put(&m->pool, &dx);
        if (e) return -1;
    }
    return 0;
}

static int bwd(vp_trainable *m, const vp_nn_grad *gr, vp_tensor *const *dout, int nout)
{
    srn *s = m->impl;
    const vp_segresnet_cfg *c = &s->c;
    vp_tensor *dskip[VP_SEGRESNET_MAXLEVELS] = {0}, *dh = NULL, *da = NULL, *dt = NULL;
    int rc = -1;
    if (nout < 1 || !dout[0]) return vp_error("segresnet: backward without an output gradient");
    if (conv_bwd(m, gr, s->fin_a, s->w_fin, s->bias_fin, dout[0], &P0, &da)) goto out;
    if (norm_relu_bwd(m, gr, s->fin_in, s->fin_a, da, s->g_fin, s->b_fin, &dh)) goto out;
    vp_tpool_put(&m->pool, &da);
    for (int j = c->n_up - 1; j >= 0; j--) {
        if (blocks_bwd(m, gr, s->up[j], c->blocks_up[j], &dh)) goto out;
        /* u = up(t) + skip: the skip's gradient is dh; t's goes through the upsampling */
        const int lv = c->n_down - 2 - j;
        dskip[lv] = dh;
        dh = NULL;
        dt = vp_tpool_get(&m->pool, s->upt[j]->shape);
        if (c->deconv ? gr->conv_transpose3d_bwd_weight(s->upt[j], dskip[lv], &PT, vp_tr_g(m, s->w_dec[j]), vp_tr_g(m, s->b_dec[j])) ||
                            gr->conv_transpose3d_bwd_data(dskip[lv], vp_tr_w(m, s->w_dec[j]), &PT, dt)
                      : gr->upsample_trilinear2x_bwd(dskip[lv], dt))
            goto out;
        if (conv_bwd(m, gr, s->upin[j], s->w_up1[j], -1, dt, &P0, &dh)) goto out;
        vp_tpool_put(&m->pool, &dt);
    }
    for (int i = c->n_down - 1; i >= 0; i--) {
        if (i < c->n_down - 1 && vp_tr_accumulate(m, dh, dskip[i])) goto out;
        if (blocks_bwd(m, gr, s->down[i], c->blocks_down[i], &dh)) goto out;
        vp_tensor *dprev = NULL;
        if (i > 0) {
            if (conv_bwd(m, gr, s->lvl[i - 1], s->w_pre[i], -1, dh, &P2, &dprev)) goto out;
        } else if (conv_bwd(m, gr, s->x, s->w_init, -1, dh, &P1, NULL)) {
            goto out;
        }
        vp_tpool_put(&m->pool, &dh);
        dh = dprev;
    }
    rc = 0;
out:
    for (int i = 0; i < VP_SEGRESNET_MAXLEVELS; i++) vp_tpool_put(&m->pool, &dskip[i]);
    vp_tpool_put(&m->pool, &dh), vp_tpool_put(&m->pool, &da), vp_tpool_put(&m->pool, &dt);
    return rc;
}
