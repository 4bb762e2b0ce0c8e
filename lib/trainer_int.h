/* trainer_int.h - state of one training run, shared by lib/trainer.c (set-up and loop) and
 * lib/trainer_state.c (checkpoints, resume, validation, logs). Internal to the trainers.
 *
 * Ownership: a vp_trun owns every pointer in it; trainer.c frees them at the end of the run.
 */
#ifndef VP_TRAINER_INT_H
#define VP_TRAINER_INT_H

#include <signal.h>
#include <stdio.h>

#include "endpoint.h"
#include "nn_safetensors.h"
#include "trainer.h"
#include "trainer_ckpt.h"
#include "trainer_data.h"
#include "trainer_dist.h"

typedef struct vp_trun {
    const vp_trainer_cfg *cfg;
    vp_dist dist;
    const vp_nn_backend *be;
    enum vp_axes axes;
    /* data */
    vp_tcache cache;
    vp_tcase **val;
    int nval, capval;
    vp_in *in;
    int in_eof;
    uint64_t consumed;      /* cases read from -i (training and split-off validation) */
    int classes, in_ch;
    char *labels_json;      /* meta.labels of the first case as JSON, or NULL */
    double spacing[3];      /* x, y, z of the first case */
    /* model */
    vp_trainable *m;
    vp_optim *o;
    struct vp_tcuda *gpu;   /* the GPU path (--backend cuda...), or NULL */
    /* progress */
    vp_rng rng;
    long epoch, iter;       /* the next iteration to run: epoch index, iteration within it */
    int64_t step;           /* iterations done */
    double loss_sum;        /* over the iterations of the current epoch */
    double best;            /* best mean validation Dice (-1: none yet) */
    vp_thist hist;
    FILE *log;
    double t_start;
    int bar;                /* progress bar on stderr */
} vp_trun;

extern volatile sig_atomic_t vp_trainer_stop;

/* Checkpoint (rank 0 only; others return 0): the state file, last.safetensors, best.safetensors
 * when is_best, curves.svg. 0, or -1 after vp_error(). */
int vp_trun_save(vp_trun *r, int is_best);

/* Open DIR/last.optim.safetensors and read the counters, generator and history into r. Returns 0
 * with *st open (the caller restores params and optimizer from it, then closes), or an exit code
 * after vp_error(): VP_ERR_RUNTIME when missing or unreadable, VP_ERR_DATA when corrupt. */
int vp_trun_load_state(vp_trun *r, vp_safetensors **st);
/* Copy "params" and the optimizer arrays from st into r->m and r->o. 0, or VP_ERR_DATA. */
int vp_trun_restore(vp_trun *r, vp_safetensors *st);

/* After the GPU path is open (r->gpu, or NULL for the CPU), the f16 loss scaler's state (scale,
 * growth, backoff, interval, growth tracker). Resuming (st not NULL): from st's metadata; a
 * checkpoint without it (older, or not from an f16 run) leaves the defaults, with a note under -v;
 * state present but unused (not f16) is checked and ignored. A fresh run (st NULL), or a resumed
 * one whose checkpoint has no scaler state: VP_LOSS_SCALE="INIT[,INTERVAL]" in the environment
 * sets GradScaler's init_scale and growth_interval (default 65536, 2000). 0, or VP_ERR_DATA
 * (malformed state) / VP_ERR_USAGE (malformed VP_LOSS_SCALE) after vp_error(). */
int vp_trun_scaler_init(vp_trun *r, vp_safetensors *st);

/* Validate on r->val (rank 0) as cfg->val_mode says (lib/trainer_val.c): Dice per class, logged;
 * returns the mean over classes (NaN when no class could be scored), or -2 after vp_error() when
 * the forward failed. */
double vp_trun_validate(vp_trun *r);

/* One JSON line to --log-json (rank 0; no-op without the option). */
void vp_trun_log(vp_trun *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Seconds since an arbitrary start (monotonic). */
double vp_trun_now(void);

#endif
