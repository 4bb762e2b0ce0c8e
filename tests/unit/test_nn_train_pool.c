/* Unit tests for the training step's activation arena (lib/nn_train_arena.c, vp_tpool): a second
 * step of the same shape allocates no buffer and gives the same gradient bytes as a fresh model
 * (nothing left in a reused buffer leaks into the next step), a change of patch shape releases
 * the old shape's buffers, and the pool's own lend / give back / zero / detach / trim rules.
 * Small synthetic models and batches (a PlainConvUNet with deep supervision, a SegResNet). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "nn_train_int.h"
#include "util.h"

static vp_trainable *model(int unet)
{
    if (unet) {
        vp_unet_cfg c = {.in_ch = 1, .n_classes = 3, .n_stages = 3, .features = {4, 8, 16},
                         .kernel = {{3, 3, 3}, {3, 3, 3}, {3, 3, 3}}, .stride = {{1, 1, 1}, {2, 2, 2}, {2, 2, 2}},
                         .n_conv = {2, 2, 2}, .n_conv_dec = {1, 1}, .conv_bias = 1, .norm_eps = 1e-5f, .slope = 0.01f,
                         .patch = {16, 16, 16}};
        return vp_trainable_new_unet(&c, 7);
    }
    vp_segresnet_cfg c = {.in_channels = 1, .out_channels = 3, .init_filters = 8, .norm_groups = 8, .n_down = 2,
                          .blocks_down = {1, 2}, .n_up = 1, .blocks_up = {1}, .eps = 1e-5f};
    return vp_trainable_new_segresnet(&c, 7);
}

static vp_loss_cfg loss(int unet)
{
    return vp_loss_cfg_default(unet ? VP_LOSS_NNUNET_DCCE : VP_LOSS_DICECE);
}

/* A batch of 2 of size s^3 (values and labels from a hash of seed and index). */
static vp_tensor *batch(int s, uint32_t seed, int32_t **t)
{
    vp_tensor *x = vp_tensor_new5(2, 1, s, s, s);
    const int64_t n = vp_tensor_numel(x);
    *t = vp_malloc((size_t)n * sizeof **t);
    for (int64_t i = 0; i < n; i++) {
        uint32_t h = (uint32_t)i * 2654435761u ^ seed * 40503u;
        h ^= h >> 15, h *= 2246822519u, h ^= h >> 13;
        x->data[i] = (float)(h % 1000) / 500.0f - 1.0f;
        (*t)[i] = (int32_t)((h >> 10) % 3);
    }
    return x;
}

/* One step; a copy of the gradients (caller frees). */
static float *step(vp_trainable *m, int unet, int s, uint32_t seed, double *l)
{
    int32_t *t;
    vp_tensor *x = batch(s, seed, &t);
    vp_loss_cfg lc = loss(unet);
    cr_assert_eq(vp_train_step_grads(m, vp_nn_backend_cpu(), x, t, &lc, l), 0);
    int64_t n;
    float *g = vp_trainable_flat_grads(m, &n), *c = vp_malloc((size_t)n * sizeof *c);
    memcpy(c, g, (size_t)n * sizeof *c);
    vp_tensor_free(&x), free(t);
    return c;
}

/* Step 2 on the batch of seed 2 after a step on seed 1 reuses every buffer (no allocation) and
 * gives the bytes a fresh model's first step on seed 2 gives. */
Test(pool, second_step_allocates_nothing_same_bytes)
{
    vp_threads = 2;
    for (int unet = 0; unet < 2; unet++) {
        vp_trainable *a = model(unet), *b = model(unet);
        int64_t n;
        vp_trainable_flat_grads(a, &n);
        double la, lb;
        free(step(a, unet, 16, 1, &la));
        const int64_t allocs = a->pool.allocs, reuses = a->pool.reuses, bytes = a->pool.bytes;
        cr_assert_gt(allocs, 10, "%s: the step drew only %lld buffers from the pool", a->ops->arch, (long long)allocs);
        float *ga = step(a, unet, 16, 2, &la), *gb = step(b, unet, 16, 2, &lb);
        cr_expect_eq(a->pool.allocs, allocs, "%s: the second step allocated %lld buffers", a->ops->arch,
                     (long long)(a->pool.allocs - allocs));
        cr_expect_gt(a->pool.reuses - reuses, 10, "%s: the second step reused %lld buffers", a->ops->arch,
                     (long long)(a->pool.reuses - reuses));
        cr_expect_eq(a->pool.bytes, bytes);
        cr_expect(!memcmp(ga, gb, (size_t)n * sizeof *ga) && la == lb, "%s: reused buffers change the gradients", a->ops->arch);
        free(ga), free(gb);
        vp_trainable_free(&a), vp_trainable_free(&b);
    }
}

