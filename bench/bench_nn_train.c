/* bench_nn_train.c - time one training iteration (forward + loss + backward + optimizer step) of a
 * voxpipe trainable model on the CPU backend; used by bench/bench_train.sh.
 *   usage: bench_nn_train segresnet|unet FEATURES D H W BATCH CLASSES ROUNDS THREADS
 * segresnet: MONAI Label's SegResNet (blocks 1,2,2,4 / 1,1,1, GroupNorm 8), DiceCE, AdamW;
 * unet: PlainConvUNet with 4 stages (FEATURES x 1,2,4,8, kernels 3, strides 1,2,2,2, 2 convs per
 * stage), nnU-Net loss with deep supervision, SGD nesterov. Prints, after one warm-up iteration,
 * the median wall seconds per iteration, the median process CPU seconds per iteration (all
 * threads; fairer on a loaded machine), the medians of the two phases (step_grads, optimizer) and
 * the parameter count. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "nn_train.h"

static double clk(clockid_t id)
{
    struct timespec t;
    clock_gettime(id, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
static double now(void) { return clk(CLOCK_MONOTONIC); }
static int cmp(const void *a, const void *b) { return *(const double *)a < *(const double *)b ? -1 : *(const double *)a > *(const double *)b; }

int main(int argc, char **argv)
{
    if (argc != 10) {
        fprintf(stderr, "usage: bench_nn_train segresnet|unet FEATURES D H W BATCH CLASSES ROUNDS THREADS\n");
        return 2;
    }
    int unet = !strcmp(argv[1], "unet"), f = atoi(argv[2]), d = atoi(argv[3]), h = atoi(argv[4]), w = atoi(argv[5]);
    int n = atoi(argv[6]), k = atoi(argv[7]), rounds = atoi(argv[8]);
    vp_threads = atoi(argv[9]);
    vp_trainable *m;
    if (unet) {
        vp_unet_cfg c = {.in_ch = 1, .n_classes = k, .n_stages = 4, .conv_bias = 1, .norm_eps = 1e-5f, .slope = 0.01f,
                         .patch = {d, h, w}};
        for (int s = 0; s < 4; s++) {
            c.features[s] = f << s;
            c.n_conv[s] = 2, c.n_conv_dec[s] = 2;
            for (int a = 0; a < 3; a++) c.kernel[s][a] = 3, c.stride[s][a] = s ? 2 : 1;
        }
        m = vp_trainable_new_unet(&c, 1);
    } else {
        vp_segresnet_cfg c = {.in_channels = 1, .out_channels = k, .init_filters = f, .norm_groups = 8, .n_down = 4,
                              .blocks_down = {1, 2, 2, 4}, .n_up = 3, .blocks_up = {1, 1, 1}, .eps = 1e-5f};
        m = vp_trainable_new_segresnet(&c, 1);
    }
    if (!m) return 1;
    vp_tensor *x = vp_tensor_new5(n, 1, d, h, w);
    int64_t nv = (int64_t)n * d * h * w;
    int32_t *t = malloc((size_t)nv * sizeof *t);
    unsigned r = 1;
    for (int64_t i = 0; i < nv; i++) {
        r = r * 1103515245u + 12345u;
        x->data[i] = (float)(r >> 8) / (float)(1 << 24) - 0.5f;
        t[i] = (int32_t)((i / 4096 + (r >> 20)) % (unsigned)k);
    }
    vp_loss_cfg lc = vp_loss_cfg_default(unet ? VP_LOSS_NNUNET_DCCE : VP_LOSS_DICECE);
    vp_optim_cfg oc = vp_optim_cfg_default(unet ? VP_OPTIM_SGD : VP_OPTIM_ADAMW);
    int64_t np;
    float *P = vp_trainable_flat_params(m, &np), *G = vp_trainable_flat_grads(m, NULL);
    vp_optim *o = vp_optim_new(&oc, np);
    double *tc = calloc((size_t)rounds + 1, sizeof *tc), *tt = calloc((size_t)rounds + 1, sizeof *tt), *tg = calloc((size_t)rounds + 1, sizeof *tg), *to = calloc((size_t)rounds + 1, sizeof *to);
    for (int i = -1; i < rounds; i++) {
        double loss, c0 = clk(CLOCK_PROCESS_CPUTIME_ID), t0 = now();
        if (vp_train_step_grads(m, vp_nn_backend_cpu(), x, t, &lc, &loss)) return 1;
        double t1 = now();
        if (vp_optim_step(o, P, G, np, vp_optim_lr(o, 0, 1000), NULL)) return 1;
        double t2 = now();
        if (i >= 0) tt[i] = t2 - t0, tg[i] = t1 - t0, to[i] = t2 - t1, tc[i] = clk(CLOCK_PROCESS_CPUTIME_ID) - c0;
    }
    qsort(tc, (size_t)rounds, sizeof *tc, cmp);
    qsort(tt, (size_t)rounds, sizeof *tt, cmp), qsort(tg, (size_t)rounds, sizeof *tg, cmp), qsort(to, (size_t)rounds, sizeof *to, cmp);
    printf("%.4f %.4f %.4f %.4f %lld\n", tt[rounds / 2], tc[rounds / 2], tg[rounds / 2], to[rounds / 2], (long long)np);
    vp_optim_free(&o);
    vp_trainable_free(&m);
    vp_tensor_free(&x);
    free(t), free(tt), free(tc), free(tg), free(to);
    return 0;
}
