/* trainer_dist.c - data-parallel ranks over MPI (see trainer_dist.h). */
#include "trainer_dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

#ifdef VP_HAVE_MPI
#include <mpi.h>
#endif

const char *vp_dist_build_info(void)
{
    return "data parallel: MPI "
#ifdef VP_HAVE_MPI
           "yes"
#else
           "no (built without MPI: one rank)"
#endif
           ", NCCL "
#ifdef VP_HAVE_NCCL
           "yes";
#else
           "no";
#endif
}

static int env_int(const char *name)
{
    const char *s = getenv(name);
    return s ? atoi(s) : 0;
}

int vp_dist_init(vp_dist *d, double timeout_s)
{
    d->rank = 0, d->size = 1, d->mpi = 0, d->timeout_s = timeout_s;
    int launched = env_int("OMPI_COMM_WORLD_SIZE") > 1 || env_int("PMI_SIZE") > 1 || env_int("PMIX_SIZE") > 1;
#ifdef VP_HAVE_MPI
    if (launched) {
        int provided;
        if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
            return vp_error("MPI_Init failed");
        /* errors come back as codes (and the polled collectives time out) instead of aborting silently */
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
        MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
        MPI_Comm_size(MPI_COMM_WORLD, &d->size);
        d->mpi = 1;
    }
#else
    if (launched) return vp_error("started as one of several MPI ranks, but built without MPI (see --help)");
#endif
    return 0;
}

#ifdef VP_HAVE_MPI
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Poll req until done, the timeout, or a stop request (plus a 2 s grace). */
static int wait_req(vp_dist *d, MPI_Request *req, const char *what)
{
    double t0 = now_s(), stop_at = 0;
    for (;;) {
        int done = 0;
        if (MPI_Test(req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS)
            return vp_error("rank %d: %s: MPI error: a rank died?", d->rank, what);
        if (done) return 0;
        double t = now_s();
        if (d->stop && *d->stop) {
            if (!stop_at) stop_at = t + 2;
            else if (t > stop_at) return -2;
        }
        if (t - t0 > d->timeout_s)
            return vp_error("rank %d of %d: %s: no answer from the other ranks within %g s: a rank died or hangs",
                            d->rank, d->size, what, d->timeout_s);
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
}
#endif

int vp_dist_allreduce_mean(vp_dist *d, float *buf, int64_t n, int deterministic, const char *what)
{
    if (d->size == 1) return 0;
#ifdef VP_HAVE_MPI
    if (n > 0x7fffffff / (deterministic ? d->size : 1)) return vp_error("%s: %lld floats: too many for one collective", what, (long long)n);
    MPI_Request req;
    if (!deterministic) {
        if (MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &req) != MPI_SUCCESS)
            return vp_error("rank %d: %s: MPI_Iallreduce failed", d->rank, what);
        int rc = wait_req(d, &req, what);
        if (rc) return rc;
    } else {
        float *all = vp_malloc((size_t)n * (size_t)d->size * sizeof *all);
        if (MPI_Iallgather(buf, (int)n, MPI_FLOAT, all, (int)n, MPI_FLOAT, MPI_COMM_WORLD, &req) != MPI_SUCCESS) {
            free(all);
            return vp_error("rank %d: %s: MPI_Iallgather failed", d->rank, what);
        }
        int rc = wait_req(d, &req, what);
        if (rc) {
            free(all);
            return rc;
        }
        for (int64_t i = 0; i < n; i++) {
            float s = all[i];
            for (int r = 1; r < d->size; r++) s += all[(int64_t)r * n + i];
            buf[i] = s;
        }
        free(all);
    }
    float inv = 1.0f / (float)d->size;
    for (int64_t i = 0; i < n; i++) buf[i] *= inv;
    return 0;
#else
    (void)buf, (void)n, (void)deterministic;
    return vp_error("%s: several ranks without MPI", what);
#endif
}

_Noreturn void vp_dist_abort(vp_dist *d, int code)
{
#ifdef VP_HAVE_MPI
    if (d->mpi) MPI_Abort(MPI_COMM_WORLD, code);
#endif
    (void)d;
    exit(code);
}

void vp_dist_finalize(vp_dist *d)
{
#ifdef VP_HAVE_MPI
    if (d->mpi) MPI_Finalize();
#endif
    d->mpi = 0;
}
