// nn_cuda_mem.cu - device memory of the CUDA backend (see nn_cuda.h): device tensors (NCDHW or
// NDHWC) and the pool-backed activations, peak accounting, pinned host memory, chunked
// double-buffered host <-> device copies, upload/download with the layout conversion.
#include "nn_cuda_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- pinned host memory and chunked copies

static const size_t PIN_CHUNK = (size_t)16 << 20; // bytes per pinned buffer (two per device)

static int is_pinned(const void *p)
{
    cudaPointerAttributes pa;
    if (cudaPointerGetAttributes(&pa, p) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return pa.type == cudaMemoryTypeHost;
}

static int pinned_ready(vp_cuda_ctx *c)
{
    for (int i = 0; i < 2; i++)
        if (!c->pinned[i]) {
            CUDA_CHECK(cudaHostAlloc(&c->pinned[i], PIN_CHUNK, cudaHostAllocDefault));
            CUDA_CHECK(cudaEventCreateWithFlags(&c->pinned_done[i], cudaEventDisableTiming));
        }
    return 0;
fail:
    return vp_error("cuda: cannot allocate pinned host staging buffers");
}

// Host -> device: the host copies chunk k into pinned buffer k % 2 while the device copies chunk
// k - 1 out of the other one; an event per buffer says when it may be refilled.
int vp_cuda_h2d(vp_cuda_ctx *c, void *dst, const void *src, size_t bytes)
{
    if (bytes >= PIN_CHUNK && !is_pinned(src) && pinned_ready(c) == 0) {
        for (size_t off = 0, k = 0; off < bytes; off += PIN_CHUNK, k++) {
            size_t n = bytes - off < PIN_CHUNK ? bytes - off : PIN_CHUNK;
            int b = (int)(k & 1);
            CUDA_CHECK(cudaEventSynchronize(c->pinned_done[b]));
            memcpy(c->pinned[b], (const char *)src + off, n);
            CUDA_CHECK(cudaMemcpyAsync((char *)dst + off, c->pinned[b], n, cudaMemcpyHostToDevice, c->stream));
            CUDA_CHECK(cudaEventRecord(c->pinned_done[b], c->stream));
        }
    } else {
        CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->stream));
    }
    CUDA_CHECK(cudaStreamSynchronize(c->stream));
    return 0;
fail:
    return -1;
}

// Device -> host: chunk k goes into pinned buffer k % 2; the host copies chunk k - 1 out while it
// arrives.
int vp_cuda_d2h(vp_cuda_ctx *c, void *dst, const void *src, size_t bytes)
{
    if (bytes >= PIN_CHUNK && !is_pinned(dst) && pinned_ready(c) == 0) {
        size_t nk = (bytes + PIN_CHUNK - 1) / PIN_CHUNK;
        for (size_t k = 0; k <= nk; k++) {
            if (k < nk) {
                size_t off = k * PIN_CHUNK, n = bytes - off < PIN_CHUNK ? bytes - off : PIN_CHUNK;
                CUDA_CHECK(cudaMemcpyAsync(c->pinned[k & 1], (const char *)src + off, n, cudaMemcpyDeviceToHost, c->stream));
                CUDA_CHECK(cudaEventRecord(c->pinned_done[k & 1], c->stream));
            }
            if (k > 0) {
                size_t j = k - 1, off = j * PIN_CHUNK, n = bytes - off < PIN_CHUNK ? bytes - off : PIN_CHUNK;
                CUDA_CHECK(cudaEventSynchronize(c->pinned_done[j & 1]));
                memcpy((char *)dst + off, c->pinned[j & 1], n);
            }
        }
    } else {
        CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c->stream));
    }
    CUDA_CHECK(cudaStreamSynchronize(c->stream));
    return 0;
fail:
    return -1;
}

extern "C" vp_tensor *vp_cuda_pinned_new(int ndim, const int64_t *shape)
{
    vp_tensor *t = (vp_tensor *)vp_calloc(1, sizeof *t);
    *t = vp_tensor_view(NULL, ndim, shape);
    size_t bytes = (size_t)vp_tensor_numel(t) * sizeof(float);
    // portable: pinned for every device's context, whichever thread allocates it (infer-ressegnet's
    // --prefetch reader thread stages the next case here)
    CUDA_CHECK(cudaHostAlloc((void **)&t->data, bytes ? bytes : 4, cudaHostAllocPortable));
    return t;
fail:
    vp_error("cuda: cannot allocate %.1f MiB of pinned host memory", bytes / 1048576.0);
    free(t);
    return NULL;
}

