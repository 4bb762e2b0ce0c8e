/* Unit tests of the trainers' data side and state files: generator, case checks, the FIFO cache,
 * patch sampling (padding, foreground oversampling, rank shares), the safetensors state writer,
 * the history and its SVG. No network is involved (lib/trainer_data.c, lib/trainer_ckpt.c). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frame.h"
#include "nn_safetensors.h"
#include "trainer_ckpt.h"
#include "trainer_data.h"

static char tmpdir[256];

static void mk_tmp(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/vp-test-trainer-XXXXXX");
    cr_assert(mkdtemp(tmpdir));
}

static void rm_tmp(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(trainer, .init = mk_tmp, .fini = rm_tmp);

/* A case nx x ny x nz: image i16 = x + 10 y + 100 z, label 1 in a small box, 2 at one voxel. */
static vp_case *make_case(const char *id, int nx, int ny, int nz)
{
    uint64_t dims[4] = {(uint64_t)nx, (uint64_t)ny, (uint64_t)nz, 1};
    double aff[16] = {2, 0, 0, 0, 0, 3, 0, 0, 0, 0, 4, 0, 0, 0, 0, 1};
    vp_vol *im = vp_vol_new(dims, VP_I16, aff), *lb = vp_vol_new(dims, VP_U8, aff);
    for (int z = 0; z < nz; z++)
        for (int y = 0; y < ny; y++)
            for (int x = 0; x < nx; x++) {
                int i = (z * ny + y) * nx + x;
                ((int16_t *)im->data)[i] = (int16_t)(x + 10 * y + 100 * z);
                ((uint8_t *)lb->data)[i] = (x >= 1 && x <= 2 && y >= 1 && y <= 2 && z == 1) ? 1 : 0;
            }
    ((uint8_t *)lb->data)[(nz - 1) * ny * nx + (ny - 1) * nx + (nx - 1)] = 2;
    vp_case *c = vp_case_new(id);
    vp_case_add_vol(c, "image", im);
    vp_case_add_vol(c, "label", lb);
    return c;
}

static vp_tcase *make_tcase(const char *id, int nx, int ny, int nz)
{
    vp_case *c = make_case(id, nx, ny, nz);
    vp_tcase *t;
    cr_assert_eq(vp_tcase_from_case(c, "image", "label", 3, "test", &t), 0);
    vp_case_free(&c);
    return t;
}

Test(trainer, rng_reproducible_and_state_round_trip)
{
    vp_rng a, b;
    vp_rng_seed(&a, 7);
    vp_rng_seed(&b, 7);
    for (int i = 0; i < 5; i++) vp_rng_next(&a), vp_rng_next(&b);
    char hex[65];
    vp_rng_to_hex(&a, hex);
    vp_rng c;
    cr_assert_eq(vp_rng_from_hex(&c, hex), 0);
    for (int i = 0; i < 100; i++) {
        uint64_t x = vp_rng_next(&a);
        cr_assert_eq(x, vp_rng_next(&b));
        cr_assert_eq(x, vp_rng_next(&c));
    }
    vp_rng_seed(&b, 8);
    cr_assert_neq(vp_rng_next(&a), vp_rng_next(&b));
    cr_assert_eq(vp_rng_from_hex(&c, "xyz"), -1);
    for (int i = 0; i < 1000; i++) cr_assert_lt(vp_rng_below(&a, 3), 3u);
}

Test(trainer, case_checks_name_case_and_volume)
{
    vp_case *c = make_case("c1", 4, 4, 3);
    vp_tcase *t;
    cr_assert_eq(vp_tcase_from_case(c, "image", "seg", 3, "in", &t), 3); /* no such label */
    cr_assert_null(t);
    cr_assert_eq(vp_tcase_from_case(c, "image", "label", 2, "in", &t), 3); /* label 2 >= classes 2 */
    cr_assert_eq(vp_tcase_from_case(c, "image", "label", 3, "in", &t), 0);
    cr_assert_eq(t->count[1], 4);
    cr_assert_eq(t->count[2], 1);
    cr_assert_eq(t->count[0], 4 * 4 * 3 - 5);
    cr_assert_eq(t->img_f32, 0);
    vp_tcase_free(&t);
    vp_case_vol(c, "label")->affine[3] = 1.0; /* shifted grid */
    cr_assert_eq(vp_tcase_from_case(c, "image", "label", 3, "in", &t), 3);
    vp_case_free(&c);
}

