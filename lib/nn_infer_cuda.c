/* nn_infer_cuda.c - whole-volume SegResNet inference on a CUDA device (see nn_infer_cuda.h): the
 * device-resident network of lib/cuda/nn_cuda_segresnet.cu as the predictor of the device sliding
 * window of lib/cuda/nn_cuda_sliding.cu, and the labels put into the output volume. Plain C on
 * nn_cuda.h's interface, so it builds (and fails cleanly) without CUDA too. */
#include "nn_infer_cuda.h"
#include "frame.h"
#include "nn_segresnet.h"
#include "util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct vp_infer_cuda {
    const vp_nn_backend *be;
    vp_cuda_segresnet *m;
    int ordinal, K, in_channels, init_filters;
    vp_cuda_sw_opts o;
    int tiled; /* the last case took the tiled path */
    /* staged inputs: the budget, and the ledger of the staged cases' needs (reader and main thread) */
    pthread_mutex_t mu;
    size_t budget, held;
};

struct vp_infer_cuda_input {
    vp_infer_cuda *ic;
    vp_tensor *x;        /* the host input (pinned when `pinned`); NULL once run */
    int pinned;
    vp_cuda_ahead *ahead; /* its upload on the copy stream, or NULL */
    int was_ahead;
    size_t need;          /* its ledger entry (0 once released) */
    char label[VP_MAX_ID + 16];
};

int vp_infer_cuda_is_cuda(const vp_nn_backend *be)
{
    return be && be->name && !strncmp(be->name, "cuda", 4);
}

int vp_infer_cuda_layout(const vp_nn_backend *be)
{
    const char *e = getenv("VP_CUDA_LAYOUT");
    if (e && !strcmp(e, "ncdhw")) return VP_CUDA_NCDHW;
    if (e && !strcmp(e, "ndhwc")) return VP_CUDA_NDHWC;
    return strcmp(vp_cuda_math_name(be), "f32") ? VP_CUDA_NDHWC : VP_CUDA_NCDHW;
}

vp_infer_cuda *vp_infer_cuda_open(const vp_nn_backend *be, const vp_safetensors *st, const char *where, int batch, int acc_f16)
{
    if (!vp_infer_cuda_is_cuda(be)) return vp_error("%s: backend %s is not a CUDA backend", where, be ? be->name : "(none)"), NULL;
    if (batch < 1 || batch > 64) return vp_error("%s: window batch %d: must be 1..64", where, batch), NULL;
    vp_segresnet *h = vp_segresnet_load(st, where); /* the configuration (and every check of the file) */
    if (!h) return NULL;
    const vp_segresnet_cfg cfg = *vp_segresnet_config(h);
    vp_segresnet_free(&h);
    vp_infer_cuda *ic = vp_calloc(1, sizeof *ic);
    ic->be = be, ic->K = cfg.out_channels, ic->in_channels = cfg.in_channels, ic->init_filters = cfg.init_filters;
    if (sscanf(be->name, "cuda:%d", &ic->ordinal) != 1) ic->ordinal = 0;
    ic->o.batch = batch, ic->o.acc_f16 = acc_f16 != 0, ic->o.layout = vp_infer_cuda_layout(be);
    ic->o.tiled = VP_CUDA_SW_AUTO, ic->o.took_tiled = &ic->tiled;
    if (!(ic->m = vp_cuda_segresnet_load(be, st, where, ic->o.layout))) {
        free(ic);
        return NULL;
    }
    pthread_mutex_init(&ic->mu, NULL);
    ic->budget = vp_cuda_mem_available(ic->ordinal); /* after the weights: what the cases may use */
    return ic;
}

static int predict(void *ctx, const vp_nn_backend *be, const vp_tensor *x, vp_tensor *y)
{
    (void)be;
    return vp_cuda_segresnet_forward(ctx, x, y);
}

/* what one batch of windows needs beyond the sliding window's buffers, for the choice of the tiled
 * path: the network's live activations (at most about 6 full-resolution tensors of init_filters
 * channels, the coarser levels included, and the logits) and 64 MiB of cuDNN workspace and
 * converted operands -- an estimate on the safe side */
