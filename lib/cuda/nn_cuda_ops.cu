// nn_cuda_ops.cu - the ops of the CUDA backend's interface (nn_backend.h) except the convolutions:
// argument checks on the logical (N, C, D, H, W) shapes, staging, the layout of the op (its
// output's), and the kernel launch.
#include "nn_cuda_int.h"

#include <string.h>


#define STAGED(op, layout, ...)                  \
    vp_stage st;                                 \
    vp_stage_init(&st, ctx_of(be), op, layout);  \
    CUDA_CHECK(cudaSetDevice(ctx_of(be)->dev));  \
    {                                            \
        __VA_ARGS__                              \
    }                                            \
    return vp_stage_finish(&st, 0);              \
fail:                                            \
    return vp_stage_finish(&st, -1);

static int be_supports(const vp_nn_backend *be, vp_nn_op op)
{
    (void)be;
    return op >= 0 && op < VP_NN_OP_COUNT;
}

static int cu_norm_act(const vp_nn_backend *be, const char *op, const vp_tensor *x, int groups, float eps,
                       const vp_tensor *gamma, const vp_tensor *beta, int act, float slope, vp_tensor *y)
{
    int l = vp_cu_op_layout3(op, y, x);
    if (l < 0) return -1;
    vp_tensor lx = vp_cu_logical(x), ly = vp_cu_logical(y);
    if (vp_nn_check_norm(op, &lx, groups, gamma, beta, &ly)) return -1;
    if (y->data == x->data && x->device > 0) return vp_error("%s: in-place use is not supported", op);
    STAGED(op, l,
        const float *dx = vp_stage_in(&st, x); const float *dg = vp_stage_vec(&st, gamma);
        const float *db = vp_stage_vec(&st, beta); float *dy = vp_stage_out(&st, y);
        if (!dx || !dy || (gamma && !dg) || (beta && !db)) goto fail;
        if (vp_k_norm(ctx_of(be), dx, dy, x->shape[0], x->shape[1], x->shape[2] * x->shape[3] * x->shape[4], l, groups, eps,
                      dg, db, act, slope)) goto fail;)
}

extern "C" int vp_cuda_norm_act(const vp_nn_backend *be, const vp_tensor *x, int groups, float eps, const vp_tensor *gamma,
                                const vp_tensor *beta, int act, float slope, vp_tensor *y)
{
    if (act < 0 || act > 2) return vp_error("norm_act: activation %d (0 none, 1 relu, 2 leaky_relu)", act);
    return cu_norm_act(be, "norm_act", x, groups, eps, gamma, beta, act, slope, y);
}

static int cu_gn(const vp_nn_backend *be, const vp_tensor *x, int groups, float eps, const vp_tensor *g, const vp_tensor *b,
                 vp_tensor *y)
{
    return cu_norm_act(be, "group_norm", x, groups, eps, g, b, 0, 0.0f, y);
}

static int cu_in(const vp_nn_backend *be, const vp_tensor *x, float eps, const vp_tensor *g, const vp_tensor *b, vp_tensor *y)
{
    if (!x || x->ndim != 5) return vp_error("instance_norm: input: expected 5 dimensions (N,C,D,H,W)");
    return cu_norm_act(be, "instance_norm", x, (int)x->shape[1], eps, g, b, 0, 0.0f, y);
}

// elementwise ops work in any layout as long as all tensors share it
static int cu_act(const vp_nn_backend *be, const char *op, const vp_tensor *x, int act, float slope, vp_tensor *y)
{
    int l = vp_cu_op_layout3(op, y, x);
    if (l < 0) return -1;
    vp_tensor lx = vp_cu_logical(x), ly = vp_cu_logical(y);
    if (vp_nn_check_act(op, "input", &lx) || vp_nn_check_out(op, &ly, x->shape)) return -1;
    STAGED(op, l,
        const float *dx = vp_stage_in(&st, x); float *dy = vp_stage_out(&st, y);
        if (!dx || !dy || vp_k_act(ctx_of(be), dx, dy, vp_tensor_numel(x), act, slope)) goto fail;)
}

static int cu_relu(const vp_nn_backend *be, const vp_tensor *x, vp_tensor *y) { return cu_act(be, "relu", x, 1, 0.0f, y); }
static int cu_lrelu(const vp_nn_backend *be, const vp_tensor *x, float s, vp_tensor *y) { return cu_act(be, "leaky_relu", x, 2, s, y); }

