// nn_cuda_unet.cu - nnU-Net's PlainConvUNet / ResidualEncoderUNet forward pass with everything on
// the device (see nn_infer_cuda_unet.h, vp_cuda_unet_*): the host model's weights are uploaded
// once into a vp_unet of device tensors (the same structure, so the forward pass reads like
// nn_unet.c / nn_resenc.c, its CPU twins), activations come from the stream-ordered pool in the
// model's layout, InstanceNorm runs fused with LeakyReLU (vp_cuda_norm_act, groups = channels),
// and nothing is copied to or from the host.
#include "nn_cuda_int.h"

extern "C" {
#include "nn_infer_cuda_unet.h"
}

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct vp_cuda_unet {
    const vp_nn_backend *be;
    int layout;
    vp_unet d; // cfg and layout of the host model; every tensor a device tensor
};

// ---- upload / free

static vp_tensor *up1(const vp_tensor *h, int dev, int *fail)
{
    if (!h || *fail) return NULL;
    vp_tensor *d = vp_cuda_tensor_new(dev, h->ndim, h->shape);
    if (d && vp_cuda_upload(d, h)) vp_cuda_tensor_free(&d);
    if (!d) *fail = 1;
    return d;
}

static void up_conv(vp_unet_conv *d, const vp_unet_conv *h, int dev, int *fail)
{
    memcpy(d->k, h->k, sizeof d->k), memcpy(d->s, h->s, sizeof d->s);
    d->w = up1(h->w, dev, fail), d->b = up1(h->b, dev, fail), d->gamma = up1(h->gamma, dev, fail), d->beta = up1(h->beta, dev, fail);
}

static void free_conv(vp_unet_conv *b)
{
    vp_cuda_tensor_free(&b->w), vp_cuda_tensor_free(&b->b), vp_cuda_tensor_free(&b->gamma), vp_cuda_tensor_free(&b->beta);
}

extern "C" void vp_cuda_unet_free(vp_cuda_unet **mp)
{
    vp_cuda_unet *m = mp ? *mp : NULL;
    if (!m) return;
    vp_unet *u = &m->d;
    const vp_unet_cfg *c = &u->cfg;
    free_conv(&u->stem);
    for (int s = 0; s < c->n_stages; s++) {
        if (u->res[s])
            for (int j = 0; j < c->n_conv[s]; j++) free_conv(&u->res[s][j].c1), free_conv(&u->res[s][j].c2), free_conv(&u->res[s][j].proj);
        if (u->enc[s])
            for (int j = 0; j < c->n_conv[s]; j++) free_conv(&u->enc[s][j]);
        if (u->dec[s])
            for (int j = 0; j < c->n_conv_dec[s]; j++) free_conv(&u->dec[s][j]);
        free(u->res[s]), free(u->enc[s]), free(u->dec[s]);
        vp_cuda_tensor_free(&u->tw[s]), vp_cuda_tensor_free(&u->tb[s]);
    }
    vp_cuda_tensor_free(&u->seg_w), vp_cuda_tensor_free(&u->seg_b);
    free(m);
    *mp = NULL;
}