extern "C" void vp_cuda_pinned_free(vp_tensor **t)
{
    if (!t || !*t) return;
    if ((*t)->data) cudaFreeHost((*t)->data);
    free(*t);
    *t = NULL;
}

static size_t tensor_bytes[VP_CUDA_MAXDEV], tensor_peak[VP_CUDA_MAXDEV]; // held by device tensors now, at the peak

extern "C" size_t vp_cuda_peak_bytes(int ordinal, int reset)
{
    if (!vp_cuda_ctx_get(ordinal)) return 0;
    cudaMemPool_t pool;
    uint64_t high = 0;
    if (cudaDeviceGetDefaultMemPool(&pool, ordinal) != cudaSuccess ||
        cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &high) != cudaSuccess)
        cudaGetLastError(), high = 0;
    size_t r = tensor_peak[ordinal] + (size_t)high;
    if (reset) {
        uint64_t zero = 0;
        tensor_peak[ordinal] = tensor_bytes[ordinal];
        if (cudaMemPoolSetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &zero) != cudaSuccess) cudaGetLastError();
    }
    return r;
}

static vp_tensor *tensor_new(int ordinal, int ndim, const int64_t *shape, int layout)
{
    if (vp_cu_ordinal_ok(ordinal)) return NULL;
    vp_tensor *t = (vp_tensor *)vp_calloc(1, sizeof *t);
    size_t bytes;
    *t = vp_tensor_view(NULL, ndim, shape); // shape, strides, overflow checks
    bytes = (size_t)vp_tensor_numel(t) * sizeof(float);
    CUDA_CHECK(cudaSetDevice(ordinal));
    if (cudaMalloc((void **)&t->data, bytes ? bytes : 4) != cudaSuccess) {
        /* the stream-ordered pool keeps what the ops freed (release threshold: all): give it back
         * to the device once it is idle, then try again */
        cudaMemPool_t pool;
        cudaGetLastError();
        t->data = NULL;
        CUDA_CHECK(cudaDeviceSynchronize());
        CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, ordinal));
        CUDA_CHECK(cudaMemPoolTrimTo(pool, 0));
        CUDA_CHECK(cudaMalloc((void **)&t->data, bytes ? bytes : 4));
    }
    t->device = ordinal + 1;
    t->owns = 0;
    vp_cu_set_layout(t, layout);
    tensor_bytes[ordinal] += bytes;
    if (tensor_bytes[ordinal] > tensor_peak[ordinal]) tensor_peak[ordinal] = tensor_bytes[ordinal];
    return t;
fail:
    {
        char s[96];
        vp_error("cuda:%d: cannot allocate tensor %s (%.1f MiB of device memory)", ordinal, vp_tensor_shape_str(t, s, sizeof s),
                 (double)vp_tensor_numel(t) * 4 / 1048576.0);
    }
    free(t);
    return NULL;
}

extern "C" vp_tensor *vp_cuda_tensor_new(int ordinal, int ndim, const int64_t *shape)
{
    return tensor_new(ordinal, ndim, shape, VP_CUDA_NCDHW);
}

extern "C" vp_tensor *vp_cuda_tensor_new_cl(int ordinal, const int64_t shape[5])
{
    return tensor_new(ordinal, 5, shape, VP_CUDA_NDHWC);
}

vp_tensor *vp_cu_act_new(vp_cuda_ctx *c, const int64_t shape[5], int l)
{
    vp_tensor *t = (vp_tensor *)vp_calloc(1, sizeof *t);
    *t = vp_tensor_view(NULL, 5, shape);
    char s[96], what[128];
    snprintf(what, sizeof what, "activation %s", vp_tensor_shape_str(t, s, sizeof s));
    if (!(t->data = (float *)vp_cuda_tmp(c, (size_t)vp_tensor_numel(t) * sizeof(float), what))) {
        free(t);
        return NULL;
    }
    t->device = c->dev + 1;
    vp_cu_set_layout(t, l);
    return t;
}

void vp_cu_act_free(vp_cuda_ctx *c, vp_tensor **t)
{
    if (!t || !*t) return;
    if ((*t)->data) cudaFreeAsync((*t)->data, c->stream);
    free(*t);
    *t = NULL;
}

