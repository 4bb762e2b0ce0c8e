/* nn_grad_fast.c - the CPU backward ops (see nn_grad.h): convolution gradients, multi-threaded
 * with lib/parallel.h, deterministic for any thread count; the table of the CPU backward ops.
 *
 * conv3d dx: the gradient of a convolution is a convolution of dy with the flipped, transposed
 *   weights. Stride 1: the fast conv3d of dy with padding k-1-p (it pads dy itself, one copy).
 *   Otherwise dy is scattered once into a zero buffer (N, Co, D+kd-1, H+kh-1, W+kw-1) at
 *   (k-1-p) + o*s (zero-inserted) and the CPU backend's fast conv3d (stride 1, no padding) runs
 *   on it with w'[ci][co][k] = w[co][ci][K-1-k]; it needs p <= k-1 (the reference otherwise).
 *   Strided: dy is not zero-inserted; dx is split by residue (i mod stride) into
 *   prod(stride) stride-1 convolutions with the taps that reach each residue (strided_bwd_data),
 *   the work of one dense convolution instead of stride^3 times it.
 * conv_transpose3d dx: conv3d(dy, w) with the same stride and padding, on the fast conv3d.
 * dw (both): lib/nn_grad_fast_dw.c; rows shorter than 8: lib/nn_grad_fast_small.c.
 * group norm (alone or fused with the leaky relu after it): lib/nn_grad_fast_norm.c; relu / leaky
 * relu, upsampling: lib/nn_grad_fast_elem.c.
 */
#include "nn_grad.h"
#include "nn_grad_fast_dw.h"
#include "nn_grad_fast_elem.h"
#include "nn_ops_fast_conv.h"
#include "parallel.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>



/* ---- zero padding (and zero insertion) of a 5-D tensor into a new buffer with slack */

struct scatter_job {
    const float *x;
    float *xp;
    int64_t C, D, H, W, Dp, Hp, Wp;
    int off[3], step[3];
};

/* Item = one (n, c) volume of the destination: zeros, then x[d][h][w] at off + i*step. */
static void scatter_range(void *ctx, uint64_t begin, uint64_t end, int worker)
{
    const struct scatter_job *j = ctx;
    for (uint64_t i = begin; i < end; i++) {
        float *dst = j->xp + (int64_t)i * j->Dp * j->Hp * j->Wp;
        const float *src = j->x + (int64_t)i * j->D * j->H * j->W;
        memset(dst, 0, (size_t)(j->Dp * j->Hp * j->Wp) * sizeof *dst);
        for (int64_t d = 0; d < j->D; d++)
            for (int64_t h = 0; h < j->H; h++) {
                float *row = dst + ((j->off[0] + d * j->step[0]) * j->Hp + j->off[1] + h * j->step[1]) * j->Wp + j->off[2];
                const float *s = src + (d * j->H + h) * j->W;
                if (j->step[2] == 1) memcpy(row, s, (size_t)j->W * sizeof *row);
                else
                    for (int64_t w = 0; w < j->W; w++) row[w * j->step[2]] = s[w];
            }
    }
}

/* A zeroed (N, C, Dp, Hp, Wp) buffer (plus 64 floats of slack) holding x at off + i*step. */
static float *scatter(const vp_tensor *x, const int64_t dims[3], const int off[3], const int step[3])
{
    struct scatter_job j = {x->data, NULL, x->shape[1], x->shape[2], x->shape[3], x->shape[4], dims[0], dims[1], dims[2],
                            {off[0], off[1], off[2]}, {step[0], step[1], step[2]}};
    int64_t n = x->shape[0] * x->shape[1] * j.Dp * j.Hp * j.Wp;
    j.xp = vp_malloc((size_t)(n + 64) * sizeof(float));
    memset(j.xp + n, 0, 64 * sizeof(float));
    vp_parallel_for((uint64_t)(x->shape[0] * x->shape[1]), 1, scatter_range, &j);
    return j.xp;
}

/* ---- conv3d dx and conv_transpose3d dx on the fast forward convolution */

/* Strided conv3d dx without zero insertion: for each residue r = (i mod stride) per axis, the
 * outputs i = q*stride + r only meet the taps k = r + p (mod stride), at dy[q + (r + p - k) /
 * stride]; so dx restricted to residue r is a stride-1 convolution of dy (zero-padded at its end)
 * with those taps, flipped and transposed. The prod(stride) small convolutions together do the
 * work of one dense convolution at dx's size (the zero-inserted path does stride^3 times that),
 * and their outputs are interleaved into dx. Returns 1 (nothing done) when a residue has no tap
 * or dy would need cropping. */
