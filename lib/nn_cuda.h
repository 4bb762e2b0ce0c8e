/* nn_cuda.h - the CUDA backend of the nn engine (the .cu files in lib/cuda, cuDNN convolutions, own kernels),
 * and device tensors. Built when the Makefile finds nvcc and cuDNN (it then defines VP_HAVE_CUDA);
 * otherwise lib/nn_cuda_stub.c provides the same functions, which report "built without CUDA", so
 * callers never need #ifdef.
 *
 * Ownership: vp_cuda_tensor_new*() return a host header over device memory (cudaMalloc) that only
 * vp_cuda_tensor_free() releases (owns is 0, so vp_tensor_free() must not be used on it);
 * vp_cuda_pinned_new() a host tensor in page-locked memory that only vp_cuda_pinned_free()
 * releases. The backends are static objects, one per (device, math), sharing one stream, cuDNN
 * handle, scratch area and two pinned staging buffers per device, created on first use and kept
 * until the process exits. The sliding window and the ops free their temporaries before
 * returning.
 *
 * Tensors: `device` 0 is host memory, `device` k > 0 is CUDA device k - 1. Every op of the CUDA
 * backend accepts either kind for each argument: host tensors are staged (copied to the device,
 * and outputs copied back, synchronously), so the backend can be dropped into code that keeps
 * its tensors on the host (correct, slow); device tensors stay on the device and the op is queued
 * on the backend's stream. argmax_c's out may be host or device memory (detected).
 *
 * Numerics: convolutions use cuDNN, deterministic algorithms only, chosen once per (shapes, layout,
 * math) from cuDNN's heuristics. The math is the backend's: f32 (default; CUDNN_FMA_MATH, no TF32:
 * max abs 1e-4 against the reference), tf32 (f32 tensors, TF32 tensor cores), f16 or bf16 (the
 * convolution's operands converted to half precision on the device, f32 accumulation, f32 result:
 * about 1e-2 relative). Pick it with the backend name "cuda:N:MATH" (MATH f32, tf32, f16, bf16)
 * or, for plain "cuda"/"cuda:N", the environment variable VP_CUDA_MATH. Everything but the
 * convolutions is f32 in every mode. Norms are two-pass (mean, then centred sum of squares) with
 * per-thread f32 sums and a fixed-order f64 combination: the same bytes on every run.
 * Layout: device activations are NCDHW (vp_cuda_tensor_new) or NDHWC, channels last
 * (vp_cuda_tensor_new_cl: the logical shape stays (N, C, D, H, W), the strides are PyTorch's
 * channels_last_3d ones). Upload/download convert from/to the host's NCDHW on the device; every
 * op then works in its tensors' layout (one layout per op: NDHWC when one of its activations is;
 * a one-channel tensor fits both; a host input is staged in the op's layout, a host output must
 * fit it). Weights and 1-D parameters are always PyTorch's layout (host or device).
 * Errors: every CUDA/cuDNN call is checked; a failure prints "prog: error: cuda: FILE:LINE: CALL:
 * reason" on stderr and the op returns -1; out of device memory says so, with the size asked for
 * and the device's free/total memory. Programs exit VP_ERR_DEVICE (4) when the backend is not
 * available or a device call failed (vp_cuda_exit_code). Nothing is ever printed to stdout.
 */
#ifndef VP_NN_CUDA_H
#define VP_NN_CUDA_H

#include "nn_backend.h"
#include "nn_safetensors.h"
#include "nn_sliding.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Convolution math of a backend (see Numerics above). */
typedef enum vp_cuda_math { VP_CUDA_F32 = 0, VP_CUDA_TF32, VP_CUDA_F16, VP_CUDA_BF16, VP_CUDA_MATH_COUNT } vp_cuda_math;

/* Layouts of device activations. */
enum { VP_CUDA_NCDHW = 0, VP_CUDA_NDHWC = 1 };

/* 1 when this build contains the CUDA backend (not whether a GPU is present). */
int vp_cuda_built(void);

/* Number of usable CUDA devices; 0 when there is none, the driver is missing, or the build has
 * no CUDA (no message). */
int vp_cuda_device_count(void);