Test(trainer, cache_replaces_the_oldest_first)
{
    vp_tcase *t = make_tcase("a", 4, 4, 3);
    size_t one = t->bytes;
    vp_tcache k;
    vp_tcache_init(&k, 2 * one);
    cr_assert_eq(vp_tcache_insert(&k, t), 0);
    cr_assert_eq(vp_tcache_insert(&k, make_tcase("b", 4, 4, 3)), 0);
    cr_assert_eq(vp_tcache_insert(&k, make_tcase("c", 4, 4, 3)), 1);
    cr_assert_eq(k.n, 2);
    cr_assert_str_eq(k.c[0]->id, "b");
    cr_assert_str_eq(k.c[1]->id, "c");
    cr_assert_leq(k.bytes, k.budget);
    vp_tcache_free(&k);
    vp_tcache_init(&k, 1); /* the newest case stays even alone over budget */
    vp_tcache_insert(&k, make_tcase("x", 4, 4, 3));
    vp_tcache_insert(&k, make_tcase("y", 4, 4, 3));
    cr_assert_eq(k.n, 1);
    cr_assert_str_eq(k.c[0]->id, "y");
    vp_tcache_free(&k);
}

Test(trainer, val_split_by_id_is_stable)
{
    int n = 0;
    char id[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(id, sizeof id, "case%d", i);
        int v = vp_tcase_is_val(id, 0.2);
        cr_assert_eq(v, vp_tcase_is_val(id, 0.2));
        cr_assert(!v || vp_tcase_is_val(id, 0.5)); /* a larger fraction keeps the smaller split */
        n += v;
    }
    cr_assert(n > 100 && n < 300, "split of 1000 ids at 0.2 held out %d", n);
    cr_assert_eq(vp_tcase_is_val("any", 0), 0);
}

Test(trainer, extract_maps_axes_and_pads_with_zeros)
{
    vp_tcase *t = make_tcase("a", 5, 4, 3);
    vp_sampler s = {{3, 4, 5}, 1, 0, VP_AXES_ZYX}; /* (d, h, w) = (z, y, x): the whole case */
    float x[60];
    int32_t y[60];
    int64_t st[3] = {0, 0, 0};
    vp_sampler_extract(&s, t, st, x, y);
    for (int z = 0; z < 3; z++)
        for (int yy = 0; yy < 4; yy++)
            for (int xx = 0; xx < 5; xx++) {
                int o = (z * 4 + yy) * 5 + xx, i = o; /* same layout as the volume */
                cr_assert_eq(x[o], (float)((int16_t *)t->img)[i]);
                cr_assert_eq(y[o], t->lab[i]);
            }
    vp_sampler s2 = {{5, 4, 3}, 1, 0, VP_AXES_XYZ}; /* (d, h, w) = (x, y, z) */
    int64_t st2[3] = {-1, 0, 1}; /* one voxel before x, z from 1: padding at both ends */
    vp_sampler_extract(&s2, t, st2, x, y);
    for (int d = 0; d < 5; d++)
        for (int h = 0; h < 4; h++)
            for (int w = 0; w < 3; w++) {
                int o = (d * 4 + h) * 3 + w, xx = d - 1, z = w + 1;
                int inside = xx >= 0 && z < 3;
                float want = inside ? (float)((int16_t *)t->img)[(z * 4 + h) * 5 + xx] : 0.0f;
                cr_assert_eq(x[o], want, "d %d h %d w %d", d, h, w);
                cr_assert_eq(y[o], inside ? t->lab[(z * 4 + h) * 5 + xx] : 0);
            }
    vp_tcase_free(&t);
}

static int has_fg(const int32_t *y, int n)
{
    for (int i = 0; i < n; i++)
        if (y[i] > 0) return 1;
    return 0;
}

