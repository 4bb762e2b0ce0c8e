/* bench_segresnet - time vp_segresnet_forward on a random (1, in, n, n, n) input.
 *   usage: bench_segresnet MODEL.safetensors N THREADS RUNS  -> prints "median_s gflops"
 * The first run is a warm-up; the median of the others is printed (FLOPs = 2 x MACs).
 * RUNS 0: serve, for interleaving with another program: after one warm-up forward it prints
 * "ready", then runs one timed forward per line read on stdin and prints "seconds gflops". */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cli.h"
#include "nn_segresnet.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc != 5) return fprintf(stderr, "usage: bench_segresnet MODEL N THREADS RUNS\n"), 2;
    int n = atoi(argv[2]), runs = atoi(argv[4]);
    vp_threads = atoi(argv[3]);
    vp_safetensors *st = vp_st_open(argv[1]);
    vp_segresnet *m = st ? vp_segresnet_load(st, argv[1]) : NULL;
    if (!m) return 1;
    vp_st_close(&st);
    vp_tensor *x = vp_tensor_new5(1, vp_segresnet_config(m)->in_channels, n, n, n);
    unsigned r = 1;
    for (int64_t i = 0; i < vp_tensor_numel(x); i++) r = r * 1103515245u + 12345u, x->data[i] = (float)(r >> 8) / (1 << 24) - 0.5f;
    const double flop = 2 * vp_segresnet_macs(m, n, n, n);
    if (runs == 0) {
        char line[64];
        for (int i = -1; i < 0 || fgets(line, sizeof line, stdin); i++) {
            vp_tensor *y = NULL;
            double t0 = now();
            if (vp_segresnet_forward(m, vp_nn_backend_cpu(), x, &y)) return 1;
            double t = now() - t0;
            vp_tensor_free(&y);
            if (i < 0) printf("ready\n");
            else printf("%.4f %.2f\n", t, flop / t * 1e-9);
            fflush(stdout);
        }
        vp_tensor_free(&x);
        vp_segresnet_free(&m);
        return 0;
    }
    if (runs < 2) return fprintf(stderr, "bench_segresnet: RUNS must be 0 (serve) or at least 2\n"), 2;
    double *ts = calloc((size_t)runs, sizeof *ts);
    for (int i = 0; i < runs; i++) {
        vp_tensor *y = NULL;
        double t0 = now();
        if (vp_segresnet_forward(m, vp_nn_backend_cpu(), x, &y)) return 1;
        ts[i] = now() - t0;
        vp_tensor_free(&y);
    }
    qsort(ts + 1, (size_t)runs - 1, sizeof *ts, cmp);
    double med = ts[1 + (runs - 1) / 2];
    printf("%.4f %.2f\n", med, flop / med * 1e-9);
    vp_tensor_free(&x);
    vp_segresnet_free(&m);
    free(ts);
    return 0;
}
