/* test_cuda_tape.c - the device tape (vp_trainable_bind_device, nn_train.h): a model whose step
 * keeps activations, gradients and weights on the device, against the CPU path and against the
 * staged GPU path (the CUDA ops on host tensors, gradients uploaded, vp_cuda_opt_step), on a GPU
 * (tests/gpu/check_train_tape.sh) or on the CPU emulation (tests/gpu/emulate_train.sh):
 *   parity  a small SegResNet (AdamW, DiceCE) and a small PlainConvUNet (anisotropic strides, deep
 *           supervision, SGD nesterov with clipping that bites), 3 steps on one batch: loss, every
 *           gradient tensor and every weight tensor after each step within --tol (default 1e-4)
 *           relative per tensor of the CPU's and of the staged path's; the inference forward of
 *           the bound model returns host logits equal to the staged one's within --tol;
 *   copies  (emulation only: the emulated runtime counts host<->device copies by kind) a tape step
 *           copies up only the batch and each used output's logit gradient, down only the logits,
 *           at most 1 + outputs copies each way whatever the depth, while the staged step copies
 *           many times that; the optimizer step copies down only the norm partials;
 *   arena   the device arena serves the 2nd and 3rd steps without a new allocation;
 *   loss    the device loss (nn_cuda_loss.h) against vp_loss_eval (f64 on the host) for every
 *           configuration (MONAI / nnU-Net, background in or out, batch Dice, smooth terms, the
 *           1e-8 floor of an absent class, weights and loss scale, a deep-supervision target
 *           downsampled on the host): loss within 1e-5 relative, dlogits within 1e-5 absolute
 *           and 1e-5 relative to their largest; an evaluation copies nothing up, one scalar down;
 *   hostloss the tape step with the loss on the device (default) against the same tape with
 *           VP_TRAIN_HOST_LOSS=1 (the loss on the host): weights within 1e-5 relative per tensor
 *           after each of the 3 steps; the device-loss step copies up the batch and its targets
 *           (2 copies), down only the loss scalars (8 bytes per output).
 *   pair    (--pair TOL) instead of the parity runs: the tape with NCDHW activations against the
 *           same model's tape with NDHWC (channels-last) ones, 3 steps: loss, every gradient and
 *           every weight within TOL relative per tensor (bit-identical is reported).
 * --layout ncdhw|ndhwc sets VP_TRAIN_LAYOUT (the device activations' layout; default: the one
 * inference picks for the math, NCDHW for f32, NDHWC for tf32/f16/bf16); the loss section's logits
 * then take that layout too. Before any section the backend's lasting device allocation (the
 * norms' scratch) is made, so each section ends with the baseline's count of live allocations;
 * --leak keeps one device tensor past exit (the leak check's own check; --only none runs no
 * section).
 * Exit: 0 all pass, 1 a check failed, 4 no CUDA backend. One line per check ("ok ..." / "FAIL ..."). */
#include "nn_cuda.h"
#include "nn_cuda_loss.h"
#include "nn_cuda_train.h"
#include "nn_loss.h"
#include "nn_train_int.h"
#include "train_check.h"
#include "util.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the emulated runtime's copy counters (tests/gpu/emulate_train.sh), indexed by cudaMemcpyKind
 * (1 host to device, 2 device to host); absent (NULL) on a real GPU */
extern long long vp_emu_copy_calls[4] __attribute__((weak));
extern long long vp_emu_copy_bytes[4] __attribute__((weak));

static const vp_nn_backend *be;
static double tol = 1e-4;
static const char *only;
static double ptol = -1; /* --pair TOL: NCDHW vs NDHWC tapes instead of the parity runs */

typedef struct batch {
    vp_tensor *x;
    int32_t *t;
} batch;

