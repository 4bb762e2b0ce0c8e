/* Unit tests for the safetensors reader: a model file in safetensors.torch.save_file's layout
 * (f32, f16 incl. subnormal and inf, bf16, an int64 counter, a 0-d scalar, metadata with escapes)
 * against torch's own f32 conversion, and each malformed variant refused with its message
 * (files from tests/scripts/make_golden_nn.py). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn_safetensors.h"

#define GOLDEN "tests/golden/nn/"

Test(nn_safetensors, model_file)
{
    vp_safetensors *st = vp_st_open(GOLDEN "st_model.safetensors");
    cr_assert(st);
    cr_assert_eq(vp_st_count(st), 6);
    cr_assert_str_eq(vp_st_at(st, 0)->name, "encoder.conv.weight");
    cr_assert_str_eq(vp_st_meta(st, "arch"), "SegResNet");
    /* the JSON escape \u00e9 decoded to UTF-8 */
    cr_assert_str_eq(vp_st_meta(st, "label_names"), "{\"1\": \"spleen\", \"2\": \"kid\xc3\xa9ney\"}");
    cr_assert_null(vp_st_meta(st, "nope"));
    int64_t ws[5] = {4, 3, 3, 3, 3};
    vp_tensor *w = vp_st_load_shape(st, "encoder.conv.weight", 5, ws);
    cr_assert(w);
    cr_assert_eq(vp_tensor_numel(w), 4 * 81);
    vp_tensor *s = vp_st_load(st, "scalar");
    cr_assert(s);
    cr_assert_eq(s->ndim, 0);
    cr_assert_eq(s->data[0], 2.5f);

    vp_safetensors *ex = vp_st_open(GOLDEN "st_model_expected.safetensors");
    cr_assert(ex);
    const char *names[] = {"half", "bf"};
    for (int k = 0; k < 2; k++) {
        vp_tensor *a = vp_st_load(st, names[k]), *b = vp_st_load(ex, names[k]);
        cr_assert(a && b);
        cr_assert(vp_tensor_same_shape(a, b));
        cr_assert_eq(memcmp(a->data, b->data, (size_t)vp_tensor_numel(a) * 4), 0, "%s differs from torch's .float()", names[k]);
        vp_tensor_free(&a), vp_tensor_free(&b);
    }
    cr_assert_eq(strcmp(vp_st_find(st, "steps")->dtype, "I64"), 0);
    vp_tensor_free(&w), vp_tensor_free(&s);
    vp_st_close(&ex);
    vp_st_close(&st);
    cr_assert_null(st);
}

/* Run fn-like open/load with stderr captured into buf. */
static void capture_begin(int *saved, char *tmpl)
{
    fflush(stderr);
    *saved = dup(2);
    int fd = mkstemp(tmpl);
    cr_assert(fd >= 0);
    dup2(fd, 2);
    close(fd);
}

static void capture_end(int saved, char *tmpl, char *buf, size_t n)
{
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    FILE *f = fopen(tmpl, "r");
    size_t k = fread(buf, 1, n - 1, f);
    buf[k] = 0;
    fclose(f);
    unlink(tmpl);
}

Test(nn_safetensors, malformed)
{
    static const struct { const char *file, *msg; } bad[] = {
        {"st_bad_header_len", "bad header: length"},
        {"st_bad_not_json", "bad header at byte"},
        {"st_bad_not_object", "does not start with '{'"},
        {"st_bad_offsets_range", "out of range"},
        {"st_bad_overlap", "overlaps tensor"},
        {"st_bad_dtype", "unknown dtype \"F99\""},
        {"st_bad_shape", "shape needs 24 bytes, data_offsets give 16"},
        {"st_bad_truncated", "out of range"},
        {"st_bad_negative", "expected a non-negative integer"},
        {"st_bad_dup", "appears twice"},
        {"st_bad_meta_value", "__metadata__ values must be strings"},
        {"st_bad_short", "too short"},
        {"does_not_exist", "cannot open"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char path[256], tmpl[] = "/tmp/vp-st-XXXXXX", err[1024];
        int saved;
        snprintf(path, sizeof path, GOLDEN "%s.safetensors", bad[i].file);
        capture_begin(&saved, tmpl);
        vp_safetensors *st = vp_st_open(path);
        capture_end(saved, tmpl, err, sizeof err);
        cr_expect_null(st, "%s accepted", bad[i].file);
        cr_expect(strstr(err, bad[i].msg), "%s: message \"%s\" lacks \"%s\"", bad[i].file, err, bad[i].msg);
        cr_expect(strstr(err, path), "%s: message does not name the file", bad[i].file);
        vp_st_close(&st);
    }
}

Test(nn_safetensors, load_errors)
{
    vp_safetensors *st = vp_st_open(GOLDEN "st_model.safetensors");
    cr_assert(st);
    char tmpl[] = "/tmp/vp-st-XXXXXX", err[1024];
    int saved;
    capture_begin(&saved, tmpl);
    vp_tensor *a = vp_st_load(st, "missing.weight");
    vp_tensor *b = vp_st_load(st, "steps");
    int64_t wrong[5] = {4, 3, 3, 3, 1};
    vp_tensor *c = vp_st_load_shape(st, "encoder.conv.weight", 5, wrong);
    capture_end(saved, tmpl, err, sizeof err);
    cr_assert_null(a);
    cr_assert_null(b);
    cr_assert_null(c);
    cr_assert(strstr(err, "tensor \"missing.weight\" missing"), "%s", err);
    cr_assert(strstr(err, "dtype I64 not supported"), "%s", err);
    cr_assert(strstr(err, "shape (4,3,3,3,3), expected (4,3,3,3,1)"), "%s", err);
    vp_st_close(&st);
}

Test(nn_safetensors, half_conversions)
{
    cr_assert_eq(vp_f16_to_f32(0x3C00), 1.0f);
    cr_assert_eq(vp_f16_to_f32(0xC000), -2.0f);
    cr_assert_eq(vp_f16_to_f32(0x0001), 5.9604644775390625e-8f); /* 2^-24, the smallest subnormal */
    cr_assert_eq(vp_f16_to_f32(0x7BFF), 65504.0f);
    cr_assert_eq(vp_bf16_to_f32(0x3F80), 1.0f);
}
