/* nn_infer_cuda_unet.c - nnU-Net inference on a CUDA device (see nn_infer_cuda_unet.h): the device
 * models of every fold (lib/cuda/nn_cuda_unet.cu) run by the device sliding window
 * (lib/cuda/nn_cuda_unet_sw.cu). Plain C on the headers' interface, so it builds (and fails
 * cleanly) without CUDA too: the device functions then are the stubs at the end. */
#include "nn_infer_cuda_unet.h"
#include "nn_infer_cuda.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct vp_infer_cuda_unet {
    const vp_nn_backend *be;
    vp_cuda_unet **m;
    int n, batch, layout, ordinal;
    int tiled; /* the last case took the tiled path */
    vp_unet_cfg cfg;
};

vp_infer_cuda_unet *vp_infer_cuda_unet_open(const vp_nn_backend *be, vp_unet *const *models, int n, int batch)
{
    if (!vp_infer_cuda_is_cuda(be)) return vp_error("unet (device): backend %s is not a CUDA backend", be ? be->name : "(none)"), NULL;
    if (batch < 1 || batch > 64) return vp_error("unet (device): tile batch %d: must be 1..64", batch), NULL;
    if (n < 1) return vp_error("unet (device): no model"), NULL;
    const vp_unet_cfg *c = &models[0]->cfg;
    for (int i = 1; i < n; i++)
        if (memcmp(models[i]->cfg.patch, c->patch, sizeof c->patch) || models[i]->cfg.n_classes != c->n_classes ||
            models[i]->cfg.in_ch != c->in_ch)
            return vp_error("unet (device): model %d differs from model 0 in patch size, classes or channels", i), NULL;
    vp_infer_cuda_unet *ic = vp_calloc(1, sizeof *ic);
    ic->be = be, ic->n = n, ic->batch = batch, ic->layout = vp_infer_cuda_layout(be), ic->cfg = *c;
    if (sscanf(be->name, "cuda:%d", &ic->ordinal) != 1) ic->ordinal = 0;
    ic->m = vp_calloc((size_t)n, sizeof *ic->m);
    for (int i = 0; i < n; i++)
        if (!(ic->m[i] = vp_cuda_unet_upload(be, models[i], ic->layout))) {
            vp_infer_cuda_unet_free(&ic);
            return NULL;
        }
    return ic;
}

const char *vp_infer_cuda_unet_describe(const vp_infer_cuda_unet *ic, char *buf, size_t len)
{
    snprintf(buf, len, "device-resident U-Net (%s, %d fold%s), %s activations, %s math, %d tile%s per pass",
             ic->cfg.resenc ? "ResidualEncoderUNet" : "PlainConvUNet", ic->n, ic->n == 1 ? "" : "s",
             ic->layout == VP_CUDA_NDHWC ? "NDHWC" : "NCDHW", vp_cuda_math_name(ic->be), ic->batch, ic->batch == 1 ? "" : "s");
    return buf;
}

int vp_infer_cuda_unet_run(vp_infer_cuda_unet *ic, const vp_tensor *img, const vp_nnunet_opts *o, int32_t *labels, void *logits)
{
    return vp_cuda_nnunet_predict(ic->m, ic->n, &ic->cfg, img, o, ic->batch, VP_CUDA_SW_AUTO, &ic->tiled, labels, logits);
}

int vp_infer_cuda_unet_tiled(const vp_infer_cuda_unet *ic)
{
    return ic ? ic->tiled : 0;
}

size_t vp_infer_cuda_unet_peak_bytes(const vp_infer_cuda_unet *ic)
{
    return ic ? vp_cuda_peak_bytes(ic->ordinal, 1) : 0;
}

void vp_infer_cuda_unet_free(vp_infer_cuda_unet **icp)
{
    vp_infer_cuda_unet *ic = icp ? *icp : NULL;
    if (!ic) return;
    for (int i = 0; i < ic->n && ic->m; i++) vp_cuda_unet_free(&ic->m[i]);
    free(ic->m);
    free(ic);
    *icp = NULL;
}

#ifndef VP_HAVE_CUDA
/* the device functions in a build without CUDA (the .cu files are not compiled) */
static const char *why = "built without CUDA (nvcc and cuDNN were not found when voxpipe was built)";

vp_cuda_unet *vp_cuda_unet_upload(const vp_nn_backend *be, const vp_unet *m, int layout)
{
    vp_error("unet (device): %s", why);
    return NULL;
}

int vp_cuda_unet_forward(const vp_cuda_unet *m, const vp_tensor *x, vp_tensor *y) { return vp_error("unet (device): %s", why); }
void vp_cuda_unet_free(vp_cuda_unet **m) { (void)m; }
const vp_nn_backend *vp_cuda_unet_backend(const vp_cuda_unet *m) { return NULL; }
int vp_cuda_unet_layout(const vp_cuda_unet *m) { return VP_CUDA_NCDHW; }

int vp_cuda_nnunet_predict(vp_cuda_unet *const *ms, int n, const vp_unet_cfg *cfg, const vp_tensor *img, const vp_nnunet_opts *o,
                           int batch, int mode, int *took_tiled, int32_t *labels, void *logits)
{
    return vp_error("cuda nnunet prediction: %s", why);
}
#endif
