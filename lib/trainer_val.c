/* trainer_val.c - validation of a training run (see trainer_int.h, trainer.h):
 *
 *   window (--val-mode window): every held-out case whole, by the sliding window the inference
 *     program runs, so the Dice is the one infer-ressegnet / infer-unet give on the checkpoint:
 *     SegResNet: MONAI's sliding_window_inference (roi = --patch, overlap --val-overlap, Gaussian
 *     sigma 0.125, constant padding: infer-ressegnet's defaults); PlainConvUNet: nnU-Net's
 *     predict_sliding_window_return_logits (step 1 - --val-overlap, Gaussian, f16 aggregation, no
 *     mirroring: infer-unet's defaults) on the model written to a temporary file and loaded as
 *     infer-unet loads it. Argmax, Dice per case and class, then the mean over the cases that hold
 *     the class (classes absent from the reference are skipped, as MONAI's ignore_empty).
 *   patch (--val-mode patch): nnU-Net's online evaluation during training: --val-iters batches of
 *     patches drawn from the held-out cases as the training batches are (foreground oversampling
 *     included, a generator of its own seeded by --seed and the epoch, so training draws are not
 *     disturbed), argmax of the full-resolution output, true/false positives and false negatives
 *     per class summed over every batch, Dice = 2 TP / (2 TP + FP + FN) per class ("pseudo Dice").
 * The mean over classes 1..K-1 that could be scored decides best.safetensors.
 */
#include "trainer_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn_predict_nnunet.h"
#include "nn_sliding.h"
#include "util.h"

struct sw_ctx {
    vp_trainable *m;
    const vp_nn_backend *be;
    int32_t *pred; /* (D, H, W) argmax */
};

static int sw_predict(void *ctx, const vp_tensor *x, vp_tensor **y)
{
    const struct sw_ctx *c = ctx;
    return vp_trainable_forward(c->m, c->be, x, y);
}

/* One final row (K, H, W) of the aggregated logits: argmax (the first of equal maxima). */
static int sw_emit(void *ectx, int64_t d, int64_t K, const float *row, int64_t P)
{
    struct sw_ctx *c = ectx;
    for (int64_t i = 0; i < P; i++) {
        int best = 0;
        for (int64_t k = 1; k < K; k++)
            if (row[k * P + i] > row[best * P + i]) best = (int)k;
        c->pred[d * P + i] = best;
    }
    return 0;
}

struct row_sink {
    struct sw_ctx *c;
    int64_t plane;
};

static int sw_emit_row(void *ectx, int64_t d, int64_t K, const float *row)
{
    struct row_sink *s = ectx;
    return sw_emit(s->c, d, K, row, s->plane);
}

