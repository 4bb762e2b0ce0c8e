/* trainer.c - set-up and the training loop of train-ressegnet / train-unet (see trainer.h). */
#include "trainer_int.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frame.h"
#include "trainer_cuda.h"
#include "util.h"

volatile sig_atomic_t vp_trainer_stop;

static void on_stop(int sig) { vp_trainer_stop = sig; }

int vp_trainer_parse_patch(const char *s, int patch[3])
{
    char tail;
    if (sscanf(s, "%d,%d,%d%c", &patch[0], &patch[1], &patch[2], &tail) != 3) return -1;
    int64_t nv = 1;
    for (int a = 0; a < 3; a++) {
        if (patch[a] < 1 || patch[a] > 1024) return -1;
        nv *= patch[a];
    }
    return nv <= (1 << 24) ? 0 : -1;
}

/* ---- data */

/* meta.labels ({"1": "name", ...}) as a JSON object string; max id into *maxid. NULL when absent. */
static char *labels_json(const vp_case *c, int *maxid)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    char *out = NULL;
    *maxid = -1;
    if (!vp_case_meta_parse(c, "labels", &u) && u.data.type == MSGPACK_OBJECT_MAP) {
        size_t cap = 64, n = 0;
        out = vp_malloc(cap);
        out[n++] = '{';
        const msgpack_object_map *m = &u.data.via.map;
        for (uint32_t i = 0; i < m->size; i++) {
            const msgpack_object *k = &m->ptr[i].key, *v = &m->ptr[i].val;
            if (k->type != MSGPACK_OBJECT_STR || v->type != MSGPACK_OBJECT_STR) continue;
            char key[64], val[256];
            snprintf(key, sizeof key, "%.*s", (int)(k->via.str.size < 63 ? k->via.str.size : 63), k->via.str.ptr);
            snprintf(val, sizeof val, "%.*s", (int)(v->via.str.size < 255 ? v->via.str.size : 255), v->via.str.ptr);
            int id = atoi(key);
            if (id > *maxid) *maxid = id;
            char *ek = vp_json_escape(key), *ev = vp_json_escape(val);
            size_t need = strlen(ek) + strlen(ev) + 8;
            if (n + need + 2 > cap) cap = 2 * (n + need + 2), out = vp_realloc(out, cap);
            n += (size_t)sprintf(out + n, "%s\"%s\":\"%s\"", n > 1 ? "," : "", ek, ev);
            free(ek);
            free(ev);
        }
        out[n++] = '}';
        out[n] = 0;
    }
    msgpack_unpacked_destroy(&u);
    return out;
}

/* Read one case from -i into the cache or the validation split. 1 read, 0 end, or -(exit code). */
static int read_one(vp_trun *r)
{
    if (r->in_eof) return 0;
    vp_case *c = NULL;
    int rc = vp_case_read(r->in, &c);
    if (rc <= 0) {
        r->in_eof = 1;
        return rc;
    }
    if (!r->consumed) { /* the first case names the classes and the spacing */
        int maxid;
        r->labels_json = labels_json(c, &maxid);
        if (!r->classes) {
            if (maxid < 1) {
                vp_error("%s: case '%s': no meta.labels to count the classes: give --classes", vp_in_name(r->in), c->id);
                vp_case_free(&c);
                return -VP_ERR_USAGE;
            }
            r->classes = maxid + 1;
        }
    }
    vp_tcase *t;
    rc = vp_tcase_from_case(c, r->cfg->image_name, r->cfg->label_name, r->classes, vp_in_name(r->in), &t);
    vp_case_free(&c);
    if (rc) return -rc;
    if (!r->consumed) {
        for (int a = 0; a < 3; a++)
            r->spacing[a] = sqrt(t->affine[a] * t->affine[a] + t->affine[4 + a] * t->affine[4 + a] + t->affine[8 + a] * t->affine[8 + a]);
        r->in_ch = (int)t->nc;
    } else if (t->nc != r->in_ch) {
        vp_error("%s: case '%s': volume '%s' has %lld channels, the first case %d", vp_in_name(r->in), t->id,
                 r->cfg->image_name, (long long)t->nc, r->in_ch);
        vp_tcase_free(&t);
        return -VP_ERR_DATA;
    }
    r->consumed++;
    if (!r->cfg->val_spec && r->cfg->val_split > 0 && vp_tcase_is_val(t->id, r->cfg->val_split)) {
        if (r->nval == r->capval) r->capval = r->capval ? 2 * r->capval : 8, r->val = vp_realloc(r->val, (size_t)r->capval * sizeof *r->val);
        r->val[r->nval++] = t;
    } else {
        int ev = vp_tcache_insert(&r->cache, t);
        if (ev) vp_debug("cache full (%zu bytes): %d oldest case(s) replaced", r->cache.budget, ev);
    }
    return 1;
}