extern "C" void vp_cuda_tensor_free(vp_tensor **t)
{
    if (!t || !*t) return;
    if ((*t)->device > 0 && (*t)->data) {
        const int dev = (*t)->device - 1;
        const size_t bytes = (size_t)vp_tensor_numel(*t) * sizeof(float);
        cudaSetDevice(dev);
        cudaError_t e = cudaFree((*t)->data);
        if (dev < VP_CUDA_MAXDEV && tensor_bytes[dev] >= bytes) tensor_bytes[dev] -= bytes;
        if (e != cudaSuccess) vp_cuda_report(__FILE__, __LINE__, "cudaFree(t->data)", cudaGetErrorName(e), cudaGetErrorString(e));
    }
    free(*t);
    *t = NULL;
}

// a context for copies on a device that has no backend yet: create the backend
static vp_cuda_ctx *ctx_for(int dev)
{
    if (!vp_cuda_ctx_get(dev) && !vp_nn_backend_cuda_math(dev, VP_CUDA_F32)) return NULL;
    return vp_cuda_ctx_get(dev);
}

static int copy(vp_tensor *dst, const vp_tensor *src, int up, const char *what)
{
    char s[96], u[96];
    const vp_tensor *dv = up ? dst : src, *hv = up ? src : dst;
    if (!vp_tensor_same_shape(dst, src) || !vp_tensor_is_contiguous(hv))
        return vp_error("cuda: %s: shapes %s and %s differ or the host tensor is not contiguous", what,
                        vp_tensor_shape_str(dst, s, sizeof s), vp_tensor_shape_str(src, u, sizeof u));
    if (dv->device < 1 || hv->device != 0) return vp_error("cuda: %s: expected one host and one device tensor", what);
    int l = vp_cuda_tensor_layout(dv);
    if (l < 0) return vp_error("cuda: %s: the device tensor is neither NCDHW nor NDHWC", what);
    vp_cuda_ctx *c = ctx_for(dv->device - 1);
    if (!c) return -1;
    size_t bytes = (size_t)vp_tensor_numel(src) * sizeof(float);
    float *tmp = NULL;
    const int64_t N = dv->ndim == 5 ? dv->shape[0] : 1, C = dv->ndim == 5 ? dv->shape[1] : 1, S = vp_tensor_numel(dv) / (N * C);
    CUDA_CHECK(cudaSetDevice(c->dev));
    if (l == VP_CUDA_NCDHW) return up ? vp_cuda_h2d(c, dst->data, src->data, bytes) : vp_cuda_d2h(c, dst->data, src->data, bytes);
    // NDHWC: through a device temporary, permuted on the device
    if (!(tmp = (float *)vp_cuda_tmp(c, bytes, what))) return -1;
    if (up) {
        if (vp_cuda_h2d(c, tmp, src->data, bytes) || vp_k_convert(c, tmp, VP_DT_F32, dst->data, VP_DT_F32, N, C, S)) goto fail;
    } else {
        if (vp_k_convert(c, src->data, VP_DT_F32, tmp, VP_DT_F32, N, S, C) || vp_cuda_d2h(c, dst->data, tmp, bytes)) goto fail;
    }
    CUDA_CHECK(cudaFreeAsync(tmp, c->stream));
    CUDA_CHECK(cudaStreamSynchronize(c->stream));
    return 0;
fail:
    if (tmp) cudaFreeAsync(tmp, c->stream);
    return -1;
}

extern "C" int vp_cuda_upload(vp_tensor *dev, const vp_tensor *host) { return copy(dev, host, 1, "upload"); }
extern "C" int vp_cuda_download(vp_tensor *host, const vp_tensor *dev) { return copy(host, dev, 0, "download"); }


// ---- the next case's upload on a second stream (see nn_cuda.h: vp_cuda_ahead_*)

extern "C" int vp_cuda_use_device(int ordinal)
{
    if (vp_cu_ordinal_ok(ordinal)) return -1;
    CUDA_CHECK(cudaSetDevice(ordinal));
    return 0;
fail:
    return -1;
}

extern "C" vp_tensor *vp_cuda_pinned_try(int ndim, const int64_t *shape, char *why, size_t n)
{
    vp_tensor *t = (vp_tensor *)vp_calloc(1, sizeof *t);
    *t = vp_tensor_view(NULL, ndim, shape);
    const size_t bytes = (size_t)vp_tensor_numel(t) * sizeof(float);
    const char *no = getenv("VP_CUDA_NO_PINNED"); // tests: pretend page-locked memory cannot be had
    cudaError_t e = no && !strcmp(no, "1") ? cudaErrorMemoryAllocation : cudaHostAlloc((void **)&t->data, bytes ? bytes : 4, cudaHostAllocPortable);
    if (e == cudaSuccess) return t;
    cudaGetLastError(); // not sticky: the caller goes on without it
    snprintf(why, n, "%.1f MiB of pinned host memory: %s", bytes / 1048576.0, no && !strcmp(no, "1") ? "VP_CUDA_NO_PINNED=1" : cudaGetErrorString(e));
    free(t);
    return NULL;
}

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

