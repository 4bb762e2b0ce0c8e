/* trainer_cli.h - the options train-ressegnet and train-unet share, as entries for their vp_opt
 * tables (VP_TRAINER_OPTS), and their conversion into a vp_trainer_cfg.
 *
 * Ownership: string fields point into argv (cli.h); nothing is allocated.
 */
#ifndef VP_TRAINER_CLI_H
#define VP_TRAINER_CLI_H

#include "cli.h"
#include "trainer.h"

typedef struct vp_trainer_args {
    const char *in, *val, *image, *label, *out, *init, *log_json, *patch;
    long classes, batch, epochs, iters, val_every, save_every, seed;
    double cache_mb, replace_rate, val_split, fg_prob, rank_timeout;
    double lr, weight_decay; /* < 0: the architecture's default */
    int resume, deterministic;
    const char *backend;
    int val_mode;            /* set by the program before parsing (its default) */
    long val_iters;
    double val_overlap;      /* set by the program before parsing */
} vp_trainer_args;

/* Defaults every trainer starts from (patch and batch are set by the program). */
#define VP_TRAINER_ARGS_DEFAULT                                                                    \
    {"-", NULL, "image", "label", NULL, NULL, NULL, NULL, 0, 2, 1000, 250, 1, 1, 0, 4096, 0.1, 0, \
     0.33, 600, -1, -1, 0, 0, NULL, 0, 50, 0.5}

#define VP_TRAINER_OPTS(a)                                                                                                      \
    {'i', "in", "ENDPOINT", VP_OPT_STR, &(a).in, "training cases: -, FILE, @tcp://ADDR:PORT, >tcp://HOST:PORT; '{rank}' is replaced by the rank", 0, 0, NULL}, \
    {'o', "out", "DIR", VP_OPT_STR, &(a).out, "checkpoint directory (required)", 0, 0, NULL},                                    \
    {0, "val", "ENDPOINT", VP_OPT_STR, &(a).val, "held-out validation cases (a stream read once at the start)", 0, 0, NULL},      \
    {0, "val-split", "FRAC", VP_OPT_DOUBLE, &(a).val_split, "without --val: hold out this fraction of the cases, by a hash of the case id (default 0)", 0, 0.9, NULL}, \
    {0, "val-every", "N", VP_OPT_INT, &(a).val_every, "validate every N epochs (default 1; 0: never)", 0, 1e6, NULL},          \
    {0, "image", "NAME", VP_OPT_STR, &(a).image, "image volume (default image)", 0, 0, NULL},                                   \
    {0, "label", "NAME", VP_OPT_STR, &(a).label, "label volume (default label)", 0, 0, NULL},                                   \
    {0, "classes", "K", VP_OPT_INT, &(a).classes, "classes including background (default: the model's, or 1 + the largest id of the first case's meta.labels)", 2, 256, NULL}, \
    {0, "cache-mb", "MB", VP_OPT_DOUBLE, &(a).cache_mb, "case cache budget in MiB (default 4096); the oldest cases are replaced first", 1, 1e7, NULL}, \
    {0, "replace-rate", "R", VP_OPT_DOUBLE, &(a).replace_rate, "while the stream has more cases: read R x cached cases (at least 1) each epoch (default 0.1)", 0, 1, NULL}, \
    {0, "patch", "D,H,W", VP_OPT_STR, &(a).patch, "training patch in network axis order", 0, 0, NULL},                           \
    {0, "batch", "N", VP_OPT_INT, &(a).batch, "global batch, split evenly across ranks", 1, 4096, NULL},                        \
    {0, "fg-prob", "P", VP_OPT_DOUBLE, &(a).fg_prob, "share of each batch forced to hold foreground (default 0.33)", 0, 1, NULL}, \
    {0, "epochs", "N", VP_OPT_INT, &(a).epochs, "epochs (default 1000)", 1, 1e7, NULL},                                         \
    {0, "iters-per-epoch", "N", VP_OPT_INT, &(a).iters, "iterations per epoch (default 250)", 1, 1e7, NULL},                   \
    {0, "seed", "N", VP_OPT_INT, &(a).seed, "seed of the weights and the sampler (default 0)", 0, 9.007199254740992e15, NULL}, \
    {0, "lr", "LR", VP_OPT_DOUBLE, &(a).lr, "initial learning rate (default: the architecture's)", 1e-12, 10, NULL},          \
    {0, "weight-decay", "WD", VP_OPT_DOUBLE, &(a).weight_decay, "weight decay (default: the architecture's)", 0, 1, NULL},     \
    {0, "init", "MODEL", VP_OPT_STR, &(a).init, "start from this .safetensors model instead of fresh weights", 0, 0, NULL},    \
    {0, "resume", NULL, VP_OPT_FLAG, &(a).resume, "continue from DIR/last.optim.safetensors and DIR/last.safetensors", 0, 0, NULL}, \
    {0, "deterministic", NULL, VP_OPT_FLAG, &(a).deterministic, "reduce across ranks in rank order (same bytes whatever MPI does)", 0, 0, NULL}, \
    {0, "save-every", "N", VP_OPT_INT, &(a).save_every, "checkpoint every N epochs (default 1) and at the end", 0, 1e6, NULL},  \
    {0, "log-json", "FILE", VP_OPT_STR, &(a).log_json, "JSON lines: one per iteration, epoch, validation, checkpoint", 0, 0, NULL}, \
    {0, "rank-timeout", "S", VP_OPT_DOUBLE, &(a).rank_timeout, "seconds a rank waits for the others in a collective (default 600)", 0.1, 1e6, NULL}, \
    {0, "backend", "B", VP_OPT_STR, &(a).backend, "cpu (default) or cuda[:N[:MATH]] (MATH f32, tf32, f16 with loss scaling, bf16); several ranks: cuda[:MATH], GPU = local rank", 0, 0, NULL}, \
    {0, "val-mode", "MODE", VP_OPT_CHOICE, &(a).val_mode, "window: each held-out case whole, by the inference program's sliding window; patch: nnU-Net's online Dice on --val-iters batches of patches", 0, 0, vp_trainer_val_modes}, \
    {0, "val-iters", "N", VP_OPT_INT, &(a).val_iters, "--val-mode patch: batches per validation (default 50, nnU-Net's)", 1, 1e6, NULL}, \
    {0, "val-overlap", "F", VP_OPT_DOUBLE, &(a).val_overlap, "--val-mode window: overlap of neighbouring windows (SegResNet default 0.4 as infer-ressegnet; U-Net 0.5 = infer-unet's step 0.5)", 0, 0.95, NULL}

/* "window", "patch" (enum vp_val_mode order). */
extern const char *const vp_trainer_val_modes[];

/* Shared description paragraphs (data, files, ranks), for the programs' help. */
extern const char vp_trainer_help[];

/* Fill cfg from a (usage errors exit 2): patch, batch, schedule, optimizer overrides. cfg->arch,
 * its architecture, optim and loss defaults must be set before. */
void vp_trainer_args_apply(const vp_trainer_args *a, vp_trainer_cfg *cfg);

/* Parse a comma-separated list of n_max positive ints into out; returns the count, or -1. */
int vp_trainer_parse_ints(const char *s, int *out, int n_max);

#endif