/* Fill the cache at the start: until the first eviction or the end of the stream; on resume,
 * exactly the cases consumed before (the same cache, since eviction is first in, first out). */
static int initial_fill(vp_trun *r, uint64_t replay)
{
    for (;;) {
        if (replay && r->consumed >= replay) break;
        uint64_t ev = r->cache.evicted;
        int rc = read_one(r);
        if (rc < 0) return -rc;
        if (rc == 0) {
            if (replay && r->consumed < replay)
                return vp_error("%s: the stream ended after %llu cases; the checkpoint was made after %llu",
                                vp_in_name(r->in), (unsigned long long)r->consumed, (unsigned long long)replay), VP_ERR_DATA;
            break;
        }
        if (!replay && r->cache.evicted > ev) break;
    }
    if (r->cache.n == 0) return vp_error("%s: no training case in the stream", r->in ? vp_in_name(r->in) : "input"), VP_ERR_DATA;
    return 0;
}

static int read_val_stream(vp_trun *r, const char *spec)
{
    vp_in *in = vp_in_open(spec);
    if (!in) return VP_ERR_RUNTIME;
    vp_case *c;
    int rc;
    while ((rc = vp_case_read(in, &c)) > 0) {
        vp_tcase *t;
        int e = vp_tcase_from_case(c, r->cfg->image_name, r->cfg->label_name, r->classes, vp_in_name(in), &t);
        vp_case_free(&c);
        if (e) { vp_in_close(&in); return e; }
        if (r->nval == r->capval) r->capval = r->capval ? 2 * r->capval : 8, r->val = vp_realloc(r->val, (size_t)r->capval * sizeof *r->val);
        r->val[r->nval++] = t;
    }
    vp_in_close(&in);
    return rc < 0 ? -rc : 0;
}

/* ---- model */

static int make_model(vp_trun *r)
{
    const vp_trainer_cfg *c = r->cfg;
    char path[4200];
    if (c->resume) snprintf(path, sizeof path, "%s/last.safetensors", c->out_dir);
    const char *from = c->resume ? path : c->init_path;
    if (from) {
        r->m = vp_trainable_load(from);
        if (!r->m) return VP_ERR_DATA;
        const char *want = c->arch == VP_TRAINER_SEGRESNET ? "segresnet" : "unet";
        if (strcmp(vp_trainable_arch(r->m), want))
            return vp_error("%s: a %s model, not %s", from, vp_trainable_arch(r->m), want), VP_ERR_DATA;
    } else if (c->arch == VP_TRAINER_SEGRESNET) {
        vp_segresnet_cfg s = c->segresnet;
        s.in_channels = r->in_ch, s.out_channels = r->classes;
        r->m = vp_trainable_new_segresnet(&s, c->seed);
    } else {
        vp_unet_cfg u = c->unet;
        u.in_ch = r->in_ch, u.n_classes = r->classes;
        memcpy(u.patch, c->patch, sizeof u.patch);
        r->m = vp_trainable_new_unet(&u, c->seed);
    }
    if (!r->m) return VP_ERR_USAGE;
    const char *name = from ? from : "the model";
    if (vp_trainable_in_channels(r->m) != r->in_ch)
        return vp_error("%s: %d input channels, the image '%s' has %d", name, vp_trainable_in_channels(r->m), c->image_name, r->in_ch), VP_ERR_DATA;
    if (vp_trainable_classes(r->m) != r->classes)
        return vp_error("%s: %d classes, the data %d", name, vp_trainable_classes(r->m), r->classes), VP_ERR_DATA;
    int div[3];
    vp_trainable_divisor(r->m, div);
    for (int a = 0; a < 3; a++)
        if (c->patch[a] % div[a])
            return vp_error("--patch %d,%d,%d: each size must be a multiple of %d,%d,%d for this network", c->patch[0],
                            c->patch[1], c->patch[2], div[0], div[1], div[2]), VP_ERR_USAGE;
    return 0;
}

