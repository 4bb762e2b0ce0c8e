// nn_cuda_grad.cu - backward ops of the CUDA backend for training (see nn_cuda.h): argument checks
// on the logical shapes (the contracts of nn_grad.h), staging, and the cuDNN / kernel calls.
#include "nn_cuda_int.h"

#include <string.h>

static int same5(const char *op, const char *what, const vp_tensor *t, const int64_t *want)
{
    char s[96];
    if (!t || t->ndim != 5 || memcmp(t->shape, want, 5 * sizeof *want))
        return vp_error("%s: %s: shape %s, expected (%lld,%lld,%lld,%lld,%lld)", op, what, t ? vp_tensor_shape_str(t, s, sizeof s) : "missing",
                        (long long)want[0], (long long)want[1], (long long)want[2], (long long)want[3], (long long)want[4]);
    return 0;
}

static int vec_of(const char *op, const char *what, const vp_tensor *t, int64_t n)
{
    char s[96];
    if (t && (t->ndim != 1 || t->shape[0] != n || !t->data))
        return vp_error("%s: %s: shape %s, expected (%lld)", op, what, vp_tensor_shape_str(t, s, sizeof s), (long long)n);
    return 0;
}

// a 1-D output (bias or norm parameter gradient): host or device, whatever the op's layout
static float *stage_out_vec(vp_stage *st, vp_tensor *t)
{
    if (!t) return NULL;
    int keep = st->layout;
    st->layout = VP_CUDA_NCDHW;
    float *d = vp_stage_out(st, t);
    st->layout = keep;
    return d;
}

// db[c] = sum of dy over n and space, within an open staging of the op
static int bias_grad(vp_cuda_ctx *c, vp_stage *st, const vp_tensor *dy, vp_tensor *db, int l)
{
    const int64_t N = dy->shape[0], C = dy->shape[1], S = dy->shape[2] * dy->shape[3] * dy->shape[4];
    const float *ddy = vp_stage_in(st, dy);
    float *ddb = stage_out_vec(st, db);
    if (!ddy || !ddb) return -1;
    size_t bytes = (size_t)N * C * sizeof(double) + 2 * (size_t)N * C * vp_k_norm_chunks(S) * sizeof(float);
    char *sc = (char *)vp_cuda_scratch(c, bytes);
    if (!sc) return -1;
    double *A = (double *)sc;
    float *partial = (float *)(A + N * C);
    if (vp_k_chan_sums(c, NULL, ddy, N, C, S, l, (int)C, NULL, NULL, A, NULL, partial)) return -1;
    return vp_k_sum_n(c, A, N, C, ddb);
}

extern "C" int vp_cuda_bias_bwd(const vp_nn_backend *be, const vp_tensor *dy, vp_tensor *db)
{
    const char *op = "bias_bwd";
    int l = vp_cu_layout(op, "dy", dy);
    if (l < 0) return -1;
    vp_tensor ldy = vp_cu_logical(dy);
    if (vp_nn_check_act(op, "dy", &ldy) || vec_of(op, "db", db, dy->shape[1])) return -1;
    vp_stage st;
    vp_stage_init(&st, ctx_of(be), op, l);
    CUDA_CHECK(cudaSetDevice(ctx_of(be)->dev));
    if (bias_grad(ctx_of(be), &st, dy, db, l)) goto fail;
    return vp_stage_finish(&st, 0);
fail:
    return vp_stage_finish(&st, -1);
}

// ---- convolutions

// conv3d: the shapes of x (input), w, dy agree: conv3d_shape(x, w) == dy
static int conv_shapes(const char *op, int transposed, const vp_tensor *x, const vp_tensor *w, const vp_tensor *dy,
                       const vp_conv3d_params *p)
{
    int64_t os[5];
    if (vp_cu_layout(op, "input", x) < 0 || vp_cu_layout(op, "dy", dy) < 0) return -1;
    vp_tensor lx = vp_cu_logical(x);
    if (transposed ? vp_nn_conv_transpose3d_shape(&lx, w, NULL, p, os) : vp_nn_conv3d_shape(&lx, w, NULL, p, os)) return -1;
    return same5(op, "dy", dy, os);
}

extern "C" int vp_cuda_conv3d_bwd_data(const vp_nn_backend *be, const vp_tensor *dy, const vp_tensor *w, const vp_conv3d_params *p,
                                       vp_tensor *dx)
{
    if (!dx) return vp_error("conv3d_bwd_data: dx missing");
    if (conv_shapes("conv3d_bwd_data", 0, dx, w, dy, p)) return -1;
    return vp_cuda_conv_run(be, "conv3d_bwd_data", VP_CONV_BWD_DATA, dx, w, dy, NULL, p);
}

