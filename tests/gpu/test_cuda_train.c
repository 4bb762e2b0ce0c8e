/* test_cuda_train.c - training on the CUDA backend (trainer_cuda.h / nn_cuda_train.h) against the
 * CPU trainer's engine, on a machine with a GPU (tests/gpu/check_train.sh) or on the CPU emulation
 * (tests/gpu/emulate_train.sh):
 *   parity    a small SegResNet (AdamW, DiceCE) and a small PlainConvUNet (anisotropic strides,
 *             deep supervision, SGD nesterov with clipping that bites) trained for 3 steps on the
 *             same batch by the CPU path (vp_train_step_grads on the cpu backend + vp_optim_step)
 *             and the GPU path (the same on the cuda backend, whose backward table is the device
 *             ops + vp_cuda_opt_step): loss, every gradient tensor and every weight tensor after
 *             each step, max |gpu - cpu| / max |cpu| per tensor <= --tol (default 1e-4; tensors
 *             whose true gradient is 0 -- conv biases feeding InstanceNorm -- are measured
 *             against the largest gradient instead);
 *   scaler    grad_scale multiplies the backward's gradients (loss unchanged); GradScaler's rules:
 *             scaled gradients unscaled to the CPU step's weights, growth after `interval` finite
 *             steps, an injected inf or NaN skips the step (weights, optimizer state and step
 *             counter bit-identical) and halves the scale; without scaling a non-finite gradient
 *             is an error;
 *   restart   the device state downloaded into the host optimizer and uploaded into a new device
 *             optimizer continues bit-identically; the model saved and loaded gives the same bytes;
 *   f16/bf16  (--half) the same SegResNet steps in f16 math with loss scaling and in bf16: loss
 *             and weights within 2e-2 relative of f32 (GPU only: the emulation has no half math);
 *   bench     (--bench ARCH F SIZE BATCH REPS) prints "seconds-per-iteration peak-MiB" (median) for
 *             tests/gpu/check_train.sh, beside tests/gpu/bench_train_torch.py.
 * Exit: 0 all pass, 1 a check failed, 4 no CUDA backend. One line per check ("ok ..." / "FAIL ...").
 */
#include "nn_cuda.h"
#include "nn_cuda_train.h"
#include "nn_train.h"
#include "train_check.h"
#include "util.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const vp_nn_backend *be;
static double tol = 1e-4;
static const char *only; /* --only segresnet|unet|scaler: that part alone */
static int want(const char *part) { return !only || !strcmp(only, part); }


static float urand(uint64_t *s)
{
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return (float)((*s >> 40) * (1.0 / 16777216.0));
}

typedef struct batch {
    vp_tensor *x;
    int32_t *t;
} batch;

static batch make_batch(int64_t N, int d, int h, int w, int classes)
{
    batch b;
    b.x = vp_tensor_new5(N, 1, d, h, w);
    int64_t V = N * d * h * w;
    b.t = vp_malloc((size_t)V * sizeof *b.t);
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (int64_t i = 0; i < V; i++) {
        int64_t z = (i / (h * w)) % d, y = (i / w) % h;
        float v = urand(&s) * 0.5f + (float)(z + y) / (float)(d + h); /* a ramp plus noise: learnable */
        b.x->data[i] = v * 2.0f - 1.0f;
        b.t[i] = (int32_t)(v * classes) % classes;
    }
    return b;
}

