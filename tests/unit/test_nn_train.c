/* Unit tests for training (lib/nn_train*.c, lib/nn_optim.c, lib/nn_st_write.c): a SegResNet
 * (MONAI, AdamW) and a PlainConvUNet (dynamic_network_architectures + nnunetv2's loss with deep
 * supervision, SGD nesterov + poly lr + clip_grad_norm_) on a fixed batch of real CT, against the
 * goldens of tests/scripts/make_golden_train.py; checkpoints; bad input.
 *
 * Norm for parameters and gradients, per tensor: max |ours - peer| / max |peer|, bound 1e-4 (the
 * issue's). Gradients of conv biases that feed an InstanceNorm are zero in exact arithmetic (the
 * norm subtracts the mean) and both sides only hold rounding noise (up to ~2e-7 x the largest
 * gradient of the model): a tensor whose peer values are all below 1e-6 x the model's largest
 * gradient must have ours below that too (it is "zero" on both sides) instead of the ratio. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "endpoint.h"
#include "frame.h"
#include "nn_safetensors.h"
#include "nn_train.h"

#define G "tests/golden/train/"
#define TMP "tests/tmp/nn_train"

static double maxabs(const float *a, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fabs(a[i]) > m ? fabs(a[i]) : m;
    return m;
}

/* Per-tensor relative difference (see the header comment); the worst tensor's name in *worst. */
static double compare(vp_trainable *m, int grads, const char *file, const char *prefix, const char **worst)
{
    vp_safetensors *st = vp_st_open(file);
    cr_assert(st, "cannot open %s", file);
    double floor = 0, e = 0;
    cr_assert_eq(vp_st_count(st), vp_trainable_nparams(m), "%s holds %d tensors, the model %d", file, vp_st_count(st),
                 vp_trainable_nparams(m));
    for (int i = 0; i < vp_st_count(st); i++) {
        vp_tensor *t = vp_st_load(st, vp_st_at(st, i)->name);
        double a = maxabs(t->data, vp_tensor_numel(t));
        floor = a > floor ? a : floor;
        vp_tensor_free(&t);
    }
    floor *= 1e-6;
    for (int i = 0; i < vp_trainable_nparams(m); i++) {
        vp_param *p = vp_trainable_param(m, i);
        char n[256];
        snprintf(n, sizeof n, "%s%s", prefix, p->name);
        vp_tensor *t = vp_st_load(st, n);
        cr_assert(t, "%s: no tensor %s", file, n);
        cr_assert(vp_tensor_same_shape(t, &p->w), "%s: %s shape differs", file, n);
        const float *ours = grads ? p->g.data : p->w.data;
        double d = 0;
        for (int64_t k = 0; k < vp_tensor_numel(t); k++) {
            double x = fabs((double)ours[k] - t->data[k]);
            cr_assert(!isnan(x), "%s: NaN in %s", file, n);
            d = x > d ? x : d;
        }
        double den = maxabs(t->data, vp_tensor_numel(t));
        double r = den > floor ? d / den : maxabs(ours, vp_tensor_numel(t)) > floor ? INFINITY : 0.0;
        if (r > e) e = r, *worst = p->name;
        vp_tensor_free(&t);
    }
    vp_st_close(&st);
    return e;
}

typedef struct golden {
    vp_tensor *x, *losses;
    int32_t *target;
    vp_optim_cfg oc;
    vp_loss_cfg lc;
} golden;

