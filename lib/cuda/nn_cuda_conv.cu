// nn_cuda_conv.cu - the convolution core of the CUDA backend: cuDNN forward, backward data and
// backward filter (legacy Nd API), in NCDHW or NDHWC, f32 (FMA), TF32, f16 or bf16 math.
//
// Precision: f32 and tf32 run on the f32 tensors directly (cuDNN math FMA, or tensor-op TF32); f16
// and bf16 convert the operands on the device into temporaries of that type, run cuDNN with f32
// accumulation (CUDNN_DATA_FLOAT compute) and convert the result back to f32.
// Layout: NDHWC activations go with NHWC filters (K, kd, kh, kw, C): PyTorch-layout weights are
// permuted on the device per call (small), a weight gradient permuted back.
// Algorithm: cuDNN's heuristic list (..._v7, no timing runs, so the choice and therefore the
// output bytes do not change between runs), the first entry that is deterministic, fits the math
// (f32: CUDNN_FMA_MATH only -- DEFAULT_MATH lets cuDNN use TF32 on sm_80+; tf32: no conversion to
// f16) and whose workspace query succeeds with at most 1 GiB; cached per (kind, shapes, stride,
// padding, layout, math). cuDNN picks algorithm and math type as a pair: the entry's mathType is set
// on the descriptor before its workspace query and before the call (as PyTorch's Conv_v7.cpp does).
// When cuDNN has no such algorithm for NDHWC in this math, the convolution runs in NCDHW on
// permuted temporaries (slower, same result) and says so with -v (once per shape).
#include "nn_cuda_int.h"

#include <string.h>

// the Nd convolution API is deprecated in cuDNN 9 in favour of the graph API, but complete and stable
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#pragma nv_diag_suppress 1444

struct algo_key {
    int kind, layout, math;
    int64_t i[5], w[5], o[5];
    int stride[3], pad[3];
};
struct algo_entry {
    algo_key k;
    int algo, math_type, layout; // cuDNN's algorithm, its cudnnMathType_t, the layout cuDNN runs in
    size_t ws;
};
#define ALGO_CACHE 512
static algo_entry algo_cache[VP_CUDA_MAXDEV][ALGO_CACHE];
static int algo_n[VP_CUDA_MAXDEV];

static algo_entry *algo_find(int dev, const algo_key *k)
{
    for (int i = 0; i < algo_n[dev]; i++)
        if (!memcmp(&algo_cache[dev][i].k, k, sizeof *k)) return &algo_cache[dev][i];
    return NULL;
}

static algo_entry *algo_put(int dev, const algo_key *k, int algo, int math_type, int layout, size_t ws)
{
    int i = algo_n[dev] < ALGO_CACHE ? algo_n[dev]++ : (int)((k->i[1] + k->w[0] + k->o[4]) % ALGO_CACHE); // full: overwrite one
    algo_entry *e = &algo_cache[dev][i];
    e->k = *k, e->algo = algo, e->math_type = math_type, e->layout = layout, e->ws = ws;
    return e;
}

static int fits_int(const vp_tensor *t, const char *op)
{
    char s[96];
    if (vp_tensor_numel(t) >= (int64_t)1 << 31)
        return vp_error("%s: tensor %s has 2^31 or more elements (cuDNN's limit; tile the volume)", op, vp_tensor_shape_str(t, s, sizeof s));
    return 0;
}

static cudnnDataType_t dnn_type(int dt) { return dt == VP_DT_F16 ? CUDNN_DATA_HALF : dt == VP_DT_BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT; }

static int set_act_desc(cudnnTensorDescriptor_t d, const int64_t *shape, int layout, int dt)
{
    vp_tensor t = vp_tensor_view(NULL, 5, shape);
    int dims[5], str[5];
    vp_cu_set_layout(&t, layout);
    for (int i = 0; i < 5; i++) dims[i] = (int)shape[i], str[i] = (int)t.stride[i];
    CUDNN_CHECK(cudnnSetTensorNdDescriptor(d, dnn_type(dt), 5, dims, str));
    return 0;
fail:
    return -1;
}

static const size_t WS_MAX = (size_t)1 << 30; // workspace cap: algorithms that want more (FFT) are passed over

// f32: FMA kernels only (CUDNN_DEFAULT_MATH permits TF32 tensor cores on f32 data from sm_80 on);
// tf32: anything but ALLOW_CONVERSION (f32 operands down-converted to f16); f16/bf16: anything
static int ok_math(cudnnMathType_t m, vp_cuda_math math)
{
    if (math == VP_CUDA_F32) return m == CUDNN_FMA_MATH;
    if (math == VP_CUDA_TF32) return m != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
    return 1;
}

