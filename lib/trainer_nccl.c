/* trainer_nccl.c - GPU ranks: the gradient all-reduce over NCCL (see trainer_dist.h).
 *
 * UNTESTED on this project's machines (no multi-GPU node); compiled only with VP_HAVE_NCCL and
 * VP_HAVE_MPI; called by the trainers' GPU path (lib/trainer_cuda.c) when several ranks train
 * with --backend cuda (tests/gpu/check_train.sh runs it on a node with 2+ GPUs). Bootstrap: rank 0 calls ncclGetUniqueId and MPI_Bcast sends the 128 bytes to every
 * rank; each rank takes GPU (OMPI_COMM_WORLD_LOCAL_RANK % visible devices). The all-reduce is
 * ncclAllReduce(ncclAvg) in place on a device buffer on the rank's stream, polled so that a dead
 * rank ends in ncclCommAbort and an error after timeout_s instead of a hang.
 */
#if defined(VP_HAVE_NCCL) && defined(VP_HAVE_MPI)
#include "trainer_dist.h"

#include <cuda_runtime.h>
#include <mpi.h>
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes" /* nccl.h declares f() */
#include <nccl.h>
#pragma GCC diagnostic pop
#include <stdlib.h>
#include <time.h>

#include "util.h"

static ncclComm_t comm;
static cudaStream_t stream;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int vp_dist_nccl_init(vp_dist *d)
{
    if (!d->mpi && d->size > 1) return vp_error("NCCL: several ranks need MPI for the bootstrap");
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
    ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
    cfg.blocking = 0; /* non-blocking: errors and hangs become visible to the poll below */
    ncclResult_t r = ncclCommInitRankConfig(&comm, d->size, id, d->rank, &cfg);
    double t0 = now_s();
    while (r == ncclInProgress || (r == ncclSuccess && ncclCommGetAsyncError(comm, &r) == ncclSuccess && r == ncclInProgress)) {
        if (now_s() - t0 > d->timeout_s) {
            ncclCommAbort(comm);
            return vp_error("NCCL: rank %d: communicator not ready within %g s: a rank died?", d->rank, d->timeout_s);
        }
        ncclCommGetAsyncError(comm, &r);
    }
    if (r != ncclSuccess) return vp_error("NCCL: rank %d: ncclCommInitRank: %s", d->rank, ncclGetErrorString(r));
    return 0;
}

int vp_dist_nccl_allreduce_mean(vp_dist *d, float *dev_buf, int64_t n, const char *what)
{
    ncclResult_t r = ncclAllReduce(dev_buf, dev_buf, (size_t)n, ncclFloat32, ncclAvg, comm, stream);
    if (r != ncclSuccess && r != ncclInProgress) return vp_error("rank %d: %s: ncclAllReduce: %s", d->rank, what, ncclGetErrorString(r));
    double t0 = now_s();
    for (;;) {
        cudaError_t q = cudaStreamQuery(stream);
        if (q == cudaSuccess) return 0;
        if (q != cudaErrorNotReady) return vp_error("rank %d: %s: %s", d->rank, what, cudaGetErrorString(q));
        ncclResult_t ar;
        if (ncclCommGetAsyncError(comm, &ar) == ncclSuccess && ar != ncclSuccess && ar != ncclInProgress) {
            ncclCommAbort(comm);
            return vp_error("rank %d: %s: NCCL: %s: a rank died?", d->rank, what, ncclGetErrorString(ar));
        }
        if (now_s() - t0 > d->timeout_s) {
            ncclCommAbort(comm);
            return vp_error("rank %d of %d: %s: no answer from the other GPUs within %g s: a rank died or hangs", d->rank,
                            d->size, what, d->timeout_s);
        }
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
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