static batch make_batch(int64_t N, int d, int h, int w, int classes)
{
    batch b = {vp_tensor_new5(N, 1, d, h, w), NULL};
    const int64_t V = N * d * h * w;
    b.t = vp_malloc((size_t)V * sizeof *b.t);
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (int64_t i = 0; i < V; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        const int64_t z = (i / (h * w)) % d, y = (i / w) % h;
        const float v = (float)(s >> 40) / 16777216.0f * 0.5f + (float)(z + y) / (float)(d + h);
        b.x->data[i] = v * 2.0f - 1.0f;
        b.t[i] = (int32_t)(v * classes) % classes;
    }
    return b;
}

typedef struct copies {
    long long up, down, up_bytes, down_bytes;
} copies;

static copies count(void)
{
    copies c = {0, 0, 0, 0};
    if (vp_emu_copy_calls) c = (copies){vp_emu_copy_calls[1], vp_emu_copy_calls[2], vp_emu_copy_bytes[1], vp_emu_copy_bytes[2]};
    return c;
}
static copies since(copies a) { copies b = count(); return (copies){b.up - a.up, b.down - a.down, b.up_bytes - a.up_bytes, b.down_bytes - a.down_bytes}; }

static void die(const char *what)
{
    fprintf(stderr, "test_cuda_tape: %s failed\n", what);
    exit(vp_cuda_exit_code(1));
}

/* 3 steps of the CPU path (mc), the staged GPU path (ms) and the device tape (mt); maxout: the
 * network's outputs (deep supervision heads included) */
