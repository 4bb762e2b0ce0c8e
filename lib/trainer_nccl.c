/* trainer_nccl.c - GPU ranks: the gradient all-reduce over NCCL (see trainer_dist.h).
 *
 * Compiled only with VP_HAVE_NCCL and VP_HAVE_MPI; called by the trainers' GPU path
 * (lib/trainer_cuda.c) when several ranks train with --backend cuda. Bootstrap: rank 0 calls
 * ncclGetUniqueId and MPI_Bcast sends the 128 bytes to every rank; each rank takes GPU
 * (OMPI_COMM_WORLD_LOCAL_RANK % visible devices). NCCL needs one GPU per rank: two ranks on one
 * GPU are refused by ncclCommInitRank ("Duplicate GPU detected", ncclInvalidUsage), which this
 * file reports as an error on every rank. The communicator is non-blocking (ncclConfig_t.blocking
 * 0) so that both its creation and every all-reduce are polled: ncclCommGetAsyncError reports a
 * failed peer or transport, and a rank that never answers (dead, stopped, hung) ends in
 * ncclCommAbort and an error after timeout_s instead of a hang. With --deterministic the
 * algorithm and protocol are pinned (trainer_dist.h says what that does and does not guarantee).
 *
 * Test hook (tests/gpu/check_train_state.sh): VP_TEST_NCCL_STALL="R" makes rank R stop before it
 * joins the communicator, "R:K" before its K-th all-reduce (K from 1), as a hung rank would.
 */
#if defined(VP_HAVE_NCCL) && defined(VP_HAVE_MPI)
#include "trainer_dist.h"

#include <cuda_runtime.h>
#include <mpi.h>
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes" /* nccl.h declares f() */
#include <nccl.h>
#pragma GCC diagnostic pop
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static ncclComm_t comm;
static cudaStream_t stream;
static long nreduce; /* all-reduces started by this rank (the test hook counts them) */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void nap(void)
{
    struct timespec ts = {0, 100000};
    nanosleep(&ts, NULL);
}

/* The test hook: stall for ever (until killed) when VP_TEST_NCCL_STALL names this rank and the
 * k-th all-reduce (k 0: the communicator's creation). */
static void test_stall(const vp_dist *d, long k)
{
    const char *s = getenv("VP_TEST_NCCL_STALL");
    if (!s || !*s) return;
    char *e;
    long rank = strtol(s, &e, 10), at = 0;
    if (*e == ':') at = strtol(e + 1, NULL, 10);
    if (rank != d->rank || at != k) return;
    vp_info("rank %d: VP_TEST_NCCL_STALL=%s: stalling %s", d->rank, s, k ? "before an all-reduce" : "before joining NCCL");
    for (;;) pause();
}

/* --deterministic: one algorithm and protocol, unless the user chose them */
static void pin_env(const vp_dist *d)
{
    static const char *const pins[][2] = {{"NCCL_ALGO", "Ring"}, {"NCCL_PROTO", "Simple"}};
    for (int i = 0; i < 2; i++) {
        const char *have = getenv(pins[i][0]);
        if (have && *have) {
            if (d->rank == 0) vp_debug("--deterministic: %s=%s kept as the user set it", pins[i][0], have);
        } else {
            setenv(pins[i][0], pins[i][1], 1);
            if (d->rank == 0) vp_debug("--deterministic: %s=%s", pins[i][0], pins[i][1]);
        }
    }
}

/* Poll the non-blocking communicator until it is ready, fails, or timeout_s passes. */
static int wait_comm(vp_dist *d, const char *what)
{
    double t0 = now_s();
    for (;;) {
        ncclResult_t r = ncclInProgress;
        if (ncclCommGetAsyncError(comm, &r) != ncclSuccess) r = ncclInternalError;
        if (r == ncclSuccess) return 0;
        if (r != ncclInProgress) {
            ncclCommAbort(comm), comm = NULL;
            return vp_error("NCCL: rank %d of %d: %s: %s (a rank died, or two ranks share a GPU?)", d->rank, d->size, what,
                            ncclGetErrorString(r));
        }
        if (now_s() - t0 > d->timeout_s) {
            ncclCommAbort(comm), comm = NULL;
            return vp_error("NCCL: rank %d of %d: %s: no answer from the other ranks within %g s: a rank died or hangs",
                            d->rank, d->size, what, d->timeout_s);
        }
        nap();
    }
}