// the math type the descriptors start from (cuDNN's heuristics then return (algorithm, math type)
// pairs): PyTorch's choices (aten/src/ATen/cudnn/Descriptors.h), f32 without TF32 FMA_MATH, f32
// with TF32 DEFAULT_MATH, half TENSOR_OP_MATH, bfloat16 DEFAULT_MATH
static cudnnMathType_t desc_math(vp_cuda_math math)
{
    return math == VP_CUDA_F32 ? CUDNN_FMA_MATH : math == VP_CUDA_F16 ? CUDNN_TENSOR_OP_MATH : CUDNN_DEFAULT_MATH;
}

// The first usable entry of cuDNN's heuristic list for the descriptors (in layout `layout`): its
// algorithm, math type and workspace into *e; 0, or -1 when there is none (no message).
static int choose_in(vp_cuda_ctx *c, int kind, cudnnTensorDescriptor_t id, cudnnFilterDescriptor_t wd, cudnnTensorDescriptor_t od,
                     cudnnConvolutionDescriptor_t cd, vp_cuda_math math, algo_entry *e)
{
    int got = 0;
    size_t wsz = 0;
#define TRY(perf, wsquery)                                                                                                          \
    for (int i = 0; i < got; i++) {                                                                                                 \
        if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].determinism != CUDNN_DETERMINISTIC || !ok_math(perf[i].mathType, math)) \
            continue;                                                                                                               \
        if (cudnnSetConvolutionMathType(cd, perf[i].mathType) != CUDNN_STATUS_SUCCESS) continue;                                     \
        if (wsquery == CUDNN_STATUS_SUCCESS && wsz <= WS_MAX) {                                                                     \
            e->algo = (int)perf[i].algo, e->math_type = (int)perf[i].mathType, e->ws = wsz;                                          \
            return 0;                                                                                                               \
        }                                                                                                                           \
    }
    if (kind == VP_CONV_FWD) {
        cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
        if (cudnnGetConvolutionForwardAlgorithm_v7(c->dnn, id, wd, cd, od, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, perf) != CUDNN_STATUS_SUCCESS)
            return -1;
        TRY(perf, cudnnGetConvolutionForwardWorkspaceSize(c->dnn, id, wd, cd, od, perf[i].algo, &wsz))
    } else if (kind == VP_CONV_BWD_DATA) {
        cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
        if (cudnnGetConvolutionBackwardDataAlgorithm_v7(c->dnn, wd, od, cd, id, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &got, perf) !=
            CUDNN_STATUS_SUCCESS)
            return -1;
        TRY(perf, cudnnGetConvolutionBackwardDataWorkspaceSize(c->dnn, wd, od, cd, id, perf[i].algo, &wsz))
    } else {
        cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
        if (cudnnGetConvolutionBackwardFilterAlgorithm_v7(c->dnn, id, od, cd, wd, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &got, perf) !=
            CUDNN_STATUS_SUCCESS)
            return -1;
        TRY(perf, cudnnGetConvolutionBackwardFilterWorkspaceSize(c->dnn, id, od, cd, wd, perf[i].algo, &wsz))
    }
#undef TRY
    return -1;
}

// Set the descriptors for layout `layout` (activations) and type dt.
static int set_descs(const vp_tensor *I, const int *wdims, const vp_tensor *O, int layout, int dt, cudnnTensorDescriptor_t id,
                     cudnnFilterDescriptor_t wd, cudnnTensorDescriptor_t od)
{
    if (set_act_desc(id, I->shape, layout, dt) || set_act_desc(od, O->shape, layout, dt)) return -1;
    CUDNN_CHECK(cudnnSetFilterNdDescriptor(wd, dnn_type(dt), layout == VP_CUDA_NDHWC ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW, 5, wdims));
    return 0;
fail:
    return -1;
}