static size_t reserve_of(const vp_infer_cuda *ic, const vp_sw_params *p)
{
    const int64_t rv = (int64_t)p->roi[0] * p->roi[1] * p->roi[2];
    return (size_t)(ic->o.batch * rv * 4 * (6 * (int64_t)ic->init_filters + ic->K)) + ((size_t)64 << 20);
}

/* x: host, or device NCDHW (an input uploaded ahead: used in place) */
int vp_infer_cuda_run(vp_infer_cuda *ic, const vp_tensor *x, const vp_sw_params *p, vp_vol *lab, vp_sw_emit_fn emit, void *ectx)
{
    char s[96];
    if (!x || x->ndim != 5 || x->shape[0] != 1 || x->shape[1] != ic->in_channels)
        return vp_error("cuda inference: input %s: expected (1, %d, X, Y, Z)", x ? vp_tensor_shape_str(x, s, sizeof s) : "(none)",
                        ic->in_channels);
    const int64_t nx = x->shape[2], ny = x->shape[3], nz = x->shape[4], S = nx * ny * nz;
    if (!lab || (int64_t)lab->dims[0] != nx || (int64_t)lab->dims[1] != ny || (int64_t)lab->dims[2] != nz || lab->dims[3] != 1 ||
        (lab->dtype != VP_U8 && lab->dtype != VP_U16) || (lab->dtype == VP_U8 && ic->K > 256))
        return vp_error("cuda inference: the label volume does not fit the input (or %d classes in its dtype)", ic->K);
    ic->o.reserve = reserve_of(ic, p);
    int32_t *l = malloc((size_t)S * sizeof *l);
    if (!l) return vp_error("cuda inference: no host memory for %lld labels", (long long)S);
    ic->o.emit = emit, ic->o.ectx = ectx;
    const int rc = vp_cuda_sliding_window(ic->be, x, p, ic->K, &ic->o, predict, ic->m, l, NULL);
    ic->o.emit = NULL, ic->o.ectx = NULL;
    if (rc) {
        free(l);
        return -1;
    }
    /* the network's order (x, y, z), z fastest -> the volume's, x fastest */
    for (int64_t xi = 0; xi < nx; xi++)
        for (int64_t yi = 0; yi < ny; yi++)
            for (int64_t zi = 0; zi < nz; zi++) {
                const int32_t v = l[(xi * ny + yi) * nz + zi];
                const int64_t o = (zi * ny + yi) * nx + xi;
                if (lab->dtype == VP_U16) ((uint16_t *)lab->data)[o] = (uint16_t)v;
                else ((uint8_t *)lab->data)[o] = (uint8_t)v;
            }
    free(l);
    return 0;
}

static double mib(size_t b)
{
    return b / 1048576.0;
}