struct inter_job {
    const float *src; /* (N, Ci, Dr, Hr, Wr) */
    float *dx;
    int64_t D, H, W, Dr, Hr, Wr;
    int r[3], s[3];
};

static void inter_range(void *ctx, uint64_t begin, uint64_t end, int worker)
{
    (void)worker;
    const struct inter_job *j = ctx;
    for (uint64_t i = begin; i < end; i++) {
        const float *src = j->src + (int64_t)i * j->Dr * j->Hr * j->Wr;
        float *dst = j->dx + (int64_t)i * j->D * j->H * j->W;
        for (int64_t d = 0; d < j->Dr; d++)
            for (int64_t h = 0; h < j->Hr; h++) {
                float *row = dst + ((d * j->s[0] + j->r[0]) * j->H + h * j->s[1] + j->r[1]) * j->W + j->r[2];
                const float *sr = src + (d * j->Hr + h) * j->Wr;
                for (int64_t w = 0; w < j->Wr; w++) row[w * j->s[2]] = sr[w];
            }
    }
}

static int strided_bwd_data(const vp_tensor *dy, const vp_tensor *w, const vp_conv3d_params *p, vp_tensor *dx)
{
    const int64_t N = dy->shape[0], Co = w->shape[0], Ci = w->shape[1], K[3] = {w->shape[2], w->shape[3], w->shape[4]};
    const int64_t KK = K[0] * K[1] * K[2];
    const int s[3] = {p->stride[0], p->stride[1], p->stride[2]};
    /* per axis and residue: output count, first tap (largest k), tap count, buffer length */
    int64_t nq[3][8], klast[3][8], nt[3][8], len[3][8];
    for (int a = 0; a < 3; a++) {
        if (s[a] > 8) return 1;
        for (int r = 0; r < s[a]; r++) {
            const int64_t X = dx->shape[2 + a], k0 = ((r + p->pad[a]) % s[a] + s[a]) % s[a];
            nq[a][r] = X > r ? (X - r + s[a] - 1) / s[a] : 0;
            nt[a][r] = k0 < K[a] ? (K[a] - 1 - k0) / s[a] + 1 : 0;
            klast[a][r] = k0 + (nt[a][r] - 1) * s[a];
            len[a][r] = nq[a][r] + nt[a][r] - 1;
            /* dy[q + (r + p - k) / s] starting at q = 0 with the largest k: offset must be 0 (no
             * cropping, no leading padding) and dy must fit in the buffer */
            if (!nt[a][r] || !nq[a][r] || r + p->pad[a] - klast[a][r] != 0 || dy->shape[2 + a] > len[a][r]) return 1;
        }
    }
    int rc = 0;
    for (int rd = 0; rd < s[0] && !rc; rd++)
        for (int rh = 0; rh < s[1] && !rc; rh++)
            for (int rw = 0; rw < s[2] && !rc; rw++) {
                const int64_t n3[3] = {nt[0][rd], nt[1][rh], nt[2][rw]}, kl[3] = {klast[0][rd], klast[1][rh], klast[2][rw]};
                const int64_t dims[3] = {len[0][rd], len[1][rh], len[2][rw]};
                const int zero[3] = {0, 0, 0}, one[3] = {1, 1, 1};
                float *buf = scatter(dy, dims, zero, one);
                const int64_t nk = n3[0] * n3[1] * n3[2];
                float *wt = vp_malloc((size_t)(Ci * Co * nk) * sizeof *wt);
                for (int64_t ci = 0; ci < Ci; ci++)
                    for (int64_t co = 0; co < Co; co++) {
                        float *o = wt + (ci * Co + co) * nk;
                        for (int64_t jd = 0; jd < n3[0]; jd++)
                            for (int64_t jh = 0; jh < n3[1]; jh++)
                                for (int64_t jw = 0; jw < n3[2]; jw++) {
                                    const int64_t kd = kl[0] - jd * s[0], kh = kl[1] - jh * s[1], kw = kl[2] - jw * s[2];
                                    *o++ = w->data[(co * Ci + ci) * KK + (kd * K[1] + kh) * K[2] + kw];
                                }
                    }
                int64_t bs[5] = {N, Co, dims[0], dims[1], dims[2]}, ws[5] = {Ci, Co, n3[0], n3[1], n3[2]};
                int64_t os[5] = {N, Ci, nq[0][rd], nq[1][rh], nq[2][rw]};
                vp_tensor tb = vp_tensor_view(buf, 5, bs), tw = vp_tensor_view(wt, 5, ws), *out = vp_tensor_new(5, os);
                vp_conv3d_params q = {{1, 1, 1}, {0, 0, 0}, {0, 0, 0}};
                const vp_nn_backend *be = vp_nn_backend_cpu();
                rc = be->conv3d(be, &tb, &tw, NULL, &q, out);
                if (!rc) {
                    struct inter_job j = {out->data, dx->data, dx->shape[2], dx->shape[3], dx->shape[4],
                                          os[2], os[3], os[4], {rd, rh, rw}, {s[0], s[1], s[2]}};
                    vp_parallel_for((uint64_t)(N * Ci), 1, inter_range, &j);
                }
                vp_tensor_free(&out);
                free(wt);
                free(buf);
            }
    return rc ? -1 : 0;
}

