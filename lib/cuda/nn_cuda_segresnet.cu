// nn_cuda_segresnet.cu - SegResNet's forward pass with everything on the device (see nn_cuda.h,
// vp_cuda_segresnet_*): the weights are uploaded once, activations come from the stream-ordered
// pool in the model's layout (NCDHW or NDHWC), GroupNorm + ReLU run fused (vp_cuda_norm_act), and
// nothing is copied to or from the host. The architecture is nn_segresnet.c's (MONAI's); the file
// is validated by vp_segresnet_load, which this loader calls first, so its messages are the same.
// With VP_CUDA_GRAPHS=1 the forward of repeated batch shapes is replayed from a CUDA graph
// (nn_cuda_graph.cu: same kernels in the same order, the same bytes).
#include "nn_cuda_int.h"

extern "C" {
#include "nn_safetensors.h"
#include "nn_segresnet.h"
}

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dres {
    vp_tensor *g1, *b1, *g2, *b2, *w1, *w2;
};

struct vp_cuda_segresnet {
    const vp_nn_backend *be;
    vp_segresnet_cfg cfg;
    int layout;
    vp_tensor *w_init, *w_pre[VP_SEGRESNET_MAXLEVELS], *w_up1[VP_SEGRESNET_MAXLEVELS];
    vp_tensor *w_dec[VP_SEGRESNET_MAXLEVELS], *b_dec[VP_SEGRESNET_MAXLEVELS]; // upsample_mode deconv: ConvTranspose3d k2 s2
    dres *down[VP_SEGRESNET_MAXLEVELS], *up[VP_SEGRESNET_MAXLEVELS];
    vp_tensor *g_fin, *b_fin, *w_fin, *bias_fin;
    vp_cuda_graph *graph; // the forward's graph (VP_CUDA_GRAPHS) and the batch counts
};

// a tensor of the (validated) file, on the device; NULL after vp_error
static vp_tensor *upload(const vp_safetensors *st, const char *name, int dev, int *fail)
{
    if (*fail) return NULL;
    vp_tensor *h = vp_st_load(st, name), *d = NULL;
    if (h && (d = vp_cuda_tensor_new(dev, h->ndim, h->shape)) && vp_cuda_upload(d, h)) vp_cuda_tensor_free(&d);
    vp_tensor_free(&h);
    if (!d) *fail = 1;
    return d;
}

static dres *upload_blocks(const vp_safetensors *st, const char *prefix, int first, int n, int dev, int *fail)
{
    dres *rb = (dres *)vp_calloc(n ? (size_t)n : 1, sizeof *rb);
    char name[160];
    for (int i = 0; i < n; i++) {
#define UB(field, what)                                                      \
    snprintf(name, sizeof name, "%s.%d.%s", prefix, first + i, what);       \
    rb[i].field = upload(st, name, dev, fail);
        UB(g1, "norm1.weight") UB(b1, "norm1.bias") UB(g2, "norm2.weight") UB(b2, "norm2.bias")
        UB(w1, "conv1.conv.weight") UB(w2, "conv2.conv.weight")
#undef UB
    }
    return rb;
}

static void free_blocks(dres **rb, int n)
{
    if (!*rb) return;
    for (int i = 0; i < n; i++) {
        vp_tensor **ts[6] = {&(*rb)[i].g1, &(*rb)[i].b1, &(*rb)[i].g2, &(*rb)[i].b2, &(*rb)[i].w1, &(*rb)[i].w2};
        for (int k = 0; k < 6; k++) vp_cuda_tensor_free(ts[k]);
    }
    free(*rb);
    *rb = NULL;
}

extern "C" void vp_cuda_segresnet_free(vp_cuda_segresnet **mp)
{
    vp_cuda_segresnet *m = mp ? *mp : NULL;
    if (!m) return;
    vp_cuda_graph_free(&m->graph);
    vp_cuda_tensor_free(&m->w_init);
    for (int i = 0; i < VP_SEGRESNET_MAXLEVELS; i++) {
        vp_cuda_tensor_free(&m->w_pre[i]);
        vp_cuda_tensor_free(&m->w_up1[i]);
        vp_cuda_tensor_free(&m->w_dec[i]);
        vp_cuda_tensor_free(&m->b_dec[i]);
        free_blocks(&m->down[i], m->cfg.blocks_down[i]);
        free_blocks(&m->up[i], m->cfg.blocks_up[i]);
    }
    vp_cuda_tensor_free(&m->g_fin), vp_cuda_tensor_free(&m->b_fin), vp_cuda_tensor_free(&m->w_fin), vp_cuda_tensor_free(&m->bias_fin);
    free(m);
    *mp = NULL;
}

