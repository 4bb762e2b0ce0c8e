/* resample - put the volumes of each case on another voxel grid: a target spacing, another file's
 * or volume's grid, or back to the grid recorded by an earlier resample. */
#include "cli.h"
#include "endpoint.h"
#include "filter.h"
#include "frame.h"
#include "nifti.h"
#include "resample.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *in_spec = "-", *out_spec = "-";
static const char *spacing_arg, *like_path, *like_vol;
static int back, order_i = 1, mode_i, label_mode_i, antialias, keep_dtype;
static double fill;
static struct vp_strlist vol_list, label_list;

static const char *const orders[] = {"0", "1", "3", NULL};
static const char *const modes[] = {"nearest", "mirror", "constant", NULL};
static const char *const label_modes[] = {"nearest", "onehot", "nnunet", NULL};

static const struct vp_opt opts[] = {
    {'i', "in", "ENDPOINT", VP_OPT_STR, &in_spec, "where to read the stream: -, FILE, @tcp://ADDR:PORT, >tcp://HOST:PORT", 0, 0, NULL},
    {'o', "out", "ENDPOINT", VP_OPT_STR, &out_spec, "where to write the stream: -, FILE, @tcp://ADDR:PORT, >tcp://HOST:PORT", 0, 0, NULL},
    {0, "spacing", "S|SX,SY,SZ", VP_OPT_STR, &spacing_arg, "target spacing in mm, one value or one per voxel axis", 0, 0, NULL},
    {0, "like", "FILE", VP_OPT_STR, &like_path, "the grid (dims + affine) of this NIfTI file", 0, 0, NULL},
    {0, "like-vol", "NAME", VP_OPT_STR, &like_vol, "the grid of this volume of the same case", 0, 0, NULL},
    {0, "back", NULL, VP_OPT_FLAG, &back, "back onto the grids recorded in meta 'resample' by the last resample", 0, 0, NULL},
    {0, "order", "N", VP_OPT_CHOICE, &order_i, "interpolation of images: 0 nearest, 1 linear (default), 3 cubic B-spline", 0, 0, orders},
    {0, "mode", "MODE", VP_OPT_CHOICE, &mode_i, "outside the input: nearest (edge, default), mirror, constant (--fill)", 0, 0, modes},
    {0, "fill", "V", VP_OPT_DOUBLE, &fill, "the value outside the input with --mode constant (default 0)", 0, 0, NULL},
    {0, "labels", "NAME[,NAME]", VP_OPT_LIST, &label_list, "label volumes (default: the volume named 'label'); repeatable", 0, 0, NULL},
    {0, "label-mode", "MODE", VP_OPT_CHOICE, &label_mode_i, "labels: nearest (default), onehot (argmax of linear one-hot), nnunet", 0, 0, label_modes},
    {0, "antialias", NULL, VP_OPT_FLAG, &antialias, "Gaussian prefilter of images along axes that shrink (order 1, 3)", 0, 0, NULL},
    {0, "keep-dtype", NULL, VP_OPT_FLAG, &keep_dtype, "order 1/3 of an integer image: round back to its dtype instead of f32", 0, 0, NULL},
    {0, "vol", "NAME[,NAME]", VP_OPT_LIST, &vol_list, "resample only these volumes (default: all); repeatable", 0, 0, NULL},
    {0, NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
};

static const struct vp_cmd cmd = {
    "resample", "put the volumes of each case on another voxel grid",
    "(--spacing S | --like FILE | --like-vol NAME | --back) [options]",
    "Exactly one target: --spacing, --like, --like-vol or --back.\n"
    "\n"
    "Grid. --spacing keeps MONAI Spacingd's convention: the centre of voxel 0 stays where it is, each\n"
    "voxel axis keeps its direction, and dims = rint((n - 1) * old / new + 1) per axis (half to even,\n"
    "as numpy.round). --like/--like-vol take the whole grid, oblique ones included; a volume that is\n"
    "already on the target grid passes unchanged. Output voxel o samples the input at continuous\n"
    "index inverse(A_in) * A_out * o.\n"
    "\n"
    "Interpolation is scipy.ndimage's (map_coordinates with the same order and mode): order 3 is the\n"
    "cubic B-spline with scipy's prefilter. Outside the input: --mode nearest extends the edge voxels\n"
    "(scipy 'nearest', MONAI 'border', nnU-Net 'edge'), mirror reflects about the edge voxels (scipy\n"
    "'mirror'), constant gives --fill (scipy 'grid-constant'). Images of an integer dtype become f32\n"
    "at order 1 and 3 (--keep-dtype: rounded half away from zero, saturated); order 0 and labels\n"
    "keep the dtype. --antialias blurs an image first with a Gaussian of sigma (f - 1) / 2 input voxels\n"
    "along each axis whose output step is f > 1 input voxels (skimage's rule; scipy gaussian_filter,\n"
    "truncate 4, same mode).\n"
    "\n"
    "Labels (--labels; default the volume named 'label') must have an integer dtype. --label-mode\n"
    "nearest copies the nearest voxel; onehot interpolates each label's one-hot mask linearly and takes\n"
    "the argmax (ties to the smaller label); nnunet is nnU-Net's resize_segmentation at order 1 (the\n"
    "largest label whose mask reaches 0.5, else 0).\n"
    "\n"
    "meta 'resample' gets a record {\"from\": {VOL: GRID}, \"to\": {VOL: GRID}} (GRID = {\"dims\",\n"
    "\"affine\"}) per run; --back takes the newest one off and puts each volume back on its 'from'\n"
    "grid: by name, or, for a volume made later (a prediction), the 'from' grid of the volume whose\n"
    "'to' grid it is on.\n"
    "\n"
    "Errors: a spacing <= 0 is a usage error (2); a volume named by --vol, --labels or --like-vol that\n"
    "a case lacks, a float label volume, or --back without a record is bad input (3). Nothing is\n"
    "written then.",
    opts, 0, 0,
};

static int listed(const struct vp_strlist *l, const char *name)
{
    for (int i = 0; i < l->n; i++) {
        const char *p = l->v[i];
        size_t n = strlen(name);
        while (*p) { /* comma-separated */
            size_t k = strcspn(p, ",");
            if (k == n && !strncmp(p, name, n)) return 1;
            p += k + (p[k] == ',');
        }
    }
    return 0;
}

/* every name of a list must be a volume of the case */
static int check_names(const vp_case *c, const struct vp_strlist *l, const char *opt)
{
    for (int i = 0; i < l->n; i++) {
        const char *p = l->v[i];
        while (*p) {
            size_t k = strcspn(p, ",");
            char name[VP_MAX_NAME + 1];
            snprintf(name, sizeof name, "%.*s", (int)(k < VP_MAX_NAME ? k : VP_MAX_NAME), p);
            if (k && !vp_case_vol(c, name))
                return vp_error("case '%s': no volume '%s' (named by --%s)", c->id, name, opt);
            p += k + (p[k] == ',');
        }
    }
    return 0;
}

static void parse_spacing(const char *s, double sp[3])
{
    char *end;
    int n = 0;
    const char *p = s;
    while (n < 3) {
        sp[n] = strtod(p, &end);
        if (end == p || !isfinite(sp[n])) vp_usage_error("option '--spacing': not a number list: '%s'", s);
        if (!(sp[n] > 0)) vp_usage_error("option '--spacing': spacing must be > 0 mm, got %g in '%s'", sp[n], s);
        n++;
        if (*end == 0) break;
        if (*end != ',') vp_usage_error("option '--spacing': want S or SX,SY,SZ, got '%s'", s);
        p = end + 1;
    }
    if (*end) vp_usage_error("option '--spacing': want S or SX,SY,SZ, got '%s'", s);
    if (n == 1) sp[1] = sp[2] = sp[0];
    else if (n != 3) vp_usage_error("option '--spacing': want 1 or 3 values, got %d in '%s'", n, s);
}

static int same_grid(const vp_vol *v, const struct vp_grid *g)
{
    return v->dims[0] == g->dims[0] && v->dims[1] == g->dims[1] && v->dims[2] == g->dims[2] &&
           !memcmp(v->affine, g->affine, sizeof g->affine);
}

static void vol_grid(const vp_vol *v, struct vp_grid *g)
{
    for (int a = 0; a < 3; a++) g->dims[a] = v->dims[a];
    memcpy(g->affine, v->affine, sizeof g->affine);
}

/* the target grid of volume `name` with --back: 1 found, 0 none */
static int back_grid(const struct vp_resample_entry *e, const char *name, const vp_vol *v, struct vp_grid *g)
{
    for (int i = 0; i < e->n; i++)
        if (!strcmp(e->names[i], name)) { *g = e->from[i]; return 1; }
    for (int i = 0; i < e->n; i++)
        if (same_grid(v, &e->to[i])) { *g = e->from[i]; return 1; }
    return 0;
}

static int process(vp_case *c, const struct vp_grid *like, const double sp[3])
{
    if (check_names(c, &vol_list, "vol") || check_names(c, &label_list, "labels")) return -1;
    struct vp_grid target;
    if (like_vol) {
        const vp_vol *lv = vp_case_vol(c, like_vol);
        if (!lv) return vp_error("case '%s': no volume '%s' (named by --like-vol)", c->id, like_vol);
        vol_grid(lv, &target);
    }
    struct vp_resample_entry past = {0}, rec = {0};
    if (back && vp_resample_meta_pop(c, &past)) return -1;
    int rc = 0;
    for (int i = 0; i < c->nvols && !rc; i++) {
        const char *name = c->vol_names[i];
        vp_vol *v = c->vols[i];
        if (vol_list.n ? !listed(&vol_list, name) : like_vol && !strcmp(name, like_vol)) continue;
        char ctx[VP_MAX_ID + VP_MAX_NAME + 32];
        snprintf(ctx, sizeof ctx, "case '%s': volume '%s'", c->id, name);
        if (sp) {
            if (vp_grid_for_spacing(v, sp, &target, ctx)) { rc = -1; break; }
        } else if (like) {
            target = *like;
        } else if (back && !back_grid(&past, name, v, &target)) {
            vp_warn("%s: no grid recorded for it in meta 'resample'; passed through unchanged", ctx);
            continue;
        }
        if (same_grid(v, &target)) continue;
        struct vp_resample_opts o;
        vp_resample_opts_default(&o);
        o.order = order_i == 2 ? 3 : order_i;
        o.mode = (enum vp_extend)mode_i;
        o.cval = fill;
        o.antialias = antialias;
        o.keep_dtype = keep_dtype;
        o.is_label = label_list.n ? listed(&label_list, name) : !strcmp(name, "label");
        o.label_mode = (enum vp_label_mode)label_mode_i;
        vp_vol *r = vp_resample(v, &target, &o, ctx);
        if (!r) { rc = -1; break; }
        struct vp_grid from;
        vol_grid(v, &from);
        vp_debug("%s: %llux%llux%llu -> %llux%llux%llu (%s)", ctx, (unsigned long long)from.dims[0],
                 (unsigned long long)from.dims[1], (unsigned long long)from.dims[2], (unsigned long long)target.dims[0],
                 (unsigned long long)target.dims[1], (unsigned long long)target.dims[2],
                 o.is_label ? label_modes[label_mode_i] : orders[order_i]);
        vp_resample_entry_add(&rec, name, &from, &target);
        c->vols[i] = r;
        vp_vol_free(&v);
    }
    if (!rc && !back) vp_resample_meta_push(c, &rec);
    vp_resample_entry_free(&rec);
    vp_resample_entry_free(&past);
    return rc;
}

struct target {
    const struct vp_grid *like;
    const double *spacing;
};

static int step(vp_case *c, void *ctx)
{
    const struct target *t = ctx;
    return process(c, t->like, t->spacing) ? VP_ERR_DATA : 0;
}

int main(int argc, char **argv)
{
    vp_cli_parse(&cmd, argc, argv);
    if (!!spacing_arg + !!like_path + !!like_vol + !!back != 1)
        vp_usage_error("give exactly one of --spacing, --like, --like-vol and --back");
    double sp[3];
    if (spacing_arg) parse_spacing(spacing_arg, sp);
    struct vp_grid like;
    if (like_path) {
        vp_vol *lv;
        int r = vp_nifti_read(like_path, &lv, NULL);
        if (r) return -r;
        vol_grid(lv, &like);
        vp_vol_free(&lv);
    }

    struct target t = {like_path ? &like : NULL, spacing_arg ? sp : NULL};
    return vp_filter_run(cmd.name, in_spec, out_spec, step, &t);
}
