// tests/gpu/emu/emu_rt.cc - the pretend device of emu_rt.h: device memory is host memory (malloc),
// with a budget (EMU_DEVICE_MIB, default 4096, or EMU_DEVICE_KIB) past which allocations fail as cudaMalloc does, so
// the out-of-memory paths run; stream capture and CUDA graphs (see emu_rt.h); and the convolution
// core on the reference ops (cuDNN's stand-in). lib/cuda/nn_cuda_graph.cu (no kernels) is compiled
// in here, at the end, so every emulated build that links emu_rt.o has it.
#include "emu_rt.h"

#include <map>
#include <stdio.h>
#include <unistd.h>
#include <memory>
#include <mutex>

extern "C" {
#include "nn_grad.h"
}

emu_dim blockIdx, blockDim, gridDim;
thread_local emu_dim threadIdx;
std::barrier<> *emu_bar;

static std::map<void *, size_t> sizes;
static std::map<void *, size_t> host_sizes; // pinned host memory (cudaHostAlloc): not in the device budget
static size_t used;
static std::mutex mu;
static int bad_frees;

// at exit: what is still allocated (the backend keeps its scratch and two pinned buffers; a
// growing count across forward passes, or any bad free, is a bug)
static struct report {
    ~report()
    {
        fprintf(stderr, "emu: %zu device allocations live at exit (%.1f MiB), %d bad frees, %zu pinned host allocations live\n",
                sizes.size() + host_sizes.size(), used / 1048576.0, bad_frees, host_sizes.size());
        if (bad_frees) _exit(1);
    }
} at_exit;

static size_t budget()
{
    const char *k = getenv("EMU_DEVICE_KIB"); // finer, for out-of-memory tests of small cases
    if (k) return (size_t)atol(k) << 10;
    const char *e = getenv("EMU_DEVICE_MIB");
    return (size_t)(e ? atol(e) : 4096) << 20;
}

cudaError_t emu_malloc(void **p, size_t n)
{
    std::lock_guard<std::mutex> g(mu);
    if (used + n > budget()) return cudaErrorMemoryAllocation;
    *p = calloc(1, n ? n : 1);
    if (!*p) return cudaErrorMemoryAllocation;
    sizes[*p] = n, used += n;
    return cudaSuccess;
}

// pinned host memory: host memory that is not counted against the device's budget (as on a real
// machine), but is tracked like device memory (leaks and bad frees)
cudaError_t emu_host_alloc(void **p, size_t n)
{
    std::lock_guard<std::mutex> g(mu);
    *p = calloc(1, n ? n : 1);
    if (!*p) return cudaErrorMemoryAllocation;
    host_sizes[*p] = n;
    return cudaSuccess;
}

cudaError_t emu_free(void *p)
{
    std::lock_guard<std::mutex> g(mu);
    auto h = host_sizes.find(p);
    if (h != host_sizes.end()) {
        free(p);
        host_sizes.erase(h);
        return cudaSuccess;
    }
    auto it = sizes.find(p);
    if (it == sizes.end()) {
        if (p) bad_frees++; // a double free or a foreign pointer
        return p ? cudaErrorInvalidValue : cudaSuccess;
    }
    used -= it->second;
    sizes.erase(it);
    free(p);
    return cudaSuccess;
}

cudaError_t emu_ptr_attr(cudaPointerAttributes *a, const void *p)
{
    std::lock_guard<std::mutex> g(mu);
    memset(a, 0, sizeof *a);
    a->type = sizes.count((void *)p) ? cudaMemoryTypeDevice : host_sizes.count((void *)p) ? cudaMemoryTypeHost : cudaMemoryTypeUnregistered;
    return cudaSuccess;
}

cudaError_t emu_mem_info(size_t *f, size_t *t)
{
    *t = budget(), *f = budget() - used;
    return cudaSuccess;
}

