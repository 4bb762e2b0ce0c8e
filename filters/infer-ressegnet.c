/* infer-ressegnet - segment each case with a SegResNet (MONAI) by sliding-window inference. */
#include "cli.h"
#include "endpoint.h"
#include "filter.h"
#include "frame.h"
#include "nn_segresnet.h"
#include "nn_sliding.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *in_spec = "-";
static const char *out_spec = "-";
static const char *model_path = NULL;
static const char *roi_arg = NULL;
static double overlap = 0.4;
static double sigma_scale = 0.125;
static int blend = 0;   /* gaussian, constant */
static int padding = 0; /* constant, replicate */
static double cval = 0;
static const char *vol_name = "image";
static const char *label_name = "label";
static int want_prob = 0;
static int backend = 1; /* ref, cpu, cuda */

static const char *const blends[] = {"gaussian", "constant", NULL};
static const char *const pads[] = {"constant", "replicate", NULL};
static const char *const backends[] = {"ref", "cpu", "cuda", NULL};

static const struct vp_opt opts[] = {
    {'i', "in", "ENDPOINT", VP_OPT_STR, &in_spec, "where to read the stream: -, FILE, @tcp://ADDR:PORT, >tcp://HOST:PORT", 0, 0, NULL},
    {'o', "out", "ENDPOINT", VP_OPT_STR, &out_spec, "where to write the stream: -, FILE, @tcp://ADDR:PORT, >tcp://HOST:PORT", 0, 0, NULL},
    {'m', "model", "FILE", VP_OPT_STR, &model_path, "SegResNet model (.safetensors with voxpipe.* metadata); required", 0, 0, NULL},
    {0, "roi", "X,Y,Z", VP_OPT_STR, &roi_arg, "window size in voxels (default: the model's voxpipe.roi)", 0, 0, NULL},
    {0, "overlap", "F", VP_OPT_DOUBLE, &overlap, "overlap of neighbouring windows, [0, 0.99] (default 0.4)", 0, 0.99, NULL},
    {0, "blend", "MODE", VP_OPT_CHOICE, &blend, "window weighting: gaussian (default) or constant", 0, 0, blends},
    {0, "sigma", "F", VP_OPT_DOUBLE, &sigma_scale, "gaussian sigma as a fraction of the window (default 0.125)", 0.001, 10, NULL},
    {0, "padding", "MODE", VP_OPT_CHOICE, &padding, "an image smaller than the window: constant (default) or replicate", 0, 0, pads},
    {0, "cval", "V", VP_OPT_DOUBLE, &cval, "value of constant padding (default 0)", 0, 0, NULL},
    {0, "vol", "NAME", VP_OPT_STR, &vol_name, "the image volume (default: image)", 0, 0, NULL},
    {0, "label", "NAME", VP_OPT_STR, &label_name, "name of the label volume written (default: label)", 0, 0, NULL},
    {0, "prob", NULL, VP_OPT_FLAG, &want_prob, "also write 'prob': softmax probabilities, f16, one channel per class", 0, 0, NULL},
    {0, "backend", "NAME", VP_OPT_CHOICE, &backend, "nn backend: cpu (default), ref (slow reference) or cuda (GPU 0; exit 4 when none)", 0, 0, backends},
    {0, NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
};

static const struct vp_cmd cmd = {
    "infer-ressegnet", "segment each case with a SegResNet by MONAI-style sliding-window inference",
    "[options] -m MODEL",
    "The image volume (any dtype, one channel per network input channel) must already be\n"
    "preprocessed as the model was trained (resampled and intensity-normalised, e.g. with resample\n"
    "and normalize --mode monailabel): this program applies no preprocessing yet.\n"
    "\n"
    "Inference is monai.inferers.sliding_window_inference with sw_batch_size 1: windows of --roi\n"
    "voxels in the NIfTI voxel order (x, y, z) of the volume, scan interval int(roi * (1 - overlap)),\n"
    "window starts and order as MONAI's dense_patch_slices, Gaussian importance map with sigma\n"
    "0.125 * roi (clamped below at 1e-3), logits averaged with those weights. An axis shorter than\n"
    "the window is padded to it as MONAI does: constant 0 by default (MONAI's default padding_mode),\n"
    "or replicate. The network's input must be divisible by 2^(levels-1) in every axis: choose --roi\n"
    "accordingly (MONAI fails the same way).\n"
    "\n"
    "Output: the argmax over classes as 'label' (u8, u16 above 256 classes; the first class wins\n"
    "exact ties) on the input grid with the input's affine, and with --prob the softmax as 'prob'\n"
    "(f16, nx x ny x nz x classes). Other volumes and meta pass through. A case whose image has NaN\n"
    "voxels, a wrong channel count or is missing is an error (exit 3). Logits are aggregated in f32\n"
    "for all classes at once (4 bytes x classes x voxels), as MONAI does.",
    opts, 0, 0,
};

struct ctx {
    vp_segresnet *m;
    const vp_nn_backend *be;
    vp_sw_params sw;
    int roi_set;
};

static int predict(void *ctx, const vp_tensor *x, vp_tensor **y)
{
    const struct ctx *c = ctx;
    return vp_segresnet_forward(c->m, c->be, x, y);
}

static int parse_roi(const char *s, int roi[3])
{
    char tail;
    if (sscanf(s, "%d,%d,%d%c", &roi[0], &roi[1], &roi[2], &tail) != 3) return -1;
    for (int a = 0; a < 3; a++)
        if (roi[a] < 1 || roi[a] > 4096) return -1;
    return 0;
}

static int step(vp_case *cs, void *vctx)
{
    struct ctx *c = vctx;
    vp_vol *v = vp_case_vol(cs, vol_name);
    const vp_segresnet_cfg *cfg = vp_segresnet_config(c->m);
    if (!v) return vp_error("case '%s': no volume '%s'", cs->id, vol_name), VP_ERR_DATA;
    if ((int64_t)v->dims[3] != cfg->in_channels)
        return vp_error("case '%s': volume '%s' has %llu channel(s); the model takes %d", cs->id, vol_name,
                        (unsigned long long)v->dims[3], cfg->in_channels), VP_ERR_DATA;
    uint64_t nans;
    vp_tensor *x = vp_vol_to_tensor(v, &nans);
    if (nans) {
        vp_tensor_free(&x);
        return vp_error("case '%s': volume '%s' has %llu NaN voxel(s); replace them first (e.g. normalize)", cs->id,
                        vol_name, (unsigned long long)nans), VP_ERR_DATA;
    }
    vp_tensor *y = NULL;
    int rc = vp_sliding_window(x, &c->sw, predict, c, NULL, &y);
    vp_tensor_free(&x);
    if (rc) return vp_error("case '%s': inference failed", cs->id), VP_ERR_RUNTIME;
    int64_t K = y->shape[1], nx = (int64_t)v->dims[0], ny = (int64_t)v->dims[1], nz = (int64_t)v->dims[2];
    int64_t V = nx * ny * nz;
    uint64_t dims[4] = {v->dims[0], v->dims[1], v->dims[2], 1};
    vp_vol *lab = vp_vol_new(dims, K > 256 ? VP_U16 : VP_U8, v->affine);
    vp_vol *prob = NULL;
    if (want_prob) {
        uint64_t pd[4] = {v->dims[0], v->dims[1], v->dims[2], (uint64_t)K};
        prob = vp_vol_new(pd, VP_F16, v->affine);
        prob->has_channels = 1;
    }
    float *l = vp_malloc((size_t)K * sizeof(float));
    /* y is (1, K, nx, ny, nz), z fastest; volumes are x fastest */
    for (int64_t xi = 0; xi < nx; xi++)
        for (int64_t yi = 0; yi < ny; yi++)
            for (int64_t zi = 0; zi < nz; zi++) {
                int64_t t = (xi * ny + yi) * nz + zi, o = (zi * ny + yi) * nx + xi;
                int best = 0;
                for (int64_t k = 0; k < K; k++) {
                    l[k] = y->data[k * V + t];
                    if (l[k] > l[best]) best = (int)k;
                }
                if (K > 256) ((uint16_t *)lab->data)[o] = (uint16_t)best;
                else ((uint8_t *)lab->data)[o] = (uint8_t)best;
                if (prob) {
                    double s = 0;
                    for (int64_t k = 0; k < K; k++) s += exp((double)l[k] - l[best]);
                    for (int64_t k = 0; k < K; k++)
                        ((uint16_t *)prob->data)[k * V + o] = vp_float_to_half((float)(exp((double)l[k] - l[best]) / s));
                }
            }
    free(l);
    vp_tensor_free(&y);
    vp_case_add_vol(cs, label_name, lab);
    if (prob) vp_case_add_vol(cs, "prob", prob);
    return 0;
}

int main(int argc, char **argv)
{
    vp_cli_parse(&cmd, argc, argv);
    if (!model_path) vp_usage_error("--model is required");
    struct ctx c = {0};
    if (roi_arg && parse_roi(roi_arg, c.sw.roi)) vp_usage_error("--roi: '%s' is not X,Y,Z of positive sizes", roi_arg);
    vp_safetensors *st = vp_st_open(model_path);
    if (!st) return VP_ERR_DATA;
    c.m = vp_segresnet_load(st, model_path);
    if (!c.m) {
        vp_st_close(&st);
        return VP_ERR_DATA;
    }
    if (!roi_arg) {
        const char *r = vp_st_meta(st, "voxpipe.roi");
        if (!r) vp_die(VP_ERR_USAGE, "%s: no voxpipe.roi in the metadata: give --roi", model_path);
        if (parse_roi(r, c.sw.roi)) vp_die(VP_ERR_DATA, "%s: metadata voxpipe.roi '%s' is not X,Y,Z", model_path, r);
    }
    vp_st_close(&st);
    int div = vp_segresnet_divisor(c.m);
    for (int a = 0; a < 3; a++)
        if (c.sw.roi[a] % div)
            vp_die(VP_ERR_USAGE, "roi %d,%d,%d: every size must be divisible by %d for this network", c.sw.roi[0],
                   c.sw.roi[1], c.sw.roi[2], div);
    c.sw.overlap = overlap;
    c.sw.gaussian = blend == 0;
    c.sw.sigma_scale = sigma_scale;
    c.sw.pad_mode = padding == 0 ? VP_SW_PAD_CONSTANT : VP_SW_PAD_REPLICATE;
    c.sw.cval = (float)cval;
    c.be = vp_nn_backend_get(backends[backend]);
    if (!c.be) vp_die(VP_ERR_DEVICE, "backend %s is not available (see the message above)", backends[backend]);
    int rc = vp_filter_run(cmd.name, in_spec, out_spec, step, &c);
    vp_segresnet_free(&c.m);
    return rc;
}
