/* Unit tests for PlainConvUNet (lib/nn_unet.c) and nnU-Net's sliding-window predictor
 * (lib/nn_predict_nnunet.c) against PyTorch reimplementations of dynamic_network_architectures and
 * nnunetv2 (tests/golden/unet/, made by tests/scripts/make_golden_unet.py). */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "nn_predict_nnunet.h"
#include "nn_unet.h"
#include "unet_check.h"

#define G "tests/golden/unet/"

/* Whole-network logits, reference and CPU backends, within 1e-4 max abs of PyTorch. */
Test(unet, forward_golden)
{
    vp_threads = 2;
    forward_case(G "model.safetensors", G "fwd.safetensors", 1e-4, 0);
}

/* Weights stored under PyTorch's all_modules.{0,1} aliases, and old-layout plans metadata. */
Test(unet, forward_aliases)
{
    forward_case(G "tiny_alias.safetensors", G "tiny_alias.safetensors", 1e-4, 0);
}

/* Missing tensor, wrong shape, PlainConvUNet weights labelled ResidualEncoderUNet (no n_blocks_per_stage),
 * missing metadata: NULL and a message. */
Test(unet, bad_models, .init = cr_redirect_stderr)
{
    const char *files[] = {"tiny_missing", "tiny_shape", "tiny_arch", "tiny_nometa", "nonexistent"};
    const char *want[] = {"decoder.transpconvs.0.bias\" missing", "decoder.stages.0.convs.0.conv.weight\": shape",
                          "tiny_arch.safetensors: __metadata__ has no \"n_blocks_per_stage\"", "no \"strides\"", "nonexistent"};
    for (int i = 0; i < 5; i++) {
        char p[128];
        snprintf(p, sizeof p, G "%s.safetensors", files[i]);
        cr_expect_null(vp_unet_load(p), "%s loaded", files[i]);
    }
    fflush(stderr);
    char buf[4096] = {0};
    fread(buf, 1, sizeof buf - 1, cr_get_redirected_stderr());
    for (int i = 0; i < 5; i++) cr_expect(strstr(buf, want[i]), "no '%s' in: %s", want[i], buf);
}

/* The importance map equals compute_gaussian's in f16 and f32 (bit for bit). */
Test(unet, gaussian)
{
    vp_safetensors *st = vp_st_open(G "sw.safetensors");
    cr_assert(st);
    for (int half = 0; half < 2; half++) {
        vp_tensor *g = vp_st_load(st, half ? "gauss16" : "gauss32");
        cr_assert(g && g->ndim == 3);
        int p[3] = {(int)g->shape[0], (int)g->shape[1], (int)g->shape[2]};
        float *out = malloc(sizeof(float) * (size_t)vp_tensor_numel(g));
        vp_nnunet_gaussian(p, half, out);
        int64_t bad = 0;
        for (int64_t i = 0; i < vp_tensor_numel(g); i++) bad += out[i] != g->data[i];
        cr_expect_eq(bad, 0, "half=%d: %lld values differ", half, (long long)bad);
        free(out);
        vp_tensor_free(&g);
    }
    vp_st_close(&st);
}

/* Sliding window (+ TTA) against nnU-Net's: f32 aggregation within 1e-4 of the f32 variant and
 * labels identical except where the golden top two logits are within 2e-4 (ties); f16
 * aggregation (nnU-Net's own) within 2 f16 ulps of max |y| of nnU-Net's f16 result (a network output
 * differing in the 7th digit can round a f16 partial sum the other way). */
static void sw_case(const char *file)
{
    vp_threads = 2;
    vp_unet *m = vp_unet_load(G "model.safetensors");
    cr_assert(m);
    vp_safetensors *st = vp_st_open(file);
    cr_assert(st);
    vp_tensor *x = vp_st_load(st, "x");
    cr_assert(x);
    int tta = vp_st_meta(st, "mirror")[0] != 0;
    int64_t shp[5] = {1, x->shape[0], x->shape[1], x->shape[2], x->shape[3]};
    vp_tensor img = vp_tensor_view(x->data, 5, shp);
    for (int half = 0; half < 2; half++) {
        vp_tensor *yg = vp_st_load(st, half ? "y16" : "y32");
        cr_assert(yg);
        vp_nnunet_opts o = {0.5, tta, half};
        vp_nnunet_result *r = vp_nnunet_predict(&m, 1, vp_nn_backend_cpu(), &img, &o);
        cr_assert(r);
        check_sw(file, r, yg, half);
        vp_nnunet_result_free(&r);
        vp_tensor_free(&yg);
    }
    vp_tensor_free(&x);
    vp_st_close(&st);
    vp_unet_free(&m);
}

Test(unet, sliding_window) { sw_case(G "sw.safetensors"); }
Test(unet, sliding_window_tta) { sw_case(G "sw_tta.safetensors"); }

/* The same bytes for 1 and 3 threads. */
Test(unet, deterministic)
{
    vp_unet *m = vp_unet_load(G "model.safetensors");
    vp_safetensors *st = vp_st_open(G "sw.safetensors");
    cr_assert(m && st);
    vp_tensor *x = vp_st_load(st, "x");
    int64_t shp[5] = {1, x->shape[0], x->shape[1], x->shape[2], x->shape[3]};
    vp_tensor img = vp_tensor_view(x->data, 5, shp);
    vp_nnunet_opts o = {0.5, 1, 0};
    vp_threads = 1;
    vp_nnunet_result *a = vp_nnunet_predict(&m, 1, vp_nn_backend_cpu(), &img, &o);
    vp_threads = 3;
    vp_nnunet_result *b = vp_nnunet_predict(&m, 1, vp_nn_backend_cpu(), &img, &o);
    cr_assert(a && b);
    cr_expect_eq(memcmp(a->f, b->f, sizeof(float) * (size_t)(a->n_classes * a->dims[0] * a->dims[1] * a->dims[2])), 0);
    vp_nnunet_result_free(&a), vp_nnunet_result_free(&b);
    vp_tensor_free(&x);
    vp_st_close(&st);
    vp_unet_free(&m);
}
