/* nn_train.c - the architecture-independent part of vp_trainable (see nn_train.h and
 * nn_train_int.h): the parameter registry over two flat buffers, seeded initialisation, the
 * training step (forward, loss with deep supervision, backward), save and load.
 *
 * Reverse pass: each architecture writes its backward by hand (nn_train_segresnet.c,
 * nn_train_unet.c). Its forward records every tensor it allocates on a tape (vp_tape) and keeps
 * pointers to the ones backward needs (inputs of convolutions and norms, activation outputs); no
 * forward value is recomputed. The step releases the tape after backward. Every buffer of the
 * step (tape, backward gradients, logits and their gradients) comes from the model's arena
 * (nn_train_arena.h), so a step with the shapes of the previous one allocates nothing.
 */
#include "nn_train.h"
#include "heap.h"
#include "nn_cuda.h"
#include "nn_infer_cuda.h"
#include "nn_cuda_loss.h"
#include "nn_cuda_train.h"
#include "nn_loss.h"
#include "nn_st_write.h"
#include "nn_train_int.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- registry */

vp_trainable *vp_tr_new(const vp_train_ops *ops)
{
    vp_heap_keep_freed(); /* a step allocates and frees the same large activations every iteration */
    vp_trainable *m = vp_calloc(1, sizeof *m);
    m->ops = ops;
    return m;
}

int vp_tr_add(vp_trainable *m, const char *name, int ndim, const int64_t *shape)
{
    if (m->np == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 64;
        vp_param *p = vp_calloc((size_t)m->cap, sizeof *p);
        int64_t *o = vp_calloc((size_t)m->cap, sizeof *o);
        if (m->np) memcpy(p, m->params, (size_t)m->np * sizeof *p), memcpy(o, m->off, (size_t)m->np * sizeof *o);
        free(m->params), free(m->off);
        m->params = p, m->off = o;
    }
    vp_param *p = &m->params[m->np];
    p->name = vp_strdup(name);
    p->w = vp_tensor_view(NULL, ndim, shape);
    p->g = vp_tensor_view(NULL, ndim, shape);
    m->off[m->np] = m->n;
    m->n += vp_tensor_numel(&p->w);
    return m->np++;
}

void vp_tr_finalize(vp_trainable *m)
{
    m->P = vp_calloc((size_t)m->n + 1, sizeof(float));
    m->G = vp_calloc((size_t)m->n + 1, sizeof(float));
    for (int i = 0; i < m->np; i++) m->params[i].w.data = m->P + m->off[i], m->params[i].g.data = m->G + m->off[i];
}