extern "C" int vp_cuda_conv3d_bwd_weight(const vp_nn_backend *be, const vp_tensor *x, const vp_tensor *dy, const vp_conv3d_params *p,
                                         vp_tensor *dw, vp_tensor *db)
{
    const char *op = "conv3d_bwd_weight";
    if (dw && conv_shapes(op, 0, x, dw, dy, p)) return -1;
    if (db && (vp_cu_layout(op, "dy", dy) < 0 || vec_of(op, "db", db, dy->ndim == 5 ? dy->shape[1] : -1))) return -1;
    if (dw && vp_cuda_conv_run(be, op, VP_CONV_BWD_FILTER, x, dw, dy, NULL, p)) return -1;
    return db ? vp_cuda_bias_bwd(be, dy, db) : 0;
}

extern "C" int vp_cuda_conv_transpose3d_bwd_data(const vp_nn_backend *be, const vp_tensor *dy, const vp_tensor *w,
                                                 const vp_conv3d_params *p, vp_tensor *dx)
{
    const char *op = "conv_transpose3d_bwd_data";
    if (!dx) return vp_error("%s: dx missing", op);
    if (conv_shapes(op, 1, dx, w, dy, p)) return -1;
    // y = convT(x) is the backward data of a convolution with input y; its adjoint is that convolution
    return vp_cuda_conv_run(be, op, VP_CONV_FWD, dy, w, dx, NULL, p);
}

extern "C" int vp_cuda_conv_transpose3d_bwd_weight(const vp_nn_backend *be, const vp_tensor *x, const vp_tensor *dy,
                                                   const vp_conv3d_params *p, vp_tensor *dw, vp_tensor *db)
{
    const char *op = "conv_transpose3d_bwd_weight";
    if (dw && conv_shapes(op, 1, x, dw, dy, p)) return -1;
    if (db && (vp_cu_layout(op, "dy", dy) < 0 || vec_of(op, "db", db, dy->ndim == 5 ? dy->shape[1] : -1))) return -1;
    if (dw && vp_cuda_conv_run(be, op, VP_CONV_BWD_FILTER, dy, dw, x, NULL, p)) return -1;
    return db ? vp_cuda_bias_bwd(be, dy, db) : 0;
}

// ---- group norm

extern "C" int vp_cuda_group_norm_bwd(const vp_nn_backend *be, const vp_tensor *x, const vp_tensor *dy, int groups, float eps,
                                      const vp_tensor *gamma, vp_tensor *dx, vp_tensor *dgamma, vp_tensor *dbeta)
{
    const char *op = "group_norm_bwd";
    int l = vp_cu_op_layout3(op, dx, x, dy);
    if (l < 0) return -1;
    vp_tensor lx = vp_cu_logical(x);
    if (vp_nn_check_act(op, "input", &lx) || same5(op, "dy", dy, x->shape) || (dx && same5(op, "dx", dx, x->shape))) return -1;
    const int64_t N = x->shape[0], C = x->shape[1], S = x->shape[2] * x->shape[3] * x->shape[4];
    if (groups < 1 || C % groups) return vp_error("%s: %lld channels not divisible into %d groups", op, (long long)C, groups);
    if (!gamma && (dgamma || dbeta)) return vp_error("%s: dgamma/dbeta asked for without affine parameters", op);
    if (vec_of(op, "weight", gamma, C) || vec_of(op, "dgamma", dgamma, C) || vec_of(op, "dbeta", dbeta, C)) return -1;
    if (dx && (dx->data == x->data || dx->data == dy->data)) return vp_error("%s: in-place use is not supported", op);
    vp_cuda_ctx *c = ctx_of(be);
    const int64_t ng = N * groups, NC = N * C;
    const int64_t pm = ng * vp_k_norm_chunks(C / groups * S), pc = 2 * NC * vp_k_norm_chunks(S);
    // scratch: mean, rstd, ma, mb (ng each), A, B (NC each) in f64; partial sums in f32
    size_t bytes = (4 * (size_t)ng + 2 * (size_t)NC) * sizeof(double) + (size_t)(pm > pc ? pm : pc) * sizeof(float);
    vp_stage st;
    vp_stage_init(&st, c, op, l);
    CUDA_CHECK(cudaSetDevice(c->dev));
    {
        const float *dxx = vp_stage_in(&st, x), *ddy = vp_stage_in(&st, dy), *dg = vp_stage_vec(&st, gamma);
        float *ddx = dx ? vp_stage_out(&st, dx) : NULL, *ddg = stage_out_vec(&st, dgamma), *ddb = stage_out_vec(&st, dbeta);
        if (!dxx || !ddy || (gamma && !dg) || (dx && !ddx) || (dgamma && !ddg) || (dbeta && !ddb)) goto fail;
        char *sc = (char *)vp_cuda_scratch(c, bytes);
        if (!sc) goto fail;
        double *mean = (double *)sc, *rstd = mean + ng, *ma = rstd + ng, *mb = ma + ng, *A = mb + ng, *B = A + NC;
        float *partial = (float *)(B + NC);
        if (vp_k_norm_stats(c, dxx, N, C, S, l, groups, eps, mean, rstd, partial) ||
            vp_k_chan_sums(c, dxx, ddy, N, C, S, l, groups, mean, rstd, A, B, partial) ||
            vp_k_norm_backward(c, dxx, ddy, ddx, N, C, S, l, groups, mean, rstd, dg, A, B, ma, mb, ddg, ddb))
            goto fail;
    }
    return vp_stage_finish(&st, 0);
fail:
    return vp_stage_finish(&st, -1);
}

