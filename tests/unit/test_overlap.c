/* Unit tests of lib/overlap: the one-pass pair counts against a plain voxel-by-voxel count for every
 * pair of dtypes, over volumes with long runs and with noise, with 1..5 threads (the same counts);
 * group counts equal to the sum of the mask pairs; bad inputs rejected; lib/classes parsing. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "classes.h"
#include "cli.h"
#include "overlap.h"

static const double eye[16] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};

/* labels in -3..9 (u8/u16: 0..9), mostly long runs of background, some noise */
static vp_vol *make(enum vp_dtype t, uint64_t nx, uint64_t ny, uint64_t nz, unsigned seed, int noise)
{
    uint64_t dims[4] = {nx, ny, nz, 1};
    vp_vol *v = vp_vol_new(dims, t, eye);
    uint64_t n = nx * ny * nz;
    int lo = (t == VP_U8 || t == VP_U16) ? 0 : -3;
    int cur = 0;
    for (uint64_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        unsigned r = seed >> 16;
        if (r % 1000 < (unsigned)noise) cur = lo + (int)(r / 1000 % (unsigned)(10 - lo));
        else if (r % 1000 > 990) cur = 0;
        int val = cur;
        switch (t) {
        case VP_U8: ((uint8_t *)v->data)[i] = (uint8_t)val; break;
        case VP_U16: ((uint16_t *)v->data)[i] = (uint16_t)val; break;
        case VP_I16: ((int16_t *)v->data)[i] = (int16_t)val; break;
        case VP_I32: ((int32_t *)v->data)[i] = val * 1000; break; /* spread ids */
        case VP_F16: ((uint16_t *)v->data)[i] = vp_float_to_half((float)val); break;
        case VP_F32: ((float *)v->data)[i] = val == 0 && (i & 1) ? -0.0f : (float)val; break;
        default: break;
        }
    }
    return v;
}

/* reference: per voxel, the (pred, ref) value pair, counted for the mask "value == c" */
static void brute(const vp_vol *p, const vp_vol *r, int64_t c, struct vp_counts *out)
{
    memset(out, 0, sizeof *out);
    uint64_t n = vp_vol_nvox(p);
    for (uint64_t i = 0; i < n; i++) {
        int a = vp_vol_get(p, i) == (double)c, b = vp_vol_get(r, i) == (double)c;
        if (a && b) out->tp++;
        else if (a) out->fp++;
        else if (b) out->fn++;
        else out->tn++;
    }
}

Test(overlap, pair_counts_match_a_plain_count_for_all_dtypes_and_threads)
{
    for (int tp = 0; tp < VP_NDTYPES; tp++)
        for (int tr = 0; tr < VP_NDTYPES; tr++) {
            vp_vol *p = make((enum vp_dtype)tp, 97, 61, 37, 11u + (unsigned)tp, 40); /* 4 ranges of 2^16 voxels */
            vp_vol *r = make((enum vp_dtype)tr, 97, 61, 37, 11u + (unsigned)tp, 25); /* same runs, other noise */
            vp_confusion ref_cf = {0};
            for (int th = 1; th <= 5; th += 2) {
                vp_threads = th;
                vp_confusion cf;
                cr_assert_eq(vp_overlap_count(p, "pred", r, "ref", "test", &cf), 0);
                uint64_t sum = 0;
                for (size_t i = 0; i < cf.npairs; i++) sum += cf.pairs[i].n;
                cr_assert_eq(sum, vp_vol_nvox(p));
                if (th == 1) {
                    ref_cf = cf;
                    for (size_t k = 0; k < cf.nvals; k++) {
                        struct vp_counts a, b;
                        vp_confusion_counts(&cf, &cf.vals[k], 1, &a);
                        brute(p, r, cf.vals[k], &b);
                        cr_assert(a.tp == b.tp && a.fp == b.fp && a.fn == b.fn && a.tn == b.tn,
                                  "dtypes %d/%d class %lld: %llu %llu %llu vs %llu %llu %llu", tp, tr,
                                  (long long)cf.vals[k], (unsigned long long)a.tp, (unsigned long long)a.fp,
                                  (unsigned long long)a.fn, (unsigned long long)b.tp, (unsigned long long)b.fp,
                                  (unsigned long long)b.fn);
                    }
                } else {
                    cr_assert_eq(cf.npairs, ref_cf.npairs);
                    cr_assert_eq(memcmp(cf.pairs, ref_cf.pairs, cf.npairs * sizeof *cf.pairs), 0,
                                 "counts differ between 1 and %d threads", th);
                    vp_confusion_free(&cf);
                }
            }
            vp_confusion_free(&ref_cf);
            vp_vol_free(&p);
            vp_vol_free(&r);
        }
    vp_threads = 1;
}

