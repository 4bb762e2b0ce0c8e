// nn_cuda.cu - the CUDA backend (see nn_cuda.h): device contexts, backends per (device, math) and
// their names, errors, layouts, staging of host tensors for the ops. Device tensors, pinned memory
// and copies are in nn_cuda_mem.cu, the ops in nn_cuda_ops.cu, convolutions in nn_cuda_conv.cu,
// kernels in nn_cuda_kernels*.cu.
#include "nn_cuda_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int device_failed; // a CUDA/cuDNN call failed (for vp_cuda_exit_code)

void vp_cuda_report(const char *file, int line, const char *call, const char *name, const char *why)
{
    const char *base = strrchr(file, '/');
    device_failed = 1;
    if (!strcmp(name, "cudaErrorMemoryAllocation")) {
        size_t fr = 0, tot = 0;
        cudaMemGetInfo(&fr, &tot);
        cudaGetLastError(); // an allocation failure is not sticky: clear it
        vp_error("cuda: out of device memory (%.1f MiB free of %.1f MiB): %s:%d: %s", fr / 1048576.0, tot / 1048576.0,
                 base ? base + 1 : file, line, call);
        return;
    }
    vp_error("cuda: %s:%d: %s: %s (%s)", base ? base + 1 : file, line, call, why, name);
}

extern "C" int vp_cuda_exit_code(int fallback) { return device_failed ? VP_ERR_DEVICE : fallback; }

int vp_cuda_failed_swap(int v)
{
    const int old = device_failed;
    device_failed = v;
    return old;
}

extern "C" int vp_cuda_built(void) { return 1; }

extern "C" int vp_cuda_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); // clear the sticky "no device" error
        return 0;
    }
    return n;
}

// ---- contexts, one per device, and backends, one per (device, math), created on first use

static vp_cuda_ctx ctxs[VP_CUDA_MAXDEV];
static int ctx_ready[VP_CUDA_MAXDEV];
static vp_cuda_be bctx[VP_CUDA_MAXDEV][VP_CUDA_MATH_COUNT];
static vp_nn_backend backends[VP_CUDA_MAXDEV][VP_CUDA_MATH_COUNT];
static char names[VP_CUDA_MAXDEV][VP_CUDA_MATH_COUNT][24];
static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static const char *const math_names[VP_CUDA_MATH_COUNT] = {"f32", "tf32", "f16", "bf16"};

vp_cuda_ctx *vp_cuda_ctx_get(int dev) { return dev >= 0 && dev < VP_CUDA_MAXDEV && ctx_ready[dev] ? &ctxs[dev] : NULL; }

void *vp_cuda_scratch(vp_cuda_ctx *c, size_t bytes)
{
    if (bytes <= c->scratch_bytes) return c->scratch;
    if (c->scratch) CUDA_CHECK(cudaFreeAsync(c->scratch, c->stream));
    c->scratch = NULL, c->scratch_bytes = 0;
    CUDA_CHECK(cudaMallocAsync(&c->scratch, bytes, c->stream));
    c->scratch_bytes = bytes;
    return c->scratch;
fail:
    vp_error("cuda: cannot allocate %.1f MiB of scratch", bytes / 1048576.0);
    return NULL;
}

void *vp_cuda_tmp(vp_cuda_ctx *c, size_t bytes, const char *what)
{
    void *p = NULL;
    CUDA_CHECK(cudaMallocAsync(&p, bytes ? bytes : 4, c->stream));
    return p;
fail:
    vp_error("cuda: cannot allocate %.1f MiB for %s", bytes / 1048576.0, what);
    return NULL;
}

// ---- layouts

void vp_cu_set_layout(vp_tensor *t, int l)
{
    const int64_t *s = t->shape;
    if (l == VP_CUDA_NDHWC && t->ndim == 5) {
        t->stride[1] = 1;
        t->stride[4] = s[1];
        t->stride[3] = s[4] * s[1];
        t->stride[2] = s[3] * s[4] * s[1];
        t->stride[0] = s[2] * s[3] * s[4] * s[1];
    } else {
        int64_t st = 1;
        for (int i = t->ndim - 1; i >= 0; i--) t->stride[i] = st, st *= s[i];
    }
}

