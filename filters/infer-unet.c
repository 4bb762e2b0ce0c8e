/* infer-unet - segment with an nnU-Net v2 PlainConvUNet (sliding window as nnU-Net's predictor). */
#include "cli.h"
#include "filter.h"
#include "frame.h"
#include "nn_predict_nnunet.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *in_spec = "-", *out_spec = "-", *vol_name = "image", *out_name = "label", *backend = "cpu";
static struct vp_strlist models;
static int tta = 0, agg = 0;
static double step = 0.5;
static const char *const agg_choices[] = {"f16", "f32", NULL};

static const struct vp_opt opts[] = {
    {'i', "in", "ENDPOINT", VP_OPT_STR, &in_spec, "where to read the stream (default -)", 0, 0, NULL},
    {'o', "out", "ENDPOINT", VP_OPT_STR, &out_spec, "where to write the stream (default -)", 0, 0, NULL},
    {'m', "model", "FILE", VP_OPT_LIST, &models, "model file (.safetensors); repeat for a fold ensemble", 0, 0, NULL},
    {0, "vol", "NAME", VP_OPT_STR, &vol_name, "input volume (default: image)", 0, 0, NULL},
    {0, "out-vol", "NAME", VP_OPT_STR, &out_name, "output label volume (default: label)", 0, 0, NULL},
    {0, "tta", NULL, VP_OPT_FLAG, &tta, "mirroring test-time augmentation over the model's mirror axes", 0, 0, NULL},
    {0, "step", "F", VP_OPT_DOUBLE, &step, "tile step as a fraction of the patch (default 0.5)", 0.01, 1, NULL},
    {0, "agg", "DTYPE", VP_OPT_CHOICE, &agg, "aggregation dtype: f16 (nnU-Net's, default) or f32", 0, 0, agg_choices},
    {0, "backend", "NAME", VP_OPT_STR, &backend, "nn backend: cpu (default) or ref", 0, 0, NULL},
    {0, NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
};

static const struct vp_cmd cmd = {
    "infer-unet", "segment volumes with nnU-Net v2 PlainConvUNet models",
    "-m MODEL [-m MODEL ...] [options]",
    "Each case's --vol volume (f32 or f16, channels = the model's input channels) is predicted with\n"
    "nnU-Net's sliding window: zero padding to the patch size, tiles at --step of the patch, Gaussian\n"
    "importance weighting (sigma patch/8), optional mirroring (--tta), logits aggregated in f16 as\n"
    "nnU-Net does (--agg f32 for f32, twice the memory) and, with several -m (folds), averaged. The\n"
    "argmax becomes the u8 (u16 above 256 classes) volume --out-vol on the input grid; everything else\n"
    "passes through. Model files: tools/convert_nnunet.py (keys in lib/nn_unet.h).\n"
    "\n"
    "Not done here yet: the input must already be preprocessed as the model expects: resampled to its\n"
    "spacing (__metadata__ spacing), intensity-normalised (normalization, intensity_properties), with\n"
    "the model's axes (d, h, w) = the volume's (z, y, x). NaN voxels are refused (exit 3); an image\n"
    "smaller than the patch is zero-padded, as nnU-Net does.",
    opts, 0, 0,
};

struct ctx {
    vp_unet **m;
    int n;
    const vp_nn_backend *be;
};

static int step_fn(vp_case *c, void *vctx)
{
    struct ctx *x = vctx;
    const vp_unet_cfg *cfg = &x->m[0]->cfg;
    vp_vol *v = vp_case_vol(c, vol_name);
    if (!v) return vp_error("case '%s': no volume '%s'", c->id, vol_name), VP_ERR_DATA;
    if (v->dtype != VP_F32 && v->dtype != VP_F16)
        return vp_error("case '%s': volume '%s': dtype %s, expected f32 or f16 (normalise first)", c->id, vol_name,
                        vp_dtype_name(v->dtype)), VP_ERR_DATA;
    if ((int)v->dims[3] != cfg->in_ch)
        return vp_error("case '%s': volume '%s': %llu channels, the model takes %d", c->id, vol_name,
                        (unsigned long long)v->dims[3], cfg->in_ch), VP_ERR_DATA;
    const uint64_t nvox = vp_vol_nvox(v), n3 = v->dims[0] * v->dims[1] * v->dims[2];
    vp_tensor *t = vp_tensor_new5(1, (int64_t)v->dims[3], (int64_t)v->dims[2], (int64_t)v->dims[1], (int64_t)v->dims[0]);
    for (uint64_t i = 0; i < nvox; i++) {
        t->data[i] = (float)vp_vol_get(v, i);
        if (isnan(t->data[i])) {
            vp_tensor_free(&t);
            return vp_error("case '%s': volume '%s': NaN at voxel %llu", c->id, vol_name, (unsigned long long)i), VP_ERR_DATA;
        }
    }
    vp_nnunet_opts o = {step, tta, agg == 0};
    vp_nnunet_result *r = vp_nnunet_predict(x->m, x->n, x->be, t, &o);
    vp_tensor_free(&t);
    if (!r) return vp_error("case '%s': prediction failed", c->id), VP_ERR_RUNTIME;
    int32_t *lab = vp_malloc(sizeof(int32_t) * n3);
    vp_nnunet_argmax(r, lab);
    vp_nnunet_result_free(&r);
    uint64_t dims[4] = {v->dims[0], v->dims[1], v->dims[2], 1};
    vp_vol *out = vp_vol_new(dims, cfg->n_classes > 256 ? VP_U16 : VP_U8, v->affine);
    for (uint64_t i = 0; i < n3; i++) {
        if (out->dtype == VP_U8) ((uint8_t *)out->data)[i] = (uint8_t)lab[i];
        else ((uint16_t *)out->data)[i] = (uint16_t)lab[i];
    }
    free(lab);
    vp_case_add_vol(c, out_name, out);
    return 0;
}

int main(int argc, char **argv)
{
    vp_cli_parse(&cmd, argc, argv);
    if (models.n < 1) vp_usage_error("give at least one -m MODEL");
    struct ctx x = {vp_calloc((size_t)models.n, sizeof(vp_unet *)), models.n, vp_nn_backend_get(backend)};
    if (!x.be) vp_usage_error("unknown backend '%s'", backend);
    int rc = 0;
    for (int i = 0; i < models.n && !rc; i++)
        if (!(x.m[i] = vp_unet_load(models.v[i]))) rc = VP_ERR_DATA;
    if (!rc) rc = vp_filter_run(cmd.name, in_spec, out_spec, step_fn, &x);
    for (int i = 0; i < models.n; i++) vp_unet_free(&x.m[i]);
    free(x.m);
    return rc;
}
