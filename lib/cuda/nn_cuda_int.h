/* nn_cuda_int.h - internals shared by the .cu files of lib/cuda: the per-device context, error checking,
 * staging of host tensors, and the kernel launchers of nn_cuda_kernels.cu. Not a public header. */
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

/* Check a CUDA runtime / cuDNN call: on failure print FILE:LINE, the call and the reason, and jump
 * to the function's `fail` label (which releases what it holds and returns -1). */
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

void vp_cuda_report(const char *file, int line, const char *call, const char *name, const char *why);

/* Per-device state: stream, cuDNN handle, a growing scratch area (workspace, norm partials). */
struct vp_cuda_ctx {
    int dev;
    cudaStream_t stream;
    cudnnHandle_t dnn;
    void *scratch;
    size_t scratch_bytes;
};

/* Scratch of at least `bytes` (grown as needed; previous contents lost); NULL after vp_error. */
void *vp_cuda_scratch(vp_cuda_ctx *c, size_t bytes);

/* Staging: the device pointers an op works on. in() returns t's device pointer, or copies a host
 * tensor into a temporary; out() returns y's device pointer, or a temporary (the temporary of an
 * input with the same host pointer, for in-place ops) that finish() copies back to the host. */
struct vp_stage {
    vp_cuda_ctx *c;
    int n;
    struct { const float *host; float *dev; size_t bytes; int is_out; } t[16];
};
void vp_stage_init(vp_stage *s, vp_cuda_ctx *c);
const float *vp_stage_in(vp_stage *s, const vp_tensor *t);
float *vp_stage_out(vp_stage *s, vp_tensor *y);
/* Copy outputs back (when staged), free temporaries; returns rc, or -1 when a copy failed. */
int vp_stage_finish(vp_stage *s, int rc);

/* Kernel launchers (nn_cuda_kernels.cu); 0 or -1 after vp_error. n counts elements; S = D*H*W. */
int vp_k_bias(vp_cuda_ctx *c, float *y, const float *b, int64_t N, int64_t C, int64_t S);
int vp_k_act(vp_cuda_ctx *c, const float *x, float *y, int64_t n, int act, float slope);
int vp_k_add(vp_cuda_ctx *c, const float *a, const float *b, float *y, int64_t n);
int vp_k_norm(vp_cuda_ctx *c, const float *x, float *y, int64_t N, int64_t C, int64_t S, int groups, float eps,
              const float *gamma, const float *beta, int act, float slope);
int vp_k_upsample2x(vp_cuda_ctx *c, const float *x, float *y, int64_t NC, int64_t D, int64_t H, int64_t W);
int vp_k_softmax(vp_cuda_ctx *c, const float *x, float *y, int64_t N, int64_t C, int64_t S);
int vp_k_argmax(vp_cuda_ctx *c, const float *x, int32_t *out, int64_t N, int64_t C, int64_t S);

#endif