extern "C" vp_cuda_unet *vp_cuda_unet_upload(const vp_nn_backend *be, const vp_unet *h, int layout)
{
    vp_cuda_unet *m = (vp_cuda_unet *)vp_calloc(1, sizeof *m);
    m->be = be, m->layout = layout == VP_CUDA_NDHWC ? VP_CUDA_NDHWC : VP_CUDA_NCDHW;
    vp_unet *u = &m->d;
    const vp_unet_cfg *c = &h->cfg;
    u->cfg = *c;
    const int dev = ctx_of(be)->dev;
    int fail = 0;
    if (c->resenc) up_conv(&u->stem, &h->stem, dev, &fail);
    for (int s = 0; s < c->n_stages; s++) {
        if (h->res[s]) {
            u->res[s] = (vp_unet_resblock *)vp_calloc((size_t)c->n_conv[s], sizeof(vp_unet_resblock));
            for (int j = 0; j < c->n_conv[s]; j++) {
                const vp_unet_resblock *hb = &h->res[s][j];
                vp_unet_resblock *db = &u->res[s][j];
                memcpy(db->pool, hb->pool, sizeof db->pool);
                up_conv(&db->c1, &hb->c1, dev, &fail), up_conv(&db->c2, &hb->c2, dev, &fail), up_conv(&db->proj, &hb->proj, dev, &fail);
            }
        }
        if (h->enc[s]) {
            u->enc[s] = (vp_unet_conv *)vp_calloc((size_t)c->n_conv[s], sizeof(vp_unet_conv));
            for (int j = 0; j < c->n_conv[s]; j++) up_conv(&u->enc[s][j], &h->enc[s][j], dev, &fail);
        }
        if (s < c->n_stages - 1 && h->dec[s]) {
            u->dec[s] = (vp_unet_conv *)vp_calloc((size_t)c->n_conv_dec[s], sizeof(vp_unet_conv));
            for (int j = 0; j < c->n_conv_dec[s]; j++) up_conv(&u->dec[s][j], &h->dec[s][j], dev, &fail);
        }
        u->tw[s] = up1(h->tw[s], dev, &fail), u->tb[s] = up1(h->tb[s], dev, &fail);
    }
    u->seg_w = up1(h->seg_w, dev, &fail), u->seg_b = up1(h->seg_b, dev, &fail);
    if (fail) {
        vp_error("unet (device): cannot put the model on the device");
        vp_cuda_unet_free(&m);
    }
    return m;
}

extern "C" const vp_nn_backend *vp_cuda_unet_backend(const vp_cuda_unet *m) { return m->be; }
extern "C" int vp_cuda_unet_layout(const vp_cuda_unet *m) { return m->layout; }

// ---- forward

// average pooling, kernel = stride = k (nn_resenc.c's vp_avgpool3d: the sum in d, h, w order, then
// divided), in layout l; y (N, C, D/k0, H/k1, W/k2)
__global__ void k_avgpool(const float *x, float *y, int64_t N, int64_t C, int64_t D, int64_t H, int64_t W, int k0, int k1, int k2, int l)
{
    const int64_t OD = D / k0, OH = H / k1, OW = W / k2, n = N * C * OD * OH * OW;
    const float div = (float)(k0 * k1 * k2);
    GRID_STRIDE(i, n)
    {
        int64_t c, w, h, d, b;
        if (l) c = i % C, w = i / C % OW, h = i / (C * OW) % OH, d = i / (C * OW * OH) % OD, b = i / (C * OW * OH * OD);
        else w = i % OW, h = i / OW % OH, d = i / (OW * OH) % OD, c = i / (OW * OH * OD) % C, b = i / (OW * OH * OD * C);
        float sum = 0.0f;
        for (int a = 0; a < k0; a++)
            for (int e = 0; e < k1; e++)
                for (int f = 0; f < k2; f++) {
                    const int64_t sd = d * k0 + a, sh = h * k1 + e, sw = w * k2 + f;
                    const int64_t si = l ? (((b * D + sd) * H + sh) * W + sw) * C + c : (((b * C + c) * D + sd) * H + sh) * W + sw;
                    sum = __fadd_rn(sum, x[si]);
                }
        y[i] = __fdiv_rn(sum, div);
    }
}

