/* infer-ressegnet - segment each case with a SegResNet (MONAI) by sliding-window inference. */
#include "cli.h"
#include "endpoint.h"
#include "filter.h"
#include "filter_prefetch.h"
#include "frame.h"
#include "nn_infer_cuda.h"
#include "nn_meta.h"
#include "nn_preprocess.h"
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
static const char *backend = "cpu";
static long sw_batch = 1;
static int no_preprocess = 0;
static int aggregate = 0; /* band, f32, f16 */
static int prefetch = 0;  /* on, off */

static const char *const blends[] = {"gaussian", "constant", NULL};
static const char *const pads[] = {"constant", "replicate", NULL};
static const char *const aggregates[] = {"band", "f32", "f16", NULL};
static const char *const onoff[] = {"on", "off", NULL};

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
    {0, "no-preprocess", NULL, VP_OPT_FLAG, &no_preprocess, "the image is already on the model's spacing and intensity scale: use it as it is", 0, 0, NULL},
    {0, "aggregate", "MODE", VP_OPT_CHOICE, &aggregate, "band (default: bounded memory, same result), f32 (whole volume, as MONAI) or f16 (cuda: an f16 band)", 0, 0, aggregates},
    {0, "backend", "NAME", VP_OPT_STR, &backend, "nn backend: cpu (default), ref (slow reference), cuda, cuda:N or cuda:N:MATH (MATH f32, tf32, f16, bf16; exit 4 without a GPU)", 0, 0, NULL},
    {0, "sw-batch", "N", VP_OPT_INT, &sw_batch, "cuda: windows per forward pass (sw_batch_size, 1..64, default 1; same result); the CPU runs one at a time", 1, 64, NULL},
    {0, "prefetch", "on|off", VP_OPT_CHOICE, &prefetch, "cuda: read and preprocess the next case while this one runs on the device (default on; same output); the CPU reads one case at a time", 0, 0, onoff},
    {0, NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
};