extern "C" vp_cuda_segresnet *vp_cuda_segresnet_load(const vp_nn_backend *be, const vp_safetensors *st, const char *where, int layout)
{
    vp_segresnet *check = vp_segresnet_load(st, where); // every check and message of the CPU loader
    if (!check) return NULL;
    vp_cuda_segresnet *m = (vp_cuda_segresnet *)vp_calloc(1, sizeof *m);
    m->cfg = *vp_segresnet_config(check);
    vp_segresnet_free(&check);
    m->be = be, m->layout = layout == VP_CUDA_NDHWC ? VP_CUDA_NDHWC : VP_CUDA_NCDHW;
    const int dev = ctx_of(be)->dev;
    int fail = 0;
    char name[160];
    m->w_init = upload(st, "convInit.conv.weight", dev, &fail);
    for (int i = 0; i < m->cfg.n_down; i++) {
        if (i > 0) {
            snprintf(name, sizeof name, "down_layers.%d.0.conv.weight", i);
            m->w_pre[i] = upload(st, name, dev, &fail);
        }
        snprintf(name, sizeof name, "down_layers.%d", i);
        m->down[i] = upload_blocks(st, name, 1, m->cfg.blocks_down[i], dev, &fail);
    }
    for (int j = 0; j < m->cfg.n_up; j++) {
        snprintf(name, sizeof name, "up_samples.%d.0.conv.weight", j);
        m->w_up1[j] = upload(st, name, dev, &fail);
        if (m->cfg.deconv) {
            snprintf(name, sizeof name, "up_samples.%d.1.deconv.weight", j);
            m->w_dec[j] = upload(st, name, dev, &fail);
            snprintf(name, sizeof name, "up_samples.%d.1.deconv.bias", j);
            m->b_dec[j] = upload(st, name, dev, &fail);
        }
        snprintf(name, sizeof name, "up_layers.%d", j);
        m->up[j] = upload_blocks(st, name, 0, m->cfg.blocks_up[j], dev, &fail);
    }
    m->g_fin = upload(st, "conv_final.0.weight", dev, &fail);
    m->b_fin = upload(st, "conv_final.0.bias", dev, &fail);
    m->w_fin = upload(st, "conv_final.2.conv.weight", dev, &fail);
    m->bias_fin = upload(st, "conv_final.2.conv.bias", dev, &fail);
    if (fail) {
        vp_error("%s: cannot put the model on the device", where);
        vp_cuda_segresnet_free(&m);
        return NULL;
    }
    m->graph = vp_cuda_graph_new(ctx_of(be), m->layout, "segresnet");
    return m;
}

// ---- forward

// a new activation = conv(x, w, b) with stride s, padding k/2; NULL after vp_error
static vp_tensor *conv_new(const vp_cuda_segresnet *m, const vp_tensor *x, const vp_tensor *w, const vp_tensor *b, int s)
{
    int p = (int)(w->shape[2] / 2);
    vp_conv3d_params cp = {{s, s, s}, {p, p, p}, {0, 0, 0}};
    int64_t sh[5];
    vp_tensor lx = vp_cu_logical(x);
    if (vp_nn_conv3d_shape(&lx, w, b, &cp, sh)) return NULL;
    vp_tensor *y = vp_cu_act_new(ctx_of(m->be), sh, m->layout);
    if (y && m->be->conv3d(m->be, x, w, b, &cp, y)) vp_cu_act_free(ctx_of(m->be), &y);
    return y;
}

static int norm_relu(const vp_cuda_segresnet *m, const vp_tensor *x, const vp_tensor *g, const vp_tensor *b, vp_tensor *y)
{
    return vp_cuda_norm_act(m->be, x, m->cfg.norm_groups, m->cfg.eps, g, b, 1, 0.0f, y);
}

// one ResBlock: a new tensor, x untouched
static vp_tensor *resblock(const vp_cuda_segresnet *m, const dres *rb, const vp_tensor *x)
{
    vp_cuda_ctx *c = ctx_of(m->be);
    const vp_conv3d_params p1 = {{1, 1, 1}, {1, 1, 1}, {0, 0, 0}};
    vp_tensor *a = vp_cu_act_new(c, x->shape, m->layout), *t = NULL;
    if (!a || norm_relu(m, x, rb->g1, rb->b1, a) || !(t = conv_new(m, a, rb->w1, NULL, 1)) || norm_relu(m, t, rb->g2, rb->b2, a) ||
        m->be->conv3d(m->be, a, rb->w2, NULL, &p1, t) || m->be->add(m->be, t, x, t))
        vp_cu_act_free(c, &t);
    vp_cu_act_free(c, &a);
    return t;
}

