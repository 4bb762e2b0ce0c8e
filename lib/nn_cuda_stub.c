/* nn_cuda_stub.c - the CUDA backend's functions in a build without CUDA (no nvcc or no cuDNN when
 * the Makefile ran): each reports "built without CUDA" so callers need no #ifdef. The Makefile
 * compiles this file only when it does not compile the .cu files of lib/cuda. See nn_cuda.h. */
#include "nn_cuda.h"
#include "util.h"

#include <stdio.h>

static const char *why = "built without CUDA (nvcc and cuDNN were not found when voxpipe was built)";

int vp_cuda_built(void) { return 0; }
int vp_cuda_device_count(void) { return 0; }

const vp_nn_backend *vp_nn_backend_cuda(int ordinal)
{
    vp_error("cuda:%d: %s", ordinal, why);
    return NULL;
}

const char *vp_cuda_describe(int ordinal, char *buf, size_t n)
{
    snprintf(buf, n, "%s", why);
    return buf;
}

vp_tensor *vp_cuda_tensor_new(int ordinal, int ndim, const int64_t *shape)
{
    vp_error("cuda:%d: %s", ordinal, why);
    return NULL;
}

void vp_cuda_tensor_free(vp_tensor **t)
{
    if (t) *t = NULL; /* nothing can have been allocated */
}

int vp_cuda_upload(vp_tensor *dev, const vp_tensor *host) { return vp_error("cuda: upload: %s", why); }
int vp_cuda_download(vp_tensor *host, const vp_tensor *dev) { return vp_error("cuda: download: %s", why); }
int vp_cuda_synchronize(int ordinal) { return vp_error("cuda:%d: %s", ordinal, why); }

int vp_cuda_norm_act(const vp_nn_backend *be, const vp_tensor *x, int groups, float eps, const vp_tensor *gamma,
                     const vp_tensor *beta, int act, float slope, vp_tensor *y)
{
    return vp_error("cuda: norm_act: %s", why);
}