static int cu_add(const vp_nn_backend *be, const vp_tensor *a, const vp_tensor *b, vp_tensor *y)
{
    char s[96], t[96];
    int l = vp_cu_op_layout3("add", y, a, b);
    if (l < 0) return -1;
    vp_tensor la = vp_cu_logical(a), lb = vp_cu_logical(b), ly = vp_cu_logical(y);
    if (vp_nn_check_act("add", "a", &la) || vp_nn_check_act("add", "b", &lb)) return -1;
    if (!vp_tensor_same_shape(a, b))
        return vp_error("add: shapes %s and %s differ", vp_tensor_shape_str(a, s, sizeof s), vp_tensor_shape_str(b, t, sizeof t));
    if (vp_nn_check_out("add", &ly, a->shape)) return -1;
    STAGED("add", l,
        const float *da = vp_stage_in(&st, a); const float *db = b->data == a->data && !b->device ? da : vp_stage_in(&st, b);
        float *dy = vp_stage_out(&st, y);
        if (!da || !db || !dy || vp_k_add(ctx_of(be), da, db, dy, vp_tensor_numel(a))) goto fail;)
}

static int cu_up(const vp_nn_backend *be, const vp_tensor *x, vp_tensor *y)
{
    const char *op = "upsample_trilinear2x";
    int l = vp_cu_op_layout3(op, y, x);
    if (l < 0) return -1;
    vp_tensor lx = vp_cu_logical(x), ly = vp_cu_logical(y);
    if (vp_nn_check_act(op, "input", &lx)) return -1;
    int64_t os[5] = {x->shape[0], x->shape[1], 2 * x->shape[2], 2 * x->shape[3], 2 * x->shape[4]};
    if (vp_nn_check_out(op, &ly, os)) return -1;
    STAGED(op, l,
        const float *dx = vp_stage_in(&st, x); float *dy = vp_stage_out(&st, y);
        if (!dx || !dy || vp_k_upsample2x(ctx_of(be), dx, dy, x->shape[0], x->shape[1], x->shape[2], x->shape[3], x->shape[4], l))
            goto fail;)
}

static int cu_cat(const vp_nn_backend *be, const vp_tensor *const *xs, int n, vp_tensor *y)
{
    int64_t os[5];
    if (n < 1 || n > 15) return vp_error("concat: %d inputs (1 to 15)", n);
    const vp_tensor *all[16] = {y};
    for (int i = 0; i < n; i++) all[i + 1] = xs[i];
    int l = vp_cu_op_layout("concat", n + 1, all);
    if (l < 0) return -1;
    vp_tensor lxs[15], ly = vp_cu_logical(y);
    const vp_tensor *pl[15];
    for (int i = 0; i < n; i++) {
        if (!xs[i] || vp_cu_layout("concat", "input", xs[i]) < 0) return -1;
        lxs[i] = vp_cu_logical(xs[i]), pl[i] = &lxs[i];
    }
    if (vp_nn_concat_shape(pl, n, os) || vp_nn_check_out("concat", &ly, os)) return -1;
    const int64_t S = os[2] * os[3] * os[4];
    STAGED("concat", l,
        float *dy = vp_stage_out(&st, y); if (!dy) goto fail;
        int64_t off = 0;
        for (int i = 0; i < n; i++) {
            const float *dx = vp_stage_in(&st, xs[i]);
            if (!dx) goto fail;
            const size_t ci = (size_t)xs[i]->shape[1];
            if (l == VP_CUDA_NCDHW) {
                // os[0] rows of Ci*S floats into rows of C*S floats, at channel offset off
                size_t cs = ci * (size_t)S * sizeof(float);
                CUDA_CHECK(cudaMemcpy2DAsync(dy + off * S, (size_t)(os[1] * S) * sizeof(float), dx, cs, cs, (size_t)os[0],
                                             cudaMemcpyDeviceToDevice, ctx_of(be)->stream));
            } else {
                // N*S voxel rows of Ci floats into rows of C floats, at channel offset off
                CUDA_CHECK(cudaMemcpy2DAsync(dy + off, (size_t)os[1] * sizeof(float), dx, ci * sizeof(float), ci * sizeof(float),
                                             (size_t)(os[0] * S), cudaMemcpyDeviceToDevice, ctx_of(be)->stream));
            }
            off += (int64_t)ci;
        })
}

