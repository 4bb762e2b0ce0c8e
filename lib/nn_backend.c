/* nn_backend.c - op names, shape rules and checks shared by every backend; backend lookup. */
#include "nn_backend.h"
#include "nn_cuda.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

const char *vp_nn_op_name(vp_nn_op op)
{
    static const char *names[VP_NN_OP_COUNT] = {
        "conv3d", "conv_transpose3d", "group_norm", "instance_norm", "relu", "leaky_relu",
        "upsample_trilinear2x", "add", "concat", "softmax_c", "argmax_c",
    };
    return op >= 0 && op < VP_NN_OP_COUNT ? names[op] : "unknown";
}

const vp_nn_backend *vp_nn_backend_get(const char *name)
{
    if (!strcmp(name, "ref")) return vp_nn_backend_ref();
    if (!strcmp(name, "cpu")) return vp_nn_backend_cpu();
    /* "cuda", "cuda:N" or "cuda:N:MATH": NULL after vp_error() saying why (built without CUDA, no device) */
    if (!strncmp(name, "cuda", 4) && (!name[4] || name[4] == ':')) return vp_nn_backend_cuda_named(name);
    return NULL;
}

int vp_nn_check_act(const char *op, const char *what, const vp_tensor *x)
{
    char s[96];
    if (!x || !x->data) return vp_error("%s: %s: missing tensor", op, what);
    if (x->ndim != 5) return vp_error("%s: %s: shape %s: expected 5 dimensions (N,C,D,H,W)", op, what, vp_tensor_shape_str(x, s, sizeof s));
    /* channels-last device activations (nn_cuda.h Layout) pass: the shape rules are the logical
     * (N, C, D, H, W) ones, and the CUDA ops check the layouts they take */
    if (!vp_tensor_is_contiguous(x) && !(x->device > 0 && vp_cuda_tensor_layout(x) == VP_CUDA_NDHWC))
        return vp_error("%s: %s: not contiguous", op, what);
    return 0;
}

int vp_nn_check_out(const char *op, const vp_tensor *y, const int64_t want[5])
{
    if (vp_nn_check_act(op, "output", y)) return -1;
    for (int i = 0; i < 5; i++)
        if (y->shape[i] != want[i]) {
            char s[96];
            return vp_error("%s: output shape %s, expected (%lld,%lld,%lld,%lld,%lld)", op, vp_tensor_shape_str(y, s, sizeof s),
                            (long long)want[0], (long long)want[1], (long long)want[2], (long long)want[3], (long long)want[4]);
        }
    return 0;
}

static int check_vec(const char *op, const char *what, const vp_tensor *v, int64_t n)
{
    char s[96];
    if (!v) return 0;
    if (!v->data || v->ndim != 1 || v->shape[0] != n)
        return vp_error("%s: %s: shape %s, expected (%lld)", op, what, vp_tensor_shape_str(v, s, sizeof s), (long long)n);
    return 0;
}

static int conv_common(const char *op, const vp_tensor *x, const vp_tensor *w, const vp_conv3d_params *p)
{
    char s[96];
    if (vp_nn_check_act(op, "input", x)) return -1;
    if (!w || !w->data || w->ndim != 5 || !vp_tensor_is_contiguous(w))
        return vp_error("%s: weight: expected a contiguous 5-D tensor", op);
    for (int i = 0; i < 3; i++) {
        if (p->stride[i] < 1) return vp_error("%s: stride %d in dimension %d (must be >= 1)", op, p->stride[i], i);
        if (p->pad[i] < 0) return vp_error("%s: negative padding %d", op, p->pad[i]);
        if (w->shape[2 + i] < 1) return vp_error("%s: weight: empty kernel %s", op, vp_tensor_shape_str(w, s, sizeof s));
    }
    return 0;
}

int vp_nn_conv3d_shape(const vp_tensor *x, const vp_tensor *w, const vp_tensor *b, const vp_conv3d_params *p, int64_t out[5])
{
    const char *op = "conv3d";
    char s[96], t[96];
    if (conv_common(op, x, w, p)) return -1;
    if (w->shape[1] != x->shape[1])
        return vp_error("%s: weight %s expects %lld input channels, input %s has %lld", op, vp_tensor_shape_str(w, s, sizeof s),
                        (long long)w->shape[1], vp_tensor_shape_str(x, t, sizeof t), (long long)x->shape[1]);
    if (check_vec(op, "bias", b, w->shape[0])) return -1;
    out[0] = x->shape[0];
    out[1] = w->shape[0];
    for (int i = 0; i < 3; i++) {
        int64_t span = x->shape[2 + i] + 2 * (int64_t)p->pad[i] - w->shape[2 + i];
        if (span < 0)
            return vp_error("%s: input %s smaller than kernel %s with padding %d", op, vp_tensor_shape_str(x, s, sizeof s),
                            vp_tensor_shape_str(w, t, sizeof t), p->pad[i]);
        out[2 + i] = span / p->stride[i] + 1;
    }
    return 0;
}