int vp_dist_nccl_init(vp_dist *d)
{
    if (!d->mpi && d->size > 1) return vp_error("NCCL: several ranks need MPI for the bootstrap");
    if (d->deterministic) pin_env(d); /* before the first NCCL call reads the environment */
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev < 1) return vp_error("NCCL: no CUDA device");
    const char *lr = getenv("OMPI_COMM_WORLD_LOCAL_RANK");
    int dev = (lr ? atoi(lr) : d->rank) % ndev;
    if (cudaSetDevice(dev) != cudaSuccess || cudaStreamCreate(&stream) != cudaSuccess)
        return vp_error("NCCL: rank %d: cannot use GPU %d", d->rank, dev);
    ncclUniqueId id;
    if (d->rank == 0 && ncclGetUniqueId(&id) != ncclSuccess) return vp_error("NCCL: ncclGetUniqueId failed");
    if (d->size > 1 && MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD) != MPI_SUCCESS)
        return vp_error("NCCL: rank %d: MPI_Bcast of the unique id failed", d->rank);
    test_stall(d, 0);
    ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
    cfg.blocking = 0; /* non-blocking: errors and hangs become visible to the polls */
    ncclResult_t r = ncclCommInitRankConfig(&comm, d->size, id, d->rank, &cfg);
    if (r != ncclSuccess && r != ncclInProgress) {
        if (comm) ncclCommAbort(comm), comm = NULL;
        return vp_error("NCCL: rank %d of %d: ncclCommInitRank: %s", d->rank, d->size, ncclGetErrorString(r));
    }
    char what[64];
    snprintf(what, sizeof what, "ncclCommInitRank on GPU %d", dev);
    return wait_comm(d, what);
}

int vp_dist_nccl_allreduce_mean(vp_dist *d, float *dev_buf, int64_t n, const char *what)
{
    test_stall(d, ++nreduce);
    if (!comm) return vp_error("rank %d: %s: no NCCL communicator", d->rank, what);
    ncclResult_t r = ncclAllReduce(dev_buf, dev_buf, (size_t)n, ncclFloat32, ncclAvg, comm, stream);
    if (r != ncclSuccess && r != ncclInProgress) {
        ncclCommAbort(comm), comm = NULL;
        return vp_error("rank %d of %d: %s: ncclAllReduce: %s", d->rank, d->size, what, ncclGetErrorString(r));
    }
    double t0 = now_s();
    /* a non-blocking communicator may answer ncclInProgress before the reduction is on the stream:
     * until the communicator leaves that state the stream's being idle proves nothing */
    int queued = r == ncclSuccess;
    for (;;) {
        if (!queued) {
            ncclResult_t ar = ncclInProgress;
            if (ncclCommGetAsyncError(comm, &ar) != ncclSuccess) ar = ncclInternalError;
            if (ar == ncclSuccess) queued = 1;
            else if (ar != ncclInProgress) {
                ncclCommAbort(comm), comm = NULL;
                return vp_error("rank %d of %d: %s: NCCL: %s: a rank died?", d->rank, d->size, what, ncclGetErrorString(ar));
            }
        }
        cudaError_t q = queued ? cudaStreamQuery(stream) : cudaErrorNotReady;
        if (q == cudaSuccess) return 0;
        if (q != cudaErrorNotReady) {
            ncclCommAbort(comm), comm = NULL;
            return vp_error("rank %d of %d: %s: %s", d->rank, d->size, what, cudaGetErrorString(q));
        }
        ncclResult_t ar = ncclSuccess;
        if (ncclCommGetAsyncError(comm, &ar) == ncclSuccess && ar != ncclSuccess && ar != ncclInProgress) {
            ncclCommAbort(comm), comm = NULL;
            return vp_error("rank %d of %d: %s: NCCL: %s: a rank died?", d->rank, d->size, what, ncclGetErrorString(ar));
        }
        if (now_s() - t0 > d->timeout_s) {
            ncclCommAbort(comm), comm = NULL;
            return vp_error("rank %d of %d: %s: no answer from the other GPUs within %g s: a rank died or hangs", d->rank,
                            d->size, what, d->timeout_s);
        }
        nap();
    }
}

void vp_dist_nccl_finalize(vp_dist *d)
{
    (void)d;
    if (comm) ncclCommDestroy(comm);
    if (stream) cudaStreamDestroy(stream);
    comm = NULL, stream = NULL;
}
#else
typedef int vp_trainer_nccl_unused; /* an empty translation unit is not ISO C */
#endif
