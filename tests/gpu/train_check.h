/* train_check.h - what the GPU training drivers (test_cuda_train.c, test_cuda_tape.c) check with:
 * an ok/FAIL line per check counted in n_pass / n_fail, the largest |value| of a buffer, and the
 * worst per-tensor relative difference of two flat parameter-sized buffers of a trainable. Included
 * by one .c each (static functions). */
#ifndef VP_TESTS_GPU_TRAIN_CHECK_H
#define VP_TESTS_GPU_TRAIN_CHECK_H

#include <math.h>
#include <stdarg.h>
#include <stdio.h>

#include "nn_train.h"

static int n_pass, n_fail;

static void check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check(int ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s ", ok ? "ok" : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    ok ? n_pass++ : n_fail++;
}

static double maxabs(const float *a, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i]));
    return m;
}

/* worst per-tensor max |a - b| / max |b| over the model's tensors of the flat buffers a (test) and
 * b (reference); floor: the smallest denominator (absolute scale of the buffer); NaN counts as
 * worst; *where names the tensor */
static double worst_rel(vp_trainable *m, const float *a, const float *b, double floor, const char **where)
{
    double worst = 0;
    const float *base = vp_trainable_flat_params(m, NULL);
    for (int i = 0; i < vp_trainable_nparams(m); i++) {
        vp_param *p = vp_trainable_param(m, i);
        int64_t off = p->w.data - base, n = vp_tensor_numel(&p->w);
        double d = 0, r = fmax(maxabs(b + off, n), floor);
        for (int64_t k = 0; k < n; k++) d = fmax(d, fabs((double)a[off + k] - b[off + k]));
        if (!(d / r <= worst)) worst = d / r, *where = p->name;
    }
    return worst;
}

#endif
