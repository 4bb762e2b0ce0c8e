// nn_cuda_train.cu - the optimizer step, gradient clipping and loss scaling on the device (see
// nn_cuda_train.h). The kernels are elementwise grid-stride loops and a two-level fixed-order
// norm (runs of 256 floats, then the runs in order): no atomics, no shared-memory trees, so the
// bytes are the same on every run and the CPU emulation (tests/gpu/emulate_train.sh) runs them as
// they are.
#include "nn_cuda_int.h"

#include <math.h>

extern "C" {
#include "nn_cuda_train.h"
}

static const int64_t RUN = 256; // floats per first-level partial sum of the norm

struct vp_cuda_opt {
    vp_cuda_ctx *c;
    vp_optim *host;
    vp_optim_cfg cfg;
    int64_t n, nruns;
    float *p, *g, *s0, *s1; // master weights, gradients, state (s1 AdamW only)
    double *part;           // nruns partial sums of squares
    double *hpart;          // host copy of part
};

__global__ void k_tr_scale(float *g, int64_t n, float f)
{
    GRID_STRIDE(i, n) g[i] *= f;
}

// part[r] = sum over the run r of g^2, in f64, in index order
__global__ void k_tr_sumsq(const float *g, int64_t n, int64_t nruns, double *part)
{
    GRID_STRIDE(r, nruns)
    {
        const int64_t a = r * RUN, b = a + RUN < n ? a + RUN : n;
        double s = 0;
        for (int64_t i = a; i < b; i++) s += (double)g[i] * g[i];
        part[r] = s;
    }
}

// AdamW as nn_optim.c (torch's single-tensor order), after clipping by cf
__global__ void k_tr_adamw(float *p, float *g, float *s0, float *s1, int64_t n, float cf, float decay, float w1, float b2,
                           float w2, float step, float bc2s, float eps)
{
    GRID_STRIDE(i, n)
    {
        float gi = g[i];
        if (cf != 1.0f) gi = __fmul_rn(gi, cf), g[i] = gi;
        float pi = __fmul_rn(p[i], decay);
        float m = __fadd_rn(s0[i], __fmul_rn(w1, __fadd_rn(gi, -s0[i])));
        float v = __fadd_rn(__fmul_rn(s1[i], b2), __fmul_rn(__fmul_rn(w2, gi), gi));
        s0[i] = m, s1[i] = v;
        float den = __fadd_rn(__fdiv_rn(sqrtf(v), bc2s), eps);
        p[i] = __fadd_rn(pi, __fmul_rn(step, __fdiv_rn(m, den)));
    }
}

// SGD (momentum, nesterov, weight decay) as nn_optim.c
__global__ void k_tr_sgd(float *p, float *g, float *s0, int64_t n, float cf, float wd, float mu, int nesterov, int first,
                         float nlr)
{
    GRID_STRIDE(i, n)
    {
        float gi = g[i];
        if (cf != 1.0f) gi = __fmul_rn(gi, cf), g[i] = gi;
        float d = __fadd_rn(gi, __fmul_rn(wd, p[i]));
        if (mu != 0.0f) {
            float b = first ? d : __fadd_rn(__fmul_rn(s0[i], mu), d);
            s0[i] = b;
            d = nesterov ? __fadd_rn(d, __fmul_rn(mu, b)) : b;
        }
        p[i] = __fadd_rn(p[i], __fmul_rn(nlr, d));
    }
}

static int dalloc(float **p, int64_t n, const char *what)
{
    CUDA_CHECK(cudaMalloc((void **)p, (size_t)(n > 0 ? n : 1) * sizeof(float)));
    return 0;
fail:
    *p = NULL;
    return vp_error("cuda training: cannot allocate the %s (%lld floats)", what, (long long)n);
}