// Choose (and cache) the algorithm, math type and the layout cuDNN runs in: the op's layout, or
// NCDHW when cuDNN has nothing for NDHWC. The descriptors are left set for the entry's layout and
// math type. NULL after vp_error.
static algo_entry *choose(vp_cuda_ctx *c, const char *op, const algo_key *key, const vp_tensor *I, const int *wdims, const vp_tensor *O,
                          int dt, cudnnTensorDescriptor_t id, cudnnFilterDescriptor_t wd, cudnnTensorDescriptor_t od,
                          cudnnConvolutionDescriptor_t cd, vp_cuda_math math)
{
    static const char *mn[] = {"f32", "tf32", "f16", "bf16"};
    algo_entry *ae = algo_find(c->dev, key), e;
    if (ae) {
        if (set_descs(I, wdims, O, ae->layout, dt, id, wd, od)) return NULL;
        CUDNN_CHECK(cudnnSetConvolutionMathType(cd, (cudnnMathType_t)ae->math_type));
        return ae;
    }
    memset(&e, 0, sizeof e);
    for (int l = key->layout; l >= 0; l--) { // NDHWC (1), then NCDHW (0); NCDHW only once
        if (set_descs(I, wdims, O, l, dt, id, wd, od)) return NULL;
        CUDNN_CHECK(cudnnSetConvolutionMathType(cd, desc_math(math)));
        if (choose_in(c, key->kind, id, wd, od, cd, math, &e) == 0) {
            if (l != key->layout)
                vp_debug("%s: cuDNN has no deterministic %s algorithm in NDHWC for this shape: NCDHW temporaries", op, mn[math]);
            return algo_put(c->dev, key, e.algo, e.math_type, l, e.ws);
        }
    }
    vp_error("%s: cuDNN offers no deterministic %s algorithm for input (%lld,%lld,%lld,%lld,%lld), weight (%lld,%lld,%lld,%lld,%lld), %s",
             op, mn[math], (long long)key->i[0], (long long)key->i[1], (long long)key->i[2], (long long)key->i[3], (long long)key->i[4],
             (long long)key->w[0], (long long)key->w[1], (long long)key->w[2], (long long)key->w[3], (long long)key->w[4],
             key->layout ? "NDHWC (nor NCDHW)" : "NCDHW");
    return NULL;
fail:
    return NULL;
}