Test(trainer, foreground_oversampling_and_rank_shares)
{
    vp_tcache k;
    vp_tcache_init(&k, 1 << 30);
    vp_tcache_insert(&k, make_tcase("a", 40, 30, 20));
    vp_tcache_insert(&k, make_tcase("b", 40, 30, 20));
    vp_sampler s = {{8, 8, 8}, 3, 0.33, VP_AXES_ZYX};
    cr_assert_eq(vp_sampler_force_fg(&s, 0) + vp_sampler_force_fg(&s, 1), 0);
    cr_assert_eq(vp_sampler_force_fg(&s, 2), 1);
    int pv = 512, fg_forced = 0, fg_free = 0;
    float *x = malloc(3 * pv * sizeof *x), *x1 = malloc(pv * sizeof *x1);
    int32_t *y = malloc(3 * pv * sizeof *y), *y1 = malloc(pv * sizeof *y1);
    vp_rng r, r1;
    vp_rng_seed(&r, 3);
    vp_rng_seed(&r1, 3);
    for (int it = 0; it < 200; it++) {
        vp_sampler_draw(&s, &k, &r, 0, 3, x, y);
        fg_free += has_fg(y, pv) + has_fg(y + pv, pv);
        fg_forced += has_fg(y + 2 * pv, pv);
        /* the share of item 1 alone, drawn from the same generator state, is item 1 of the batch */
        vp_sampler_draw(&s, &k, &r1, 1, 2, x1, y1);
        cr_assert_eq(memcmp(x1, x + pv, pv * sizeof *x), 0);
        cr_assert_eq(memcmp(y1, y + pv, pv * sizeof *y), 0);
    }
    cr_assert_eq(fg_forced, 200); /* every forced item holds foreground */
    cr_assert_lt(fg_free, 200, "random crops hit the small foreground %d times of 400", fg_free);
    cr_assert_eq(memcmp(&r, &r1, sizeof r), 0);
    free(x), free(x1), free(y), free(y1);
    vp_tcache_free(&k);
}

Test(trainer, small_case_is_padded_around)
{
    vp_tcache k;
    vp_tcache_init(&k, 1 << 30);
    vp_tcache_insert(&k, make_tcase("a", 4, 4, 3));
    vp_sampler s = {{8, 8, 8}, 1, 0, VP_AXES_ZYX};
    float x[512];
    int32_t y[512];
    vp_rng r;
    vp_rng_seed(&r, 1);
    for (int it = 0; it < 20; it++) {
        vp_sampler_draw(&s, &k, &r, 0, 1, x, y);
        int n1 = 0, n2 = 0;
        for (int i = 0; i < 512; i++) n1 += y[i] == 1, n2 += y[i] == 2;
        cr_assert_eq(n1, 4); /* the whole case fits inside the patch every time */
        cr_assert_eq(n2, 1);
    }
    vp_tcache_free(&k);
}

Test(trainer, state_file_reads_back_with_the_safetensors_reader)
{
    char path[300];
    snprintf(path, sizeof path, "%s/s.safetensors", tmpdir);
    float a[3] = {1.5f, -2.0f, 3.25f}, b[5] = {0, 1, 2, 3, 4};
    const char *names[2] = {"params", "adamw.exp_avg"}, *keys[2] = {"k\"1", "voxpipe.train.history"};
    const char *vals[2] = {"v\\1", "[[0.5,null]]"};
    const float *data[2] = {a, b};
    int64_t len[2] = {3, 5};
    cr_assert_eq(vp_tst_write(path, 2, names, data, len, 2, keys, vals), 0);
    vp_safetensors *st = vp_st_open(path);
    cr_assert_not_null(st);
    cr_assert_eq(vp_st_count(st), 2);
    cr_assert_str_eq(vp_st_meta(st, "k\"1"), "v\\1");
    vp_tensor *t = vp_st_load(st, "adamw.exp_avg");
    cr_assert_eq(t->shape[0], 5);
    cr_assert_eq(memcmp(t->data, b, sizeof b), 0);
    vp_tensor_free(&t);
    t = vp_st_load(st, "params");
    cr_assert_eq(memcmp(t->data, a, sizeof a), 0);
    vp_tensor_free(&t);
    vp_st_close(&st);
    char cmd[400]; /* nothing but the file is left beside it */
    snprintf(cmd, sizeof cmd, "test $(ls -A '%s' | wc -l) -eq 1", tmpdir);
    cr_assert_eq(system(cmd), 0);
    snprintf(path, sizeof path, "%s/missing-dir/s.safetensors", tmpdir);
    cr_assert_eq(vp_tst_write(path, 2, names, data, len, 2, keys, vals), -1);
}

Test(trainer, history_json_round_trip_and_svg)
{
    vp_thist h = {0}, g = {0};
    vp_thist_add(&h, 1.25, NAN);
    vp_thist_add(&h, 0.75, 0.5);
    vp_thist_add(&h, 0.5, NAN);
    char *js = vp_thist_to_json(&h);
    cr_assert_eq(vp_thist_from_json(&g, js), 0);
    cr_assert_eq(g.n, 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(g.loss[i], h.loss[i]);
        cr_assert(isnan(h.dice[i]) ? isnan(g.dice[i]) : g.dice[i] == h.dice[i]);
    }
    cr_assert_eq(vp_thist_from_json(&g, "[[1,2]"), -1);
    cr_assert_eq(vp_thist_from_json(&g, "[]"), 0);
    cr_assert_eq(g.n, 0);
    char *svg = vp_thist_svg(&h, "a <b> & c");
    cr_assert(strstr(svg, "<svg") && strstr(svg, "</svg>"));
    cr_assert(strstr(svg, "a &lt;b&gt; &amp; c"));
    cr_assert_eq(strstr(svg, "<b>"), NULL);
    free(js), free(svg);
    vp_thist_free(&h), vp_thist_free(&g);
}

