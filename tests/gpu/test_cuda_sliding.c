/* test_cuda_sliding.c - vp_cuda_sliding_window (device-side aggregation and argmax) against the CPU
 * sliding window (nn_sliding.c: vp_sliding_window, then the reference argmax) with the same
 * network on both sides: a 3x3x3 convolution with bias (cuDNN on device batches, the reference
 * convolution on the CPU). Cases: overlap with a gaussian map, batches of 1 and 3, NCDHW and NDHWC
 * windows, a volume smaller than the window (constant and replicate padding), a volume of many
 * window rows (the ring band wraps several times), f16 aggregation, the tiled path (the image kept
 * on the host, uploaded slab by slab, labels back band by band: also compared with the whole-volume
 * path bit for bit, and VP_CUDA_SW_AUTO checked to choose it under VP_CUDA_MEM_LIMIT_MIB); an aggregation band that
 * cannot fit (clear error, exit code 4); then a timing on a CT-sized volume. Run by tests/gpu/check.sh on a machine with a GPU.
 *
 * Pass (f32 aggregation): logits max abs <= 1e-4 or NMSE <= 1e-7, labels identical wherever the
 * CPU's two best classes differ by more than 1e-4; (f16): logits max abs <= 1e-2 x max |logit|,
 * labels identical where the margin exceeds that. Exit 0 / 1 / 4 (no CUDA backend).
 */
#include "nn_backend.h"
#include "nn_cuda.h"
#include "nn_sliding.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static float urand(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((rng >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

typedef struct net {
    vp_tensor *w, *b;   /* host */
    vp_tensor *dw, *db; /* device copies */
} net;

static const vp_conv3d_params P1 = {{1, 1, 1}, {1, 1, 1}, {0, 0, 0}};

static int cpu_predict(void *ctx, const vp_tensor *x, vp_tensor **y)
{
    net *n = ctx;
    *y = vp_tensor_new5(1, n->w->shape[0], x->shape[2], x->shape[3], x->shape[4]);
    return vp_nn_ref_conv3d(x, n->w, n->b, &P1, *y);
}

static int gpu_predict(void *ctx, const vp_nn_backend *be, const vp_tensor *x, vp_tensor *y)
{
    net *n = ctx;
    return be->conv3d(be, x, n->dw, n->db, &P1, y);
}

static int n_pass, n_fail;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void net_init(net *n, const vp_nn_backend *be, int C, int K)
{
    n->w = vp_tensor_new5(K, C, 3, 3, 3);
    int64_t k = K;
    n->b = vp_tensor_new(1, &k);
    for (int64_t i = 0; i < vp_tensor_numel(n->w); i++) n->w->data[i] = urand() * 0.3f;
    for (int i = 0; i < K; i++) n->b->data[i] = urand() * 0.5f;
    n->dw = vp_cuda_tensor_new(0, 5, n->w->shape);
    n->db = vp_cuda_tensor_new(0, 1, &k);
    if (!n->dw || !n->db || vp_cuda_upload(n->dw, n->w) || vp_cuda_upload(n->db, n->b)) exit(1);
}

static void net_free(net *n)
{
    vp_tensor_free(&n->w), vp_tensor_free(&n->b);
    vp_cuda_tensor_free(&n->dw), vp_cuda_tensor_free(&n->db);
}

