/* trainer_cuda.c - the trainers' GPU path (see trainer_cuda.h). */
#include "trainer_cuda.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn_cuda.h"
#include "util.h"

struct vp_tcuda {
    const vp_nn_backend *be;
    vp_trainable *m;
    vp_cuda_opt *opt;
    vp_loss_scaler sc;
    vp_loss_cfg lc;
    int nccl; /* 1: gradients all-reduced on the device */
    int bound; /* 1: the model's steps run on the device (vp_trainable_bind_device) */
};

static const char *const maths[] = {"f32", "tf32", "f16", "bf16"};

/* spec -> ordinal (-1: not given) and math (NULL: not given); -1 when malformed */
static int parse(const char *spec, long *ord, const char **math)
{
    *ord = -1, *math = NULL;
    if (strncmp(spec, "cuda", 4) || (spec[4] && spec[4] != ':')) return -1;
    if (!spec[4]) return 0;
    const char *p = spec + 5;
    for (int i = 0; i < 4; i++)
        if (!strcmp(p, maths[i])) return *math = maths[i], 0;
    char *end;
    *ord = strtol(p, &end, 10);
    if (end == p || *ord < 0 || *ord > 255) return -1;
    if (!*end) return 0;
    if (*end != ':') return -1;
    for (int i = 0; i < 4; i++)
        if (!strcmp(end + 1, maths[i])) return *math = maths[i], 0;
    return -1;
}

int vp_tcuda_check_spec(const char *spec, const vp_dist *d)
{
    long ord;
    const char *math;
    if (!strcmp(spec, "cpu")) return 0;
    if (parse(spec, &ord, &math))
        return vp_error("--backend '%s': expected cpu, cuda, cuda:N, cuda:MATH or cuda:N:MATH (MATH f32, tf32, f16, bf16)", spec),
               VP_ERR_USAGE;
    if (ord >= 0 && d->size > 1)
        return vp_error("--backend '%s': with %d ranks each rank takes GPU (local rank %% devices): leave N out", spec, d->size),
               VP_ERR_USAGE;
    return 0;
}

int vp_tcuda_open(const char *spec, vp_dist *d, vp_trainable *m, const vp_optim_cfg *cfg, vp_optim *o,
                  const vp_nn_backend **be, vp_tcuda **out)
{
    *out = NULL;
    long ord;
    const char *math;
    if (parse(spec, &ord, &math)) return vp_error("--backend '%s': not a cuda backend", spec), VP_ERR_USAGE;
    if (!math) math = getenv("VP_CUDA_MATH") && *getenv("VP_CUDA_MATH") ? getenv("VP_CUDA_MATH") : "f32";
    int ndev = vp_cuda_device_count();
    if (d->size > 1) {
        const char *lr = getenv("OMPI_COMM_WORLD_LOCAL_RANK");
        ord = ndev > 0 ? (lr ? atoi(lr) : d->rank) % ndev : 0;
    } else if (ord < 0) {
        ord = 0;
    }
    char name[64];
    snprintf(name, sizeof name, "cuda:%ld:%s", ord, math);
    const vp_nn_backend *b = vp_nn_backend_cuda_named(name);
    if (!b) return vp_error("--backend %s: no CUDA backend", spec), VP_ERR_DEVICE;
    vp_tcuda *t = vp_calloc(1, sizeof *t);
    t->be = b, t->m = m;
    t->sc = vp_loss_scaler_default(!strcmp(vp_cuda_math_name(b), "f16"));
#ifdef VP_HAVE_NCCL
    if (d->size > 1) {
        if (vp_dist_nccl_init(d)) {
            free(t);
            return VP_ERR_DEVICE;
        }
        t->nccl = 1;
    }
#endif
    int64_t n;
    const float *p = vp_trainable_flat_params(m, &n);
    t->opt = vp_cuda_opt_new(b, cfg, o, p, n);
    if (!t->opt) {
        vp_tcuda_free(&t, d);
        return vp_cuda_exit_code(VP_ERR_DEVICE);
    }
    /* the device tape: activations, gradients and weights stay on the device (the host copies of
     * the gradients are then stale: only with one rank or NCCL; VP_TRAIN_STAGED=1 keeps the
     * per-op host staging, for comparisons) */
    const char *staged = getenv("VP_TRAIN_STAGED");
    if ((d->size == 1 || t->nccl) && !(staged && !strcmp(staged, "1"))) {
        if (vp_trainable_bind_device(m, b, vp_cuda_opt_dev_params(t->opt), vp_cuda_opt_dev_grads(t->opt))) {
            vp_tcuda_free(&t, d);
            return vp_cuda_exit_code(VP_ERR_DEVICE);
        }
        t->bound = 1;
    }
    char desc[256];
    const char *hl = getenv("VP_TRAIN_HOST_LOSS"); /* the bound step's loss on the host (nn_train.c), for A/B */
    vp_info("training on %s (%s)%s%s%s", b->name, vp_cuda_describe((int)ord, desc, sizeof desc),
            t->sc.enabled ? ", f16 with dynamic loss scaling" : "", t->nccl ? ", gradients all-reduced with NCCL" : "",
            !t->bound ? ", staged on the host" : hl && !strcmp(hl, "1") ? ", device tape, loss on the host" : ", device tape and loss");
    *be = b;
    *out = t;
    return 0;
}

const vp_loss_cfg *vp_tcuda_loss(vp_tcuda *t, const vp_loss_cfg *lc)
{
    t->lc = *lc;
    t->lc.grad_scale = t->sc.enabled ? t->sc.scale : 0.0f;
    return &t->lc;
}

int vp_tcuda_reduces_on_device(const vp_tcuda *t) { return t->nccl; }

int vp_tcuda_step(vp_tcuda *t, vp_dist *d, const float *g, int64_t n, float lr, double *gnorm, int *skipped, const char *what)
{
    if (!t->bound && vp_cuda_opt_upload_grads(t->opt, g)) return -1; /* bound: they are there */
#ifdef VP_HAVE_NCCL
    /* the upload has arrived (vp_cuda_h2d is synchronous); NCCL runs on its own stream, polled */
    if (t->nccl && vp_dist_nccl_allreduce_mean(d, vp_cuda_opt_dev_grads(t->opt), n, what)) return -2;
#else
    (void)d, (void)what;
#endif
    (void)n;
    int64_t np;
    float *p = vp_trainable_flat_params(t->m, &np);
    return vp_cuda_opt_step(t->opt, lr, &t->sc, t->bound ? NULL : p, gnorm, skipped);
}

int vp_tcuda_sync(vp_tcuda *t) { return vp_cuda_opt_download(t->opt, t->bound ? vp_trainable_flat_params(t->m, NULL) : NULL); }

void vp_tcuda_free(vp_tcuda **tp, vp_dist *d)
{
    vp_tcuda *t = *tp;
    if (!t) return;
    if (t->bound) vp_trainable_bind_device(t->m, NULL, NULL, NULL); /* its views point into opt */
    vp_cuda_opt_free(&t->opt);
#ifdef VP_HAVE_NCCL
    if (t->nccl) vp_dist_nccl_finalize(d);
#endif
    (void)d;
    free(t);
    *tp = NULL;
}

/* ---- the loss scaler in checkpoints (issue 7, H5) */

vp_loss_scaler *vp_tcuda_scaler(vp_tcuda *t) { return t ? &t->sc : NULL; }
