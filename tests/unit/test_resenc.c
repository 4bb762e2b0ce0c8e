/* Unit tests for nnU-Net's ResidualEncoderUNet (lib/nn_resenc.c through lib/nn_unet.c) and nnU-Net's
 * sliding-window predictor on it, against dynamic_network_architectures / nnunetv2 themselves
 * (tests/golden/resenc/, made by tests/scripts/make_golden_resenc.py from the plans nnunetv2's
 * nnUNetPlannerResEncM writes for a crop of the shared CT). */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "nn_predict_nnunet.h"
#include "nn_resenc.h"
#include "nn_unet.h"
#include "unet_check.h"

#define G "tests/golden/resenc/"

/* Whole-network logits of the planner's ResEnc M layout (4 stages, 1,3,4,6 blocks, strides
 * (2,2,2) with a projection, (1,2,2) without), reference and CPU backends, within 1e-4 of PyTorch. */
Test(resenc, forward_golden)
{
    vp_threads = 2;
    forward_case(G "model.safetensors", G "fwd.safetensors", 1e-4, 1);
}

/* The small network with PyTorch's full tensor names (f32 weights). */
Test(resenc, forward_tiny) { forward_case(G "tiny_ok.safetensors", G "tiny_ok.safetensors", 1e-4, 1); }

/* Average pooling against torch's avg_pool3d (kernel = stride). */
Test(resenc, avgpool, .init = cr_redirect_stderr)
{
    vp_safetensors *st = vp_st_open(G "pool.safetensors");
    cr_assert(st);
    vp_tensor *x = vp_st_load(st, "x");
    const char *names[2] = {"y122", "y222"};
    const int ks[2][3] = {{1, 2, 2}, {2, 2, 2}};
    for (int i = 0; i < 2; i++) {
        vp_tensor *yg = vp_st_load(st, names[i]), *y = vp_tensor_zeros(5, yg->shape);
        cr_assert_eq(vp_avgpool3d(x, ks[i], y), 0);
        double ymax, d = maxdiff(y->data, yg->data, vp_tensor_numel(y), &ymax);
        cr_expect_leq(d, 1e-6, "%s: max abs diff %g", names[i], d);
        vp_tensor_free(&y), vp_tensor_free(&yg);
    }
    vp_tensor *bad = vp_tensor_new5(1, 3, 4, 3, 4);
    cr_expect_neq(vp_avgpool3d(x, ks[0], bad), 0, "a wrong output shape was accepted");
    vp_tensor_free(&bad), vp_tensor_free(&x);
    vp_st_close(&st);
}

/* nnU-Net's sliding window on the CT crop (padded on d, two tiles on h and w), f16 aggregation as
 * nnU-Net, without and with mirroring: within 2 f16 ulps of max |y| of nnunetv2's result, labels
 * identical except where nnU-Net's top two are within 2 f16 ulps (ties). */
static void sw_case(const char *key, int tta)
{
    vp_threads = 2;
    vp_unet *m = vp_unet_load(G "model.safetensors");
    vp_safetensors *st = vp_st_open(G "sw.safetensors");
    cr_assert(m && st);
    vp_tensor *x = vp_st_load(st, "x"), *yg = vp_st_load(st, key);
    cr_assert(x && yg);
    int64_t shp[5] = {1, x->shape[0], x->shape[1], x->shape[2], x->shape[3]};
    vp_tensor img = vp_tensor_view(x->data, 5, shp);
    vp_nnunet_opts o = {0.5, tta, 1};
    vp_nnunet_result *r = vp_nnunet_predict(&m, 1, vp_nn_backend_cpu(), &img, &o);
    cr_assert(r);
    cr_expect_gt(check_sw(key, r, yg, 1), 1, "degenerate golden: one class only");
    vp_nnunet_result_free(&r);
    vp_tensor_free(&yg), vp_tensor_free(&x);
    vp_st_close(&st);
    vp_unet_free(&m);
}

Test(resenc, sliding_window) { sw_case("y16", 0); }
Test(resenc, sliding_window_tta) { sw_case("ytta16", 1); }

/* Missing projection, mis-shaped conv, missing n_blocks_per_stage: NULL and a message naming it. */
Test(resenc, bad_models, .init = cr_redirect_stderr)
{
    const char *files[] = {"tiny_missing", "tiny_shape", "tiny_nometa"};
    const char *want[] = {"\"encoder.stages.1.blocks.0.skip.1.conv.weight\" missing",
                          "\"encoder.stages.1.blocks.1.conv2.conv.weight\": shape", "no \"n_blocks_per_stage\""};
    for (int i = 0; i < 3; i++) {
        char p[128];
        snprintf(p, sizeof p, G "%s.safetensors", files[i]);
        cr_expect_null(vp_unet_load(p), "%s loaded", files[i]);
    }
    fflush(stderr);
    char buf[4096] = {0};
    fread(buf, 1, sizeof buf - 1, cr_get_redirected_stderr());
    for (int i = 0; i < 3; i++) cr_expect(strstr(buf, want[i]), "no '%s' in: %s", want[i], buf);
}

struct rowlog {
    int64_t next, stop_at;
    int calls;
};

static int log_row(void *ectx, int64_t d, const void *row)
{
    struct rowlog *l = ectx;
    (void)row;
    cr_expect_eq(d, l->next, "row %lld emitted, expected %lld", (long long)d, (long long)l->next);
    l->next = d + 1, l->calls++;
    return d == l->stop_at ? -1 : 0;
}

/* The banded predictor hands every row of the input (not the padding) over once, in order, and
 * stops when the callback fails. */
Test(resenc, rows_in_order)
{
    vp_unet *m = vp_unet_load(G "model.safetensors");
    vp_safetensors *st = vp_st_open(G "sw.safetensors");
    cr_assert(m && st);
    vp_tensor *x = vp_st_load(st, "x");
    int64_t shp[5] = {1, x->shape[0], x->shape[1], x->shape[2], x->shape[3]};
    vp_tensor img = vp_tensor_view(x->data, 5, shp);
    vp_nnunet_opts o = {0.5, 0, 1};
    struct rowlog l = {0, -1, 0};
    cr_assert_eq(vp_nnunet_predict_rows(&m, 1, vp_nn_backend_cpu(), &img, &o, log_row, &l), 0);
    cr_expect_eq(l.calls, shp[2], "%d rows emitted for %lld", l.calls, (long long)shp[2]);
    struct rowlog s = {0, 3, 0};
    cr_expect_neq(vp_nnunet_predict_rows(&m, 1, vp_nn_backend_cpu(), &img, &o, log_row, &s), 0);
    cr_expect_eq(s.calls, 4, "went on after the callback failed (%d calls)", s.calls);
    vp_tensor_free(&x);
    vp_st_close(&st);
    vp_unet_free(&m);
}