/* CPU vs GPU for `steps` steps; returns nothing, records checks */
static void parity(const char *name, vp_trainable *mc, vp_trainable *mg, const vp_optim_cfg *oc, const vp_loss_cfg *lc,
                   const batch *b, int steps, float lr)
{
    int64_t n;
    float *Pc = vp_trainable_flat_params(mc, &n), *Pg = vp_trainable_flat_params(mg, NULL);
    float *Gc = vp_trainable_flat_grads(mc, NULL), *Gg = vp_trainable_flat_grads(mg, NULL);
    vp_optim *ocpu = vp_optim_new(oc, n), *ogpu = vp_optim_new(oc, n);
    vp_cuda_opt *opt = vp_cuda_opt_new(be, oc, ogpu, Pg, n);
    if (!opt) exit(vp_cuda_exit_code(1));
    float *Gd = vp_malloc((size_t)n * sizeof *Gd);
    const char *where = "";
    for (int s = 0; s < steps; s++) {
        double lcpu, lgpu, ncpu, ngpu;
        if (vp_train_step_grads(mc, vp_nn_backend_cpu(), b->x, b->t, lc, &lcpu)) exit(1);
        if (vp_train_step_grads(mg, be, b->x, b->t, lc, &lgpu)) exit(vp_cuda_exit_code(1));
        check(fabs(lgpu - lcpu) <= tol * fabs(lcpu), "%s step %d: loss gpu %.9g cpu %.9g", name, s, lgpu, lcpu);
        double gfloor = 1e-3 * maxabs(Gc, n);
        double rg = worst_rel(mc, Gg, Gc, gfloor, &where);
        check(rg <= tol, "%s step %d: gradients max rel %.3g (%s)", name, s, rg, where);
        if (vp_cuda_opt_upload_grads(opt, Gg) || vp_cuda_opt_step(opt, lr, NULL, Pg, &ngpu, NULL)) exit(vp_cuda_exit_code(1));
        if (vp_cuda_opt_download_grads(opt, Gd)) exit(1);
        if (vp_optim_step(ocpu, Pc, Gc, n, lr, &ncpu)) exit(1);
        check(fabs(ngpu - ncpu) <= tol * ncpu, "%s step %d: gradient norm gpu %.9g cpu %.9g%s", name, s, ngpu, ncpu,
              oc->clip_norm > 0 && ncpu > oc->clip_norm ? " (clipped)" : "");
        double rw = worst_rel(mc, Pg, Pc, 1e-3 * maxabs(Pc, n), &where);
        check(rw <= tol, "%s step %d: weights after the update max rel %.3g (%s)", name, s, rw, where);
        check(vp_optim_step_count(ogpu) == vp_optim_step_count(ocpu), "%s step %d: step counter %lld", name, s,
              (long long)vp_optim_step_count(ogpu));
    }
    /* restart: state down into the host optimizer, up into a new device optimizer; one more step on both */
    float *P2 = vp_malloc((size_t)n * sizeof *P2), *P1 = vp_malloc((size_t)n * sizeof *P1);
    if (vp_cuda_opt_download(opt, P2)) exit(1);
    check(!memcmp(P2, Pg, (size_t)n * sizeof *P2), "%s: downloaded weights = the weights of the last step", name);
    vp_cuda_opt *opt2 = vp_cuda_opt_new(be, oc, ogpu, P2, n);
    int64_t steps_before = vp_optim_step_count(ogpu);
    if (!opt2 || vp_cuda_opt_upload_grads(opt, Gg) || vp_cuda_opt_step(opt, lr, NULL, P1, NULL, NULL)) exit(1);
    vp_optim_set_step_count(ogpu, steps_before);
    if (vp_cuda_opt_upload_grads(opt2, Gg) || vp_cuda_opt_step(opt2, lr, NULL, P2, NULL, NULL)) exit(1);
    check(!memcmp(P1, P2, (size_t)n * sizeof *P1), "%s: restarted device optimizer continues bit-identically", name);
    char path[] = "/tmp/vp_cuda_train_XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0) close(fd);
    memcpy(Pg, P1, (size_t)n * sizeof *P1);
    vp_trainable *ml = vp_trainable_save(mg, path, 0, NULL, NULL) ? NULL : vp_trainable_load(path);
    check(ml && !memcmp(vp_trainable_flat_params(ml, NULL), Pg, (size_t)n * sizeof *Pg), "%s: checkpoint save/load round trip", name);
    unlink(path);
    vp_trainable_free(&ml);
    vp_cuda_opt_free(&opt2);
    vp_cuda_opt_free(&opt);
    vp_optim_free(&ocpu);
    vp_optim_free(&ogpu);
    free(Gd), free(P1), free(P2);
}

static vp_segresnet_cfg seg_cfg(void)
{
    vp_segresnet_cfg c = {.in_channels = 1, .out_channels = 3, .init_filters = 8, .norm_groups = 4, .n_down = 2,
                          .blocks_down = {1, 2}, .n_up = 1, .blocks_up = {1}, .eps = 1e-5f};
    return c;
}