/* The CUDA backend on device `ordinal` (0-based), initialised on first use; NULL after vp_error()
 * saying why ("built without CUDA", "no CUDA device", "device 3 of 1", a failing init call). */
const vp_nn_backend *vp_nn_backend_cuda(int ordinal);

/* The backend on device `ordinal` with convolution math `math` (one static backend per pair). */
const vp_nn_backend *vp_nn_backend_cuda_math(int ordinal, vp_cuda_math math);

/* A backend by name: "cuda", "cuda:N" (math from VP_CUDA_MATH, default f32) or "cuda:N:MATH"
 * (MATH f32, tf32, f16, bf16). NULL after vp_error() saying why (bad name, no device, built
 * without CUDA). vp_nn_backend_get() passes "cuda..." names here. */
const vp_nn_backend *vp_nn_backend_cuda_named(const char *name);

/* The math of a CUDA backend ("f32", "tf32", "f16", "bf16"). */
const char *vp_cuda_math_name(const vp_nn_backend *be);

/* VP_ERR_DEVICE when a CUDA or cuDNN call has failed in this process (out of device memory
 * included) or the backend could not be created; otherwise `fallback`. For the exit code of a
 * program whose op failed: vp_die(vp_cuda_exit_code(VP_ERR_RUNTIME), ...). */
int vp_cuda_exit_code(int fallback);

/* "NVIDIA H100 80GB HBM3, sm_90, 79.1 GiB, cuDNN 9.x" into buf (or the reason there is none). */
const char *vp_cuda_describe(int ordinal, char *buf, size_t n);

/* A contiguous uninitialised f32 tensor on device `ordinal`; NULL after vp_error() (out of device
 * memory names the size). */
vp_tensor *vp_cuda_tensor_new(int ordinal, int ndim, const int64_t *shape);
/* The same in channels-last layout (5-D only): logical shape (N, C, D, H, W), NDHWC in memory. */
vp_tensor *vp_cuda_tensor_new_cl(int ordinal, const int64_t shape[5]);
/* VP_CUDA_NCDHW or VP_CUDA_NDHWC for a device tensor from the functions above; -1 otherwise. */
int vp_cuda_tensor_layout(const vp_tensor *t);
/* Release a tensor from vp_cuda_tensor_new (NULL-safe); sets *t to NULL. */
void vp_cuda_tensor_free(vp_tensor **t);

/* Copy host -> device and device -> host (same logical shapes; the host tensor contiguous NCDHW,
 * the device tensor NCDHW or NDHWC, converted on the device); synchronous, through pinned staging
 * buffers (chunked, double-buffered) unless the host memory is pinned already. 0 or -1 after
 * vp_error(). */
int vp_cuda_upload(vp_tensor *dev, const vp_tensor *host);
int vp_cuda_download(vp_tensor *host, const vp_tensor *dev);

/* Pinned (page-locked) host tensors, for fast transfers: contiguous, device 0, uninitialised;
 * NULL after vp_error(). Free with vp_cuda_pinned_free (NULL-safe; sets *t to NULL), never with
 * vp_tensor_free. */
vp_tensor *vp_cuda_pinned_new(int ndim, const int64_t *shape);
void vp_cuda_pinned_free(vp_tensor **t);

/* Device memory this process's CUDA backend held at its peak on device `ordinal` since the last
 * reset: tensors (vp_cuda_tensor_new*) at their peak plus the stream-ordered pool's high-water
 * mark (staging, scratch, workspaces): an upper bound of the true simultaneous peak, comparable to
 * torch.cuda.max_memory_allocated. reset 1 starts a new measurement. 0 without a backend. */
size_t vp_cuda_peak_bytes(int ordinal, int reset);

/* Wait for all queued work on the backend's stream of device `ordinal`; 0 or -1 after vp_error()
 * (asynchronous kernel failures surface here). */
int vp_cuda_synchronize(int ordinal);

/* Normalisation fused with an activation (act 0 none, 1 ReLU, 2 LeakyReLU with `slope`); groups = C
 * is InstanceNorm. Same contract as the backend's group_norm followed by the activation. */
int vp_cuda_norm_act(const vp_nn_backend *be, const vp_tensor *x, int groups, float eps, const vp_tensor *gamma,
                     const vp_tensor *beta, int act, float slope, vp_tensor *y);