cudaError_t emu_props(cudaDeviceProp *p, int d)
{
    memset(p, 0, sizeof *p);
    strcpy(p->name, "CPU emulation");
    p->major = 0, p->multiProcessorCount = 1, p->totalGlobalMem = budget();
    return cudaSuccess;
}

cudaError_t emu_memcpy2d(void *d, size_t dp, const void *s, size_t sp, size_t w, size_t h)
{
    if (emu_cap) {
        if (emu_cap->invalid) return cudaErrorStreamCaptureInvalidated;
        emu_cap->ops.push_back([=]() { emu_memcpy2d(d, dp, s, sp, w, h); });
        return cudaSuccess;
    }
    for (size_t r = 0; r < h; r++) memcpy((char *)d + r * dp, (const char *)s + r * sp, w);
    return cudaSuccess;
}

// ---- stream capture and graphs

// a call CUDA refuses inside a capture (cudaStreamCaptureModeThreadLocal: on the capturing thread)
static cudaError_t refused()
{
    emu_cap->invalid = 1;
    return cudaErrorStreamCaptureUnsupported;
}

cudaError_t emu_sync_malloc(void **p, size_t n) { return emu_cap ? (*p = NULL, refused()) : emu_malloc(p, n); }
cudaError_t emu_sync_free(void *p) { return emu_cap ? refused() : emu_free(p); }
cudaError_t emu_sync_host_alloc(void **p, size_t n) { return emu_cap ? (*p = NULL, refused()) : emu_host_alloc(p, n); }
cudaError_t emu_sync(void) { return emu_cap ? refused() : cudaSuccess; }

// inside a capture: a graph memory node -- the memory is the graph's (allocated now, at a fixed
// address, released when the graph is destroyed), so a replay allocates nothing
cudaError_t emu_malloc_async(void **p, size_t n)
{
    if (emu_cap && emu_cap->invalid) return *p = NULL, cudaErrorStreamCaptureInvalidated;
    const cudaError_t e = emu_malloc(p, n);
    if (e == cudaSuccess && emu_cap) emu_cap->owned.push_back(*p);
    return e;
}

// inside a capture: the graph's own memory stays until the graph is destroyed; memory from outside
// is freed when the graph runs (as a free node does)
cudaError_t emu_free_async(void *p)
{
    if (!emu_cap) return emu_free(p);
    if (emu_cap->invalid) return cudaErrorStreamCaptureInvalidated;
    for (void *o : emu_cap->owned)
        if (o == p) return emu_cap->freed++, cudaSuccess;
    emu_cap->ops.push_back([p]() { emu_free(p); });
    return cudaSuccess;
}

cudaError_t emu_memcpy(void *d, const void *s, size_t n)
{
    if (!emu_cap) return memcpy(d, s, n), cudaSuccess;
    if (emu_cap->invalid) return cudaErrorStreamCaptureInvalidated;
    emu_cap->ops.push_back([=]() { memcpy(d, s, n); });
    return cudaSuccess;
}

cudaError_t emu_memset(void *p, int v, size_t n)
{
    if (!emu_cap) return memset(p, v, n), cudaSuccess;
    if (emu_cap->invalid) return cudaErrorStreamCaptureInvalidated;
    emu_cap->ops.push_back([=]() { memset(p, v, n); });
    return cudaSuccess;
}

// a graph and its executable graphs share the recorded operations and the graph's memory
struct emu_graph_data {
    std::vector<std::function<void()>> ops;
    std::vector<void *> owned;
    size_t unfreed = 0; // allocations the graph does not free: CUDA refuses to launch it again
    long launches = 0;
    ~emu_graph_data()
    {
        for (void *p : owned) emu_free(p);
    }
};
typedef std::shared_ptr<emu_graph_data> emu_graph_ref;

static int graph_fail(const char *what)
{
    const char *e = getenv("EMU_GRAPH_FAIL");
    return e && !strcmp(e, what);
}