static void run(const char *name, vp_trainable *mc, vp_trainable *ms, vp_trainable *mt, vp_trainable *mh, const vp_optim_cfg *oc,
                const vp_loss_cfg *lc, const batch *b, int maxout, float lr)
{
    int64_t n;
    float *Pc = vp_trainable_flat_params(mc, &n), *Ps = vp_trainable_flat_params(ms, NULL);
    float *Gc = vp_trainable_flat_grads(mc, NULL), *Gs = vp_trainable_flat_grads(ms, NULL);
    vp_optim *ocpu = vp_optim_new(oc, n), *os = vp_optim_new(oc, n), *ot = vp_optim_new(oc, n);
    vp_cuda_opt *opt_s = vp_cuda_opt_new(be, oc, os, Ps, n), *opt_t = vp_cuda_opt_new(be, oc, ot, vp_trainable_flat_params(mt, NULL), n);
    vp_optim *oh = vp_optim_new(oc, n);
    vp_cuda_opt *opt_h = vp_cuda_opt_new(be, oc, oh, vp_trainable_flat_params(mh, NULL), n);
    if (!opt_s || !opt_t || !opt_h) die("vp_cuda_opt_new");
    if (vp_trainable_bind_device(mt, be, vp_cuda_opt_dev_params(opt_t), vp_cuda_opt_dev_grads(opt_t))) die("bind");
    if (vp_trainable_bind_device(mh, be, vp_cuda_opt_dev_params(opt_h), vp_cuda_opt_dev_grads(opt_h))) die("bind");
    float *Gt = vp_malloc((size_t)n * sizeof *Gt), *Pt = vp_malloc((size_t)n * sizeof *Pt), *Ph = vp_malloc((size_t)n * sizeof *Ph);
    const char *where = "";
    /* the most the loss can move each way: maxout outputs of at most the input's resolution */
    const int64_t logit_bytes = maxout * vp_tensor_numel(b->x) * mc->classes * 4;
    int64_t allocs = 0;
    for (int s = 0; s < 3; s++) {
        double lcpu, ls, lt, ncpu, ns, nt;
        if (vp_train_step_grads(mc, vp_nn_backend_cpu(), b->x, b->t, lc, &lcpu)) die("cpu step");
        copies c0 = count();
        if (vp_train_step_grads(ms, be, b->x, b->t, lc, &ls)) die("staged step");
        copies cs = since(c0);
        c0 = count();
        if (vp_train_step_grads(mt, be, b->x, b->t, lc, &lt)) die("tape step");
        copies ct = since(c0);
        double lh;
        setenv("VP_TRAIN_HOST_LOSS", "1", 1);
        c0 = count();
        if (vp_train_step_grads(mh, be, b->x, b->t, lc, &lh)) die("tape step, host loss");
        copies ch = since(c0);
        unsetenv("VP_TRAIN_HOST_LOSS");
        check(fabs(lt - lh) <= 1e-5 * fabs(lh), "%s step %d: loss device %.12g host %.12g (rel %.3g)", name, s, lt, lh,
              fabs(lt - lh) / fabs(lh));
        if (s == 1) allocs = mt->pool.allocs;
        if (s == 2) check(mt->pool.allocs == allocs, "%s step %d: the device arena allocated %lld buffers (0 wanted)", name, s,
                          (long long)(mt->pool.allocs - allocs));
        check(fabs(lt - lcpu) <= tol * fabs(lcpu) && fabs(lt - ls) <= tol * fabs(ls), "%s step %d: loss tape %.9g staged %.9g cpu %.9g",
              name, s, lt, ls, lcpu);
        if (vp_cuda_opt_download_grads(opt_t, Gt)) die("download grads");
        double g1 = worst_rel(mc, Gt, Gc, 1e-3 * maxabs(Gc, n), &where);
        check(g1 <= tol, "%s step %d: tape gradients vs cpu max rel %.3g (%s)", name, s, g1, where);
        double g2 = worst_rel(mc, Gt, Gs, 1e-3 * maxabs(Gs, n), &where);
        check(g2 <= tol, "%s step %d: tape gradients vs staged max rel %.3g (%s)%s", name, s, g2, where,
              memcmp(Gt, Gs, (size_t)n * sizeof *Gt) ? "" : ", bit-identical");
        if (vp_emu_copy_calls) {
            const int64_t xb = vp_tensor_numel(b->x) * 4;
            const int64_t tb = vp_tensor_numel(b->x) / b->x->shape[1] * 4; /* full-resolution targets */
            check(ct.up == 2 && ct.down >= 1 && ct.down <= maxout && ct.up_bytes <= xb + maxout * tb && ct.down_bytes == 8 * ct.down,
                  "%s step %d: tape step, device loss: copies %lld up (%lld bytes: batch %lld + targets), %lld down (%lld bytes: "
                  "the loss scalars)", name, s, ct.up, ct.up_bytes, (long long)xb, ct.down, ct.down_bytes);
            check(ch.up <= 1 + maxout && ch.down <= maxout && ch.up_bytes <= xb + logit_bytes && ch.down_bytes <= logit_bytes &&
                  ch.down_bytes > ct.down_bytes,
                  "%s step %d: tape step, VP_TRAIN_HOST_LOSS=1: copies %lld up (%lld bytes; batch %lld + logits <= %lld), %lld down "
                  "(%lld bytes)", name, s, ch.up, ch.up_bytes, (long long)xb, (long long)logit_bytes, ch.down, ch.down_bytes);
            check(cs.up > 4 * ct.up && cs.down > 4 * ct.down, "%s step %d: the staged step copies %lld up, %lld down (the counter sees them)",
                  name, s, cs.up, cs.down);
        }
        if (vp_optim_step(ocpu, Pc, Gc, n, lr, &ncpu)) die("cpu optimizer");
        if (vp_cuda_opt_upload_grads(opt_s, Gs) || vp_cuda_opt_step(opt_s, lr, NULL, Ps, &ns, NULL)) die("staged optimizer");
        c0 = count();
        if (vp_cuda_opt_step(opt_t, lr, NULL, NULL, &nt, NULL)) die("tape optimizer");
        copies co = since(c0);
        if (vp_emu_copy_calls)
            check(co.up == 0 && co.down <= 1, "%s step %d: the optimizer step copies %lld up, %lld down (the norm partials)", name, s,
                  co.up, co.down);
        check(fabs(nt - ncpu) <= tol * ncpu && fabs(nt - ns) <= tol * ns, "%s step %d: gradient norm tape %.9g staged %.9g cpu %.9g%s",
              name, s, nt, ns, ncpu, oc->clip_norm > 0 && ncpu > oc->clip_norm ? " (clipped)" : "");
        if (vp_cuda_opt_step(opt_h, lr, NULL, NULL, NULL, NULL)) die("tape optimizer, host loss");
        if (vp_cuda_opt_download(opt_t, Pt) || vp_cuda_opt_download(opt_h, Ph)) die("download weights");
        double wh = worst_rel(mc, Pt, Ph, 1e-3 * maxabs(Ph, n), &where);
        check(wh <= 1e-5, "%s step %d: weights, tape with device loss vs host loss (VP_TRAIN_HOST_LOSS=1) max rel %.3g (%s)%s", name,
              s, wh, where, memcmp(Pt, Ph, (size_t)n * sizeof *Pt) ? "" : ", bit-identical");
        double w1 = worst_rel(mc, Pt, Pc, 1e-3 * maxabs(Pc, n), &where);
        double w2 = worst_rel(mc, Pt, Ps, 1e-3 * maxabs(Ps, n), &where);
        check(w1 <= tol && w2 <= tol, "%s step %d: weights after the update, tape vs cpu max rel %.3g, vs staged %.3g%s", name, s, w1,
              w2, memcmp(Pt, Ps, (size_t)n * sizeof *Pt) ? "" : " (bit-identical to staged)");
    }
    /* inference forward of the bound model: host logits, as the staged model's */
    vp_tensor *yt = NULL, *ys = NULL;
    if (vp_trainable_forward(mt, be, b->x, &yt) || vp_trainable_forward(ms, be, b->x, &ys)) die("forward");
    const int64_t ny = vp_tensor_numel(ys);
    double d = 0;
    for (int64_t i = 0; i < ny; i++) d = fmax(d, fabs((double)yt->data[i] - ys->data[i]));
    check(yt->device == 0 && vp_tensor_same_shape(yt, ys) && d <= tol * fmax(maxabs(ys->data, ny), 1e-6),
          "%s: forward of the bound model: host logits, max |tape - staged| %.3g", name, d);
    vp_tensor_free(&yt), vp_tensor_free(&ys);
    if (vp_trainable_bind_device(mt, NULL, NULL, NULL) || vp_trainable_bind_device(mh, NULL, NULL, NULL)) die("unbind");
    check(mt->pool.n == 0 && mt->pool.bytes == 0, "%s: unbinding releases the device arena (%d buffers left)", name, mt->pool.n);
    vp_cuda_opt_free(&opt_s), vp_cuda_opt_free(&opt_t), vp_cuda_opt_free(&opt_h);
    vp_optim_free(&ocpu), vp_optim_free(&os), vp_optim_free(&ot), vp_optim_free(&oh);
    free(Gt), free(Pt), free(Ph);
}

