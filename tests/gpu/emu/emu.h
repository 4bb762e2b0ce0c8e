// tests/gpu/emu/emu.h - what the kernels of lib/cuda need to run on the CPU (tests/gpu/emulate.sh):
// __global__/__device__ become plain functions, blockIdx/threadIdx are globals that EMU_LAUNCH
// steps through (blocks in order, the threads of a block one after the other; kernels with a
// shared-memory tree ("partial" in their name) run each block's threads as real threads meeting at
// a barrier for __syncthreads, so their sums are the GPU's, in the GPU's order), the
// device rounding intrinsics are plain f32 operations, CUDA_CHECK/LAUNCH_CHECK do nothing. The
// emulation checks the kernels' indexing and arithmetic, not their parallel behaviour.
#pragma once
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <functional>
#include <stdint.h>
#include <tuple>
#include <vector>
#ifndef VP_NN_CUDA_INT_H
#define _Noreturn [[noreturn]]
extern "C" {
#include "nn_cuda.h"
#include "util.h"
}
#undef _Noreturn
#endif
#undef __global__
#define __global__
#undef __device__
#define __device__
#undef __forceinline__
#define __forceinline__ inline
#undef __shared__
#define __shared__ static
struct emu_dim { unsigned x = 0, y = 0, z = 0; };
extern emu_dim blockIdx, blockDim, gridDim;
extern thread_local emu_dim threadIdx;
#include <barrier>
#include <thread>
#include <vector>
extern std::barrier<> *emu_bar;
inline void __syncthreads() { if (emu_bar) emu_bar->arrive_and_wait(); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
struct dim3e { unsigned x, y; dim3e(unsigned a, unsigned b = 1) : x(a), y(b) {} };
#define dim3 dim3e
#include <string.h>
// A stream capture in progress on this thread (cudaStreamCaptureModeThreadLocal; emu_rt.cc): the
// launches, copies, memsets and convolutions recorded for cudaGraphLaunch instead of run; `invalid`
// after a call that is illegal inside a capture (then nothing more is recorded and
// cudaStreamEndCapture fails); `owned`: the allocations made inside it (graph memory nodes).
struct emu_capture {
    std::vector<std::function<void()>> ops;
    std::vector<void *> owned;
    size_t freed = 0; // how many of `owned` the capture freed again
    int invalid = 0;
};
inline thread_local emu_capture *emu_cap = nullptr;
inline void EMU_LAUNCH(dim3e g, unsigned block, const char *name, std::function<void()> f)
{
    if (emu_cap) {
        if (!emu_cap->invalid) emu_cap->ops.push_back([g, block, name, f]() { EMU_LAUNCH(g, block, name, f); });
        return;
    }
    const bool threads = strstr(name, "partial") != NULL; // shared-memory trees: real threads, a barrier
    gridDim.x = g.x, gridDim.y = g.y, blockDim.x = block;
    for (unsigned by = 0; by < g.y; by++)
        for (unsigned bx = 0; bx < g.x; bx++) {
            blockIdx.x = bx, blockIdx.y = by;
            if (!threads) {
                for (unsigned t = 0; t < block; t++) threadIdx.x = t, f();
                continue;
            }
            std::barrier<> bar((std::ptrdiff_t)block);
            emu_bar = &bar;
            std::vector<std::thread> ts;
            for (unsigned t = 0; t < block; t++) ts.emplace_back([&, t]() { threadIdx.x = t; f(); });
            for (auto &th : ts) th.join();
            emu_bar = NULL;
        }
}
#ifndef VP_NN_CUDA_INT_H // the kernels alone (test_emu_kernels, test_emu_sliding)
#define CUDA_CHECK(call) do { (void)(call); } while (0)
#define LAUNCH_CHECK() do { if (0) goto fail; } while (0)
struct vp_cuda_ctx { int dev; int stream; };
void *vp_cuda_scratch(vp_cuda_ctx *c, size_t bytes);
void *vp_cuda_tmp(vp_cuda_ctx *c, size_t bytes, const char *what);
int vp_cuda_h2d(vp_cuda_ctx *c, void *dst, const void *src, size_t bytes);
int vp_cuda_d2h(vp_cuda_ctx *c, void *dst, const void *src, size_t bytes);
void vp_cu_set_layout(vp_tensor *t, int l);
enum { VP_DT_F32 = 0, VP_DT_F16 = 1, VP_DT_BF16 = 2 };
#endif
#undef GRID_STRIDE
#define GRID_STRIDE(i, n) for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)
static const int TPB = 1;
static inline unsigned blocks_for(int64_t n) { return 1; }
__device__ __forceinline__ float act_f(float v, int act, float slope)
{
    if (act == 1) return v < 0.0f ? 0.0f : v;
    if (act == 2) return v > 0.0f ? v : v * slope;
    return v;
}
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
#ifndef VP_NN_CUDA_INT_H
// launchers
int vp_k_bias(vp_cuda_ctx *c, float *y, const float *b, int64_t N, int64_t C, int64_t S, int l);
int vp_k_norm(vp_cuda_ctx *c, const float *x, float *y, int64_t N, int64_t C, int64_t S, int l, int groups, float eps,
              const float *gamma, const float *beta, int act, float slope);
int vp_k_norm_chunks(int64_t m);
int vp_k_norm_stats(vp_cuda_ctx *c, const float *x, int64_t N, int64_t C, int64_t S, int l, int groups, float eps,
                    double *mean, double *rstd, float *partial);
int vp_k_upsample2x(vp_cuda_ctx *c, const float *x, float *y, int64_t N, int64_t C, int64_t D, int64_t H, int64_t W, int l);
int vp_k_softmax(vp_cuda_ctx *c, const float *x, float *y, int64_t N, int64_t C, int64_t S, int l);
int vp_k_argmax(vp_cuda_ctx *c, const float *x, int32_t *out, int64_t N, int64_t C, int64_t S, int l);
int vp_k_convert(vp_cuda_ctx *c, const void *in, int tin, void *out, int tout, int64_t A, int64_t B, int64_t Cn);
int vp_k_act_backward(vp_cuda_ctx *c, const float *x, const float *dy, float *dx, int64_t n, int act, float slope);
int vp_k_chan_sums(vp_cuda_ctx *c, const float *x, const float *dy, int64_t N, int64_t C, int64_t S, int l, int groups,
                   const double *mean, const double *rstd, double *A, double *B, float *partial);
int vp_k_norm_backward(vp_cuda_ctx *c, const float *x, const float *dy, float *dx, int64_t N, int64_t C, int64_t S, int l,
                       int groups, const double *mean, const double *rstd, const float *gamma, const double *A,
                       const double *B, double *ma, double *mb, float *dgamma, float *dbeta);
int vp_k_sum_n(vp_cuda_ctx *c, const double *A, int64_t N, int64_t C, float *db);
int vp_k_upsample2x_bwd(vp_cuda_ctx *c, const float *dy, float *dx, int64_t N, int64_t C, int64_t D, int64_t H, int64_t W, int l);
#endif