int vp_cuda_conv_run(const vp_nn_backend *be, const char *op, int kind, const vp_tensor *I, const vp_tensor *W, const vp_tensor *O,
                     const vp_tensor *bias, const vp_conv3d_params *p)
{
    vp_cuda_ctx *c = ctx_of(be);
    const vp_cuda_math math = math_of(be);
    const int dt = math == VP_CUDA_F16 ? VP_DT_F16 : math == VP_CUDA_BF16 ? VP_DT_BF16 : VP_DT_F32;
    const vp_tensor *out = kind == VP_CONV_FWD ? O : kind == VP_CONV_BWD_DATA ? I : W;
    if (fits_int(I, op) || fits_int(O, op) || fits_int(W, op)) return -1;
    if ((kind != VP_CONV_BWD_FILTER && I->data == O->data) || W->data == I->data || W->data == O->data)
        return vp_error("%s: in-place use is not supported", op);
    const int l = vp_cu_op_layout3(op, I, O);
    if (l < 0) return -1;
    cudnnTensorDescriptor_t id = NULL, od = NULL;
    cudnnFilterDescriptor_t wd = NULL;
    cudnnConvolutionDescriptor_t cd = NULL;
    int wdims[5], pad[3], str[3], dil[3] = {1, 1, 1}, lc;
    const float one = 1.0f, zero = 0.0f;
    algo_key key;
    algo_entry *ae = NULL;
    void *ws = NULL, *tmp[3] = {NULL, NULL, NULL}; // converted / permuted I, W, O
    const float *f[3];                             // the f32 device pointers of I, W, O
    float *fout = NULL;
    const vp_tensor *ts[3] = {I, W, O};
    const int outi = kind == VP_CONV_FWD ? 2 : kind == VP_CONV_BWD_DATA ? 0 : 1;
    void *buf[3];
    const int64_t S_out = out->shape[2] * out->shape[3] * out->shape[4];
    vp_stage st;
    vp_stage_init(&st, c, op, l);
    for (int i = 0; i < 5; i++) wdims[i] = (int)W->shape[i];
    for (int i = 0; i < 3; i++) pad[i] = p->pad[i], str[i] = p->stride[i];
    memset(&key, 0, sizeof key);
    key.kind = kind, key.layout = l, key.math = (int)math;
    memcpy(key.i, I->shape, sizeof key.i), memcpy(key.w, W->shape, sizeof key.w), memcpy(key.o, O->shape, sizeof key.o);
    memcpy(key.stride, p->stride, sizeof key.stride), memcpy(key.pad, p->pad, sizeof key.pad);

    CUDA_CHECK(cudaSetDevice(c->dev));
    // descriptors and algorithm first: they say which layout cuDNN runs in (lc)
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&id));
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&od));
    CUDNN_CHECK(cudnnCreateFilterDescriptor(&wd));
    CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&cd));
    CUDNN_CHECK(cudnnSetConvolutionNdDescriptor(cd, 3, pad, str, dil, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    if (!(ae = choose(c, op, &key, I, wdims, O, dt, id, wd, od, cd, math))) goto fail;
    lc = ae->layout;
    for (int i = 0; i < 3; i++) {
        if (i == outi) {
            if (i == 1) st.layout = VP_CUDA_NCDHW; // the weight gradient: PyTorch layout, host or device
            fout = vp_stage_out(&st, (vp_tensor *)ts[i]);
            st.layout = l;
            if (!fout) goto fail;
            f[i] = fout;
        } else if (!(f[i] = i == 1 ? vp_stage_vec(&st, ts[i]) : vp_stage_in(&st, ts[i]))) {
            goto fail;
        }
    }
    // cuDNN's buffers: the f32 ones, or temporaries converted to dt and/or permuted: weights
    // (K, C, R) -> (K, R, C) when cuDNN runs in NDHWC, activations NDHWC (N, S, C) -> NCDHW (N, C, S)
    // when the op is NDHWC but cuDNN runs in NCDHW
    for (int i = 0; i < 3; i++) {
        const int64_t n = vp_tensor_numel(ts[i]), N = ts[i]->shape[0], C = ts[i]->shape[1], R = n / (N * C);
        const int permute = i == 1 ? lc == VP_CUDA_NDHWC : lc != l;
        if (dt == VP_DT_F32 && !permute) {
            buf[i] = (void *)f[i];
            continue;
        }
        if (!(buf[i] = tmp[i] = vp_cuda_tmp(c, (size_t)n * vp_dt_size(dt), "a converted convolution operand"))) goto fail;
        if (i == outi) continue;
        if (!permute ? vp_k_convert(c, f[i], VP_DT_F32, buf[i], dt, 1, 1, n)
            : i == 1 ? vp_k_convert(c, f[i], VP_DT_F32, buf[i], dt, N, C, R)
                     : vp_k_convert(c, f[i], VP_DT_F32, buf[i], dt, N, R, C))
            goto fail;
    }
    if (ae->ws && !(ws = vp_cuda_scratch(c, ae->ws))) goto fail;
    if (kind == VP_CONV_FWD)
        CUDNN_CHECK(cudnnConvolutionForward(c->dnn, &one, id, buf[0], wd, buf[1], cd, (cudnnConvolutionFwdAlgo_t)ae->algo, ws, ae->ws,
                                            &zero, od, buf[2]));
    else if (kind == VP_CONV_BWD_DATA)
        CUDNN_CHECK(cudnnConvolutionBackwardData(c->dnn, &one, wd, buf[1], od, buf[2], cd, (cudnnConvolutionBwdDataAlgo_t)ae->algo, ws,
                                                 ae->ws, &zero, id, buf[0]));
    else
        CUDNN_CHECK(cudnnConvolutionBackwardFilter(c->dnn, &one, id, buf[0], od, buf[2], cd, (cudnnConvolutionBwdFilterAlgo_t)ae->algo,
                                                   ws, ae->ws, &zero, wd, buf[1]));
    if (tmp[outi]) { // back to f32 and the op's layout (the inverse permutations of the above)
        const int64_t n = vp_tensor_numel(out), N = out->shape[0], C = out->shape[1], R = n / (N * C);
        const int permute = outi == 1 ? lc == VP_CUDA_NDHWC : lc != l;
        if (!permute ? vp_k_convert(c, tmp[outi], dt, fout, VP_DT_F32, 1, 1, n)
            : outi == 1 ? vp_k_convert(c, tmp[1], dt, fout, VP_DT_F32, N, R, C)
                        : vp_k_convert(c, tmp[outi], dt, fout, VP_DT_F32, N, C, R))
            goto fail;
    }
    if (bias && kind != VP_CONV_BWD_FILTER) {
        const float *db = vp_stage_vec(&st, bias);
        if (!db || vp_k_bias(c, fout, db, out->shape[0], out->shape[1], S_out, l)) goto fail;
    }
    for (int i = 0; i < 3; i++)
        if (tmp[i]) {
            CUDA_CHECK(cudaFreeAsync(tmp[i], c->stream));
            tmp[i] = NULL;
        }
    cudnnDestroyConvolutionDescriptor(cd);
    cudnnDestroyFilterDescriptor(wd);
    cudnnDestroyTensorDescriptor(od);
    cudnnDestroyTensorDescriptor(id);
    return vp_stage_finish(&st, 0);
fail:
    if (cd) cudnnDestroyConvolutionDescriptor(cd);
    if (wd) cudnnDestroyFilterDescriptor(wd);
    if (od) cudnnDestroyTensorDescriptor(od);
    if (id) cudnnDestroyTensorDescriptor(id);
    for (int i = 0; i < 3; i++)
        if (tmp[i]) cudaFreeAsync(tmp[i], c->stream), tmp[i] = NULL;
    return vp_stage_finish(&st, -1);
}