static vp_unet_cfg unet_cfg(const int *features, int stages, const int patch[3])
{
    vp_unet_cfg u = {.in_ch = 1, .n_classes = 3, .n_stages = stages, .conv_bias = 1, .norm_eps = 1e-5f, .slope = 0.01f};
    for (int s = 0; s < stages; s++) {
        u.features[s] = features[s];
        for (int k = 0; k < 3; k++) u.kernel[s][k] = 3, u.stride[s][k] = s ? 2 : 1;
        u.n_conv[s] = 2;
        if (s < stages - 1) u.n_conv_dec[s] = 2;
    }
    if (stages > 1) u.stride[1][0] = 1; /* anisotropic first downsampling (1, 2, 2) */
    memcpy(u.patch, patch, sizeof u.patch);
    return u;
}

static void test_parity(void)
{
    if (!want("segresnet")) goto unet;
    batch b = make_batch(2, 16, 16, 16, 3);
    vp_segresnet_cfg sc = seg_cfg();
    vp_trainable *mc = vp_trainable_new_segresnet(&sc, 7), *mg = vp_trainable_new_segresnet(&sc, 7);
    vp_optim_cfg oc = vp_optim_cfg_default(VP_OPTIM_ADAMW);
    vp_loss_cfg lc = vp_loss_cfg_default(VP_LOSS_DICECE);
    parity("segresnet adamw", mc, mg, &oc, &lc, &b, 3, 1e-3f);
    vp_trainable_free(&mc), vp_trainable_free(&mg);
    vp_tensor_free(&b.x), free(b.t);
unet:;
    if (!want("unet")) return;
    const int f[3] = {4, 8, 16}, patch[3] = {8, 16, 16};
    batch u = make_batch(2, patch[0], patch[1], patch[2], 3);
    vp_unet_cfg uc = unet_cfg(f, 3, patch);
    vp_trainable *uc_c = vp_trainable_new_unet(&uc, 9), *uc_g = vp_trainable_new_unet(&uc, 9);
    vp_optim_cfg uo = vp_optim_cfg_default(VP_OPTIM_SGD);
    uo.clip_norm = 0.05f; /* small enough that clipping acts */
    vp_loss_cfg ul = vp_loss_cfg_default(VP_LOSS_NNUNET_DCCE);
    parity("unet sgd+ds+clip", uc_c, uc_g, &uo, &ul, &u, 3, 1e-2f);
    vp_trainable_free(&uc_c), vp_trainable_free(&uc_g);
    vp_tensor_free(&u.x), free(u.t);
}

