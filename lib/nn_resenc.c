/* nn_resenc.c - ResidualEncoderUNet's stem and residual encoder stages (see nn_resenc.h). */
#include "nn_resenc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

int vp_resenc_load(const vp_safetensors *st, vp_unet *m)
{
    const vp_unet_cfg *c = &m->cfg;
    const int one[3] = {1, 1, 1};
    char pre[200];
    if (vp_unet_load_block(st, "encoder.stem.convs.0", c->conv_bias, c->in_ch, c->features[0], c->kernel[0], one, &m->stem))
        return -1;
    int ci = c->features[0];
    for (int s = 0; s < c->n_stages; s++) {
        const int co = c->features[s];
        m->res[s] = vp_calloc((size_t)c->n_conv[s], sizeof(vp_unet_resblock));
        for (int j = 0; j < c->n_conv[s]; j++) {
            vp_unet_resblock *b = &m->res[s][j];
            const int *st_s = j ? one : c->stride[s], in = j ? co : ci;
            snprintf(pre, sizeof pre, "encoder.stages.%d.blocks.%d.conv1", s, j);
            if (vp_unet_load_block(st, pre, c->conv_bias, in, co, c->kernel[s], st_s, &b->c1)) return -1;
            snprintf(pre, sizeof pre, "encoder.stages.%d.blocks.%d.conv2", s, j);
            if (vp_unet_load_block(st, pre, c->conv_bias, co, co, c->kernel[s], one, &b->c2)) return -1;
            const int strided = st_s[0] != 1 || st_s[1] != 1 || st_s[2] != 1;
            memcpy(b->pool, st_s, sizeof b->pool);
            if (in != co) { /* skip.0 is the pool when strided: the conv is skip.1 */
                snprintf(pre, sizeof pre, "encoder.stages.%d.blocks.%d.skip.%d", s, j, strided);
                if (vp_unet_load_block(st, pre, 0, in, co, one, one, &b->proj)) return -1;
            }
        }
        ci = co;
    }
    return 0;
}

static void free_conv(vp_unet_conv *b)
{
    vp_tensor_free(&b->w), vp_tensor_free(&b->b), vp_tensor_free(&b->gamma), vp_tensor_free(&b->beta);
}

void vp_resenc_free(vp_unet *m)
{
    free_conv(&m->stem);
    for (int s = 0; s < VP_UNET_MAXSTAGE; s++) {
        if (!m->res[s]) continue;
        for (int j = 0; j < m->cfg.n_conv[s]; j++)
            free_conv(&m->res[s][j].c1), free_conv(&m->res[s][j].c2), free_conv(&m->res[s][j].proj);
        free(m->res[s]);
        m->res[s] = NULL;
    }
}

vp_tensor *vp_resenc_stem(const vp_unet *m, const vp_nn_backend *be, const vp_tensor *x)
{
    return vp_unet_block_fwd(m, be, &m->stem, x, 1);
}

int vp_avgpool3d(const vp_tensor *x, const int k[3], vp_tensor *y)
{
    char sh[64];
    if (x->ndim != 5 || y->ndim != 5 || !vp_tensor_is_contiguous(x) || !vp_tensor_is_contiguous(y))
        return vp_error("avgpool3d: tensors must be contiguous (N, C, D, H, W)");
    const int64_t N = x->shape[0], C = x->shape[1], D = x->shape[2], H = x->shape[3], W = x->shape[4];
    for (int a = 0; a < 3; a++)
        if (k[a] < 1 || x->shape[2 + a] % k[a] || y->shape[2 + a] != x->shape[2 + a] / k[a])
            return vp_error("avgpool3d: input %s, output does not match kernel (%d,%d,%d)",
                            vp_tensor_shape_str(x, sh, sizeof sh), k[0], k[1], k[2]);
    if (y->shape[0] != N || y->shape[1] != C) return vp_error("avgpool3d: batch or channels differ");
    const int64_t OD = D / k[0], OH = H / k[1], OW = W / k[2];
    const float div = (float)(k[0] * k[1] * k[2]);
    float *o = y->data;
    for (int64_t nc = 0; nc < N * C; nc++) {
        const float *in = x->data + nc * D * H * W;
        for (int64_t d = 0; d < OD; d++)
            for (int64_t h = 0; h < OH; h++)
                for (int64_t w = 0; w < OW; w++) {
                    float sum = 0;
                    for (int a = 0; a < k[0]; a++)
                        for (int b = 0; b < k[1]; b++)
                            for (int e = 0; e < k[2]; e++)
                                sum += in[((d * k[0] + a) * H + h * k[1] + b) * W + w * k[2] + e];
                    *o++ = sum / div;
                }
    }
    return 0;
}

/* One BasicBlockD: lrelu(norm(conv2(lrelu(norm(conv1(x))))) + skip(x)); a new tensor or NULL. */
static vp_tensor *block(const vp_unet *m, const vp_nn_backend *be, const vp_unet_resblock *b, const vp_tensor *x)
{
    vp_tensor *pooled = NULL, *res = NULL, *y = NULL;
    vp_tensor *h = vp_unet_block_fwd(m, be, &b->c1, x, 1);
    if (!h) return NULL;
    y = vp_unet_block_fwd(m, be, &b->c2, h, 0);
    vp_tensor_free(&h);
    if (!y) return NULL;
    const vp_tensor *skip = x;
    if (b->pool[0] != 1 || b->pool[1] != 1 || b->pool[2] != 1) {
        pooled = vp_tensor_new5(x->shape[0], x->shape[1], x->shape[2] / b->pool[0], x->shape[3] / b->pool[1],
                                x->shape[4] / b->pool[2]);
        if (vp_avgpool3d(x, b->pool, pooled)) goto fail;
        skip = pooled;
    }
    if (b->proj.w) {
        if (!(res = vp_unet_block_fwd(m, be, &b->proj, skip, 0))) goto fail;
        skip = res;
    }
    char s1[64], s2[64];
    for (int a = 0; a < 5; a++)
        if (skip->shape[a] != y->shape[a]) {
            vp_error("resenc: skip %s does not match the block's output %s", vp_tensor_shape_str(skip, s1, sizeof s1),
                     vp_tensor_shape_str(y, s2, sizeof s2));
            goto fail;
        }
    if (be->add(be, y, skip, y) || be->leaky_relu(be, y, m->cfg.slope, y)) goto fail;
    vp_tensor_free(&pooled), vp_tensor_free(&res);
    return y;
fail:
    vp_tensor_free(&pooled), vp_tensor_free(&res), vp_tensor_free(&y);
    return NULL;
}

vp_tensor *vp_resenc_stage(const vp_unet *m, const vp_nn_backend *be, int s, const vp_tensor *x)
{
    vp_tensor *cur = NULL;
    for (int j = 0; j < m->cfg.n_conv[s]; j++) {
        vp_tensor *y = block(m, be, &m->res[s][j], j ? cur : x);
        vp_tensor_free(&cur);
        if (!y) return NULL;
        cur = y;
    }
    return cur;
}