vp_tensor vp_cu_logical(const vp_tensor *t)
{
    vp_tensor u = *t;
    vp_cu_set_layout(&u, VP_CUDA_NCDHW);
    return u;
}

int vp_cu_is(const vp_tensor *t, int l)
{
    vp_tensor u = *t;
    vp_cu_set_layout(&u, l);
    for (int i = 0; i < t->ndim; i++)
        if (t->shape[i] != 1 && t->stride[i] != u.stride[i]) return 0;
    return 1;
}

int vp_cu_layout(const char *op, const char *what, const vp_tensor *t)
{
    if (!t || !t->data) return vp_error("%s: %s: missing tensor", op, what);
    if (vp_cu_is(t, VP_CUDA_NCDHW)) return VP_CUDA_NCDHW;
    if (t->device > 0 && t->ndim == 5 && vp_cu_is(t, VP_CUDA_NDHWC)) return VP_CUDA_NDHWC;
    return vp_error("%s: %s: neither contiguous NCDHW nor (on the device) NDHWC", op, what);
}

int vp_cu_op_layout(const char *op, int n, const vp_tensor *const *ts)
{
    int l = VP_CUDA_NCDHW;
    for (int i = 0; i < n; i++) {
        if (!ts[i]) continue;
        int li = vp_cu_layout(op, i == 0 ? "output" : "input", ts[i]);
        if (li < 0) return -1;
        if (li == VP_CUDA_NDHWC) l = VP_CUDA_NDHWC;
    }
    return l;
}

extern "C" int vp_cuda_tensor_layout(const vp_tensor *t)
{
    if (!t || t->device < 1) return -1;
    if (vp_cu_is(t, VP_CUDA_NCDHW)) return VP_CUDA_NCDHW;
    return t->ndim == 5 && vp_cu_is(t, VP_CUDA_NDHWC) ? VP_CUDA_NDHWC : -1;
}

// ---- staging

void vp_stage_init(vp_stage *s, vp_cuda_ctx *c, const char *op, int layout) { s->c = c, s->op = op, s->layout = layout, s->n = 0; }

static float *stage_alloc(vp_stage *s, const float *host, size_t bytes, int is_out)
{
    if (s->n == (int)(sizeof s->t / sizeof s->t[0])) {
        vp_error("%s: too many host tensors staged in one op", s->op);
        return NULL;
    }
    float *d = (float *)vp_cuda_tmp(s->c, bytes, "a staged host tensor");
    if (!d) return NULL;
    s->t[s->n].host = host, s->t[s->n].dev = d, s->t[s->n].bytes = bytes, s->t[s->n].is_out = is_out;
    s->n++;
    return d;
}

const float *vp_stage_vec(vp_stage *s, const vp_tensor *t)
{
    if (!t) return NULL;
    if (t->device > 0) return t->data;
    size_t bytes = (size_t)vp_tensor_numel(t) * sizeof(float);
    float *d = stage_alloc(s, t->data, bytes, 0);
    if (!d) return NULL;
    CUDA_CHECK(cudaMemcpyAsync(d, t->data, bytes, cudaMemcpyHostToDevice, s->c->stream));
    return d;
fail:
    return NULL;
}

const float *vp_stage_in(vp_stage *s, const vp_tensor *t)
{
    if (!t) return NULL;
    int l = vp_cu_layout(s->op, "input", t);
    if (l < 0) return NULL;
    if (t->device > 0) {
        if (!vp_cu_is(t, s->layout)) {
            vp_error("%s: an input is %s, the op works in %s (one layout per op)", s->op, l ? "NDHWC" : "NCDHW",
                     s->layout ? "NDHWC" : "NCDHW");
            return NULL;
        }
        return t->data;
    }
    const float *d = vp_stage_vec(s, t);
    if (!d || vp_cu_is(t, s->layout)) return d; // NCDHW, or the same bytes (one channel)
    // host NCDHW into the op's NDHWC: permute into a second temporary
    size_t bytes = (size_t)vp_tensor_numel(t) * sizeof(float);
    float *p = stage_alloc(s, NULL, bytes, 0);
    const int64_t S = t->shape[2] * t->shape[3] * t->shape[4];
    if (!p || vp_k_convert(s->c, d, VP_DT_F32, p, VP_DT_F32, t->shape[0], t->shape[1], S)) return NULL;
    return p;
}

