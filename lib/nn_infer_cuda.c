/* nn_infer_cuda.c - whole-volume SegResNet inference on a CUDA device (see nn_infer_cuda.h): the
 * device-resident network of lib/cuda/nn_cuda_segresnet.cu as the predictor of the device sliding
 * window of lib/cuda/nn_cuda_sliding.cu, and the labels put into the output volume. Plain C on
 * nn_cuda.h's interface, so it builds (and fails cleanly) without CUDA too. */
#include "nn_infer_cuda.h"
#include "nn_segresnet.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct vp_infer_cuda {
    const vp_nn_backend *be;
    vp_cuda_segresnet *m;
    int ordinal, K, in_channels, init_filters;
    vp_cuda_sw_opts o;
    int tiled; /* the last case took the tiled path */
};

int vp_infer_cuda_is_cuda(const vp_nn_backend *be)
{
    return be && be->name && !strncmp(be->name, "cuda", 4);
}

int vp_infer_cuda_layout(const vp_nn_backend *be)
{
    const char *e = getenv("VP_CUDA_LAYOUT");
    if (e && !strcmp(e, "ncdhw")) return VP_CUDA_NCDHW;
    if (e && !strcmp(e, "ndhwc")) return VP_CUDA_NDHWC;
    return strcmp(vp_cuda_math_name(be), "f32") ? VP_CUDA_NDHWC : VP_CUDA_NCDHW;
}

vp_infer_cuda *vp_infer_cuda_open(const vp_nn_backend *be, const vp_safetensors *st, const char *where, int batch, int acc_f16)
{
    if (!vp_infer_cuda_is_cuda(be)) return vp_error("%s: backend %s is not a CUDA backend", where, be ? be->name : "(none)"), NULL;
    if (batch < 1 || batch > 64) return vp_error("%s: window batch %d: must be 1..64", where, batch), NULL;
    vp_segresnet *h = vp_segresnet_load(st, where); /* the configuration (and every check of the file) */
    if (!h) return NULL;
    const vp_segresnet_cfg cfg = *vp_segresnet_config(h);
    vp_segresnet_free(&h);
    vp_infer_cuda *ic = vp_calloc(1, sizeof *ic);
    ic->be = be, ic->K = cfg.out_channels, ic->in_channels = cfg.in_channels, ic->init_filters = cfg.init_filters;
    if (sscanf(be->name, "cuda:%d", &ic->ordinal) != 1) ic->ordinal = 0;
    ic->o.batch = batch, ic->o.acc_f16 = acc_f16 != 0, ic->o.layout = vp_infer_cuda_layout(be);
    ic->o.tiled = VP_CUDA_SW_AUTO, ic->o.took_tiled = &ic->tiled;
    if (!(ic->m = vp_cuda_segresnet_load(be, st, where, ic->o.layout))) {
        free(ic);
        return NULL;
    }
    return ic;
}

static int predict(void *ctx, const vp_nn_backend *be, const vp_tensor *x, vp_tensor *y)
{
    (void)be;
    return vp_cuda_segresnet_forward(ctx, x, y);
}

int vp_infer_cuda_run(vp_infer_cuda *ic, const vp_tensor *x, const vp_sw_params *p, vp_vol *lab, vp_sw_emit_fn emit, void *ectx)
{
    char s[96];
    if (!x || x->ndim != 5 || x->shape[0] != 1 || x->shape[1] != ic->in_channels)
        return vp_error("cuda inference: input %s: expected (1, %d, X, Y, Z)", x ? vp_tensor_shape_str(x, s, sizeof s) : "(none)",
                        ic->in_channels);
    const int64_t nx = x->shape[2], ny = x->shape[3], nz = x->shape[4], S = nx * ny * nz;
    if (!lab || (int64_t)lab->dims[0] != nx || (int64_t)lab->dims[1] != ny || (int64_t)lab->dims[2] != nz || lab->dims[3] != 1 ||
        (lab->dtype != VP_U8 && lab->dtype != VP_U16) || (lab->dtype == VP_U8 && ic->K > 256))
        return vp_error("cuda inference: the label volume does not fit the input (or %d classes in its dtype)", ic->K);
    /* what one batch of windows needs beyond the sliding window's buffers, for the choice of the
     * tiled path: the network's live activations (at most about 6 full-resolution tensors of
     * init_filters channels, the coarser levels included, and the logits) and 64 MiB of cuDNN
     * workspace and converted operands -- an estimate on the safe side */
    const int64_t rv = (int64_t)p->roi[0] * p->roi[1] * p->roi[2];
    ic->o.reserve = (size_t)(ic->o.batch * rv * 4 * (6 * (int64_t)ic->init_filters + ic->K)) + ((size_t)64 << 20);
    int32_t *l = malloc((size_t)S * sizeof *l);
    if (!l) return vp_error("cuda inference: no host memory for %lld labels", (long long)S);
    ic->o.emit = emit, ic->o.ectx = ectx;
    const int rc = vp_cuda_sliding_window(ic->be, x, p, ic->K, &ic->o, predict, ic->m, l, NULL);
    ic->o.emit = NULL, ic->o.ectx = NULL;
    if (rc) {
        free(l);
        return -1;
    }
    /* the network's order (x, y, z), z fastest -> the volume's, x fastest */
    for (int64_t xi = 0; xi < nx; xi++)
        for (int64_t yi = 0; yi < ny; yi++)
            for (int64_t zi = 0; zi < nz; zi++) {
                const int32_t v = l[(xi * ny + yi) * nz + zi];
                const int64_t o = (zi * ny + yi) * nx + xi;
                if (lab->dtype == VP_U16) ((uint16_t *)lab->data)[o] = (uint16_t)v;
                else ((uint8_t *)lab->data)[o] = (uint8_t)v;
            }
    free(l);
    return 0;
}

int vp_infer_cuda_tiled(const vp_infer_cuda *ic)
{
    return ic ? ic->tiled : 0;
}

size_t vp_infer_cuda_peak_bytes(const vp_infer_cuda *ic)
{
    return ic ? vp_cuda_peak_bytes(ic->ordinal, 1) : 0;
}

void vp_infer_cuda_free(vp_infer_cuda **ic)
{
    if (!ic || !*ic) return;
    vp_cuda_segresnet_free(&(*ic)->m);
    free(*ic);
    *ic = NULL;
}
