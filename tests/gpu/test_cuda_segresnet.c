/* test_cuda_segresnet.c - SegResNet on the GPU against MONAI's own outputs (the golden files of
 * tests/golden/segresnet, made by tests/scripts/make_golden_segresnet.py): the device-resident
 * forward (vp_cuda_segresnet_forward) in NCDHW and NDHWC and in each convolution math, the
 * drop-in path (vp_segresnet_forward on the CUDA backend with host tensors), and MONAI's sliding
 * window through vp_cuda_sliding_window with the device forward as the predictor (logits and
 * labels); the deconv model (upsample_mode deconv: ConvTranspose3d k2 s2 on the device) against
 * MONAI's forward of it (fwd_deconv) in f32 NCDHW and NDHWC and tf32. Run by
 * tests/gpu/check.sh on a machine with a GPU.
 *
 * Pass: f32 max abs difference to MONAI <= 1e-4 (the CPU backend's test tolerance); tf32, f16:
 * <= 1e-2 x max |MONAI|; bf16 (8-bit mantissa, its rounding adds up over the network's 20-odd
 * convolutions) 5e-2 x max |MONAI|; labels identical where MONAI's two best logits differ by more
 * than 1e-4. Exit 0 / 1 / 4 (no CUDA backend).
 */
#include "nn_backend.h"
#include "nn_cuda.h"
#include "nn_segresnet.h"
#include "nn_sliding.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GOLDEN "tests/golden/segresnet/"

static int n_pass, n_fail;

static void load_xy(const char *file, vp_tensor **x, vp_tensor **y, vp_safetensors **keep)
{
    vp_safetensors *st = vp_st_open(file);
    if (!st || !(*x = vp_st_load(st, "x")) || !(*y = vp_st_load(st, "y"))) exit(1);
    if (keep) *keep = st;
    else vp_st_close(&st);
}

/* compare got to MONAI's want; tol_rel 0: f32 (1e-4 absolute) */
static void judge(const char *what, const vp_tensor *got, const vp_tensor *want, double tol_rel)
{
    double maxabs = 0, maxref = 0;
    for (int64_t i = 0; i < vp_tensor_numel(want); i++) {
        double d = fabs((double)got->data[i] - want->data[i]);
        if (!(d <= maxabs)) maxabs = d;
        if (fabs(want->data[i]) > maxref) maxref = fabs(want->data[i]);
    }
    double tol = tol_rel > 0 ? tol_rel * maxref : 1e-4;
    int ok = maxabs <= tol;
    ok ? n_pass++ : n_fail++;
    printf("%-4s segresnet %-52s max abs diff to MONAI %.2e (tolerance %.1e)\n", ok ? "ok" : "FAIL", what, maxabs, tol);
}

static void device_forward(const char *math, int layout, const vp_safetensors *st, const vp_tensor *x, const vp_tensor *want,
                           const char *model)
{
    char name[32], what[96];
    snprintf(name, sizeof name, "cuda:0:%s", math);
    snprintf(what, sizeof what, "device forward %s %s %s", model, math, layout ? "NDHWC" : "NCDHW");
    const vp_nn_backend *be = vp_nn_backend_get(name);
    if (!be) exit(VP_ERR_DEVICE);
    vp_cuda_segresnet *m = vp_cuda_segresnet_load(be, st, model, layout);
    vp_tensor *dx = layout ? vp_cuda_tensor_new_cl(0, x->shape) : vp_cuda_tensor_new(0, 5, x->shape);
    vp_tensor *dy = layout ? vp_cuda_tensor_new_cl(0, want->shape) : vp_cuda_tensor_new(0, 5, want->shape);
    vp_tensor *got = vp_tensor_new(5, want->shape);
    if (!m || !dx || !dy || vp_cuda_upload(dx, x) || vp_cuda_segresnet_forward(m, dx, dy) || vp_cuda_download(got, dy)) {
        printf("FAIL segresnet %s: an error (see stderr)\n", what);
        n_fail++;
    } else {
        judge(what, got, want, !strcmp(math, "f32") ? 0 : !strcmp(math, "bf16") ? 5e-2 : 1e-2);
    }
    vp_tensor_free(&got);
    vp_cuda_tensor_free(&dx), vp_cuda_tensor_free(&dy);
    vp_cuda_segresnet_free(&m);
}

static int sw_predict(void *ctx, const vp_nn_backend *be, const vp_tensor *x, vp_tensor *y)
{
    return vp_cuda_segresnet_forward(ctx, x, y);
}

