/* nn_grad.h - backward passes of the nn engine's ops (nn_backend.h), for training.
 *
 * Each forward op y = f(x, params) has a backward op that, given dy = d(loss)/dy and whatever
 * forward values it needs, writes d(loss)/dx and d(loss)/d(params). All are as PyTorch's autograd
 * computes them (f32 tensors, NCDHW, the layouts of nn_backend.h); the reference versions
 * (lib/nn_grad_ref.c: plain loops, one thread, f64 accumulation) are the specification, the CPU
 * versions (lib/nn_grad_fast.c) are tested against them.
 *
 * Ownership: like the forward ops, backward ops write into tensors the caller allocated with the
 * right shapes (dx the shape of x, dw of w, ...); nothing is allocated for the caller. Outputs
 * are overwritten, never accumulated into (callers add when a value feeds two consumers). Any of
 * the parameter-gradient outputs (dw, db, dgamma, dbeta) and dx may be NULL when not wanted.
 * Every function returns 0, or -1 after vp_error() naming the op and the mismatching shapes.
 * In-place use (dx == dy) is allowed for relu_bwd and leaky_relu_bwd only.
 */
#ifndef VP_NN_GRAD_H
#define VP_NN_GRAD_H

#include "nn_backend.h"

typedef struct vp_nn_grad vp_nn_grad;
struct vp_nn_grad {
    const char *name;
    /* y = conv3d(x, w, b, p): dx (shape of x) from dy and w; dw (shape of w) from x and dy; db = sum dy */
    int (*conv3d_bwd_data)(const vp_tensor *dy, const vp_tensor *w, const vp_conv3d_params *p, vp_tensor *dx);
    int (*conv3d_bwd_weight)(const vp_tensor *x, const vp_tensor *dy, const vp_conv3d_params *p, vp_tensor *dw,
                             vp_tensor *db);
    /* y = conv_transpose3d(x, w (Ci, Co, k), b, p): dx = conv3d(dy, w, stride, pad); dw from x and dy */
    int (*conv_transpose3d_bwd_data)(const vp_tensor *dy, const vp_tensor *w, const vp_conv3d_params *p, vp_tensor *dx);
    int (*conv_transpose3d_bwd_weight)(const vp_tensor *x, const vp_tensor *dy, const vp_conv3d_params *p,
                                       vp_tensor *dw, vp_tensor *db);
    /* y = group_norm(x, groups, eps, gamma, beta): statistics recomputed from x; gamma may be NULL
     * (then dgamma/dbeta must be NULL). Instance norm is groups = C. */
    int (*group_norm_bwd)(const vp_tensor *x, const vp_tensor *dy, int groups, float eps, const vp_tensor *gamma,
                          vp_tensor *dx, vp_tensor *dgamma, vp_tensor *dbeta);
    /* y = relu(x): dx = dy where y > 0, else 0 (torch's threshold_backward on the output) */
    int (*relu_bwd)(const vp_tensor *y, const vp_tensor *dy, vp_tensor *dx);
    /* y = leaky_relu(x, slope), slope > 0: dx = y > 0 ? dy : slope dy (y or x: same sign) */
    int (*leaky_relu_bwd)(const vp_tensor *y, const vp_tensor *dy, float slope, vp_tensor *dx);
    /* y = upsample_trilinear2x(x): dx (N,C,D,H,W) from dy (N,C,2D,2H,2W), the adjoint */
    int (*upsample_trilinear2x_bwd)(const vp_tensor *dy, vp_tensor *dx);
    /* Optional fused op (NULL when a backend does not fuse it; callers use the wrapper below):
     * y = leaky_relu(group_norm(x), slope), dy its gradient: the bytes of leaky_relu_bwd(y, dy)
     * then group_norm_bwd(x, .) on the same backend. dx may be dy, not x or y. */
    int (*group_norm_leaky_relu_bwd)(const vp_tensor *x, const vp_tensor *y, const vp_tensor *dy, int groups, float eps,
                                     float slope, const vp_tensor *gamma, vp_tensor *dx, vp_tensor *dgamma,
                                     vp_tensor *dbeta);
};

/* Backward through y = leaky_relu(group_norm(x)): gr's fused op when it has one, else
 * leaky_relu_bwd in place on dy then group_norm_bwd (so dy's contents are unspecified afterwards).
 * lib/nn_grad_fast_norm.c. */
int vp_nn_group_norm_leaky_relu_bwd(const vp_nn_grad *gr, const vp_tensor *x, const vp_tensor *y, vp_tensor *dy, int groups,
                                    float eps, float slope, const vp_tensor *gamma, vp_tensor *dx, vp_tensor *dgamma,
                                    vp_tensor *dbeta);

/* The reference and the CPU (multi-threaded, deterministic for any thread count) versions. */
const vp_nn_grad *vp_nn_grad_ref(void);
const vp_nn_grad *vp_nn_grad_cpu(void);
/* The backward ops that go with a forward backend: the reference for "ref", the CPU ones otherwise. */
const vp_nn_grad *vp_nn_grad_for(const vp_nn_backend *be);

/* The reference ops themselves (same contracts as the struct members). */
int vp_nn_ref_conv3d_bwd_data(const vp_tensor *dy, const vp_tensor *w, const vp_conv3d_params *p, vp_tensor *dx);
int vp_nn_ref_conv3d_bwd_weight(const vp_tensor *x, const vp_tensor *dy, const vp_conv3d_params *p, vp_tensor *dw,
                                vp_tensor *db);
int vp_nn_ref_conv_transpose3d_bwd_data(const vp_tensor *dy, const vp_tensor *w, const vp_conv3d_params *p, vp_tensor *dx);
int vp_nn_ref_conv_transpose3d_bwd_weight(const vp_tensor *x, const vp_tensor *dy, const vp_conv3d_params *p,
                                          vp_tensor *dw, vp_tensor *db);
int vp_nn_ref_group_norm_bwd(const vp_tensor *x, const vp_tensor *dy, int groups, float eps, const vp_tensor *gamma,
                             vp_tensor *dx, vp_tensor *dgamma, vp_tensor *dbeta);
int vp_nn_ref_relu_bwd(const vp_tensor *y, const vp_tensor *dy, vp_tensor *dx);
int vp_nn_ref_leaky_relu_bwd(const vp_tensor *y, const vp_tensor *dy, float slope, vp_tensor *dx);
int vp_nn_ref_upsample_trilinear2x_bwd(const vp_tensor *dy, vp_tensor *dx);

/* Shared by the reference and CPU versions: shape check of upsample_trilinear2x_bwd, and the
 * adjoint for one (n, c) volume (g: 2D x 2H x 2W, dx: D x H x W, a: D*H*W doubles of scratch). */
int vp_nn_upsample_bwd_check(const vp_tensor *dy, const vp_tensor *dx);
void vp_nn_upsample_bwd_plane(const float *g, float *dx, int64_t D, int64_t H, int64_t W, double *a);

/* y = a + b: both gradients are dy; da and db (either may be NULL) receive copies. */
int vp_nn_add_bwd(const vp_tensor *dy, vp_tensor *da, vp_tensor *db);
/* y = cat(xs, dim=1): dxs[i] (shape of xs[i], NULL to skip) receive their channel slices of dy. */
int vp_nn_concat_bwd(const vp_tensor *dy, vp_tensor *const *dxs, int n);
/* dst += src, same shapes (gradient accumulation where a value has two consumers); parallel over
 * fixed chunks (lib/nn_grad_fast_elem.c), element-wise, so the same bytes for any thread count. */
int vp_nn_accumulate(vp_tensor *dst, const vp_tensor *src);

#endif