static golden load_batch(const char *file, int unet)
{
    golden g = {0};
    vp_safetensors *st = vp_st_open(file);
    cr_assert(st);
    g.x = vp_st_load(st, "x");
    g.losses = vp_st_load(st, "losses");
    vp_tensor *t = vp_st_load(st, "target");
    g.target = malloc((size_t)vp_tensor_numel(t) * sizeof(int32_t));
    for (int64_t i = 0; i < vp_tensor_numel(t); i++) g.target[i] = (int32_t)t->data[i];
    vp_tensor_free(&t);
    g.oc = vp_optim_cfg_default(unet ? VP_OPTIM_SGD : VP_OPTIM_ADAMW);
    g.oc.lr = strtof(vp_st_meta(st, "lr"), NULL);
    g.oc.weight_decay = strtof(vp_st_meta(st, "weight_decay"), NULL);
    if (unet) {
        g.oc.momentum = strtof(vp_st_meta(st, "momentum"), NULL);
        g.oc.poly_exponent = strtof(vp_st_meta(st, "poly_exponent"), NULL);
        g.oc.clip_norm = strtof(vp_st_meta(st, "clip_norm"), NULL);
    }
    g.lc = vp_loss_cfg_default(unet ? VP_LOSS_NNUNET_DCCE : VP_LOSS_DICECE);
    if (unet) g.lc.batch_dice = atoi(vp_st_meta(st, "batch_dice"));
    vp_st_close(&st);
    return g;
}

static void free_golden(golden *g)
{
    vp_tensor_free(&g->x), vp_tensor_free(&g->losses);
    free(g->target);
}

/* Loss, every gradient and every weight after one step (both backends), then the 20-step loss
 * curve on the CPU backend, against the peer. */
static void parity(const char *arch, int unet, double curve_tol)
{
    char f[256];
    snprintf(f, sizeof f, G "%s_batch.safetensors", arch);
    golden g = load_batch(f, unet);
    const int steps = (int)g.losses->shape[0];
    vp_threads = 2;
    for (int b = 0; b < 2; b++) {
        const vp_nn_backend *be = b ? vp_nn_backend_cpu() : vp_nn_backend_ref();
        snprintf(f, sizeof f, G "%s_model.safetensors", arch);
        vp_trainable *m = vp_trainable_load(f);
        cr_assert(m, "cannot load %s", f);
        int64_t n;
        float *P = vp_trainable_flat_params(m, &n), *Gr = vp_trainable_flat_grads(m, NULL);
        vp_optim *o = vp_optim_new(&g.oc, n);
        cr_assert(o);
        for (int s = 0; s < (b ? steps : 1); s++) {
            double loss;
            cr_assert_eq(vp_train_step_grads(m, be, g.x, g.target, &g.lc, &loss), 0, "%s step %d failed", arch, s);
            double rel = fabs(loss - g.losses->data[s]) / fabs(g.losses->data[s]);
            cr_log_info("%s %s step %2d: loss %.7f, peer %.7f, rel diff %.2g", arch, be->name, s, loss, g.losses->data[s], rel);
            if (s == 0) {
                const char *worst = "";
                cr_expect_leq(rel, 1e-5, "%s on %s: first loss %.8g, peer %.8g", arch, be->name, loss, g.losses->data[0]);
                snprintf(f, sizeof f, G "%s_grads.safetensors", arch);
                double e = compare(m, 1, f, "grad.", &worst);
                cr_log_info("%s on %s: gradients: worst rel diff %.2g (%s)", arch, be->name, e, worst);
                cr_expect_leq(e, 1e-4, "%s on %s: gradient %s rel diff %g", arch, be->name, worst, e);
            } else {
                cr_expect_leq(rel, curve_tol, "%s step %d: loss %.8g, peer %.8g (rel %g)", arch, s, loss, g.losses->data[s], rel);
            }
            float lr = vp_optim_lr(o, s, steps);
            cr_assert_eq(vp_optim_step(o, P, Gr, n, lr, NULL), 0);
            if (s == 0) {
                const char *worst = "";
                snprintf(f, sizeof f, G "%s_step1.safetensors", arch);
                double e = compare(m, 0, f, "", &worst);
                cr_log_info("%s on %s: weights after one step: worst rel diff %.2g (%s)", arch, be->name, e, worst);
                cr_expect_leq(e, 1e-4, "%s on %s: updated weight %s rel diff %g", arch, be->name, worst, e);
            }
        }
        vp_optim_free(&o);
        vp_trainable_free(&m);
    }
    free_golden(&g);
}

/* 20 AdamW steps: the loss moves from step to step by about 1e-3 relative (and more at first),
 * and f32 reassociation differences compound through the optimizer; 1e-3 relative is well below
 * the per-step change and catches any formula error (a wrong step changes the curve at 1e-2). */
