/* Unit tests for SegResNet (lib/nn_segresnet.h) and sliding-window inference (lib/nn_sliding.h)
 * against MONAI (tests/golden/segresnet/, made by tests/scripts/make_golden_segresnet.py): the
 * whole-network logits on the reference and CPU backends, the sliding-window logits and their
 * argmax, the same bytes for 1 and 2 threads, and the model-file errors. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "nn_segresnet.h"
#include "nn_sliding.h"

#define GOLDEN "tests/golden/segresnet/"
#define TOL 1e-4

static vp_segresnet *load_model(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, GOLDEN "model_%s.safetensors", name);
    vp_safetensors *st = vp_st_open(path);
    cr_assert(st, "cannot open %s (run tests/scripts/make_golden_segresnet.py)", path);
    vp_segresnet *m = vp_segresnet_load(st, path);
    vp_st_close(&st);
    cr_assert(m, "loading %s failed", path);
    return m;
}

static void load_case(const char *file, vp_tensor **x, vp_tensor **y, vp_safetensors **keep)
{
    char path[256];
    snprintf(path, sizeof path, GOLDEN "%s.safetensors", file);
    vp_safetensors *st = vp_st_open(path);
    cr_assert(st, "cannot open %s", path);
    *x = vp_st_load(st, "x");
    *y = vp_st_load(st, "y");
    cr_assert(*x && *y);
    if (keep) *keep = st;
    else vp_st_close(&st);
}

static double max_abs_diff(const vp_tensor *a, const vp_tensor *b)
{
    cr_assert(vp_tensor_same_shape(a, b), "shapes differ");
    double m = 0;
    for (int64_t i = 0; i < vp_tensor_numel(a); i++) {
        double d = fabs((double)a->data[i] - b->data[i]);
        cr_assert(!isnan(d), "NaN at %lld", (long long)i);
        if (d > m) m = d;
    }
    return m;
}

static void forward_case(const char *name)
{
    char file[64];
    snprintf(file, sizeof file, "fwd_%s", name);
    vp_segresnet *m = load_model(name);
    vp_tensor *x, *yg;
    load_case(file, &x, &yg, NULL);
    vp_threads = 2;
    const vp_nn_backend *bes[2] = {vp_nn_backend_ref(), vp_nn_backend_cpu()};
    for (int b = 0; b < 2; b++) {
        vp_tensor *y = NULL;
        cr_assert_eq(vp_segresnet_forward(m, bes[b], x, &y), 0, "%s forward failed on %s", name, bes[b]->name);
        double d = max_abs_diff(y, yg);
        cr_log_info("segresnet %-7s %-3s: max abs diff to MONAI %.3g", name, bes[b]->name, d);
        cr_expect_leq(d, TOL, "%s on %s: max abs diff %g", name, bes[b]->name, d);
        vp_tensor_free(&y);
    }
    vp_tensor_free(&x);
    vp_tensor_free(&yg);
    vp_segresnet_free(&m);
}

Test(segresnet, forward_nontrainable_vs_monai) { forward_case("small"); }
Test(segresnet, forward_deconv_vs_monai) { forward_case("deconv"); }

/* The CPU backend gives the same bytes with 1 and 2 threads. */
Test(segresnet, deterministic_threads)
{
    vp_segresnet *m = load_model("small");
    vp_tensor *x, *yg, *y1 = NULL, *y2 = NULL;
    load_case("fwd_small", &x, &yg, NULL);
    vp_threads = 1;
    cr_assert_eq(vp_segresnet_forward(m, vp_nn_backend_cpu(), x, &y1), 0);
    vp_threads = 2;
    cr_assert_eq(vp_segresnet_forward(m, vp_nn_backend_cpu(), x, &y2), 0);
    cr_expect_eq(memcmp(y1->data, y2->data, (size_t)vp_tensor_numel(y1) * sizeof(float)), 0);
    vp_tensor_free(&x), vp_tensor_free(&yg), vp_tensor_free(&y1), vp_tensor_free(&y2);
    vp_segresnet_free(&m);
}

/* An input whose size is not divisible by 2^(levels-1) is an error, not a crash. */
Test(segresnet, bad_input_shape, .init = cr_redirect_stderr)
{
    vp_segresnet *m = load_model("small");
    vp_tensor *x = vp_tensor_zeros(5, (int64_t[5]){1, 1, 12, 16, 16}), *y = NULL;
    cr_expect_eq(vp_segresnet_forward(m, vp_nn_backend_cpu(), x, &y), -1);
    cr_expect_null(y);
    vp_tensor_free(&x);
    vp_segresnet_free(&m);
}