static int blocks(const vp_cuda_segresnet *m, const dres *rb, int n, vp_tensor **x)
{
    for (int i = 0; i < n; i++) {
        vp_tensor *y = resblock(m, &rb[i], *x);
        if (!y) return -1;
        vp_cu_act_free(ctx_of(m->be), x);
        *x = y;
    }
    return 0;
}

static int forward(const void *ctx, const vp_tensor *x, vp_tensor *y);

extern "C" int vp_cuda_segresnet_forward(const vp_cuda_segresnet *m, const vp_tensor *x, vp_tensor *y)
{
    const vp_segresnet_cfg *cf = &m->cfg;
    vp_cuda_ctx *c = ctx_of(m->be);
    char buf[96];
    const int div = 1 << (cf->n_down - 1);
    if (!x || x->device != c->dev + 1 || !y || y->device != c->dev + 1)
        return vp_error("segresnet (device): input and output must be tensors on device %d", c->dev);
    if (x->ndim != 5 || x->shape[1] != cf->in_channels || x->shape[2] % div || x->shape[3] % div || x->shape[4] % div)
        return vp_error("segresnet (device): input %s: needs %d channels and spatial sizes divisible by %d",
                        vp_tensor_shape_str(x, buf, sizeof buf), cf->in_channels, div);
    int64_t ys[5] = {x->shape[0], cf->out_channels, x->shape[2], x->shape[3], x->shape[4]};
    vp_tensor ly = vp_cu_logical(y);
    if (vp_nn_check_out("segresnet (device)", &ly, ys)) return -1;
    return vp_cuda_graph_run(m->graph, forward, m, x, y);
}

// the forward pass on checked tensors (eagerly, or inside a graph capture)
static int forward(const void *ctx, const vp_tensor *x, vp_tensor *y)
{
    const vp_cuda_segresnet *m = (const vp_cuda_segresnet *)ctx;
    const vp_segresnet_cfg *cf = &m->cfg;
    vp_cuda_ctx *c = ctx_of(m->be);
    vp_tensor *skip[VP_SEGRESNET_MAXLEVELS] = {0}, *h = NULL, *t = NULL, *u = NULL;
    const vp_conv3d_params p1 = {{1, 1, 1}, {0, 0, 0}, {0, 0, 0}};
    int rc = -1;
    if (!(h = conv_new(m, x, m->w_init, NULL, 1))) goto out;
    for (int i = 0; i < cf->n_down; i++) {
        if (i > 0) {
            vp_tensor *d = conv_new(m, h, m->w_pre[i], NULL, 2);
            if (!d) goto out;
            h = d; // the previous level's output stays alive as skip[i - 1]
        }
        if (blocks(m, m->down[i], cf->blocks_down[i], &h)) goto out;
        if (i < cf->n_down - 1) skip[i] = h;
    }
    for (int j = 0; j < cf->n_up; j++) {
        vp_tensor *s = skip[cf->n_down - 2 - j];
        if (!(t = conv_new(m, h, m->w_up1[j], NULL, 1))) goto out;
        vp_cu_act_free(c, &h); // the deepest level or the previous up step: never a skip
        if (!(u = vp_cu_act_new(c, s->shape, m->layout))) goto out;
        if (cf->deconv) { // ConvTranspose3d k2 s2 + bias (the loader checked the shapes)
            const vp_conv3d_params p2 = {{2, 2, 2}, {0, 0, 0}, {0, 0, 0}};
            if (m->be->conv_transpose3d(m->be, t, m->w_dec[j], m->b_dec[j], &p2, u)) goto out;
        } else if (m->be->upsample_trilinear2x(m->be, t, u)) {
            goto out;
        }
        if (m->be->add(m->be, u, s, u)) goto out;
        vp_cu_act_free(c, &t);
        vp_cu_act_free(c, &skip[cf->n_down - 2 - j]);
        h = u, u = NULL;
        if (blocks(m, m->up[j], cf->blocks_up[j], &h)) goto out;
    }
    if (!(t = vp_cu_act_new(c, h->shape, m->layout)) || norm_relu(m, h, m->g_fin, m->b_fin, t) ||
        m->be->conv3d(m->be, t, m->w_fin, m->bias_fin, &p1, y))
        goto out;
    rc = 0;
out:
    for (int i = 0; i < VP_SEGRESNET_MAXLEVELS; i++)
        if (skip[i] && skip[i] != h) vp_cu_act_free(c, &skip[i]);
    vp_cu_act_free(c, &h);
    vp_cu_act_free(c, &t);
    vp_cu_act_free(c, &u);
    return rc;
}
