/* infer-unet - segment with an nnU-Net v2 PlainConvUNet (sliding window as nnU-Net's predictor). */
#include "cli.h"
#include "filter.h"
#include "filter_prefetch.h"
#include "frame.h"
#include "nn_infer_cuda.h"
#include "nn_infer_cuda_unet.h"
#include "nn_meta.h"
#include "nn_predict_nnunet.h"
#include "nn_preprocess.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *in_spec = "-", *out_spec = "-", *vol_name = "image", *out_name = "label", *backend = "cpu";
static struct vp_strlist models;
static int tta = 0, agg = 0, no_preprocess = 0, whole = 0;
static int prefetch = 0; /* on, off */
static const char *const onoff[] = {"on", "off", NULL};
static double step = 0.5;
static long sw_batch = 1;
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
    {0, "whole-logits", NULL, VP_OPT_FLAG, &whole, "hold the whole grid's logits before the argmax (more memory, same labels)", 0, 0, NULL},
    {0, "no-preprocess", NULL, VP_OPT_FLAG, &no_preprocess, "the image is already normalised and on the model's spacing (f32/f16)", 0, 0, NULL},
    {0, "backend", "NAME", VP_OPT_STR, &backend, "nn backend: cpu (default), ref (slow reference), cuda, cuda:N or cuda:N:MATH (MATH f32, tf32, f16, bf16; exit 4 without a GPU)", 0, 0, NULL},
    {0, "sw-batch", "N", VP_OPT_INT, &sw_batch, "cuda: tiles per forward pass (1..64, default 1; same result); the CPU runs one at a time", 1, 64, NULL},
    {0, "prefetch", "on|off", VP_OPT_CHOICE, &prefetch, "cuda: read and preprocess the next case while this one runs on the device (default on; same output); the CPU reads one case at a time", 0, 0, onoff},
    {0, NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
};

static const struct vp_cmd cmd = {
    "infer-unet", "segment volumes with nnU-Net v2 PlainConvUNet / ResidualEncoderUNet models",
    "-m MODEL [-m MODEL ...] [options]",
    "Preprocessing, as nnU-Net v2's DefaultPreprocessor, from the first model's metadata (written by\n"
    "tools/convert_nnunet.py from plans.json; docs/MODELS.md), unless --no-preprocess: the image (any\n"
    "dtype, e.g. CT in HU as i16) is normalised (CTNormalization: clip to the plans' percentile_00_5\n"
    "..percentile_99_5, minus mean, over std; ZScoreNormalization; NoNormalization), then resampled to\n"
    "the plans' spacing (shape round(n * spacing / target), skimage resize grid, cubic B-spline with\n"
    "edge extension; an anisotropic axis (max/min spacing > 3) separately with order 0, as nnU-Net).\n"
    "The volume's axes (x, y, z) are the model's (w, h, d): nnU-Net's SimpleITK order.\n"
    "\n"
    "Prediction is nnU-Net's sliding window: zero padding to the patch size, tiles at --step of the\n"
    "patch, Gaussian importance weighting (sigma patch/8), optional mirroring (--tta), logits\n"
    "aggregated in f16 as nnU-Net does (--agg f32 for f32, twice the memory) and, with several -m\n"
    "(folds), averaged. Back on the input grid as nnU-Net exports: each class's logits resampled\n"
    "linearly (order 1; order 0 on a separate anisotropic axis) one class at a time, then the argmax\n"
    "(first of equal maxima) as the u8 (u16 above 256 classes) volume --out-vol with exactly the\n"
    "input's dims and affine. Meta 'labels' gets the model's label names. Everything else passes\n"
    "through. Model files: tools/convert_nnunet.py (keys in lib/nn_unet.h, docs/MODELS.md); both\n"
    "PlainConvUNet and ResidualEncoderUNet (nnU-Net's ResEnc M/L/XL presets) run.\n"
    "\n"
    "Memory: tiles run d-row by d-row and only a band of patch-depth rows of the logits is summed\n"
    "(per fold: classes x patch depth x the padded H x W, 2 bytes in f16); each finished row is\n"
    "divided, averaged over the folds and, when the network grid is the input grid (no resampling),\n"
    "turned into labels at once: peak memory follows the band, not the volume. When the image was\n"
    "resampled, the rows are collected into the whole model grid's logits (classes x voxels, in the\n"
    "aggregation dtype) for nnU-Net's per-class resampling back; --whole-logits does that always.\n"
    "The values are bit for bit those of nnU-Net's whole-volume buffers either way.\n"
    "\n"
    "GPU (--backend cuda, cuda:N, cuda:N:MATH; plain cuda takes its math from VP_CUDA_MATH): the\n"
    "network runs on the device (weights uploaded once, conv + InstanceNorm/LeakyReLU fused, NCDHW\n"
    "for f32, NDHWC for tf32/f16/bf16), and so does the sliding window above (tiles, --tta, folds,\n"
    "f16/f32 bands, the argmax): the case goes up once and only the labels come back (the logits\n"
    "only when the image was resampled or with --whole-logits). f32 gives the CPU's labels. When the\n"
    "case does not fit (image and labels plus an estimate of one tile batch's needs exceed the free\n"
    "device memory, or the MiB of VP_CUDA_MEM_LIMIT_MIB), the tiled path runs: the case stays on\n"
    "the host, the slab of patch-depth rows the next tiles read is uploaded, the labels come back\n"
    "band by band; labels and logits are the same bits (-v says which path a case took). Out of\n"
    "device memory even so (one batch of tiles does not fit), or no GPU: exit 4, nothing written.\n"
    "With --prefetch on (the default for cuda) a reader thread reads and preprocesses the next case\n"
    "while this one runs on the device: the output is the same as with --prefetch off, and an error\n"
    "in the next case is reported after this case is written."
    "\n"
    "Not reproduced: nnU-Net's crop to the non-zero box (CT has no zero border in practice).\n"
    "With --no-preprocess the image must be f32 or f16 (exit 3 otherwise). NaN voxels are refused\n"
    "(exit 3); an image smaller than the patch is zero-padded (after normalisation), as nnU-Net does.",
    opts, 0, 0,
};