/* ---- backward ops for training (lib/cuda/nn_cuda_grad.cu). Same tensor rules as the forward
 * ops (host or device, one layout per op); each writes (overwrites) its outputs, which the caller
 * allocated with the shapes named; 0 or -1 after vp_error(). Convolutions use the backend's math.
 * The CPU twins are the reference backward ops of nn_grad.h (same names, same contracts). */

/* conv3d y = conv(x, w) + b: dx (x's shape) from dy (y's shape) and w. */
int vp_cuda_conv3d_bwd_data(const vp_nn_backend *be, const vp_tensor *dy, const vp_tensor *w,
                            const vp_conv3d_params *p, vp_tensor *dx);
/* conv3d: dw (Co, Ci, kd, kh, kw) from x and dy, db (Co) = sum of dy; either may be NULL. */
int vp_cuda_conv3d_bwd_weight(const vp_nn_backend *be, const vp_tensor *x, const vp_tensor *dy,
                              const vp_conv3d_params *p, vp_tensor *dw, vp_tensor *db);
/* conv_transpose3d y = convT(x, w (Ci, Co, k)) + b: dx (x's shape); dw (Ci, Co, k), db (Co). */
int vp_cuda_conv_transpose3d_bwd_data(const vp_nn_backend *be, const vp_tensor *dy, const vp_tensor *w,
                                      const vp_conv3d_params *p, vp_tensor *dx);
int vp_cuda_conv_transpose3d_bwd_weight(const vp_nn_backend *be, const vp_tensor *x, const vp_tensor *dy,
                                        const vp_conv3d_params *p, vp_tensor *dw, vp_tensor *db);
/* Bias gradient alone: db (C) = sum of dy (N, C, D, H, W) over n and space. */
int vp_cuda_bias_bwd(const vp_nn_backend *be, const vp_tensor *dy, vp_tensor *db);
/* GroupNorm (groups = C: InstanceNorm) backward, statistics recomputed from x: dx (x's shape), and
 * when gamma is given dgamma, dbeta (C each). dx, dgamma, dbeta may each be NULL; gamma NULL (no
 * affine) needs dgamma and dbeta NULL. */
int vp_cuda_group_norm_bwd(const vp_nn_backend *be, const vp_tensor *x, const vp_tensor *dy, int groups, float eps,
                           const vp_tensor *gamma, vp_tensor *dx, vp_tensor *dgamma, vp_tensor *dbeta);
/* y = relu(x): dx = y > 0 ? dy : 0.  y = leaky_relu(x, slope): dx = y > 0 ? dy : slope dy (x works
 * as well as y). In place (dx == dy) allowed. */
int vp_cuda_relu_bwd(const vp_nn_backend *be, const vp_tensor *y, const vp_tensor *dy, vp_tensor *dx);
int vp_cuda_leaky_relu_bwd(const vp_nn_backend *be, const vp_tensor *y, const vp_tensor *dy, float slope,
                           vp_tensor *dx);
/* y = upsample_trilinear2x(x): dx (N, C, D, H, W) from dy (N, C, 2D, 2H, 2W), the adjoint (each dx
 * voxel gathers its contributions in a fixed order: deterministic). */
int vp_cuda_upsample_trilinear2x_bwd(const vp_nn_backend *be, const vp_tensor *dy, vp_tensor *dx);

/* ---- device-side sliding-window inference (lib/cuda/nn_cuda_sliding.cu) */

/* The network on a batch of windows, all on the device: x (b, C, rd, rh, rw) -> y (b, K, rd, rh,
 * rw), both device tensors in the layout asked for (the sliding window allocates them). 0 or -1
 * after vp_error(). */
typedef int (*vp_cuda_sw_predict_fn)(void *ctx, const vp_nn_backend *be, const vp_tensor *x, vp_tensor *y);