static const struct vp_cmd cmd = {
    "infer-ressegnet", "segment each case with a SegResNet by MONAI-style sliding-window inference",
    "[options] -m MODEL",
    "Preprocessing, from the model's metadata (docs/MODELS.md), as MONAI Label's segmentation app\n"
    "does, unless --no-preprocess: the image (any dtype, one channel per network input) is resampled\n"
    "to voxpipe.spacing (MONAI Spacingd: bilinear, border padding, first voxel centre kept), then\n"
    "intensity-normalised as voxpipe.norm says (ScaleIntensityRange a_min..a_max -> b_min..b_max with\n"
    "clip; or ct, zscore, none). The label is computed on that grid and resampled back nearest onto\n"
    "the input grid (order 0 on the affine map, as MONAI's SpatialResample/Invertd with mode 0), so\n"
    "'label' has exactly the input's dims and affine; --prob is resampled back linearly per class.\n"
    "Keys missing from the metadata skip their step. Models: tools/convert_monai.py.\n"
    "\n"
    "Inference is monai.inferers.sliding_window_inference with sw_batch_size 1: windows of --roi\n"
    "voxels in the NIfTI voxel order (x, y, z) of the volume, scan interval int(roi * (1 - overlap)),\n"
    "window starts and order as MONAI's dense_patch_slices, Gaussian importance map with sigma\n"
    "0.125 * roi (clamped below at 1e-3), logits averaged with those weights. An axis shorter than\n"
    "the window is padded to it as MONAI does: constant 0 by default (MONAI's default padding_mode),\n"
    "or replicate. The network's input must be divisible by 2^(levels-1) in every axis: choose --roi\n"
    "accordingly (MONAI fails the same way).\n"
    "\n"
    "Memory: by default (--aggregate band) only a band of roi-x rows of the logits is held (classes x\n"
    "roi_x x ny x nz floats); each row is averaged, argmaxed and dropped once no later window\n"
    "touches it. The sums are the same, in the same order, as MONAI's full-size buffer, so the output\n"
    "is bit for bit that of --aggregate f32 (all classes in f32 at full size, as MONAI does).\n"
    "\n"
    "Output: the argmax over classes as 'label' (u8, u16 above 256 classes; the first class wins\n"
    "exact ties) on the input grid with the input's affine, and with --prob the softmax as 'prob'\n"
    "(f16, nx x ny x nz x classes). Meta 'labels' gets the model's voxpipe.labels names (for vol-info\n"
    "and dcm-store). Other volumes and meta pass through. A case whose image has NaN voxels (after\n"
    "preprocessing), a wrong channel count or is missing is an error (exit 3).\n"
    "\n"
    "GPU (--backend cuda, cuda:N, cuda:N:MATH; plain cuda takes its math from VP_CUDA_MATH): the\n"
    "preprocessed case is uploaded once and everything else runs on the device: windows cut there,\n"
    "the device-resident SegResNet (weights uploaded once; NDHWC activations for tf32/f16/bf16 math,\n"
    "NCDHW for f32; VP_CUDA_LAYOUT=ncdhw|ndhwc overrides), --sw-batch windows per pass, the weighted\n"
    "sum in a band of roi-x rows on the device (f32, the CPU's sums, for --aggregate band and f32\n"
    "alike; --aggregate f16 halves it, labels may then differ where classes nearly tie) and\n"
    "the argmax there; only the labels come back (with --prob the averaged logits come back one\n"
    "x row at a time, K x ny x nz floats, for the softmax on the host). With f32 math the labels\n"
    "are the CPU backend's up to the convolutions' rounding (cuDNN). Models with upsample_mode deconv\n"
    "run their ConvTranspose3d on the device too. A case that does not fit in device memory (image\n"
    "and labels plus the network's activations; VP_CUDA_MEM_LIMIT_MIB=N pretends the device has N\n"
    "MiB) takes the tiled path: it stays on the host and slabs of roi-x rows are uploaded as the\n"
    "windows need them, labels come back band by band -- the same labels, slower; -v says so. Out\n"
    "of device memory even for one batch of windows, no GPU, or a failing CUDA/cuDNN call: a message\n"
    "naming it on stderr and exit 4, nothing written. With --prefetch on (the default for cuda) a\n"
    "reader thread reads the next case, preprocesses it and stages it in pinned host memory while\n"
    "the device computes this one (at most one case ahead), and when this case and the next both\n"
    "fit the device's memory (the estimate above) its upload starts at once on a second CUDA\n"
    "stream, overlapping this case's compute (-v says which cases were uploaded ahead, and why\n"
    "not; VP_CUDA_TRACE=1 prints the device times of each copy and compute); the output is the\n"
    "same as with --prefetch off, and an error in the next case is reported after this case is\n"
    "written, with the same exit code. VP_CUDA_GRAPHS=1 replays the window batches' forward pass\n"
    "from a CUDA graph (captured at the second batch of a shape; the same output; off by default\n"
    "until measured on a GPU: tests/gpu/check_graphs.sh); a capture that fails falls back, -v says so.",
    opts, 0, 0,
};