/* --pair: the device tape with NCDHW activations (ma) against the same tape with NDHWC ones (mb),
 * 3 steps on one batch: loss, every gradient and every weight after each step within ptol relative
 * per tensor (bit-identical reported: where the kernels sum in the same order in both layouts --
 * InstanceNorm; GroupNorm with several channels per group sums them in another order in NDHWC --
 * and, in the emulation, the convolutions are the reference ops on NCDHW copies); on a GPU cuDNN
 * picks other algorithms per layout, so f16/bf16 agree within their rounding */
static void pair(const char *name, vp_trainable *ma, vp_trainable *mb, const vp_optim_cfg *oc, const vp_loss_cfg *lc, const batch *b,
                 float lr, double ptol)
{
    int64_t n;
    vp_trainable_flat_params(ma, &n);
    vp_optim *oa = vp_optim_new(oc, n), *ob = vp_optim_new(oc, n);
    vp_cuda_opt *qa = vp_cuda_opt_new(be, oc, oa, vp_trainable_flat_params(ma, NULL), n);
    vp_cuda_opt *qb = vp_cuda_opt_new(be, oc, ob, vp_trainable_flat_params(mb, NULL), n);
    if (!qa || !qb) die("vp_cuda_opt_new");
    setenv("VP_TRAIN_LAYOUT", "ncdhw", 1);
    if (vp_trainable_bind_device(ma, be, vp_cuda_opt_dev_params(qa), vp_cuda_opt_dev_grads(qa))) die("bind ncdhw");
    setenv("VP_TRAIN_LAYOUT", "ndhwc", 1);
    if (vp_trainable_bind_device(mb, be, vp_cuda_opt_dev_params(qb), vp_cuda_opt_dev_grads(qb))) die("bind ndhwc");
    unsetenv("VP_TRAIN_LAYOUT");
    check(ma->pool.layout == VP_CUDA_NCDHW && mb->pool.layout == VP_CUDA_NDHWC, "%s: the tapes' arenas are NCDHW (%d) and NDHWC (%d)",
          name, ma->pool.layout, mb->pool.layout);
    float *Ga = vp_malloc((size_t)n * sizeof *Ga), *Gb = vp_malloc((size_t)n * sizeof *Gb);
    float *Pa = vp_malloc((size_t)n * sizeof *Pa), *Pb = vp_malloc((size_t)n * sizeof *Pb);
    const char *where = "";
    for (int s = 0; s < 3; s++) {
        double la, lb;
        if (vp_train_step_grads(ma, be, b->x, b->t, lc, &la)) die("ncdhw tape step");
        if (vp_train_step_grads(mb, be, b->x, b->t, lc, &lb)) die("ndhwc tape step");
        check(fabs(la - lb) <= ptol * fabs(la), "%s step %d: loss ncdhw %.12g ndhwc %.12g (rel %.3g)", name, s, la, lb,
              fabs(la - lb) / fabs(la));
        if (vp_cuda_opt_download_grads(qa, Ga) || vp_cuda_opt_download_grads(qb, Gb)) die("download grads");
        double g = worst_rel(ma, Gb, Ga, 1e-3 * maxabs(Ga, n), &where);
        check(g <= ptol, "%s step %d: gradients ndhwc vs ncdhw max rel %.3g (%s)%s", name, s, g, where,
              memcmp(Ga, Gb, (size_t)n * sizeof *Ga) ? "" : ", bit-identical");
        if (vp_cuda_opt_step(qa, lr, NULL, NULL, NULL, NULL) || vp_cuda_opt_step(qb, lr, NULL, NULL, NULL, NULL)) die("optimizer");
        if (vp_cuda_opt_download(qa, Pa) || vp_cuda_opt_download(qb, Pb)) die("download weights");
        double w = worst_rel(ma, Pb, Pa, 1e-3 * maxabs(Pa, n), &where);
        check(w <= ptol, "%s step %d: weights after the update ndhwc vs ncdhw max rel %.3g (%s)%s", name, s, w, where,
              memcmp(Pa, Pb, (size_t)n * sizeof *Pa) ? "" : ", bit-identical");
    }
    if (vp_trainable_bind_device(ma, NULL, NULL, NULL) || vp_trainable_bind_device(mb, NULL, NULL, NULL)) die("unbind");
    vp_cuda_opt_free(&qa), vp_cuda_opt_free(&qb);
    vp_optim_free(&oa), vp_optim_free(&ob);
    free(Ga), free(Gb), free(Pa), free(Pb);
}