Test(train, segresnet_vs_monai) { parity("srn", 0, 1e-4); }
/* The same for nnU-Net's PlainConvUNet, deep supervision, SGD nesterov momentum 0.99, poly lr. */
Test(train, unet_vs_nnunet) { parity("unet", 1, 1e-4); }

/* SGD (nesterov, weight decay, clip_grad_norm_ active, poly lr) and AdamW over 3 steps against
 * torch.optim on given gradients: parameters within 1e-6 relative, gradient norms 1e-6. */
Test(optim, sgd_adamw_clip_vs_torch)
{
    vp_safetensors *st = vp_st_open(G "optim.safetensors");
    cr_assert(st);
    vp_tensor *p0 = vp_st_load(st, "p0"), *norms = vp_st_load(st, "sgd.norms");
    const int64_t n = p0->shape[0];
    for (int k = 0; k < 2; k++) {
        vp_optim_cfg c = vp_optim_cfg_default(k ? VP_OPTIM_ADAMW : VP_OPTIM_SGD);
        if (k) c.lr = 1e-2f, c.weight_decay = 1e-1f;
        else c.lr = 0.1f, c.weight_decay = 3e-2f, c.clip_norm = 1.0f;
        vp_optim *o = vp_optim_new(&c, n);
        float *p = malloc((size_t)n * sizeof *p), *g = malloc((size_t)n * sizeof *g);
        memcpy(p, p0->data, (size_t)n * sizeof *p);
        for (int s = 0; s < 3; s++) {
            char nm[32];
            snprintf(nm, sizeof nm, "g%d", s);
            vp_tensor *gt = vp_st_load(st, nm);
            memcpy(g, gt->data, (size_t)n * sizeof *g);
            double norm;
            cr_assert_eq(vp_optim_step(o, p, g, n, vp_optim_lr(o, s, 10), &norm), 0);
            if (!k) cr_expect_leq(fabs(norm - norms->data[s]) / norms->data[s], 1e-6, "sgd step %d: norm %g vs %g", s, norm, norms->data[s]);
            snprintf(nm, sizeof nm, "%s.p%d", k ? "adamw" : "sgd", s + 1);
            vp_tensor *want = vp_st_load(st, nm);
            double d = 0;
            for (int64_t i = 0; i < n; i++) d = fmax(d, fabs((double)p[i] - want->data[i]));
            d /= maxabs(want->data, n);
            cr_expect_leq(d, 1e-6, "%s step %d: parameters rel diff %g", k ? "adamw" : "sgd", s + 1, d);
            vp_tensor_free(&gt), vp_tensor_free(&want);
        }
        cr_expect_eq(vp_optim_step_count(o), 3);
        cr_expect_eq(vp_optim_state_count(o), k ? 2 : 1);
        free(p), free(g);
        vp_optim_free(&o);
    }
    vp_tensor_free(&p0), vp_tensor_free(&norms);
    vp_st_close(&st);
}

static double fwd_diff(const vp_tensor *a, const vp_tensor *b)
{
    cr_assert(vp_tensor_same_shape(a, b));
    double d = 0;
    for (int64_t i = 0; i < vp_tensor_numel(a); i++) d = fmax(d, fabs((double)a->data[i] - b->data[i]));
    return d / maxabs(b->data, vp_tensor_numel(b));
}

/* Train two steps, save with extra metadata, load back: identical bytes; the inference loaders
 * (vp_segresnet_load / vp_unet_load, what infer-ressegnet / infer-unet use) read the file and give
 * the trainable model's logits. */