struct ctx {
    vp_unet **m;
    int n;
    const vp_nn_backend *be;
    vp_infer_cuda_unet *ic; /* the device path (NULL on the CPU backends) */
    vp_nn_meta meta;
};

/* Labels on the network grid (= the input grid) filled row by row from the predictor. */
struct rows {
    vp_vol *lab;
    int K, half;
    int64_t hw;  /* voxels per row (x fastest, then y) */
    float *best; /* one row's best score so far */
};

/* The argmax of one final row (first of equal maxima, as vp_nn_argmax_back). */
static int emit_labels(void *ectx, int64_t d, const void *row)
{
    struct rows *rw = ectx;
    for (int k = 0; k < rw->K; k++)
        for (int64_t i = 0; i < rw->hw; i++) {
            const int64_t j = k * rw->hw + i, v = d * rw->hw + i;
            const float s = rw->half ? vp_half_to_float(((const uint16_t *)row)[j]) : ((const float *)row)[j];
            if (k == 0 || s > rw->best[i]) {
                rw->best[i] = s;
                if (rw->K > 256) ((uint16_t *)rw->lab->data)[v] = (uint16_t)k;
                else ((uint8_t *)rw->lab->data)[v] = (uint8_t)k;
            }
        }
    return 0;
}

/* The device path: labels straight from the device on the network grid, or the logits back for
 * nnU-Net's resampling; 0 with *out set, or an exit code (4 after a device failure). */
static int predict_cuda(struct ctx *x, const vp_case *c, const vp_tensor *t, const vp_nnunet_opts *o, const vp_nn_prep *prep,
                        const char *where, vp_vol **out)
{
    const vp_unet_cfg *cfg = &x->m[0]->cfg;
    const int K = cfg->n_classes;
    const size_t S = (size_t)vp_tensor_numel(t);
    const int direct = !prep->resampled && !whole;
    int32_t *lab = direct ? malloc(S * sizeof *lab) : NULL;
    void *lg = direct ? NULL : malloc(S * (size_t)K * (o->half ? 2 : 4));
    if (!lab && !lg) return vp_error("case '%s': no host memory for the prediction", c->id), VP_ERR_RUNTIME;
    if (vp_infer_cuda_unet_run(x->ic, t, o, lab, lg)) {
        free(lab), free(lg);
        return vp_error("case '%s': prediction on %s failed", c->id, x->be->name), vp_cuda_exit_code(VP_ERR_RUNTIME);
    }
    vp_debug("case '%s': %s: %s, device memory peak %.1f MiB", c->id, x->be->name,
             vp_infer_cuda_unet_tiled(x->ic) ? "tiled path (the case did not fit on the device)" : "whole volume on the device",
             vp_infer_cuda_unet_peak_bytes(x->ic) / 1048576.0);
    if (direct) { /* the network grid is the input grid, (d, h, w) = (z, y, x): the volume's order */
        const uint64_t d1[4] = {prep->in.dims[0], prep->in.dims[1], prep->in.dims[2], 1};
        *out = vp_vol_new(d1, K > 256 ? VP_U16 : VP_U8, prep->in.affine);
        for (size_t i = 0; i < S; i++)
            if (K > 256) ((uint16_t *)(*out)->data)[i] = (uint16_t)lab[i];
            else ((uint8_t *)(*out)->data)[i] = (uint8_t)lab[i];
        free(lab);
        return 0;
    }
    *out = vp_nn_argmax_back(lg, o->half, K, prep, where);
    free(lg);
    return *out ? 0 : VP_ERR_RUNTIME;
}

