/* train-unet - train an nnU-Net PlainConvUNet from a stream of (image, label) cases, as nnU-Net's
 * 3d_fullres trainer (Dice + CE with deep supervision, SGD Nesterov 0.99, poly decay); see lib/trainer.h. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "trainer.h"
#include "trainer_cli.h"
#include "trainer_dist.h"
#include "util.h"

static vp_trainer_args a = VP_TRAINER_ARGS_DEFAULT;
static const char *features = "32,64,128,256,320,320";
static long n_conv = 2, n_conv_dec = 2;
static int dice_mode = 1;
static const char *const dice_modes[] = {"sample", "batch", NULL};
static double momentum = 0.99, clip = 12, poly = 0.9;

static const struct vp_opt opts[] = {
    VP_TRAINER_OPTS(a),
    {0, "features", "LIST", VP_OPT_STR, &features, "features per stage; their number is the number of stages (default 32,64,128,256,320,320)", 0, 0, NULL},
    {0, "n-conv", "N", VP_OPT_INT, &n_conv, "convolutions per encoder stage (default 2)", 1, 16, NULL},
    {0, "n-conv-dec", "N", VP_OPT_INT, &n_conv_dec, "convolutions per decoder stage (default 2)", 1, 16, NULL},
    {0, "dice", "MODE", VP_OPT_CHOICE, &dice_mode, "batch (default, nnU-Net 3d_fullres: Dice over each rank's batch) or sample", 0, 0, dice_modes},
    {0, "momentum", "M", VP_OPT_DOUBLE, &momentum, "SGD Nesterov momentum (default 0.99)", 0, 1, NULL},
    {0, "clip", "NORM", VP_OPT_DOUBLE, &clip, "gradient-norm clipping (default 12; 0: off)", 0, 1e9, NULL},
    {0, "poly", "EXP", VP_OPT_DOUBLE, &poly, "poly learning-rate decay exponent (default 0.9; 0: constant)", 0, 10, NULL},
    {0, NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
};

static char description[4096];
static const struct vp_cmd cmd = {
    "train-unet", "train an nnU-Net-style PlainConvUNet from a stream of cases",
    "[options] -o DIR", description, opts, 0, 0,
};

int main(int argc, char **argv)
{
    snprintf(description, sizeof description,
             "Defaults are nnU-Net v2's 3d_fullres trainer: Dice (no background) + CE with deep\n"
             "supervision, SGD Nesterov momentum 0.99, lr 1e-2, weight decay 3e-5, poly 0.9, gradient\n"
             "clipping 12, batch 2, batch Dice, patch 128,128,128 (network axes = the volume's z, y, x). With\n"
             "several ranks, batch Dice is over each rank's share (--dice sample makes N ranks with batch B/N\n"
             "match one rank with batch B). Stages: 3x3x3\n"
             "kernels, stride 1 in the first stage and 2 after, so each patch size must be a multiple of\n"
             "2^(stages-1). Validation --val-mode patch (nnU-Net's online pseudo Dice during training, 50\n"
             "batches); --val-mode window scores whole cases as nnU-Net's final validation and infer-unet do.\n"
             "The checkpoints carry patch_size, spacing (z, y, x) and labels for infer-unet.\n\n"
             "%s\n\nThis build: %s.",
             vp_trainer_help, vp_dist_build_info());
    a.patch = "128,128,128";
    a.val_mode = VP_VAL_PATCH, a.val_overlap = 0.5;
    vp_cli_parse(&cmd, argc, argv);
    vp_trainer_cfg c = {0};
    c.prog = cmd.name;
    c.arch = VP_TRAINER_UNET;
    c.optim = vp_optim_cfg_default(VP_OPTIM_SGD);
    c.loss = vp_loss_cfg_default(VP_LOSS_NNUNET_DCCE);
    c.loss.batch_dice = dice_mode == 1;
    c.optim.momentum = (float)momentum, c.optim.clip_norm = (float)clip, c.optim.poly_exponent = (float)poly;
    vp_trainer_args_apply(&a, &c);
    vp_unet_cfg *u = &c.unet;
    u->n_stages = vp_trainer_parse_ints(features, u->features, VP_UNET_MAXSTAGE);
    if (u->n_stages < 2) vp_usage_error("--features '%s': give 2 to %d feature counts", features, VP_UNET_MAXSTAGE);
    for (int s = 0; s < u->n_stages; s++) {
        if (u->features[s] < 1) vp_usage_error("--features '%s': counts must be positive", features);
        for (int k = 0; k < 3; k++) u->kernel[s][k] = 3, u->stride[s][k] = s ? 2 : 1;
        u->n_conv[s] = (int)n_conv;
        if (s < u->n_stages - 1) u->n_conv_dec[s] = (int)n_conv_dec;
    }
    u->conv_bias = 1, u->norm_eps = 1e-5f, u->slope = 0.01f;
    for (int k = 0; k < 3; k++) u->mirror_axes[k] = 1;
    return vp_trainer_run(&c);
}
