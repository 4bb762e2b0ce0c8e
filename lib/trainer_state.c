/* trainer_state.c - checkpoints, resume and the JSON log of a training run (see trainer_int.h and
 * trainer.h for the files; validation is in trainer_val.c). */
#include "trainer_int.h"
#include "trainer_cuda.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

double vp_trun_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void vp_trun_log(vp_trun *r, const char *fmt, ...)
{
    if (!r->log) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(r->log, fmt, ap);
    va_end(ap);
    fputc('\n', r->log);
    fflush(r->log);
}

/* ---- checkpoints */

#define NMETA 24
struct kv {
    int n;
    const char *k[NMETA];
    char *v[NMETA];
};

static void kv_add(struct kv *m, const char *k, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void kv_add(struct kv *m, const char *k, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) vp_die(VP_ERR_RUNTIME, "out of memory");
    va_end(ap);
    m->k[m->n] = k, m->v[m->n] = s;
    m->n++;
}

static void kv_free(struct kv *m)
{
    for (int i = 0; i < m->n; i++) free(m->v[i]);
    m->n = 0;
}

static void dir_path(char *out, size_t n, const vp_trun *r, const char *file)
{
    snprintf(out, n, "%s/%s", r->cfg->out_dir, file);
}

int vp_trun_save(vp_trun *r, int is_best)
{
    if (r->dist.rank != 0) return 0;
    if (r->gpu && vp_tcuda_sync(r->gpu)) return -1; /* the device optimizer state into r->o */
    const vp_trainer_cfg *c = r->cfg;
    char path[4200];
    int rc = 0;
    if (mkdir(c->out_dir, 0755) && errno != EEXIST)
        return vp_error("%s: cannot create the checkpoint directory: %s", c->out_dir, strerror(errno));
    /* 1. the training state, the file --resume reads */
    int ns = vp_optim_state_count(r->o);
    const char **names = vp_malloc((size_t)(ns + 1) * sizeof *names);
    const float **data = vp_malloc((size_t)(ns + 1) * sizeof *data);
    int64_t *len = vp_malloc((size_t)(ns + 1) * sizeof *len);
    names[0] = "params";
    data[0] = vp_trainable_flat_params(r->m, &len[0]);
    for (int i = 0; i < ns; i++) data[i + 1] = vp_optim_state(r->o, i, &names[i + 1], &len[i + 1]);
    char rng[65], *hist = vp_thist_to_json(&r->hist);
    vp_rng_to_hex(&r->rng, rng);
    struct kv m = {0};
    kv_add(&m, "voxpipe.train.format", "1");
    kv_add(&m, "voxpipe.train.arch", "%s", vp_trainable_arch(r->m));
    kv_add(&m, "voxpipe.train.epoch", "%ld", r->epoch);
    kv_add(&m, "voxpipe.train.iter", "%ld", r->iter);
    kv_add(&m, "voxpipe.train.step", "%lld", (long long)r->step);
    kv_add(&m, "voxpipe.train.optim_steps", "%lld", (long long)vp_optim_step_count(r->o));
    kv_add(&m, "voxpipe.train.rng", "%s", rng);
    kv_add(&m, "voxpipe.train.consumed", "%llu", (unsigned long long)r->consumed);
    kv_add(&m, "voxpipe.train.loss_sum", "%.17g", r->loss_sum);
    kv_add(&m, "voxpipe.train.best", "%.17g", r->best);
    kv_add(&m, "voxpipe.train.history", "%s", hist);
    kv_add(&m, "voxpipe.train.world_size", "%d", r->dist.size);
    const vp_loss_scaler *sc = vp_tcuda_scaler(r->gpu);
    if (sc && sc->enabled) { /* torch.cuda.amp.GradScaler.state_dict()'s fields */
        kv_add(&m, "voxpipe.train.loss_scale", "%.9g", sc->scale);
        kv_add(&m, "voxpipe.train.loss_scale_growth", "%.9g", sc->growth);
        kv_add(&m, "voxpipe.train.loss_scale_backoff", "%.9g", sc->backoff);
        kv_add(&m, "voxpipe.train.loss_scale_interval", "%d", sc->interval);
        kv_add(&m, "voxpipe.train.loss_scale_tracker", "%d", sc->tracker);
    }
    free(hist);
    dir_path(path, sizeof path, r, "last.optim.safetensors");
    rc = vp_tst_write(path, ns + 1, names, data, len, m.n, m.k, (const char *const *)m.v);
    free(names), free(data), free(len);
    kv_free(&m);
    if (rc) return -1;

    /* 2. the model, with what inference needs */
    const char *labels = r->labels_json ? r->labels_json : "{}";
    if (c->arch == VP_TRAINER_SEGRESNET) { /* network axes = volume (x, y, z) */
        kv_add(&m, "voxpipe.roi", "%d,%d,%d", c->patch[0], c->patch[1], c->patch[2]);
        kv_add(&m, "voxpipe.spacing", "%.9g,%.9g,%.9g", r->spacing[0], r->spacing[1], r->spacing[2]);
        kv_add(&m, "voxpipe.labels", "%s", labels);
    } else { /* (z, y, x); patch_size comes with the architecture */
        kv_add(&m, "spacing", "%.9g,%.9g,%.9g", r->spacing[2], r->spacing[1], r->spacing[0]);
        kv_add(&m, "labels", "%s", labels);
    }
    kv_add(&m, "voxpipe.train.epoch", "%ld", r->epoch);
    kv_add(&m, "voxpipe.train.step", "%lld", (long long)r->step);
    dir_path(path, sizeof path, r, "last.safetensors");
    rc = vp_trainable_save(r->m, path, m.n, m.k, (const char *const *)m.v);
    if (!rc && is_best) {
        dir_path(path, sizeof path, r, "best.safetensors");
        rc = vp_trainable_save(r->m, path, m.n, m.k, (const char *const *)m.v);
    }
    kv_free(&m);
    if (rc) return -1;

    /* 3. the curves */
    char title[300];
    snprintf(title, sizeof title, "%s: loss and mean validation Dice per epoch", c->prog);
    char *svg = vp_thist_svg(&r->hist, title);
    dir_path(path, sizeof path, r, "curves.svg");
    rc = vp_atomic_write_text(path, svg, strlen(svg));
    free(svg);
    if (rc) return -1;
    vp_trun_log(r, "{\"type\":\"checkpoint\",\"epoch\":%ld,\"iter\":%ld,\"step\":%lld,\"best\":%s}", r->epoch, r->iter,
                (long long)r->step, is_best ? "true" : "false");
    return 0;
}