static void test_scaler(void)
{
    if (!want("scaler")) return;
    /* grad_scale in the loss: gradients x scale, the loss itself unchanged */
    batch b = make_batch(1, 8, 8, 8, 3);
    vp_segresnet_cfg sc = seg_cfg();
    vp_trainable *m = vp_trainable_new_segresnet(&sc, 3);
    int64_t n;
    vp_trainable_flat_params(m, &n);
    float *g1 = vp_malloc((size_t)n * sizeof *g1);
    vp_loss_cfg lc = vp_loss_cfg_default(VP_LOSS_DICECE);
    double l1, l8;
    if (vp_train_step_grads(m, be, b.x, b.t, &lc, &l1)) exit(1);
    memcpy(g1, vp_trainable_flat_grads(m, NULL), (size_t)n * sizeof *g1);
    lc.grad_scale = 1024.0f;
    if (vp_train_step_grads(m, be, b.x, b.t, &lc, &l8)) exit(1);
    const float *g8 = vp_trainable_flat_grads(m, NULL);
    double d = 0;
    for (int64_t i = 0; i < n; i++) d = fmax(d, fabs(g8[i] / 1024.0 - g1[i]));
    check(l1 == l8 && d <= 1e-6 * maxabs(g1, n), "scaler: grad_scale 1024 gives gradients x 1024 (max rel %.3g), loss unchanged", d / maxabs(g1, n));
    vp_trainable_free(&m);
    vp_tensor_free(&b.x), free(b.t);

    /* GradScaler's rules on a flat buffer */
    const int64_t N = 70000; /* more than one run of the norm, not a multiple of it */
    vp_optim_cfg oc = vp_optim_cfg_default(VP_OPTIM_ADAMW);
    oc.lr = 1e-3f;
    float *p = vp_malloc(N * sizeof *p), *pc = vp_malloc(N * sizeof *pc), *g = vp_malloc(N * sizeof *g), *gs = vp_malloc(N * sizeof *gs);
    float *gc = vp_malloc(N * sizeof *gc), *before = vp_malloc(N * sizeof *before), *st0 = vp_malloc(N * sizeof *st0);
    uint64_t s = 42;
    for (int64_t i = 0; i < N; i++) p[i] = pc[i] = urand(&s) - 0.5f, g[i] = (urand(&s) - 0.5f) * 1e-3f;
    vp_optim *oh = vp_optim_new(&oc, N), *ocpu = vp_optim_new(&oc, N);
    vp_cuda_opt *o = vp_cuda_opt_new(be, &oc, oh, p, N);
    if (!o) exit(vp_cuda_exit_code(1));
    vp_loss_scaler ls = vp_loss_scaler_default(1);
    ls.scale = 1024.0f, ls.interval = 2;
    for (int k = 0; k < 2; k++) {
        for (int64_t i = 0; i < N; i++) gs[i] = g[i] * ls.scale, gc[i] = g[i];
        int skipped = -1;
        double ng, nc;
        if (vp_cuda_opt_upload_grads(o, gs) || vp_cuda_opt_step(o, oc.lr, &ls, p, &ng, &skipped) || vp_optim_step(ocpu, pc, gc, N, oc.lr, &nc)) exit(1);
        double dw = 0;
        for (int64_t i = 0; i < N; i++) dw = fmax(dw, fabs((double)p[i] - pc[i]));
        check(!skipped && dw <= 1e-6 && fabs(ng - nc) <= 1e-6 * nc,
              "scaler: finite step %d: not skipped, weights = CPU step on unscaled gradients (max abs %.3g), norm %.6g = %.6g", k, dw, ng, nc);
        check(ls.scale == (k == 0 ? 1024.0f : 2048.0f), "scaler: after finite step %d the scale is %g (growth after interval 2)", k, ls.scale);
    }
    const float bad[2] = {INFINITY, NAN};
    for (int k = 0; k < 2; k++) {
        memcpy(before, p, N * sizeof *p);
        if (vp_cuda_opt_download(o, NULL)) exit(1);
        memcpy(st0, vp_optim_state(oh, 0, NULL, NULL), N * sizeof *st0);
        int64_t steps = vp_optim_step_count(oh);
        float sc0 = ls.scale;
        for (int64_t i = 0; i < N; i++) gs[i] = g[i] * ls.scale;
        gs[N - 17] = bad[k];
        int skipped = 0;
        if (vp_cuda_opt_upload_grads(o, gs) || vp_cuda_opt_step(o, oc.lr, &ls, p, NULL, &skipped)) exit(1);
        float *p_now = vp_malloc(N * sizeof *p_now);
        if (vp_cuda_opt_download(o, p_now)) exit(1);
        check(skipped && !memcmp(before, p_now, N * sizeof *p) && !memcmp(st0, vp_optim_state(oh, 0, NULL, NULL), N * sizeof *st0) &&
                  vp_optim_step_count(oh) == steps,
              "scaler: injected %s: step skipped, weights, state and step counter unchanged", k ? "NaN" : "inf");
        check(ls.scale == sc0 * 0.5f && ls.tracker == 0, "scaler: injected %s: scale halved %g -> %g", k ? "NaN" : "inf", sc0, ls.scale);
        free(p_now);
    }
    gs[5] = INFINITY;
    check(vp_cuda_opt_upload_grads(o, gs) == 0 && vp_cuda_opt_step(o, oc.lr, NULL, p, NULL, NULL) == -1,
          "no scaler: a non-finite gradient is an error");
    vp_cuda_opt_free(&o);
    vp_optim_free(&oh), vp_optim_free(&ocpu);
    free(p), free(pc), free(g), free(gs), free(gc), free(before), free(st0), free(g1);
}

