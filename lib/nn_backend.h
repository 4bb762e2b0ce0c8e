/* nn_backend.h - the nn engine's ops behind one interface (ggml-style): a struct of function
 * pointers per backend, a supports_op() capability query, and the plain reference ops that are the
 * specification every backend is tested against.
 *
 * Ownership: ops write into output tensors the caller allocated with the shape given by the
 * vp_nn_*_shape() helpers; nothing is allocated for the caller. Backends are static objects.
 *
 * Conventions, all as PyTorch computes them (f32 data, tensors contiguous, batch N kept):
 *   x, y        activations (N, C, D, H, W)
 *   conv w      (Co, Ci, kd, kh, kw), bias (Co) or NULL; zero padding; groups 1, dilation 1
 *   convT w     (Ci, Co, kd, kh, kw) (ConvTranspose3d's layout), bias (Co) or NULL
 *   norms       biased variance over each (n, group) or (n, c); gamma/beta (C) or both NULL
 *   upsample    trilinear, scale 2, align_corners=False (src = max((dst + 0.5) / 2 - 0.5, 0))
 *   softmax/argmax over C per voxel; argmax takes the first of equal maxima (torch.argmax)
 * Every op returns 0, or -1 after vp_error() naming the op and the mismatching shapes. In-place
 * use (y == x) is allowed for relu, leaky_relu, add (y == a or b) and softmax, not for the others.
 */
#ifndef VP_NN_BACKEND_H
#define VP_NN_BACKEND_H

#include "nn_tensor.h"

typedef enum vp_nn_op {
    VP_NN_CONV3D,
    VP_NN_CONV_TRANSPOSE3D,
    VP_NN_GROUP_NORM,
    VP_NN_INSTANCE_NORM,
    VP_NN_RELU,
    VP_NN_LEAKY_RELU,
    VP_NN_UPSAMPLE_TRILINEAR2X,
    VP_NN_ADD,
    VP_NN_CONCAT,
    VP_NN_SOFTMAX_C,
    VP_NN_ARGMAX_C,
    VP_NN_OP_COUNT
} vp_nn_op;

/* Name of an op ("conv3d", ...), for messages and test output. */
const char *vp_nn_op_name(vp_nn_op op);

typedef struct vp_conv3d_params {
    int stride[3];  /* (d, h, w), each >= 1 */
    int pad[3];     /* zeros added on both sides, (d, h, w) */
    int out_pad[3]; /* transposed conv only: PyTorch's output_padding, < stride */
} vp_conv3d_params;

typedef struct vp_nn_backend vp_nn_backend;
struct vp_nn_backend {
    const char *name;
    void *ctx;
    /* 1 when this backend implements op (a missing op is a capability, not a crash). */
    int (*supports_op)(const vp_nn_backend *be, vp_nn_op op);

    /* y (N,Co,Do,Ho,Wo) = conv(x (N,Ci,D,H,W), w (Co,Ci,kd,kh,kw)) + b; Do = (D + 2 pd - kd) / sd + 1 */
    int (*conv3d)(const vp_nn_backend *be, const vp_tensor *x, const vp_tensor *w, const vp_tensor *b,
                  const vp_conv3d_params *p, vp_tensor *y);
    /* y (N,Co,Do,..) = convT(x (N,Ci,D,..), w (Ci,Co,kd,..)) + b; Do = (D - 1) sd - 2 pd + kd + opd */
    int (*conv_transpose3d)(const vp_nn_backend *be, const vp_tensor *x, const vp_tensor *w,
                            const vp_tensor *b, const vp_conv3d_params *p, vp_tensor *y);
    /* GroupNorm(groups, eps, affine when gamma/beta given); C % groups == 0 */
    int (*group_norm)(const vp_nn_backend *be, const vp_tensor *x, int groups, float eps,
                      const vp_tensor *gamma, const vp_tensor *beta, vp_tensor *y);
    /* InstanceNorm3d(eps, affine when gamma/beta given): GroupNorm with groups = C */
    int (*instance_norm)(const vp_nn_backend *be, const vp_tensor *x, float eps, const vp_tensor *gamma,
                         const vp_tensor *beta, vp_tensor *y);
    int (*relu)(const vp_nn_backend *be, const vp_tensor *x, vp_tensor *y);
    /* y = x >= 0 ? x : slope x  (nnU-Net: slope 0.01) */
    int (*leaky_relu)(const vp_nn_backend *be, const vp_tensor *x, float slope, vp_tensor *y);
    /* y (N,C,2D,2H,2W) from x (N,C,D,H,W) */
    int (*upsample_trilinear2x)(const vp_nn_backend *be, const vp_tensor *x, vp_tensor *y);
    /* y = a + b, same shapes */
    int (*add)(const vp_nn_backend *be, const vp_tensor *a, const vp_tensor *b, vp_tensor *y);
    /* y = cat(xs[0..n), dim=1): same N, D, H, W; channels add up */
    int (*concat)(const vp_nn_backend *be, const vp_tensor *const *xs, int n, vp_tensor *y);
    /* y = softmax(x, dim=1) */
    int (*softmax_c)(const vp_nn_backend *be, const vp_tensor *x, vp_tensor *y);
    /* out[n][d][h][w] = argmax_c x[n][c][d][h][w]; out holds N*D*H*W entries */
    int (*argmax_c)(const vp_nn_backend *be, const vp_tensor *x, int32_t *out);