/* 16^3, then 32^3 (new buffers), then 16^3 again: the 32^3 buffers are released (the pool holds
 * what it held after the first 16^3 step) and the gradients are a fresh model's. */
Test(pool, shape_change_releases_old_buffers)
{
    vp_threads = 1;
    for (int unet = 0; unet < 2; unet++) {
        vp_trainable *a = model(unet), *b = model(unet);
        int64_t n;
        vp_trainable_flat_grads(a, &n);
        double l, lb;
        free(step(a, unet, 16, 1, &l));
        const int64_t bytes16 = a->pool.bytes, slots16 = a->pool.n, allocs16 = a->pool.allocs;
        free(step(a, unet, 32, 3, &l));
        cr_expect_gt(a->pool.allocs, allocs16, "%s: a new shape allocated nothing", a->ops->arch);
        cr_expect_gt(a->pool.bytes, bytes16);
        float *ga = step(a, unet, 16, 4, &l), *gb = step(b, unet, 16, 4, &lb);
        cr_expect_eq(a->pool.bytes, bytes16, "%s: %lld bytes held after going back to 16^3, %lld before", a->ops->arch,
                     (long long)a->pool.bytes, (long long)bytes16);
        cr_expect_eq(a->pool.n, slots16);
        cr_expect(!memcmp(ga, gb, (size_t)n * sizeof *ga) && l == lb, "%s: other gradient bytes after a shape change", a->ops->arch);
        free(ga), free(gb);
        vp_trainable_free(&a), vp_trainable_free(&b);
    }
}

/* Inference forward (no step) hands the caller its logits: detached from the pool, freed by the
 * caller; the pool keeps nothing busy. */
Test(pool, forward_detaches_its_output)
{
    vp_trainable *m = model(1);
    int32_t *t;
    vp_tensor *x = batch(16, 5, &t), *y = NULL;
    cr_assert_eq(vp_trainable_forward(m, vp_nn_backend_cpu(), x, &y), 0);
    cr_assert(y && y->owns);
    for (int i = 0; i < m->pool.n; i++) cr_expect(!m->pool.s[i].busy && m->pool.s[i].t != y);
    vp_tensor_free(&y), vp_tensor_free(&x), free(t);
    vp_trainable_free(&m);
}

Test(pool, lend_give_back_zero_detach_trim)
{
    vp_tpool p = {0};
    const int64_t s1[5] = {1, 2, 3, 4, 5}, s2[5] = {1, 2, 3, 4, 6};
    vp_tensor *a = vp_tpool_get(&p, s1), *b = vp_tpool_get(&p, s1), *c = vp_tpool_get(&p, s2);
    cr_expect(a != b && a->data != b->data && c != a && c != b);
    cr_expect_eq(p.allocs, 3);
    for (int64_t i = 0; i < vp_tensor_numel(a); i++) a->data[i] = 1.5f;
    vp_tensor *a0 = a;
    vp_tpool_put(&p, &a);
    cr_expect_null(a);
    a = vp_tpool_zeros(&p, s1); /* the buffer just given back, zeroed */
    cr_expect_eq(a, a0);
    cr_expect_eq(p.allocs, 3);
    int nz = 0;
    for (int64_t i = 0; i < vp_tensor_numel(a); i++) nz += a->data[i] != 0;
    cr_expect_eq(nz, 0);
    vp_tensor *f = vp_tensor_new(5, s1); /* not the pool's: freed (ASan would report a leak) */
    vp_tpool_put(&p, &f);
    cr_expect_null(f);
    vp_tpool_detach(&p, c);
    cr_expect_eq(p.n, 2);
    vp_tensor_free(&c);
    vp_tpool_put(&p, &a);
    vp_tpool_trim(&p); /* everything was used since creation: kept */
    cr_expect_eq(p.n, 2);
    vp_tpool_trim(&p); /* a unused since the last trim and free: released; b busy: kept */
    cr_expect_eq(p.n, 1);
    cr_expect_eq(p.s[0].t, b);
    vp_tpool_free(&p);
    cr_expect_eq(p.n, 0);
    cr_expect_eq(p.bytes, 0);
}
