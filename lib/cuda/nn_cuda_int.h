/* nn_cuda_int.h - internals shared by the .cu files of lib/cuda: the per-device context, the
 * per-(device, math) backend context, error checking, layouts, staging of host tensors, pinned
 * copies, and the kernel launchers. Not a public header.
 *
 * Ownership: contexts are static (one per device, one backend per (device, math)), kept until the
 * process exits; staged temporaries belong to the vp_stage and are freed by vp_stage_finish(). */
#ifndef VP_NN_CUDA_INT_H
#define VP_NN_CUDA_INT_H

#include <cuda_runtime.h>
#include <cudnn.h>

/* the C headers use C11's _Noreturn */
#define _Noreturn [[noreturn]]
extern "C" {
#include "nn_cuda.h"
#include "util.h"
}
#undef _Noreturn

/* Check a CUDA runtime / cuDNN call: on failure print FILE:LINE, the call and the reason (out of
 * device memory says so, with free/total), and jump to the function's `fail` label (which releases
 * what it holds and returns -1). */
#define CUDA_CHECK(call)                                                                               \
    do {                                                                                               \
        cudaError_t e_ = (call);                                                                       \
        if (e_ != cudaSuccess) {                                                                       \
            vp_cuda_report(__FILE__, __LINE__, #call, cudaGetErrorName(e_), cudaGetErrorString(e_)); \
            goto fail;                                                                                 \
        }                                                                                              \
    } while (0)
#define CUDNN_CHECK(call)                                                                    \
    do {                                                                                     \
        cudnnStatus_t s_ = (call);                                                           \
        if (s_ != CUDNN_STATUS_SUCCESS) {                                                    \
            vp_cuda_report(__FILE__, __LINE__, #call, "cudnn", cudnnGetErrorString(s_));     \
            goto fail;                                                                       \
        }                                                                                    \
    } while (0)
/* after a kernel launch: launch errors (bad configuration) now, execution errors at the next sync */
#define LAUNCH_CHECK() CUDA_CHECK(cudaGetLastError())

/* Print the failure (and remember it for vp_cuda_exit_code). */
void vp_cuda_report(const char *file, int line, const char *call, const char *name, const char *why);

/* The "a CUDA call failed" flag behind vp_cuda_exit_code: returns it and sets it to v (a handled
 * failure, such as a graph capture that fell back to the eager path, restores it). */
int vp_cuda_failed_swap(int v);

/* CUDA graphs of a repeated forward pass (nn_cuda_graph.cu): one graph per user (a model), captured
 * for one input shape; see vp_cuda_graph_run. */
struct vp_cuda_ctx;
struct vp_cuda_graph;
typedef int (*vp_cuda_graph_fn)(const void *ctx, const vp_tensor *x, vp_tensor *y);
/* 1 when VP_CUDA_GRAPHS is "1" or "on" (default off). */
int vp_cuda_graphs_wanted(void);
/* A graph holder for forward passes on device tensors of layout l, queued on c's stream. */
vp_cuda_graph *vp_cuda_graph_new(vp_cuda_ctx *c, int l, const char *what);
/* fn(ctx, x, y) (a forward pass queued on c's stream, all inputs and outputs device tensors), run
 * eagerly or replayed from a graph: the first batch of a shape runs eagerly (it grows the scratch,
 * caches the convolution algorithms); the second is captured (cudaStreamCaptureModeThreadLocal)
 * into a graph over the holder's own input and output buffers, which every later batch of that
 * shape replays (x copied in, y copied out, on the stream). Other shapes run eagerly. A capture or
 * replay that fails leaves no error behind: a -v note, and the eager path from then on. 0 or -1
 * after vp_error (from fn). */
int vp_cuda_graph_run(vp_cuda_graph *g, vp_cuda_graph_fn fn, const void *ctx, const vp_tensor *x, vp_tensor *y);
/* Release the graph and its buffers (NULL-safe; sets *g to NULL); -v: how many batches ran each way. */
void vp_cuda_graph_free(vp_cuda_graph **g);

/* Per-device state: stream, cuDNN handle, a growing scratch area (workspace, norm partials), two
 * pinned host buffers for chunked, double-buffered host <-> device copies. */
struct vp_cuda_ctx {
    int dev;
    cudaStream_t stream;
    cudnnHandle_t dnn;
    void *scratch;
    size_t scratch_bytes;
    void *pinned[2];
    cudaEvent_t pinned_done[2];
};

/* What a backend adds to its device: the convolution math. */
struct vp_cuda_be {
    vp_cuda_ctx *c;
    vp_cuda_math math;
};
static inline vp_cuda_ctx *ctx_of(const vp_nn_backend *be) { return ((vp_cuda_be *)be->ctx)->c; }
static inline vp_cuda_math math_of(const vp_nn_backend *be) { return ((vp_cuda_be *)be->ctx)->math; }

#define VP_CUDA_MAXDEV 16

/* 0 when device `ordinal` exists; -1 after vp_error ("no CUDA device", "no such device"). */
int vp_cu_ordinal_ok(int ordinal);

/* The context of device `dev` (0-based), or NULL when no backend was created on it yet. */
vp_cuda_ctx *vp_cuda_ctx_get(int dev);
/* Device bytes this process may still use on c's device, for the choice between a sliding window's
 * whole-volume and tiled paths (nn_cuda_sliding.cu, nn_cuda_unet_sw.cu) and the upload ahead
 * (vp_cuda_mem_available): the free memory plus the stream-ordered pool's unused reserve (memory
 * freed with cudaFreeAsync stays in the pool but is ours to reuse), and no more than the budget of
 * VP_CUDA_MEM_LIMIT_MIB when that is set (the MiB the device is taken to have: what is in use
 * counts against it, so 0 or 1 forces every estimate to fail). 0 when the runtime cannot say (the
 * caller then takes the path that needs less). The current device must be c's (nn_cuda_mem.cu). */
size_t vp_cuda_available_bytes(const vp_cuda_ctx *c);

/* Scratch of at least `bytes` (grown as needed; previous contents lost); NULL after vp_error. */
void *vp_cuda_scratch(vp_cuda_ctx *c, size_t bytes);
/* A stream-ordered temporary (cudaMallocAsync; freed with cudaFreeAsync); NULL after vp_error
 * naming `what` and the size. */
void *vp_cuda_tmp(vp_cuda_ctx *c, size_t bytes, const char *what);

/* A device activation (N, C, D, H, W) in layout l from the stream-ordered pool (no device-wide
 * synchronisation, unlike vp_cuda_tensor_new); free with vp_cu_act_free. NULL after vp_error. */
vp_tensor *vp_cu_act_new(vp_cuda_ctx *c, const int64_t shape[5], int l);
void vp_cu_act_free(vp_cuda_ctx *c, vp_tensor **t);

/* Host <-> device copies through the pinned buffers (direct when the host side is pinned already);
 * return when the data has arrived. 0 or -1 after vp_error. */
int vp_cuda_h2d(vp_cuda_ctx *c, void *dst, const void *src, size_t bytes);
int vp_cuda_d2h(vp_cuda_ctx *c, void *dst, const void *src, size_t bytes);

/* Layouts of 5-D device activations: logical shape always (N, C, D, H, W); the strides say where
 * the data is. VP_CUDA_NCDHW: row-major; VP_CUDA_NDHWC: channels last (PyTorch's
 * channels_last_3d strides). */
/* 1 when t's memory order is layout l's (size-1 dimensions ignored: a one-channel tensor is both). */
int vp_cu_is(const vp_tensor *t, int l);
/* The layout of t: NCDHW when its memory order fits it (host tensors must), else NDHWC for a 5-D
 * device tensor that fits that; -1 after vp_error("OP: WHAT: ...") when t is neither. */
int vp_cu_layout(const char *op, const char *what, const vp_tensor *t);
/* The layout an op works in: NDHWC when any of its n activation tensors (NULLs skipped) is NDHWC,
 * else NCDHW; -1 after vp_error when one is neither. Staging then checks each fits it. */
int vp_cu_op_layout(const char *op, int n, const vp_tensor *const *ts);
static inline int vp_cu_op_layout3(const char *op, const vp_tensor *a, const vp_tensor *b = NULL, const vp_tensor *c = NULL)
{
    const vp_tensor *ts[3] = {a, b, c};
    return vp_cu_op_layout(op, 3, ts);
}
/* A copy of t's header with row-major strides (for the shape checks of nn_backend.h). */
vp_tensor vp_cu_logical(const vp_tensor *t);
/* Set t's strides for layout l (5-D). */
void vp_cu_set_layout(vp_tensor *t, int l);

/* Staging: the device pointers an op works on, in the op's layout. in() returns t's device pointer
 * (a device tensor must fit the op's layout), or copies a host tensor into a temporary (permuted
 * to NDHWC when the op's layout is that); out() returns y's device pointer, or a temporary (the
 * temporary of an input with the same host pointer, for in-place ops) that finish() copies back.
 * Host outputs must fit the op's layout (NCDHW ops, or one channel). */
struct vp_stage {
    vp_cuda_ctx *c;
    const char *op;
    int layout;
    int n;
    struct { const float *host; float *dev; size_t bytes; int is_out; } t[16];
};
void vp_stage_init(vp_stage *s, vp_cuda_ctx *c, const char *op, int layout);
const float *vp_stage_in(vp_stage *s, const vp_tensor *t);
/* a 1-D parameter (bias, gamma, beta): no layout */
const float *vp_stage_vec(vp_stage *s, const vp_tensor *t);
float *vp_stage_out(vp_stage *s, vp_tensor *y);
/* Copy outputs back (when staged), free temporaries; returns rc, or -1 when a copy failed. */
int vp_stage_finish(vp_stage *s, int rc);

/* Fill the op pointers of a backend (nn_cuda_ops.cu). */
void vp_cuda_fill_ops(vp_nn_backend *b);
/* The convolution core (nn_cuda_conv.cu). For a convolution with input I (N, C, ...), filter W
 * (K, C, kd, kh, kw) and output O (N, K, ...): kind 0 forward O = conv(I, W), 1 backward data
 * I = conv^T(O, W), 2 backward filter W = grad(I, O); the written tensor gets `bias` added (kinds
 * 0 and 1, may be NULL). Shapes must have been checked by the caller. */
enum { VP_CONV_FWD = 0, VP_CONV_BWD_DATA = 1, VP_CONV_BWD_FILTER = 2 };
int vp_cuda_conv_run(const vp_nn_backend *be, const char *op, int kind, const vp_tensor *I, const vp_tensor *W,
                     const vp_tensor *O, const vp_tensor *bias, const vp_conv3d_params *p);

/* Element types of the convolution buffers. */
enum { VP_DT_F32 = 0, VP_DT_F16 = 1, VP_DT_BF16 = 2 };
static inline size_t vp_dt_size(int dt) { return dt == VP_DT_F32 ? 4 : 2; }

/* Kernel launchers (nn_cuda_kernels.cu, nn_cuda_kernels2.cu); 0 or -1 after vp_error. n counts
 * elements; S = D*H*W; `l` is the layout. */
int vp_k_bias(vp_cuda_ctx *c, float *y, const float *b, int64_t N, int64_t C, int64_t S, int l);
int vp_k_act(vp_cuda_ctx *c, const float *x, float *y, int64_t n, int act, float slope);
int vp_k_add(vp_cuda_ctx *c, const float *a, const float *b, float *y, int64_t n);
int vp_k_norm(vp_cuda_ctx *c, const float *x, float *y, int64_t N, int64_t C, int64_t S, int l, int groups, float eps,
              const float *gamma, const float *beta, int act, float slope);
/* mean and rstd (f64, N * groups each) of x's groups into the given buffers; partial holds
 * N * groups * vp_k_norm_chunks(C / groups * S) floats. */
int vp_k_norm_chunks(int64_t m);
int vp_k_norm_stats(vp_cuda_ctx *c, const float *x, int64_t N, int64_t C, int64_t S, int l, int groups, float eps,
                    double *mean, double *rstd, float *partial);
int vp_k_upsample2x(vp_cuda_ctx *c, const float *x, float *y, int64_t N, int64_t C, int64_t D, int64_t H, int64_t W, int l);
int vp_k_softmax(vp_cuda_ctx *c, const float *x, float *y, int64_t N, int64_t C, int64_t S, int l);
int vp_k_argmax(vp_cuda_ctx *c, const float *x, int32_t *out, int64_t N, int64_t C, int64_t S, int l);
/* out[a][c][b] = (tout) in[a][b][c] for a < A, b < B, c < Cn (B or Cn 1: a plain conversion);
 * NCDHW -> NDHWC is (N, C, S) -> A = N, B = C, Cn = S... see the call sites. */
int vp_k_convert(vp_cuda_ctx *c, const void *in, int tin, void *out, int tout, int64_t A, int64_t B, int64_t Cn);
/* act backward: dx = dy * act'(x) */
int vp_k_act_backward(vp_cuda_ctx *c, const float *x, const float *dy, float *dx, int64_t n, int act, float slope);
/* per (n, c) sums over S of dy (A) and, when x is given, of dy * xhat (B), xhat from the groups'
 * mean/rstd; A and B are N * C doubles. partial holds N * C * vp_k_norm_chunks(S) floats * 2. */
int vp_k_chan_sums(vp_cuda_ctx *c, const float *x, const float *dy, int64_t N, int64_t C, int64_t S, int l, int groups,
                   const double *mean, const double *rstd, double *A, double *B, float *partial);
/* the rest of the norm backward from the sums: dx, dgamma, dbeta (either may be NULL) */
int vp_k_norm_backward(vp_cuda_ctx *c, const float *x, const float *dy, float *dx, int64_t N, int64_t C, int64_t S, int l,
                       int groups, const double *mean, const double *rstd, const float *gamma, const double *A,
                       const double *B, double *ma, double *mb, float *dgamma, float *dbeta);
int vp_k_upsample2x_bwd(vp_cuda_ctx *c, const float *dy, float *dx, int64_t N, int64_t C, int64_t D, int64_t H, int64_t W,
                        int l);
/* db[c] = sum over n of A[n][c] */
int vp_k_sum_n(vp_cuda_ctx *c, const double *A, int64_t N, int64_t C, float *db);

#ifdef __CUDACC__
#define GRID_STRIDE(i, n) for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

static const int TPB = 256; // threads per block of the elementwise kernels

static inline unsigned blocks_for(int64_t n)
{
    int64_t b = (n + TPB - 1) / TPB;
    return (unsigned)(b < 1 ? 1 : b > 65535LL * 32 ? 65535LL * 32 : b); // grid-stride loops cover the rest
}

__device__ __forceinline__ float act_f(float v, int act, float slope)
{
    if (act == 1) return v < 0.0f ? 0.0f : v;      // relu: NaN passes, as torch.relu
    if (act == 2) return v > 0.0f ? v : v * slope; // leaky_relu
    return v;
}

// trilinear x2, align_corners=False: output o of an axis of input length `in` reads i0 (weight l0)
// and i1 (l1); src = max((o + 0.5) / 2 - 0.5, 0), upper index clamped
__device__ __forceinline__ void lin_src(int64_t o, int64_t in, int64_t &i0, int64_t &i1, float &l0, float &l1)
{
    float src = 0.5f * ((float)o + 0.5f) - 0.5f;
    if (src < 0) src = 0;
    i0 = (int64_t)src;
    if (i0 > in - 1) i0 = in - 1;
    i1 = i0 < in - 1 ? i0 + 1 : i0;
    l1 = src - (float)i0;
    l0 = 1.0f - l1;
}
#endif

#endif
