// nn_cuda_budget.cu - the device memory a sliding window may still count on (see nn_cuda_budget.h).
#include "nn_cuda_int.h"

#include "nn_cuda_budget.h"

#include <stdlib.h>

size_t vp_cuda_available_bytes(const vp_cuda_ctx *c)
{
    size_t fr = 0, tot = 0;
    uint64_t res = 0, used = 0;
    cudaMemPool_t pool;
    if (cudaMemGetInfo(&fr, &tot) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    if (cudaDeviceGetDefaultMemPool(&pool, c->dev) == cudaSuccess && cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemCurrent, &res) == cudaSuccess &&
        cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemCurrent, &used) == cudaSuccess) {
        if (res > used) fr += (size_t)(res - used);
    } else {
        cudaGetLastError();
    }
    const char *e = getenv("VP_CUDA_MEM_LIMIT_MIB");
    if (e && *e) {
        const size_t lim = (size_t)strtoull(e, NULL, 10) << 20, inuse = tot > fr ? tot - fr : 0;
        const size_t a = lim > inuse ? lim - inuse : 0;
        if (a < fr) fr = a;
    }
    return fr;
}