cudaError_t emu_begin_capture(void)
{
    if (emu_cap) return cudaErrorIllegalState;
    emu_cap = new emu_capture;
    return cudaSuccess;
}

cudaError_t emu_end_capture(cudaGraph_t *g)
{
    if (!emu_cap) return cudaErrorIllegalState;
    emu_capture *cap = emu_cap;
    emu_cap = nullptr;
    auto d = std::make_shared<emu_graph_data>();
    d->unfreed = cap->owned.size() - cap->freed;
    d->ops = std::move(cap->ops), d->owned = std::move(cap->owned);
    const int invalid = cap->invalid;
    delete cap;
    if (invalid) { // CUDA discards it: its memory too
        *g = NULL;
        return cudaErrorStreamCaptureInvalidated;
    }
    *g = (cudaGraph_t) new emu_graph_ref(d);
    return cudaSuccess;
}

cudaError_t emu_graph_instantiate(cudaGraphExec_t *e, cudaGraph_t g)
{
    if (emu_cap) return refused();
    if (graph_fail("instantiate")) return *e = NULL, cudaErrorNotSupported;
    *e = (cudaGraphExec_t) new emu_graph_ref(*(emu_graph_ref *)g);
    return cudaSuccess;
}

cudaError_t emu_graph_launch(cudaGraphExec_t e)
{
    if (emu_cap) return refused();
    emu_graph_data &d = **(emu_graph_ref *)e;
    if (d.unfreed && d.launches) return cudaErrorInvalidValue; // its allocations are still live
    d.launches++;
    for (auto &op : d.ops) op();
    return cudaSuccess;
}

cudaError_t emu_graph_nodes(cudaGraph_t g, size_t *n)
{
    *n = (*(emu_graph_ref *)g)->ops.size();
    return cudaSuccess;
}

cudaError_t emu_graph_destroy(cudaGraph_t g)
{
    delete (emu_graph_ref *)g;
    return cudaSuccess;
}

cudaError_t emu_graph_exec_destroy(cudaGraphExec_t e)
{
    delete (emu_graph_ref *)e;
    return cudaSuccess;
}

// ---- the convolution core: the reference ops on NCDHW copies

static vp_tensor *ncdhw_copy(const vp_tensor *t, const float *data, int l)
{
    vp_tensor *c = vp_tensor_new(t->ndim, t->shape);
    const int64_t n = vp_tensor_numel(t);
    if (l && t->ndim == 5) {
        const int64_t N = t->shape[0], C = t->shape[1], S = n / (N * C);
        for (int64_t a = 0; a < N; a++)
            for (int64_t k = 0; k < C; k++)
                for (int64_t s = 0; s < S; s++) c->data[(a * C + k) * S + s] = data[(a * S + s) * C + k];
    } else memcpy(c->data, data, (size_t)n * 4);
    return c;
}

static void store(const vp_tensor *c, float *data, int l)
{
    const int64_t n = vp_tensor_numel(c);
    if (l && c->ndim == 5) {
        const int64_t N = c->shape[0], C = c->shape[1], S = n / (N * C);
        for (int64_t a = 0; a < N; a++)
            for (int64_t k = 0; k < C; k++)
                for (int64_t s = 0; s < S; s++) data[(a * S + s) * C + k] = c->data[(a * C + k) * S + s];
    } else memcpy(data, c->data, (size_t)n * 4);
}

static int conv_now(const vp_nn_backend *be, const char *op, int kind, const vp_tensor *I, const vp_tensor *W, const vp_tensor *O,
                    const vp_tensor *bias, const vp_conv3d_params *p);

