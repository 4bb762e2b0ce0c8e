/* parallel.c - see parallel.h */
#include "parallel.h"
#include "cli.h"
#include "util.h"

#include <pthread.h>
#include <stdlib.h>

struct job {
    uint64_t n, grain, next;
    vp_range_fn fn;
    void *ctx;
    pthread_mutex_t mu;
};

struct worker_arg {
    struct job *job;
    int id;
};

static void *run(void *p)
{
    struct worker_arg *w = p;
    struct job *j = w->job;
    for (;;) {
        pthread_mutex_lock(&j->mu);
        uint64_t b = j->next;
        j->next = b + j->grain < j->n ? b + j->grain : j->n;
        uint64_t e = j->next;
        pthread_mutex_unlock(&j->mu);
        if (b >= j->n) break;
        j->fn(j->ctx, b, e, w->id);
    }
    return NULL;
}

int vp_parallel_workers(void) { return vp_threads > 0 ? vp_threads : 1; }

void vp_parallel_for(uint64_t n, uint64_t grain, vp_range_fn fn, void *ctx)
{
    int nt = vp_parallel_workers();
    if (!n) return;
    if (!grain) grain = n / (8 * (uint64_t)nt) ? n / (8 * (uint64_t)nt) : 1;
    if (nt == 1 || n <= grain) {
        for (uint64_t b = 0; b < n; b += grain) fn(ctx, b, b + grain < n ? b + grain : n, 0);
        return;
    }
    struct job j = {n, grain, 0, fn, ctx, PTHREAD_MUTEX_INITIALIZER};
    pthread_t *tid = vp_calloc((size_t)nt, sizeof *tid);
    struct worker_arg *args = vp_calloc((size_t)nt, sizeof *args);
    int started = 0;
    for (int i = 1; i < nt; i++) {
        args[i] = (struct worker_arg){&j, i};
        if (!pthread_create(&tid[started], NULL, run, &args[i])) started++;
    }
    args[0] = (struct worker_arg){&j, 0};
    run(&args[0]);
    for (int i = 0; i < started; i++) pthread_join(tid[i], NULL);
    free(tid);
    free(args);
}