extern "C" vp_cuda_opt *vp_cuda_opt_new(const vp_nn_backend *be, const vp_optim_cfg *cfg, vp_optim *host, const float *params,
                                        int64_t n)
{
    if (!be || strncmp(be->name, "cuda", 4)) return vp_error("cuda training: '%s' is not a CUDA backend", be ? be->name : "(none)"), nullptr;
    vp_cuda_opt *o = (vp_cuda_opt *)vp_calloc(1, sizeof *o);
    o->c = ctx_of(be), o->host = host, o->n = n;
    int64_t ns = 0;
    const char *name;
    const int nst = vp_optim_state_count(host);
    float *h0 = vp_optim_state(host, 0, &name, &ns);
    if (ns != n || (cfg->kind == VP_OPTIM_ADAMW) != !strncmp(name, "adamw", 5)) {
        vp_error("cuda training: optimizer made for %lld parameters, the model has %lld", (long long)ns, (long long)n);
        vp_cuda_opt_free(&o);
        return nullptr;
    }
    o->cfg = *cfg;
    o->nruns = (n + RUN - 1) / RUN;
    vp_cuda_ctx *c = o->c;
    CUDA_CHECK(cudaSetDevice(c->dev));
    if (dalloc(&o->p, n, "master weights") || dalloc(&o->g, n, "gradients") || dalloc(&o->s0, n, "optimizer state") ||
        (nst > 1 && dalloc(&o->s1, n, "optimizer state")))
        goto fail;
    CUDA_CHECK(cudaMalloc((void **)&o->part, (size_t)(o->nruns + 1) * sizeof(double)));
    o->hpart = (double *)vp_calloc((size_t)o->nruns + 1, sizeof(double));
    if (vp_cuda_h2d(c, o->p, params, (size_t)n * sizeof(float)) || vp_cuda_h2d(c, o->s0, h0, (size_t)n * sizeof(float)))
        goto fail;
    if (nst > 1 && vp_cuda_h2d(c, o->s1, vp_optim_state(host, 1, NULL, NULL), (size_t)n * sizeof(float))) goto fail;
    return o;
fail:
    vp_cuda_opt_free(&o);
    return nullptr;
}

extern "C" void vp_cuda_opt_free(vp_cuda_opt **op)
{
    vp_cuda_opt *o = *op;
    if (!o) return;
    cudaFree(o->p), cudaFree(o->g), cudaFree(o->s0), cudaFree(o->s1), cudaFree(o->part);
    free(o->hpart);
    free(o);
    *op = nullptr;
}

extern "C" float *vp_cuda_opt_dev_grads(vp_cuda_opt *o) { return o->g; }

extern "C" int vp_cuda_opt_upload_grads(vp_cuda_opt *o, const float *grads)
{
    return vp_cuda_h2d(o->c, o->g, grads, (size_t)o->n * sizeof(float));
}

extern "C" int vp_cuda_opt_download_grads(vp_cuda_opt *o, float *grads)
{
    return vp_cuda_d2h(o->c, grads, o->g, (size_t)o->n * sizeof(float));
}

extern "C" int vp_cuda_opt_download(vp_cuda_opt *o, float *params)
{
    vp_cuda_ctx *c = o->c;
    if (params && vp_cuda_d2h(c, params, o->p, (size_t)o->n * sizeof(float))) return -1;
    for (int i = 0; i < vp_optim_state_count(o->host); i++)
        if (vp_cuda_d2h(c, vp_optim_state(o->host, i, NULL, NULL), i ? o->s1 : o->s0, (size_t)o->n * sizeof(float))) return -1;
    return 0;
}

// the norm of the device gradients (f64), synchronously
static int grad_norm(vp_cuda_opt *o, double *total)
{
    vp_cuda_ctx *c = o->c;
    k_tr_sumsq<<<blocks_for(o->nruns), TPB, 0, c->stream>>>(o->g, o->n, o->nruns, o->part);
    LAUNCH_CHECK();
    if (vp_cuda_d2h(c, o->hpart, o->part, (size_t)o->nruns * sizeof(double))) return -1;
    {
        double ss = 0;
        for (int64_t r = 0; r < o->nruns; r++) ss += o->hpart[r];
        *total = sqrt(ss);
    }
    return 0;
fail:
    return -1;
}

