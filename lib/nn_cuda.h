/* nn_cuda.h - the CUDA backend of the nn engine (the .cu files in lib/cuda, cuDNN convolutions, own kernels),
 * and device tensors. Built when the Makefile finds nvcc and cuDNN (it then defines VP_HAVE_CUDA);
 * otherwise lib/nn_cuda_stub.c provides the same functions, which report "built without CUDA", so
 * callers never need #ifdef.
 *
 * Ownership: vp_cuda_tensor_new() returns a host header over device memory (cudaMalloc) that only
 * vp_cuda_tensor_free() releases (owns is 0, so vp_tensor_free() must not be used on it). The
 * backends themselves are static objects, one per device, created on first use and kept until
 * the process exits.
 *
 * Tensors: `device` 0 is host memory, `device` k > 0 is CUDA device k - 1. Every op of the CUDA
 * backend accepts either kind for each argument: host tensors are staged (copied to the device,
 * and outputs copied back, synchronously), so the backend can be dropped into code that keeps
 * its tensors on the host (correct, slow); device tensors stay on the device and the op is queued
 * on the backend's stream. argmax_c's out may be host or device memory (detected).
 *
 * Numerics (f32): convolutions use cuDNN with CUDNN_FMA_MATH (no TF32), deterministic algorithms
 * only; norms are two-pass (mean, then centred sum of squares) with per-thread f32 sums and a
 * fixed-order f64 combination: the same bytes on every run. Layout: NCDHW (NDHWC is to come).
 * Errors: every CUDA/cuDNN call is checked; a failure prints "prog: error: cuda: FILE:LINE: CALL:
 * reason" on stderr and the op returns -1. Programs exit VP_ERR_DEVICE (4) when the backend is
 * not available. Nothing is ever printed to stdout.
 */
#ifndef VP_NN_CUDA_H
#define VP_NN_CUDA_H

#include "nn_backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when this build contains the CUDA backend (not whether a GPU is present). */
int vp_cuda_built(void);

/* Number of usable CUDA devices; 0 when there is none, the driver is missing, or the build has
 * no CUDA (no message). */
int vp_cuda_device_count(void);

/* The CUDA backend on device `ordinal` (0-based), initialised on first use; NULL after vp_error()
 * saying why ("built without CUDA", "no CUDA device", "device 3 of 1", a failing init call). */
const vp_nn_backend *vp_nn_backend_cuda(int ordinal);

/* "NVIDIA H100 80GB HBM3, sm_90, 79.1 GiB, cuDNN 9.x" into buf (or the reason there is none). */
const char *vp_cuda_describe(int ordinal, char *buf, size_t n);

/* A contiguous uninitialised f32 tensor on device `ordinal`; NULL after vp_error() (out of device
 * memory names the size). */
vp_tensor *vp_cuda_tensor_new(int ordinal, int ndim, const int64_t *shape);
/* Release a tensor from vp_cuda_tensor_new (NULL-safe); sets *t to NULL. */
void vp_cuda_tensor_free(vp_tensor **t);

/* Copy host -> device and device -> host (same shapes, both contiguous); synchronous. 0 or -1
 * after vp_error(). */
int vp_cuda_upload(vp_tensor *dev, const vp_tensor *host);
int vp_cuda_download(vp_tensor *host, const vp_tensor *dev);

/* Wait for all queued work on the backend's stream of device `ordinal`; 0 or -1 after vp_error()
 * (asynchronous kernel failures surface here). */
int vp_cuda_synchronize(int ordinal);

/* Normalisation fused with an activation (act 0 none, 1 ReLU, 2 LeakyReLU with `slope`); groups = C
 * is InstanceNorm. Same contract as the backend's group_norm followed by the activation. */
int vp_cuda_norm_act(const vp_nn_backend *be, const vp_tensor *x, int groups, float eps, const vp_tensor *gamma,
                     const vp_tensor *beta, int act, float slope, vp_tensor *y);

#ifdef __cplusplus
}
#endif

#endif