static void sw_case(const vp_nn_backend *be, int C, int K, int D, int H, int W, int roi, double overlap, int gaussian, int pad_mode,
                    int batch, int layout, int f16, int on_device, int tiled)
{
    net n;
    net_init(&n, be, C, K);
    vp_tensor *x = vp_tensor_new5(1, C, D, H, W);
    for (int64_t i = 0; i < vp_tensor_numel(x); i++) x->data[i] = urand() * 2.0f;
    vp_sw_params p = {{roi, roi, roi}, overlap, gaussian, 0.125, pad_mode, 0.5f};
    vp_tensor *want = NULL, *got = vp_tensor_new5(1, K, D, H, W), *dx = NULL;
    const int64_t S = (int64_t)D * H * W;
    int32_t *lw = vp_malloc((size_t)S * 4), *lg = vp_malloc((size_t)S * 4);
    char desc[160];
    snprintf(desc, sizeof desc, "x(1,%d,%d,%d,%d) K%d roi%d ov%.2f %s %s b%d %s %s%s", C, D, H, W, K, roi, overlap, gaussian ? "gauss" : "const",
             pad_mode ? "replicate" : "constant", batch, layout ? "NDHWC" : "NCDHW", f16 ? "f16" : "f32", on_device ? " x-on-device" : tiled ? " tiled" : "");
    if (vp_sliding_window(x, &p, cpu_predict, &n, NULL, &want) || vp_nn_ref_argmax_c(want, lw)) exit(1);
    vp_cuda_sw_opts o = {batch, f16, layout, tiled ? VP_CUDA_SW_TILED : VP_CUDA_SW_WHOLE, 0, NULL, NULL, NULL};
    if (on_device && (!(dx = vp_cuda_tensor_new(0, 5, x->shape)) || vp_cuda_upload(dx, x))) exit(1);
    if (vp_cuda_sliding_window(be, dx ? dx : x, &p, K, &o, gpu_predict, &n, lg, got)) {
        printf("FAIL sliding %s: returned an error\n", desc);
        n_fail++;
    } else {
        double maxabs = 0, se = 0, ss = 0, maxref = 0;
        for (int64_t i = 0; i < vp_tensor_numel(want); i++) {
            double d = fabs((double)got->data[i] - want->data[i]);
            if (!(d <= maxabs)) maxabs = d;
            if (fabs(want->data[i]) > maxref) maxref = fabs(want->data[i]);
            se += d * d, ss += (double)want->data[i] * want->data[i];
        }
        double nmse = ss > 0 ? se / ss : se, tol = f16 ? 1e-2 * maxref : 1e-4;
        int logits_ok = f16 ? maxabs <= tol : maxabs <= 1e-4 || nmse <= 1e-7;
        int64_t differ = 0, bad = 0;
        for (int64_t v = 0; v < S; v++) {
            if (lw[v] == lg[v]) continue;
            differ++;
            float a = want->data[(int64_t)lw[v] * S + v], b = want->data[(int64_t)lg[v] * S + v];
            if (lg[v] < 0 || lg[v] >= K || fabs(a - b) > tol) bad++; /* not a near tie */
        }
        int ok = logits_ok && !bad;
        ok ? n_pass++ : n_fail++;
        printf("%-4s sliding %-78s logits maxabs %.2e nmse %.2e; labels: %lld differ (%lld beyond ties) of %lld\n", ok ? "ok" : "FAIL", desc,
               maxabs, nmse, (long long)differ, (long long)bad, (long long)S);
    }
    vp_cuda_tensor_free(&dx);
    vp_tensor_free(&x), vp_tensor_free(&want), vp_tensor_free(&got);
    free(lw), free(lg);
    net_free(&n);
}

/* o->emit: rows into a (1, K, D, H, W) tensor, checking they come in order */
struct rows {
    vp_tensor *t;
    int64_t next;
};
static int collect_row(void *ectx, int64_t d, int64_t K, const float *row)
{
    struct rows *r = ectx;
    const int64_t D = r->t->shape[2], HW = r->t->shape[3] * r->t->shape[4];
    if (d != r->next++ || K != r->t->shape[1]) return vp_error("emit: row %lld out of order or %lld classes", (long long)d, (long long)K);
    for (int64_t k = 0; k < K; k++) memcpy(r->t->data + (k * D + d) * HW, row + k * HW, (size_t)HW * 4);
    return 0;
}

/* the tiled path gives the whole-volume path's logits and labels bit for bit (and o->emit's rows
 * are those logits, in either path); VP_CUDA_SW_AUTO takes
 * it when VP_CUDA_MEM_LIMIT_MIB=0 leaves no room, and not with the device's full memory */
