/* augment - nnU-Net v2's random spatial and intensity augmentation of image + label, seeded. */
#include "augment.h"
#include "cli.h"
#include "filter.h"
#include "frame.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *in_spec = "-";
static const char *out_spec = "-";
static const char *image_name = "image";
static const char *label_opt = NULL;
static const char *patch_spec = NULL;
static const char *fixed_spec = NULL;
static long seed = 0, order = 1;
static int only = 0;
static double rot_deg = 30;
static struct vp_aug_config cfg;

static const char *const only_choices[] = {"all", "spatial", "intensity", NULL};

#define P_OPT(NAME, T, DEF) \
    {0, "p-" NAME, "P", VP_OPT_DOUBLE, &cfg.p[T], "probability of " NAME " (nnU-Net: " DEF ")", 0, 1, NULL}

static const struct vp_opt opts[] = {
    {'i', "in", "ENDPOINT", VP_OPT_STR, &in_spec, "where to read the stream: -, FILE, @tcp://ADDR:PORT, >tcp://HOST:PORT", 0, 0, NULL},
    {'o', "out", "ENDPOINT", VP_OPT_STR, &out_spec, "where to write the stream: -, FILE, @tcp://ADDR:PORT, >tcp://HOST:PORT", 0, 0, NULL},
    {0, "seed", "N", VP_OPT_INT, &seed, "random seed (0..2^53); each case's draws depend only on the seed and its id", 0, 9007199254740992.0, NULL},
    {0, "image", "NAME", VP_OPT_STR, &image_name, "the image volume (default: image)", 0, 0, NULL},
    {0, "label", "NAME", VP_OPT_STR, &label_opt, "the label volume, then required in every case (default: label, if present)", 0, 0, NULL},
    {0, "patch", "X,Y,Z", VP_OPT_STR, &patch_spec, "a patch of this size at a uniform random position (default: the whole volume)", 0, 0, NULL},
    {0, "only", "GROUP", VP_OPT_CHOICE, &only, "run only the spatial or the intensity transforms (default: all)", 0, 0, only_choices},
    {0, "order", "N", VP_OPT_INT, &order, "image interpolation: 1 linear (nnU-Net v2, default) or 3 cubic B-spline", 1, 3, NULL},
    {0, "rotation", "DEG", VP_OPT_DOUBLE, &rot_deg, "rotation range +-DEG about each axis (default 30)", 0, 180, NULL},
    {0, "fixed", "SPEC", VP_OPT_STR, &fixed_spec, "apply exactly these transforms with these values (see below)", 0, 0, NULL},
    P_OPT("rotation", VP_AUG_ROTATION, "0.2"),
    P_OPT("scaling", VP_AUG_SCALING, "0.2"),
    P_OPT("elastic", VP_AUG_ELASTIC, "0"),
    P_OPT("noise", VP_AUG_NOISE, "0.1"),
    P_OPT("blur", VP_AUG_BLUR, "0.2"),
    P_OPT("brightness", VP_AUG_BRIGHTNESS, "0.15"),
    P_OPT("contrast", VP_AUG_CONTRAST, "0.15"),
    P_OPT("lowres", VP_AUG_LOWRES, "0.25"),
    P_OPT("gamma-inv", VP_AUG_GAMMA_INV, "0.1"),
    P_OPT("gamma", VP_AUG_GAMMA, "0.3"),
    {0, "p-flip", "P", VP_OPT_DOUBLE, &cfg.p[VP_AUG_FLIP], "probability of mirroring, per axis (nnU-Net: 0.5)", 0, 1, NULL},
    {0, "p-blur-channel", "P", VP_OPT_DOUBLE, &cfg.p_blur_channel, "per channel, once blur is drawn (0.5)", 0, 1, NULL},
    {0, "p-lowres-channel", "P", VP_OPT_DOUBLE, &cfg.p_lowres_channel, "per channel, once lowres is drawn (0.5)", 0, 1, NULL},
    {0, NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
};

static const struct vp_cmd cmd = {
    "augment", "random spatial and intensity augmentation of image and label (nnU-Net v2's defaults), seeded",
    "[options]",
    "Applies, in nnU-Net v2's order (nnUNetTrainer.get_training_transforms, batchgeneratorsv2):\n"
    "rotation p 0.2 (+-30 degrees about each axis), scaling p 0.2 (0.7..1.4, one factor), Gaussian\n"
    "noise p 0.1 (sigma 0..0.1), Gaussian blur p 0.2 (per channel p 0.5, sigma 0.5..1 per axis),\n"
    "brightness p 0.15 (x0.75..1.25), contrast p 0.15 (0.75..1.25, range kept), low resolution p 0.25\n"
    "(per channel p 0.5, scale 0.5..1), inverted gamma p 0.1 and gamma p 0.3 (0.7..1.5, mean/std kept),\n"
    "mirroring p 0.5 per axis. Elastic deformation is off as in nnU-Net (--p-elastic: per axis a field\n"
    "scale 0..0.2 of the patch size and a magnitude 0..0.2 voxels, as batchgeneratorsv2; order 1 only).\n"
    "\n"
    "The image is sampled with linear interpolation (--order 3: cubic B-spline), the label with nearest\n"
    "neighbour; outside the input both are 0. Without rotation or scaling the patch is an exact crop.\n"
    "Output voxel o samples the input at index M (o - (P-1)/2) + centre (M = Rz Ry Rx S), and the\n"
    "outputs carry the affine of that grid. The image becomes f32 unless nothing was applied to the case\n"
    "(then it passes unchanged). Other volumes and meta pass through; meta.augment records every drawn\n"
    "parameter. The draws depend only on --seed and the case id: the same bytes for any --threads and\n"
    "any case order.\n"
    "\n"
    "--fixed 'rotation=A,B,C;scaling=S;elastic_scale=S;elastic_mag=M;flip=1,0,0;centre=X,Y,Z;noise=SIGMA;\n"
    "blur=S[,S,S];brightness=M;contrast=M;lowres=S;gamma_inv=G;gamma=G' applies exactly the listed\n"
    "transforms with these values (angles in radians, centre in input voxel indices; the noise and\n"
    "elastic fields still come from --seed).\n"
    "\n"
    "Errors (exit 3): a case without the image, or without the label when --label is given; a label\n"
    "whose dims or affine differ from the image's, or with a float dtype. Bad options exit 2.",
    opts, 0, 0,
};

struct run {
    const char *label;
    int required;
};

static int step(vp_case *c, void *ctx)
{
    const struct run *r = ctx;
    return vp_augment_case(c, image_name, r->label, r->required, &cfg);
}

static void parse_patch(const char *s)
{
    double v[3];
    int n = 0;
    const char *p = s;
    while (*p && n < 3) {
        char *e;
        v[n] = strtod(p, &e);
        if (e == p || (*e && *e != ',') || !isfinite(v[n]) || v[n] < 1 || v[n] > 65536 || v[n] != floor(v[n]))
            vp_usage_error("--patch: '%s' is not X,Y,Z with integers 1..65536", s);
        n++;
        p = *e ? e + 1 : e;
    }
    if (*p || (n != 1 && n != 3)) vp_usage_error("--patch: '%s' is not X,Y,Z with integers 1..65536", s);
    for (int a = 0; a < 3; a++) cfg.patch[a] = (uint64_t)v[n == 1 ? 0 : a];
    cfg.has_patch = 1;
}

int main(int argc, char **argv)
{
    vp_aug_config_default(&cfg);
    vp_cli_parse(&cmd, argc, argv);
    if (order != 1 && order != 3) vp_usage_error("--order: %ld is not 1 or 3", order);
    cfg.seed = (uint64_t)seed;
    cfg.order = (int)order;
    cfg.rot_max = rot_deg / 360.0 * 2.0 * M_PI;
    cfg.spatial = only != 2;
    cfg.intensity = only != 1;
    if (patch_spec) parse_patch(patch_spec);
    static struct vp_aug_fixed fixed;
    if (fixed_spec) {
        if (vp_aug_parse_fixed(fixed_spec, &fixed)) return VP_ERR_USAGE;
        cfg.fixed = &fixed;
    }
    if (order == 3 && (fixed_spec ? fixed.set[VP_AUG_ELASTIC] : cfg.p[VP_AUG_ELASTIC] > 0))
        vp_usage_error("--order 3: elastic deformation samples linearly only");
    struct run r = {label_opt ? label_opt : "label", label_opt != NULL};
    return vp_filter_run(cmd.name, in_spec, out_spec, step, &r);
}