vp_infer_cuda_input *vp_infer_cuda_stage(vp_infer_cuda *ic, vp_tensor **x, const vp_sw_params *p, const char *label)
{
    char why[160];
    if (vp_cuda_use_device(ic->ordinal)) { /* this thread's allocations belong to ic's device */
        vp_tensor_free(x);
        return NULL;
    }
    vp_infer_cuda_input *in = vp_calloc(1, sizeof *in);
    in->ic = ic;
    snprintf(in->label, sizeof in->label, "case '%s'", label ? label : "");
    in->x = *x, *x = NULL;
    /* the ledger: the case running now (if any) and this one must both fit the budget; every staged
     * case is entered, uploaded ahead or not (it is on the device when it runs) */
    const int64_t S = in->x->shape[2] * in->x->shape[3] * in->x->shape[4];
    const size_t need = (size_t)((in->x->shape[1] + 1) * S) * 4 + reserve_of(ic, p);
    pthread_mutex_lock(&ic->mu);
    const size_t held = ic->held, budget = ic->budget;
    const int fits = held + need <= budget;
    ic->held += need, in->need = need;
    pthread_mutex_unlock(&ic->mu);
    vp_tensor *px = vp_cuda_pinned_try(in->x->ndim, in->x->shape, why, sizeof why);
    if (!px) { /* a note, not an error: the case goes on through the backend's staging buffers */
        vp_debug("%s: no pinned host memory (%s): staged through the backend's buffers, uploaded when it runs", in->label, why);
        return in;
    }
    memcpy(px->data, in->x->data, (size_t)vp_tensor_numel(px) * sizeof(float));
    vp_tensor_free(&in->x);
    in->x = px, in->pinned = 1;
    if (!fits) {
        if (held)
            vp_debug("%s: not uploaded ahead: it (%.1f MiB) and the case on the device (%.1f MiB) do not both fit the %.1f MiB "
                     "budget: uploaded when it runs", in->label, mib(need), mib(held), mib(budget));
        else vp_debug("%s: not uploaded ahead: it needs %.1f MiB, more than the %.1f MiB budget: uploaded when it runs", in->label, mib(need), mib(budget));
        return in;
    }
    if (!(in->ahead = vp_cuda_ahead_upload(ic->ordinal, in->x, in->label, why, sizeof why))) {
        vp_debug("%s: not uploaded ahead (%s): uploaded when it runs", in->label, why);
        return in;
    }
    in->was_ahead = 1;
    if (held)
        vp_debug("%s: uploading on the copy stream while the case before it computes (%.1f MiB; it and that case need %.1f MiB of the "
                 "%.1f MiB budget)", in->label, mib((size_t)vp_tensor_numel(in->x) * 4), mib(held + need), mib(budget));
    else vp_debug("%s: uploading on the copy stream (%.1f MiB; no case on the device now)", in->label, mib((size_t)vp_tensor_numel(in->x) * 4));
    return in;
}

static void input_release(vp_infer_cuda_input *in)
{
    vp_cuda_ahead_free(&in->ahead); /* waits for the copy: the host buffer may go */
    if (in->pinned) vp_cuda_pinned_free(&in->x);
    else vp_tensor_free(&in->x);
}

int vp_infer_cuda_run_staged(vp_infer_cuda *ic, vp_infer_cuda_input *in, const vp_sw_params *p, vp_vol *lab, vp_sw_emit_fn emit,
                             void *ectx)
{
    if (!in || in->ic != ic || !in->x) return vp_error("cuda inference: no staged input (or one already run)");
    vp_cuda_span *sp = vp_cuda_span_begin(ic->ordinal);
    int rc;
    if (in->ahead) {
        const vp_tensor *dx = vp_cuda_ahead_tensor(in->ahead); /* the compute stream waits for its copy */
        rc = dx ? vp_infer_cuda_run(ic, dx, p, lab, emit, ectx) : -1;
    } else rc = vp_infer_cuda_run(ic, in->x, p, lab, emit, ectx);
    char what[VP_MAX_ID + 32];
    snprintf(what, sizeof what, "compute %s", in->label);
    vp_cuda_span_end(&sp, what);
    input_release(in); /* freed on the compute stream after its last kernel */
    return rc;
}

int vp_infer_cuda_input_ahead(const vp_infer_cuda_input *in)
{
    return in ? in->was_ahead : 0;
}

void vp_infer_cuda_input_free(vp_infer_cuda_input **in)
{
    if (!in || !*in) return;
    vp_infer_cuda_input *i = *in;
    input_release(i);
    pthread_mutex_lock(&i->ic->mu);
    i->ic->held -= i->need;
    pthread_mutex_unlock(&i->ic->mu);
    free(i);
    *in = NULL;
}

int vp_infer_cuda_tiled(const vp_infer_cuda *ic)
{
    return ic ? ic->tiled : 0;
}

size_t vp_infer_cuda_peak_bytes(const vp_infer_cuda *ic)
{
    return ic ? vp_cuda_peak_bytes(ic->ordinal, 1) : 0;
}

void vp_infer_cuda_free(vp_infer_cuda **ic)
{
    if (!ic || !*ic) return;
    vp_cuda_segresnet_free(&(*ic)->m);
    pthread_mutex_destroy(&(*ic)->mu);
    free(*ic);
    *ic = NULL;
}
