/* crop - cut every volume of a case to one box (foreground, explicit, or centre + size), as MONAI's
 * CropForeground does, and record the box and the original grid in meta so that uncrop can undo it. */
#include "cli.h"
#include "crop.h"
#include "optlist.h"
#include "endpoint.h"
#include "filter.h"
#include "frame.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *in_spec = "-";
static const char *out_spec = "-";
static int foreground;
static const char *select_name = "image";
static double threshold = 0;
static const char *margin_s = NULL;
static int allow_smaller;
static const char *box_s = NULL;
static const char *center_s = NULL;
static const char *size_s = NULL;
static const char *kdiv_s = NULL;
static struct vp_strlist pad_values;
static int pad_mode = 0;
static int allow_outside;

static const char *const pad_modes[] = {"constant", "edge", NULL};

static const struct vp_opt opts[] = {
    {'i', "in", "ENDPOINT", VP_OPT_STR, &in_spec, "where to read the stream: -, FILE, @tcp://ADDR:PORT, >tcp://HOST:PORT", 0, 0, NULL},
    {'o', "out", "ENDPOINT", VP_OPT_STR, &out_spec, "where to write the stream: -, FILE, @tcp://ADDR:PORT, >tcp://HOST:PORT", 0, 0, NULL},
    {0, "foreground", NULL, VP_OPT_FLAG, &foreground, "crop to the bounding box of the voxels of --select above --threshold", 0, 0, NULL},
    {0, "select", "NAME", VP_OPT_STR, &select_name, "volume that defines the foreground and the grid (default: image)", 0, 0, NULL},
    {0, "threshold", "T", VP_OPT_DOUBLE, &threshold, "foreground is value > T (default 0; e.g. -500 for the body in HU)", 0, 0, NULL},
    {0, "margin", "M[,M,M][mm|vox]", VP_OPT_STR, &margin_s, "grow the foreground box by M mm (default unit) or voxels per side", 0, 0, NULL},
    {0, "allow-smaller", NULL, VP_OPT_FLAG, &allow_smaller, "clamp the margin box to the image (MONAI allow_smaller=True)", 0, 0, NULL},
    {0, "box", "X0,Y0,Z0,X1,Y1,Z1", VP_OPT_STR, &box_s, "crop to voxels X0 <= x < X1, Y0 <= y < Y1, Z0 <= z < Z1", 0, 0, NULL},
    {0, "center", "X,Y,Z[mm]", VP_OPT_STR, &center_s, "box centre: voxel indices, or RAS mm with the suffix mm", 0, 0, NULL},
    {0, "size", "SX[,SY,SZ][mm]", VP_OPT_STR, &size_s, "box size around --center: voxels, or mm with the suffix mm", 0, 0, NULL},
    {0, "k-divisible", "K[,K,K]", VP_OPT_STR, &kdiv_s, "grow the box (centred) to a multiple of K voxels per axis", 0, 0, NULL},
    {0, "pad-value", "[VOL=]V", VP_OPT_LIST, &pad_values, "value outside the image (default 0); VOL=V for one volume (repeatable)", 0, 0, NULL},
    {0, "pad-mode", "MODE", VP_OPT_CHOICE, &pad_mode, "how the box is filled outside the image", 0, 0, pad_modes},
    {0, "allow-outside", NULL, VP_OPT_FLAG, &allow_outside, "let a --box or --center box reach past the image (padded)", 0, 0, NULL},
    {0, NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
};

static const struct vp_cmd cmd = {
    "crop", "cut every volume of a case to one box; record it for uncrop",
    "[options]",
    "Give one of --foreground, --box, or --center with --size. All volumes of a case must share the\n"
    "grid of --select (same dims and affine); each is cut to the same box (all channels), and the\n"
    "affine's origin moves to the box corner. meta.crop gets {\"box\", \"orig_dims\", \"orig_affine\"}\n"
    "appended (a stack: crop twice, uncrop twice).\n"
    "\n"
    "--foreground follows MONAI CropForeground(select_fn=x > T, margin, allow_smaller, k_divisible):\n"
    "the box [min, max + 1) of the voxels above T (any channel), grown by the margin (mm are rounded\n"
    "up to whole voxels per axis: ceil(M / spacing)), clamped to the image only with --allow-smaller\n"
    "(MONAI's default since 1.5 is not to clamp: the box may reach past the image and is padded),\n"
    "then grown to a multiple of K, centred (the start moves down by floor((new - old) / 2)). Unlike\n"
    "MONAI, which returns an empty image, a case without foreground keeps its whole grid (then\n"
    "K-divisible) with a warning.\n"
    "\n"
    "--box and --center/--size must lie inside the image unless --allow-outside is given; --center\n"
    "X,Y,Z gives the box [c - floor(s / 2), c - floor(s / 2) + s). --k-divisible applies to every kind\n"
    "of box. Outside the image the box holds --pad-value (per volume with VOL=V, e.g. --pad-value\n"
    "image=-1024; a value a volume's dtype cannot hold is an error) or, with --pad-mode edge, the\n"
    "nearest edge voxel (numpy.pad 'edge').\n"
    "\n"
    "Errors: a missing --select volume, volumes on different grids, or a box outside the image exit 3;\n"
    "bad option values (negative margin, K < 1, an empty box) exit 2. Nothing is written on error.",
    opts, 0, 0,
};

static const char *const mm_vox[] = {"mm", "vox", NULL};
static const char *const mm_only[] = {"mm", NULL};

static int is_int(double x) { return x == floor(x) && fabs(x) < 1e9; }

struct setup {
    int kind; /* 0 foreground, 1 box, 2 center */
    double margin[3];
    int margin_mm;
    struct vp_box box;
    double center[3], size[3];
    int center_mm, size_mm;
    int64_t k[3];
};

static void parse_options(struct setup *s)
{
    int kinds = foreground + (box_s != NULL) + (center_s != NULL || size_s != NULL);
    if (kinds != 1) vp_usage_error("give exactly one of --foreground, --box, --center with --size");
    int unit;
    memset(s, 0, sizeof *s);
    if (foreground) s->kind = 0;
    if (margin_s) {
        if (!foreground) vp_usage_error("--margin needs --foreground");
        if (vp_parse_dlist(margin_s, 3, s->margin, mm_vox, &unit)) vp_usage_error("option '--margin': '%s' is not M or MX,MY,MZ (optionally with mm or vox)", margin_s);
        s->margin_mm = unit != 1;
        for (int a = 0; a < 3; a++)
            if (s->margin[a] < 0 || s->margin[a] > 1e5 || (!s->margin_mm && !is_int(s->margin[a])))
                vp_usage_error("option '--margin': '%s': margins must be >= 0 (whole numbers in vox, at most 1e5)", margin_s);
    }
    if (allow_smaller && !foreground) vp_usage_error("--allow-smaller applies to --foreground");
    if (box_s) {
        s->kind = 1;
        double b[6];
        if (vp_parse_dlist(box_s, 6, b, NULL, &unit) || strchr(box_s, ',') == NULL)
            vp_usage_error("option '--box': '%s' is not X0,Y0,Z0,X1,Y1,Z1", box_s);
        for (int a = 0; a < 3; a++) {
            if (!is_int(b[a]) || !is_int(b[a + 3])) vp_usage_error("option '--box': '%s': voxel indices must be integers", box_s);
            s->box.lo[a] = (int64_t)b[a];
            s->box.hi[a] = (int64_t)b[a + 3];
            if (s->box.hi[a] <= s->box.lo[a]) vp_usage_error("option '--box': '%s': empty on axis %d (need X0 < X1)", box_s, a);
            if (s->box.hi[a] - s->box.lo[a] > (int64_t)VP_MAX_DIM) vp_usage_error("option '--box': '%s': too large", box_s);
        }
    }
    if (center_s || size_s) {
        s->kind = 2;
        if (!center_s || !size_s) vp_usage_error("--center and --size go together");
        if (vp_parse_dlist(center_s, 3, s->center, mm_only, &unit) || strchr(center_s, ',') == NULL)
            vp_usage_error("option '--center': '%s' is not X,Y,Z (optionally with mm)", center_s);
        s->center_mm = unit == 0;
        for (int a = 0; a < 3; a++)
            if (!s->center_mm && !is_int(s->center[a])) vp_usage_error("option '--center': '%s': voxel indices must be integers", center_s);
        if (vp_parse_dlist(size_s, 3, s->size, mm_only, &unit)) vp_usage_error("option '--size': '%s' is not S or SX,SY,SZ (optionally with mm)", size_s);
        s->size_mm = unit == 0;
        for (int a = 0; a < 3; a++)
            if (s->size[a] <= 0 || s->size[a] > (double)VP_MAX_DIM || (!s->size_mm && !is_int(s->size[a])))
                vp_usage_error("option '--size': '%s': sizes must be > 0 (whole voxels without mm)", size_s);
    }
    s->k[0] = s->k[1] = s->k[2] = 1;
    if (kdiv_s) {
        double k[3];
        if (vp_parse_dlist(kdiv_s, 3, k, NULL, &unit)) vp_usage_error("option '--k-divisible': '%s' is not K or KX,KY,KZ", kdiv_s);
        for (int a = 0; a < 3; a++) {
            if (!is_int(k[a]) || k[a] < 1 || k[a] > 4096) vp_usage_error("option '--k-divisible': '%s': K must be an integer in 1..4096", kdiv_s);
            s->k[a] = (int64_t)k[a];
        }
    }
    if (allow_outside && foreground) vp_usage_error("--allow-outside applies to --box and --center (a foreground box may always be padded)");
    for (int i = 0; i < pad_values.n; i++) {
        const char *eq = strchr(pad_values.v[i], '=');
        char *end;
        double x = strtod(eq ? eq + 1 : pad_values.v[i], &end);
        if ((eq && eq == pad_values.v[i]) || *end || end == (eq ? eq + 1 : pad_values.v[i]) || !isfinite(x))
            vp_usage_error("option '--pad-value': '%s' is not V or VOL=V", pad_values.v[i]);
    }
}

/* pad value for volume `name`: the last VOL=V for it, else the last plain V, else 0 */
static double pad_for(const char *name)
{
    double plain = 0, named = 0;
    int have_named = 0;
    for (int i = 0; i < pad_values.n; i++) {
        const char *s = pad_values.v[i], *eq = strchr(s, '=');
        if (!eq) plain = strtod(s, NULL);
        else if ((size_t)(eq - s) == strlen(name) && !strncmp(s, name, (size_t)(eq - s))) { named = strtod(eq + 1, NULL); have_named = 1; }
    }
    return have_named ? named : plain;
}

static int same_grid(const vp_vol *a, const vp_vol *b)
{
    for (int i = 0; i < 3; i++)
        if (a->dims[i] != b->dims[i]) return 0;
    for (int i = 0; i < 16; i++)
        if (fabs(a->affine[i] - b->affine[i]) > 1e-4 * (1 + fabs(b->affine[i]))) return 0;
    return 1;
}

static void box_str(const struct vp_box *b, char *buf, size_t n)
{
    snprintf(buf, n, "[%lld,%lld)x[%lld,%lld)x[%lld,%lld)", (long long)b->lo[0], (long long)b->hi[0], (long long)b->lo[1],
             (long long)b->hi[1], (long long)b->lo[2], (long long)b->hi[2]);
}

/* the box for one case; -VP_ERR_DATA after printing an error */
static int case_box(const struct setup *s, const vp_case *c, const vp_vol *ref, struct vp_box *b)
{
    double sp[3];
    vp_vol_spacing(ref, sp);
    const uint64_t *dims = ref->dims;
    char bs[160];
    if (s->kind == 0) {
        if (!vp_fg_bbox(ref, threshold, b)) {
            vp_warn("case '%s': no voxel of volume '%s' is above %g; the case keeps its whole grid", c->id, select_name, threshold);
            for (int a = 0; a < 3; a++) { b->lo[a] = 0; b->hi[a] = (int64_t)dims[a]; }
        } else {
            int64_t m[3];
            for (int a = 0; a < 3; a++) m[a] = s->margin_mm ? (int64_t)ceil(s->margin[a] / sp[a] - 1e-9) : (int64_t)s->margin[a];
            vp_box_add_margin(b, m, dims, allow_smaller);
        }
    } else if (s->kind == 1) {
        *b = s->box;
    } else {
        double ctr[3];
        if (s->center_mm) { /* RAS mm -> voxel: solve A[0:3,0:3] v = p - t */
            const double *A = ref->affine;
            double m[3][3], r[3];
            for (int i = 0; i < 3; i++) { for (int j = 0; j < 3; j++) m[i][j] = A[i * 4 + j]; r[i] = s->center[i] - A[i * 4 + 3]; }
            double det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
                         m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
            if (fabs(det) < 1e-12) { vp_error("case '%s': volume '%s': affine is singular", c->id, select_name); return -VP_ERR_DATA; }
            for (int k = 0; k < 3; k++) { /* Cramer's rule */
                double mk[3][3];
                memcpy(mk, m, sizeof mk);
                for (int i = 0; i < 3; i++) mk[i][k] = r[i];
                ctr[k] = (mk[0][0] * (mk[1][1] * mk[2][2] - mk[1][2] * mk[2][1]) - mk[0][1] * (mk[1][0] * mk[2][2] - mk[1][2] * mk[2][0]) +
                          mk[0][2] * (mk[1][0] * mk[2][1] - mk[1][1] * mk[2][0])) / det;
                ctr[k] = floor(ctr[k] + 0.5);
            }
        } else memcpy(ctr, s->center, sizeof ctr);
        for (int a = 0; a < 3; a++) {
            int64_t sz = s->size_mm ? (int64_t)floor(s->size[a] / sp[a] + 0.5) : (int64_t)s->size[a];
            if (sz < 1) sz = 1;
            if (fabs(ctr[a]) > 4.0 * (double)VP_MAX_DIM || sz > (int64_t)VP_MAX_DIM) {
                vp_error("case '%s': crop box out of range on axis %d", c->id, a);
                return -VP_ERR_DATA;
            }
            b->lo[a] = (int64_t)ctr[a] - sz / 2;
            b->hi[a] = b->lo[a] + sz;
        }
    }
    vp_box_k_divisible(b, s->k);
    box_str(b, bs, sizeof bs);
    for (int a = 0; a < 3; a++)
        if (b->hi[a] - b->lo[a] > (int64_t)VP_MAX_DIM) {
            vp_error("case '%s': crop box %s is larger than %llu voxels on axis %d", c->id, bs, (unsigned long long)VP_MAX_DIM, a);
            return -VP_ERR_DATA;
        }
    if (!vp_box_overlaps(b, dims) || (s->kind != 0 && !allow_outside && !vp_box_inside(b, dims))) {
        vp_error("case '%s': crop box %s is outside the image %llux%llux%llu of volume '%s'%s", c->id, bs,
                 (unsigned long long)dims[0], (unsigned long long)dims[1], (unsigned long long)dims[2], select_name,
                 vp_box_overlaps(b, dims) ? " (--allow-outside pads it)" : "");
        return -VP_ERR_DATA;
    }
    vp_debug("case '%s': crop box %s of %llux%llux%llu", c->id, bs, (unsigned long long)dims[0], (unsigned long long)dims[1],
             (unsigned long long)dims[2]);
    return 0;
}

static int crop_case(const struct setup *s, vp_case *c)
{
    const vp_vol *ref = vp_case_vol(c, select_name);
    if (!ref) { vp_error("case '%s': no volume '%s' (--select)", c->id, select_name); return -VP_ERR_DATA; }
    for (int i = 0; i < c->nvols; i++) {
        const vp_vol *v = c->vols[i];
        if (!same_grid(v, ref)) {
            vp_error("case '%s': volume '%s' (%llux%llux%llu) is not on the grid of volume '%s' (%llux%llux%llu, same affine); "
                     "crop needs one grid for all volumes", c->id, c->vol_names[i], (unsigned long long)v->dims[0],
                     (unsigned long long)v->dims[1], (unsigned long long)v->dims[2], select_name, (unsigned long long)ref->dims[0],
                     (unsigned long long)ref->dims[1], (unsigned long long)ref->dims[2]);
            return -VP_ERR_DATA;
        }
        unsigned char tmp[8];
        double pv = pad_for(c->vol_names[i]);
        if (pad_mode == VP_PAD_CONSTANT && vp_dtype_encode(v->dtype, pv, tmp)) {
            vp_error("case '%s': volume '%s': pad value %g does not fit dtype %s (give --pad-value %s=V)", c->id, c->vol_names[i],
                     pv, vp_dtype_name(v->dtype), c->vol_names[i]);
            return -VP_ERR_USAGE;
        }
    }
    struct vp_crop_rec rec;
    int r = case_box(s, c, ref, &rec.box);
    if (r) return r;
    for (int a = 0; a < 3; a++) rec.orig_dims[a] = ref->dims[a];
    memcpy(rec.orig_affine, ref->affine, sizeof rec.orig_affine);
    for (int i = 0; i < c->nvols; i++) {
        vp_vol *o = vp_vol_crop(c->vols[i], &rec.box, (enum vp_pad_mode)pad_mode, pad_for(c->vol_names[i]));
        vp_vol_free(&c->vols[i]);
        c->vols[i] = o;
    }
    vp_crop_meta_push(c, &rec);
    return 0;
}

static int step(vp_case *c, void *ctx) { return crop_case(ctx, c); }

int main(int argc, char **argv)
{
    vp_cli_parse(&cmd, argc, argv);
    struct setup s;
    parse_options(&s);

    return vp_filter_run(cmd.name, in_spec, out_spec, step, &s);
}
