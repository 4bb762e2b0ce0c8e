// nn_cuda.cu - the CUDA backend (see nn_cuda.h): device contexts, device tensors, staging of host
// tensors, cuDNN convolutions (legacy Nd API, NCDHW, FMA math, deterministic algorithms, chosen
// once per shape), and the backend struct. Kernels are in nn_cuda_kernels.cu.
#include "nn_cuda_int.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

// the Nd convolution API is deprecated in cuDNN 9 in favour of the graph API, but complete and stable
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#pragma nv_diag_suppress 1444

void vp_cuda_report(const char *file, int line, const char *call, const char *name, const char *why)
{
    const char *base = strrchr(file, '/');
    vp_error("cuda: %s:%d: %s: %s (%s)", base ? base + 1 : file, line, call, why, name);
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

// ---- contexts, one per device, created on first use

#define MAXDEV 16
static vp_cuda_ctx ctxs[MAXDEV];
static vp_nn_backend backends[MAXDEV];
static char names[MAXDEV][16];
static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;

static vp_cuda_ctx *ctx_of(const vp_nn_backend *be) { return (vp_cuda_ctx *)be->ctx; }

void *vp_cuda_scratch(vp_cuda_ctx *c, size_t bytes)
{
    if (bytes <= c->scratch_bytes) return c->scratch;
    if (c->scratch) CUDA_CHECK(cudaFreeAsync(c->scratch, c->stream));
    c->scratch = NULL, c->scratch_bytes = 0;
    CUDA_CHECK(cudaMallocAsync(&c->scratch, bytes, c->stream));
    c->scratch_bytes = bytes;
    return c->scratch;
fail:
    vp_error("cuda: out of device memory for %zu bytes of scratch", bytes);
    return NULL;
}

// ---- staging

void vp_stage_init(vp_stage *s, vp_cuda_ctx *c) { s->c = c, s->n = 0; }

static float *stage_alloc(vp_stage *s, const float *host, size_t bytes, int is_out)
{
    float *d = NULL;
    if (s->n == (int)(sizeof s->t / sizeof s->t[0])) {
        vp_error("cuda: too many host tensors staged in one op");
        return NULL;
    }
    CUDA_CHECK(cudaMallocAsync((void **)&d, bytes ? bytes : 4, s->c->stream));
    s->t[s->n].host = host, s->t[s->n].dev = d, s->t[s->n].bytes = bytes, s->t[s->n].is_out = is_out;
    s->n++;
    return d;
fail:
    vp_error("cuda: out of device memory staging %zu bytes", bytes);
    return NULL;
}

const float *vp_stage_in(vp_stage *s, const vp_tensor *t)
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

float *vp_stage_out(vp_stage *s, vp_tensor *y)
{
    if (y->device > 0) return y->data;
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

static int ordinal_ok(int ordinal)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return vp_error("cuda:%d: no CUDA device (%s: %s)", ordinal, cudaGetErrorName(e), cudaGetErrorString(e));
    }
    if (n == 0) return vp_error("cuda:%d: no CUDA device", ordinal);
    if (ordinal < 0 || ordinal >= n || ordinal >= MAXDEV) return vp_error("cuda:%d: no such device (%d present)", ordinal, n);
    return 0;
}