/* f16 (loss scaling) and bf16 SegResNet steps against f32 on the device */
static void test_half(void)
{
    batch b = make_batch(2, 16, 16, 16, 3);
    vp_segresnet_cfg sc = seg_cfg();
    vp_optim_cfg oc = vp_optim_cfg_default(VP_OPTIM_ADAMW);
    vp_loss_cfg lc = vp_loss_cfg_default(VP_LOSS_DICECE);
    float *ref = NULL;
    double lref[3];
    for (int mth = 0; mth < 3; mth++) {
        const vp_nn_backend *bm = vp_nn_backend_cuda_math(0, mth == 0 ? VP_CUDA_F32 : mth == 1 ? VP_CUDA_F16 : VP_CUDA_BF16);
        if (!bm) exit(4);
        vp_trainable *m = vp_trainable_new_segresnet(&sc, 7);
        int64_t n;
        float *P = vp_trainable_flat_params(m, &n);
        vp_optim *oh = vp_optim_new(&oc, n);
        vp_cuda_opt *o = vp_cuda_opt_new(bm, &oc, oh, P, n);
        vp_loss_scaler ls = vp_loss_scaler_default(mth == 1);
        for (int s = 0; s < 3; s++) {
            vp_loss_cfg l2 = lc;
            l2.grad_scale = ls.enabled ? ls.scale : 0;
            double loss;
            if (!o || vp_train_step_grads(m, bm, b.x, b.t, &l2, &loss) || vp_cuda_opt_upload_grads(o, vp_trainable_flat_grads(m, NULL)) ||
                vp_cuda_opt_step(o, 1e-3f, &ls, P, NULL, NULL))
                exit(vp_cuda_exit_code(1));
            if (mth == 0) lref[s] = loss;
            else check(fabs(loss - lref[s]) <= 2e-2 * lref[s], "%s step %d: loss %.6g vs f32 %.6g", mth == 1 ? "f16+scaler" : "bf16", s, loss, lref[s]);
        }
        if (mth == 0) {
            ref = vp_malloc((size_t)n * sizeof *ref);
            memcpy(ref, P, (size_t)n * sizeof *ref);
        }
        else {
            const char *where = "";
            double r = worst_rel(m, P, ref, 1e-3 * maxabs(ref, n), &where);
            check(r <= 2e-2, "%s: weights after 3 steps max rel %.3g of f32 (%s)", mth == 1 ? "f16+scaler" : "bf16", r, where);
        }
        vp_cuda_opt_free(&o);
        vp_optim_free(&oh);
        vp_trainable_free(&m);
    }
    free(ref);
    vp_tensor_free(&b.x), free(b.t);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b) { return (*(const double *)a > *(const double *)b) - (*(const double *)a < *(const double *)b); }

/* seconds per iteration (median of reps after 2 warm-up steps): forward + loss + backward + step,
 * the configurations of bench/bench_nn_train.c and tests/gpu/bench_train_torch.py; on the device
 * tape (vp_trainable_bind_device) as the trainers run, or with VP_TRAIN_STAGED=1 the per-op host
 * staging of before (gradients uploaded, weights downloaded each step) */
