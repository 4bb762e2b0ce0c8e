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
/* ---- NCCL (GPU ranks; needs VP_HAVE_MPI for the bootstrap). UNTESTED here: no multi-GPU machine.
 * vp_dist_nccl_init: rank 0 creates the unique id, MPI_Bcast sends it, each rank uses GPU
 * (local rank % visible devices). vp_dist_nccl_allreduce_mean: ncclAllReduce(ncclAvg) in place on
 * a device buffer, polled with the same timeout (ncclCommAbort on expiry). 0, or -1 after vp_error(). */
int vp_dist_nccl_init(vp_dist *d);
int vp_dist_nccl_allreduce_mean(vp_dist *d, float *dev_buf, int64_t n, const char *what);
void vp_dist_nccl_finalize(vp_dist *d);
#endif

#endif