/* one loss configuration on random logits (N, C, d, h, w): device vs vp_loss_eval; absent > 0:
 * class C-1 never in the target and its logits -60 (its Dice denominator below nnU-Net's 1e-8
 * floor when the smooth terms are 0); ds: the target is the full-resolution one (2d, 2h, 2w - 1)
 * downsampled on the host as for a deep-supervision output */
static void loss_case(const char *what, vp_loss_cfg lc, int N, int C, int d, int h, int w, double weight, int absent, int ds,
                      uint64_t seed)
{
    const int64_t sh[5] = {N, C, d, h, w}, V = (int64_t)d * h * w;
    vp_tensor *z = vp_tensor_new(5, sh), *dz = vp_tensor_new(5, sh), *hz = vp_tensor_new(5, sh);
    const char *lay = getenv("VP_TRAIN_LAYOUT");
    const int cl = lay && !strcmp(lay, "ndhwc"); /* the logits in the tape's layout */
    vp_tensor *zd = cl ? vp_cuda_tensor_new_cl(0, sh) : vp_cuda_tensor_new(0, 5, sh), *dzd = cl ? vp_cuda_tensor_new_cl(0, sh) : vp_cuda_tensor_new(0, 5, sh);
    if (!zd || !dzd) die("device tensors");
    int32_t *t = vp_malloc((size_t)(N * V) * sizeof *t);
    uint64_t r = seed;
    for (int64_t i = 0; i < vp_tensor_numel(z); i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        z->data[i] = ((float)(r >> 40) / 16777216.0f - 0.5f) * 8.0f;
        if (absent && (i / V) % C == C - 1) z->data[i] = -60.0f;
    }
    const int lab = absent ? C - 1 : C;
    if (ds) { /* the full-resolution target, downsampled */
        const int64_t id[3] = {2 * d, 2 * h, 2 * w - 1}, od[3] = {d, h, w}, nf = N * id[0] * id[1] * id[2];
        int32_t *full = vp_malloc((size_t)nf * sizeof *full);
        for (int64_t i = 0; i < nf; i++) r = r * 6364136223846793005ull + 1442695040888963407ull, full[i] = (int32_t)((r >> 33) % (uint64_t)lab);
        vp_loss_downsample_target(full, N, id, od, t);
        free(full);
    } else {
        for (int64_t i = 0; i < N * V; i++) r = r * 6364136223846793005ull + 1442695040888963407ull, t[i] = (int32_t)((r >> 33) % (uint64_t)lab);
    }
    double lh, ld;
    if (vp_loss_eval(&lc, z, t, weight, &lh, dz)) die("vp_loss_eval");
    int32_t *td = vp_cuda_targets_upload(be, t, N * V);
    if (!td || vp_cuda_upload(zd, z)) die("loss upload");
    copies c0 = count();
    if (vp_cuda_loss_eval(be, &lc, zd, td, weight, &ld, dzd)) die("vp_cuda_loss_eval");
    copies ce = since(c0);
    if (vp_cuda_download(hz, dzd)) die("loss download");
    double dmax = 0, ref = maxabs(dz->data, vp_tensor_numel(dz));
    for (int64_t i = 0; i < vp_tensor_numel(dz); i++) dmax = fmax(dmax, fabs((double)hz->data[i] - dz->data[i]));
    if (!(dmax <= dmax)) dmax = INFINITY; /* NaN fails */
    check(fabs(ld - lh) <= 1e-5 * fabs(lh) && dmax <= 1e-5 * (weight > 1 ? weight : 1) && dmax <= 1e-5 * ref,
          "loss %s (N %d C %d %dx%dx%d, weight %g): device %.12g host %.12g (rel %.2g); dlogits max |diff| %.3g (%.2g of max %.3g)",
          what, N, C, d, h, w, weight, ld, lh, fabs(ld - lh) / fabs(lh), dmax, dmax / ref, ref);
    if (vp_emu_copy_calls)
        check(ce.up == 0 && ce.down == 1 && ce.down_bytes == 8, "loss %s: the evaluation copies %lld up, %lld down (%lld bytes: the scalar)",
              what, ce.up, ce.down, ce.down_bytes);
    vp_cuda_targets_free(be, &td);
    vp_cuda_tensor_free(&zd), vp_cuda_tensor_free(&dzd);
    vp_tensor_free(&z), vp_tensor_free(&dz), vp_tensor_free(&hz);
    free(t);
}

