/* Unit tests for the inference preprocessing (lib/nn_preprocess.c) and model metadata
 * (lib/nn_meta.c) against nnU-Net v2's DefaultPreprocessor and MONAI's Spacing +
 * ScaleIntensityRange on crops of the real CT (tests/golden/nnprep/, made by
 * tests/scripts/make_golden_nnprep.py), and the metadata parser's error cases. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "nn_meta.h"
#include "nn_preprocess.h"
#include "nn_safetensors.h"

#define G "tests/golden/nnprep/"

/* The golden's x (nz, ny, nx) as a volume with the affine of its metadata. */
static vp_vol *golden_vol(const vp_safetensors *st, const char *name)
{
    vp_tensor *t = vp_st_load(st, name);
    cr_assert(t && t->ndim == 3);
    uint64_t dims[4] = {(uint64_t)t->shape[2], (uint64_t)t->shape[1], (uint64_t)t->shape[0], 1};
    double aff[16] = {0};
    const char *s = vp_st_meta(st, "affine");
    cr_assert(s);
    for (int i = 0; i < 16; i++) {
        char *end;
        aff[i] = strtod(s, &end);
        cr_assert(end != s);
        s = *end == ',' ? end + 1 : end;
    }
    vp_vol *v = vp_vol_new(dims, VP_F32, aff);
    memcpy(v->data, t->data, sizeof(float) * (size_t)vp_tensor_numel(t));
    vp_tensor_free(&t);
    return v;
}

/* The preprocessed image equals the peer's: same dims, values within tol (abs). */
static void prep_case(const char *file, double tol)
{
    vp_threads = 2;
    vp_safetensors *st = vp_st_open(file);
    cr_assert(st, "cannot open %s (run tests/scripts/make_golden_nnprep.py)", file);
    vp_nn_meta m;
    cr_assert_eq(vp_nn_meta_read(st, file, &m), 0);
    cr_assert(m.has_spacing && m.has_norm);
    vp_vol *x = golden_vol(st, "x"), *y = golden_vol(st, "y");
    enum vp_nn_style style = strcmp(vp_st_meta(st, "style"), "monai") ? VP_NN_STYLE_NNUNET : VP_NN_STYLE_MONAI;
    vp_nn_prep p;
    vp_vol *o = vp_nn_preprocess(x, &m, style, &p, file);
    cr_assert(o);
    cr_expect(p.resampled);
    for (int a = 0; a < 3; a++)
        cr_assert_eq(o->dims[a], y->dims[a], "%s: axis %d: %llu voxels, the peer has %llu", file, a,
                     (unsigned long long)o->dims[a], (unsigned long long)y->dims[a]);
    double d = 0, ymax = 0;
    for (uint64_t i = 0; i < vp_vol_nvox(o); i++) {
        float a = ((float *)o->data)[i], b = ((float *)y->data)[i];
        cr_assert(!isnan(a));
        d = fmax(d, fabs((double)a - b));
        ymax = fmax(ymax, fabs((double)b));
    }
    cr_log_info("%s: %llu voxels, max |y| %.3f, max abs diff %.3g", file, (unsigned long long)vp_vol_nvox(o), ymax, d);
    cr_expect_leq(d, tol, "%s: max abs diff %g > %g", file, d, tol);
    /* the model grid's affine maps back onto the input: vp_nn_linear_back gives the input's dims */
    vp_vol *back = vp_nn_linear_back(o, &p, file);
    cr_assert(back);
    for (int a = 0; a < 3; a++) cr_expect_eq(back->dims[a], x->dims[a]);
    cr_expect_eq(memcmp(back->affine, x->affine, sizeof x->affine), 0);
    vp_vol_free(&back), vp_vol_free(&o), vp_vol_free(&x), vp_vol_free(&y);
    vp_nn_meta_free(&m);
    vp_st_close(&st);
}

Test(nn_preprocess, nnunet_isotropic) { prep_case(G "nnunet_iso.safetensors", 1e-5); }
Test(nn_preprocess, nnunet_anisotropic_separate_z) { prep_case(G "nnunet_aniso.safetensors", 1e-5); }
Test(nn_preprocess, monai_spacing_scale_range) { prep_case(G "monai.safetensors", 1e-6); }