/* ---- resume */

static int meta_ll(const vp_safetensors *st, const char *path, const char *key, long long lo, long long *out)
{
    const char *s = vp_st_meta(st, key);
    char *e;
    if (!s) return vp_error("%s: corrupt training state: no metadata %s", path, key);
    errno = 0;
    long long v = strtoll(s, &e, 10);
    if (e == s || *e || errno || v < lo) return vp_error("%s: corrupt training state: metadata %s '%s'", path, key, s);
    *out = v;
    return 0;
}

int vp_trun_load_state(vp_trun *r, vp_safetensors **st)
{
    char path[4200], mpath[4200];
    dir_path(path, sizeof path, r, "last.optim.safetensors");
    dir_path(mpath, sizeof mpath, r, "last.safetensors");
    *st = NULL;
    if (access(path, R_OK)) return vp_error("%s: cannot resume: %s", path, strerror(errno)), VP_ERR_RUNTIME;
    if (access(mpath, R_OK)) return vp_error("%s: cannot resume: %s", mpath, strerror(errno)), VP_ERR_RUNTIME;
    *st = vp_st_open(path);
    if (!*st) return VP_ERR_DATA;
    long long ep, it, step, cons;
    const char *rng = vp_st_meta(*st, "voxpipe.train.rng"), *hist = vp_st_meta(*st, "voxpipe.train.history");
    const char *ls = vp_st_meta(*st, "voxpipe.train.loss_sum"), *best = vp_st_meta(*st, "voxpipe.train.best");
    const char *fmt = vp_st_meta(*st, "voxpipe.train.format");
    int bad = !fmt || strcmp(fmt, "1");
    if (bad) vp_error("%s: corrupt training state: voxpipe.train.format is not \"1\"", path);
    if (!bad) bad = meta_ll(*st, path, "voxpipe.train.epoch", 0, &ep) || meta_ll(*st, path, "voxpipe.train.iter", 0, &it) ||
                    meta_ll(*st, path, "voxpipe.train.step", 0, &step) || meta_ll(*st, path, "voxpipe.train.consumed", 1, &cons);
    if (!bad && vp_rng_from_hex(&r->rng, rng)) bad = 1, vp_error("%s: corrupt training state: voxpipe.train.rng", path);
    if (!bad && (!hist || vp_thist_from_json(&r->hist, hist))) bad = 1, vp_error("%s: corrupt training state: voxpipe.train.history", path);
    char *e1 = NULL, *e2 = NULL;
    if (!bad && ls && best) r->loss_sum = strtod(ls, &e1), r->best = strtod(best, &e2);
    if (!bad && (!e1 || *e1 || !e2 || *e2)) bad = 1, vp_error("%s: corrupt training state: loss_sum / best", path);
    if (!bad && (it > r->cfg->iters || r->hist.n != ep))
        bad = 1, vp_error("%s: training state at epoch %lld iteration %lld does not fit --iters-per-epoch %ld or its history",
                          path, ep, it, r->cfg->iters);
    if (bad) {
        vp_st_close(st);
        return VP_ERR_DATA;
    }
    r->epoch = (long)ep, r->iter = (long)it, r->step = step, r->consumed = (uint64_t)cons;
    vp_info("resuming %s at epoch %lld, iteration %lld (step %lld)", r->cfg->out_dir, ep, it, step);
    return 0;
}