static void loss_checks(void)
{
    vp_loss_cfg m = vp_loss_cfg_default(VP_LOSS_DICECE), u = vp_loss_cfg_default(VP_LOSS_NNUNET_DCCE), c;
    loss_case("monai default", m, 2, 3, 5, 6, 37, 1.0, 0, 0, 1);
    c = m, c.batch_dice = 1;
    loss_case("monai batch dice", c, 2, 4, 3, 7, 29, 1.0, 0, 0, 2);
    c = m, c.include_background = 0;
    loss_case("monai no background", c, 3, 3, 4, 5, 31, 1.0, 0, 0, 3);
    c = m, c.smooth_nr = 0, c.smooth_dr = 1e-3f;
    loss_case("monai smooth 0/1e-3, absent class", c, 2, 3, 4, 4, 33, 1.0, 1, 0, 4);
    loss_case("nnunet default (batch dice, no background)", u, 2, 3, 5, 6, 37, 1.0, 0, 0, 5);
    c = u, c.batch_dice = 0;
    loss_case("nnunet per-case dice", c, 2, 4, 3, 8, 25, 0.5, 0, 0, 6);
    c = u, c.include_background = 1, c.smooth_nr = c.smooth_dr = 1.0f;
    loss_case("nnunet background, smooth 1", c, 1, 2, 6, 6, 30, 1.0, 0, 0, 7);
    c = u, c.smooth_nr = c.smooth_dr = 0;
    loss_case("nnunet smooth 0, absent class (1e-8 floor)", c, 2, 3, 4, 5, 21, 1.0, 1, 0, 8);
    loss_case("nnunet ds output (target downsampled on the host), weight 0.2857", u, 2, 3, 3, 4, 9, 0.2857142857142857, 0, 1, 9);
    loss_case("monai loss scale 65536", m, 2, 3, 4, 6, 35, 65536.0, 0, 0, 10);
}