Test(overlap, group_counts_are_the_union_mask)
{
    vp_vol *p = make(VP_I16, 40, 30, 20, 5, 60), *r = make(VP_I16, 40, 30, 20, 6, 60);
    vp_confusion cf;
    cr_assert_eq(vp_overlap_count(p, "pred", r, "ref", "test", &cf), 0);
    int64_t set[] = {-2, 1, 4};
    struct vp_counts g = {0};
    vp_confusion_counts(&cf, set, 3, &g);
    uint64_t tp = 0, fp = 0, fn = 0, n = vp_vol_nvox(p);
    for (uint64_t i = 0; i < n; i++) {
        double a = vp_vol_get(p, i), b = vp_vol_get(r, i);
        int ia = a == -2 || a == 1 || a == 4, ib = b == -2 || b == 1 || b == 4;
        tp += ia && ib; fp += ia && !ib; fn += !ia && ib;
    }
    cr_assert(g.tp == tp && g.fp == fp && g.fn == fn && g.tn == n - tp - fp - fn);
    vp_confusion_free(&cf);
    vp_vol_free(&p);
    vp_vol_free(&r);
}

static void quiet(void) { cr_redirect_stderr(); }

Test(overlap, bad_inputs_are_rejected, .init = quiet)
{
    vp_vol *p = make(VP_U8, 8, 8, 8, 1, 50), *r = make(VP_U8, 8, 8, 9, 1, 50);
    vp_confusion cf;
    cr_assert_eq(vp_overlap_count(p, "pred", r, "ref", "c", &cf), -1, "different dims");
    vp_vol_free(&r);
    r = make(VP_U8, 8, 8, 8, 1, 50);
    r->affine[3] += 0.5;
    cr_assert_eq(vp_overlap_count(p, "pred", r, "ref", "c", &cf), -1, "shifted origin");
    vp_vol_free(&r);
    r = make(VP_F32, 8, 8, 8, 1, 50);
    ((float *)r->data)[77] = 2.5f;
    cr_assert_eq(vp_overlap_count(p, "pred", r, "ref", "c", &cf), -1, "non-integer label");
    ((float *)r->data)[77] = NAN;
    cr_assert_eq(vp_overlap_count(p, "pred", r, "ref", "c", &cf), -1, "NaN label");
    vp_vol_free(&r);
    vp_vol_free(&p);
    uint64_t dims[4] = {64, 64, 2, 1};
    p = vp_vol_new(dims, VP_I32, eye);
    r = vp_vol_new(dims, VP_I32, eye);
    for (int i = 0; i < 64 * 64 * 2; i++) ((int32_t *)p->data)[i] = i;
    cr_assert_eq(vp_overlap_count(p, "pred", r, "ref", "c", &cf), -1, "more than VP_OVERLAP_MAX_VALUES values");
    vp_vol_free(&r);
    vp_vol_free(&p);
}

Test(overlap, class_lists)
{
    vp_classnames names = {0};
    int64_t ids[] = {3, 20, 21};
    char *nm[] = {"sacrum", "vertebrae_L1", "kidney-left"};
    names.n = 3; names.ids = ids; names.names = nm;
    int64_t *out;
    size_t n;
    char why[256];
    cr_assert_eq(vp_classes_parse("5-7,vertebrae_L1,3,6,kidney-left", &names, &out, &n, why, sizeof why), 0, "%s", why);
    int64_t want[] = {3, 5, 6, 7, 20, 21};
    cr_assert_eq(n, 6);
    for (size_t i = 0; i < n; i++) cr_expect_eq(out[i], want[i]);
    free(out);
    cr_expect_eq(vp_classes_parse("7-5", &names, &out, &n, why, sizeof why), -1);
    cr_expect_eq(vp_classes_parse("1,,2", &names, &out, &n, why, sizeof why), -1);
    cr_expect_eq(vp_classes_parse("3-", &names, &out, &n, why, sizeof why), -1);
    cr_expect_eq(vp_classes_parse("liver", &names, &out, &n, why, sizeof why), -2);
    cr_expect_eq(vp_classes_parse("liver", NULL, &out, &n, why, sizeof why), 0, "syntax only");
    free(out);
    vp_group g;
    cr_expect_eq(vp_group_parse("lumbar=20-24", &g, why, sizeof why), 0);
    cr_expect_str_eq(g.name, "lumbar");
    cr_expect_str_eq(g.spec, "20-24");
    cr_expect_eq(vp_group_parse("12=1-3", &g, why, sizeof why), -1, "a number is not a group name");
    cr_expect_eq(vp_group_parse("lumbar", &g, why, sizeof why), -1);
}