float *vp_stage_out(vp_stage *s, vp_tensor *y)
{
    int l = vp_cu_layout(s->op, "output", y);
    if (l < 0) return NULL;
    if (y->device > 0) {
        if (!vp_cu_is(y, s->layout)) {
            vp_error("%s: the output's layout is not the op's (one layout per op)", s->op);
            return NULL;
        }
        return y->data;
    }
    if (!vp_cu_is(y, s->layout)) {
        vp_error("%s: a host output with NDHWC device inputs (download it with vp_cuda_download)", s->op);
        return NULL;
    }
    for (int i = 0; i < s->n; i++) // in place on a host tensor: reuse its staged copy
        if (s->t[i].host == y->data) return s->t[i].is_out = 1, s->t[i].dev;
    return stage_alloc(s, y->data, (size_t)vp_tensor_numel(y) * sizeof(float), 1);
}

int vp_stage_finish(vp_stage *s, int rc)
{
    int i = 0;
    for (; i < s->n; i++) {
        if (rc == 0 && s->t[i].is_out)
            CUDA_CHECK(cudaMemcpyAsync((void *)s->t[i].host, s->t[i].dev, s->t[i].bytes, cudaMemcpyDeviceToHost, s->c->stream));
        CUDA_CHECK(cudaFreeAsync(s->t[i].dev, s->c->stream));
    }
    if (s->n) CUDA_CHECK(cudaStreamSynchronize(s->c->stream)); // host outputs are ready on return
    s->n = 0;
    return rc;
fail:
    for (i++; i < s->n; i++) cudaFreeAsync(s->t[i].dev, s->c->stream);
    s->n = 0;
    return -1;
}

// ---- device tensors

int vp_cu_ordinal_ok(int ordinal)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        cudaGetLastError();
        device_failed = 1;
        return vp_error("cuda:%d: no CUDA device (%s: %s)", ordinal, cudaGetErrorName(e), cudaGetErrorString(e));
    }
    device_failed |= n == 0 || ordinal < 0 || ordinal >= n;
    if (n == 0) return vp_error("cuda:%d: no CUDA device", ordinal);
    if (ordinal < 0 || ordinal >= n || ordinal >= VP_CUDA_MAXDEV) return vp_error("cuda:%d: no such device (%d present)", ordinal, n);
    return 0;
}

extern "C" int vp_cuda_synchronize(int ordinal)
{
    if (vp_cu_ordinal_ok(ordinal)) return -1;
    CUDA_CHECK(cudaSetDevice(ordinal));
    if (ctx_ready[ordinal]) CUDA_CHECK(cudaStreamSynchronize(ctxs[ordinal].stream));
    CUDA_CHECK(cudaDeviceSynchronize());
    return 0;
fail:
    return -1;
}

extern "C" const char *vp_cuda_describe(int ordinal, char *buf, size_t n)
{
    cudaDeviceProp p;
    if (vp_cu_ordinal_ok(ordinal) || cudaGetDeviceProperties(&p, ordinal) != cudaSuccess) {
        snprintf(buf, n, "no CUDA device %d", ordinal);
        return buf;
    }
    size_t v = cudnnGetVersion();
    snprintf(buf, n, "%s, sm_%d%d, %d SMs, %.1f GiB, cuDNN %zu.%zu.%zu", p.name, p.major, p.minor, p.multiProcessorCount,
             (double)p.totalGlobalMem / (1024.0 * 1024 * 1024), v / 10000, (v / 100) % 100, v % 100);
    return buf;
}