static int restore_array(const vp_safetensors *st, const char *path, const char *name, float *dst, int64_t n)
{
    const vp_st_tensor *t = vp_st_find(st, name);
    if (!t) return vp_error("%s: corrupt training state: no tensor '%s'", path, name);
    if (t->ndim != 1 || t->shape[0] != n || strcmp(t->dtype, "F32"))
        return vp_error("%s: tensor '%s': not %lld F32 values as the model needs", path, name, (long long)n);
    vp_tensor *v = vp_st_load(st, name);
    if (!v) return -1;
    memcpy(dst, v->data, (size_t)n * sizeof *dst);
    vp_tensor_free(&v);
    return 0;
}

int vp_trun_restore(vp_trun *r, vp_safetensors *st)
{
    char path[4200];
    dir_path(path, sizeof path, r, "last.optim.safetensors");
    int64_t n;
    float *p = vp_trainable_flat_params(r->m, &n);
    if (restore_array(st, path, "params", p, n)) return VP_ERR_DATA;
    for (int i = 0; i < vp_optim_state_count(r->o); i++) {
        const char *name;
        float *s = vp_optim_state(r->o, i, &name, &n);
        if (restore_array(st, path, name, s, n)) return VP_ERR_DATA;
    }
    long long steps;
    if (meta_ll(st, path, "voxpipe.train.optim_steps", 0, &steps)) return VP_ERR_DATA;
    vp_optim_set_step_count(r->o, steps);
    return 0;
}

/* ---- the loss scaler (GPU path, MATH f16) */

static int meta_f(const vp_safetensors *st, const char *path, const char *key, double lo, double hi, float *out)
{
    const char *s = vp_st_meta(st, key);
    char *e;
    if (!s) return vp_error("%s: corrupt training state: no metadata %s (the loss scaler's state is incomplete)", path, key);
    errno = 0;
    double v = strtod(s, &e);
    float f = (float)v;
    if (e == s || *e || (errno && errno != ERANGE) || !isfinite(f) || !(f >= lo && f <= hi)) /* the float is kept */
        return vp_error("%s: corrupt training state: metadata %s '%s' (expected %g .. %g)", path, key, s, lo, hi);
    *out = f;
    return 0;
}

