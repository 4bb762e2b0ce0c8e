/* test_cuda_unet.c - nnU-Net's PlainConvUNet and ResidualEncoderUNet on the GPU against PyTorch /
 * nnU-Net's own outputs (the golden files of tests/golden/unet and tests/golden/resenc, made by
 * tests/scripts/make_golden_unet*.py / make_golden_resenc.py) and against the CPU predictor:
 *   - the device-resident forward (vp_cuda_unet_forward) in NCDHW and NDHWC and in each
 *     convolution math, vs dynamic_network_architectures' forward (fwd.safetensors);
 *   - nnU-Net's sliding window on the device (vp_cuda_nnunet_predict) with and without mirroring,
 *     f16 and f32 aggregation, tile batches 1 and 3, vs nnUNetPredictor's logits (sw*.safetensors),
 *     and its labels vs the CPU predictor's (vp_nnunet_predict on the cpu backend) voxel for voxel;
 *     and the tiled path (VP_CUDA_SW_TILED: a slab of the image, a band of labels) vs the whole-volume
 *     path: labels and logits bit for bit.
 * Run by tests/gpu/check_unet.sh on a machine with a GPU (and, with --quick: f32 forward only, by
 * tests/gpu/emulate.sh part 4 on the pretend device).
 *
 * Pass: forward f32 max abs difference <= 1e-4; tf32, f16 <= 1e-2 x max |y|; bf16 5e-2 x max |y|.
 * Sliding window: f32 logits within 2e-4 of nnU-Net's, f16 within 2 f16 ulps of max |y|; labels
 * identical to the CPU predictor's (f32 math: the same sums in the same order; only the network's
 * last bits can differ, so a difference is allowed only where the CPU's two best logits are within
 * 1e-4). Exit 0 / 1 / 4 (no CUDA backend).
 */
#include "nn_backend.h"
#include "nn_cuda.h"
#include "nn_infer_cuda_unet.h"
#include "nn_predict_nnunet.h"
#include "nn_unet.h"
#include "util.h"
#include "volume.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int n_pass, n_fail, quick;

static void verdict(int ok, const char *fmt, const char *what, double a, double b)
{
    ok ? n_pass++ : n_fail++;
    printf("%-4s unet %-56s ", ok ? "ok" : "FAIL", what);
    printf(fmt, a, b);
    printf("\n");
}

static vp_tensor *load(const char *file, const char *name)
{
    vp_safetensors *st = vp_st_open(file);
    vp_tensor *t = st ? vp_st_load(st, name) : NULL;
    vp_st_close(&st);
    if (!t) exit(1);
    return t;
}

static void device_forward(const char *dir, const char *math, int layout)
{
    char name[32], what[128], path[256];
    snprintf(name, sizeof name, "cuda:0:%s", math);
    snprintf(what, sizeof what, "%s device forward %s %s", dir, math, layout ? "NDHWC" : "NCDHW");
    const vp_nn_backend *be = vp_nn_backend_get(name);
    if (!be) exit(VP_ERR_DEVICE);
    snprintf(path, sizeof path, "tests/golden/%s/model.safetensors", dir);
    vp_unet *hm = vp_unet_load(path);
    snprintf(path, sizeof path, "tests/golden/%s/fwd.safetensors", dir);
    vp_tensor *x = load(path, "x"), *want = load(path, "y");
    vp_cuda_unet *m = hm ? vp_cuda_unet_upload(be, hm, layout) : NULL;
    vp_tensor *dx = layout ? vp_cuda_tensor_new_cl(0, x->shape) : vp_cuda_tensor_new(0, 5, x->shape);
    vp_tensor *dy = layout ? vp_cuda_tensor_new_cl(0, want->shape) : vp_cuda_tensor_new(0, 5, want->shape);
    vp_tensor *got = vp_tensor_new(5, want->shape);
    if (!m || !dx || !dy || vp_cuda_upload(dx, x) || vp_cuda_unet_forward(m, dx, dy) || vp_cuda_download(got, dy)) {
        verdict(0, "an error (see stderr)%.0f%.0f", what, 0, 0);
    } else {
        double maxabs = 0, maxref = 0;
        for (int64_t i = 0; i < vp_tensor_numel(want); i++) {
            double d = fabs((double)got->data[i] - want->data[i]);
            if (!(d <= maxabs)) maxabs = d;
            if (fabs(want->data[i]) > maxref) maxref = fabs(want->data[i]);
        }
        double tol = !strcmp(math, "f32") ? 1e-4 : (!strcmp(math, "bf16") ? 5e-2 : 1e-2) * maxref;
        verdict(maxabs <= tol, "max abs diff to PyTorch %.2e (tolerance %.1e)", what, maxabs, tol);
    }
    vp_tensor_free(&x), vp_tensor_free(&want), vp_tensor_free(&got);
    vp_cuda_tensor_free(&dx), vp_cuda_tensor_free(&dy);
    vp_cuda_unet_free(&m);
    vp_unet_free(&hm);
}