static void roundtrip(const char *arch, int unet)
{
    char f[256], out[256];
    snprintf(f, sizeof f, G "%s_batch.safetensors", arch);
    golden g = load_batch(f, unet);
    snprintf(f, sizeof f, G "%s_model.safetensors", arch);
    vp_trainable *m = vp_trainable_load(f);
    cr_assert(m);
    int64_t n;
    float *P = vp_trainable_flat_params(m, &n);
    vp_optim *o = vp_optim_new(&g.oc, n);
    for (int s = 0; s < 2; s++) {
        double l;
        cr_assert_eq(vp_train_step_grads(m, vp_nn_backend_cpu(), g.x, g.target, &g.lc, &l), 0);
        cr_assert_eq(vp_optim_step(o, P, vp_trainable_flat_grads(m, NULL), n, g.oc.lr, NULL), 0);
    }
    mkdir("tests/tmp", 0755), mkdir(TMP, 0755);
    snprintf(out, sizeof out, TMP "/%s.safetensors", arch);
    const char *k[] = {"voxpipe.roi", "labels"}, *v[] = {"16,16,16", "{\"1\": \"a\", \"2\": \"b \\\"q\\\"\"}"};
    cr_assert_eq(vp_trainable_save(m, out, 2, k, v), 0);
    vp_trainable *m2 = vp_trainable_load(out);
    cr_assert(m2, "cannot load the saved %s", out);
    int64_t n2;
    cr_assert_eq(vp_trainable_nparams(m2), vp_trainable_nparams(m));
    for (int i = 0; i < vp_trainable_nparams(m); i++) cr_assert_str_eq(vp_trainable_param(m2, i)->name, vp_trainable_param(m, i)->name);
    cr_expect(!memcmp(vp_trainable_flat_params(m2, &n2), P, (size_t)n * sizeof(float)) && n2 == n, "%s: reloaded weights differ", arch);
    FILE *fh = fopen(out, "rb");
    unsigned char len8[8];
    cr_assert(fh && fread(len8, 1, 8, fh) == 8);
    fclose(fh);
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++) hl |= (uint64_t)len8[i] << (8 * i);
    cr_expect_eq(hl % 8, 0, "header length %llu: the data must start 8-byte aligned", (unsigned long long)hl);
    vp_safetensors *st = vp_st_open(out);
    cr_assert(st);
    cr_expect_str_eq(vp_st_meta(st, "voxpipe.roi"), "16,16,16");
    cr_expect_str_eq(vp_st_meta(st, "labels"), v[1]);
    vp_tensor *y = NULL, *yi = NULL;
    cr_assert_eq(vp_trainable_forward(m, vp_nn_backend_cpu(), g.x, &y), 0);
    if (unet) {
        vp_unet *u = vp_unet_load(out);
        cr_assert(u, "vp_unet_load cannot read the checkpoint");
        yi = vp_tensor_new(5, y->shape);
        cr_assert_eq(vp_unet_forward(u, vp_nn_backend_cpu(), g.x, yi), 0);
        vp_unet_free(&u);
    } else {
        vp_segresnet *sr = vp_segresnet_load(st, out);
        cr_assert(sr, "vp_segresnet_load cannot read the checkpoint");
        cr_assert_eq(vp_segresnet_forward(sr, vp_nn_backend_cpu(), g.x, &yi), 0);
        vp_segresnet_free(&sr);
    }
    double d = fwd_diff(y, yi);
    cr_expect_leq(d, 1e-6, "%s: inference loader's logits differ by %g", arch, d);
    vp_st_close(&st);
    vp_tensor_free(&y), vp_tensor_free(&yi);
    vp_optim_free(&o);
    vp_trainable_free(&m), vp_trainable_free(&m2);
    free_golden(&g);
}

Test(checkpoint, segresnet_roundtrip) { roundtrip("srn", 0); }
Test(checkpoint, unet_roundtrip) { roundtrip("unet", 1); }

/* Fresh models: the same seed gives the same bytes, another seed others; torch's init scale
 * (SegResNet convInit: U(+-1/sqrt(27)); U-Net: He normal, biases 0); one step runs and lowers
 * nothing to NaN. */