// conv (+ bias) -> InstanceNorm (-> LeakyReLU when act): a new activation (vp_unet_block_fwd)
static vp_tensor *block_fwd(const vp_cuda_unet *m, const vp_unet_conv *b, const vp_tensor *x, int act)
{
    vp_cuda_ctx *c = ctx_of(m->be);
    vp_conv3d_params p = {{b->s[0], b->s[1], b->s[2]}, {(b->k[0] - 1) / 2, (b->k[1] - 1) / 2, (b->k[2] - 1) / 2}, {0, 0, 0}};
    int64_t os[5];
    vp_tensor lx = vp_cu_logical(x);
    if (vp_nn_conv3d_shape(&lx, b->w, b->b, &p, os)) return NULL;
    vp_tensor *t = vp_cu_act_new(c, os, m->layout), *y = NULL;
    if (!t || m->be->conv3d(m->be, x, b->w, b->b, &p, t) || !(y = vp_cu_act_new(c, os, m->layout)) ||
        vp_cuda_norm_act(m->be, t, (int)os[1], m->d.cfg.norm_eps, b->gamma, b->beta, act ? 2 : 0, m->d.cfg.slope, y))
        vp_cu_act_free(c, &y);
    vp_cu_act_free(c, &t);
    return y;
}

// n blocks on *x, replacing it (the input is freed when own is set, as nn_unet.c's blocks_fwd)
static int blocks_fwd(const vp_cuda_unet *m, const vp_unet_conv *b, int n, vp_tensor **x, int own)
{
    for (int j = 0; j < n; j++) {
        vp_tensor *y = block_fwd(m, &b[j], *x, 1);
        if (own || j) vp_cu_act_free(ctx_of(m->be), x);
        if (!y) return -1;
        *x = y;
    }
    return 0;
}

// one BasicBlockD (nn_resenc.c's block): lrelu(norm(conv2(lrelu(norm(conv1(x))))) + skip(x))
static vp_tensor *res_block(const vp_cuda_unet *m, const vp_unet_resblock *b, const vp_tensor *x)
{
    vp_cuda_ctx *c = ctx_of(m->be);
    vp_tensor *pooled = NULL, *res = NULL, *y = NULL, *h = block_fwd(m, &b->c1, x, 1);
    if (!h) return NULL;
    y = block_fwd(m, &b->c2, h, 0);
    vp_cu_act_free(c, &h);
    if (!y) return NULL;
    const vp_tensor *skip = x;
    if (b->pool[0] != 1 || b->pool[1] != 1 || b->pool[2] != 1) {
        const int64_t ps[5] = {x->shape[0], x->shape[1], x->shape[2] / b->pool[0], x->shape[3] / b->pool[1], x->shape[4] / b->pool[2]};
        if (!(pooled = vp_cu_act_new(c, ps, m->layout))) goto fail;
        CUDA_CHECK(cudaSetDevice(c->dev));
        k_avgpool<<<blocks_for(vp_tensor_numel(pooled)), TPB, 0, c->stream>>>(x->data, pooled->data, x->shape[0], x->shape[1], x->shape[2],
                                                                              x->shape[3], x->shape[4], b->pool[0], b->pool[1], b->pool[2], m->layout);
        LAUNCH_CHECK();
        skip = pooled;
    }
    if (b->proj.w) {
        if (!(res = block_fwd(m, &b->proj, skip, 0))) goto fail;
        skip = res;
    }
    if (memcmp(skip->shape, y->shape, sizeof y->shape)) {
        vp_error("resenc (device): the skip does not match the block's output");
        goto fail;
    }
    if (m->be->add(m->be, y, skip, y) || m->be->leaky_relu(m->be, y, m->d.cfg.slope, y)) goto fail;
    vp_cu_act_free(c, &pooled), vp_cu_act_free(c, &res);
    return y;
fail:
    vp_cu_act_free(c, &pooled), vp_cu_act_free(c, &res), vp_cu_act_free(c, &y);
    return NULL;
}

// encoder stage s of the residual encoder on x: a new activation (vp_resenc_stage)
static vp_tensor *res_stage(const vp_cuda_unet *m, int s, const vp_tensor *x)
{
    vp_tensor *cur = NULL;
    for (int j = 0; j < m->d.cfg.n_conv[s]; j++) {
        vp_tensor *y = res_block(m, &m->d.res[s][j], j ? cur : x);
        vp_cu_act_free(ctx_of(m->be), &cur);
        if (!y) return NULL;
        cur = y;
    }
    return cur;
}

