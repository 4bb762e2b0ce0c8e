/* metric-dice - overlap metrics (Dice, IoU, ..., kappa, AUC) of a prediction against a reference,
 * per class and per class group, as a tidy TSV (or JSON lines). */
#include "classes.h"
#include "cli.h"
#include "endpoint.h"
#include "frame.h"
#include "overlap.h"
#include "tidy.h"
#include "util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *in_spec = "-", *out_spec = "-";
static const char *pred_name = "pred", *ref_name = "label";
static const char *classes_spec, *metrics_spec;
static struct vp_strlist group_args;
static int empty_rule = VP_EMPTY_NAN, json;

static const struct vp_opt opts[] = {
    VP_TIDY_PAIR_OPTS(in_spec, out_spec, pred_name, ref_name, classes_spec),
    {0, "group", "NAME=LIST", VP_OPT_LIST, &group_args, "also score the union of LIST's classes as one class NAME (repeatable)", 0, 0, NULL},
    {0, "metrics", "LIST", VP_OPT_STR, &metrics_spec, "comma-separated metrics to write (default: all, in the order below)", 0, 0, NULL},
    {0, "empty", "RULE", VP_OPT_CHOICE, &empty_rule, "value of an undefined metric (a zero denominator; default nan)", 0, 0, vp_empty_names},
    {0, "json", NULL, VP_OPT_FLAG, &json, "write JSON lines, one object per case and class, instead of TSV", 0, 0, NULL},
    {0, NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
};

static const struct vp_cmd cmd = {
    "metric-dice", "overlap metrics of a predicted against a reference label volume, per class",
    "[options]",
    "Each case of the input must hold both label volumes (--pred, --ref) on the same grid; dtypes\n"
    "u8, u16, i16, i32, or f16/f32 holding integers. One multi-threaded pass counts every pair of\n"
    "values; each class c is then scored as the binary masks 'value == c', and each group as\n"
    "'value in LIST'. To put two NIfTI files into one case:\n"
    "  vol-read REF.nii.gz --image-name label --label PRED.nii.gz --label-name pred | metric-dice\n"
    "\n"
    "Metrics (N = TP+FP+FN+TN):\n"
    "  tp fp fn tn          voxel counts\n"
    "  dice                 2TP/(2TP+FP+FN)          iou          TP/(TP+FP+FN)\n"
    "  accuracy             (TP+TN)/N                precision    TP/(TP+FP)\n"
    "  sensitivity          TP/(TP+FN)               specificity  TN/(TN+FP)\n"
    "  balanced_accuracy    (sensitivity+specificity)/2\n"
    "  kappa                Cohen's kappa of the binary masks,\n"
    "                       2(TP*TN-FN*FP)/((TP+FP)(FP+TN)+(TP+FN)(FN+TN))\n"
    "  auc                  1-(FPR+FNR)/2, FPR = FP/(FP+TN), FNR = FN/(TP+FN)\n"
    "  volume_similarity    1-|FN-FP|/(2TP+FP+FN)\n"
    "\n"
    "Empty masks: a metric whose formula divides by zero is undefined: dice, iou, kappa and\n"
    "volume_similarity when both masks are empty (kappa also when both fill the volume), precision\n"
    "when the prediction is empty, sensitivity when the reference is, specificity when the\n"
    "reference fills the volume, balanced_accuracy and auc when either of the last two is. A class\n"
    "listed in --classes but absent from both volumes is such a case. --empty gives the value:\n"
    "  nan   (default) as MONAI's compute_confusion_matrix_metric, and Metrics Reloaded's IoU and\n"
    "        precision for two empty masks; ttest leaves NaN out of means and tests\n"
    "  one   two empty masks agree perfectly: MONAI compute_dice / compute_iou with\n"
    "        ignore_empty=False, Metrics Reloaded's Dice\n"
    "  zero  MISeval's Dice fallback\n"
    "Not reproduced: MONAI's default compute_dice(ignore_empty=True) gives NaN for every empty\n"
    "reference, also with a non-empty prediction (here Dice 0: defined); Metrics Reloaded sets\n"
    "precision to 0 when only the prediction is empty (here undefined).\n"
    "\n"
    "Output: TSV with the header 'case<TAB>class<TAB>name<TAB>metric<TAB>value', one row per value;\n"
    "classes ascending, then groups in the order given (class = the group's NAME, name = its LIST).\n"
    "A case with no nonzero value writes no rows unless --classes lists some.\n"
    "name comes from meta 'labels' (empty when unnamed). Values are the shortest text that reads back\n"
    "to the same double; undefined ones 'nan'. An empty input stream gives the header alone (exit 0).\n"
    "With --json: one object per line {\"case\",\"class\",\"name\", METRIC: value ...}, NaN as null.\n"
    "Exit 3 for a case without either volume, volumes on different grids, non-integer labels, or a\n"
    "class name not in meta 'labels'; then no output file is left.",
    opts, 0, 0,
};

static int metric_on[VP_OVM_N], metric_order[VP_OVM_N], nmetrics;
static vp_group *groups;

static void parse_metrics(void)
{
    if (!metrics_spec) {
        for (int m = 0; m < VP_OVM_N; m++) metric_order[nmetrics++] = m;
        return;
    }
    const char *p = metrics_spec;
    for (;;) {
        size_t len = strcspn(p, ",");
        int m = 0;
        for (; m < VP_OVM_N; m++)
            if (strlen(vp_ovm_names[m]) == len && !strncmp(vp_ovm_names[m], p, len)) break;
        if (m == VP_OVM_N) vp_usage_error("option '--metrics': unknown metric '%.*s'", (int)len, p);
        if (!metric_on[m]) { metric_on[m] = 1; metric_order[nmetrics++] = m; }
        if (!p[len]) break;
        p += len + 1;
    }
}

/* rows of one class or group into f */
static void emit(FILE *f, const char *id, const char *cls, const char *name, const struct vp_counts *ct)
{
    char buf[32];
    if (json) {
        fputs("{\"case\":", f); vp_json_str(f, id);
        fputs(",\"class\":", f); vp_json_str(f, cls);
        fputs(",\"name\":", f); vp_json_str(f, name);
        for (int i = 0; i < nmetrics; i++) {
            int m = metric_order[i];
            double v = vp_overlap_metric(m, ct, empty_rule);
            fprintf(f, ",\"%s\":", vp_ovm_names[m]);
            if (m <= VP_OVM_TN) fprintf(f, "%" PRIu64, m == VP_OVM_TP ? ct->tp : m == VP_OVM_FP ? ct->fp : m == VP_OVM_FN ? ct->fn : ct->tn);
            else fputs(v != v ? "null" : vp_tidy_fmt(v, buf), f);
        }
        fputs("}\n", f);
        return;
    }
    char fid[VP_MAX_ID + 1], fname[512];
    vp_tidy_field(fid, sizeof fid, id);
    vp_tidy_field(fname, sizeof fname, name);
    for (int i = 0; i < nmetrics; i++) {
        int m = metric_order[i];
        fprintf(f, "%s\t%s\t%s\t%s\t", fid, cls, fname, vp_ovm_names[m]);
        if (m <= VP_OVM_TN) fprintf(f, "%" PRIu64 "\n", m == VP_OVM_TP ? ct->tp : m == VP_OVM_FP ? ct->fp : m == VP_OVM_FN ? ct->fn : ct->tn);
        else fprintf(f, "%s\n", vp_tidy_fmt(vp_overlap_metric(m, ct, empty_rule), buf));
    }
}

/* score one case; returns 0 or an exit code after printing the error */
static int score_case(const vp_case *c, FILE *f)
{
    char ctx[VP_MAX_ID + 32], why[512];
    snprintf(ctx, sizeof ctx, "case '%s'", c->id);
    const vp_vol *p, *r;
    if (vp_tidy_pair(c, pred_name, ref_name, ctx, &p, &r)) return VP_ERR_DATA;
    vp_confusion cf;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (vp_overlap_count(p, pred_name, r, ref_name, ctx, &cf)) return VP_ERR_DATA;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    vp_debug("%s: counted %zu value pairs of %llu voxels in %.4f s", ctx, cf.npairs, (unsigned long long)cf.nvox,
             (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    vp_classnames names;
    vp_classnames_from_case(c, &names);
    int rc = 0;
    int64_t *ids = NULL;
    size_t nids = 0;
    if (classes_spec) {
        if (vp_classes_parse(classes_spec, &names, &ids, &nids, why, sizeof why)) {
            vp_error("%s: --classes: %s", ctx, why);
            rc = VP_ERR_DATA;
        }
    } else {
        ids = vp_malloc((cf.nvals ? cf.nvals : 1) * sizeof *ids);
        for (size_t i = 0; i < cf.nvals; i++)
            if (cf.vals[i] != 0) ids[nids++] = cf.vals[i];
    }
    struct vp_counts ct;
    char cls[32];
    for (size_t i = 0; !rc && i < nids; i++) {
        vp_confusion_counts(&cf, &ids[i], 1, &ct);
        const char *nm = vp_classnames_get(&names, ids[i]);
        snprintf(cls, sizeof cls, "%" PRId64, ids[i]);
        emit(f, c->id, cls, nm ? nm : "", &ct);
    }
    for (int g = 0; !rc && g < group_args.n; g++) {
        int64_t *gids;
        size_t ng;
        if (vp_classes_parse(groups[g].spec, &names, &gids, &ng, why, sizeof why)) {
            vp_error("%s: --group %s: %s", ctx, groups[g].name, why);
            rc = VP_ERR_DATA;
            break;
        }
        vp_confusion_counts(&cf, gids, ng, &ct);
        emit(f, c->id, groups[g].name, groups[g].spec, &ct);
        free(gids);
    }
    free(ids);
    vp_classnames_free(&names);
    vp_confusion_free(&cf);
    return rc;
}

int main(int argc, char **argv)
{
    vp_cli_parse(&cmd, argc, argv);
    if (out_spec[0] == '@' || out_spec[0] == '>' || strstr(out_spec, "://"))
        vp_usage_error("option '--out': the table goes to - or a file, not a ZeroMQ endpoint");
    parse_metrics();
    char why[512];
    int64_t *tmp;
    size_t ntmp;
    if (classes_spec) {
        if (vp_classes_parse(classes_spec, NULL, &tmp, &ntmp, why, sizeof why)) vp_usage_error("option '--classes': %s", why);
        free(tmp);
    }
    groups = vp_calloc(group_args.n ? (size_t)group_args.n : 1, sizeof *groups);
    for (int g = 0; g < group_args.n; g++) {
        if (vp_group_parse(group_args.v[g], &groups[g], why, sizeof why)) vp_usage_error("option '--group': %s", why);
        for (int h = 0; h < g; h++)
            if (!strcmp(groups[h].name, groups[g].name)) vp_usage_error("option '--group': name '%s' given twice", groups[g].name);
    }

    int rc = vp_tidy_run(in_spec, out_spec, json, score_case);
    free(groups);
    free(group_args.v);
    return rc;
}