Test(checkpoint, fresh_init)
{
    vp_segresnet_cfg c = {.in_channels = 1, .out_channels = 2, .init_filters = 8, .norm_groups = 8, .n_down = 2,
                          .blocks_down = {1, 2}, .n_up = 1, .blocks_up = {1}, .eps = 1e-5f};
    vp_trainable *a = vp_trainable_new_segresnet(&c, 1), *b = vp_trainable_new_segresnet(&c, 1), *d = vp_trainable_new_segresnet(&c, 2);
    int64_t n;
    float *pa = vp_trainable_flat_params(a, &n);
    cr_expect(!memcmp(pa, vp_trainable_flat_params(b, NULL), (size_t)n * sizeof(float)));
    cr_expect(memcmp(pa, vp_trainable_flat_params(d, NULL), (size_t)n * sizeof(float)));
    vp_param *p0 = vp_trainable_param(a, 0);
    cr_expect_str_eq(p0->name, "convInit.conv.weight");
    double mx = maxabs(p0->w.data, vp_tensor_numel(&p0->w));
    cr_expect(mx <= 1 / sqrt(27.0) && mx > 0.9 / sqrt(27.0), "convInit max |w| %g", mx);
    vp_tensor *x = vp_tensor_new5(1, 1, 8, 8, 8);
    int32_t t[512];
    for (int i = 0; i < 512; i++) x->data[i] = (float)((i * 37) % 11) / 11.0f, t[i] = i % 3 == 0;
    vp_loss_cfg lc = vp_loss_cfg_default(VP_LOSS_DICECE);
    double l;
    cr_assert_eq(vp_train_step_grads(a, vp_nn_backend_cpu(), x, t, &lc, &l), 0);
    cr_expect(isfinite(l) && l > 0);
    vp_tensor_free(&x);
    vp_trainable_free(&a), vp_trainable_free(&b), vp_trainable_free(&d);
}

/* Bad input: a target label out of range, an input with the wrong channels or a size the model
 * cannot divide, a file that is not a model, a checkpoint missing a tensor, an unwritable path:
 * -1 / NULL and a message, no crash, no file left. */
Test(checkpoint, bad_input, .init = cr_redirect_stderr)
{
    golden g = load_batch(G "srn_batch.safetensors", 0);
    vp_trainable *m = vp_trainable_load(G "srn_model.safetensors");
    double l;
    g.target[100] = 3;
    cr_expect_eq(vp_train_step_grads(m, vp_nn_backend_cpu(), g.x, g.target, &g.lc, &l), -1);
    g.target[100] = 0;
    vp_tensor *x2 = vp_tensor_zeros(5, (int64_t[]){1, 2, 16, 16, 16}), *x3 = vp_tensor_zeros(5, (int64_t[]){1, 1, 16, 15, 16});
    cr_expect_eq(vp_train_step_grads(m, vp_nn_backend_cpu(), x2, g.target, &g.lc, &l), -1);
    cr_expect_eq(vp_train_step_grads(m, vp_nn_backend_cpu(), x3, g.target, &g.lc, &l), -1);
    cr_expect_null(vp_trainable_load(G "ops.safetensors"));
    cr_expect_null(vp_trainable_load("tests/golden/segresnet/bad_missing.safetensors"));
    cr_expect_eq(vp_trainable_save(m, TMP "/no/such/dir/x.safetensors", 0, NULL, NULL), -1);
    cr_expect_eq(access(TMP "/no/such/dir", F_OK), -1);
    fflush(stderr);
    cr_expect_stderr_eq_str(
        "voxpipe: error: segresnet: target label 3 at batch 0 voxel 100 is outside [0, 3) (the model has 3 classes)\n"
        "voxpipe: error: segresnet: input (1,2,16,16,16) has 2 channels, the model takes 1\n"
        "voxpipe: error: segresnet: input (1,1,16,15,16): spatial sizes must be multiples of (2,2,2)\n"
        "voxpipe: error: tests/golden/train/ops.safetensors: __metadata__ has neither voxpipe.arch nor architecture: not a voxpipe model\n"
        "voxpipe: error: tests/golden/segresnet/bad_missing.safetensors: tensor down_layers.0.2.conv2.conv.weight is missing\n"
        "voxpipe: error: tests/tmp/nn_train/no/such/dir/x.safetensors: cannot create a temporary file: No such file or directory\n");
    vp_tensor_free(&x2), vp_tensor_free(&x3);
    vp_trainable_free(&m);
    free_golden(&g);
}

/* infer-ressegnet runs a checkpoint written by vp_trainable_save (after training steps): one
 * 16^3 case of the batch, --no-preprocess, one window (--roi 16,16,16); its label is the argmax
 * of the trainable model's logits at every voxel (volume (x, y, z) = tensor (d, h, w), as the
 * program maps MONAI's axes). The program comes from $VOXPIPE_BIN (default bin/). */