extern "C" int vp_cuda_unet_forward(const vp_cuda_unet *m, const vp_tensor *x, vp_tensor *y)
{
    const vp_unet_cfg *cf = &m->d.cfg;
    const vp_unet *u = &m->d;
    vp_cuda_ctx *c = ctx_of(m->be);
    const int S = cf->n_stages;
    int div[3];
    char sh[96];
    vp_unet_divisor(cf, div);
    if (!x || x->device != c->dev + 1 || !y || y->device != c->dev + 1)
        return vp_error("unet (device): input and output must be tensors on device %d", c->dev);
    if (x->ndim != 5 || x->shape[1] != cf->in_ch || x->shape[2] % div[0] || x->shape[3] % div[1] || x->shape[4] % div[2])
        return vp_error("unet (device): input %s: needs %d channels and spatial sizes multiples of (%d,%d,%d)",
                        vp_tensor_shape_str(x, sh, sizeof sh), cf->in_ch, div[0], div[1], div[2]);
    int64_t want[5] = {x->shape[0], cf->n_classes, x->shape[2], x->shape[3], x->shape[4]};
    vp_tensor ly = vp_cu_logical(y);
    if (vp_nn_check_out("unet (device)", &ly, want)) return -1;
    vp_tensor *skips[VP_UNET_MAXSTAGE] = {0}, *cur = NULL, *stem = NULL, *up = NULL;
    int rc = -1;
    if (cf->resenc && !(stem = block_fwd(m, &u->stem, x, 1))) goto out;
    for (int s = 0; s < S; s++) {
        vp_tensor *in = s ? skips[s - 1] : (vp_tensor *)x;
        if (cf->resenc) {
            skips[s] = res_stage(m, s, s ? in : stem);
            if (!s) vp_cu_act_free(c, &stem);
            if (!skips[s]) goto out;
            continue;
        }
        if (blocks_fwd(m, u->enc[s], cf->n_conv[s], &in, 0)) goto out;
        skips[s] = in;
    }
    cur = skips[S - 1];
    skips[S - 1] = NULL;
    for (int d = 0; d < S - 1; d++) {
        const int skip = S - 2 - d;
        vp_conv3d_params p = {{cf->stride[skip + 1][0], cf->stride[skip + 1][1], cf->stride[skip + 1][2]}, {0, 0, 0}, {0, 0, 0}};
        int64_t us[5], cs[5];
        vp_tensor lc = vp_cu_logical(cur);
        if (vp_nn_conv_transpose3d_shape(&lc, u->tw[d], u->tb[d], &p, us)) goto out;
        if (!(up = vp_cu_act_new(c, us, m->layout)) || m->be->conv_transpose3d(m->be, cur, u->tw[d], u->tb[d], &p, up)) goto out;
        vp_cu_act_free(c, &cur);
        memcpy(cs, us, sizeof cs);
        cs[1] = us[1] + skips[skip]->shape[1];
        const vp_tensor *pair[2] = {up, skips[skip]};
        if (!(cur = vp_cu_act_new(c, cs, m->layout)) || m->be->concat(m->be, pair, 2, cur)) goto out;
        vp_cu_act_free(c, &up), vp_cu_act_free(c, &skips[skip]);
        if (blocks_fwd(m, u->dec[d], cf->n_conv_dec[d], &cur, 1)) goto out;
    }
    {
        const vp_conv3d_params p1 = {{1, 1, 1}, {0, 0, 0}, {0, 0, 0}};
        rc = m->be->conv3d(m->be, cur, u->seg_w, u->seg_b, &p1, y);
    }
out:
    vp_cu_act_free(c, &cur), vp_cu_act_free(c, &up), vp_cu_act_free(c, &stem);
    for (int s = 0; s < S; s++) vp_cu_act_free(c, &skips[s]);
    return rc;
}