struct ctx {
    vp_segresnet *m;      /* the CPU model (NULL when the device runs it) */
    vp_infer_cuda *ic;    /* the device path (NULL on the CPU backends) */
    vp_segresnet_cfg cfg; /* the model's configuration */
    const vp_nn_backend *be;
    vp_sw_params sw;
    vp_nn_meta meta;
    int pin; /* --prefetch on the cuda path: cases read ahead, inputs in pinned memory */
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

/* Where the final rows go: label (and prob) on the network's grid, x fastest. */
struct sink {
    vp_vol *lab, *prob;
    float *l;
};

/* One final row x = d of the logits, (K, ny, nz) with z fastest: argmax (and softmax). */
static int emit_row(void *ectx, int64_t d, int64_t K, const float *row)
{
    struct sink *s = ectx;
    const int64_t nx = (int64_t)s->lab->dims[0], ny = (int64_t)s->lab->dims[1], nz = (int64_t)s->lab->dims[2];
    const int64_t V = nx * ny * nz, P = ny * nz;
    if (!s->l) s->l = vp_malloc((size_t)K * sizeof(float));
    if (s->lab->dtype == VP_U8 && K > 256) return vp_error("internal: %lld classes in a u8 label", (long long)K);
    for (int64_t yi = 0; yi < ny; yi++)
        for (int64_t zi = 0; zi < nz; zi++) {
            int64_t t = yi * nz + zi, o = (zi * ny + yi) * nx + d;
            int best = 0;
            for (int64_t k = 0; k < K; k++) {
                s->l[k] = row[k * P + t];
                if (s->l[k] > s->l[best]) best = (int)k;
            }
            if (s->lab->dtype == VP_U16) ((uint16_t *)s->lab->data)[o] = (uint16_t)best;
            else ((uint8_t *)s->lab->data)[o] = (uint8_t)best;
            if (s->prob) {
                double sum = 0;
                for (int64_t k = 0; k < K; k++) sum += exp((double)s->l[k] - s->l[best]);
                for (int64_t k = 0; k < K; k++)
                    ((uint16_t *)s->prob->data)[k * V + o] = vp_float_to_half((float)(exp((double)s->l[k] - s->l[best]) / sum));
            }
        }
    return 0;
}

/* One case between its CPU part (checks, preprocessing, the network's input tensor, the output
 * volumes; on the reader thread with --prefetch on) and its inference. */
struct job {
    vp_tensor *x;             /* the network's input (NULL once staged) */
    vp_infer_cuda_input *in;  /* --prefetch on cuda: x staged (pinned, maybe uploading already) */
    vp_nn_prep prep;
    struct sink s;
};

static void job_free(void *vj)
{
    struct job *j = vj;
    if (!j) return;
    vp_infer_cuda_input_free(&j->in);
    vp_tensor_free(&j->x);
    vp_vol_free(&j->s.lab), vp_vol_free(&j->s.prob);
    free(j->s.l);
    free(j);
}

/* The CPU part of a case: 0 and *out, or an exit code after vp_error(). */
static int prep_case(vp_case *cs, void *vctx, void **out)
{
    struct ctx *c = vctx;
    vp_vol *v = vp_case_vol(cs, vol_name);
    const vp_segresnet_cfg *cfg = &c->cfg;
    char ctxs[VP_MAX_ID + 300];
    *out = NULL;
    snprintf(ctxs, sizeof ctxs, "case '%s': volume '%s'", cs->id, vol_name);
    if (!v) return vp_error("case '%s': no volume '%s'", cs->id, vol_name), VP_ERR_DATA;
    if ((int64_t)v->dims[3] != cfg->in_channels)
        return vp_error("case '%s': volume '%s' has %llu channel(s); the model takes %d", cs->id, vol_name,
                        (unsigned long long)v->dims[3], cfg->in_channels), VP_ERR_DATA;
    struct job *j = vp_calloc(1, sizeof *j);
    vp_vol *pv = NULL;
    if (!no_preprocess) {
        if (v->dims[3] != 1) {
            free(j);
            return vp_error("%s: preprocessing takes one channel (give --no-preprocess for a prepared image)", ctxs), VP_ERR_DATA;
        }
        if (!(pv = vp_nn_preprocess(v, &c->meta, VP_NN_STYLE_MONAI, &j->prep, ctxs))) return free(j), VP_ERR_DATA;
    }
    const vp_vol *iv = pv ? pv : v;
    uint64_t nans;
    j->x = vp_vol_to_tensor(iv, &nans);
    if (nans) {
        vp_vol_free(&pv);
        job_free(j);
        return vp_error("case '%s': volume '%s' has %llu NaN voxel(s); replace them first (e.g. normalize)", cs->id,
                        vol_name, (unsigned long long)nans), VP_ERR_DATA;
    }
    vp_debug("case '%s': network input %llu x %llu x %llu", cs->id, (unsigned long long)iv->dims[0],
             (unsigned long long)iv->dims[1], (unsigned long long)iv->dims[2]);
    if (c->pin && !(j->in = vp_infer_cuda_stage(c->ic, &j->x, &c->sw, cs->id))) { /* pinned, and uploading when it fits */
        vp_vol_free(&pv);
        job_free(j);
        return vp_error("case '%s': cannot stage the input for %s", cs->id, c->be->name), vp_cuda_exit_code(VP_ERR_RUNTIME);
    }
    const int K = cfg->out_channels;
    uint64_t dims[4] = {iv->dims[0], iv->dims[1], iv->dims[2], 1};
    j->s.lab = vp_vol_new(dims, K > 256 ? VP_U16 : VP_U8, iv->affine);
    if (want_prob) {
        uint64_t pd[4] = {iv->dims[0], iv->dims[1], iv->dims[2], (uint64_t)K};
        j->s.prob = vp_vol_new(pd, VP_F16, iv->affine);
        j->s.prob->has_channels = 1;
    }
    vp_vol_free(&pv);
    *out = j;
    return 0;
}

/* The inference of a prepared case and its outputs added to it: 0 or an exit code. */
static int run_case(vp_case *cs, void *vctx, void *vj)
{
    struct ctx *c = vctx;
    struct job *j = vj;
    struct sink *sp = &j->s;
    const vp_tensor *x = j->x; /* NULL when staged */
    const int K = c->cfg.out_channels;
    char ctxs[VP_MAX_ID + 300];
    snprintf(ctxs, sizeof ctxs, "case '%s': volume '%s'", cs->id, vol_name);
    int rc;
    if (c->ic) { /* --prob: the softmax of each final row as it comes back (the labels are the device's) */
        rc = j->in ? vp_infer_cuda_run_staged(c->ic, j->in, &c->sw, sp->lab, want_prob ? emit_row : NULL, sp)
                   : vp_infer_cuda_run(c->ic, x, &c->sw, sp->lab, want_prob ? emit_row : NULL, sp);
        vp_debug("case '%s': %s: %s, device memory peak %.1f MiB", cs->id, c->be->name,
                 vp_infer_cuda_tiled(c->ic) ? "tiled path (the case did not fit on the device)" : "whole volume on the device",
                 vp_infer_cuda_peak_bytes(c->ic) / 1048576.0);
    } else if (aggregate == 0) rc = vp_sliding_window_rows(x, &c->sw, predict, c, NULL, emit_row, sp);
    else {
        vp_tensor *y = NULL;
        rc = vp_sliding_window(x, &c->sw, predict, c, NULL, &y);
        const int64_t D = x->shape[2], HW = x->shape[3] * x->shape[4];
        float *row = rc ? NULL : vp_malloc(sizeof(float) * (size_t)(K * HW));
        for (int64_t d = 0; !rc && d < D; d++) {
            for (int64_t k = 0; k < K; k++) memcpy(row + k * HW, y->data + (k * D + d) * HW, sizeof(float) * (size_t)HW);
            rc = emit_row(sp, d, K, row);
        }
        free(row);
        vp_tensor_free(&y);
    }
    vp_tensor_free(&j->x); /* the input is not needed any more (a staged one is released by the run) */
    if (rc) {
        vp_error("case '%s': inference failed (backend %s)", cs->id, c->be->name);
        return vp_infer_cuda_is_cuda(c->be) ? vp_cuda_exit_code(VP_ERR_RUNTIME) : VP_ERR_RUNTIME;
    }
    if (!no_preprocess && j->prep.resampled) {
        vp_vol *lb = vp_nn_labels_back(sp->lab, &j->prep, ctxs), *pb = sp->prob ? vp_nn_linear_back(sp->prob, &j->prep, ctxs) : NULL;
        vp_vol_free(&sp->lab), vp_vol_free(&sp->prob);
        if (!lb || (want_prob && !pb)) {
            vp_vol_free(&lb), vp_vol_free(&pb);
            return VP_ERR_RUNTIME;
        }
        sp->lab = lb, sp->prob = pb;
    }
    vp_case_add_vol(cs, label_name, sp->lab), sp->lab = NULL;
    if (sp->prob) vp_case_add_vol(cs, "prob", sp->prob), sp->prob = NULL;
    vp_nn_meta_set_case_labels(cs, &c->meta);
    return 0;
}

/* One case at a time (vp_filter_run's step): the CPU part, then the inference. */
static int step(vp_case *cs, void *vctx)
{
    void *j = NULL;
    int rc = prep_case(cs, vctx, &j);
    if (!rc) rc = run_case(cs, vctx, j);
    job_free(j);
    return rc;
}

int main(int argc, char **argv)
{
    vp_cli_parse(&cmd, argc, argv);
    if (!model_path) vp_usage_error("--model is required");
    if (strcmp(backend, "ref") && strcmp(backend, "cpu") && strncmp(backend, "cuda", 4))
        vp_usage_error("--backend: '%s' is not cpu, ref, cuda, cuda:N or cuda:N:MATH", backend);
    const int on_cuda = !strncmp(backend, "cuda", 4);
    if (aggregate == 2 && !on_cuda) vp_usage_error("--aggregate f16 is for the cuda backend (the CPU aggregates in f32)");
    struct ctx c = {0};
    if (roi_arg && parse_roi(roi_arg, c.sw.roi)) vp_usage_error("--roi: '%s' is not X,Y,Z of positive sizes", roi_arg);
    vp_safetensors *st = vp_st_open(model_path);
    if (!st) return VP_ERR_DATA;
    c.m = vp_segresnet_load(st, model_path);
    if (!c.m) {
        vp_st_close(&st);
        return VP_ERR_DATA;
    }
    c.cfg = *vp_segresnet_config(c.m);
    if (!roi_arg) {
        const char *r = vp_st_meta(st, "voxpipe.roi");
        if (!r) vp_die(VP_ERR_USAGE, "%s: no voxpipe.roi in the metadata: give --roi", model_path);
        if (parse_roi(r, c.sw.roi)) vp_die(VP_ERR_DATA, "%s: metadata voxpipe.roi '%s' is not X,Y,Z", model_path, r);
    }
    if (vp_nn_meta_read(st, model_path, &c.meta)) {
        vp_st_close(&st);
        vp_segresnet_free(&c.m);
        return VP_ERR_DATA;
    }
    char desc[256];
    vp_nn_meta_describe(&c.meta, desc, sizeof desc);
    vp_debug("%s: %s%s", model_path, desc, no_preprocess ? " (not applied: --no-preprocess)" : "");
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
    c.be = vp_nn_backend_get(backend);
    if (!c.be) vp_die(VP_ERR_DEVICE, "backend %s is not available (see the message above)", backend);
    if (on_cuda) { /* everything on the device; the CPU model is not needed */
        if (!(c.ic = vp_infer_cuda_open(c.be, st, model_path, (int)sw_batch, aggregate == 2)))
            vp_die(vp_cuda_exit_code(VP_ERR_DATA), "%s: cannot run the model on %s (see the message above)", model_path, c.be->name);
        vp_segresnet_free(&c.m);
        vp_debug("%s: device-resident SegResNet%s, %s activations, %s aggregation, %ld window(s) per pass", c.be->name, c.cfg.deconv ? " (deconv)" : "",
                 vp_infer_cuda_layout(c.be) == VP_CUDA_NDHWC ? "NDHWC" : "NCDHW", aggregate == 2 ? "f16" : "f32", sw_batch);
    }
    vp_st_close(&st);
    /* --prefetch (cuda): the next case is read, preprocessed and staged in pinned memory on a reader
     * thread while this one runs on the device; the output is the same */
    c.pin = c.ic && prefetch == 0;
    if (c.pin)
        vp_debug("--prefetch on: the next case is read and preprocessed (into pinned memory) while this one runs, and uploaded on "
                 "the copy stream when both fit the device");
    int rc = c.pin ? vp_filter_run_prefetch(cmd.name, in_spec, out_spec, prep_case, run_case, job_free, &c)
                   : vp_filter_run(cmd.name, in_spec, out_spec, step, &c);
    vp_infer_cuda_free(&c.ic);
    vp_segresnet_free(&c.m);
    vp_nn_meta_free(&c.meta);
    return rc;
}
