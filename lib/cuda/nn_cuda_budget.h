/* nn_cuda_budget.h - how much device memory a sliding window may still count on, for the choice
 * between the whole-volume and the tiled path (lib/cuda/nn_cuda_unet_sw.cu; nn_cuda_sliding.cu
 * has the same rule in its own static sw_available and can switch to this one). Internal to
 * lib/cuda: include after nn_cuda_int.h.
 *
 * Ownership: nothing is allocated; the function only queries the runtime and the environment. */
#ifndef VP_NN_CUDA_BUDGET_H
#define VP_NN_CUDA_BUDGET_H

#include <stddef.h>

struct vp_cuda_ctx;

/* Device bytes this process may still use on c's device: the free memory plus the stream-ordered
 * pool's unused reserve (memory freed with cudaFreeAsync stays in the pool but is ours to reuse),
 * and no more than the budget of VP_CUDA_MEM_LIMIT_MIB when that is set (the MiB the device is
 * taken to have: what is in use counts against it, so 0 or 1 forces every estimate to fail).
 * 0 when the runtime cannot say (the caller then takes the path that needs less). */
size_t vp_cuda_available_bytes(const struct vp_cuda_ctx *c);

#endif