/* The PlainConvUNet as infer-unet has it: written to a temporary file and loaded back. */
static vp_unet *unet_snapshot(vp_trun *r)
{
    const char *tmp = getenv("TMPDIR");
    char path[4200];
    snprintf(path, sizeof path, "%s/voxpipe-val-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0) return vp_error("%s: cannot create a temporary file for validation", path), NULL;
    close(fd);
    vp_unet *u = NULL;
    if (!vp_trainable_save(r->m, path, 0, NULL, NULL)) u = vp_unet_load(path);
    unlink(path);
    return u;
}

/* Sliding-window prediction of the whole case t into *pred (network order, dims). 0 or -1. */
static int predict_case(vp_trun *r, vp_unet *u, const vp_tcase *t, int32_t **pred, int64_t dims[3], int64_t off[3])
{
    const int one[3] = {1, 1, 1};
    float *x = vp_tcase_tensor(t, r->axes, one, one, dims, off);
    int64_t shape[5] = {1, t->nc, dims[0], dims[1], dims[2]};
    vp_tensor xt = vp_tensor_view(x, 5, shape);
    *pred = vp_malloc((size_t)(dims[0] * dims[1] * dims[2]) * sizeof **pred);
    int rc;
    if (u) {
        vp_nnunet_opts o = {1.0 - r->cfg->val_overlap, 0, 1};
        vp_nnunet_result *res = vp_nnunet_predict(&u, 1, r->be, &xt, &o);
        rc = res ? 0 : -1;
        if (res) vp_nnunet_argmax(res, *pred);
        vp_nnunet_result_free(&res);
    } else {
        vp_sw_params p = {{r->cfg->patch[0], r->cfg->patch[1], r->cfg->patch[2]}, r->cfg->val_overlap, 1, 0.125,
                          VP_SW_PAD_CONSTANT, 0.0f};
        struct sw_ctx c = {r->m, r->be, *pred};
        struct row_sink s = {&c, dims[1] * dims[2]};
        rc = vp_sliding_window_rows(&xt, &p, sw_predict, &c, NULL, sw_emit_row, &s);
    }
    free(x);
    return rc;
}

/* Window mode: per-case Dice summed into dsum / counted in dn. 0, or -1 after vp_error(). */
static int validate_window(vp_trun *r, double *dsum, int *dn)
{
    const int K = r->classes;
    vp_unet *u = NULL;
    if (!strcmp(vp_trainable_arch(r->m), "unet") && !(u = unet_snapshot(r))) return -1;
    int64_t *cnt = vp_calloc(3 * (size_t)K, sizeof *cnt);
    int rc = 0;
    for (int i = 0; i < r->nval && !rc; i++) {
        const vp_tcase *t = r->val[i];
        int64_t dims[3], off[3];
        int32_t *pred = NULL;
        rc = predict_case(r, u, t, &pred, dims, off);
        if (!rc) {
            memset(cnt, 0, 3 * (size_t)K * sizeof *cnt);
            vp_tcase_overlap(t, r->axes, pred, dims, off, K, cnt, cnt + K, cnt + 2 * K);
            for (int k = 1; k < K; k++)
                if (cnt[2 * K + k]) { /* classes absent from the reference are not scored (MONAI ignore_empty) */
                    dsum[k] += 2.0 * (double)cnt[k] / (double)(cnt[K + k] + cnt[2 * K + k]);
                    dn[k]++;
                }
        }
        free(pred);
    }
    free(cnt);
    vp_unet_free(&u);
    return rc;
}

/* Patch mode: pseudo Dice per class over --val-iters batches into dsum (dn = 1 where scored). */
static int validate_patch(vp_trun *r, double *dsum, int *dn)
{
    const vp_trainer_cfg *c = r->cfg;
    const int K = r->classes, B = (int)c->batch;
    vp_tcache vk = {r->val, r->nval, r->nval, 0, 0, 0, 0}; /* a view: the sampler only reads */
    vp_sampler s = {{c->patch[0], c->patch[1], c->patch[2]}, B, c->fg_prob, r->axes};
    vp_rng g;
    vp_rng_seed(&g, c->seed ^ 0x76616c6964ull ^ ((uint64_t)r->epoch << 32));
    const int64_t pv = (int64_t)c->patch[0] * c->patch[1] * c->patch[2];
    float *x = vp_malloc((size_t)(B * r->in_ch * pv) * sizeof *x);
    int32_t *y = vp_malloc((size_t)(B * pv) * sizeof *y);
    int64_t shape[5] = {B, r->in_ch, c->patch[0], c->patch[1], c->patch[2]};
    vp_tensor xt = vp_tensor_view(x, 5, shape);
    int64_t *tp = vp_calloc(3 * (size_t)K, sizeof *tp), *fp = tp + K, *fn = fp + K;
    int rc = 0;
    for (long it = 0; it < c->val_iters && !rc; it++) {
        vp_sampler_draw(&s, &vk, &g, 0, B, x, y);
        vp_tensor *out = NULL;
        rc = vp_trainable_forward(r->m, r->be, &xt, &out);
        if (rc) break;
        for (int64_t b = 0; b < B; b++)
            for (int64_t v = 0; v < pv; v++) {
                const float *z = out->data + b * K * pv + v;
                int best = 0;
                for (int k = 1; k < K; k++)
                    if (z[k * pv] > z[best * pv]) best = k;
                const int gt = y[b * pv + v];
                if (best == gt) tp[gt]++;
                else fp[best]++, fn[gt]++;
            }
        vp_tensor_free(&out);
    }
    for (int k = 1; k < K; k++)
        if (tp[k] + fp[k] + fn[k]) dsum[k] = 2.0 * (double)tp[k] / (double)(2 * tp[k] + fp[k] + fn[k]), dn[k] = 1;
    free(tp), free(x), free(y);
    return rc;
}

double vp_trun_validate(vp_trun *r)
{
    const int K = r->classes;
    double *dsum = vp_calloc((size_t)K, sizeof *dsum);
    int *dn = vp_calloc((size_t)K, sizeof *dn);
    double t0 = vp_trun_now();
    const int patch = r->cfg->val_mode == VP_VAL_PATCH;
    if (patch ? validate_patch(r, dsum, dn) : validate_window(r, dsum, dn)) {
        free(dsum), free(dn);
        return -2;
    }
    double mean = 0;
    int nm = 0;
    size_t cap = 64 + 32 * (size_t)K, len = 0;
    char *js = vp_malloc(cap);
    js[len++] = '{';
    for (int k = 1; k < K; k++)
        if (dn[k]) {
            double d = dsum[k] / dn[k];
            mean += d, nm++;
            len += (size_t)snprintf(js + len, cap - len, "%s\"%d\":%.6f", nm > 1 ? "," : "", k, d);
        }
    js[len++] = '}', js[len] = 0;
    mean = nm ? mean / nm : NAN;
    const char *mode = patch ? "patch" : "window";
    if (isnan(mean))
        vp_trun_log(r, "{\"type\":\"val\",\"epoch\":%ld,\"mode\":\"%s\",\"cases\":%d,\"dice\":%s,\"mean_dice\":null}", r->epoch,
                    mode, r->nval, js);
    else
        vp_trun_log(r, "{\"type\":\"val\",\"epoch\":%ld,\"mode\":\"%s\",\"cases\":%d,\"dice\":%s,\"mean_dice\":%.6f,\"time_s\":%.3f}",
                    r->epoch, mode, r->nval, js, mean, vp_trun_now() - t0);
    if (!r->bar) vp_debug("epoch %ld: validation (%s) mean Dice %.4f over %d case(s)", r->epoch, mode, mean, r->nval);
    else fprintf(stderr, "\n%s: epoch %ld: validation (%s) mean Dice %.4f\n", r->cfg->prog, r->epoch + 1, mode, mean);
    free(js), free(dsum), free(dn);
    return mean;
}
