/* report - the study's tables (per metric: mean ± sd and confidence interval per model, p-values)
 * as Markdown and HTML, with PNG figures (a heat map per model, box plots per metric), from tidy
 * metric tables and a ttest table. */
#include "cli.h"
#include "endpoint.h"
#include "pathpat.h"
#include "report.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct vp_strlist model_args;
static const char *out_spec = "-", *html_path, *fig_dir, *ttest_path, *title, *metrics_spec, *sum_spec,
                  *tests_spec = "student,paired", *heat_range, *heat_metric = "dice";
static int no_figures, exact, adjust;
static long digits = 3, pdigits = 5, cell = 12;
static double level = 0.95;
static const char *const adjust_choices[] = {"none", "holm", "bonferroni", NULL};

static const struct vp_opt opts[] = {
    {'m', "model", "NAME=FILE", VP_OPT_LIST, &model_args, "a model's tidy TSV (repeat for each model, up to 8; a name repeated adds files to that model)", 0, 0, NULL},
    {0, "ttest", "FILE", VP_OPT_STR, &ttest_path, "ttest's table of the first two models: per-class p-values", 0, 0, NULL},
    {'o', "out", "FILE", VP_OPT_STR, &out_spec, "the Markdown report: - (default) or a file (written atomically)", 0, 0, NULL},
    {0, "html", "FILE", VP_OPT_STR, &html_path, "also write the report as one self-contained HTML page", 0, 0, NULL},
    {0, "figures", "DIR", VP_OPT_STR, &fig_dir, "where the PNG figures go (default: STEM_figures beside the Markdown, else the HTML file)", 0, 0, NULL},
    {0, "no-figures", NULL, VP_OPT_FLAG, &no_figures, "write no figures", 0, 0, NULL},
    {0, "title", "TEXT", VP_OPT_STR, &title, "the report's title (default 'Segmentation metrics: A vs B')", 0, 0, NULL},
    {0, "metrics", "LIST", VP_OPT_STR, &metrics_spec, "comma-separated metrics, in order (default: all but tp, fp, fn, tn, in order of appearance)", 0, 0, NULL},
    {0, "summary-classes", "LIST", VP_OPT_STR, &sum_spec, "classes the summary averages per case: names or integer ranges A-B (default: the integer classes)", 0, 0, NULL},
    {0, "tests", "LIST", VP_OPT_STR, &tests_spec, "p-value columns: student, welch, paired, wilcoxon (default student,paired)", 0, 0, NULL},
    {0, "adjust", "HOW", VP_OPT_CHOICE, &adjust, "per-class p-values: as tested (none, default), or holm or bonferroni adjusted", 0, 0, adjust_choices},
    {0, "level", "L", VP_OPT_DOUBLE, &level, "confidence level of the intervals (default 0.95)", 0.5, 0.999999, NULL},
    {0, "digits", "N", VP_OPT_INT, &digits, "decimals of means, sds and intervals (default 3)", 0, 15, NULL},
    {0, "p-digits", "N", VP_OPT_INT, &pdigits, "decimals of p-values (default 5); smaller ones show as '< 0.00001'", 1, 15, NULL},
    {0, "exact", NULL, VP_OPT_FLAG, &exact, "every number as the shortest text that reads back to the same double", 0, 0, NULL},
    {0, "heatmap", "METRIC", VP_OPT_STR, &heat_metric, "the heat maps' metric (default dice; none: no heat maps)", 0, 0, NULL},
    {0, "heat-range", "LO,HI", VP_OPT_STR, &heat_range, "the heat maps' colour range (default: the values' range over all models)", 0, 0, NULL},
    {0, "cell", "PX", VP_OPT_INT, &cell, "heat map cell size in pixels (default 12)", 2, 64, NULL},
    {0, NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
};

static const struct vp_cmd cmd = {
    "report", "the study's tables and figures from metric tables: Markdown, HTML, PNG",
    "--model A=FILE --model B=FILE [--ttest FILE] [-o report.md] [--html report.html] [options]",
    "Each model FILE is a tidy TSV with columns case, class, metric, value (name optional; any\n"
    "order; other columns ignored), as metric-dice and hausdorff write; a model may be given as\n"
    "several files. Within a model a (case, class, metric) may appear once. The ttest FILE is\n"
    "ttest's output for the first two models (columns metric, class, test, statistic, value).\n"
    "\n"
    "The report (Markdown with -o, HTML with --html: the same text and numbers) holds:\n"
    "  Summary      one row per metric: per model n, mean ± sd and the t confidence interval of the\n"
    "               per-case means (per case, the mean over the summary classes of its values), and\n"
    "               with two models or more the p-values (--tests) of models 1 and 2 on those\n"
    "               per-case means, computed here as ttest does (not adjusted)\n"
    "  one section per metric: one row per class: per model n, mean ± sd, CI of the class's values\n"
    "               over cases; p-values from the --ttest table (--adjust picks p, p_holm or\n"
    "               p_bonferroni)\n"
    "  Figures      PNG files in the figures directory, linked from the Markdown and embedded in\n"
    "               the HTML as data: URIs:\n"
    "    heatmap-METRIC-MODEL.png  rows = classes holding METRIC, columns = cases (in the listed\n"
    "               order); colour red (worst) to blue (best) over --heat-range, one scale for all\n"
    "               models; grey NaN or infinite; white no value; a legend bar at the right.\n"
    "               Width 44 + ncases*CELL + 70, height 16 + max(nclasses*CELL, 120).\n"
    "    box-METRIC.png  per class and for the per-case mean, one box per model: median,\n"
    "               quartiles (linear interpolation), whiskers to the furthest value within 1.5 IQR,\n"
    "               dots beyond; non-finite values left out. Width 56 + ngroups*(nmodels*12 + 10)\n"
    "               + 8 (ngroups = classes holding METRIC + 1), height 228.\n"
    "Means, sds (ddof 1) and t intervals are those of ttest: NaN values are left out (n counts the\n"
    "rest), an infinite value makes the mean infinite. Numbers print with --digits decimals (p-values\n"
    "with --p-digits), 'n/a' when undefined; --exact prints each as the shortest text that reads back\n"
    "to the same double. Lower is better for hd*, masd*, ahd*, assd*, fp and fn.\n"
    "\n"
    "Exit 3 for a table without a needed column, a value that is not a number, a duplicate row, a\n"
    "ttest table of other models, a --metrics or --summary-classes name the tables do not hold;\n"
    "nothing is written then. All outputs are written to temporary files and renamed at the end;\n"
    "then figures of an earlier run (heatmap-*.png, box-*.png) that this run did not write are\n"
    "removed from the figures directory.",
    opts, 0, 0,
};

/* the comma-separated items of spec, one at a time: *item and *len; 0 at the end */
static int next_item(const char **p, const char **item, size_t *len)
{
    if (!*p || !**p) return 0;
    *item = *p;
    *len = strcspn(*p, ",");
    *p += (*p)[*len] ? *len + 1 : *len;
    return 1;
}

static int is_int(const char *s, size_t n, long long *v)
{
    char buf[32], *end;
    if (!n || n >= sizeof buf) return 0;
    memcpy(buf, s, n); buf[n] = 0;
    errno = 0;
    *v = strtoll(buf, &end, 10);
    return !*end && !errno;
}

/* metrics to report, in order; 0 or an exit code */
static int pick_metrics(const vp_report *r, size_t **out, size_t *n)
{
    *out = vp_malloc((r->nmetric + 1) * sizeof **out);
    *n = 0;
    if (!metrics_spec) {
        static const char *const counts[] = {"tp", "fp", "fn", "tn"};
        for (size_t m = 0; m < r->nmetric; m++) {
            int skip = 0;
            for (int i = 0; i < 4; i++) skip |= !strcmp(r->metric[m], counts[i]);
            if (!skip) (*out)[(*n)++] = m;
        }
        return 0;
    }
    const char *p = metrics_spec, *it;
    size_t len;
    while (next_item(&p, &it, &len)) {
        char *name = strndup(it, len);
        long m = vp_report_metric(r, name);
        if (m < 0) { vp_error("--metrics: no metric '%s' in the tables", name); free(name); return VP_ERR_DATA; }
        free(name);
        *out = vp_realloc(*out, (*n + r->nmetric + 1) * sizeof **out);
        (*out)[(*n)++] = (size_t)m;
    }
    return 0;
}

/* classes of the summary; 0 or an exit code */
static int pick_summary(const vp_report *r, uint8_t *sel)
{
    long long id, a, b;
    for (size_t c = 0; c < r->nclass; c++) sel[c] = !sum_spec && is_int(r->cls[c], strlen(r->cls[c]), &id);
    if (!sum_spec) return 0;
    const char *p = sum_spec, *it;
    size_t len;
    while (next_item(&p, &it, &len)) {
        const char *dash = memchr(it + 1, '-', len > 1 ? len - 1 : 0);
        int found = 0;
        if (dash && is_int(it, (size_t)(dash - it), &a) && is_int(dash + 1, len - (size_t)(dash - it) - 1, &b)) {
            for (size_t c = 0; c < r->nclass; c++)
                if (is_int(r->cls[c], strlen(r->cls[c]), &id) && id >= a && id <= b) sel[c] = found = 1;
        } else {
            for (size_t c = 0; c < r->nclass; c++)
                if (strlen(r->cls[c]) == len && !strncmp(r->cls[c], it, len)) sel[c] = found = 1;
        }
        if (!found) {
            vp_error("--summary-classes: no class '%.*s' in the tables", (int)len, it);
            return VP_ERR_DATA;
        }
    }
    return 0;
}

static unsigned parse_tests(void)
{
    unsigned t = 0;
    const char *p = tests_spec, *it;
    size_t len;
    while (next_item(&p, &it, &len)) {
        int i = 0;
        for (; vp_report_test_names[i]; i++)
            if (strlen(vp_report_test_names[i]) == len && !strncmp(vp_report_test_names[i], it, len)) break;
        if (!vp_report_test_names[i]) vp_usage_error("option '--tests': unknown test '%.*s' (student, welch, paired, wilcoxon)", (int)len, it);
        t |= 1u << i;
    }
    return t;
}

/* "dir/stem.ext" -> "dir/stem_figures" */
static char *default_figdir(const char *path, const char *ext)
{
    size_t n = strlen(path), e = strlen(ext);
    if (n > e && !strcmp(path + n - e, ext)) n -= e;
    char *d = vp_malloc(n + 9);
    memcpy(d, path, n);
    strcpy(d + n, "_figures");
    return d;
}

/* the path of dir relative to the directory holding file (both existing), or NULL */
static char *relative_to(const char *dir, const char *file)
{
    char *fd = vp_strdup(file), *slash = strrchr(fd, '/');
    if (slash) slash[1] = 0; else strcpy(fd, ".");
    char *a = realpath(dir, NULL), *b = realpath(fd, NULL), *rel = NULL;
    free(fd);
    if (a && b) {
        /* the longest common prefix of whole components: i at a '/' or the end of both */
        size_t i = 0, common = 0;
        for (;; i++) {
            int ea = a[i] == '/' || !a[i], eb = b[i] == '/' || !b[i];
            if (ea && eb) common = i;
            if (!a[i] || !b[i] || a[i] != b[i]) break;
        }
        size_t up = 0;
        for (const char *p = b + common; *p; p++) up += *p == '/' && p[1];
        const char *down = a + common;
        if (*down == '/') down++;
        rel = vp_malloc(3 * up + strlen(down) + 2);
        rel[0] = 0;
        for (size_t k = 0; k < up; k++) strcat(rel, "../");
        strcat(rel, down);
        size_t l = strlen(rel);
        if (!l) strcpy(rel, ".");
        else if (rel[l - 1] == '/') rel[l - 1] = 0;
    }
    free(a); free(b);
    return rel;
}

static char *path_join(const char *dir, const char *name)
{
    char *p = vp_malloc(strlen(dir) + strlen(name) + 2);
    sprintf(p, "%s/%s", dir, name);
    return p;
}

/* remove figures of an earlier run that this one did not write: heatmap-*.png and box-*.png */
static void remove_stale(const char *dir, const vp_figure *fig, size_t nfig)
{
    DIR *d = opendir(dir);
    if (!d) return;
    for (struct dirent *e; (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        if ((strncmp(e->d_name, "heatmap-", 8) && strncmp(e->d_name, "box-", 4)) || n < 5 || strcmp(e->d_name + n - 4, ".png"))
            continue;
        size_t i = 0;
        while (i < nfig && strcmp(fig[i].file, e->d_name)) i++;
        if (i < nfig) continue;
        char *p = path_join(dir, e->d_name);
        if (unlink(p)) vp_warn("'%s': cannot remove an earlier figure: %s", p, strerror(errno));
        else vp_debug("removed the earlier figure '%s'", p);
        free(p);
    }
    closedir(d);
}


int main(int argc, char **argv)
{
    const char *default_heat = heat_metric;
    vp_cli_parse(&cmd, argc, argv);
    if (!model_args.n) vp_usage_error("give at least one model: --model NAME=FILE");
    unsigned tests = parse_tests();
    double heat_lo = NAN, heat_hi = NAN;
    if (heat_range) {
        char *end;
        heat_lo = strtod(heat_range, &end);
        if (*end != ',' || (heat_hi = strtod(end + 1, &end), *end) || !(heat_hi > heat_lo) || !isfinite(heat_hi - heat_lo))
            vp_usage_error("option '--heat-range': expected LO,HI with LO < HI, got '%s'", heat_range);
    }
    char *names[VP_REPORT_MAX_MODELS], **paths = vp_malloc((size_t)model_args.n * sizeof *paths);
    int nm = 0, *which = vp_malloc((size_t)model_args.n * sizeof *which);
    for (int i = 0; i < model_args.n; i++) {
        const char *a = model_args.v[i], *eq = strchr(a, '=');
        if (!eq || eq == a || !eq[1]) vp_usage_error("option '--model': expected NAME=FILE, got '%s'", a);
        char *name = strndup(a, (size_t)(eq - a));
        if (!vp_name_is_safe(name)) vp_usage_error("option '--model': name '%s': use letters, digits, '.', '_', '+', '-'", name);
        int k = 0;
        while (k < nm && strcmp(names[k], name)) k++;
        if (k == nm) {
            if (nm == VP_REPORT_MAX_MODELS) vp_usage_error("option '--model': at most %d models", VP_REPORT_MAX_MODELS);
            names[nm++] = name;
        } else {
            free(name);
        }
        which[i] = k;
        paths[i] = (char *)eq + 1;
    }
    if (ttest_path && nm < 2) vp_usage_error("option '--ttest': needs two models");

    vp_report r;
    size_t *metrics = NULL, nmetrics = 0;
    uint8_t *sel = NULL;
    int rc = vp_report_load(&r, nm, names, model_args.n, paths, which);
    if (!rc && ttest_path) rc = vp_report_load_ttest(&r, ttest_path);
    if (!rc) rc = pick_metrics(&r, &metrics, &nmetrics);
    if (!rc) rc = pick_summary(&r, sel = vp_calloc(r.nclass + 1, 1));
    long heat = -1;
    if (!rc && strcmp(heat_metric, "none")) {
        heat = vp_report_metric(&r, heat_metric);
        if (heat < 0 && heat_metric != default_heat) { vp_error("--heatmap: no metric '%s' in the tables", heat_metric); rc = VP_ERR_DATA; }
        else if (heat < 0 && !no_figures) vp_info("no '%s' values in the tables: no heat maps", heat_metric);
    }
    int md_file = strcmp(out_spec, "-") != 0;
    char *figdir = NULL, *figlink = NULL;
    if (!no_figures) {
        if (fig_dir) figdir = vp_strdup(fig_dir);
        else if (md_file) figdir = default_figdir(out_spec, ".md");
        else if (html_path) figdir = default_figdir(html_path, ".html");
    }

    vp_figure *fig = NULL;
    size_t nfig = 0;
    if (!rc && figdir) {
        struct vp_figure_opts fo = {heat, heat_lo, heat_hi, (int)cell, metrics, nmetrics, sel, (int)(exact ? 6 : digits)};
        nfig = vp_report_figures(&r, &fo, &fig);
        char *probe = path_join(figdir, "x");
        if (vp_mkdir_parents(probe)) rc = VP_ERR_RUNTIME;
        free(probe);
        if (!rc && md_file) figlink = relative_to(figdir, out_spec);
        if (!rc && !figlink) figlink = vp_strdup(figdir);
    }
    char *def_title = NULL;
    if (!title) {
        size_t len = 32;
        for (int k = 0; k < nm; k++) len += strlen(names[k]) + 4;
        def_title = vp_malloc(len);
        strcpy(def_title, "Segmentation metrics: ");
        for (int k = 0; k < nm; k++) { if (k) strcat(def_title, " vs "); strcat(def_title, names[k]); }
    }
    struct vp_doc_opts d = {title ? title : def_title, (int)digits, (int)pdigits, exact, level, tests, adjust,
                            metrics, nmetrics, sel, model_args.n, paths, which, ttest_path, figlink ? figlink : ""};

    /* every output to a temporary file first; renamed into place only when all are written */
    size_t nout = nfig + 2;
    vp_out **outs = vp_calloc(nout, sizeof *outs);
    for (size_t i = 0; !rc && i < nfig; i++) {
        char *p = path_join(figdir, fig[i].file);
        if (!(outs[i] = vp_out_open(p, 0)) || vp_out_write(outs[i], fig[i].png, fig[i].len)) rc = VP_ERR_RUNTIME;
        free(p);
    }
    for (int h = 0; h < 2 && !rc; h++) {
        const char *path = h ? out_spec : html_path;
        if (!path) continue;
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (!f) vp_die(VP_ERR_RUNTIME, "out of memory");
        if (h) vp_report_markdown(f, &r, &d, fig, nfig);
        else vp_report_html(f, &r, &d, fig, nfig);
        fclose(f);
        if (!(outs[nfig + (size_t)h] = vp_out_open(path, VP_OUT_ALLOW_TTY)) || vp_out_write(outs[nfig + (size_t)h], buf, len))
            rc = VP_ERR_RUNTIME;
        free(buf);
    }
    for (size_t i = 0; i < nout; i++) /* the Markdown last: make sees it as the newest */
        if (outs[i] && vp_out_close(&outs[i], !rc) && !rc) rc = VP_ERR_RUNTIME;
    free(outs);
    if (!rc && figdir) remove_stale(figdir, fig, nfig);
    vp_report_figures_free(fig, nfig);
    vp_report_free(&r);
    for (int k = 0; k < nm; k++) free(names[k]);
    free(paths); free(which); free(metrics); free(sel); free(figdir); free(figlink); free(def_title);
    free(model_args.v);
    return rc;
}