/* the device sliding window of the PlainConvUNet vs nnU-Net's logits and the CPU predictor's labels */
static void sliding(const char *file, int tta, int half, int batch, int layout)
{
    char what[128];
    snprintf(what, sizeof what, "sliding window%s %s batch %d %s", tta ? " tta" : "", half ? "f16" : "f32", batch, layout ? "NDHWC" : "NCDHW");
    vp_unet *hm = vp_unet_load("tests/golden/unet/model.safetensors");
    vp_tensor *x4 = load(file, "x"), *yg = load(file, half ? "y16" : "y32");
    vp_tensor *x = vp_tensor_new5(1, x4->shape[0], x4->shape[1], x4->shape[2], x4->shape[3]);
    memcpy(x->data, x4->data, sizeof(float) * (size_t)vp_tensor_numel(x4));
    const vp_nn_backend *be = vp_nn_backend_get("cuda:0:f32");
    vp_cuda_unet *m = hm ? vp_cuda_unet_upload(be, hm, layout) : NULL;
    if (!m) exit(1);
    const int K = hm->cfg.n_classes;
    const int64_t S = x->shape[2] * x->shape[3] * x->shape[4];
    vp_nnunet_opts o = {0.5, tta, half};
    int32_t *lab = vp_malloc((size_t)S * 4), *clab = vp_malloc((size_t)S * 4);
    void *lg = vp_malloc((size_t)(K * S) * (half ? 2 : 4));
    vp_nnunet_result *cr = vp_nnunet_predict(&hm, 1, vp_nn_backend_get("cpu"), x, &o);
    if (!cr || vp_cuda_nnunet_predict(&m, 1, &hm->cfg, x, &o, batch, VP_CUDA_SW_WHOLE, NULL, lab, lg)) {
        verdict(0, "an error (see stderr)%.0f%.0f", what, 0, 0);
    } else {
        double d = 0, ymax = 0;
        for (int64_t i = 0; i < K * S; i++) {
            const double g = half ? vp_half_to_float(((uint16_t *)lg)[i]) : ((float *)lg)[i];
            if (fabs(g - yg->data[i]) > d) d = fabs(g - yg->data[i]);
            if (fabs(yg->data[i]) > ymax) ymax = fabs(yg->data[i]);
        }
        const double tol = half ? 2 * ldexp(ymax, -10) : 2e-4;
        char w2[160];
        snprintf(w2, sizeof w2, "%s logits", what);
        verdict(d <= tol, "max abs diff to nnU-Net %.2e (tolerance %.1e)", w2, d, tol);
        vp_nnunet_argmax(cr, clab);
        int64_t bad = 0, same = 0;
        for (int64_t v = 0; v < S; v++) {
            if (lab[v] == clab[v]) {
                same++;
                continue;
            }
            if (fabs(vp_nnunet_logit(cr, lab[v], v) - vp_nnunet_logit(cr, clab[v], v)) > 1e-4) bad++;
        }
        snprintf(w2, sizeof w2, "%s labels vs cpu", what);
        verdict(!bad, "%.0f of %.0f labels identical to the CPU predictor's (others: ties)", w2, (double)same, (double)S);
        /* the tiled path: the same bits */
        int32_t *tlab = vp_malloc((size_t)S * 4);
        void *tlg = vp_malloc((size_t)(K * S) * (half ? 2 : 4));
        int took = 0;
        snprintf(w2, sizeof w2, "%s tiled vs whole", what);
        if (vp_cuda_nnunet_predict(&m, 1, &hm->cfg, x, &o, batch, VP_CUDA_SW_TILED, &took, tlab, tlg) || !took) {
            verdict(0, "an error, or the tiled path not taken (%.0f) (see stderr)%.0f", w2, took, 0);
        } else {
            int64_t dl = 0, dg = 0;
            for (int64_t v = 0; v < S; v++) dl += tlab[v] != lab[v];
            for (int64_t i = 0; i < K * S; i++)
                dg += half ? ((uint16_t *)tlg)[i] != ((uint16_t *)lg)[i] : memcmp((float *)tlg + i, (float *)lg + i, 4) != 0;
            verdict(!dl && !dg, "%.0f labels and %.0f logits differ from the whole-volume path's", w2, (double)dl, (double)dg);
        }
        free(tlab), free(tlg);
    }
    vp_nnunet_result_free(&cr);
    free(lab), free(clab), free(lg);
    vp_tensor_free(&x), vp_tensor_free(&x4), vp_tensor_free(&yg);
    vp_cuda_unet_free(&m);
    vp_unet_free(&hm);
}

int main(int argc, char **argv)
{
    vp_set_progname(argv[0]);
    quick = argc > 1 && !strcmp(argv[1], "--quick"); /* f32 only, every tile in one pass (the emulator) */
    if (!vp_cuda_built() || !vp_nn_backend_get("cuda:0")) return VP_ERR_DEVICE;
    static const char *const maths[4] = {"f32", "tf32", "f16", "bf16"};
    for (int mi = 0; mi < (quick ? 1 : 4); mi++)
        for (int l = 0; l < 2; l++) device_forward("unet", maths[mi], l), device_forward("resenc", maths[mi], l);
    if (!quick) { /* the emulator runs the forward only: its sliding-window checks are infer-unet's (part 4) */
        sliding("tests/golden/unet/sw.safetensors", 0, 1, 1, VP_CUDA_NCDHW);
        sliding("tests/golden/unet/sw.safetensors", 0, 0, 3, VP_CUDA_NDHWC);
        sliding("tests/golden/unet/sw_tta.safetensors", 1, 1, 2, VP_CUDA_NCDHW);
        sliding("tests/golden/unet/sw_tta.safetensors", 1, 0, 1, VP_CUDA_NDHWC);
    }
    printf("cuda unet vs PyTorch / nnU-Net / CPU: %d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