extern "C" int vp_cuda_opt_step(vp_cuda_opt *o, float lr, vp_loss_scaler *sc, float *params, double *gn, int *skipped)
{
    vp_cuda_ctx *c = o->c;
    const int64_t n = o->n;
    const vp_optim_cfg *cf = &o->cfg;
    double total = 0;
    float clip = 1.0f;
    if (skipped) *skipped = 0;
    {
        int64_t steps = vp_optim_step_count(o->host);
        const int scaling = sc && sc->enabled;
        if (scaling && sc->scale != 1.0f) {
            k_tr_scale<<<blocks_for(n), TPB, 0, c->stream>>>(o->g, n, 1.0f / sc->scale);
            LAUNCH_CHECK();
        }
        if (grad_norm(o, &total)) return -1;
        if (gn) *gn = total;
        if (!isfinite(total)) {
            if (!scaling) return vp_error("optimizer: gradient norm is %g (non-finite gradients)", total);
            sc->scale *= sc->backoff, sc->tracker = 0; // GradScaler: skip the step, back off
            if (skipped) *skipped = 1;
            return 0;
        }
        if (cf->clip_norm > 0) {
            double coef = (double)cf->clip_norm / (total + 1e-6);
            if (coef < 1.0) clip = (float)coef;
        }
        steps++;
        vp_optim_set_step_count(o->host, steps);
        if (cf->kind == VP_OPTIM_ADAMW) {
            const double t = (double)steps;
            const double bc1 = 1.0 - pow((double)cf->beta1, t), bc2 = 1.0 - pow((double)cf->beta2, t);
            const float decay = (float)(1.0 - (double)lr * cf->weight_decay), w1 = (float)(1.0 - (double)cf->beta1);
            const float w2 = (float)(1.0 - (double)cf->beta2), step = (float)(-(double)lr / bc1), bc2s = (float)sqrt(bc2);
            k_tr_adamw<<<blocks_for(n), TPB, 0, c->stream>>>(o->p, o->g, o->s0, o->s1, n, clip, decay, w1, cf->beta2, w2, step,
                                                            bc2s, cf->eps);
        } else {
            k_tr_sgd<<<blocks_for(n), TPB, 0, c->stream>>>(o->p, o->g, o->s0, n, clip, cf->weight_decay, cf->momentum,
                                                          cf->nesterov, steps == 1, -lr);
        }
        LAUNCH_CHECK();
        if (scaling && ++sc->tracker >= sc->interval) { // GradScaler: never grows past the f32 range to inf
            if (isfinite(sc->scale * sc->growth)) sc->scale *= sc->growth;
            sc->tracker = 0;
        }
        if (params && vp_cuda_d2h(c, params, o->p, (size_t)n * sizeof(float))) return -1;
    }
    return 0;
fail:
    return -1;
}

extern "C" float *vp_cuda_opt_dev_params(vp_cuda_opt *o) { return o->p; }

extern "C" int vp_cuda_zero(const vp_nn_backend *be, float *p, int64_t n)
{
    vp_cuda_ctx *c = ctx_of(be);
    CUDA_CHECK(cudaSetDevice(c->dev));
    CUDA_CHECK(cudaMemsetAsync(p, 0, (size_t)n * sizeof(float), c->stream)); // zero bits: 0.0f
    return 0;
fail:
    return -1;
}

// dy (N, sum of C_k, D, H, W) into dxs[k] (N, C_k, D, H, W): one strided device copy per part
// (rows of C_k * S floats in NCDHW, of C_k floats in NDHWC)
extern "C" int vp_cuda_split_channels(const vp_nn_backend *be, const vp_tensor *dy, vp_tensor *const *dxs, int n)
{
    vp_cuda_ctx *c = ctx_of(be);
    const int l = vp_cuda_tensor_layout(dy);
    if (dy->device != c->dev + 1 || l < 0) return vp_error("cuda: concat backward: dy is not a device tensor of %s", be->name);
    const int64_t N = dy->shape[0], Ct = dy->shape[1], S = dy->shape[2] * dy->shape[3] * dy->shape[4];
    int64_t off = 0;
    for (int k = 0; k < n; k++) {
        const vp_tensor *x = dxs[k];
        const int64_t ck = x->shape[1];
        if (x->device != dy->device || vp_cuda_tensor_layout(x) != l || x->shape[0] != N ||
            x->shape[2] * x->shape[3] * x->shape[4] != S || off + ck > Ct)
            return vp_error("cuda: concat backward: part %d does not fit dy", k);
        off += ck;
    }
    if (off != Ct) return vp_error("cuda: concat backward: the parts have %lld channels, dy %lld", (long long)off, (long long)Ct);
    CUDA_CHECK(cudaSetDevice(c->dev));
    off = 0;
    for (int k = 0; k < n; k++) {
        const int64_t ck = dxs[k]->shape[1];
        if (l == VP_CUDA_NCDHW)
            CUDA_CHECK(cudaMemcpy2DAsync(dxs[k]->data, (size_t)(ck * S) * sizeof(float), dy->data + off * S, (size_t)(Ct * S) * sizeof(float),
                                         (size_t)(ck * S) * sizeof(float), (size_t)N, cudaMemcpyDeviceToDevice, c->stream));
        else
            CUDA_CHECK(cudaMemcpy2DAsync(dxs[k]->data, (size_t)ck * sizeof(float), dy->data + off, (size_t)Ct * sizeof(float),
                                         (size_t)ck * sizeof(float), (size_t)(N * S), cudaMemcpyDeviceToDevice, c->stream));
        off += ck;
    }
    return 0;
fail:
    return -1;
}