// ---- backends

static int init_ctx(int ordinal)
{
    vp_cuda_ctx *c = &ctxs[ordinal];
    cudaMemPool_t pool;
    uint64_t keep = UINT64_MAX; // keep freed stream-ordered memory in the pool (no re-allocation per op)
    c->dev = ordinal;
    CUDA_CHECK(cudaSetDevice(ordinal));
    CUDA_CHECK(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    CUDNN_CHECK(cudnnCreate(&c->dnn));
    CUDNN_CHECK(cudnnSetStream(c->dnn, c->stream));
    CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, ordinal));
    CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));
    ctx_ready[ordinal] = 1;
    return 0;
fail:
    return -1;
}

extern "C" const vp_nn_backend *vp_nn_backend_cuda_math(int ordinal, vp_cuda_math math)
{
    if ((int)math < 0 || math >= VP_CUDA_MATH_COUNT) return vp_error("cuda:%d: unknown math %d", ordinal, (int)math), (const vp_nn_backend *)NULL;
    if (vp_cu_ordinal_ok(ordinal)) return NULL;
    pthread_mutex_lock(&init_lock);
    int rc = ctx_ready[ordinal] ? 0 : init_ctx(ordinal);
    vp_nn_backend *b = &backends[ordinal][math];
    if (!rc && !b->ctx) {
        bctx[ordinal][math].c = &ctxs[ordinal];
        bctx[ordinal][math].math = math;
        if (math == VP_CUDA_F32) snprintf(names[ordinal][math], sizeof names[ordinal][math], "cuda:%d", ordinal);
        else snprintf(names[ordinal][math], sizeof names[ordinal][math], "cuda:%d:%s", ordinal, math_names[math]);
        b->name = names[ordinal][math];
        vp_cuda_fill_ops(b);
        b->ctx = &bctx[ordinal][math];
    }
    pthread_mutex_unlock(&init_lock);
    if (rc) {
        device_failed = 1;
        return vp_error("cuda:%d: backend initialisation failed", ordinal), (const vp_nn_backend *)NULL;
    }
    return b;
}

static int parse_math(const char *s, vp_cuda_math *m)
{
    for (int i = 0; i < VP_CUDA_MATH_COUNT; i++)
        if (!strcmp(s, math_names[i])) return *m = (vp_cuda_math)i, 0;
    return -1;
}

extern "C" const vp_nn_backend *vp_nn_backend_cuda(int ordinal)
{
    vp_cuda_math m = VP_CUDA_F32;
    const char *env = getenv("VP_CUDA_MATH");
    if (env && *env && parse_math(env, &m))
        return vp_error("VP_CUDA_MATH=%s: expected f32, tf32, f16 or bf16", env), (const vp_nn_backend *)NULL;
    return vp_nn_backend_cuda_math(ordinal, m);
}

extern "C" const vp_nn_backend *vp_nn_backend_cuda_named(const char *name)
{
    const vp_nn_backend *fail_ = NULL;
    if (strncmp(name, "cuda", 4) || (name[4] && name[4] != ':')) return vp_error("backend '%s': not a cuda backend", name), fail_;
    if (!name[4]) return vp_nn_backend_cuda(0);
    char *end = NULL;
    long ord = strtol(name + 5, &end, 10);
    if (end == name + 5 || ord < 0 || ord > 255 || (*end && *end != ':'))
        return vp_error("backend '%s': expected cuda, cuda:N or cuda:N:MATH", name), fail_;
    if (!*end) return vp_nn_backend_cuda((int)ord);
    vp_cuda_math m;
    if (parse_math(end + 1, &m)) return vp_error("backend '%s': math '%s': expected f32, tf32, f16 or bf16", name, end + 1), fail_;
    return vp_nn_backend_cuda_math((int)ord, m);
}

extern "C" const char *vp_cuda_math_name(const vp_nn_backend *be) { return math_names[math_of(be)]; }
