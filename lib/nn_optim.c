/* nn_optim.c - torch.optim.AdamW and torch.optim.SGD (momentum, nesterov, weight decay) on flat
 * f32 buffers, nnU-Net's poly learning rate and torch.nn.utils.clip_grad_norm_ (see nn_train.h).
 *
 * The update formulas are torch's single-tensor CPU implementations, in the same order and in f32
 * as torch computes them (Python-float hyper-parameters rounded to f32 where torch does):
 *   AdamW: p *= 1 - lr wd; m = m + (1 - b1) (g - m); v = v b1' + (1 - b2) g g (v * b2 first);
 *          p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 *   SGD:   d = g + wd p; buf = d on the first step, else buf = mu buf + d;
 *          d = nesterov ? d + mu buf : buf; p -= lr d
 *   clip:  total = ||all grads||_2 (f64 here); g *= min(max_norm / (total + 1e-6), 1)
 * Parallel over fixed chunks of CHUNK floats (lib/parallel.h); the norm's partial sums are added in
 * chunk order, so the bytes are the same for any thread count.
 * Ownership: vp_optim owns its state buffers (n floats each, the parameters' layout).
 */
#include "nn_train.h"
#include "parallel.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct vp_optim {
    vp_optim_cfg cfg;
    int64_t n, steps;
    float *s0, *s1; /* AdamW: exp_avg, exp_avg_sq; SGD: momentum_buffer, unused */
};

vp_optim_cfg vp_optim_cfg_default(vp_optim_kind kind)
{
    vp_optim_cfg c = {.kind = kind};
    if (kind == VP_OPTIM_ADAMW) {
        c.lr = 1e-4f;
        c.weight_decay = 1e-5f;
        c.beta1 = 0.9f, c.beta2 = 0.999f, c.eps = 1e-8f;
    } else {
        c.lr = 1e-2f;
        c.weight_decay = 3e-5f;
        c.momentum = 0.99f;
        c.nesterov = 1;
        c.poly_exponent = 0.9f;
        c.clip_norm = 12.0f;
    }
    return c;
}

vp_optim *vp_optim_new(const vp_optim_cfg *cfg, int64_t n)
{
    if (cfg->kind != VP_OPTIM_ADAMW && cfg->kind != VP_OPTIM_SGD) return vp_error("optimizer: unknown kind %d", (int)cfg->kind), NULL;
    if (!(cfg->lr >= 0) || !(cfg->weight_decay >= 0) || n < 0)
        return vp_error("optimizer: lr %g and weight_decay %g must be >= 0", cfg->lr, cfg->weight_decay), NULL;
    if (cfg->kind == VP_OPTIM_ADAMW && (!(cfg->beta1 >= 0 && cfg->beta1 < 1) || !(cfg->beta2 >= 0 && cfg->beta2 < 1) || !(cfg->eps >= 0)))
        return vp_error("optimizer: AdamW betas (%g, %g) must be in [0, 1) and eps %g >= 0", cfg->beta1, cfg->beta2, cfg->eps), NULL;
    if (cfg->kind == VP_OPTIM_SGD && (!(cfg->momentum >= 0) || (cfg->nesterov && cfg->momentum <= 0)))
        return vp_error("optimizer: SGD momentum %g must be >= 0 (and > 0 with nesterov)", cfg->momentum), NULL;
    vp_optim *o = vp_calloc(1, sizeof *o);
    o->cfg = *cfg;
    o->n = n;
    o->s0 = vp_calloc((size_t)n + 1, sizeof(float));
    if (cfg->kind == VP_OPTIM_ADAMW) o->s1 = vp_calloc((size_t)n + 1, sizeof(float));
    return o;
}

void vp_optim_free(vp_optim **op)
{
    if (!*op) return;
    free((*op)->s0);
    free((*op)->s1);
    free(*op);
    *op = NULL;
}

float vp_optim_lr(const vp_optim *o, int epoch, int max_epochs)
{
    if (o->cfg.poly_exponent <= 0 || max_epochs <= 0) return o->cfg.lr;
    double f = 1.0 - (double)epoch / (double)max_epochs;
    if (f < 0) f = 0;
    return (float)(o->cfg.lr * pow(f, o->cfg.poly_exponent));
}

#define CHUNK 65536

struct ostep {
    vp_optim *o;
    float *p, *g;
    int64_t n;
    double *part; /* per-chunk sums of squares */
    float cf;     /* clip factor, 1: none */
    float decay, w1, b2, w2, step, bc2s, nlr;
};

