/* unet_check.h - checks shared by test_unet.c (PlainConvUNet) and test_resenc.c (ResidualEncoderUNet):
 * whole-network logits against a golden file, and a sliding-window result's logits and labels
 * against nnU-Net's. Static functions for Criterion tests; include once per test file. */
#ifndef VP_TEST_UNET_CHECK_H
#define VP_TEST_UNET_CHECK_H

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <stdlib.h>

#include "nn_predict_nnunet.h"
#include "nn_unet.h"

/* max |a - b| over n values (fails on NaN); *ymax = max |b| */
static double maxdiff(const float *a, const float *b, int64_t n, double *ymax)
{
    double m = 0;
    *ymax = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        cr_assert(!isnan(d), "NaN at %lld", (long long)i);
        if (d > m) m = d;
        if (fabs(b[i]) > *ymax) *ymax = fabs(b[i]);
    }
    return m;
}

/* MODEL's forward of DATA's "x" on the reference and CPU backends within TOL max abs of DATA's "y";
 * with resenc, the model must load as a ResidualEncoderUNet and the golden must not be degenerate */
static void forward_case(const char *model, const char *data, double tol, int resenc)
{
    vp_unet *m = vp_unet_load(model);
    cr_assert(m, "cannot load %s", model);
    if (resenc) cr_assert(m->cfg.resenc, "%s: not loaded as ResidualEncoderUNet", model);
    vp_safetensors *st = vp_st_open(data);
    cr_assert(st);
    vp_tensor *x = vp_st_load(st, "x"), *yg = vp_st_load(st, "y");
    cr_assert(x && yg);
    for (int b = 0; b < 2; b++) {
        const vp_nn_backend *be = b ? vp_nn_backend_cpu() : vp_nn_backend_ref();
        vp_tensor *y = vp_tensor_zeros(5, yg->shape);
        cr_assert_eq(vp_unet_forward(m, be, x, y), 0);
        double ymax, d = maxdiff(y->data, yg->data, vp_tensor_numel(y), &ymax);
        cr_log_info("%s on %s: max |y| %.3f, max abs diff %.3g", data, be->name, ymax, d);
        cr_expect_leq(d, tol, "%s on %s: max abs diff %g > %g", data, be->name, d, tol);
        if (resenc) cr_expect_gt(ymax, 0.1, "degenerate golden");
        vp_tensor_free(&y);
    }
    vp_tensor_free(&x), vp_tensor_free(&yg);
    vp_st_close(&st);
    vp_unet_free(&m);
}

/* A sliding-window result R against nnU-Net's logits YG (K x voxels): f32 aggregation within 1e-4,
 * f16 (half) within 2 f16 ulps of max |y|; labels identical except where the golden top two logits
 * are within 2e-4 (f32) or 2 f16 ulps (f16) of each other. Returns how many classes win somewhere
 * in the golden (of the first 8). */
static int check_sw(const char *what, const vp_nnunet_result *r, const vp_tensor *yg, int half)
{
    const int K = r->n_classes;
    const int64_t nv = r->dims[0] * r->dims[1] * r->dims[2];
    cr_assert_eq(K * nv, vp_tensor_numel(yg));
    float *y = malloc(sizeof(float) * (size_t)(K * nv));
    for (int k = 0; k < K; k++)
        for (int64_t i = 0; i < nv; i++) y[k * nv + i] = vp_nnunet_logit(r, k, i);
    double ymax, d = maxdiff(y, yg->data, K * nv, &ymax);
    int64_t exact = 0;
    for (int64_t i = 0; i < K * nv; i++) exact += y[i] == yg->data[i];
    cr_log_info("%s %s: max |y| %.3f, max abs diff %.3g, %lld of %lld values identical", what, half ? "f16" : "f32", ymax, d,
                (long long)exact, (long long)(K * nv));
    if (half)
        cr_expect_leq(d, ldexp(fmax(1.0, ymax), -9), "%s f16: max abs diff %g beyond 2 f16 ulps of max |y|", what, d);
    else
        cr_expect_leq(d, 1e-4, "%s f32: max abs diff %g", what, d);
    int32_t *lab = malloc(sizeof(int32_t) * (size_t)nv);
    vp_nnunet_argmax(r, lab);
    int64_t diff = 0, ties = 0, present[8] = {0};
    for (int64_t i = 0; i < nv; i++) {
        int best = 0;
        for (int k = 1; k < K; k++)
            if (yg->data[k * nv + i] > yg->data[best * nv + i]) best = k;
        present[best & 7]++;
        if (lab[i] == best) continue;
        if (fabs(yg->data[lab[i] * nv + i] - yg->data[best * nv + i]) <= (half ? 2 * ldexp(fabs(yg->data[best * nv + i]), -10) : 2e-4))
            ties++;
        else
            diff++;
    }
    cr_log_info("%s %s: labels differ at %lld voxels, all ties (%lld)", what, half ? "f16" : "f32", (long long)(diff + ties),
                (long long)ties);
    cr_expect_eq(diff, 0, "%s: %lld labels differ outside ties", what, (long long)diff);
    free(lab), free(y);
    int classes = 0;
    for (int k = 0; k < 8; k++) classes += present[k] > 0;
    return classes;
}

#endif
