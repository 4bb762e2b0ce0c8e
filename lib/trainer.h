/* trainer.h - the training loop shared by train-ressegnet and train-unet: a long-running sink that
 * reads (image, label) cases from a stream into a bounded cache, samples patches, trains a
 * vp_trainable (nn_train.h) for epochs x iterations with data-parallel ranks, validates, and writes
 * checkpoints the inference programs load.
 *
 * Files in the output directory (all written atomically; only rank 0 writes):
 *   last.safetensors        the model (vp_trainable_save) with the inference metadata
 *   best.safetensors        the model of the best mean validation Dice so far
 *   last.optim.safetensors  the training state: "params" (the flat weights), the optimizer state
 *                           arrays, and __metadata__ voxpipe.train.* (epoch, iteration, generator
 *                           state, cases consumed, history; for a --backend cuda:...:f16 run the
 *                           loss scaler: voxpipe.train.loss_scale, _growth, _backoff, _interval,
 *                           _tracker, restored on resume; older files without them resume with
 *                           the defaults); --resume continues from it alone, so a kill between two
 *                           renames cannot pair weights with another state
 *   curves.svg              loss per epoch and mean validation Dice
 *
 * Ownership: vp_trainer_run() owns everything it allocates and frees it before returning; the
 * configuration is only read.
 */
#ifndef VP_TRAINER_H
#define VP_TRAINER_H

#include <stdint.h>

#include "nn_train.h"

enum vp_trainer_arch { VP_TRAINER_SEGRESNET, VP_TRAINER_UNET };

/* Validation: the whole held-out cases by the inference program's sliding window (MONAI Label's
 * validation, nnU-Net's final validation), or nnU-Net's cheap online Dice on sampled patches. */
enum vp_val_mode { VP_VAL_WINDOW = 0, VP_VAL_PATCH = 1 };

typedef struct vp_trainer_cfg {
    const char *prog;
    enum vp_trainer_arch arch;
    vp_segresnet_cfg segresnet; /* channels and classes are filled in from the data */
    vp_unet_cfg unet;           /* channels, classes and patch are filled in */
    const char *in_spec;        /* "{rank}" is replaced by the rank */
    const char *val_spec;       /* NULL: --val-split */
    const char *image_name, *label_name;
    const char *out_dir, *init_path, *log_json;
    int resume, deterministic;
    int classes;                /* 0: from the model file or the first case's meta.labels */
    double cache_mb, replace_rate, val_split, fg_prob, rank_timeout;
    long val_every, save_every, epochs, iters, batch;
    int patch[3];               /* network order (d, h, w) */
    uint64_t seed;
    vp_optim_cfg optim;
    vp_loss_cfg loss;
    const char *backend;        /* NULL or "cpu": CPU; "cuda[:N[:MATH]]": the GPU path (trainer_cuda.h) */
    int val_mode;               /* VP_VAL_WINDOW or VP_VAL_PATCH (lib/trainer_val.c) */
    long val_iters;             /* patch mode: batches per validation (nnU-Net 50) */
    double val_overlap;         /* window mode: SegResNet MONAI overlap (0.4), U-Net 1 - tile step (0.5) */
} vp_trainer_cfg;

/* Parse "D,H,W" into patch (each 1..1024, at most 2^24 voxels). 0, or -1 (the caller reports a
 * usage error). */
int vp_trainer_parse_patch(const char *s, int patch[3]);

/* Train as configured. Returns the exit code: 0, VP_ERR_USAGE, VP_ERR_DATA (bad case, corrupt
 * checkpoint), VP_ERR_RUNTIME (I/O, a rank died), VP_ERR_INTR (SIGINT/SIGTERM, after writing a
 * checkpoint of the last finished iteration). */
int vp_trainer_run(const vp_trainer_cfg *cfg);

#endif