static void sliding(const char *file, int pad_mode, int layout, const vp_safetensors *mst)
{
    vp_tensor *x, *want;
    vp_safetensors *st;
    load_xy(file, &x, &want, &st);
    vp_sw_params p = {{0, 0, 0}, atof(vp_st_meta(st, "overlap")), 1, 0.125, pad_mode, 0.0f};
    if (sscanf(vp_st_meta(st, "roi"), "%d,%d,%d", &p.roi[0], &p.roi[1], &p.roi[2]) != 3) exit(1);
    vp_st_close(&st);
    const vp_nn_backend *be = vp_nn_backend_get("cuda:0:f32");
    vp_cuda_segresnet *m = vp_cuda_segresnet_load(be, mst, "model_small", layout);
    if (!m) exit(1);
    const int K = (int)want->shape[1];
    const int64_t S = want->shape[2] * want->shape[3] * want->shape[4];
    vp_tensor *got = vp_tensor_new(5, want->shape);
    int32_t *lab = vp_malloc((size_t)S * 4);
    vp_cuda_sw_opts o = {3, 0, layout, VP_CUDA_SW_WHOLE, 0, NULL, NULL, NULL};
    char what[96];
    snprintf(what, sizeof what, "sliding window %s %s batch 3", pad_mode ? "replicate" : "constant", layout ? "NDHWC" : "NCDHW");
    if (vp_cuda_sliding_window(be, x, &p, K, &o, sw_predict, m, lab, got)) {
        printf("FAIL segresnet %s: an error (see stderr)\n", what);
        n_fail++;
    } else {
        judge(what, got, want, 0);
        int64_t bad = 0;
        for (int64_t v = 0; v < S; v++) { /* MONAI's argmax, ties aside */
            int best = 0;
            for (int k = 1; k < K; k++)
                if (want->data[k * S + v] > want->data[best * S + v]) best = k;
            if (lab[v] != best && fabs(want->data[(int64_t)lab[v] * S + v] - want->data[best * S + v]) > 1e-4) bad++;
        }
        bad ? n_fail++ : n_pass++;
        printf("%-4s segresnet %-52s %lld of %lld labels differ from MONAI's argmax beyond ties\n", bad ? "FAIL" : "ok", what,
               (long long)bad, (long long)S);
    }
    free(lab);
    vp_tensor_free(&x), vp_tensor_free(&want), vp_tensor_free(&got);
    vp_cuda_segresnet_free(&m);
}

int main(int argc, char **argv)
{
    vp_set_progname(argv[0]);
    if (!vp_cuda_built() || !vp_nn_backend_get("cuda:0")) return VP_ERR_DEVICE;
    vp_safetensors *mst = vp_st_open(GOLDEN "model_small.safetensors");
    vp_tensor *x, *want;
    if (!mst) return 1;
    load_xy(GOLDEN "fwd_small.safetensors", &x, &want, NULL);
    static const char *const maths[4] = {"f32", "tf32", "f16", "bf16"};
    for (int mi = 0; mi < 4; mi++)
        for (int l = 0; l < 2; l++) device_forward(maths[mi], l, mst, x, want, "model_small");
    /* the drop-in path: host tensors through the backend (every op staged) */
    vp_segresnet *cm = vp_segresnet_load(mst, "model_small");
    vp_tensor *y = NULL;
    if (!cm || vp_segresnet_forward(cm, vp_nn_backend_get("cuda:0:f32"), x, &y)) {
        printf("FAIL segresnet host-staged forward: an error (see stderr)\n");
        n_fail++;
    } else {
        judge("host-staged forward (vp_segresnet_forward, cuda:0)", y, want, 0);
    }
    vp_tensor_free(&y);
    vp_segresnet_free(&cm);
    sliding(GOLDEN "sw_constant.safetensors", VP_SW_PAD_CONSTANT, VP_CUDA_NCDHW, mst);
    sliding(GOLDEN "sw_replicate.safetensors", VP_SW_PAD_REPLICATE, VP_CUDA_NDHWC, mst);
    /* the deconv model (ConvTranspose3d k2 s2 upsampling) against MONAI's forward of it */
    vp_safetensors *dst = vp_st_open(GOLDEN "model_deconv.safetensors");
    vp_tensor *dxin, *dwant;
    if (!dst) return 1;
    load_xy(GOLDEN "fwd_deconv.safetensors", &dxin, &dwant, NULL);
    device_forward("f32", VP_CUDA_NCDHW, dst, dxin, dwant, "model_deconv");
    device_forward("f32", VP_CUDA_NDHWC, dst, dxin, dwant, "model_deconv");
    device_forward("tf32", VP_CUDA_NDHWC, dst, dxin, dwant, "model_deconv");
    vp_tensor_free(&dxin), vp_tensor_free(&dwant);
    vp_st_close(&dst);
    vp_tensor_free(&x), vp_tensor_free(&want);
    vp_st_close(&mst);
    printf("cuda segresnet vs MONAI: %d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
