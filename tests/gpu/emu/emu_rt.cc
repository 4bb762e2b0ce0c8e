// tests/gpu/emu/emu_rt.cc - the pretend device of emu_rt.h: device memory is host memory (malloc),
// with a budget (EMU_DEVICE_MIB, default 4096, or EMU_DEVICE_KIB) past which allocations fail as cudaMalloc does, so
// the out-of-memory paths run; and the convolution core on the reference ops (cuDNN's stand-in).
#include "emu_rt.h"

#include <map>
#include <stdio.h>
#include <unistd.h>
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
    for (size_t r = 0; r < h; r++) memcpy((char *)d + r * dp, (const char *)s + r * sp, w);
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

int vp_cuda_conv_run(const vp_nn_backend *be, const char *op, int kind, const vp_tensor *I, const vp_tensor *W, const vp_tensor *O,
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