typedef struct vp_cuda_sw_opts {
    int batch;   /* windows per predictor call (sw_batch_size), >= 1 */
    int acc_f16; /* 1: aggregate in f16 (half the memory; labels may differ where classes nearly tie) */
    int layout;  /* VP_CUDA_NCDHW or VP_CUDA_NDHWC for the predictor's tensors */
    int tiled;   /* VP_CUDA_SW_WHOLE (0), VP_CUDA_SW_TILED or VP_CUDA_SW_AUTO: see vp_cuda_sliding_window */
    size_t reserve;  /* AUTO: device bytes the predictor needs for one batch (its activations, workspace) */
    int *took_tiled; /* when not NULL: set to 1 when the tiled path ran, 0 when the whole volume did */
    vp_sw_emit_fn emit; /* when not NULL: each final row's averaged logits, see vp_cuda_sliding_window */
    void *ectx;         /* emit's context */
} vp_cuda_sw_opts;

enum { VP_CUDA_SW_WHOLE = 0, VP_CUDA_SW_TILED = 1, VP_CUDA_SW_AUTO = 2 };

/* vp_sliding_window() (nn_sliding.h: same windows, order, padding, importance map, count) on the
 * device: x (1, C, D, H, W) is uploaded once (host, through the pinned buffers) or used in place
 * (device, NCDHW) -- or, tiled (o->tiled VP_CUDA_SW_TILED, a host x), kept on the host and
 * uploaded slab by slab (the roi[0] rows of D the windows of one start need, replaced when the
 * next start's windows are cut) with the labels downloaded band by band, so the device holds no
 * whole-volume buffer; the sums and labels are the same. VP_CUDA_SW_AUTO takes the tiled path
 * when the whole image and labels (C+1) x D*H*W x 4 bytes, plus o->reserve, exceed the device's
 * free memory (the stream-ordered pool's unused part counted free), or the budget of
 * VP_CUDA_MEM_LIMIT_MIB (MiB the device is taken to have) when that is set; windows are cut on the device (padding included), the predictor's logits
 * times the importance map are added in window order (deterministic; f32 sums operation for
 * operation the CPU's) into an f32 or f16 band of roi[0] rows -- as soon as the rows before the
 * next window row are final they are divided by the count and argmax'ed on the device (first
 * maximum wins) and their band rows reused -- so device memory is bounded by the window, not the
 * volume: x, K*roi[0]*H*W*(4 or 2) bytes (band), roi[0]*H*W*4 (count), D*H*W*4 (labels), two
 * batches of windows, and the predictor's own. Labels (host, D*H*W int32, w fastest) are the only
 * download when labels is given; when logits is given (host (1, K, D, H, W)) the divided logits
 * come back band by band too; when o->emit is given, each final row d's (in order) comes back alone
 * into host memory of K x H x W floats and o->emit(o->ectx, d, K, row) gets it (classes outer, W
 * fastest; vp_sliding_window_rows' contract: the logits of the whole volume are never on the
 * host; a non-zero return stops with -1). K is the predictor's number of output channels. 0, or -1 after
 * vp_error() (out of device memory names the buffer). */
int vp_cuda_sliding_window(const vp_nn_backend *be, const vp_tensor *x, const vp_sw_params *p, int K,
                           const vp_cuda_sw_opts *o, vp_cuda_sw_predict_fn fn, void *ctx, int32_t *labels,
                           vp_tensor *logits);

/* ---- SegResNet with everything on the device (lib/cuda/nn_cuda_segresnet.cu): the architecture
 * of nn_segresnet.h, weights uploaded once, activations from the device's stream-ordered pool in
 * the model's layout, GroupNorm + ReLU fused, no host copies. The CPU twin is
 * vp_segresnet_forward. Ownership: the model owns its device weights; vp_cuda_segresnet_free
 * releases them (NULL-safe, sets *m to NULL). */
typedef struct vp_cuda_segresnet vp_cuda_segresnet;

/* The model of st on be's device, activations in `layout` (VP_CUDA_NCDHW or VP_CUDA_NDHWC); the
 * file is checked by vp_segresnet_load (same messages). NULL after vp_error(). Models with
 * upsample_mode deconv run their ConvTranspose3d k2 s2 upsampling on the device too. */
vp_cuda_segresnet *vp_cuda_segresnet_load(const vp_nn_backend *be, const vp_safetensors *st, const char *where, int layout);
/* y (N, out_channels, D, H, W) = the network on x (N, in_channels, D, H, W); both device tensors
 * of the model's device that fit the model's layout (one-channel tensors fit both), y allocated by
 * the caller. Queued on the backend's stream. 0 or -1 after vp_error(). */