static void tiled_equal(const vp_nn_backend *be, int D, int H, int W, int roi, int batch, int layout)
{
    net n;
    const int K = 4;
    net_init(&n, be, 2, K);
    vp_tensor *x = vp_tensor_new5(1, 2, D, H, W), *a = vp_tensor_new5(1, K, D, H, W), *b = vp_tensor_new5(1, K, D, H, W);
    for (int64_t i = 0; i < vp_tensor_numel(x); i++) x->data[i] = urand() * 2.0f;
    vp_sw_params p = {{roi, roi, roi}, 0.5, 1, 0.125, VP_SW_PAD_CONSTANT, 0.0f};
    const int64_t S = (int64_t)D * H * W;
    int32_t *la = vp_malloc((size_t)S * 4), *lb = vp_malloc((size_t)S * 4);
    int took_full = -1, took_forced = -1, took_limit = -1;
    vp_cuda_sw_opts o = {batch, 0, layout, VP_CUDA_SW_AUTO, 0, &took_full, NULL, NULL};
    int rc = vp_cuda_sliding_window(be, x, &p, K, &o, gpu_predict, &n, la, a);
    o.tiled = VP_CUDA_SW_TILED, o.took_tiled = &took_forced;
    rc = rc || vp_cuda_sliding_window(be, x, &p, K, &o, gpu_predict, &n, lb, b);
    setenv("VP_CUDA_MEM_LIMIT_MIB", "0", 1); /* no memory: anything is too big */
    o.tiled = VP_CUDA_SW_AUTO, o.took_tiled = &took_limit;
    int32_t *lc = vp_malloc((size_t)S * 4);
    rc = rc || vp_cuda_sliding_window(be, x, &p, K, &o, gpu_predict, &n, lc, NULL);
    unsetenv("VP_CUDA_MEM_LIMIT_MIB");
    struct rows r1 = {vp_tensor_new5(1, K, D, H, W), 0}, r2 = {vp_tensor_new5(1, K, D, H, W), 0};
    o.took_tiled = NULL, o.emit = collect_row;
    o.tiled = VP_CUDA_SW_WHOLE, o.ectx = &r1;
    rc = rc || vp_cuda_sliding_window(be, x, &p, K, &o, gpu_predict, &n, NULL, NULL);
    o.tiled = VP_CUDA_SW_TILED, o.ectx = &r2;
    rc = rc || vp_cuda_sliding_window(be, x, &p, K, &o, gpu_predict, &n, NULL, NULL);
    const size_t nb = (size_t)vp_tensor_numel(a) * 4;
    int rows_ok = !rc && r1.next == D && r2.next == D && !memcmp(a->data, r1.t->data, nb) && !memcmp(a->data, r2.t->data, nb);
    vp_tensor_free(&r1.t), vp_tensor_free(&r2.t);
    int same = rows_ok && !rc && !memcmp(a->data, b->data, (size_t)vp_tensor_numel(a) * 4) && !memcmp(la, lb, (size_t)S * 4) && !memcmp(la, lc, (size_t)S * 4);
    int ok = same && took_full == 0 && took_forced == 1 && took_limit == 1;
    ok ? n_pass++ : n_fail++;
    printf("%-4s sliding tiled == whole volume, x(1,2,%d,%d,%d) roi %d batch %d %s: rc %d, identical %d (rows emitted: %d); auto chose tiled: %d at full memory, "
           "%d with VP_CUDA_MEM_LIMIT_MIB=0 (forced: %d)\n",
           ok ? "ok" : "FAIL", D, H, W, roi, batch, layout ? "NDHWC" : "NCDHW", rc, same, rows_ok, took_full, took_limit, took_forced);
    free(la), free(lb), free(lc);
    vp_tensor_free(&x), vp_tensor_free(&a), vp_tensor_free(&b);
    net_free(&n);
}

/* an aggregation buffer far beyond the device's memory: -1, a message naming it, exit code 4 */
static void oom_case(const vp_nn_backend *be)
{
    net n;
    const int K = 4000;
    net_init(&n, be, 1, K);
    /* the f32 band: 4000 classes x 96 rows x 512 x 512 x 4 bytes = 403 GB, beyond any one GPU */
    vp_tensor *x = vp_tensor_zeros(5, (int64_t[5]){1, 1, 128, 512, 512});
    vp_sw_params p = {{96, 96, 96}, 0.25, 1, 0.125, VP_SW_PAD_CONSTANT, 0.0f};
    vp_cuda_sw_opts o = {1, 0, VP_CUDA_NCDHW, VP_CUDA_SW_WHOLE, 0, NULL, NULL, NULL};
    int32_t *lab = vp_malloc((size_t)128 * 512 * 512 * 4);
    fprintf(stderr, "test_cuda_sliding: an out-of-device-memory error is expected next:\n");
    int rc = vp_cuda_sliding_window(be, x, &p, K, &o, gpu_predict, &n, lab, NULL);
    int ok = rc == -1 && vp_cuda_exit_code(1) == VP_ERR_DEVICE;
    ok ? n_pass++ : n_fail++;
    printf("%-4s sliding out of device memory (K %d, 128x512x512): returned %d, exit code %d\n", ok ? "ok" : "FAIL", K, rc, vp_cuda_exit_code(1));
    free(lab);
    vp_tensor_free(&x);
    net_free(&n);
}