/* VP_LOSS_SCALE="INIT[,INTERVAL]": GradScaler(init_scale, growth_interval) for a fresh run */
static int scaler_env(vp_loss_scaler *sc)
{
    const char *s = getenv("VP_LOSS_SCALE");
    if (!s || !*s) return 0;
    char *e, *e2 = NULL;
    double init = strtod(s, &e);
    long interval = sc ? sc->interval : 1;
    if (*e == ',') interval = strtol(e + 1, &e2, 10);
    int bad_interval = e2 ? e2 == e + 1 || *e2 || interval < 1 || interval > 1 << 30 : *e != 0;
    if (e == s || !((float)init >= 0x1p-126f && (float)init <= 0x1p127f) || bad_interval)
        return vp_error("VP_LOSS_SCALE '%s': expected INIT[,INTERVAL], INIT a scale in 2^-126 .. 2^127, INTERVAL >= 1", s), VP_ERR_USAGE;
    if (!sc || !sc->enabled) {
        vp_debug("VP_LOSS_SCALE ignored: this run has no f16 loss scaling");
        return 0;
    }
    sc->scale = (float)init, sc->interval = (int)interval, sc->tracker = 0;
    vp_debug("VP_LOSS_SCALE: loss scale %g, growth interval %d", sc->scale, sc->interval);
    return 0;
}

int vp_trun_scaler_init(vp_trun *r, vp_safetensors *st)
{
    vp_loss_scaler *sc = vp_tcuda_scaler(r->gpu);
    if (!st) return scaler_env(sc);
    char path[4200];
    dir_path(path, sizeof path, r, "last.optim.safetensors");
    if (!vp_st_meta(st, "voxpipe.train.loss_scale")) {
        if (sc && sc->enabled)
            vp_debug("%s: no loss-scaler state (a checkpoint written before it was saved, or not by an f16 run): "
                     "starting at scale %g, growth tracker 0", path, sc->scale);
        return scaler_env(sc);
    }
    vp_loss_scaler v = vp_loss_scaler_default(1);
    long long interval, tracker;
    if (meta_f(st, path, "voxpipe.train.loss_scale", 0x1p-126, 0x1p127, &v.scale) ||
        meta_f(st, path, "voxpipe.train.loss_scale_growth", 1, 0x1p20, &v.growth) ||
        meta_f(st, path, "voxpipe.train.loss_scale_backoff", 0x1p-20, 1, &v.backoff) ||
        meta_ll(st, path, "voxpipe.train.loss_scale_interval", 1, &interval) ||
        meta_ll(st, path, "voxpipe.train.loss_scale_tracker", 0, &tracker))
        return VP_ERR_DATA;
    if (interval > 1 << 30)
        return vp_error("%s: corrupt training state: metadata voxpipe.train.loss_scale_interval '%lld' (expected 1 .. 2^30)",
                        path, interval), VP_ERR_DATA;
    if (tracker >= interval)
        return vp_error("%s: corrupt training state: loss-scale growth tracker %lld not below its interval %lld", path,
                        tracker, interval), VP_ERR_DATA;
    v.interval = (int)interval, v.tracker = (int)tracker;
    if (!sc || !sc->enabled) {
        vp_debug("%s: loss-scaler state (scale %g) not used: this run has no f16 loss scaling", path, v.scale);
        return 0;
    }
    *sc = v; /* the checkpoint wins over VP_LOSS_SCALE, as GradScaler.load_state_dict over its arguments */
    vp_debug("%s: loss scale %g, growth tracker %d of %d restored", path, v.scale, v.tracker, v.interval);
    return 0;
}

/* ---- validation */