static uint64_t splitmix(vp_rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
static double unif(vp_rng *r) { return ((double)(splitmix(r) >> 11) + 0.5) / 9007199254740992.0; } /* (0, 1) */

void vp_tr_init_uniform(vp_trainable *m, int i, double b, vp_rng *r)
{
    vp_tensor *w = &m->params[i].w;
    for (int64_t k = 0, n = vp_tensor_numel(w); k < n; k++) w->data[k] = (float)((2 * unif(r) - 1) * b);
}

void vp_tr_init_normal(vp_trainable *m, int i, double sd, vp_rng *r)
{
    vp_tensor *w = &m->params[i].w;
    for (int64_t k = 0, n = vp_tensor_numel(w); k < n; k++)
        w->data[k] = (float)(sd * sqrt(-2 * log(unif(r))) * cos(6.283185307179586 * unif(r)));
}

void vp_tr_init_const(vp_trainable *m, int i, float v)
{
    vp_tensor *w = &m->params[i].w;
    for (int64_t k = 0, n = vp_tensor_numel(w); k < n; k++) w->data[k] = v;
}

double vp_tr_fan_in(const vp_trainable *m, int i)
{
    const vp_tensor *w = &m->params[i].w;
    double f = w->ndim > 1 ? (double)w->shape[1] : 1.0;
    for (int d = 2; d < w->ndim; d++) f *= (double)w->shape[d];
    return f;
}

vp_tensor *vp_tape_new(vp_tape *tp, const int64_t shape[5])
{
    if (tp->n == tp->cap) {
        tp->cap = tp->cap ? 2 * tp->cap : 64;
        vp_tensor **t = vp_calloc((size_t)tp->cap, sizeof *t);
        if (tp->n) memcpy(t, tp->t, (size_t)tp->n * sizeof *t);
        free(tp->t);
        tp->t = t;
    }
    return tp->t[tp->n++] = vp_tpool_get(tp->ar, shape);
}

void vp_tape_clear(vp_tape *tp)
{
    for (int i = 0; i < tp->n; i++) vp_tpool_put(tp->ar, &tp->t[i]);
    tp->n = 0;
}

int vp_tr_accumulate(vp_trainable *m, vp_tensor *dst, const vp_tensor *src)
{
    return m->dbe ? m->dbe->add(m->dbe, dst, src, dst) : vp_nn_accumulate(dst, src);
}

int vp_tr_concat_bwd(vp_trainable *m, const vp_tensor *dy, vp_tensor *const *dxs, int n)
{
    return m->dbe ? vp_cuda_split_channels(m->dbe, dy, dxs, n) : vp_nn_concat_bwd(dy, dxs, n);
}

/* ---- the public interface */

int vp_trainable_bind_device(vp_trainable *m, const vp_nn_backend *be, float *dev_params, float *dev_grads)
{
    free(m->dev);
    m->dev = NULL, m->dbe = NULL, m->dP = m->dG = NULL;
    vp_tpool_free(&m->hpool);
    /* the activations' layout as inference picks it (vp_infer_cuda_layout: NDHWC, channels last,
     * for tf32/f16/bf16, NCDHW for f32; VP_CUDA_LAYOUT=ncdhw|ndhwc overrides), VP_TRAIN_LAYOUT=
     * ncdhw|ndhwc overriding both for the trainers alone */
    const char *lay = getenv("VP_TRAIN_LAYOUT");
    const int layout = lay && !strcmp(lay, "ndhwc")   ? VP_CUDA_NDHWC
                       : lay && !strcmp(lay, "ncdhw") ? VP_CUDA_NCDHW
                       : be                           ? vp_infer_cuda_layout(be)
                                                      : VP_CUDA_NCDHW;
    if (vp_tpool_set_device(&m->pool, be, layout)) return -1;
    if (!be) return 0;
    if (!dev_params || !dev_grads) return vp_tpool_set_device(&m->pool, NULL, 0), vp_error("%s: no device buffers to bind", m->ops->arch);
    m->dev = vp_calloc((size_t)m->np + 1, sizeof *m->dev);
    for (int i = 0; i < m->np; i++) {
        const vp_param *p = &m->params[i];
        m->dev[i] = *p;
        m->dev[i].w.data = dev_params + m->off[i], m->dev[i].g.data = dev_grads + m->off[i];
        m->dev[i].w.owns = m->dev[i].g.owns = 0;
        m->dev[i].w.device = m->dev[i].g.device = m->pool.device;
    }
    m->dbe = be, m->dP = dev_params, m->dG = dev_grads;
    return 0;
}

/* The network input as forward takes it: x itself, or (bound to a device, x on the host) x
 * uploaded into a pool tensor (*up, given back by the caller). */
static const vp_tensor *input_of(vp_trainable *m, const vp_tensor *x, vp_tensor **up)
{
    *up = NULL;
    if (!m->dbe || x->device) return x;
    if (!(*up = vp_tpool_get(&m->pool, x->shape)) || vp_cuda_upload(*up, x)) return NULL;
    return *up;
}

void vp_trainable_free(vp_trainable **mp)
{
    vp_trainable *m = *mp;
    if (!m) return;
    if (m->ops && m->impl) m->ops->free_impl(m);
    vp_tpool_free(&m->pool), vp_tpool_free(&m->hpool);
    free(m->dev);
    for (int i = 0; i < m->np; i++) free((char *)m->params[i].name);
    free(m->params), free(m->off), free(m->P), free(m->G);
    free(m);
    *mp = NULL;
}

const char *vp_trainable_arch(const vp_trainable *m) { return m->ops->arch; }
int vp_trainable_in_channels(const vp_trainable *m) { return m->in_ch; }
int vp_trainable_classes(const vp_trainable *m) { return m->classes; }
void vp_trainable_divisor(const vp_trainable *m, int out[3]) { memcpy(out, m->div, sizeof m->div); }
int vp_trainable_nparams(const vp_trainable *m) { return m->np; }
vp_param *vp_trainable_param(vp_trainable *m, int i) { return i >= 0 && i < m->np ? &m->params[i] : NULL; }
float *vp_trainable_flat_params(vp_trainable *m, int64_t *n)
{
    if (n) *n = m->n;
    return m->P;
}
float *vp_trainable_flat_grads(vp_trainable *m, int64_t *n)
{
    if (n) *n = m->n;
    return m->G;
}

static int check_input(const vp_trainable *m, const vp_tensor *x)
{
    char s[96];
    if (vp_nn_check_act(m->ops->arch, "input", x)) return -1;
    if (x->shape[1] != m->in_ch)
        return vp_error("%s: input %s has %lld channels, the model takes %d", m->ops->arch, vp_tensor_shape_str(x, s, sizeof s),
                        (long long)x->shape[1], m->in_ch);
    for (int a = 0; a < 3; a++)
        if (x->shape[2 + a] < 1 || x->shape[2 + a] % m->div[a])
            return vp_error("%s: input %s: spatial sizes must be multiples of (%d,%d,%d)", m->ops->arch,
                            vp_tensor_shape_str(x, s, sizeof s), m->div[0], m->div[1], m->div[2]);
    return 0;
}

int vp_trainable_forward(vp_trainable *m, const vp_nn_backend *be, const vp_tensor *x, vp_tensor **y)
{
    *y = NULL;
    if (check_input(m, x)) return -1;
    vp_tensor *out[VP_TR_MAXOUT] = {0}, *up;
    int nout = 0;
    const vp_tensor *xi = input_of(m, x, &up);
    int rc = xi ? m->ops->forward(m, m->dbe ? m->dbe : be, xi, 0, out, &nout) : -1;
    m->ops->release(m);
    if (!rc && out[0]->device) { /* bound to a device: the logits come back to the host */
        *y = vp_tensor_new(5, out[0]->shape);
        if ((rc = vp_cuda_download(*y, out[0]))) vp_tensor_free(y);
    } else if (!rc) {
        vp_tpool_detach(&m->pool, out[0]), *y = out[0], out[0] = NULL;
    }
    for (int i = 0; i < VP_TR_MAXOUT; i++) vp_tpool_put(&m->pool, &out[i]);
    vp_tpool_put(&m->pool, &up);
    return rc ? -1 : 0;
}

/* The targets of every output the loss uses (w[i] != 0; the lower-resolution ones downsampled on
 * the host), packed in one host buffer and copied to the device in one copy; off[i] is output
 * i's offset. NULL after vp_error(). */
static int32_t *device_targets(vp_trainable *m, const vp_tensor *x, const int32_t *target, vp_tensor *const *out,
                               const double *w, int nout, int64_t *off)
{
    const int64_t N = x->shape[0], id[3] = {x->shape[2], x->shape[3], x->shape[4]};
    int64_t total = 0;
    for (int i = 0; i < nout; i++) {
        off[i] = total;
        if (w[i] != 0) total += N * out[i]->shape[2] * out[i]->shape[3] * out[i]->shape[4];
    }
    int32_t *h = vp_malloc((size_t)(total ? total : 1) * sizeof *h);
    for (int i = 0; i < nout; i++) {
        if (w[i] == 0) continue;
        const int64_t od[3] = {out[i]->shape[2], out[i]->shape[3], out[i]->shape[4]};
        if (i == 0) memcpy(h + off[i], target, (size_t)(N * od[0] * od[1] * od[2]) * sizeof *h);
        else vp_loss_downsample_target(target, N, id, od, h + off[i]);
    }
    int32_t *d = vp_cuda_targets_upload(m->dbe, h, total);
    free(h);
    return d;
}

int vp_train_step_grads(vp_trainable *m, const vp_nn_backend *be, const vp_tensor *x, const int32_t *target,
                        const vp_loss_cfg *lc, double *loss)
{
    *loss = NAN;
    if (check_input(m, x)) return -1;
    if (!target) return vp_error("%s: no target", m->ops->arch);
    const int64_t N = x->shape[0], V = x->shape[2] * x->shape[3] * x->shape[4];
    for (int64_t i = 0; i < N * V; i++)
        if (target[i] < 0 || target[i] >= m->classes)
            return vp_error("%s: target label %d at batch %lld voxel %lld is outside [0, %d) (the model has %d classes)",
                            m->ops->arch, target[i], (long long)(i / V), (long long)(i % V), m->classes, m->classes);
    const int ds = lc->kind == VP_LOSS_NNUNET_DCCE && lc->deep_supervision;
    vp_tensor *out[VP_TR_MAXOUT] = {0}, *dout[VP_TR_MAXOUT] = {0}, *up = NULL, *hout = NULL, *hd = NULL;
    int32_t *dtg = NULL; /* device targets (loss on the device) */
    int nout = 0, rc = -1;
    if (m->dbe) {
        be = m->dbe;
        if (vp_cuda_zero(be, m->dG, m->n)) goto done;
    } else {
        memset(m->G, 0, (size_t)m->n * sizeof(float));
    }
    const vp_tensor *xi = input_of(m, x, &up);
    if (!xi || m->ops->forward(m, be, xi, ds, out, &nout)) goto done;
    double w[VP_TR_MAXOUT];
    if (ds) vp_loss_ds_weights(nout, w);
    else w[0] = 1, nout = nout > 1 ? 1 : nout;
    double total = 0;
    int32_t *tds = NULL;
    /* bound to a device: the loss there too (VP_TRAIN_HOST_LOSS=1: on the host, the reference) */
    const char *hl = getenv("VP_TRAIN_HOST_LOSS");
    int64_t toff[VP_TR_MAXOUT];
    if (m->dbe && !(hl && !strcmp(hl, "1")) && !(dtg = device_targets(m, x, target, out, w, nout, toff))) goto done;
    for (int i = 0; i < nout; i++) {
        if (w[i] == 0) continue;
        const int32_t *t = target;
        if (dtg) {
            double l;
            const double sc = w[i] * (lc->grad_scale > 0 ? lc->grad_scale : 1.0);
            if (!(dout[i] = vp_tpool_get(&m->pool, out[i]->shape)) || vp_cuda_loss_eval(be, lc, out[i], dtg + toff[i], sc, &l, dout[i]))
                goto loss_failed;
            total += w[i] * l;
            continue;
        }
        if (i > 0) {
            int64_t id[3] = {x->shape[2], x->shape[3], x->shape[4]}, od[3] = {out[i]->shape[2], out[i]->shape[3], out[i]->shape[4]};
            free(tds);
            tds = vp_malloc((size_t)(N * od[0] * od[1] * od[2]) * sizeof *tds);
            vp_loss_downsample_target(target, N, id, od, tds);
            t = tds;
        }
        double l;
        const double sc = w[i] * (lc->grad_scale > 0 ? lc->grad_scale : 1.0);
        if (!(dout[i] = vp_tpool_get(&m->pool, out[i]->shape))) goto loss_failed;
        if (m->dbe) { /* the loss on the host: the logits down, their gradient up */
            hout = vp_tpool_get(&m->hpool, out[i]->shape), hd = vp_tpool_get(&m->hpool, out[i]->shape);
            if (vp_cuda_download(hout, out[i]) || vp_loss_eval(lc, hout, t, sc, &l, hd) || vp_cuda_upload(dout[i], hd))
                goto loss_failed;
            vp_tpool_put(&m->hpool, &hout), vp_tpool_put(&m->hpool, &hd);
        } else if (vp_loss_eval(lc, out[i], t, sc, &l, dout[i])) {
            goto loss_failed;
        }
        total += w[i] * l;
    }
    free(tds);
    if (m->ops->backward(m, vp_nn_grad_for(be), dout, nout)) goto done;
    *loss = total;
    rc = 0;
    goto done;
loss_failed:
    free(tds);
done:
    m->ops->release(m);
    if (dtg) vp_cuda_targets_free(be, &dtg);
    vp_tpool_put(&m->pool, &up), vp_tpool_put(&m->hpool, &hout), vp_tpool_put(&m->hpool, &hd);
    for (int i = 0; i < VP_TR_MAXOUT; i++) vp_tpool_put(&m->pool, &out[i]), vp_tpool_put(&m->pool, &dout[i]);
    vp_tpool_trim(&m->pool), vp_tpool_trim(&m->hpool); /* buffers of an earlier patch shape go */
    return rc;
}

int vp_trainable_save(const vp_trainable *m, const char *path, int n_extra, const char *const *keys, const char *const *values)
{
    char ak[VP_TR_MAXMETA][64], av[VP_TR_MAXMETA][256];
    int na = m->ops->meta(m, ak, av);
    const char **k = vp_calloc((size_t)(na + n_extra) + 1, sizeof *k), **v = vp_calloc((size_t)(na + n_extra) + 1, sizeof *v);
    int nk = 0;
    for (int i = 0; i < na; i++) {
        int over = 0; /* an extra pair with the same key replaces the architecture's value */
        for (int e = 0; e < n_extra; e++) over |= !strcmp(keys[e], ak[i]);
        if (!over) k[nk] = ak[i], v[nk++] = av[i];
    }
    for (int e = 0; e < n_extra; e++) {
        int dup = 0;
        for (int f = e + 1; f < n_extra; f++) dup |= !strcmp(keys[e], keys[f]);
        if (!dup) k[nk] = keys[e], v[nk++] = values[e];
    }
    vp_st_entry *t = vp_calloc((size_t)m->np + 1, sizeof *t);
    for (int i = 0; i < m->np; i++)
        t[i] = (vp_st_entry){m->params[i].name, m->params[i].w.ndim, m->params[i].w.shape, m->params[i].w.data};
    int rc = vp_st_write(path, t, m->np, nk, k, v);
    free(t), free(k), free(v);
    return rc;
}

/* The all_modules aliases PyTorch also writes for nnU-Net's conv / norm ("...convs.C.conv.weight"
 * is "...convs.C.all_modules.0.weight"). */
static const vp_st_tensor *find_alias(const vp_safetensors *st, const char *name, char *alias, size_t n)
{
    const vp_st_tensor *t = vp_st_find(st, name);
    if (t) {
        snprintf(alias, n, "%s", name);
        return t;
    }
    const char *p;
    if ((p = strstr(name, ".conv.")) || (p = strstr(name, ".norm."))) {
        snprintf(alias, n, "%.*s.all_modules.%c.%s", (int)(p - name), name, p[1] == 'c' ? '0' : '1', p + 6);
        return vp_st_find(st, alias);
    }
    return NULL;
}

vp_trainable *vp_trainable_load(const char *path)
{
    vp_safetensors *st = vp_st_open(path);
    if (!st) return NULL;
    vp_trainable *m = NULL;
    if (vp_st_meta(st, "voxpipe.arch")) {
        vp_segresnet_cfg c;
        if (!vp_segresnet_cfg_read(st, path, &c)) m = vp_trainable_new_segresnet(&c, 0);
    } else if (vp_st_meta(st, "architecture")) {
        vp_unet_cfg c;
        if (!vp_unet_cfg_from_meta(st, path, &c)) m = vp_trainable_new_unet(&c, 0);
    } else {
        vp_error("%s: __metadata__ has neither voxpipe.arch nor architecture: not a voxpipe model", path);
    }
    if (!m) goto out;
    for (int i = 0; i < m->np; i++) {
        vp_param *p = &m->params[i];
        char name[320];
        if (!find_alias(st, p->name, name, sizeof name)) {
            /* nnU-Net's deep-supervision heads other than the last are not needed for inference */
            if (!strcmp(m->ops->arch, "unet") && !strncmp(p->name, "decoder.seg_layers.", 19)) continue;
            vp_error("%s: tensor %s is missing", path, p->name);
            vp_trainable_free(&m);
            goto out;
        }
        vp_tensor *t = vp_st_load_shape(st, name, p->w.ndim, p->w.shape);
        if (!t) {
            vp_trainable_free(&m);
            goto out;
        }
        memcpy(p->w.data, t->data, (size_t)vp_tensor_numel(t) * sizeof(float));
        vp_tensor_free(&t);
    }
out:
    vp_st_close(&st);
    return m;
}
