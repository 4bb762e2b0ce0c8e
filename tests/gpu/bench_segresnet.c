/* bench_segresnet.c - the voxpipe side of the GPU benchmark (tests/gpu/check.sh runs it after
 * bench_torch.py, on the model file that wrote): SegResNet forward on 96^3 patches, batch 2, with
 * everything on the device (vp_cuda_segresnet_forward) in f32, tf32, f16 and bf16 convolution math
 * and NCDHW / NDHWC activations (median of 5 after a warm-up), then whole-volume inference of a
 * D x H x W volume with vp_cuda_sliding_window (roi 96, overlap 0.25, gaussian, batch 2, f16
 * aggregation, argmax on the device, labels back: upload once, download labels) -- the settings of
 * bench_torch.py. Reports ms, TFLOP/s (2 x vp_segresnet_macs) and the peak device memory
 * (vp_cuda_peak_bytes), one line each on stdout prefixed "voxpipe:".
 *
 * usage: bench_segresnet MODEL [D H W]     exit 0, 1 (failure), 4 (no CUDA backend)
 */
#include "nn_backend.h"
#include "nn_cuda.h"
#include "nn_safetensors.h"
#include "nn_segresnet.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static float urand(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((rng >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

static int predict(void *ctx, const vp_nn_backend *be, const vp_tensor *x, vp_tensor *y)
{
    return vp_cuda_segresnet_forward(ctx, x, y);
}

static int cmp_d(const void *a, const void *b) { return *(const double *)a < *(const double *)b ? -1 : *(const double *)a > *(const double *)b; }

int main(int argc, char **argv)
{
    vp_set_progname(argv[0]);
    if (argc != 2 && argc != 5) {
        fprintf(stderr, "usage: bench_segresnet MODEL [D H W]\n");
        return VP_ERR_USAGE;
    }
    int vol[3] = {192, 192, 160};
    if (argc == 5)
        for (int i = 0; i < 3; i++) vol[i] = atoi(argv[2 + i]);
    vp_safetensors *st = vp_st_open(argv[1]);
    if (!st) return VP_ERR_DATA;
    vp_segresnet *cm = vp_segresnet_load(st, argv[1]); /* for the configuration and the MAC count */
    if (!cm) return VP_ERR_DATA;
    const int K = vp_segresnet_config(cm)->out_channels;
    const double flop = 2.0 * 2 * vp_segresnet_macs(cm, 96, 96, 96); /* batch 2 */
    vp_segresnet_free(&cm);
    int64_t xs[5] = {2, 1, 96, 96, 96}, ys[5] = {2, K, 96, 96, 96};
    vp_tensor *hx = vp_tensor_new(5, xs);
    for (int64_t i = 0; i < vp_tensor_numel(hx); i++) hx->data[i] = urand();
    static const char *const names[4] = {"cuda:0:f32", "cuda:0:tf32", "cuda:0:f16", "cuda:0:bf16"};
    for (int b = 0; b < 4; b++)
        for (int l = 0; l < 2; l++) {
            const vp_nn_backend *be = vp_nn_backend_get(names[b]);
            if (!be) return vp_cuda_exit_code(VP_ERR_DEVICE);
            vp_cuda_segresnet *m = vp_cuda_segresnet_load(be, st, argv[1], l);
            vp_tensor *x = l ? vp_cuda_tensor_new_cl(0, xs) : vp_cuda_tensor_new(0, 5, xs);
            vp_tensor *y = l ? vp_cuda_tensor_new_cl(0, ys) : vp_cuda_tensor_new(0, 5, ys);
            if (!m || !x || !y || vp_cuda_upload(x, hx)) return vp_cuda_exit_code(1);
            vp_cuda_peak_bytes(0, 1);
            double t[5];
            int err = vp_cuda_segresnet_forward(m, x, y) || vp_cuda_synchronize(0); /* warm-up: algorithm choice */
            for (int r = 0; r < 5 && !err; r++) {
                double t0 = now();
                err = vp_cuda_segresnet_forward(m, x, y) || vp_cuda_synchronize(0);
                t[r] = now() - t0;
            }
            if (err) printf("voxpipe: segresnet32 96^3 batch 2 %s %s: failed (see stderr)\n", vp_cuda_math_name(be), l ? "NDHWC" : "NCDHW");
            else {
                qsort(t, 5, sizeof *t, cmp_d);
                printf("voxpipe: segresnet32 96^3 batch 2 %s %s: median %.2f ms, %.1f TFLOP/s, peak device memory %.0f MiB\n",
                       vp_cuda_math_name(be), l ? "NDHWC" : "NCDHW", t[2] * 1e3, flop / t[2] * 1e-12, vp_cuda_peak_bytes(0, 0) / 1048576.0);
            }
            fflush(stdout);
            vp_cuda_tensor_free(&x), vp_cuda_tensor_free(&y);
            vp_cuda_segresnet_free(&m);
        }
    /* whole volume: f16 math, both layouts */
    vp_tensor *v = vp_tensor_new5(1, 1, vol[0], vol[1], vol[2]);
    rng = 1;
    for (int64_t i = 0; i < vp_tensor_numel(v); i++) v->data[i] = urand();
    vp_sw_params p = {{96, 96, 96}, 0.25, 1, 0.125, VP_SW_PAD_CONSTANT, 0.0f};
    int32_t *lab = vp_malloc((size_t)vol[0] * vol[1] * vol[2] * 4);
    for (int l = 0; l < 2; l++) {
        const vp_nn_backend *be = vp_nn_backend_get("cuda:0:f16");
        vp_cuda_segresnet *m = vp_cuda_segresnet_load(be, st, argv[1], l);
        vp_cuda_sw_opts o = {2, 1, l, VP_CUDA_SW_WHOLE, 0, NULL, NULL, NULL};
        if (!m || vp_cuda_sliding_window(be, v, &p, K, &o, predict, m, lab, NULL)) return vp_cuda_exit_code(1); /* warm-up */
        vp_cuda_peak_bytes(0, 1);
        double t[3];
        for (int r = 0; r < 3; r++) {
            double t0 = now();
            if (vp_cuda_sliding_window(be, v, &p, K, &o, predict, m, lab, NULL)) return vp_cuda_exit_code(1);
            t[r] = now() - t0;
        }
        qsort(t, 3, sizeof *t, cmp_d);
        printf("voxpipe: whole volume %dx%dx%d sliding window (roi 96, overlap 0.25, batch 2, f16 math, %s, f16 device aggregation): "
               "median %.0f ms, peak device memory %.0f MiB\n",
               vol[0], vol[1], vol[2], l ? "NDHWC" : "NCDHW", t[1] * 1e3, vp_cuda_peak_bytes(0, 0) / 1048576.0);
        fflush(stdout);
        vp_cuda_segresnet_free(&m);
    }
    free(lab);
    vp_tensor_free(&v), vp_tensor_free(&hx);
    vp_st_close(&st);
    return 0;
}