Test(checkpoint, infer_ressegnet_runs_checkpoint)
{
    golden g = load_batch(G "srn_batch.safetensors", 0);
    vp_trainable *m = vp_trainable_load(G "srn_model.safetensors");
    int64_t n;
    float *P = vp_trainable_flat_params(m, &n);
    vp_optim *o = vp_optim_new(&g.oc, n);
    for (int s = 0; s < 3; s++) {
        double l;
        cr_assert_eq(vp_train_step_grads(m, vp_nn_backend_cpu(), g.x, g.target, &g.lc, &l), 0);
        cr_assert_eq(vp_optim_step(o, P, vp_trainable_flat_grads(m, NULL), n, g.oc.lr, NULL), 0);
    }
    mkdir("tests/tmp", 0755), mkdir(TMP, 0755);
    const char *k[] = {"voxpipe.roi", "voxpipe.labels"}, *v[] = {"16,16,16", "{\"1\": \"a\", \"2\": \"b\"}"};
    cr_assert_eq(vp_trainable_save(m, TMP "/infer.safetensors", 2, k, v), 0);
    const int64_t S = 16, V = S * S * S;
    vp_tensor x0 = vp_tensor_view(g.x->data, 5, (int64_t[]){1, 1, S, S, S}), *y = NULL;
    cr_assert_eq(vp_trainable_forward(m, vp_nn_backend_cpu(), &x0, &y), 0);
    uint64_t dims[4] = {S, S, S, 1};
    double aff[16] = {3, 0, 0, 0, 0, 3, 0, 0, 0, 0, 3, 0, 0, 0, 0, 1};
    vp_vol *img = vp_vol_new(dims, VP_F32, aff);
    for (int64_t d = 0; d < S; d++)
        for (int64_t h = 0; h < S; h++)
            for (int64_t w = 0; w < S; w++) ((float *)img->data)[(w * S + h) * S + d] = x0.data[(d * S + h) * S + w];
    vp_case *c = vp_case_new("c1");
    vp_case_add_vol(c, "image", img);
    vp_out *out = vp_out_open(TMP "/in.vxp", 0);
    cr_assert(out);
    cr_assert_eq(vp_case_write(out, c), 0);
    cr_assert_eq(vp_stream_finish(&out), 0);
    vp_case_free(&c);
    const char *bin = getenv("VOXPIPE_BIN");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s/infer-ressegnet --threads 2 --no-preprocess --roi 16,16,16 -m %s -i %s -o %s", bin ? bin : "bin",
             TMP "/infer.safetensors", TMP "/in.vxp", TMP "/out.vxp");
    unlink(TMP "/out.vxp");
    cr_assert_eq(system(cmd), 0, "%s failed", cmd);
    vp_in *in = vp_in_open(TMP "/out.vxp");
    cr_assert(in);
    cr_assert_eq(vp_case_read(in, &c), 1);
    vp_vol *lab = vp_case_vol(c, "label");
    cr_assert(lab && lab->dims[0] == S && lab->dims[1] == S && lab->dims[2] == S, "no 16^3 label in the output");
    int64_t bad = 0, fg = 0;
    for (int64_t d = 0; d < S; d++)
        for (int64_t h = 0; h < S; h++)
            for (int64_t w = 0; w < S; w++) {
                const int64_t i = (d * S + h) * S + w;
                int best = 0;
                for (int cl = 1; cl < 3; cl++)
                    if (y->data[cl * V + i] > y->data[best * V + i]) best = cl;
                int got = (int)vp_vol_get(lab, (uint64_t)((w * S + h) * S + d));
                bad += got != best;
                fg += best != 0;
            }
    cr_log_info("infer-ressegnet: %lld of %lld labels differ from the trainable model's argmax (%lld foreground)",
                (long long)bad, (long long)V, (long long)fg);
    cr_expect_eq(bad, 0, "%lld labels differ", (long long)bad);
    vp_case_free(&c);
    vp_in_close(&in);
    vp_tensor_free(&y);
    vp_optim_free(&o);
    vp_trainable_free(&m);
    free_golden(&g);
}

