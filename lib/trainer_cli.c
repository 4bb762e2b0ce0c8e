/* trainer_cli.c - shared trainer options (see trainer_cli.h). */
#include "trainer_cli.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

const char vp_trainer_help[] =
    "Input: a stream of cases, each with an image volume (--image; any dtype, channels = network\n"
    "inputs) and a label volume (--label; integer classes 0..K-1) on the same grid. Images must be\n"
    "preprocessed upstream (resample to the training spacing, normalize): the trainer applies none.\n"
    "Cases are kept in a cache of --cache-mb (images as i16 when they are u8/i16, else f32; labels u8);\n"
    "it is filled until full or the stream ends, then, while the stream has more, --replace-rate of it\n"
    "is refreshed each epoch, oldest first (MONAI SmartCacheDataset's replacement). A case without a\n"
    "label, with a label off the image grid or out of range is an error (exit 3).\n"
    "\n"
    "Patches: per batch item a random cached case, a random crop of --patch (padded with zeros when the\n"
    "case is smaller, as nnU-Net); the last round(batch x --fg-prob) items are centred on a voxel of a\n"
    "random foreground class present (nnU-Net's oversampling). One seeded generator draws the whole\n"
    "global batch on every rank; each rank trains on its share, gradients are averaged across ranks\n"
    "before the step, so N ranks with batch B/N each match one rank with batch B.\n"
    "\n"
    "Validation every --val-every epochs on --val cases or the --val-split share (by case id).\n"
    "--val-mode window: each case whole by the sliding window of the inference program (windows of\n"
    "--patch, --val-overlap; infer-ressegnet's / infer-unet's defaults otherwise), argmax, Dice per case\n"
    "and class, averaged over the cases holding the class (classes absent from the reference are\n"
    "skipped, as MONAI's ignore_empty): the Dice the inference program gives on the checkpoint.\n"
    "--val-mode patch: nnU-Net's cheap online evaluation: --val-iters batches of patches drawn from the\n"
    "held-out cases as training batches are, Dice = 2TP / (2TP + FP + FN) per class over all of them.\n"
    "The mean over classes decides best.safetensors.\n"
    "\n"
    "Files in --out DIR (atomic: temp, fsync, rename): last.safetensors (loads in the inference\n"
    "programs), best.safetensors, last.optim.safetensors (weights, optimizer state, epoch, iteration,\n"
    "generator state, history: what --resume continues from), curves.svg (loss and Dice per epoch).\n"
    "SIGINT/SIGTERM: checkpoint after the current iteration, exit 130. A run killed with SIGKILL and\n"
    "resumed ends with the same weights as an uninterrupted run (same stream, same options).\n"
    "\n"
    "Ranks: start with mpirun (CPU; one process per rank, each reading the whole -i stream, '{rank}'\n"
    "in -i replaced by its rank); a rank that dies makes the others stop within --rank-timeout.\n"
    "Progress: a bar on stderr when it is a terminal; --log-json for machines.";

const char *const vp_trainer_val_modes[] = {"window", "patch", NULL};

int vp_trainer_parse_ints(const char *s, int *out, int n_max)
{
    int n = 0;
    if (!*s) return 0;
    for (const char *p = s;;) {
        char *e;
        long v = strtol(p, &e, 10);
        if (e == p || v < 0 || v > 100000 || n == n_max) return -1;
        out[n++] = (int)v;
        if (!*e) return n;
        if (*e != ',') return -1;
        p = e + 1;
    }
}

void vp_trainer_args_apply(const vp_trainer_args *a, vp_trainer_cfg *c)
{
    if (!a->out) vp_usage_error("--out DIR is required");
    if (a->patch && vp_trainer_parse_patch(a->patch, c->patch))
        vp_usage_error("--patch '%s': not D,H,W or larger than allowed (each 1..1024, at most 16777216 voxels)", a->patch);
    if (a->val && a->val_split > 0) vp_usage_error("give --val or --val-split, not both");
    if (a->init && a->resume) vp_usage_error("--init starts a new run; --resume continues one: give one of them");
    c->in_spec = a->in, c->val_spec = a->val, c->image_name = a->image, c->label_name = a->label;
    c->out_dir = a->out, c->init_path = a->init, c->log_json = a->log_json;
    c->resume = a->resume, c->deterministic = a->deterministic, c->classes = (int)a->classes;
    c->cache_mb = a->cache_mb, c->replace_rate = a->replace_rate, c->val_split = a->val_split;
    c->fg_prob = a->fg_prob, c->rank_timeout = a->rank_timeout;
    c->val_every = a->val_every, c->save_every = a->save_every, c->epochs = a->epochs, c->iters = a->iters;
    c->batch = a->batch, c->seed = (uint64_t)a->seed, c->backend = a->backend;
    c->val_mode = a->val_mode, c->val_iters = a->val_iters, c->val_overlap = a->val_overlap;
    if (a->lr > 0) c->optim.lr = (float)a->lr;
    if (a->weight_decay >= 0) c->optim.weight_decay = (float)a->weight_decay;
}