/* ---- progress bar */

static void progress(vp_trun *r, double loss, double t_run, int64_t steps_run)
{
    if (!r->bar) return;
    const vp_trainer_cfg *c = r->cfg;
    double rate = t_run > 0 ? steps_run / t_run : 0;
    int64_t left = (int64_t)c->epochs * c->iters - r->step;
    double eta = rate > 0 ? left / rate : 0;
    int w = 20, fill = (int)(w * (double)r->iter / (double)c->iters);
    char bar[32];
    for (int i = 0; i < w; i++) bar[i] = i < fill ? '#' : '.';
    bar[w] = 0;
    fprintf(stderr, "\r%s: epoch %ld/%ld [%s] it %ld/%ld loss %.4f %.2f it/s ETA %dh%02dm%02ds ", c->prog, r->epoch + 1,
            c->epochs, bar, r->iter, c->iters, loss, rate, (int)(eta / 3600), (int)fmod(eta / 60, 60), (int)fmod(eta, 60));
}

/* ---- the loop */

static int train(vp_trun *r)
{
    const vp_trainer_cfg *c = r->cfg;
    int bl = (int)(c->batch / r->dist.size), b0 = r->dist.rank * bl;
    int64_t pv = (int64_t)c->patch[0] * c->patch[1] * c->patch[2];
    float *x = vp_malloc((size_t)(bl * r->in_ch * pv) * sizeof *x);
    int32_t *y = vp_malloc((size_t)(bl * pv) * sizeof *y);
    vp_sampler s = {{c->patch[0], c->patch[1], c->patch[2]}, (int)c->batch, c->fg_prob, r->axes};
    int64_t shape[5] = {bl, r->in_ch, c->patch[0], c->patch[1], c->patch[2]}, n;
    vp_tensor xt = vp_tensor_view(x, 5, shape);
    double t0 = vp_trun_now();
    int64_t step0 = r->step;
    int rc = 0;
    while (r->epoch < c->epochs) {
        if (r->iter == 0 && r->epoch > 0 && !r->in_eof && c->replace_rate > 0) { /* SmartCache-style refresh */
            int k = (int)lround(c->replace_rate * r->cache.n);
            for (int i = 0; i < (k < 1 ? 1 : k); i++) {
                int e = read_one(r);
                if (e < 0) { rc = -e; goto out; }
                if (e == 0) break;
            }
        }
        while (r->iter < c->iters) {
            vp_rng before = r->rng;
            vp_sampler_draw(&s, &r->cache, &r->rng, b0, b0 + bl, x, y);
            double loss;
            const vp_loss_cfg *lc = r->gpu ? vp_tcuda_loss(r->gpu, &c->loss) : &c->loss;
            if (vp_train_step_grads(r->m, r->be, &xt, y, lc, &loss)) { rc = vp_cuda_exit_code(VP_ERR_RUNTIME); goto out; }
            float *g = vp_trainable_flat_grads(r->m, &n);
            char what[96];
            snprintf(what, sizeof what, "gradient all-reduce at step %lld", (long long)r->step);
            int e = r->gpu && vp_tcuda_reduces_on_device(r->gpu) ? 0 : vp_dist_allreduce_mean(&r->dist, g, n, c->deterministic, what);
            float ls[2] = {(float)loss, vp_trainer_stop ? 1.0f : 0.0f};
            if (!e) e = vp_dist_allreduce_mean(&r->dist, ls, 2, 1, what);
            if (e == -2) { /* interrupted while the others did not answer: keep the state before this step */
                r->rng = before;
                rc = VP_ERR_INTR;
                goto out;
            }
            if (e) vp_dist_abort(&r->dist, VP_ERR_RUNTIME);
            float lr = vp_optim_lr(r->o, (int)r->epoch, (int)c->epochs);
            double gnorm = 0;
            float *p = vp_trainable_flat_params(r->m, &n);
            int skipped = 0;
            e = r->gpu ? vp_tcuda_step(r->gpu, &r->dist, g, n, lr, &gnorm, &skipped, what) : vp_optim_step(r->o, p, g, n, lr, &gnorm);
            if (e == -2) vp_dist_abort(&r->dist, VP_ERR_RUNTIME);
            if (e) { rc = r->gpu ? vp_cuda_exit_code(VP_ERR_RUNTIME) : VP_ERR_RUNTIME; goto out; }
            if (skipped) vp_debug("step %lld: non-finite gradients: skipped, loss scale halved", (long long)r->step);
            r->step++;
            r->iter++;
            r->loss_sum += ls[0];
            vp_trun_log(r, "{\"type\":\"iter\",\"epoch\":%ld,\"iter\":%ld,\"step\":%lld,\"loss\":%.8g,\"lr\":%.8g,\"grad_norm\":%.8g,\"t\":%.4f}",
                        r->epoch, r->iter - 1, (long long)r->step, ls[0], lr, gnorm, vp_trun_now() - r->t_start);
            progress(r, ls[0], vp_trun_now() - t0, r->step - step0);
            if (ls[1] > 0) { /* every rank saw the request: stop after this step */
                rc = VP_ERR_INTR;
                goto out;
            }
        }
        double mean = r->loss_sum / (double)c->iters;
        vp_thist_add(&r->hist, mean, NAN);
        vp_trun_log(r, "{\"type\":\"epoch\",\"epoch\":%ld,\"loss\":%.8g,\"steps\":%lld}", r->epoch, mean, (long long)r->step);
        int is_best = 0;
        if (c->val_every > 0 && (r->epoch + 1) % c->val_every == 0 && r->nval && r->dist.rank == 0) {
            double d = vp_trun_validate(r);
            if (d == -2) { rc = VP_ERR_RUNTIME; goto out; }
            vp_thist_set_dice(&r->hist, d);
            if (!isnan(d) && d > r->best) r->best = d, is_best = 1;
        }
        r->epoch++, r->iter = 0, r->loss_sum = 0; /* a checkpoint holds the state before the next epoch */
        if ((c->save_every > 0 && r->epoch % c->save_every == 0) || r->epoch == c->epochs || is_best)
            if (vp_trun_save(r, is_best)) { rc = VP_ERR_RUNTIME; goto out; }
    }
out:
    if (r->bar) fputc('\n', stderr);
    if (rc == VP_ERR_INTR && vp_trun_save(r, 0)) rc = VP_ERR_RUNTIME;
    free(x);
    free(y);
    return rc;
}