int vp_cuda_conv_run(const vp_nn_backend *be, const char *op, int kind, const vp_tensor *I, const vp_tensor *W, const vp_tensor *O,
                     const vp_tensor *bias, const vp_conv3d_params *p)
{
    if (!emu_cap) return conv_now(be, op, kind, I, W, O, bias, p);
    if (emu_cap->invalid || graph_fail("conv")) { // as a cuDNN call that refuses the capture (CUDNN_CHECK)
        emu_cap->invalid = 1;
        vp_cuda_report(__FILE__, __LINE__, "cudnnConvolutionForward(...)", "cudnn", "CUDNN_STATUS_NOT_SUPPORTED (emulated: refused inside a capture)");
        return -1;
    }
    // recorded with copies of the tensor headers and parameters (the caller's are gone at the replay)
    const vp_tensor i = *I, w = *W, o = *O, b = bias ? *bias : vp_tensor{};
    const vp_conv3d_params q = *p;
    const int has_b = bias != NULL;
    emu_cap->ops.push_back([=]() { conv_now(be, op, kind, &i, &w, &o, has_b ? &b : NULL, &q); });
    return 0;
}

static int conv_now(const vp_nn_backend *be, const char *op, int kind, const vp_tensor *I, const vp_tensor *W, const vp_tensor *O,
                    const vp_tensor *bias, const vp_conv3d_params *p)
{
    vp_cuda_ctx *c = ctx_of(be);
    const int outi = kind == VP_CONV_FWD ? 2 : kind == VP_CONV_BWD_DATA ? 0 : 1;
    const vp_tensor *ts[3] = {I, W, O};
    if ((kind != VP_CONV_BWD_FILTER && I->data == O->data) || W->data == I->data || W->data == O->data)
        return vp_error("%s: in-place use is not supported", op);
    const int l = vp_cu_op_layout3(op, I, O);
    if (l < 0) return -1;
    vp_stage st;
    vp_stage_init(&st, c, op, l);
    const float *f[3];
    float *fout = NULL;
    vp_tensor *h[3] = {NULL, NULL, NULL};
    int rc = -1;
    for (int i = 0; i < 3; i++) {
        if (i == outi) {
            if (i == 1) st.layout = VP_CUDA_NCDHW;
            fout = vp_stage_out(&st, (vp_tensor *)ts[i]);
            st.layout = l;
            if (!(f[i] = fout)) goto out;
        } else if (!(f[i] = i == 1 ? vp_stage_vec(&st, ts[i]) : vp_stage_in(&st, ts[i]))) {
            goto out;
        }
        h[i] = ncdhw_copy(ts[i], f[i], i == 1 ? 0 : l);
    }
    if (kind == VP_CONV_FWD) {
        if (vp_nn_ref_conv3d(h[0], h[1], NULL, p, h[2])) goto out;
    } else if (kind == VP_CONV_BWD_DATA) {
        vp_conv3d_params q = *p;
        for (int a = 0; a < 3; a++) q.out_pad[a] = (int)(I->shape[2 + a] - ((O->shape[2 + a] - 1) * p->stride[a] - 2 * p->pad[a] + W->shape[2 + a]));
        if (vp_nn_ref_conv_transpose3d(h[2], h[1], NULL, &q, h[0])) goto out;
    } else {
        if (vp_nn_ref_conv3d_bwd_weight(h[0], h[2], p, h[1], NULL)) goto out;
    }
    store(h[outi], fout, outi == 1 ? 0 : l);
    if (bias && kind != VP_CONV_BWD_FILTER) {
        const vp_tensor *out = ts[outi];
        const float *db = vp_stage_vec(&st, bias);
        if (!db || vp_k_bias(c, fout, db, out->shape[0], out->shape[1], out->shape[2] * out->shape[3] * out->shape[4], l)) goto out;
    }
    rc = 0;
out:
    for (int i = 0; i < 3; i++) vp_tensor_free(&h[i]);
    return vp_stage_finish(&st, rc);
}

// the graph holder of lib/cuda (no kernels: nothing for prep.py to do; its include of nn_cuda_int.h is
// the one emu_rt.h made already)
#include "../../../lib/cuda/nn_cuda_graph.cu"