static void norm_range(void *ctx, uint64_t begin, uint64_t end, int worker)
{
    struct ostep *j = ctx;
    for (uint64_t c = begin; c < end; c++) {
        const int64_t a = (int64_t)c * CHUNK, b = a + CHUNK < j->n ? a + CHUNK : j->n;
        const float *g = j->g;
        double ss = 0;
        for (int64_t i = a; i < b; i++) ss += (double)g[i] * g[i];
        j->part[c] = ss;
    }
}

static void update_range(void *ctx, uint64_t begin, uint64_t end, int worker)
{
    struct ostep *j = ctx;
    const vp_optim_cfg *c = &j->o->cfg;
    float *p = j->p, *g = j->g, *s0 = j->o->s0, *s1 = j->o->s1;
    const int first = j->o->steps == 1;
    for (uint64_t ch = begin; ch < end; ch++) {
        const int64_t a = (int64_t)ch * CHUNK, b = a + CHUNK < j->n ? a + CHUNK : j->n;
        if (j->cf != 1.0f)
            for (int64_t i = a; i < b; i++) g[i] *= j->cf;
        if (c->kind == VP_OPTIM_ADAMW) {
            const float decay = j->decay, w1 = j->w1, b2 = j->b2, w2 = j->w2, step = j->step, bc2s = j->bc2s, eps = c->eps;
            for (int64_t i = a; i < b; i++) {
                p[i] *= decay;
                s0[i] = s0[i] + w1 * (g[i] - s0[i]);
                s1[i] = s1[i] * b2 + w2 * g[i] * g[i];
                float den = sqrtf(s1[i]) / bc2s + eps;
                p[i] = p[i] + step * (s0[i] / den);
            }
        } else {
            const float wd = c->weight_decay, mu = c->momentum, nlr = j->nlr;
            for (int64_t i = a; i < b; i++) {
                float d = g[i] + wd * p[i];
                if (mu != 0) {
                    s0[i] = first ? d : s0[i] * mu + d;
                    d = c->nesterov ? d + mu * s0[i] : s0[i];
                }
                p[i] = p[i] + nlr * d;
            }
        }
    }
}

int vp_optim_step(vp_optim *o, float *p, float *g, int64_t n, float lr, double *grad_norm)
{
    if (n != o->n) return vp_error("optimizer: step on %lld parameters, created for %lld", (long long)n, (long long)o->n);
    const vp_optim_cfg *c = &o->cfg;
    const int64_t nch = (n + CHUNK - 1) / CHUNK;
    struct ostep j = {.o = o, .p = p, .g = g, .n = n, .cf = 1.0f};
    j.part = vp_calloc((size_t)nch + 1, sizeof *j.part);
    vp_parallel_for((uint64_t)nch, 1, norm_range, &j);
    double ss = 0;
    for (int64_t i = 0; i < nch; i++) ss += j.part[i];
    free(j.part);
    double total = sqrt(ss);
    if (grad_norm) *grad_norm = total;
    if (!isfinite(total)) return vp_error("optimizer: gradient norm is %g (non-finite gradients)", total);
    if (c->clip_norm > 0) {
        double coef = (double)c->clip_norm / (total + 1e-6);
        if (coef < 1.0) j.cf = (float)coef;
    }
    o->steps++;
    if (c->kind == VP_OPTIM_ADAMW) {
        const double t = (double)o->steps;
        const double bc1 = 1.0 - pow((double)c->beta1, t), bc2 = 1.0 - pow((double)c->beta2, t);
        j.decay = (float)(1.0 - (double)lr * c->weight_decay);
        j.w1 = (float)(1.0 - (double)c->beta1), j.b2 = c->beta2, j.w2 = (float)(1.0 - (double)c->beta2);
        j.step = (float)(-(double)lr / bc1), j.bc2s = (float)sqrt(bc2);
    } else {
        j.nlr = -lr;
    }
    vp_parallel_for((uint64_t)nch, 1, update_range, &j);
    return 0;
}

int vp_optim_state_count(const vp_optim *o) { return o->cfg.kind == VP_OPTIM_ADAMW ? 2 : 1; }

float *vp_optim_state(vp_optim *o, int i, const char **name, int64_t *n)
{
    if (i < 0 || i >= vp_optim_state_count(o)) return NULL;
    if (name) *name = o->cfg.kind == VP_OPTIM_ADAMW ? (i ? "adamw.exp_avg_sq" : "adamw.exp_avg") : "sgd.momentum_buffer";
    if (n) *n = o->n;
    return i ? o->s1 : o->s0;
}

int64_t vp_optim_step_count(const vp_optim *o) { return o->steps; }
void vp_optim_set_step_count(vp_optim *o, int64_t steps) { o->steps = steps < 0 ? 0 : steps; }
