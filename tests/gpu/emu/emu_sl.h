// tests/gpu/emu/emu_sl.h - the rest of what nn_cuda_sliding.cu needs on the CPU: the backend
// context, the CUDA memory calls as host memset/free/memcpy, device tensors as host tensors.
#pragma once
#include "emu.h"
struct vp_cuda_be { vp_cuda_ctx *c; vp_cuda_math math; };
static inline vp_cuda_ctx *ctx_of(const vp_nn_backend *be) { return ((vp_cuda_be *)be->ctx)->c; }
#define cudaSetDevice(d) 0
#define cudaMemsetAsync(p, v, n, s) (memset(p, v, n), 0)
#define cudaFreeAsync(p, s) (free(p), 0)
#define cudaStreamSynchronize(s) 0
int emu_memcpy2d(void *d, size_t dp, const void *s, size_t sp, size_t w, size_t h);
#define cudaMemcpy2DAsync(d, dp, s, sp, w, h, k, st) emu_memcpy2d(d, dp, s, sp, w, h)
vp_tensor *emu_tensor_new(int ordinal, int ndim, const int64_t *shape);
vp_tensor *emu_tensor_new_cl(int ordinal, const int64_t shape[5]);
void emu_tensor_free(vp_tensor **t);
#define vp_cuda_tensor_new emu_tensor_new
#define vp_cuda_tensor_new_cl emu_tensor_new_cl
#define vp_cuda_tensor_free emu_tensor_free
// the tiled path's copies and the free-memory query (AUTO: the emulated device has room)
#define cudaMemcpyAsync(d, s, n, k, st) (memcpy(d, s, n), 0)
#define cudaMemGetInfo(f, t) (*(f) = *(t) = (size_t)4 << 30, cudaSuccess)
#define cudaDeviceGetDefaultMemPool(p, d) (*(p) = (cudaMemPool_t)1, cudaSuccess)
#define cudaMemPoolGetAttribute(p, a, v) (*(uint64_t *)(v) = 0, cudaSuccess)
#define cudaGetLastError() cudaSuccess
// the free-memory rule of nn_cuda_mem.cu (vp_cuda_available_bytes), on the emulated 4 GiB device
static inline size_t vp_cuda_available_bytes(const vp_cuda_ctx *c)
{
    (void)c;
    const char *e = getenv("VP_CUDA_MEM_LIMIT_MIB");
    const size_t dev = (size_t)4 << 30, lim = e && *e ? (size_t)strtoull(e, NULL, 10) << 20 : dev;
    return lim < dev ? lim : dev;
}