/* The gradients of a step are the same bytes for 1, 2 and 3 threads (both architectures). */
Test(train, deterministic_threads)
{
    const char *arch[2] = {"srn", "unet"};
    for (int a = 0; a < 2; a++) {
        char f[256];
        snprintf(f, sizeof f, G "%s_batch.safetensors", arch[a]);
        golden g = load_batch(f, a);
        snprintf(f, sizeof f, G "%s_model.safetensors", arch[a]);
        vp_trainable *m = vp_trainable_load(f);
        int64_t n;
        float *first = NULL;
        double l0 = 0;
        for (int th = 1; th <= 3; th++) {
            vp_threads = th;
            double l;
            cr_assert_eq(vp_train_step_grads(m, vp_nn_backend_cpu(), g.x, g.target, &g.lc, &l), 0);
            float *gr = vp_trainable_flat_grads(m, &n);
            if (!first) {
                first = malloc((size_t)n * sizeof *first);
                memcpy(first, gr, (size_t)n * sizeof *first);
                l0 = l;
            } else {
                cr_expect(!memcmp(first, gr, (size_t)n * sizeof *first) && l == l0, "%s: %d threads: other gradient bytes", arch[a], th);
            }
        }
        free(first);
        vp_trainable_free(&m);
        free_golden(&g);
    }
}

/* Inference model files (the forward goldens of tests/golden/segresnet and tests/golden/unet, made
 * by their own scripts, f16 weights) load as trainable models and give the inference forward's
 * logits. */
Test(checkpoint, loads_inference_models)
{
    vp_threads = 2;
    vp_trainable *m = vp_trainable_load("tests/golden/segresnet/model_small.safetensors");
    cr_assert(m);
    cr_expect_str_eq(vp_trainable_arch(m), "segresnet");
    vp_safetensors *st = vp_st_open("tests/golden/segresnet/model_small.safetensors");
    vp_segresnet *sr = vp_segresnet_load(st, "model_small");
    cr_assert(sr);
    int div[3];
    vp_trainable_divisor(m, div);
    vp_tensor *x = vp_tensor_new5(1, vp_trainable_in_channels(m), 2 * div[0], 2 * div[1], div[2]), *y = NULL, *yi = NULL;
    for (int64_t i = 0; i < vp_tensor_numel(x); i++) x->data[i] = (float)((i * 7919) % 201) / 100.0f - 1.0f;
    cr_assert_eq(vp_trainable_forward(m, vp_nn_backend_cpu(), x, &y), 0);
    cr_assert_eq(vp_segresnet_forward(sr, vp_nn_backend_cpu(), x, &yi), 0);
    cr_expect_leq(fwd_diff(y, yi), 1e-6);
    vp_tensor_free(&x), vp_tensor_free(&y), vp_tensor_free(&yi);
    vp_segresnet_free(&sr);
    vp_st_close(&st);
    vp_trainable_free(&m);

    m = vp_trainable_load("tests/golden/unet/model.safetensors");
    cr_assert(m);
    cr_expect_str_eq(vp_trainable_arch(m), "unet");
    vp_unet *u = vp_unet_load("tests/golden/unet/model.safetensors");
    cr_assert(u);
    vp_trainable_divisor(m, div);
    x = vp_tensor_new5(1, vp_trainable_in_channels(m), div[0], div[1], 2 * div[2]);
    for (int64_t i = 0; i < vp_tensor_numel(x); i++) x->data[i] = (float)((i * 7919) % 201) / 100.0f - 1.0f;
    cr_assert_eq(vp_trainable_forward(m, vp_nn_backend_cpu(), x, &y), 0);
    yi = vp_tensor_new(5, y->shape);
    cr_assert_eq(vp_unet_forward(u, vp_nn_backend_cpu(), x, yi), 0);
    cr_expect_leq(fwd_diff(y, yi), 1e-6);
    vp_tensor_free(&x), vp_tensor_free(&y), vp_tensor_free(&yi);
    vp_unet_free(&u);
    vp_trainable_free(&m);
}