static void trun_free(vp_trun *r)
{
    vp_tcache_free(&r->cache);
    for (int i = 0; i < r->nval; i++) vp_tcase_free(&r->val[i]);
    free(r->val);
    if (r->in) vp_in_close(&r->in);
    free(r->labels_json);
    vp_tcuda_free(&r->gpu, &r->dist);
    vp_trainable_free(&r->m);
    vp_optim_free(&r->o);
    vp_thist_free(&r->hist);
    if (r->log) fclose(r->log);
}

/* in_spec with "{rank}" replaced */
static char *rank_spec(const char *spec, int rank)
{
    const char *p = strstr(spec, "{rank}");
    char *out = vp_malloc(strlen(spec) + 16);
    if (!p) strcpy(out, spec);
    else sprintf(out, "%.*s%d%s", (int)(p - spec), spec, rank, p + 6);
    return out;
}

static int setup(vp_trun *r)
{
    const vp_trainer_cfg *c = r->cfg;
    if (c->batch % r->dist.size)
        return vp_error("--batch %ld is the global batch: it must be a multiple of the %d ranks", c->batch, r->dist.size), VP_ERR_USAGE;
    if (r->dist.rank == 0) { /* the directory is made at the first checkpoint: a failed start leaves nothing */
        char parent[4200];
        snprintf(parent, sizeof parent, "%s", c->out_dir);
        char *slash = strrchr(parent, '/');
        if (!slash) strcpy(parent, ".");
        else if (slash == parent) parent[1] = 0;
        else *slash = 0;
        struct stat sb;
        const char *why = NULL;
        if (stat(c->out_dir, &sb)) why = access(parent, W_OK) ? strerror(errno) : NULL;
        else if (!S_ISDIR(sb.st_mode)) why = "not a directory";
        else if (access(c->out_dir, W_OK)) why = strerror(errno);
        if (why) return vp_error("%s: cannot write checkpoints there: %s", c->out_dir, why), VP_ERR_RUNTIME;
    }
    vp_safetensors *st = NULL;
    if (c->resume) {
        int e = vp_trun_load_state(r, &st);
        if (e) return e;
    }
    if (r->dist.rank == 0 && c->log_json) {
        r->log = fopen(c->log_json, c->resume ? "a" : "w");
        if (!r->log) {
            vp_st_close(&st);
            return vp_error("%s: cannot open the JSON log: %s", c->log_json, strerror(errno)), VP_ERR_RUNTIME;
        }
    }
    char *spec = rank_spec(c->in_spec, r->dist.rank);
    r->in = vp_in_open(spec);
    free(spec);
    uint64_t replay = r->consumed;
    r->consumed = 0;
    int e = r->in ? initial_fill(r, replay) : VP_ERR_RUNTIME;
    if (!e && c->val_spec) e = read_val_stream(r, c->val_spec);
    if (!e) e = make_model(r);
    if (!e) {
        int64_t n;
        vp_trainable_flat_params(r->m, &n);
        r->o = vp_optim_new(&c->optim, n);
        if (!r->o) e = VP_ERR_USAGE;
    }
    if (!e && st) e = vp_trun_restore(r, st);
    if (!e && c->backend && strcmp(c->backend, "cpu")) e = vp_tcuda_open(c->backend, &r->dist, r->m, &c->optim, r->o, &r->be, &r->gpu);
    if (!e) e = vp_trun_scaler_init(r, st);
    vp_st_close(&st);
    if (e) return e;
    vp_info("%d training case(s) cached (%.1f MiB), %d validation case(s), %d classes, %d channel(s), rank %d of %d",
            r->cache.n, r->cache.bytes / 1048576.0, r->nval, r->classes, r->in_ch, r->dist.rank, r->dist.size);
    return 0;
}

