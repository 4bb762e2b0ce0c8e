// nn_cuda_conv.cu - the convolution core of the CUDA backend: cuDNN forward, backward data and
// backward filter (legacy Nd API), in NCDHW or NDHWC, f32 (FMA), TF32, f16 or bf16 math.
//
// Precision: f32 and tf32 run on the f32 tensors directly (cuDNN math FMA / TENSOR_OP); f16 and
// bf16 convert the operands on the device into temporaries of that type, run cuDNN with f32
// accumulation (CUDNN_DATA_FLOAT compute, TENSOR_OP math) and convert the result back to f32.
// Layout: NDHWC activations go with NHWC filters (K, kd, kh, kw, C): PyTorch-layout weights are
// permuted on the device per call (small), a weight gradient permuted back.
// Algorithm: cuDNN's heuristic list (..._v7, no timing runs, so the choice and therefore the
// output bytes do not change between runs), the first entry that is deterministic, fits the math
// (f32: no tensor-op math) and whose workspace query succeeds with at most 1 GiB; cached per
// (kind, shapes, stride, padding, layout, math).
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
    int algo;
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

static algo_entry *algo_put(int dev, const algo_key *k, int algo, size_t ws)
{
    int i = algo_n[dev] < ALGO_CACHE ? algo_n[dev]++ : (int)((k->i[1] + k->w[0] + k->o[4]) % ALGO_CACHE); // full: overwrite one
    algo_cache[dev][i].k = *k, algo_cache[dev][i].algo = algo, algo_cache[dev][i].ws = ws;
    return &algo_cache[dev][i];
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

static int ok_math(cudnnMathType_t m, vp_cuda_math math)
{
    int tensor_op = m == CUDNN_TENSOR_OP_MATH || m == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
    return math == VP_CUDA_F32 ? !tensor_op : 1;
}

// Choose (and cache) the algorithm for the descriptors; NULL after vp_error.
static algo_entry *choose(vp_cuda_ctx *c, const char *op, const algo_key *key, cudnnTensorDescriptor_t id, cudnnFilterDescriptor_t wd,
                          cudnnTensorDescriptor_t od, cudnnConvolutionDescriptor_t cd, vp_cuda_math math)
{
    algo_entry *ae = algo_find(c->dev, key);
    if (ae) return ae;
    int got = 0, chosen = -1;
    size_t wsz = 0;
    if (key->kind == VP_CONV_FWD) {
        cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
        CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(c->dnn, id, wd, cd, od, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, perf));
        for (int i = 0; i < got && chosen < 0; i++)
            if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].determinism == CUDNN_DETERMINISTIC && ok_math(perf[i].mathType, math) &&
                cudnnGetConvolutionForwardWorkspaceSize(c->dnn, id, wd, cd, od, perf[i].algo, &wsz) == CUDNN_STATUS_SUCCESS && wsz <= WS_MAX)
                chosen = (int)perf[i].algo;
    } else if (key->kind == VP_CONV_BWD_DATA) {
        cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
        CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(c->dnn, wd, od, cd, id, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &got, perf));
        for (int i = 0; i < got && chosen < 0; i++)
            if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].determinism == CUDNN_DETERMINISTIC && ok_math(perf[i].mathType, math) &&
                cudnnGetConvolutionBackwardDataWorkspaceSize(c->dnn, wd, od, cd, id, perf[i].algo, &wsz) == CUDNN_STATUS_SUCCESS && wsz <= WS_MAX)
                chosen = (int)perf[i].algo;
    } else {
        cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
        CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(c->dnn, id, od, cd, wd, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &got, perf));
        for (int i = 0; i < got && chosen < 0; i++)
            if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].determinism == CUDNN_DETERMINISTIC && ok_math(perf[i].mathType, math) &&
                cudnnGetConvolutionBackwardFilterWorkspaceSize(c->dnn, id, od, cd, wd, perf[i].algo, &wsz) == CUDNN_STATUS_SUCCESS && wsz <= WS_MAX)
                chosen = (int)perf[i].algo;
    }
    if (chosen < 0) {
        static const char *mn[] = {"f32", "tf32", "f16", "bf16"};
        vp_error("%s: cuDNN offers no deterministic %s algorithm for input (%lld,%lld,%lld,%lld,%lld), weight (%lld,%lld,%lld,%lld,%lld), %s",
                 op, mn[math], (long long)key->i[0], (long long)key->i[1], (long long)key->i[2], (long long)key->i[3], (long long)key->i[4],
                 (long long)key->w[0], (long long)key->w[1], (long long)key->w[2], (long long)key->w[3], (long long)key->w[4],
                 key->layout ? "NDHWC" : "NCDHW");
        return NULL;
    }
    return algo_put(c->dev, key, chosen, wsz);
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
    int wdims[5], pad[3], str[3], dil[3] = {1, 1, 1};
    const float one = 1.0f, zero = 0.0f;
    algo_key key;
    algo_entry *ae = NULL;
    void *ws = NULL, *tmp[3] = {NULL, NULL, NULL}; // converted I, W, O
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
    // cuDNN's buffers: the f32 ones, or converted / permuted temporaries
    for (int i = 0; i < 3; i++) {
        const int64_t n = vp_tensor_numel(ts[i]);
        const int permute = i == 1 && l == VP_CUDA_NDHWC;
        if (dt == VP_DT_F32 && !permute) {
            buf[i] = (void *)f[i];
            continue;
        }
        if (!(buf[i] = tmp[i] = vp_cuda_tmp(c, (size_t)n * vp_dt_size(dt), "a converted convolution operand"))) goto fail;
        if (i == outi) continue;
        // weights (K, C, R) -> (K, R, C) for NHWC; activations only change type
        if (permute ? vp_k_convert(c, f[i], VP_DT_F32, buf[i], dt, W->shape[0], W->shape[1], n / (W->shape[0] * W->shape[1]))
                    : vp_k_convert(c, f[i], VP_DT_F32, buf[i], dt, 1, 1, n))
            goto fail;
    }
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&id));
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&od));
    CUDNN_CHECK(cudnnCreateFilterDescriptor(&wd));
    CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&cd));
    if (set_act_desc(id, I->shape, l, dt) || set_act_desc(od, O->shape, l, dt)) goto fail;
    CUDNN_CHECK(cudnnSetFilterNdDescriptor(wd, dnn_type(dt), l == VP_CUDA_NDHWC ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW, 5, wdims));
    CUDNN_CHECK(cudnnSetConvolutionNdDescriptor(cd, 3, pad, str, dil, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    CUDNN_CHECK(cudnnSetConvolutionMathType(cd, math == VP_CUDA_F32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH));
    if (!(ae = choose(c, op, &key, id, wd, od, cd, math))) goto fail;
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
    if (tmp[outi]) { // back to f32 (weights: (K, R, C) -> (K, C, R))
        const int64_t n = vp_tensor_numel(out);
        if (outi == 1 && l == VP_CUDA_NDHWC ? vp_k_convert(c, tmp[1], dt, fout, VP_DT_F32, W->shape[0], n / (W->shape[0] * W->shape[1]),
                                                           W->shape[1])
                                            : vp_k_convert(c, tmp[outi], dt, fout, VP_DT_F32, 1, 1, n))
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
