/* hausdorff - boundary distance metrics (Hausdorff, HDp, MASD, ASSD, surface Dice, boundary F1) of a
 * prediction against a reference, per class, in mm, under the conventions of the well-known tools. */
#include "classbox.h"
#include "classes.h"
#include "cli.h"
#include "endpoint.h"
#include "frame.h"
#include "overlap.h"
#include "surface.h"
#include "tidy.h"
#include "util.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *in_spec = "-", *out_spec = "-";
static const char *pred_name = "pred", *ref_name = "label";
static const char *classes_spec, *metrics_spec;
static int conv = VP_CONV_VOXPIPE, json;
static double percentile = 95, tolerance = 1;

static const struct vp_opt opts[] = {
    VP_TIDY_PAIR_OPTS(in_spec, out_spec, pred_name, ref_name, classes_spec),
    {0, "convention", "NAME", VP_OPT_CHOICE, &conv, "whose boundaries, percentiles, pooling and empty-mask values (default voxpipe)", 0, 0, vp_conv_names},
    {0, "percentile", "P", VP_OPT_DOUBLE, &percentile, "the percentile of the robust Hausdorff distance (default 95)", 0, 100, NULL},
    {0, "tolerance", "MM", VP_OPT_DOUBLE, &tolerance, "tolerance of the surface Dice and boundary F1 in mm (default 1)", 0, 1e9, NULL},
    {0, "metrics", "LIST", VP_OPT_STR, &metrics_spec, "comma-separated metrics to write (default: all, in the order below)", 0, 0, NULL},
    {0, "json", NULL, VP_OPT_FLAG, &json, "write JSON lines, one object per case and class, instead of TSV", 0, 0, NULL},
    {0, NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
};

static const struct vp_cmd cmd = {
    "hausdorff", "boundary distance metrics of a predicted against a reference label volume, per class, in mm",
    "[options]",
    "Each case of the input must hold both label volumes (--pred, --ref) on the same grid (dtypes u8,\n"
    "u16, i16, i32, or f16/f32 holding integers). Distances are in mm along the affine's spacing. To\n"
    "put two NIfTI files into one case (the first becomes 'label', the second 'pred'):\n"
    "  vol-read REF.nii.gz --image-name label --label PRED.nii.gz --label-name pred --id CASE | hausdorff\n"
    "One pass finds every class and its bounding box; each class is then measured on the union box\n"
    "of its two masks with an exact Euclidean distance transform (multi-threaded, deterministic).\n"
    "\n"
    "Metrics (P, R: the boundaries of prediction and reference; d(P->R) the distances from P to R):\n"
    "  hd          Hausdorff distance, max(max d(P->R), max d(R->P))\n"
    "  hdP         robust Hausdorff at --percentile P (hd95), pooled per convention\n"
    "  masd        mean of the two directed averages, (mean d(P->R) + mean d(R->P)) / 2\n"
    "  ahd         max of the two directed averages (average Hausdorff distance)\n"
    "  assd        average symmetric surface distance: mean of d(P->R) and d(R->P) pooled\n"
    "  nsd_Tmm     normalized surface Dice at tolerance T: share of both boundaries within T\n"
    "  bprec_Tmm   share of P within T of R;  brec_Tmm  share of R within T of P\n"
    "  bf1_Tmm     boundary F1, 2 bprec brec / (bprec + brec)\n"
    "  hd_set hdP_set masd_set ahd_set   (plastimatch only) its variants over all voxels\n"
    "\n"
    "Conventions (docs/METRICS.md has the details):\n"
    "  voxpipe          boundary voxels (object voxels with a 6-neighbour outside the object or the\n"
    "                   image), distances between voxel centres, numpy's linear percentile per\n"
    "                   direction and the larger of the two; both masks empty: nan; one empty: inf\n"
    "                   (nsd, bf1: 0)\n"
    "  monai            MONAI's compute_hausdorff_distance, compute_average_surface_distance\n"
    "                   (symmetric = assd) and compute_surface_dice: voxpipe's boundary, float32\n"
    "  deepmind         surface-distance: area-weighted surfels at voxel corners\n"
    "  metricsreloaded  Metrics Reloaded: both masks empty give 0\n"
    "  plastimatch      plastimatch 1.9.4 dice --hausdorff: its crop (the union box, less the last\n"
    "                   slice along an axis the union spans entirely), its boundary (the crop's\n"
    "                   faces count as outside unless it is one voxel thick), hdP and masd the mean\n"
    "                   of the two directed values, results in float; distances to an empty mask\n"
    "                   3.4028234663852886e+38 (FLT_MAX); both empty: nan\n"
    "\n"
    "Output: TSV with the header 'case<TAB>class<TAB>name<TAB>metric<TAB>value', one row per value,\n"
    "classes ascending; name from meta 'labels' (empty when unnamed); values as the shortest text\n"
    "that reads back to the same double, 'nan' and 'inf' for undefined and infinite ones. A class\n"
    "listed in --classes but absent from both volumes gets the convention's both-empty values. An\n"
    "empty input stream gives the header alone. With --json: one object per line {\"case\", \"class\",\n"
    "\"name\", METRIC: value ...}, NaN as null and +inf as 1e999 (read back as infinity).\n"
    "Exit 3 for a case without either volume, volumes on different grids, non-integer labels, or a\n"
    "class name not in meta 'labels'; then no output file is left.",
    opts, 0, 0,
};

static char mnames[VP_SM_N][48];
static int metric_order[VP_SM_N], nmetrics;

static int metric_applies(int m)
{
    return m < VP_SM_HD_SET || conv == VP_CONV_PLASTIMATCH;
}

static void make_metric_names(void)
{
    const char *base[VP_SM_N] = {"hd", "hd%g", "masd", "ahd", "assd", "nsd_%gmm", "bprec_%gmm", "brec_%gmm", "bf1_%gmm",
                                 "hd_set", "hd%g_set", "masd_set", "ahd_set"};
    for (int m = 0; m < VP_SM_N; m++) {
        double arg = m == VP_SM_HDP || m == VP_SM_HDP_SET ? percentile : tolerance;
        snprintf(mnames[m], sizeof mnames[m], base[m], arg);
    }
    if (!metrics_spec) {
        for (int m = 0; m < VP_SM_N; m++)
            if (metric_applies(m)) metric_order[nmetrics++] = m;
        return;
    }
    int on[VP_SM_N] = {0};
    for (const char *p = metrics_spec;;) {
        size_t len = strcspn(p, ",");
        int m = 0;
        for (; m < VP_SM_N; m++)
            if (metric_applies(m) && strlen(mnames[m]) == len && !strncmp(mnames[m], p, len)) break;
        if (m == VP_SM_N) vp_usage_error("option '--metrics': unknown metric '%.*s' (with these options)", (int)len, p);
        if (!on[m]) {
            on[m] = 1;
            metric_order[nmetrics++] = m;
        }
        if (!p[len]) break;
        p += len + 1;
    }
}

static void emit(FILE *f, const char *id, int64_t cls, const char *name, const double *v)
{
    char buf[32];
    if (json) {
        fputs("{\"case\":", f);
        vp_json_str(f, id);
        fprintf(f, ",\"class\":\"%" PRId64 "\",\"name\":", cls);
        vp_json_str(f, name);
        for (int i = 0; i < nmetrics; i++) {
            double x = v[metric_order[i]];
            fprintf(f, ",\"%s\":%s", mnames[metric_order[i]], x != x ? "null" : x == INFINITY ? "1e999" : vp_tidy_fmt(x, buf));
        }
        fputs("}\n", f);
        return;
    }
    char fid[VP_MAX_ID + 1], fname[512];
    vp_tidy_field(fid, sizeof fid, id);
    vp_tidy_field(fname, sizeof fname, name);
    for (int i = 0; i < nmetrics; i++)
        fprintf(f, "%s\t%" PRId64 "\t%s\t%s\t%s\n", fid, cls, fname, mnames[metric_order[i]], vp_tidy_fmt(v[metric_order[i]], buf));
}

/* plastimatch 1.9.4 crops both images to the union bounding box with itk_crop_by_index, which
 * clamps the size to the image size less one: along an axis the union spans entirely (of more than
 * one voxel), the last slice is dropped. */
static void plastimatch_crop(vp_classbox *b, const uint64_t dims[3])
{
    for (int a = 0; a < 3; a++)
        if (dims[a] > 1 && b->lo[a] == 0 && b->hi[a] == dims[a] - 1) b->hi[a]--;
}

/* mark the faces of a padded box as beyond the image (the slice plastimatch_crop dropped may hold
 * object voxels) */
static void faces_out(uint8_t *m, const uint64_t d[3])
{
    for (uint64_t z = 0; z < d[2]; z++)
        for (uint64_t y = 0; y < d[1]; y++) {
            uint8_t *row = m + (z * d[1] + y) * d[0];
            if (z == 0 || z == d[2] - 1 || y == 0 || y == d[1] - 1) {
                memset(row, VP_MASK_OUT, d[0]);
            } else {
                row[0] = VP_MASK_OUT;
                row[d[0] - 1] = VP_MASK_OUT;
            }
        }
}

/* metrics of one class */
static void measure(const vp_vol *p, const vp_vol *r, int64_t id, const vp_classbox *box, const double sp[3],
                    struct vp_surface_res *res)
{
    struct vp_surface_opts o = {(enum vp_conv)conv, percentile, tolerance};
    struct vp_surface_in in = {{3, 3, 3}, NULL, NULL, {0, 0, 0}, {sp[0], sp[1], sp[2]}};
    uint8_t empty[27] = {0};
    uint8_t *mp = empty, *mr = empty;
    vp_classbox b;
    if (box) { /* present in at least one volume */
        b = *box;
        if (conv == VP_CONV_PLASTIMATCH) plastimatch_crop(&b, r->dims);
        vp_classbox_dims(&b, in.dims);
        uint64_t n = in.dims[0] * in.dims[1] * in.dims[2];
        mp = vp_malloc(n);
        mr = vp_malloc(n);
        vp_classbox_mask(p, id, &b, mp);
        vp_classbox_mask(r, id, &b, mr);
        if (conv == VP_CONV_PLASTIMATCH) {
            faces_out(mp, in.dims);
            faces_out(mr, in.dims);
        }
        for (int a = 0; a < 3; a++) in.origin[a] = (int64_t)b.lo[a] - 1;
    }
    in.pred = mp;
    in.ref = mr;
    vp_surface_metrics(&in, &o, res);
    if (box) {
        free(mp);
        free(mr);
    }
}

static int score_case(const vp_case *c, FILE *f)
{
    char ctx[VP_MAX_ID + 32], why[512];
    snprintf(ctx, sizeof ctx, "case '%s'", c->id);
    const vp_vol *p, *r;
    if (vp_tidy_pair(c, pred_name, ref_name, ctx, &p, &r)) return VP_ERR_DATA;
    if (!vp_overlap_same_grid(p, r, why, sizeof why)) {
        vp_error("%s: volumes '%s' and '%s' are on different grids (%s); resample one first", ctx, pred_name, ref_name, why);
        return VP_ERR_DATA;
    }
    vp_classboxes boxes;
    if (vp_classbox_scan(p, pred_name, r, ref_name, ctx, &boxes)) return VP_ERR_DATA;
    vp_classnames names;
    vp_classnames_from_case(c, &names);
    int64_t *ids = NULL;
    size_t nids = 0;
    int rc = 0;
    if (classes_spec) {
        if (vp_classes_parse(classes_spec, &names, &ids, &nids, why, sizeof why)) {
            vp_error("%s: --classes: %s", ctx, why);
            rc = VP_ERR_DATA;
        }
    } else {
        ids = vp_malloc((boxes.n ? boxes.n : 1) * sizeof *ids);
        for (size_t i = 0; i < boxes.n; i++) ids[nids++] = boxes.b[i].id;
    }
    double sp[3];
    vp_vol_spacing(r, sp);
    for (size_t i = 0; !rc && i < nids; i++) {
        struct vp_surface_res res;
        measure(p, r, ids[i], vp_classbox_find(&boxes, ids[i]), sp, &res);
        const char *nm = vp_classnames_get(&names, ids[i]);
        emit(f, c->id, ids[i], nm ? nm : "", res.v);
        vp_debug("%s: class %" PRId64 ": %" PRIu64 " + %" PRIu64 " boundary elements", ctx, ids[i], res.npred, res.nref);
    }
    free(ids);
    vp_classnames_free(&names);
    vp_classboxes_free(&boxes);
    return rc;
}

int main(int argc, char **argv)
{
    vp_cli_parse(&cmd, argc, argv);
    if (out_spec[0] == '@' || out_spec[0] == '>' || strstr(out_spec, "://"))
        vp_usage_error("option '--out': the table goes to - or a file, not a ZeroMQ endpoint");
    make_metric_names();
    char why[512];
    if (classes_spec) {
        int64_t *tmp;
        size_t ntmp;
        if (vp_classes_parse(classes_spec, NULL, &tmp, &ntmp, why, sizeof why)) vp_usage_error("option '--classes': %s", why);
        free(tmp);
    }

    return vp_tidy_run(in_spec, out_spec, json, score_case);
}