int vp_nn_conv_transpose3d_shape(const vp_tensor *x, const vp_tensor *w, const vp_tensor *b, const vp_conv3d_params *p,
                                 int64_t out[5])
{
    const char *op = "conv_transpose3d";
    char s[96], t[96];
    if (conv_common(op, x, w, p)) return -1;
    if (w->shape[0] != x->shape[1])
        return vp_error("%s: weight %s expects %lld input channels, input %s has %lld", op, vp_tensor_shape_str(w, s, sizeof s),
                        (long long)w->shape[0], vp_tensor_shape_str(x, t, sizeof t), (long long)x->shape[1]);
    if (check_vec(op, "bias", b, w->shape[1])) return -1;
    out[0] = x->shape[0];
    out[1] = w->shape[1];
    for (int i = 0; i < 3; i++) {
        if (p->out_pad[i] < 0 || p->out_pad[i] >= p->stride[i])
            return vp_error("%s: output_padding %d must be in [0, stride %d)", op, p->out_pad[i], p->stride[i]);
        out[2 + i] = (x->shape[2 + i] - 1) * p->stride[i] - 2 * (int64_t)p->pad[i] + w->shape[2 + i] + p->out_pad[i];
        if (out[2 + i] < 1) return vp_error("%s: padding %d leaves an empty output", op, p->pad[i]);
    }
    return 0;
}

int vp_nn_concat_shape(const vp_tensor *const *xs, int n, int64_t out[5])
{
    if (n < 1) return vp_error("concat: no inputs");
    char s[96], t[96];
    for (int i = 0; i < n; i++) {
        if (vp_nn_check_act("concat", "input", xs[i])) return -1;
        for (int k = 0; k < 5; k++)
            if (k != 1 && xs[i]->shape[k] != xs[0]->shape[k])
                return vp_error("concat: input %d shape %s does not match input 0 shape %s outside channels", i,
                                vp_tensor_shape_str(xs[i], s, sizeof s), vp_tensor_shape_str(xs[0], t, sizeof t));
    }
    memcpy(out, xs[0]->shape, 5 * sizeof *out);
    out[1] = 0;
    for (int i = 0; i < n; i++) out[1] += xs[i]->shape[1];
    return 0;
}

int vp_nn_check_norm(const char *op, const vp_tensor *x, int groups, const vp_tensor *gamma, const vp_tensor *beta,
                     const vp_tensor *y)
{
    if (vp_nn_check_act(op, "input", x)) return -1;
    if (groups < 1 || x->shape[1] % groups)
        return vp_error("%s: %lld channels not divisible into %d groups", op, (long long)x->shape[1], groups);
    if (!gamma != !beta) return vp_error("%s: affine needs both weight and bias", op);
    if (check_vec(op, "weight", gamma, x->shape[1]) || check_vec(op, "bias", beta, x->shape[1])) return -1;
    return vp_nn_check_out(op, y, x->shape);
}

int vp_nn_group_norm_relu(const vp_nn_backend *be, const vp_tensor *x, int groups, float eps, const vp_tensor *gamma,
                          const vp_tensor *beta, vp_tensor *y)
{
    if (be->group_norm_relu) return be->group_norm_relu(be, x, groups, eps, gamma, beta, y);
    return be->group_norm(be, x, groups, eps, gamma, beta, y) || be->relu(be, y, y) ? -1 : 0;
}

int vp_nn_conv3d_add(const vp_nn_backend *be, const vp_tensor *x, const vp_tensor *w, const vp_tensor *b,
                     const vp_conv3d_params *p, const vp_tensor *r, vp_tensor *y)
{
    if (be->conv3d_add) return be->conv3d_add(be, x, w, b, p, r, y);
    return be->conv3d(be, x, w, b, p, y) || be->add(be, y, r, y) ? -1 : 0;
}