    /* Optional fused ops: NULL when a backend does not fuse them (callers use the vp_nn_*()
     * wrappers below, which fall back on the plain ops). Same bytes as the plain ops in sequence
     * on the same backend; no in-place use. */
    /* y = relu(group_norm(x)) */
    int (*group_norm_relu)(const vp_nn_backend *be, const vp_tensor *x, int groups, float eps,
                           const vp_tensor *gamma, const vp_tensor *beta, vp_tensor *y);
    /* y = conv3d(x, w, b) + r; r has y's shape and is neither x nor y */
    int (*conv3d_add)(const vp_nn_backend *be, const vp_tensor *x, const vp_tensor *w, const vp_tensor *b,
                      const vp_conv3d_params *p, const vp_tensor *r, vp_tensor *y);
};

/* y = relu(group_norm(x)): the backend's fused op when it has one, else group_norm then relu in
 * place on y. */
int vp_nn_group_norm_relu(const vp_nn_backend *be, const vp_tensor *x, int groups, float eps, const vp_tensor *gamma,
                          const vp_tensor *beta, vp_tensor *y);
/* y = conv3d(x, w, b) + r (a residual connection): the backend's fused op when it has one, else
 * conv3d then add in place on y. r has y's shape; x, r and y are distinct. */
int vp_nn_conv3d_add(const vp_nn_backend *be, const vp_tensor *x, const vp_tensor *w, const vp_tensor *b,
                     const vp_conv3d_params *p, const vp_tensor *r, vp_tensor *y);

/* The reference backend: plain loops, one thread, f64 accumulation; the specification. */
const vp_nn_backend *vp_nn_backend_ref(void);
/* The CPU backend: blocked, vectorised, multi-threaded (lib/parallel.h) where it matters, the
 * reference elsewhere; deterministic for any thread count. */
const vp_nn_backend *vp_nn_backend_cpu(void);
/* A backend by name ("ref", "cpu", "cuda", "cuda:N", "cuda:N:MATH" -- see nn_cuda.h); NULL when unknown, and for cuda NULL after
 * vp_error() when built without CUDA or no such device (callers exit VP_ERR_DEVICE). */
const vp_nn_backend *vp_nn_backend_get(const char *name);

/* Output shapes (5 entries) of the shape-changing ops; -1 after vp_error() when inputs disagree. */
int vp_nn_conv3d_shape(const vp_tensor *x, const vp_tensor *w, const vp_tensor *b,
                       const vp_conv3d_params *p, int64_t out[5]);
int vp_nn_conv_transpose3d_shape(const vp_tensor *x, const vp_tensor *w, const vp_tensor *b,
                                 const vp_conv3d_params *p, int64_t out[5]);
int vp_nn_concat_shape(const vp_tensor *const *xs, int n, int64_t out[5]);

/* Checks shared by the backends: y has the expected 5-D shape; x is 5-D; both contiguous. */
int vp_nn_check_out(const char *op, const vp_tensor *y, const int64_t want[5]);
int vp_nn_check_act(const char *op, const char *what, const vp_tensor *x);
int vp_nn_check_norm(const char *op, const vp_tensor *x, int groups, const vp_tensor *gamma,
                     const vp_tensor *beta, const vp_tensor *y);

/* The reference ops themselves (same contracts as the interface, without the backend argument),
 * for other backends to fall back on. */
int vp_nn_ref_conv3d(const vp_tensor *x, const vp_tensor *w, const vp_tensor *b, const vp_conv3d_params *p, vp_tensor *y);
int vp_nn_ref_conv_transpose3d(const vp_tensor *x, const vp_tensor *w, const vp_tensor *b,
                               const vp_conv3d_params *p, vp_tensor *y);
int vp_nn_ref_group_norm(const vp_tensor *x, int groups, float eps, const vp_tensor *gamma, const vp_tensor *beta,
                         vp_tensor *y);
int vp_nn_ref_relu(const vp_tensor *x, vp_tensor *y);
int vp_nn_ref_leaky_relu(const vp_tensor *x, float slope, vp_tensor *y);
int vp_nn_ref_upsample_trilinear2x(const vp_tensor *x, vp_tensor *y);
int vp_nn_ref_add(const vp_tensor *a, const vp_tensor *b, vp_tensor *y);
int vp_nn_ref_concat(const vp_tensor *const *xs, int n, vp_tensor *y);
int vp_nn_ref_softmax_c(const vp_tensor *x, vp_tensor *y);
int vp_nn_ref_argmax_c(const vp_tensor *x, int32_t *out);
/* The fused ops' specification: the two reference ops in sequence. */
int vp_nn_ref_group_norm_relu(const vp_tensor *x, int groups, float eps, const vp_tensor *gamma, const vp_tensor *beta,
                              vp_tensor *y);
int vp_nn_ref_conv3d_add(const vp_tensor *x, const vp_tensor *w, const vp_tensor *b, const vp_conv3d_params *p,
                         const vp_tensor *r, vp_tensor *y);

#endif