extern "C" size_t vp_cuda_mem_available(int ordinal)
{
    const vp_cuda_ctx *c = vp_cuda_ctx_get(ordinal);
    if (!c || cudaSetDevice(ordinal) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return vp_cuda_available_bytes(c);
}

// per device: the copy stream, and for VP_CUDA_TRACE=1 a reference event (time 0 of the trace),
// created on first use by whichever thread comes first
static cudaStream_t copy_stream[VP_CUDA_MAXDEV];
static cudaEvent_t trace_ref[VP_CUDA_MAXDEV];
static pthread_mutex_t copy_lock = PTHREAD_MUTEX_INITIALIZER;

static int tracing(void)
{
    const char *e = getenv("VP_CUDA_TRACE");
    return e && !strcmp(e, "1");
}

// the context of device dev (the backend exists: the caller opened it), its copy stream and, when
// tracing, its reference event; the calling thread's device is set to dev
static vp_cuda_ctx *copy_ctx(int dev)
{
    vp_cuda_ctx *c = vp_cuda_ctx_get(dev);
    if (!c) return vp_error("cuda:%d: no backend on this device yet", dev), (vp_cuda_ctx *)NULL;
    pthread_mutex_lock(&copy_lock);
    CUDA_CHECK(cudaSetDevice(dev));
    if (!copy_stream[dev]) CUDA_CHECK(cudaStreamCreateWithFlags(&copy_stream[dev], cudaStreamNonBlocking));
    if (tracing() && !trace_ref[dev]) {
        CUDA_CHECK(cudaEventCreateWithFlags(&trace_ref[dev], cudaEventDefault));
        CUDA_CHECK(cudaEventRecord(trace_ref[dev], c->stream));
        CUDA_CHECK(cudaEventSynchronize(trace_ref[dev]));
    }
    pthread_mutex_unlock(&copy_lock);
    return c;
fail:
    pthread_mutex_unlock(&copy_lock);
    return NULL;
}

// ms of event e (complete) since the device's trace reference
static double trace_ms(int dev, cudaEvent_t e)
{
    float ms = 0;
    if (cudaEventSynchronize(e) != cudaSuccess || cudaEventElapsedTime(&ms, trace_ref[dev], e) != cudaSuccess) cudaGetLastError(), ms = -1;
    return ms;
}

struct vp_cuda_ahead {
    vp_tensor t;         // the device copy (NCDHW, from the stream-ordered pool)
    vp_cuda_ctx *c;      // its device's context (compute stream)
    cudaEvent_t done;    // recorded on the copy stream after the copy
    cudaEvent_t start;   // tracing: recorded before it
    int waited;          // the compute stream waits for `done` already
    char label[96];
};

extern "C" vp_cuda_ahead *vp_cuda_ahead_upload(int ordinal, const vp_tensor *host, const char *label, char *why, size_t n)
{
    const size_t bytes = (size_t)vp_tensor_numel(host) * sizeof(float);
    vp_cuda_ctx *c;
    if (!host || host->device != 0 || !vp_tensor_is_contiguous(host))
        return snprintf(why, n, "the input is not a contiguous host tensor"), (vp_cuda_ahead *)NULL;
    if (!(c = copy_ctx(ordinal))) return snprintf(why, n, "no copy stream (see the message above)"), (vp_cuda_ahead *)NULL;
    vp_cuda_ahead *a = (vp_cuda_ahead *)vp_calloc(1, sizeof *a);
    a->t = vp_tensor_view(NULL, host->ndim, host->shape);
    a->c = c;
    snprintf(a->label, sizeof a->label, "%s", label ? label : "");
    cudaError_t e = cudaMallocAsync((void **)&a->t.data, bytes ? bytes : 4, copy_stream[ordinal]);
    if (e != cudaSuccess) { // quiet: the caller uploads when the case runs instead
        cudaGetLastError();
        snprintf(why, n, "%.1f MiB of device memory: %s", bytes / 1048576.0, cudaGetErrorString(e));
        free(a);
        return NULL;
    }
    a->t.device = ordinal + 1;
    CUDA_CHECK(cudaEventCreateWithFlags(&a->done, tracing() ? cudaEventDefault : cudaEventDisableTiming));
    if (tracing()) {
        CUDA_CHECK(cudaEventCreateWithFlags(&a->start, cudaEventDefault));
        CUDA_CHECK(cudaEventRecord(a->start, copy_stream[ordinal]));
    }
    CUDA_CHECK(cudaMemcpyAsync(a->t.data, host->data, bytes, cudaMemcpyHostToDevice, copy_stream[ordinal]));
    CUDA_CHECK(cudaEventRecord(a->done, copy_stream[ordinal]));
    return a;
fail:
    snprintf(why, n, "a failing CUDA call (see the message above)");
    cudaStreamSynchronize(copy_stream[ordinal]);
    cudaFreeAsync(a->t.data, copy_stream[ordinal]);
    if (a->done) cudaEventDestroy(a->done);
    if (a->start) cudaEventDestroy(a->start);
    free(a);
    return NULL;
}

extern "C" const vp_tensor *vp_cuda_ahead_tensor(vp_cuda_ahead *a)
{
    if (!a) return vp_error("cuda: no input uploaded ahead"), (const vp_tensor *)NULL;
    CUDA_CHECK(cudaSetDevice(a->c->dev));
    if (!a->waited) CUDA_CHECK(cudaStreamWaitEvent(a->c->stream, a->done, 0));
    a->waited = 1;
    return &a->t;
fail:
    return NULL;
}

extern "C" void vp_cuda_ahead_free(vp_cuda_ahead **ap)
{
    if (!ap || !*ap) return;
    vp_cuda_ahead *a = *ap;
    const int dev = a->c->dev;
    cudaError_t e = cudaSetDevice(dev);
    // the compute stream waits for the copy (when it did not already), then frees the memory in
    // its own order: after every kernel queued there that reads it, whichever stream the pool
    // hands it to next
    if (e == cudaSuccess && !a->waited) e = cudaStreamWaitEvent(a->c->stream, a->done, 0);
    if (e == cudaSuccess) e = cudaFreeAsync(a->t.data, a->c->stream);
    if (e == cudaSuccess) e = cudaEventSynchronize(a->done); // the host buffer may be released after this
    if (e != cudaSuccess) vp_cuda_report(__FILE__, __LINE__, "cudaFreeAsync(the input uploaded ahead)", cudaGetErrorName(e), cudaGetErrorString(e));
    if (a->start) {
        fprintf(stderr, "%s: cuda:%d: trace: copy %s %.3f..%.3f ms\n", vp_progname, dev, a->label, trace_ms(dev, a->start), trace_ms(dev, a->done));
        cudaEventDestroy(a->start);
    }
    cudaEventDestroy(a->done);
    free(a);
    *ap = NULL;
}

struct vp_cuda_span {
    int dev;
    cudaEvent_t b, e;
};

extern "C" vp_cuda_span *vp_cuda_span_begin(int ordinal)
{
    if (!tracing()) return NULL;
    vp_cuda_ctx *c = copy_ctx(ordinal);
    if (!c) return NULL;
    vp_cuda_span *s = (vp_cuda_span *)vp_calloc(1, sizeof *s);
    s->dev = ordinal;
    if (cudaEventCreateWithFlags(&s->b, cudaEventDefault) != cudaSuccess || cudaEventCreateWithFlags(&s->e, cudaEventDefault) != cudaSuccess ||
        cudaEventRecord(s->b, c->stream) != cudaSuccess) {
        cudaGetLastError();
        free(s);
        return NULL;
    }
    return s;
}

extern "C" void vp_cuda_span_end(vp_cuda_span **sp, const char *label)
{
    if (!sp || !*sp) return;
    vp_cuda_span *s = *sp;
    vp_cuda_ctx *c = vp_cuda_ctx_get(s->dev);
    if (c && cudaSetDevice(s->dev) == cudaSuccess && cudaEventRecord(s->e, c->stream) == cudaSuccess)
        fprintf(stderr, "%s: cuda:%d: trace: %s %.3f..%.3f ms\n", vp_progname, s->dev, label, trace_ms(s->dev, s->b), trace_ms(s->dev, s->e));
    else cudaGetLastError();
    cudaEventDestroy(s->b), cudaEventDestroy(s->e);
    free(s);
    *sp = NULL;
}