/* One case between its CPU part (checks, preprocessing, the network's input tensor; on the reader
 * thread with --prefetch on) and its prediction. */
struct job {
    vp_tensor *t;
    vp_nn_prep prep;
    char where[VP_MAX_ID + 300];
};

static void job_free(void *vj)
{
    struct job *j = vj;
    if (!j) return;
    vp_tensor_free(&j->t);
    free(j);
}

/* The CPU part of a case: 0 and *out, or an exit code after vp_error(). */
static int prep_case(vp_case *c, void *vctx, void **jout)
{
    struct ctx *x = vctx;
    const vp_unet_cfg *cfg = &x->m[0]->cfg;
    vp_vol *v = vp_case_vol(c, vol_name);
    char where[VP_MAX_ID + 300];
    snprintf(where, sizeof where, "case '%s': volume '%s'", c->id, vol_name);
    *jout = NULL;
    if (!v) return vp_error("case '%s': no volume '%s'", c->id, vol_name), VP_ERR_DATA;
    if (no_preprocess && v->dtype != VP_F32 && v->dtype != VP_F16)
        return vp_error("%s: dtype %s, expected f32 or f16 (normalise first, or drop --no-preprocess)", where,
                        vp_dtype_name(v->dtype)), VP_ERR_DATA;
    if ((int)v->dims[3] != cfg->in_ch)
        return vp_error("%s: %llu channels, the model takes %d", where, (unsigned long long)v->dims[3], cfg->in_ch), VP_ERR_DATA;
    vp_nn_prep prep = {VP_NN_STYLE_NNUNET, 0, {{v->dims[0], v->dims[1], v->dims[2]}, {0}}, {{0}, {0}}, -1};
    memcpy(prep.in.affine, v->affine, sizeof prep.in.affine);
    prep.model = prep.in;
    vp_vol *pv = NULL;
    if (!no_preprocess) {
        if (v->dims[3] != 1) return vp_error("%s: preprocessing takes one channel", where), VP_ERR_DATA;
        if (!(pv = vp_nn_preprocess(v, &x->meta, VP_NN_STYLE_NNUNET, &prep, where))) return VP_ERR_DATA;
    }
    const vp_vol *iv = pv ? pv : v;
    const uint64_t nvox = vp_vol_nvox(iv);
    vp_tensor *t = vp_tensor_new5(1, (int64_t)iv->dims[3], (int64_t)iv->dims[2], (int64_t)iv->dims[1], (int64_t)iv->dims[0]);
    for (uint64_t i = 0; i < nvox; i++) {
        t->data[i] = iv->dtype == VP_F32 ? ((const float *)iv->data)[i] : (float)vp_vol_get(iv, i);
        if (isnan(t->data[i])) {
            const char *after = pv ? " of the preprocessed image (a NaN input voxel spreads in resampling)" : "";
            vp_tensor_free(&t);
            vp_vol_free(&pv);
            return vp_error("%s: NaN at voxel %llu%s", where, (unsigned long long)i, after), VP_ERR_DATA;
        }
    }
    vp_vol_free(&pv);
    vp_debug("%s: network grid %llu x %llu x %llu%s", where, (unsigned long long)prep.model.dims[0],
             (unsigned long long)prep.model.dims[1], (unsigned long long)prep.model.dims[2], prep.resampled ? " (resampled)" : "");
    struct job *j = vp_calloc(1, sizeof *j);
    j->t = t, j->prep = prep;
    memcpy(j->where, where, sizeof where);
    *jout = j;
    return 0;
}

