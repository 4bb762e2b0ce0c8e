/* trainer_dist.h - data-parallel ranks for the trainers: who am I, how many are we, and the
 * all-reduce that averages the flat gradient buffer before every optimizer step.
 *
 * CPU ranks use MPI when the library was compiled with VP_HAVE_MPI (mpicc / pkg-config ompi-c);
 * without it there is exactly one rank, and a program started by mpirun says so and stops. GPU
 * ranks all-reduce with NCCL (lib/trainer_nccl.c, compiled with VP_HAVE_NCCL and VP_HAVE_MPI: the
 * NCCL unique id is broadcast over MPI); that part is untested on this project's machines.
 *
 * Every collective waits at most timeout_s seconds: a rank that died or hangs makes the others stop
 * with an error naming the collective and the iteration, instead of hanging for ever.
 *
 * Ownership: a vp_dist holds no memory the caller sees; vp_dist_finalize() ends MPI.
 */
#ifndef VP_TRAINER_DIST_H
#define VP_TRAINER_DIST_H

#include <signal.h>
#include <stdint.h>

typedef struct vp_dist {
    int rank, size;
    int mpi;                        /* 1 when MPI was initialised */
    double timeout_s;               /* per collective */
    int deterministic;              /* --deterministic: set by the caller after vp_dist_init (NCCL reads it) */
    volatile sig_atomic_t *stop;    /* a signal flag polled while waiting (may be NULL) */
} vp_dist;

/* One line on what this build can do, e.g. "data parallel: MPI yes, NCCL no". */
const char *vp_dist_build_info(void);

/* Initialise: MPI when built with it (rank, size from MPI_COMM_WORLD), else one rank. 0, or -1
 * after vp_error() (started under mpirun with several ranks but built without MPI). */
int vp_dist_init(vp_dist *d, double timeout_s);

/* buf[0..n) = the mean over ranks of buf (each rank's own values in; every rank gets the same
 * bytes). deterministic: gathered and summed in rank order (the same bytes for the same inputs
 * whatever the MPI algorithm); else MPI_Allreduce(SUM). 0 ok; -1 after vp_error() when the other
 * ranks did not answer within timeout_s; -2 when *stop was raised while waiting and the collective
 * did not complete within 2 s after. With one rank: nothing to do, 0. */
int vp_dist_allreduce_mean(vp_dist *d, float *buf, int64_t n, int deterministic, const char *what);

/* Stop every rank now (MPI_Abort with code); with one rank, exit(code). */
_Noreturn void vp_dist_abort(vp_dist *d, int code);

void vp_dist_finalize(vp_dist *d);

#ifdef VP_HAVE_NCCL
/* ---- NCCL (GPU ranks; needs VP_HAVE_MPI for the bootstrap). Never run on several GPUs yet.
 * vp_dist_nccl_init: rank 0 creates the unique id, MPI_Bcast sends it, each rank uses GPU
 * (local rank % visible devices); the communicator is made non-blocking and polled: a rank that
 * never joins makes the others stop (ncclCommAbort, error) after timeout_s.
 * vp_dist_nccl_allreduce_mean: ncclAllReduce(ncclAvg) in place on a device buffer, polled with
 * ncclCommGetAsyncError and the same timeout (ncclCommAbort on an error or on expiry; the caller
 * then stops every rank with vp_dist_abort). 0, or -1 after vp_error().
 *
 * Determinism (d->deterministic, --deterministic): NCCL_ALGO=Ring and NCCL_PROTO=Simple are set
 * before the communicator is made (only when the user has not set them; -v says which), so the
 * all-reduce always takes the same ring: each element is summed in the ring's order. NCCL gives
 * bitwise-reproducible results for a fixed number of ranks on a fixed topology (same GPUs, same
 * links, same NCCL version and environment) with a fixed algorithm and protocol; that, and only
 * that, is guaranteed here: two runs on the same machine(s) with the same ranks give the same bytes,
 * and a killed and resumed run the same weights as an uninterrupted one. NOT guaranteed: the same
 * bytes with another rank count, another topology or NCCL version (the ring order and chunking
 * differ), nor the bytes of the CPU/MPI path (whose deterministic mode sums in rank order). The
 * batch split is the same on every path: each rank draws the whole global batch from the shared
 * generator and keeps its slice (ranks reading one stream; with "{rank}" in -i they hold other data). */
int vp_dist_nccl_init(vp_dist *d);
int vp_dist_nccl_allreduce_mean(vp_dist *d, float *dev_buf, int64_t n, const char *what);
void vp_dist_nccl_finalize(vp_dist *d);
#endif

#endif