// ---- activations, upsampling

static int act_bwd(const vp_nn_backend *be, const char *op, const vp_tensor *y, const vp_tensor *dy, int act, float slope, vp_tensor *dx)
{
    if (!dx) return vp_error("%s: dx missing", op);
    int l = vp_cu_op_layout3(op, dx, y, dy);
    if (l < 0) return -1;
    if (!vp_tensor_same_shape(y, dy) || !vp_tensor_same_shape(y, dx)) return vp_error("%s: y, dy and dx shapes differ", op);
    vp_stage st;
    vp_stage_init(&st, ctx_of(be), op, l);
    CUDA_CHECK(cudaSetDevice(ctx_of(be)->dev));
    {
        const float *d_y = vp_stage_in(&st, y), *d_dy = vp_stage_in(&st, dy);
        float *d_dx = vp_stage_out(&st, dx);
        if (!d_y || !d_dy || !d_dx || vp_k_act_backward(ctx_of(be), d_y, d_dy, d_dx, vp_tensor_numel(y), act, slope)) goto fail;
    }
    return vp_stage_finish(&st, 0);
fail:
    return vp_stage_finish(&st, -1);
}

extern "C" int vp_cuda_relu_bwd(const vp_nn_backend *be, const vp_tensor *y, const vp_tensor *dy, vp_tensor *dx)
{
    return act_bwd(be, "relu_bwd", y, dy, 1, 0.0f, dx);
}

extern "C" int vp_cuda_leaky_relu_bwd(const vp_nn_backend *be, const vp_tensor *y, const vp_tensor *dy, float slope, vp_tensor *dx)
{
    return act_bwd(be, "leaky_relu_bwd", y, dy, 2, slope, dx);
}

extern "C" int vp_cuda_upsample_trilinear2x_bwd(const vp_nn_backend *be, const vp_tensor *dy, vp_tensor *dx)
{
    const char *op = "upsample_trilinear2x_bwd";
    if (!dx) return vp_error("%s: dx missing", op);
    int l = vp_cu_op_layout3(op, dx, dy);
    if (l < 0) return -1;
    vp_tensor ldx = vp_cu_logical(dx);
    if (vp_nn_check_act(op, "dx", &ldx)) return -1;
    int64_t us[5] = {dx->shape[0], dx->shape[1], 2 * dx->shape[2], 2 * dx->shape[3], 2 * dx->shape[4]};
    if (same5(op, "dy", dy, us)) return -1;
    vp_stage st;
    vp_stage_init(&st, ctx_of(be), op, l);
    CUDA_CHECK(cudaSetDevice(ctx_of(be)->dev));
    {
        const float *d_dy = vp_stage_in(&st, dy);
        float *d_dx = vp_stage_out(&st, dx);
        if (!d_dy || !d_dx ||
            vp_k_upsample2x_bwd(ctx_of(be), d_dy, d_dx, dx->shape[0], dx->shape[1], dx->shape[2], dx->shape[3], dx->shape[4], l))
            goto fail;
    }
    return vp_stage_finish(&st, 0);
fail:
    return vp_stage_finish(&st, -1);
}