/* The prediction of a prepared case (on the main thread): the label volume added to the case. */
static int run_case(vp_case *c, void *vctx, void *vj)
{
    struct ctx *x = vctx;
    struct job *j = vj;
    const vp_unet_cfg *cfg = &x->m[0]->cfg;
    const vp_nn_prep prep = j->prep;
    const char *where = j->where;
    vp_tensor *t = j->t;
    j->t = NULL;
    vp_nnunet_opts o = {step, tta, agg == 0};
    vp_vol *out = NULL;
    if (x->ic) {
        const int rc = predict_cuda(x, c, t, &o, &prep, where, &out);
        vp_tensor_free(&t);
        if (rc) return rc;
    } else if (!prep.resampled && !whole) { /* labels straight from each final row: bounded memory */
        const uint64_t d1[4] = {prep.in.dims[0], prep.in.dims[1], prep.in.dims[2], 1};
        struct rows rw = {vp_vol_new(d1, cfg->n_classes > 256 ? VP_U16 : VP_U8, prep.in.affine), cfg->n_classes, o.half,
                          (int64_t)(prep.in.dims[0] * prep.in.dims[1]), NULL};
        rw.best = vp_malloc(sizeof(float) * (size_t)rw.hw);
        int prc = vp_nnunet_predict_rows(x->m, x->n, x->be, t, &o, emit_labels, &rw);
        free(rw.best);
        vp_tensor_free(&t);
        if (prc) {
            vp_vol_free(&rw.lab);
            return vp_error("case '%s': prediction failed", c->id), VP_ERR_RUNTIME;
        }
        out = rw.lab;
    } else {
        vp_nnunet_result *r = vp_nnunet_predict(x->m, x->n, x->be, t, &o);
        vp_tensor_free(&t);
        if (!r) return vp_error("case '%s': prediction failed", c->id), VP_ERR_RUNTIME;
        out = vp_nn_argmax_back(r->half ? (const void *)r->h : (const void *)r->f, r->half, r->n_classes, &prep, where);
        vp_nnunet_result_free(&r);
        if (!out) return VP_ERR_RUNTIME;
    }
    vp_case_add_vol(c, out_name, out);
    vp_nn_meta_set_case_labels(c, &x->meta);
    return 0;
}

/* One case at a time (vp_filter_run's step): the CPU part, then the prediction. */
static int step_fn(vp_case *c, void *vctx)
{
    void *j = NULL;
    int rc = prep_case(c, vctx, &j);
    if (!rc) rc = run_case(c, vctx, j);
    job_free(j);
    return rc;
}

int main(int argc, char **argv)
{
    vp_cli_parse(&cmd, argc, argv);
    if (models.n < 1) vp_usage_error("give at least one -m MODEL");
    struct ctx x = {0};
    x.m = vp_calloc((size_t)models.n, sizeof(vp_unet *)), x.n = models.n, x.be = vp_nn_backend_get(backend);
    if (strcmp(backend, "ref") && strcmp(backend, "cpu") && strncmp(backend, "cuda", 4))
        vp_usage_error("--backend: '%s' is not cpu, ref, cuda, cuda:N or cuda:N:MATH", backend);
    if (!x.be) vp_die(VP_ERR_DEVICE, "backend %s is not available (see the message above)", backend);
    int rc = 0;
    for (int i = 0; i < models.n && !rc; i++)
        if (!(x.m[i] = vp_unet_load(models.v[i]))) rc = VP_ERR_DATA;
    if (!rc) {
        vp_safetensors *st = vp_st_open(models.v[0]);
        if (!st || vp_nn_meta_read(st, models.v[0], &x.meta)) rc = VP_ERR_DATA;
        vp_st_close(&st);
    }
    if (!rc) {
        char desc[256];
        vp_nn_meta_describe(&x.meta, desc, sizeof desc);
        vp_debug("%s: %s%s", models.v[0], desc, no_preprocess ? " (not applied: --no-preprocess)" : "");
    }
    if (!rc && vp_infer_cuda_is_cuda(x.be)) { /* everything on the device */
        char desc[256];
        if (!(x.ic = vp_infer_cuda_unet_open(x.be, x.m, x.n, (int)sw_batch)))
            vp_die(vp_cuda_exit_code(VP_ERR_DATA), "%s: cannot run the model on %s (see the message above)", models.v[0], x.be->name);
        vp_debug("%s: %s", x.be->name, vp_infer_cuda_unet_describe(x.ic, desc, sizeof desc));
    }
    /* --prefetch (cuda): the next case is read and preprocessed on a reader thread while this one
     * runs on the device; the output is the same */
    const int pf = x.ic && prefetch == 0;
    if (!rc && pf) vp_debug("--prefetch on: the next case is read and preprocessed while this one runs on the device");
    if (!rc)
        rc = pf ? vp_filter_run_prefetch(cmd.name, in_spec, out_spec, prep_case, run_case, job_free, &x)
                : vp_filter_run(cmd.name, in_spec, out_spec, step_fn, &x);
    vp_infer_cuda_unet_free(&x.ic);
    for (int i = 0; i < models.n; i++) vp_unet_free(&x.m[i]);
    free(x.m);
    vp_nn_meta_free(&x.meta);
    return rc;
}