/* whole volume: upload once, device aggregation + argmax, labels back; median of 3 */
static void timing(const vp_nn_backend *be, int D, int H, int W, int K, int batch, int f16, int layout)
{
    net n;
    net_init(&n, be, 1, K);
    vp_tensor *x = vp_tensor_new5(1, 1, D, H, W);
    for (int64_t i = 0; i < vp_tensor_numel(x); i++) x->data[i] = urand();
    vp_sw_params p = {{96, 96, 96}, 0.5, 1, 0.125, VP_SW_PAD_CONSTANT, 0.0f};
    vp_cuda_sw_opts o = {batch, f16, layout, VP_CUDA_SW_WHOLE, 0, NULL, NULL, NULL};
    int32_t *lab = vp_malloc((size_t)D * H * W * 4);
    double t[3];
    for (int r = 0; r < 3; r++) {
        double t0 = now();
        if (vp_cuda_sliding_window(be, x, &p, K, &o, gpu_predict, &n, lab, NULL)) exit(1);
        t[r] = now() - t0;
    }
    double a = t[0] < t[1] ? t[0] : t[1], b = t[0] < t[1] ? t[1] : t[0], med = t[2] < a ? a : t[2] > b ? b : t[2];
    printf("bench sliding window %dx%dx%d, %d classes, roi 96 overlap 0.5, batch %d, %s, %s aggregation (conv3x3 net, %s): median %.1f ms\n",
           D, H, W, K, batch, layout ? "NDHWC" : "NCDHW", f16 ? "f16" : "f32", vp_cuda_math_name(be), med * 1e3);
    free(lab);
    vp_tensor_free(&x);
    net_free(&n);
}

int main(int argc, char **argv)
{
    vp_set_progname(argv[0]);
    if (!vp_cuda_built()) {
        fprintf(stderr, "test_cuda_sliding: built without CUDA: nothing to test\n");
        return VP_ERR_DEVICE;
    }
    const vp_nn_backend *be = vp_nn_backend_get("cuda:0:f32");
    if (!be) return VP_ERR_DEVICE;
    sw_case(be, 2, 5, 37, 29, 23, 16, 0.5, 1, VP_SW_PAD_CONSTANT, 1, VP_CUDA_NCDHW, 0, 0, 0);
    sw_case(be, 2, 5, 37, 29, 23, 16, 0.5, 1, VP_SW_PAD_CONSTANT, 3, VP_CUDA_NDHWC, 0, 0, 0);
    sw_case(be, 1, 4, 30, 25, 40, 12, 0.25, 0, VP_SW_PAD_CONSTANT, 2, VP_CUDA_NCDHW, 0, 1, 0);
    sw_case(be, 1, 3, 10, 20, 7, 16, 0.5, 1, VP_SW_PAD_CONSTANT, 2, VP_CUDA_NCDHW, 0, 0, 0); /* smaller than the window */
    sw_case(be, 1, 3, 10, 20, 7, 16, 0.5, 1, VP_SW_PAD_REPLICATE, 1, VP_CUDA_NDHWC, 0, 0, 0);
    sw_case(be, 1, 4, 70, 12, 9, 8, 0.25, 1, VP_SW_PAD_CONSTANT, 5, VP_CUDA_NDHWC, 0, 0, 0); /* 10 window rows: the band wraps */
    sw_case(be, 2, 6, 37, 29, 23, 16, 0.5, 1, VP_SW_PAD_CONSTANT, 4, VP_CUDA_NDHWC, 1, 0, 0); /* f16 aggregation */
    sw_case(be, 2, 5, 37, 29, 23, 16, 0.5, 1, VP_SW_PAD_CONSTANT, 3, VP_CUDA_NDHWC, 0, 0, 1); /* tiled */
    sw_case(be, 1, 3, 10, 20, 7, 16, 0.5, 1, VP_SW_PAD_REPLICATE, 1, VP_CUDA_NDHWC, 0, 0, 1); /* tiled, smaller than the window */
    sw_case(be, 1, 4, 70, 12, 9, 8, 0.25, 1, VP_SW_PAD_CONSTANT, 5, VP_CUDA_NCDHW, 1, 0, 1);  /* tiled, many slabs, f16 */
    tiled_equal(be, 45, 21, 19, 12, 4, VP_CUDA_NCDHW);
    tiled_equal(be, 45, 21, 19, 12, 3, VP_CUDA_NDHWC);
    printf("cuda sliding window vs cpu: %d passed, %d failed\n", n_pass, n_fail);
    if (!(argc > 1 && !strcmp(argv[1], "--no-bench"))) {
        timing(be, 256, 256, 192, 32, 4, 0, VP_CUDA_NCDHW);
        timing(vp_nn_backend_get("cuda:0:f16"), 256, 256, 192, 32, 4, 1, VP_CUDA_NDHWC);
    }
    oom_case(be); /* last: it marks the process as having had a device failure */
    printf("cuda sliding window: %d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
