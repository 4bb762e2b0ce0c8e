/* train-ressegnet - train a MONAI SegResNet from a stream of (image, label) cases, as MONAI Label's
 * segmentation trainer (DiceCELoss, AdamW lr 1e-4, weight decay 1e-5); see lib/trainer.h. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "trainer.h"
#include "trainer_cli.h"
#include "trainer_dist.h"
#include "util.h"

static vp_trainer_args a = VP_TRAINER_ARGS_DEFAULT;
static long init_filters = 32, norm_groups = 8;
static const char *blocks_down = "1,2,2,4", *blocks_up = "1,1,1";
static int upsample = 0;
static const char *const upsample_modes[] = {"nontrainable", "deconv", NULL};
static int dice_mode = 0;
static const char *const dice_modes[] = {"sample", "batch", NULL};

static const struct vp_opt opts[] = {
    VP_TRAINER_OPTS(a),
    {0, "init-filters", "N", VP_OPT_INT, &init_filters, "filters of the first level (default 32)", 1, 1024, NULL},
    {0, "blocks-down", "LIST", VP_OPT_STR, &blocks_down, "residual blocks per encoder level (default 1,2,2,4)", 0, 0, NULL},
    {0, "blocks-up", "LIST", VP_OPT_STR, &blocks_up, "residual blocks per decoder level (default 1,1,1; one fewer than down)", 0, 0, NULL},
    {0, "norm-groups", "G", VP_OPT_INT, &norm_groups, "GroupNorm groups (default 8)", 1, 1024, NULL},
    {0, "upsample", "MODE", VP_OPT_CHOICE, &upsample, "nontrainable (default, trilinear) or deconv", 0, 0, upsample_modes},
    {0, "dice", "MODE", VP_OPT_CHOICE, &dice_mode, "sample (default, MONAI's DiceLoss: Dice per case, averaged) or batch (DiceLoss(batch=True), as nnU-Net's batch Dice: sums over each rank's batch)", 0, 0, dice_modes},
    {0, NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
};

static char description[4096];
static const struct vp_cmd cmd = {
    "train-ressegnet", "train a SegResNet (MONAI Label's segmentation network) from a stream of cases",
    "[options] -o DIR", description, opts, 0, 0,
};

int main(int argc, char **argv)
{
    snprintf(description, sizeof description,
             "Defaults are MONAI Label's segmentation trainer: DiceCELoss (softmax, one-hot targets),\n"
             "AdamW lr 1e-4, weight decay 1e-5, patch 96,96,96 (network axes = the volume's x, y, z),\n"
             "batch 2, validation --val-mode window (MONAI Label validates whole images with its\n"
             "SlidingWindowInferer; here with infer-ressegnet's defaults, overlap 0.4). The checkpoints carry\n"
             "voxpipe.roi (the patch), voxpipe.spacing and voxpipe.labels for infer-ressegnet.\n\n%s\n\nThis build: %s.",
             vp_trainer_help, vp_dist_build_info());
    a.patch = "96,96,96";
    a.val_mode = VP_VAL_WINDOW, a.val_overlap = 0.4;
    vp_cli_parse(&cmd, argc, argv);
    vp_trainer_cfg c = {0};
    c.prog = cmd.name;
    c.arch = VP_TRAINER_SEGRESNET;
    c.optim = vp_optim_cfg_default(VP_OPTIM_ADAMW);
    c.loss = vp_loss_cfg_default(VP_LOSS_DICECE);
    c.loss.batch_dice = dice_mode == 1;
    vp_trainer_args_apply(&a, &c);
    vp_segresnet_cfg *s = &c.segresnet;
    s->init_filters = (int)init_filters, s->norm_groups = (int)norm_groups, s->deconv = upsample, s->eps = 1e-5f;
    s->n_down = vp_trainer_parse_ints(blocks_down, s->blocks_down, VP_SEGRESNET_MAXLEVELS);
    s->n_up = vp_trainer_parse_ints(blocks_up, s->blocks_up, VP_SEGRESNET_MAXLEVELS);
    if (s->n_down < 1) vp_usage_error("--blocks-down '%s': not a list of block counts", blocks_down);
    if (s->n_up != s->n_down - 1) vp_usage_error("--blocks-up '%s': give %d counts (one fewer than --blocks-down)", blocks_up, s->n_down - 1);
    if (init_filters % norm_groups) vp_usage_error("--init-filters %ld must be a multiple of --norm-groups %ld", init_filters, norm_groups);
    return vp_trainer_run(&c);
}
