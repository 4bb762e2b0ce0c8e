/* nn_cuda_stub.c - the CUDA backend's functions in a build without CUDA (no nvcc or no cuDNN when
 * the Makefile ran): each reports "built without CUDA" so callers need no #ifdef. The Makefile
 * compiles this file only when it does not compile the .cu files of lib/cuda. See nn_cuda.h. */
#include "nn_cuda.h"
#include "util.h"

#include <stdio.h>

static const char *why = "built without CUDA (nvcc and cuDNN were not found when voxpipe was built)";

int vp_cuda_built(void) { return 0; }
int vp_cuda_device_count(void) { return 0; }
int vp_cuda_exit_code(int fallback) { return VP_ERR_DEVICE; } /* any CUDA use failed */

const vp_nn_backend *vp_nn_backend_cuda(int ordinal)
{
    vp_error("cuda:%d: %s", ordinal, why);
    return NULL;
}

const vp_nn_backend *vp_nn_backend_cuda_math(int ordinal, vp_cuda_math math)
{
    return vp_nn_backend_cuda(ordinal);
}

const vp_nn_backend *vp_nn_backend_cuda_named(const char *name)
{
    vp_error("%s: %s", name, why);
    return NULL;
}

const char *vp_cuda_math_name(const vp_nn_backend *be) { return "none"; }

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

vp_tensor *vp_cuda_tensor_new_cl(int ordinal, const int64_t shape[5]) { return vp_cuda_tensor_new(ordinal, 5, shape); }
int vp_cuda_tensor_layout(const vp_tensor *t) { return -1; }

void vp_cuda_tensor_free(vp_tensor **t)
{
    if (t) *t = NULL; /* nothing can have been allocated */
}

vp_tensor *vp_cuda_pinned_new(int ndim, const int64_t *shape)
{
    vp_error("cuda: pinned memory: %s", why);
    return NULL;
}

void vp_cuda_pinned_free(vp_tensor **t)
{
    if (t) *t = NULL;
}

int vp_cuda_upload(vp_tensor *dev, const vp_tensor *host) { return vp_error("cuda: upload: %s", why); }
int vp_cuda_download(vp_tensor *host, const vp_tensor *dev) { return vp_error("cuda: download: %s", why); }
size_t vp_cuda_peak_bytes(int ordinal, int reset) { return 0; }
int vp_cuda_synchronize(int ordinal) { return vp_error("cuda:%d: %s", ordinal, why); }

int vp_cuda_norm_act(const vp_nn_backend *be, const vp_tensor *x, int groups, float eps, const vp_tensor *gamma,
                     const vp_tensor *beta, int act, float slope, vp_tensor *y)
{
    return vp_error("cuda: norm_act: %s", why);
}

int vp_cuda_conv3d_bwd_data(const vp_nn_backend *be, const vp_tensor *dy, const vp_tensor *w, const vp_conv3d_params *p,
                            vp_tensor *dx)
{
    return vp_error("cuda: conv3d_bwd_data: %s", why);
}

int vp_cuda_conv3d_bwd_weight(const vp_nn_backend *be, const vp_tensor *x, const vp_tensor *dy, const vp_conv3d_params *p,
                              vp_tensor *dw, vp_tensor *db)
{
    return vp_error("cuda: conv3d_bwd_weight: %s", why);
}

int vp_cuda_conv_transpose3d_bwd_data(const vp_nn_backend *be, const vp_tensor *dy, const vp_tensor *w,
                                      const vp_conv3d_params *p, vp_tensor *dx)
{
    return vp_error("cuda: conv_transpose3d_bwd_data: %s", why);
}

int vp_cuda_conv_transpose3d_bwd_weight(const vp_nn_backend *be, const vp_tensor *x, const vp_tensor *dy,
                                        const vp_conv3d_params *p, vp_tensor *dw, vp_tensor *db)
{
    return vp_error("cuda: conv_transpose3d_bwd_weight: %s", why);
}

int vp_cuda_bias_bwd(const vp_nn_backend *be, const vp_tensor *dy, vp_tensor *db) { return vp_error("cuda: bias_bwd: %s", why); }

int vp_cuda_group_norm_bwd(const vp_nn_backend *be, const vp_tensor *x, const vp_tensor *dy, int groups, float eps,
                           const vp_tensor *gamma, vp_tensor *dx, vp_tensor *dgamma, vp_tensor *dbeta)
{
    return vp_error("cuda: group_norm_bwd: %s", why);
}

int vp_cuda_relu_bwd(const vp_nn_backend *be, const vp_tensor *y, const vp_tensor *dy, vp_tensor *dx)
{
    return vp_error("cuda: relu_bwd: %s", why);
}

int vp_cuda_leaky_relu_bwd(const vp_nn_backend *be, const vp_tensor *y, const vp_tensor *dy, float slope, vp_tensor *dx)
{
    return vp_error("cuda: leaky_relu_bwd: %s", why);
}

int vp_cuda_upsample_trilinear2x_bwd(const vp_nn_backend *be, const vp_tensor *dy, vp_tensor *dx)
{
    return vp_error("cuda: upsample_trilinear2x_bwd: %s", why);
}

int vp_cuda_sliding_window(const vp_nn_backend *be, const vp_tensor *x, const vp_sw_params *p, int K,
                           const vp_cuda_sw_opts *o, vp_cuda_sw_predict_fn fn, void *ctx, int32_t *labels,
                           vp_tensor *logits)
{
    return vp_error("cuda: sliding window: %s", why);
}

vp_cuda_segresnet *vp_cuda_segresnet_load(const vp_nn_backend *be, const vp_safetensors *st, const char *where, int layout)
{
    vp_error("%s: %s", where, why);
    return NULL;
}

int vp_cuda_segresnet_forward(const vp_cuda_segresnet *m, const vp_tensor *x, vp_tensor *y)
{
    return vp_error("cuda: segresnet: %s", why);
}

void vp_cuda_segresnet_free(vp_cuda_segresnet **m)
{
    if (m) *m = NULL;
}

int vp_cuda_use_device(int ordinal) { return vp_error("cuda:%d: %s", ordinal, why); }

vp_tensor *vp_cuda_pinned_try(int ndim, const int64_t *shape, char *buf, size_t n)
{
    snprintf(buf, n, "%s", why);
    return NULL;
}

size_t vp_cuda_mem_available(int ordinal) { return 0; }

vp_cuda_ahead *vp_cuda_ahead_upload(int ordinal, const vp_tensor *host, const char *label, char *buf, size_t n)
{
    snprintf(buf, n, "%s", why);
    return NULL;
}

const vp_tensor *vp_cuda_ahead_tensor(vp_cuda_ahead *a)
{
    vp_error("cuda: %s", why);
    return NULL;
}

void vp_cuda_ahead_free(vp_cuda_ahead **a)
{
    if (a) *a = NULL;
}

vp_cuda_span *vp_cuda_span_begin(int ordinal) { return NULL; }

void vp_cuda_span_end(vp_cuda_span **s, const char *label)
{
    if (s) *s = NULL;
}