/* Label names: JSON escapes (\", \uXXXX, a surrogate pair) to UTF-8, sorted by id. */
Test(nn_meta, labels)
{
    vp_safetensors *st = vp_st_open(G "nnunet_iso.safetensors");
    cr_assert(st);
    vp_nn_meta m;
    cr_assert_eq(vp_nn_meta_read(st, "t", &m), 0);
    cr_assert_eq(m.nlabels, 3);
    cr_expect_str_eq(m.labels[1].name, "a \"quoted\" name");
    cr_expect_str_eq(m.labels[2].name, "caf\xc3\xa9 \xf0\x9f\xa6\xb4");
    for (int i = 0; i < 3; i++) cr_expect_eq(m.labels[i].id, i);
    vp_nn_meta_free(&m);
    vp_st_close(&st);
    st = vp_st_open(G "monai.safetensors"); /* {"2": "b", "1": "a"}: sorted */
    cr_assert(st);
    cr_assert_eq(vp_nn_meta_read(st, "t", &m), 0);
    cr_assert_eq(m.nlabels, 2);
    cr_expect(m.labels[0].id < m.labels[1].id);
    cr_expect_str_eq(m.labels[0].name, "a");
    vp_nn_meta_free(&m);
    vp_st_close(&st);
}

/* A safetensors file with no tensors and one metadata pair. */
static void write_meta_file(const char *path, const char *key, const char *json_value)
{
    char h[1024];
    int n = snprintf(h, sizeof h, "{\"__metadata__\":{\"%s\":%s}}", key, json_value);
    while (n % 8) h[n++] = ' ';
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    uint64_t len = (uint64_t)n;
    fwrite(&len, 8, 1, f);
    fwrite(h, 1, (size_t)n, f);
    fclose(f);
}

/* Malformed values are errors (-1), never a crash or a partial result. */
Test(nn_meta, malformed, .init = cr_redirect_stderr)
{
    const char *cases[][2] = {
        {"labels", "\"{\\\"1\\\": \\\"a\\\",\""},         /* truncated object */
        {"labels", "\"[\\\"a\\\"]\""},                    /* not an object */
        {"labels", "\"{\\\"x\\\": \\\"a\\\"}\""},          /* id not a number */
        {"labels", "\"{\\\"1\\\": 2}\""},                  /* name not a string */
        {"labels", "\"{\\\"1\\\": \\\"a\\\", \\\"1\\\": \\\"b\\\"}\""}, /* id twice */
        {"labels", "\"{\\\"1\\\": \\\"\\\\ud83e\\\"}\""},  /* lone high surrogate */
        {"labels", "\"{\\\"1\\\": \\\"a\\\"} x\""},        /* trailing text */
        {"voxpipe.labels", "\"{\\\"70000\\\": \\\"a\\\"}\""}, /* id out of range */
        {"spacing", "\"1,2\""},
        {"spacing", "\"1,-2,3\""},
        {"voxpipe.spacing", "\"1,2,3,4\""},
        {"voxpipe.norm", "\"range\""},                     /* a_min .. missing */
        {"voxpipe.norm", "\"window\""},
        {"normalization", "\"[\\\"CTNormalization\\\"]\""}, /* no intensity_properties */
        {"normalization", "\"[\\\"CTNormalization\\\", \\\"CTNormalization\\\"]\""},
        {"normalization", "\"{}\""},
    };
    char path[64];
    snprintf(path, sizeof path, "/tmp/vp_nn_meta_%d.safetensors", (int)getpid());
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_meta_file(path, cases[i][0], cases[i][1]);
        vp_safetensors *st = vp_st_open(path);
        cr_assert(st, "case %zu: the file itself should be valid", i);
        vp_nn_meta m;
        cr_expect_eq(vp_nn_meta_read(st, "t", &m), -1, "case %zu (%s = %s) accepted", i, cases[i][0], cases[i][1]);
        cr_expect_eq(m.nlabels, 0);
        cr_expect_null(m.labels);
        vp_st_close(&st);
    }
    /* and a well-formed one passes */
    write_meta_file(path, "labels", "\"{\\\"1\\\": \\\"a\\\\u00e9\\\"}\"");
    vp_safetensors *st = vp_st_open(path);
    cr_assert(st);
    vp_nn_meta m;
    cr_assert_eq(vp_nn_meta_read(st, "t", &m), 0);
    cr_expect_str_eq(m.labels[0].name, "a\xc3\xa9");
    vp_nn_meta_free(&m);
    vp_st_close(&st);
    remove(path);
}