extern "C" vp_tensor *vp_cuda_tensor_new(int ordinal, int ndim, const int64_t *shape)
{
    if (ordinal_ok(ordinal)) return NULL;
    vp_tensor *t = (vp_tensor *)vp_calloc(1, sizeof *t);
    size_t bytes;
    *t = vp_tensor_view(NULL, ndim, shape); // shape, strides, overflow checks
    bytes = (size_t)vp_tensor_numel(t) * sizeof(float);
    CUDA_CHECK(cudaSetDevice(ordinal));
    CUDA_CHECK(cudaMalloc((void **)&t->data, bytes ? bytes : 4));
    t->device = ordinal + 1;
    t->owns = 0;
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

extern "C" void vp_cuda_tensor_free(vp_tensor **t)
{
    if (!t || !*t) return;
    if ((*t)->device > 0 && (*t)->data) {
        cudaSetDevice((*t)->device - 1);
        cudaError_t e = cudaFree((*t)->data);
        if (e != cudaSuccess) vp_cuda_report(__FILE__, __LINE__, "cudaFree(t->data)", cudaGetErrorName(e), cudaGetErrorString(e));
    }
    free(*t);
    *t = NULL;
}

static int copy(vp_tensor *dst, const vp_tensor *src, cudaMemcpyKind kind, const char *what)
{
    char s[96], u[96];
    if (!vp_tensor_same_shape(dst, src) || !vp_tensor_is_contiguous(dst) || !vp_tensor_is_contiguous(src))
        return vp_error("cuda: %s: shapes %s and %s differ or are not contiguous", what, vp_tensor_shape_str(dst, s, sizeof s),
                        vp_tensor_shape_str(src, u, sizeof u));
    int dev = (kind == cudaMemcpyHostToDevice ? dst->device : src->device) - 1;
    if (dev < 0 || (kind == cudaMemcpyHostToDevice ? src->device : dst->device) != 0)
        return vp_error("cuda: %s: expected one host and one device tensor", what);
    CUDA_CHECK(cudaSetDevice(dev));
    if (ctxs[dev].stream) CUDA_CHECK(cudaStreamSynchronize(ctxs[dev].stream)); // queued work first
    CUDA_CHECK(cudaMemcpy(dst->data, src->data, (size_t)vp_tensor_numel(src) * sizeof(float), kind));
    return 0;
fail:
    return -1;
}

extern "C" int vp_cuda_upload(vp_tensor *dev, const vp_tensor *host) { return copy(dev, host, cudaMemcpyHostToDevice, "upload"); }
extern "C" int vp_cuda_download(vp_tensor *host, const vp_tensor *dev) { return copy(host, dev, cudaMemcpyDeviceToHost, "download"); }

extern "C" int vp_cuda_synchronize(int ordinal)
{
    if (ordinal_ok(ordinal)) return -1;
    CUDA_CHECK(cudaSetDevice(ordinal));
    if (ctxs[ordinal].stream) CUDA_CHECK(cudaStreamSynchronize(ctxs[ordinal].stream));
    CUDA_CHECK(cudaDeviceSynchronize());
    return 0;
fail:
    return -1;
}

extern "C" const char *vp_cuda_describe(int ordinal, char *buf, size_t n)
{
    cudaDeviceProp p;
    if (ordinal_ok(ordinal) || cudaGetDeviceProperties(&p, ordinal) != cudaSuccess) {
        snprintf(buf, n, "no CUDA device %d", ordinal);
        return buf;
    }
    size_t v = cudnnGetVersion();
    snprintf(buf, n, "%s, sm_%d%d, %d SMs, %.1f GiB, cuDNN %zu.%zu.%zu", p.name, p.major, p.minor, p.multiProcessorCount,
             (double)p.totalGlobalMem / (1024.0 * 1024 * 1024), v / 10000, (v / 100) % 100, v % 100);
    return buf;
}

// ---- convolutions (conv_ops.inc keeps this file short)
#include "nn_cuda_conv.inc"

// ---- the backend

static int be_supports(const vp_nn_backend *be, vp_nn_op op) { return op >= 0 && op < VP_NN_OP_COUNT; }

#define STAGED(...)                  \
    vp_stage st;                     \
    vp_stage_init(&st, ctx_of(be));  \
    CUDA_CHECK(cudaSetDevice(ctx_of(be)->dev)); \
    {                                \
        __VA_ARGS__                  \
    }                                \
    return vp_stage_finish(&st, 0);  \
fail:                                \
    return vp_stage_finish(&st, -1);

static int cu_norm_act(const vp_nn_backend *be, const char *op, const vp_tensor *x, int groups, float eps,
                       const vp_tensor *gamma, const vp_tensor *beta, int act, float slope, vp_tensor *y)
{
    if (vp_nn_check_norm(op, x, groups, gamma, beta, y)) return -1;
    if (y->data == x->data && x->device > 0) return vp_error("%s: in-place use is not supported", op);
    STAGED(
        const float *dx = vp_stage_in(&st, x); const float *dg = vp_stage_in(&st, gamma);
        const float *db = vp_stage_in(&st, beta); float *dy = vp_stage_out(&st, y);
        if (!dx || !dy || (gamma && !dg) || (beta && !db)) goto fail;
        if (vp_k_norm(ctx_of(be), dx, dy, x->shape[0], x->shape[1], x->shape[2] * x->shape[3] * x->shape[4], groups, eps,
                      dg, db, act, slope)) goto fail;)
}

extern "C" int vp_cuda_norm_act(const vp_nn_backend *be, const vp_tensor *x, int groups, float eps, const vp_tensor *gamma,
                                const vp_tensor *beta, int act, float slope, vp_tensor *y)
{
    if (act < 0 || act > 2) return vp_error("norm_act: activation %d (0 none, 1 relu, 2 leaky_relu)", act);
    return cu_norm_act(be, "norm_act", x, groups, eps, gamma, beta, act, slope, y);
}

static int cu_gn(const vp_nn_backend *be, const vp_tensor *x, int groups, float eps, const vp_tensor *g, const vp_tensor *b,
                 vp_tensor *y)
{
    return cu_norm_act(be, "group_norm", x, groups, eps, g, b, 0, 0.0f, y);
}

static int cu_in(const vp_nn_backend *be, const vp_tensor *x, float eps, const vp_tensor *g, const vp_tensor *b, vp_tensor *y)
{
    if (vp_nn_check_act("instance_norm", "input", x)) return -1;
    return cu_norm_act(be, "instance_norm", x, (int)x->shape[1], eps, g, b, 0, 0.0f, y);
}

static int cu_act(const vp_nn_backend *be, const char *op, const vp_tensor *x, int act, float slope, vp_tensor *y)
{
    if (vp_nn_check_act(op, "input", x) || vp_nn_check_out(op, y, x->shape)) return -1;
    STAGED(
        const float *dx = vp_stage_in(&st, x); float *dy = vp_stage_out(&st, y);
        if (!dx || !dy || vp_k_act(ctx_of(be), dx, dy, vp_tensor_numel(x), act, slope)) goto fail;)
}

static int cu_relu(const vp_nn_backend *be, const vp_tensor *x, vp_tensor *y) { return cu_act(be, "relu", x, 1, 0.0f, y); }
static int cu_lrelu(const vp_nn_backend *be, const vp_tensor *x, float s, vp_tensor *y) { return cu_act(be, "leaky_relu", x, 2, s, y); }

static int cu_add(const vp_nn_backend *be, const vp_tensor *a, const vp_tensor *b, vp_tensor *y)
{
    char s[96], t[96];
    if (vp_nn_check_act("add", "a", a) || vp_nn_check_act("add", "b", b)) return -1;
    if (!vp_tensor_same_shape(a, b))
        return vp_error("add: shapes %s and %s differ", vp_tensor_shape_str(a, s, sizeof s), vp_tensor_shape_str(b, t, sizeof t));
    if (vp_nn_check_out("add", y, a->shape)) return -1;
    STAGED(
        const float *da = vp_stage_in(&st, a); const float *db = b->data == a->data && !b->device ? da : vp_stage_in(&st, b);
        float *dy = vp_stage_out(&st, y);
        if (!da || !db || !dy || vp_k_add(ctx_of(be), da, db, dy, vp_tensor_numel(a))) goto fail;)
}

static int cu_up(const vp_nn_backend *be, const vp_tensor *x, vp_tensor *y)
{
    if (vp_nn_check_act("upsample_trilinear2x", "input", x)) return -1;
    int64_t os[5] = {x->shape[0], x->shape[1], 2 * x->shape[2], 2 * x->shape[3], 2 * x->shape[4]};
    if (vp_nn_check_out("upsample_trilinear2x", y, os)) return -1;
    STAGED(
        const float *dx = vp_stage_in(&st, x); float *dy = vp_stage_out(&st, y);
        if (!dx || !dy || vp_k_upsample2x(ctx_of(be), dx, dy, x->shape[0] * x->shape[1], x->shape[2], x->shape[3], x->shape[4]))
            goto fail;)
}

static int cu_cat(const vp_nn_backend *be, const vp_tensor *const *xs, int n, vp_tensor *y)
{
    int64_t os[5];
    if (vp_nn_concat_shape(xs, n, os) || vp_nn_check_out("concat", y, os)) return -1;
    const int64_t S = os[2] * os[3] * os[4];
    STAGED(
        float *dy = vp_stage_out(&st, y); if (!dy) goto fail;
        for (int i = 0; i < n; i++) {
            const float *dx = vp_stage_in(&st, xs[i]);
            if (!dx) goto fail;
            int64_t off = 0;
            for (int k = 0; k < i; k++) off += xs[k]->shape[1] * S;
            size_t cs = (size_t)(xs[i]->shape[1] * S) * sizeof(float);
            // one strided copy: os[0] rows of cs bytes, source pitch cs, destination pitch C*S floats
            CUDA_CHECK(cudaMemcpy2DAsync(dy + off, (size_t)(os[1] * S) * sizeof(float), dx, cs, cs, (size_t)os[0],
                                         cudaMemcpyDeviceToDevice, ctx_of(be)->stream));
        })
}

static int cu_smax(const vp_nn_backend *be, const vp_tensor *x, vp_tensor *y)
{
    if (vp_nn_check_act("softmax_c", "input", x) || vp_nn_check_out("softmax_c", y, x->shape)) return -1;
    STAGED(
        const float *dx = vp_stage_in(&st, x); float *dy = vp_stage_out(&st, y);
        if (!dx || !dy || vp_k_softmax(ctx_of(be), dx, dy, x->shape[0], x->shape[1], x->shape[2] * x->shape[3] * x->shape[4]))
            goto fail;)
}

static int cu_amax(const vp_nn_backend *be, const vp_tensor *x, int32_t *out)
{
    if (vp_nn_check_act("argmax_c", "input", x)) return -1;
    const int64_t N = x->shape[0], S = x->shape[2] * x->shape[3] * x->shape[4];
    cudaPointerAttributes pa;
    int32_t *dout = NULL;
    int host_out;
    STAGED(
        CUDA_CHECK(cudaPointerGetAttributes(&pa, out));
        host_out = pa.type != cudaMemoryTypeDevice && pa.type != cudaMemoryTypeManaged;
        const float *dx = vp_stage_in(&st, x); if (!dx) goto fail;
        if (host_out) { // int32 output: staged as a float-sized buffer of the same byte count
            vp_tensor o = vp_tensor_view((float *)out, 1, &N);
            o.shape[0] = N * S, o.stride[0] = 1;
            dout = (int32_t *)vp_stage_out(&st, &o);
        } else dout = out;
        if (!dout || vp_k_argmax(ctx_of(be), dx, dout, N, x->shape[1], S)) goto fail;)
}

static int init_ctx(int ordinal)
{
    vp_cuda_ctx *c = &ctxs[ordinal];
    vp_nn_backend *b = &backends[ordinal];
    c->dev = ordinal;
    CUDA_CHECK(cudaSetDevice(ordinal));
    CUDA_CHECK(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    CUDNN_CHECK(cudnnCreate(&c->dnn));
    CUDNN_CHECK(cudnnSetStream(c->dnn, c->stream));
    snprintf(names[ordinal], sizeof names[ordinal], "cuda:%d", ordinal);
    b->name = names[ordinal];
    b->ctx = c;
    b->supports_op = be_supports;
    b->conv3d = cu_conv;
    b->conv_transpose3d = cu_convt;
    b->group_norm = cu_gn;
    b->instance_norm = cu_in;
    b->relu = cu_relu;
    b->leaky_relu = cu_lrelu;
    b->upsample_trilinear2x = cu_up;
    b->add = cu_add;
    b->concat = cu_cat;
    b->softmax_c = cu_smax;
    b->argmax_c = cu_amax;
    return 0;
fail:
    return -1;
}

extern "C" const vp_nn_backend *vp_nn_backend_cuda(int ordinal)
{
    if (ordinal_ok(ordinal)) return NULL;
    pthread_mutex_lock(&init_lock);
    int rc = backends[ordinal].ctx ? 0 : init_ctx(ordinal);
    pthread_mutex_unlock(&init_lock);
    if (rc) return vp_error("cuda:%d: backend initialisation failed", ordinal), (const vp_nn_backend *)NULL;
    return &backends[ordinal];
}