int vp_trainer_run(const vp_trainer_cfg *cfg)
{
    vp_trun r = {0};
    r.cfg = cfg;
    r.classes = cfg->classes;
    r.best = -1;
    r.axes = cfg->arch == VP_TRAINER_SEGRESNET ? VP_AXES_XYZ : VP_AXES_ZYX;
    r.be = vp_nn_backend_cpu();
    r.t_start = vp_trun_now();
    vp_rng_seed(&r.rng, cfg->seed ^ 0x5a4d504c45ull); /* the sampler's stream; the model init uses seed itself */
    vp_tcache_init(&r.cache, (size_t)(cfg->cache_mb * 1048576.0));
    if (vp_dist_init(&r.dist, cfg->rank_timeout)) return VP_ERR_USAGE;
    r.dist.deterministic = cfg->deterministic;
    if (cfg->backend && vp_tcuda_check_spec(cfg->backend, &r.dist)) {
        vp_dist_finalize(&r.dist);
        return VP_ERR_USAGE;
    }
    r.dist.stop = &vp_trainer_stop;
    struct sigaction sa = {0};
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    r.bar = r.dist.rank == 0 && vp_verbosity > 0 && isatty(2);
    int rc = setup(&r);
    if (!rc) rc = train(&r);
    if (rc && rc != VP_ERR_INTR && r.dist.size > 1) {
        trun_free(&r);
        vp_dist_abort(&r.dist, rc);
    }
    if (rc == VP_ERR_INTR) vp_error("interrupted: checkpoint of step %lld written to %s", (long long)r.step, cfg->out_dir);
    trun_free(&r);
    vp_dist_finalize(&r.dist);
    return rc;
}