int main(int argc, char **argv)
{
    const char *backend = "cuda:0";
    int leak = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tol") && i + 1 < argc) tol = atof(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--backend") && i + 1 < argc) backend = argv[++i];
        else if (!strcmp(argv[i], "--layout") && i + 1 < argc) setenv("VP_TRAIN_LAYOUT", argv[++i], 1);
        else if (!strcmp(argv[i], "--leak")) leak = 1;
        else if (!strcmp(argv[i], "--pair") && i + 1 < argc) ptol = atof(argv[++i]);
        else return fprintf(stderr, "usage: test_cuda_tape [--tol T] [--only loss|segresnet|unet|unet4|none] [--backend cuda:N:MATH] [--layout ncdhw|ndhwc] [--pair TOL] [--leak]\n"), 2;
    }
    if (!(be = vp_nn_backend_get(backend))) return 4;
    /* the backend's lasting device allocation (the norms' scratch) made up front, so that every
     * section, the loss alone included, ends with the baseline's count of emulate_train.sh's leak
     * check: one allocation more is then a leak */
    {
        const int64_t sh[5] = {1, 2, 2, 2, 2};
        vp_tensor *wx = vp_cuda_tensor_new(0, 5, sh), *wy = vp_cuda_tensor_new(0, 5, sh);
        if (!wx || !wy || vp_cuda_zero(be, wx->data, 16) || be->group_norm(be, wx, 2, 1e-5f, NULL, NULL, wy) || vp_cuda_synchronize(0))
            die("warm-up");
        vp_cuda_tensor_free(&wx), vp_cuda_tensor_free(&wy);
    }
    if (leak) { /* the leak check's own check: one device tensor never freed */
        static vp_tensor *kept;
        if (!(kept = vp_cuda_tensor_new(0, 5, (int64_t[]){1, 1, 1, 1, 4}))) die("the deliberate leak");
        printf("test_cuda_tape: --leak: one device tensor (16 bytes) left allocated at exit\n");
    }
    if (!vp_emu_copy_calls) printf("test_cuda_tape: copy counts skipped (not the emulated runtime)\n");
    printf("test_cuda_tape: %s, device activations %s\n", be->name,
           ptol >= 0 ? "ncdhw vs ndhwc" : getenv("VP_TRAIN_LAYOUT") ? getenv("VP_TRAIN_LAYOUT") : "as inference picks (VP_CUDA_LAYOUT or the math)");
    if ((!only && ptol < 0) || (only && !strcmp(only, "loss"))) loss_checks();
    if (!only || !strcmp(only, "segresnet")) {
        batch b = make_batch(2, 16, 16, 16, 3);
        vp_segresnet_cfg c = {.in_channels = 1, .out_channels = 3, .init_filters = 8, .norm_groups = 4, .n_down = 2,
                              .blocks_down = {1, 2}, .n_up = 1, .blocks_up = {1}, .eps = 1e-5f};
        vp_trainable *mc = vp_trainable_new_segresnet(&c, 7), *ms = vp_trainable_new_segresnet(&c, 7), *mt = vp_trainable_new_segresnet(&c, 7),
                     *mh = vp_trainable_new_segresnet(&c, 7);
        vp_optim_cfg oc = vp_optim_cfg_default(VP_OPTIM_ADAMW);
        vp_loss_cfg lc = vp_loss_cfg_default(VP_LOSS_DICECE);
        if (ptol >= 0) pair("segresnet adamw, ncdhw vs ndhwc", mt, mh, &oc, &lc, &b, 1e-3f, ptol);
        else run("segresnet adamw", mc, ms, mt, mh, &oc, &lc, &b, 1, 1e-3f);
        vp_trainable_free(&mc), vp_trainable_free(&ms), vp_trainable_free(&mt), vp_trainable_free(&mh);
        vp_tensor_free(&b.x), free(b.t);
    }
    for (int ns = 3; ns <= 4; ns++) { /* unet4: 3 outputs, 2 with weight (a downsampled target on the device) */
        if (only && strcmp(only, ns == 3 ? "unet" : "unet4")) continue;
        batch b = make_batch(2, 8, 16, 16, 3);
        vp_unet_cfg u = {.in_ch = 1, .n_classes = 3, .n_stages = ns, .features = {4, 8, 16, 16}, .conv_bias = 1, .norm_eps = 1e-5f,
                         .slope = 0.01f, .patch = {8, 16, 16}};
        for (int s = 0; s < ns; s++) {
            for (int k = 0; k < 3; k++) u.kernel[s][k] = 3, u.stride[s][k] = s ? 2 : 1;
            u.n_conv[s] = 2;
            if (s < ns - 1) u.n_conv_dec[s] = 2;
        }
        u.stride[1][0] = 1; /* anisotropic first downsampling (1, 2, 2) */
        vp_trainable *mc = vp_trainable_new_unet(&u, 9), *ms = vp_trainable_new_unet(&u, 9), *mt = vp_trainable_new_unet(&u, 9),
                     *mh = vp_trainable_new_unet(&u, 9);
        vp_optim_cfg oc = vp_optim_cfg_default(VP_OPTIM_SGD);
        oc.clip_norm = 0.05f; /* small enough that clipping acts */
        vp_loss_cfg lc = vp_loss_cfg_default(VP_LOSS_NNUNET_DCCE);
        if (ptol >= 0) pair(ns == 3 ? "unet sgd+ds+clip, ncdhw vs ndhwc" : "unet4 sgd+ds+clip, ncdhw vs ndhwc", mt, mh, &oc, &lc, &b, 1e-2f, ptol);
        else run(ns == 3 ? "unet sgd+ds+clip" : "unet4 sgd+ds(3 outputs)+clip", mc, ms, mt, mh, &oc, &lc, &b, ns - 1, 1e-2f);
        vp_trainable_free(&mc), vp_trainable_free(&ms), vp_trainable_free(&mt), vp_trainable_free(&mh);
        vp_tensor_free(&b.x), free(b.t);
    }
    printf("test_cuda_tape: %d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