static int cu_smax(const vp_nn_backend *be, const vp_tensor *x, vp_tensor *y)
{
    int l = vp_cu_op_layout3("softmax_c", y, x);
    if (l < 0) return -1;
    vp_tensor lx = vp_cu_logical(x), ly = vp_cu_logical(y);
    if (vp_nn_check_act("softmax_c", "input", &lx) || vp_nn_check_out("softmax_c", &ly, x->shape)) return -1;
    STAGED("softmax_c", l,
        const float *dx = vp_stage_in(&st, x); float *dy = vp_stage_out(&st, y);
        if (!dx || !dy || vp_k_softmax(ctx_of(be), dx, dy, x->shape[0], x->shape[1], x->shape[2] * x->shape[3] * x->shape[4], l))
            goto fail;)
}

static int cu_amax(const vp_nn_backend *be, const vp_tensor *x, int32_t *out)
{
    int l = vp_cu_layout("argmax_c", "input", x);
    if (l < 0) return -1;
    vp_tensor lx = vp_cu_logical(x);
    if (vp_nn_check_act("argmax_c", "input", &lx)) return -1;
    const int64_t N = x->shape[0], S = x->shape[2] * x->shape[3] * x->shape[4];
    cudaPointerAttributes pa;
    int32_t *dout = NULL;
    int host_out;
    STAGED("argmax_c", l,
        CUDA_CHECK(cudaPointerGetAttributes(&pa, out));
        host_out = pa.type != cudaMemoryTypeDevice && pa.type != cudaMemoryTypeManaged;
        const float *dx = vp_stage_in(&st, x); if (!dx) goto fail;
        if (host_out) { // int32 output: staged as a float-sized buffer of the same byte count (NCDHW: no layout)
            int64_t nv = N * S;
            vp_tensor o = vp_tensor_view((float *)out, 1, &nv);
            int keep = st.layout;
            st.layout = VP_CUDA_NCDHW;
            dout = (int32_t *)vp_stage_out(&st, &o);
            st.layout = keep;
        } else dout = out;
        if (!dout || vp_k_argmax(ctx_of(be), dx, dout, N, x->shape[1], S, l)) goto fail;)
}

// the convolutions (nn_cuda_conv.cu) through the interface
static int cu_conv(const vp_nn_backend *be, const vp_tensor *x, const vp_tensor *w, const vp_tensor *b,
                   const vp_conv3d_params *p, vp_tensor *y)
{
    int64_t os[5];
    if (vp_cu_layout("conv3d", "input", x) < 0 || vp_cu_layout("conv3d", "output", y) < 0) return -1;
    vp_tensor lx = vp_cu_logical(x), ly = vp_cu_logical(y);
    if (vp_nn_conv3d_shape(&lx, w, b, p, os) || vp_nn_check_out("conv3d", &ly, os)) return -1;
    return vp_cuda_conv_run(be, "conv3d", VP_CONV_FWD, x, w, y, b, p);
}

static int cu_convt(const vp_nn_backend *be, const vp_tensor *x, const vp_tensor *w, const vp_tensor *b,
                    const vp_conv3d_params *p, vp_tensor *y)
{
    int64_t os[5];
    const char *op = "conv_transpose3d";
    if (vp_cu_layout(op, "input", x) < 0 || vp_cu_layout(op, "output", y) < 0) return -1;
    vp_tensor lx = vp_cu_logical(x), ly = vp_cu_logical(y);
    if (vp_nn_conv_transpose3d_shape(&lx, w, b, p, os) || vp_nn_check_out(op, &ly, os)) return -1;
    // y = convT(x) is the backward data of the convolution whose input has y's shape
    return vp_cuda_conv_run(be, op, VP_CONV_BWD_DATA, y, w, x, b, p);
}

void vp_cuda_fill_ops(vp_nn_backend *b)
{
    b->supports_op = be_supports;
    b->conv3d = cu_conv;
    b->conv_transpose3d = cu_convt;
    b->group_norm = cu_gn;
    b->instance_norm = cu_in;
    b->relu = cu_relu;
    b->leaky_relu = cu_lrelu;
    b->upsample_trilinear2x = cu_up;
    b->add = cu_add;
    b->concat = cu_cat;
    b->softmax_c = cu_smax;
    b->argmax_c = cu_amax;
}