static int fast_conv3d_bwd_data(const vp_tensor *dy, const vp_tensor *w, const vp_conv3d_params *p, vp_tensor *dx)
{
    int64_t os[5];
    if (vp_nn_check_act("conv3d_bwd_data", "gradient", dy) || vp_nn_conv3d_shape(dx, w, NULL, p, os)) return -1;
    if (vp_nn_check_out("conv3d_bwd_data", dy, os)) return -1;
    const int64_t Co = w->shape[0], Ci = w->shape[1], K[3] = {w->shape[2], w->shape[3], w->shape[4]};
    for (int a = 0; a < 3; a++)
        if (p->pad[a] > K[a] - 1) return vp_nn_ref_conv3d_bwd_data(dy, w, p, dx);
    if (p->stride[0] > 1 || p->stride[1] > 1 || p->stride[2] > 1) {
        int e = strided_bwd_data(dy, w, p, dx);
        if (e <= 0) return e;
    }
    const int64_t KK = K[0] * K[1] * K[2];
    if (p->stride[0] == 1 && p->stride[1] == 1 && p->stride[2] == 1) {
        /* stride 1: the convolution of dy padded by k-1-p with the flipped, transposed weights;
         * the fast conv3d pads dy itself (one copy of dy instead of a scatter, then a copy) */
        float *wt = vp_malloc((size_t)(Co * Ci * KK) * sizeof *wt);
        for (int64_t co = 0; co < Co; co++)
            for (int64_t ci = 0; ci < Ci; ci++)
                for (int64_t k = 0; k < KK; k++) wt[(ci * Co + co) * KK + (KK - 1 - k)] = w->data[(co * Ci + ci) * KK + k];
        int64_t ws[5] = {Ci, Co, K[0], K[1], K[2]};
        vp_tensor tw = vp_tensor_view(wt, 5, ws);
        vp_conv3d_params q = {{1, 1, 1}, {(int)(K[0] - 1 - p->pad[0]), (int)(K[1] - 1 - p->pad[1]), (int)(K[2] - 1 - p->pad[2])}, {0, 0, 0}};
        const vp_nn_backend *be = vp_nn_backend_cpu();
        int rc = be->conv3d(be, dy, &tw, NULL, &q, dx);
        free(wt);
        return rc;
    }
    int64_t dims[3];
    int off[3], step[3];
    for (int a = 0; a < 3; a++) {
        dims[a] = dx->shape[2 + a] + K[a] - 1;
        off[a] = (int)(K[a] - 1 - p->pad[a]);
        step[a] = p->stride[a];
    }
    float *buf = scatter(dy, dims, off, step);
    float *wt = vp_malloc((size_t)(Co * Ci * KK) * sizeof *wt);
    for (int64_t co = 0; co < Co; co++)
        for (int64_t ci = 0; ci < Ci; ci++)
            for (int64_t k = 0; k < KK; k++) wt[(ci * Co + co) * KK + (KK - 1 - k)] = w->data[(co * Ci + ci) * KK + k];
    int64_t bs[5] = {dy->shape[0], Co, dims[0], dims[1], dims[2]}, ws[5] = {Ci, Co, K[0], K[1], K[2]};
    vp_tensor tb = vp_tensor_view(buf, 5, bs), tw = vp_tensor_view(wt, 5, ws);
    vp_conv3d_params q = {{1, 1, 1}, {0, 0, 0}, {0, 0, 0}};
    const vp_nn_backend *be = vp_nn_backend_cpu();
    int rc = be->conv3d(be, &tb, &tw, NULL, &q, dx);
    free(wt);
    free(buf);
    return rc;
}

static int fast_convt_bwd_data(const vp_tensor *dy, const vp_tensor *w, const vp_conv3d_params *p, vp_tensor *dx)
{
    vp_conv3d_params q = *p;
    memset(q.out_pad, 0, sizeof q.out_pad);
    int64_t os[5];
    if (vp_nn_check_act("conv_transpose3d_bwd_data", "gradient", dy) || vp_nn_conv3d_shape(dy, w, NULL, &q, os) ||
        vp_nn_check_out("conv_transpose3d_bwd_data", dx, os))
        return -1;
    const vp_nn_backend *be = vp_nn_backend_cpu();
    return be->conv3d(be, dy, w, NULL, &q, dx);
}