static void bench(const char *arch, int f, int size, int batchn, int reps)
{
    const int k = 3;
    batch b = make_batch(batchn, size, size, size, k);
    vp_trainable *m;
    vp_optim_cfg oc;
    vp_loss_cfg lc;
    if (!strcmp(arch, "segresnet")) {
        vp_segresnet_cfg sc = {.in_channels = 1, .out_channels = k, .init_filters = f, .norm_groups = 8, .n_down = 4,
                              .blocks_down = {1, 2, 2, 4}, .n_up = 3, .blocks_up = {1, 1, 1}, .eps = 1e-5f};
        m = vp_trainable_new_segresnet(&sc, 1);
        oc = vp_optim_cfg_default(VP_OPTIM_ADAMW), lc = vp_loss_cfg_default(VP_LOSS_DICECE);
    } else {
        const int fs[4] = {f, 2 * f, 4 * f, 8 * f}, patch[3] = {size, size, size};
        vp_unet_cfg uc = unet_cfg(fs, 4, patch);
        uc.stride[1][0] = 2;
        m = vp_trainable_new_unet(&uc, 1);
        oc = vp_optim_cfg_default(VP_OPTIM_SGD), lc = vp_loss_cfg_default(VP_LOSS_NNUNET_DCCE);
    }
    int64_t n;
    float *P = vp_trainable_flat_params(m, &n);
    vp_optim *oh = vp_optim_new(&oc, n);
    vp_cuda_opt *o = vp_cuda_opt_new(be, &oc, oh, P, n);
    vp_loss_scaler ls = vp_loss_scaler_default(!strcmp(vp_cuda_math_name(be), "f16"));
    const char *staged = getenv("VP_TRAIN_STAGED");
    const int bound = !(staged && !strcmp(staged, "1"));
    if (o && bound && vp_trainable_bind_device(m, be, vp_cuda_opt_dev_params(o), vp_cuda_opt_dev_grads(o))) exit(vp_cuda_exit_code(1));
    double t[64];
    if (reps > 62) reps = 62;
    if (reps < 1) reps = 1;
    for (int i = 0; i < reps + 2; i++) {
        double t0 = now_s(), loss;
        vp_loss_cfg l2 = lc;
        l2.grad_scale = ls.enabled ? ls.scale : 0;
        if (!o || vp_train_step_grads(m, be, b.x, b.t, &l2, &loss) ||
            (!bound && vp_cuda_opt_upload_grads(o, vp_trainable_flat_grads(m, NULL))) || vp_cuda_opt_step(o, 1e-4f, &ls, bound ? NULL : P, NULL, NULL))
            exit(vp_cuda_exit_code(1));
        if (i >= 2) t[i - 2] = now_s() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_d);
    printf("%.5f %.1f\n", t[reps / 2], vp_cuda_peak_bytes(0, 0) / 1048576.0);
    vp_trainable_free(&m); /* before o: a bound model's views point into o's buffers */
    vp_cuda_opt_free(&o);
    vp_optim_free(&oh);
    vp_tensor_free(&b.x), free(b.t);
}

int main(int argc, char **argv)
{
    int half = 0, only_bench = 0, baseline = 0;
    const char *bench_arch = NULL, *backend = "cuda:0";
    int bench_f = 32, bench_size = 64, bench_batch = 2, bench_reps = 5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tol") && i + 1 < argc) tol = atof(argv[++i]);
        else if (!strcmp(argv[i], "--half")) half = 1;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--baseline")) baseline = 1;
        else if (!strcmp(argv[i], "--backend") && i + 1 < argc) backend = argv[++i];
        else if (!strcmp(argv[i], "--bench") && i + 5 < argc) {
            only_bench = 1, bench_arch = argv[++i], bench_f = atoi(argv[++i]), bench_size = atoi(argv[++i]);
            bench_batch = atoi(argv[++i]);
            bench_reps = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--no-bench")) {
            fprintf(stderr, "usage: test_cuda_train [--tol T] [--half] [--only segresnet|unet|scaler] [--baseline] [--backend cuda:N:MATH] [--bench ARCH F SIZE BATCH REPS]\n");
            return 2;
        }
    }
    be = vp_nn_backend_get(backend);
    if (!be) return 4;
    if (baseline) { /* the backend's own lasting allocations, for the leak count of emulate_train.sh */
        batch b = make_batch(1, 8, 8, 8, 3);
        vp_segresnet_cfg sc = seg_cfg();
        vp_trainable *m = vp_trainable_new_segresnet(&sc, 3);
        double l;
        vp_loss_cfg lc = vp_loss_cfg_default(VP_LOSS_DICECE);
        int e = vp_train_step_grads(m, be, b.x, b.t, &lc, &l);
        vp_trainable_free(&m);
        vp_tensor_free(&b.x), free(b.t);
        return e ? 1 : 0;
    }
    if (only_bench) {
        bench(bench_arch, bench_f, bench_size, bench_batch, bench_reps);
        return 0;
    }
    test_parity();
    test_scaler();
    if (half) test_half();
    printf("test_cuda_train: %d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
