/* filter_prefetch.c - see filter_prefetch.h. One slot between the reader thread and the main
 * thread: the reader fills it (a case read and prepared, the end of the stream, or an error) and
 * waits until the main thread has taken it before reading the next case: the main thread runs
 * case k while the reader reads and prepares case k+1, and nothing further. */
#include "filter_prefetch.h"
#include "endpoint.h"
#include "util.h"

#include <pthread.h>

struct item {
    int r;       /* vp_case_read's result: 1 a case, 0 the end, < 0 -exit code */
    int e;       /* prep's exit code (0: prepared) */
    vp_case *c;  /* the case (r 1) */
    void *job;   /* prep's job */
};

struct slot {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int full, stop;
    struct item it;
    vp_in *in;
    vp_prep_fn prep;
    vp_job_free_fn job_free;
    void *ctx;
};

static void item_free(struct slot *s, struct item *it)
{
    if (it->job) s->job_free(it->job);
    vp_case_free(&it->c);
    it->job = NULL;
}

static void *reader(void *arg)
{
    struct slot *s = arg;
    for (;;) {
        struct item it = {0, 0, NULL, NULL};
        pthread_mutex_lock(&s->mu); /* read only when the slot is empty: at most one case ahead */
        while (s->full && !s->stop) pthread_cond_wait(&s->cv, &s->mu);
        const int stop = s->stop;
        pthread_mutex_unlock(&s->mu);
        if (stop) break;
        it.r = vp_case_read(s->in, &it.c);
        if (it.r > 0) {
            const int e = s->prep(it.c, s->ctx, &it.job);
            it.e = e < 0 ? -e : e;
        }
        pthread_mutex_lock(&s->mu);
        if (s->stop) {
            pthread_mutex_unlock(&s->mu);
            item_free(s, &it);
            break;
        }
        s->it = it, s->full = 1;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        if (it.r <= 0 || it.e) break; /* the end, or an error: read no further (as vp_filter_run) */
    }
    return NULL;
}

int vp_filter_run_prefetch(const char *program, const char *in_spec, const char *out_spec, vp_prep_fn prep, vp_run_fn run,
                           vp_job_free_fn job_free, void *ctx)
{
    vp_in *in = vp_in_open(in_spec);
    if (!in) return VP_ERR_RUNTIME;
    vp_out *out = vp_out_open(out_spec, 0);
    if (!out) {
        vp_in_close(&in);
        return VP_ERR_RUNTIME;
    }
    struct slot s = {.in = in, .prep = prep, .job_free = job_free, .ctx = ctx};
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    pthread_t th;
    if (pthread_create(&th, NULL, reader, &s)) {
        vp_error("cannot start the reader thread");
        vp_in_close(&in), vp_out_close(&out, 0);
        return VP_ERR_RUNTIME;
    }
    int r, rc = 0;
    for (;;) {
        pthread_mutex_lock(&s.mu);
        while (!s.full) pthread_cond_wait(&s.cv, &s.mu);
        struct item it = s.it;
        s.full = 0;
        pthread_cond_broadcast(&s.cv);
        pthread_mutex_unlock(&s.mu);
        r = it.r;
        if (r <= 0) break;
        int e = it.e ? it.e : run(it.c, ctx, it.job);
        if (e) rc = e < 0 ? -e : e;
        else {
            vp_case_add_provenance(it.c, program);
            if (vp_case_write(out, it.c)) rc = VP_ERR_RUNTIME;
        }
        item_free(&s, &it);
        if (rc) break;
    }
    pthread_mutex_lock(&s.mu); /* stop the reader (it finishes the case it is reading) */
    s.stop = 1;
    pthread_cond_broadcast(&s.cv);
    pthread_mutex_unlock(&s.mu);
    pthread_join(th, NULL);
    if (s.full) item_free(&s, &s.it);
    pthread_mutex_destroy(&s.mu);
    pthread_cond_destroy(&s.cv);
    vp_in_close(&in);
    if (!rc && r < 0) rc = -r;
    if (rc) {
        vp_out_close(&out, 0);
        return rc;
    }
    return vp_stream_finish(&out) ? VP_ERR_RUNTIME : 0;
}