struct db_job {
    const float *dy;
    float *db;
    int64_t N, C, S;
};

/* Per channel: 8 f64 partial sums (element i into partial i % 8, independent chains instead of
 * one add latency per element), added in order at the end. */
static void db_range(void *ctx, uint64_t begin, uint64_t end, int worker)
{
    const struct db_job *j = ctx;
    for (uint64_t c = begin; c < end; c++) {
        double a[8] = {0};
        for (int64_t n = 0; n < j->N; n++) {
            const float *p = j->dy + (n * j->C + (int64_t)c) * j->S;
            int64_t i = 0;
            for (; i + 8 <= j->S; i += 8)
                for (int l = 0; l < 8; l++) a[l] += p[i + l];
            for (; i < j->S; i++) a[i % 8] += p[i];
        }
        double acc = 0;
        for (int l = 0; l < 8; l++) acc += a[l];
        j->db[c] = (float)acc;
    }
}

static void bias_grad(const vp_tensor *dy, vp_tensor *db)
{
    struct db_job j = {dy->data, db->data, dy->shape[0], dy->shape[1], dy->shape[2] * dy->shape[3] * dy->shape[4]};
    vp_parallel_for((uint64_t)j.C, 1, db_range, &j);
}

static int check_conv(const char *op, const vp_tensor *x, const vp_tensor *w, const vp_tensor *dy, const vp_conv3d_params *p)
{
    int64_t os[5];
    if (vp_nn_check_act(op, "gradient", dy) || vp_nn_conv3d_shape(x, w, NULL, p, os)) return -1;
    return vp_nn_check_out(op, dy, os);
}

static int check_bias(const char *op, const vp_tensor *db, int64_t n)
{
    if (db && (db->ndim != 1 || db->shape[0] != n || !db->data))
        return vp_error("%s: bias gradient: expected (%lld) elements", op, (long long)n);
    return 0;
}

static int fast_conv3d_bwd_weight(const vp_tensor *x, const vp_tensor *dy, const vp_conv3d_params *p, vp_tensor *dw,
                                  vp_tensor *db)
{
    const char *op = "conv3d_bwd_weight";
    if (vp_nn_check_act(op, "gradient", dy)) return -1;
    if ((dw && check_conv(op, x, dw, dy, p)) || check_bias(op, db, dy->shape[1])) return -1;
    if (dw && vp_tensor_numel(dy)) vp_nn_fast_weight_grad(x, dy, p, dw);
    else if (dw) memset(dw->data, 0, (size_t)vp_tensor_numel(dw) * sizeof(float));
    if (db) bias_grad(dy, db);
    return 0;
}

static int fast_convt_bwd_weight(const vp_tensor *x, const vp_tensor *dy, const vp_conv3d_params *p, vp_tensor *dw,
                                 vp_tensor *db)
{
    const char *op = "conv_transpose3d_bwd_weight";
    vp_conv3d_params q = *p;
    memset(q.out_pad, 0, sizeof q.out_pad);
    if (vp_nn_check_act(op, "gradient", dy)) return -1;
    if ((dw && check_conv(op, dy, dw, x, &q)) || check_bias(op, db, dy->shape[1])) return -1;
    if (dw && vp_tensor_numel(x)) vp_nn_fast_weight_grad(dy, x, &q, dw);
    else if (dw) memset(dw->data, 0, (size_t)vp_tensor_numel(dw) * sizeof(float));
    if (db) bias_grad(dy, db);
    return 0;
}

static const vp_nn_grad cpu_grad = {
    .name = "cpu",
    .conv3d_bwd_data = fast_conv3d_bwd_data,
    .conv3d_bwd_weight = fast_conv3d_bwd_weight,
    .conv_transpose3d_bwd_data = fast_convt_bwd_data,
    .conv_transpose3d_bwd_weight = fast_convt_bwd_weight,
    .group_norm_bwd = vp_nn_fast_group_norm_bwd,
    .relu_bwd = vp_nn_fast_relu_bwd,
    .leaky_relu_bwd = vp_nn_fast_leaky_relu_bwd,
    .upsample_trilinear2x_bwd = vp_nn_fast_upsample_trilinear2x_bwd,
    .group_norm_leaky_relu_bwd = vp_nn_fast_group_norm_leaky_relu_bwd,
};

const vp_nn_grad *vp_nn_grad_cpu(void) { return &cpu_grad; }