/* Crop bounds and oversampling against nnU-Net's own data loader (tests/golden/trainer/sampler.txt,
 * made by tests/scripts/make_golden_trainer.py with nnunetv2). */
Test(trainer, sampler_matches_nnunet_get_bbox_golden)
{
    FILE *f = fopen("tests/golden/trainer/sampler.txt", "r");
    cr_assert_not_null(f, "run from the repository root");
    char kind[32];
    int nb = 0, nf = 0, no = 0;
    while (fscanf(f, "%31s", kind) == 1) {
        if (!strcmp(kind, "bbox")) {
            long long dim, patch, lb, ub, glb, gub;
            cr_assert_eq(fscanf(f, "%lld %lld %lld %lld", &dim, &patch, &glb, &gub), 4);
            int64_t a, b;
            vp_sampler_bounds(dim, patch, &a, &b);
            lb = a, ub = b;
            cr_assert(lb == glb && ub == gub, "dim %lld patch %lld: [%lld, %lld], nnU-Net [%lld, %lld]", dim, patch, lb, ub, glb, gub);
            nb++;
        } else if (!strcmp(kind, "fg")) {
            long long dim, patch, vox, gst;
            cr_assert_eq(fscanf(f, "%lld %lld %lld %lld", &dim, &patch, &vox, &gst), 4);
            int64_t lb, ub;
            vp_sampler_bounds(dim, patch, &lb, &ub);
            cr_assert_eq(vp_sampler_fg_start(vox, patch, lb), gst, "dim %lld patch %lld voxel %lld", dim, patch, vox);
            nf++;
        } else {
            int batch, idx, flag;
            double p;
            cr_assert_eq(fscanf(f, "%d %lf %d %d", &batch, &p, &idx, &flag), 4);
            vp_sampler s = {{8, 8, 8}, batch, p, VP_AXES_ZYX};
            cr_assert_eq(vp_sampler_force_fg(&s, idx), flag, "batch %d p %g item %d", batch, p, idx);
            no++;
        }
    }
    fclose(f);
    cr_assert(nb > 0 && nf > 0 && no > 0);
}

/* The validation tensor: a short axis padded to the patch on both sides ((patch - n) / 2 before, as
 * MONAI's sliding window), a long one at its end to the divisor; the overlap maps back exactly. */
Test(trainer, validation_tensor_padding_and_overlap)
{
    vp_tcase *t = make_tcase("a", 5, 4, 3);
    int div[3] = {2, 2, 2}, patch[3] = {8, 2, 2}; /* zyx: z 3 < 8, y 4 >= 2, x 5 >= 2 */
    int64_t dims[3], off[3];
    float *x = vp_tcase_tensor(t, VP_AXES_ZYX, div, patch, dims, off);
    cr_assert(dims[0] == 8 && dims[1] == 4 && dims[2] == 6);
    cr_assert(off[0] == -(8 - 3) / 2 && off[1] == 0 && off[2] == 0);
    int32_t *pred = calloc(8 * 4 * 6, sizeof *pred);
    for (int z = 0; z < 3; z++)
        for (int y = 0; y < 4; y++)
            for (int xx = 0; xx < 5; xx++) {
                int o = ((z - (int)off[0]) * 4 + y) * 6 + xx, i = (z * 4 + y) * 5 + xx;
                cr_assert_eq(x[o], (float)((int16_t *)t->img)[i]);
                pred[o] = t->lab[i]; /* a perfect prediction */
            }
    int64_t cnt[9] = {0};
    vp_tcase_overlap(t, VP_AXES_ZYX, pred, dims, off, 3, cnt, cnt + 3, cnt + 6);
    for (int c = 0; c < 3; c++) {
        cr_assert_eq(cnt[c], t->count[c]);
        cr_assert_eq(cnt[3 + c], t->count[c]);
        cr_assert_eq(cnt[6 + c], t->count[c]);
    }
    free(x), free(pred);
    vp_tcase_free(&t);
}
