/* bench_segresnet_prof - where a SegResNet forward pass spends its time, per op and shape: the CPU
 * backend wrapped in a backend whose ops time themselves (CPU time of the whole process, all
 * worker threads together, so a busy shared machine distorts it less than wall time would).
 *   cc -std=c11 -D_GNU_SOURCE -O2 -Ilib -o bench/out/bench_segresnet_prof bench/bench_segresnet_prof.c \
 *      build/libvoxpipe.a $(make -s --no-print-directory print-ldlibs)
 *   bench/out/bench_segresnet_prof MODEL.safetensors N THREADS RUNS
 * (MODEL e.g. bench/out/segresnet_f16.safetensors from bench_segresnet.sh). The first run is a
 * warm-up; prints, per (op, input channels, input size, output channels), the calls per forward
 * and CPU milliseconds per forward averaged over the other runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "nn_backend.h"
#include "nn_segresnet.h"

static double cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

#define MAXK 256
static const vp_nn_backend *cpu;
static char keys[MAXK][96];
static double total[MAXK];
static int calls[MAXK], nkeys;

static void record(const char *op, const vp_tensor *x, const vp_tensor *w, double t)
{
    char k[96];
    snprintf(k, sizeof k, "%-10s %4lld ch %4lld^3 -> %4lld", op, (long long)x->shape[1], (long long)x->shape[2],
             w ? (long long)w->shape[0] : (long long)x->shape[1]);
    int i = 0;
    while (i < nkeys && strcmp(keys[i], k)) i++;
    if (i == nkeys) {
        if (nkeys == MAXK) return;
        strcpy(keys[nkeys++], k);
    }
    total[i] += t, calls[i]++;
}

static int p_conv(const vp_nn_backend *be, const vp_tensor *x, const vp_tensor *w, const vp_tensor *b,
                  const vp_conv3d_params *p, vp_tensor *y)
{
    double t = cpu_now();
    int r = cpu->conv3d(cpu, x, w, b, p, y);
    char n[32];
    snprintf(n, sizeof n, "conv%lld s%d", (long long)w->shape[2], p->stride[0]);
    record(n, x, w, cpu_now() - t);
    return r;
}
static int p_convt(const vp_nn_backend *be, const vp_tensor *x, const vp_tensor *w, const vp_tensor *b,
                   const vp_conv3d_params *p, vp_tensor *y)
{
    double t = cpu_now();
    int r = cpu->conv_transpose3d(cpu, x, w, b, p, y);
    record("convT", x, NULL, cpu_now() - t);
    return r;
}
static int p_gn(const vp_nn_backend *be, const vp_tensor *x, int g, float eps, const vp_tensor *ga, const vp_tensor *bb,
                vp_tensor *y)
{
    double t = cpu_now();
    int r = cpu->group_norm(cpu, x, g, eps, ga, bb, y);
    record("groupnorm", x, NULL, cpu_now() - t);
    return r;
}
static int p_relu(const vp_nn_backend *be, const vp_tensor *x, vp_tensor *y)
{
    double t = cpu_now();
    int r = cpu->relu(cpu, x, y);
    record("relu", x, NULL, cpu_now() - t);
    return r;
}
static int p_up(const vp_nn_backend *be, const vp_tensor *x, vp_tensor *y)
{
    double t = cpu_now();
    int r = cpu->upsample_trilinear2x(cpu, x, y);
    record("upsample", x, NULL, cpu_now() - t);
    return r;
}
static int p_add(const vp_nn_backend *be, const vp_tensor *a, const vp_tensor *b, vp_tensor *y)
{
    double t = cpu_now();
    int r = cpu->add(cpu, a, b, y);
    record("add", a, NULL, cpu_now() - t);
    return r;
}
static int p_gn_relu(const vp_nn_backend *be, const vp_tensor *x, int g, float eps, const vp_tensor *ga,
                     const vp_tensor *bb, vp_tensor *y)
{
    double t = cpu_now();
    int r = vp_nn_group_norm_relu(cpu, x, g, eps, ga, bb, y);
    record("gn+relu", x, NULL, cpu_now() - t);
    return r;
}
static int p_conv_add(const vp_nn_backend *be, const vp_tensor *x, const vp_tensor *w, const vp_tensor *b,
                      const vp_conv3d_params *p, const vp_tensor *res, vp_tensor *y)
{
    double t = cpu_now();
    int r = vp_nn_conv3d_add(cpu, x, w, b, p, res, y);
    char n[32];
    snprintf(n, sizeof n, "conv%lld+add", (long long)w->shape[2]);
    record(n, x, w, cpu_now() - t);
    return r;
}

int main(int argc, char **argv)
{
    if (argc != 5) return fprintf(stderr, "usage: bench_segresnet_prof MODEL N THREADS RUNS\n"), 2;
    int n = atoi(argv[2]), runs = atoi(argv[4]);
    vp_threads = atoi(argv[3]);
    if (runs < 2) runs = 2;
    vp_safetensors *st = vp_st_open(argv[1]);
    vp_segresnet *m = st ? vp_segresnet_load(st, argv[1]) : NULL;
    if (!m) return 1;
    vp_st_close(&st);
    cpu = vp_nn_backend_cpu();
    vp_nn_backend be = *cpu;
    be.name = "cpu-profiled";
    be.conv3d = p_conv, be.conv_transpose3d = p_convt, be.group_norm = p_gn, be.relu = p_relu;
    be.upsample_trilinear2x = p_up, be.add = p_add;
    /* the fused ops as the CPU backend has them (VOXPIPE_NN_UNFUSED=1: without, as before) */
    be.group_norm_relu = getenv("VOXPIPE_NN_UNFUSED") ? NULL : p_gn_relu;
    be.conv3d_add = getenv("VOXPIPE_NN_UNFUSED") ? NULL : p_conv_add;
    vp_tensor *x = vp_tensor_new5(1, vp_segresnet_config(m)->in_channels, n, n, n);
    unsigned r = 1;
    for (int64_t i = 0; i < vp_tensor_numel(x); i++) r = r * 1103515245u + 12345u, x->data[i] = (float)(r >> 8) / (1 << 24) - 0.5f;
    double fwd = 0;
    for (int i = 0; i < runs; i++) {
        if (i == 1) memset(total, 0, sizeof total), memset(calls, 0, sizeof calls), fwd = 0;
        vp_tensor *y = NULL;
        double t = cpu_now();
        if (vp_segresnet_forward(m, &be, x, &y)) return 1;
        fwd += cpu_now() - t;
        vp_tensor_free(&y);
    }
    double sum = 0;
    printf("%-36s %6s %12s\n", "op, input -> output channels", "calls", "CPU ms");
    for (int i = 0; i < nkeys; i++) {
        printf("%-36s %6d %12.1f\n", keys[i], calls[i] / (runs - 1), total[i] / (runs - 1) * 1e3);
        sum += total[i];
    }
    printf("ops %.1f ms, whole forward %.1f ms CPU (%d threads), %.1f GFLOP\n", sum / (runs - 1) * 1e3, fwd / (runs - 1) * 1e3,
           vp_threads, 2 * vp_segresnet_macs(m, n, n, n) * 1e-9);
    vp_tensor_free(&x);
    vp_segresnet_free(&m);
    return 0;
}