int vp_cuda_segresnet_forward(const vp_cuda_segresnet *m, const vp_tensor *x, vp_tensor *y);
void vp_cuda_segresnet_free(vp_cuda_segresnet **m);

/* ---- the next case's upload overlapped with this case's compute (lib/cuda/nn_cuda_mem.cu; used
 * by nn_infer_cuda.h's staged inputs, infer-ressegnet --prefetch). Each device has, besides the
 * backend's (compute) stream, a copy stream created on first use. A reader thread copies case
 * k+1's pinned input into device memory on the copy stream and records an event after it; the
 * compute stream waits for that event (cudaStreamWaitEvent, no host wait) before case k+1's
 * kernels read it. The device memory comes from the stream-ordered pool on the copy stream and is
 * freed with cudaFreeAsync on the compute stream after the last kernel that reads it, so the
 * pool never hands it to another stream (the next copy included) before that point. */

/* Select device `ordinal` for the calling thread (cudaSetDevice), so that what another thread than
 * the backend's allocates (pinned memory, events) belongs to that device and creates no context
 * on GPU 0. 0, or -1 after vp_error(). */
int vp_cuda_use_device(int ordinal);

/* vp_cuda_pinned_new for callers that go on without pinned memory: NULL with the reason in why (n
 * bytes), nothing printed and no device failure recorded. VP_CUDA_NO_PINNED=1 makes it fail
 * (tests). Free with vp_cuda_pinned_free. */
vp_tensor *vp_cuda_pinned_try(int ndim, const int64_t *shape, char *why, size_t n);

/* Device bytes this process may still use on device `ordinal`: free memory plus the
 * stream-ordered pool's unused reserve, within VP_CUDA_MEM_LIMIT_MIB when that is set (the
 * measure of vp_cuda_sliding_window's choice of the tiled path). 0 without a backend there. */
size_t vp_cuda_mem_available(int ordinal);

/* A host tensor being copied to the device on the copy stream. */
typedef struct vp_cuda_ahead vp_cuda_ahead;

/* Start copying host (contiguous; pinned, or the copy is not asynchronous) into a new contiguous
 * (NCDHW) device tensor of the same shape on device `ordinal` (its backend exists) on the copy
 * stream, an event recorded after it; any thread (it selects the device). The host memory must
 * stay until vp_cuda_ahead_free. label names the copy in VP_CUDA_TRACE=1 lines. NULL with the
 * reason in why (n bytes) and nothing printed when the device memory cannot be had (the caller
 * uploads when the case runs instead). */
vp_cuda_ahead *vp_cuda_ahead_upload(int ordinal, const vp_tensor *host, const char *label, char *why, size_t n);
/* The device tensor, the compute stream made to wait for the copy's event first (work queued on
 * the backend's stream afterwards sees the data; the host does not wait). NULL after vp_error(). */
const vp_tensor *vp_cuda_ahead_tensor(vp_cuda_ahead *a);
/* Release: the compute stream waits for the copy (if it did not yet), the device memory is freed
 * on the compute stream (stream-ordered: after the work queued there that reads it), and the host
 * waits for the copy's end (the host tensor may be freed afterwards). Any thread; NULL-safe; sets
 * *a to NULL. With VP_CUDA_TRACE=1 prints "PROG: cuda:N: trace: copy LABEL T0..T1 ms" on stderr. */
void vp_cuda_ahead_free(vp_cuda_ahead **a);

/* VP_CUDA_TRACE=1 (else both do nothing and begin returns NULL): a span of the compute stream of
 * device `ordinal`, timed by events recorded on it. end records its end, waits for it and prints
 * "PROG: cuda:N: trace: LABEL T0..T1 ms" on stderr; times are ms since the device's first traced
 * call, on the same clock as the copies' lines (the check that a copy ran inside a compute span:
 * tests/gpu/check_overlap.sh). NULL-safe; sets *s to NULL. */
typedef struct vp_cuda_span vp_cuda_span;
vp_cuda_span *vp_cuda_span_begin(int ordinal);
void vp_cuda_span_end(vp_cuda_span **s, const char *label);

#ifdef __cplusplus
}
#endif

#endif