struct pred {
    const vp_segresnet *m;
    const vp_nn_backend *be;
};

static int predict(void *ctx, const vp_tensor *x, vp_tensor **y)
{
    const struct pred *p = ctx;
    return vp_segresnet_forward(p->m, p->be, x, y);
}

static void parse3(const char *s, int out[3])
{
    cr_assert(s && sscanf(s, "%d,%d,%d", &out[0], &out[1], &out[2]) == 3);
}

static void sliding_case(const char *name, int pad_mode)
{
    char file[64];
    snprintf(file, sizeof file, "sw_%s", name);
    vp_segresnet *m = load_model("small");
    vp_tensor *x, *yg, *y = NULL;
    vp_safetensors *st;
    load_case(file, &x, &yg, &st);
    vp_sw_params p = {{0, 0, 0}, 0, 1, 0.125, pad_mode, 0.0f};
    parse3(vp_st_meta(st, "roi"), p.roi);
    p.overlap = strtod(vp_st_meta(st, "overlap"), NULL);
    cr_assert_str_eq(vp_st_meta(st, "padding_mode"), name);
    vp_threads = 2;
    struct pred pr = {m, vp_nn_backend_cpu()};
    cr_assert_eq(vp_sliding_window(x, &p, predict, &pr, NULL, &y), 0);
    double d = max_abs_diff(y, yg);
    cr_log_info("sliding window %-9s: max abs diff to MONAI %.3g", name, d);
    cr_expect_leq(d, TOL, "sliding window %s: max abs diff %g", name, d);
    /* argmax labels: identical wherever MONAI's top two logits are more than 2 TOL apart */
    int64_t K = yg->shape[1], V = vp_tensor_numel(yg) / K, differ = 0, ties = 0;
    for (int64_t v = 0; v < V; v++) {
        int ag = 0, a = 0;
        for (int k = 1; k < K; k++) {
            if (yg->data[k * V + v] > yg->data[ag * V + v]) ag = k;
            if (y->data[k * V + v] > y->data[a * V + v]) a = k;
        }
        if (a == ag) continue;
        if (fabs(yg->data[a * V + v] - yg->data[ag * V + v]) <= 2 * TOL) ties++;
        else differ++;
    }
    cr_log_info("sliding window %-9s: %lld of %lld labels differ, %lld near-ties", name, (long long)differ,
                (long long)V, (long long)ties);
    cr_expect_eq(differ, 0);
    vp_tensor_free(&x), vp_tensor_free(&yg), vp_tensor_free(&y);
    vp_st_close(&st);
    vp_segresnet_free(&m);
}

Test(sliding, constant_padding_vs_monai) { sliding_case("constant", VP_SW_PAD_CONSTANT); }
Test(sliding, replicate_padding_vs_monai) { sliding_case("replicate", VP_SW_PAD_REPLICATE); }

/* Model-file errors: NULL and a message naming the file and what is wrong. */
static void bad_model(const char *name, const char *want)
{
    char path[256];
    snprintf(path, sizeof path, GOLDEN "bad_%s.safetensors", name);
    vp_safetensors *st = vp_st_open(path);
    cr_assert(st, "cannot open %s", path);
    vp_segresnet *m = vp_segresnet_load(st, path);
    vp_st_close(&st);
    if (!want) {
        cr_expect(m != NULL, "%s should load", name);
        vp_segresnet_free(&m);
        return;
    }
    cr_expect_null(m, "%s should not load", name);
    fflush(stderr);
    FILE *f = cr_get_redirected_stderr();
    char buf[4096] = {0};
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    cr_expect(strstr(buf, want) != NULL, "%s: stderr lacks '%s': %s", name, want, buf);
    cr_expect(strstr(buf, path) != NULL, "%s: stderr does not name the file: %s", name, buf);
}

Test(model_file, valid_one_level, .init = cr_redirect_stderr) { bad_model("ok", NULL); }
Test(model_file, missing_tensor, .init = cr_redirect_stderr)
{
    bad_model("missing", "tensor down_layers.0.2.conv2.conv.weight is missing");
}
Test(model_file, shape_mismatch, .init = cr_redirect_stderr) { bad_model("shape", "convInit.conv.weight"); }
Test(model_file, wrong_arch, .init = cr_redirect_stderr) { bad_model("arch", "voxpipe.arch is \"unet\""); }
Test(model_file, extra_tensors, .init = cr_redirect_stderr) { bad_model("blocks", "the metadata does not match the weights"); }
Test(model_file, upsample_mode, .init = cr_redirect_stderr) { bad_model("upmode", "\"pixelshuffle\" is not supported"); }
