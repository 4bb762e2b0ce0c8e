/* bench_nn_conv.c - time the CPU backend's conv3d (bench/bench_nn.sh compiles and runs it).
 * usage: bench_nn_conv CI CO SIZE K THREADS REPEATS  -> prints "median_seconds gflops" */
#include "cli.h"
#include "nn_backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: %s CI CO SIZE K THREADS REPEATS\n", argv[0]);
        return 2;
    }
    int ci = atoi(argv[1]), co = atoi(argv[2]), n = atoi(argv[3]), k = atoi(argv[4]), reps = atoi(argv[6]);
    vp_threads = atoi(argv[5]);
    if (reps < 1 || reps > 100) reps = 3;
    vp_tensor *x = vp_tensor_new5(1, ci, n, n, n);
    int64_t ws[5] = {co, ci, k, k, k}, bs[1] = {co};
    vp_tensor *w = vp_tensor_new(5, ws), *b = vp_tensor_new(1, bs), *y = vp_tensor_new5(1, co, n, n, n);
    unsigned s = 12345;
    for (int64_t i = 0; i < vp_tensor_numel(x); i++) s = s * 1103515245u + 12345u, x->data[i] = (float)(s >> 8) / (1 << 24) - 0.5f;
    for (int64_t i = 0; i < vp_tensor_numel(w); i++) s = s * 1103515245u + 12345u, w->data[i] = (float)(s >> 8) / (1 << 24) - 0.5f;
    for (int64_t i = 0; i < co; i++) b->data[i] = 0.1f * (float)i;
    vp_conv3d_params p = {{1, 1, 1}, {k / 2, k / 2, k / 2}, {0, 0, 0}};
    const vp_nn_backend *be = vp_nn_backend_cpu();
    double t[100];
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        if (be->conv3d(be, x, w, b, &p, y)) return 1;
        t[r] = now() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp);
    double flop = 2.0 * ci * co * (double)k * k * k * (double)n * n * n;
    printf("%.4f %.2f\n", t[reps / 2], flop / t[reps / 2] * 1e-9);
    vp_tensor_free(&x), vp_tensor_free(&w), vp_tensor_free(&b), vp_tensor_free(&y);
    return 0;
}
