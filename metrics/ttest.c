/* ttest - compare two models' tidy metric tables per metric and class: summaries with confidence
 * intervals, Student / Welch / paired t-tests and the Wilcoxon signed-rank test, Holm and Bonferroni
 * adjusted across classes. */
#include "cli.h"
#include "endpoint.h"
#include "stats.h"
#include "tidy.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct vp_strlist model_args;
static const char *out_spec = "-", *metrics_spec;
static double level = 0.95;
static int nan_policy; /* 0 omit, 1 propagate */
static const char *const nan_choices[] = {"omit", "propagate", NULL};

static const struct vp_opt opts[] = {
    {'m', "model", "NAME=FILE", VP_OPT_LIST, &model_args, "a model's tidy TSV (give two names; a name repeated adds files to that model)", 0, 0, NULL},
    {'o', "out", "FILE", VP_OPT_STR, &out_spec, "where to write the table: - (default) or a file (written atomically)", 0, 0, NULL},
    {0, "metrics", "LIST", VP_OPT_STR, &metrics_spec, "comma-separated metrics to compare (default: every metric in the tables)", 0, 0, NULL},
    {0, "level", "L", VP_OPT_DOUBLE, &level, "confidence level of the intervals (default 0.95)", 0.5, 0.999999, NULL},
    {0, "nan", "POLICY", VP_OPT_CHOICE, &nan_policy, "NaN values: omit them (default; a pair with one is dropped) or propagate", 0, 0, nan_choices},
    {0, NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
};

static const struct vp_cmd cmd = {
    "ttest", "compare two models' metric tables: t-tests, Wilcoxon, confidence intervals",
    "--model A=FILE --model B=FILE [options]",
    "Each FILE is a tidy TSV with columns case, class, metric, value, as metric-dice writes (name\n"
    "optional: the first non-empty one names the class; any column order; other columns ignored).\n"
    "Values are grouped by (metric, class); within a model a (case, class, metric) may appear once.\n"
    "NaN values (an undefined metric) are left out, and a pair holding one is dropped (--nan omit);\n"
    "--nan propagate makes the statistics of that group NaN instead, as scipy's default does.\n"
    "For each group, A and B being the models in the order first named:\n"
    "  MODEL     n, mean, sd (ddof 1), ci_low, ci_high: t interval of the mean at --level (the\n"
    "            point [mean, mean] when sd = 0, where scipy's t.interval gives NaN)\n"
    "  student   t, df, p, diff (mean A - mean B): unpaired, pooled variance, as the study used\n"
    "  welch     t, df, p, diff: unpaired, unequal variances, Welch-Satterthwaite df\n"
    "  paired    t, df, n, p, mean_diff, ci_low, ci_high: the cases present in both, A - B\n"
    "  wilcoxon  w = min(R+, R-), z = -|R+ - n(n+1)/4| / se, n (nonzero differences), p, exact:\n"
    "            signed-rank test of the same pairs with scipy.stats.wilcoxon's defaults (zero\n"
    "            differences dropped, average ranks, no continuity correction, method 'auto'):\n"
    "            the exact distribution of R+ for at most 50 pairs without ties or zeros; the\n"
    "            exact permutation distribution (all 2^n sign flips) for ties or zeros and at\n"
    "            most 13 pairs; else the normal approximation with tie correction. exact = 1 when\n"
    "            the p-value is not the approximation.\n"
    "Each test also gets p_holm and p_bonferroni: its p-values adjusted across the classes (and\n"
    "groups) of one metric; NaN p-values are not part of the family.\n"
    "p-values are two-sided; Student's t distribution comes from the regularized incomplete beta\n"
    "function (Cephes' incbet), its quantile from bisection to the last bit. Too few values give\n"
    "NaN as in scipy (e.g. Welch with a sample of one; a zero standard error gives t = +-inf, p = 0).\n"
    "\n"
    "Output: TSV 'metric<TAB>class<TAB>name<TAB>test<TAB>statistic<TAB>value', groups in order of\n"
    "first appearance. Exit 3 for a missing column, a value that is not a number, a row with the\n"
    "wrong number of fields or a duplicate row; no output file is left then.",
    opts, 0, 0,
};

struct obs { const char *cas; double v; size_t line; const char *path; int file; };

struct grp {
    const char *metric, *cls, *name;
    struct obs *o[2];
    size_t n[2], cap[2];
    struct vp_summary sum[2];
    struct vp_ttest st, we, pa;
    struct vp_summary dsum; /* of the paired differences */
    struct vp_wilcoxon wx;
    double p[4], holm[4], bonf[4]; /* student, welch, paired, wilcoxon */
};

static const char *model_name[2];
static struct grp *grps;
static size_t ngrps, capgrps;
/* open-addressing index (metric, class) -> group */
static size_t *slots, nslots;

static uint64_t hash2(const char *a, const char *b)
{
    uint64_t h = 1469598103934665603ull;
    for (; *a; a++) h = (h ^ (unsigned char)*a) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
    for (; *b; b++) h = (h ^ (unsigned char)*b) * 1099511628211ull;
    return h;
}

static void index_put(size_t g)
{
    size_t i = hash2(grps[g].metric, grps[g].cls) & (nslots - 1);
    while (slots[i] != (size_t)-1) i = (i + 1) & (nslots - 1);
    slots[i] = g;
}

static struct grp *group_of(const char *metric, const char *cls, const char *name)
{
    if (2 * (ngrps + 1) > nslots) {
        free(slots);
        nslots = nslots ? nslots * 2 : 64;
        slots = vp_malloc(nslots * sizeof *slots);
        memset(slots, 0xff, nslots * sizeof *slots);
        for (size_t g = 0; g < ngrps; g++) index_put(g);
    }
    size_t i = hash2(metric, cls) & (nslots - 1);
    for (; slots[i] != (size_t)-1; i = (i + 1) & (nslots - 1))
        if (!strcmp(grps[slots[i]].metric, metric) && !strcmp(grps[slots[i]].cls, cls)) {
            if (!*grps[slots[i]].name) grps[slots[i]].name = name; /* a table without names first */
            return &grps[slots[i]];
        }
    if (ngrps == capgrps) grps = vp_realloc(grps, (capgrps = capgrps ? capgrps * 2 : 64) * sizeof *grps);
    struct grp *g = &grps[ngrps];
    memset(g, 0, sizeof *g);
    g->metric = metric; g->cls = cls; g->name = name;
    index_put(ngrps++);
    return g;
}

static int metric_wanted(const char *m)
{
    if (!metrics_spec) return 1;
    size_t len = strlen(m);
    for (const char *p = metrics_spec;;) {
        size_t l = strcspn(p, ",");
        if (l == len && !strncmp(p, m, len)) return 1;
        if (!p[l]) return 0;
        p += l + 1;
    }
}

/* add one file's rows to model k; 0 or an exit code */
static int load(vp_table *t, int k, int file)
{
    static const char *need[] = {"case", "class", "metric", "value"};
    int col[4];
    for (int i = 0; i < 4; i++)
        if ((col[i] = vp_table_col(t, need[i])) < 0) {
            vp_error("'%s': no column '%s' (a tidy table needs case, class, metric, value)", t->path, need[i]);
            return VP_ERR_DATA;
        }
    int cname = vp_table_col(t, "name");
    for (size_t r = 0; r < t->nrows; r++) {
        const char *metric = vp_table_cell(t, r, col[2]);
        if (!metric_wanted(metric)) continue;
        double v;
        const char *vs = vp_table_cell(t, r, col[3]);
        if (vp_tidy_parse_double(vs, &v)) {
            vp_error("%s:%zu: value '%s' is not a number", t->path, t->lines[r], vs);
            return VP_ERR_DATA;
        }
        struct grp *g = group_of(metric, vp_table_cell(t, r, col[1]), cname >= 0 ? vp_table_cell(t, r, cname) : "");
        if (g->n[k] == g->cap[k]) g->o[k] = vp_realloc(g->o[k], (g->cap[k] = g->cap[k] ? g->cap[k] * 2 : 16) * sizeof *g->o[k]);
        g->o[k][g->n[k]++] = (struct obs){vp_table_cell(t, r, col[0]), v, t->lines[r], t->path, file};
    }
    return 0;
}

/* by case id, then by where the row came from (so a duplicate follows its first occurrence) */
static int cmp_obs(const void *a, const void *b)
{
    const struct obs *x = a, *y = b;
    int c = strcmp(x->cas, y->cas);
    if (c) return c;
    if (x->file != y->file) return x->file < y->file ? -1 : 1;
    return x->line < y->line ? -1 : x->line > y->line;
}

static int has_nan(const double *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (isnan(x[i])) return 1;
    return 0;
}

/* all statistics of one group; 0 or an exit code (duplicate case) */
static int analyse(struct grp *g)
{
    double *x[2], *pa = vp_malloc((g->n[0] + 1) * sizeof *pa), *pb = vp_malloc((g->n[0] + 1) * sizeof *pb);
    size_t nx[2], np = 0;
    int nan_in = 0;
    for (int k = 0; k < 2; k++) {
        if (g->n[k]) qsort(g->o[k], g->n[k], sizeof *g->o[k], cmp_obs); /* o[k] is NULL when empty */
        for (size_t i = 1; i < g->n[k]; i++)
            if (!strcmp(g->o[k][i].cas, g->o[k][i - 1].cas)) {
                vp_error("%s:%zu: case '%s', class '%s', metric '%s' already given for model '%s' (%s:%zu)",
                         g->o[k][i].path, g->o[k][i].line, g->o[k][i].cas, g->cls, g->metric, model_name[k],
                         g->o[k][i - 1].path, g->o[k][i - 1].line);
                free(pa); free(pb);
                if (k) free(x[0]);
                return VP_ERR_DATA;
            }
        x[k] = vp_malloc((g->n[k] + 1) * sizeof *x[k]);
        nx[k] = 0;
        for (size_t i = 0; i < g->n[k]; i++) {
            nan_in |= isnan(g->o[k][i].v);
            if (nan_policy == 1 || !isnan(g->o[k][i].v)) x[k][nx[k]++] = g->o[k][i].v;
        }
    }
    for (size_t i = 0, j = 0; i < g->n[0] && j < g->n[1];) { /* pairs by case id */
        int c = strcmp(g->o[0][i].cas, g->o[1][j].cas);
        if (c < 0) { i++; continue; }
        if (c > 0) { j++; continue; }
        if (nan_policy == 1 || (!isnan(g->o[0][i].v) && !isnan(g->o[1][j].v))) {
            pa[np] = g->o[0][i].v; pb[np] = g->o[1][j].v; np++;
        }
        i++; j++;
    }
    for (int k = 0; k < 2; k++) vp_summarize(x[k], nx[k], level, &g->sum[k]);
    vp_ttest_student(x[0], nx[0], x[1], nx[1], &g->st);
    vp_ttest_welch(x[0], nx[0], x[1], nx[1], &g->we);
    vp_ttest_paired(pa, pb, np, &g->pa);
    double *d = vp_malloc((np + 1) * sizeof *d);
    for (size_t i = 0; i < np; i++) d[i] = pa[i] - pb[i];
    vp_summarize(d, np, level, &g->dsum);
    if (nan_in && nan_policy == 1 && (has_nan(d, np) || has_nan(x[0], nx[0]) || has_nan(x[1], nx[1])))
        g->wx = (struct vp_wilcoxon){NAN, NAN, NAN, np, VP_WILCOXON_NORMAL};
    else
        vp_wilcoxon(pa, pb, np, &g->wx);
    g->p[0] = g->st.p; g->p[1] = g->we.p; g->p[2] = g->pa.p; g->p[3] = g->wx.p;
    free(x[0]); free(x[1]); free(pa); free(pb); free(d);
    return 0;
}

static void row(FILE *f, const struct grp *g, const char *test, const char *stat, double v)
{
    char buf[32];
    fprintf(f, "%s\t%s\t%s\t%s\t%s\t%s\n", g->metric, g->cls, g->name, test, stat, vp_tidy_fmt(v, buf));
}

static void write_group(FILE *f, const struct grp *g)
{
    for (int k = 0; k < 2; k++) {
        const struct vp_summary *s = &g->sum[k];
        row(f, g, model_name[k], "n", (double)s->n);
        row(f, g, model_name[k], "mean", s->mean);
        row(f, g, model_name[k], "sd", s->sd);
        row(f, g, model_name[k], "ci_low", s->ci_lo);
        row(f, g, model_name[k], "ci_high", s->ci_hi);
    }
    const char *tn[3] = {"student", "welch", "paired"};
    const struct vp_ttest *tt[3] = {&g->st, &g->we, &g->pa};
    for (int i = 0; i < 3; i++) {
        row(f, g, tn[i], "t", tt[i]->t);
        row(f, g, tn[i], "df", tt[i]->df);
        if (i == 2) row(f, g, tn[i], "n", (double)g->dsum.n);
        row(f, g, tn[i], "p", g->p[i]);
        row(f, g, tn[i], "p_holm", g->holm[i]);
        row(f, g, tn[i], "p_bonferroni", g->bonf[i]);
        if (i < 2) row(f, g, tn[i], "diff", g->sum[0].mean - g->sum[1].mean);
    }
    row(f, g, "paired", "mean_diff", g->dsum.mean);
    row(f, g, "paired", "ci_low", g->dsum.ci_lo);
    row(f, g, "paired", "ci_high", g->dsum.ci_hi);
    row(f, g, "wilcoxon", "w", g->wx.stat);
    row(f, g, "wilcoxon", "z", g->wx.z);
    row(f, g, "wilcoxon", "n", (double)g->wx.n);
    row(f, g, "wilcoxon", "p", g->p[3]);
    row(f, g, "wilcoxon", "p_holm", g->holm[3]);
    row(f, g, "wilcoxon", "p_bonferroni", g->bonf[3]);
    row(f, g, "wilcoxon", "exact", isnan(g->wx.p) ? NAN : g->wx.method != VP_WILCOXON_NORMAL);
}

/* Holm and Bonferroni over the groups of each metric, per test */
static void adjust(void)
{
    double *p = vp_malloc((ngrps + 1) * sizeof *p), *h = vp_malloc((ngrps + 1) * sizeof *h),
           *b = vp_malloc((ngrps + 1) * sizeof *b);
    size_t *idx = vp_malloc((ngrps + 1) * sizeof *idx);
    char *done = vp_calloc(ngrps + 1, 1);
    for (size_t g = 0; g < ngrps; g++) {
        if (done[g]) continue;
        size_t m = 0;
        for (size_t j = g; j < ngrps; j++)
            if (!done[j] && !strcmp(grps[j].metric, grps[g].metric)) { idx[m++] = j; done[j] = 1; }
        for (int t = 0; t < 4; t++) {
            for (size_t i = 0; i < m; i++) p[i] = grps[idx[i]].p[t];
            vp_p_holm(p, m, h);
            vp_p_bonferroni(p, m, b);
            for (size_t i = 0; i < m; i++) { grps[idx[i]].holm[t] = h[i]; grps[idx[i]].bonf[t] = b[i]; }
        }
    }
    free(p); free(h); free(b); free(idx); free(done);
}

int main(int argc, char **argv)
{
    vp_cli_parse(&cmd, argc, argv);
    if (out_spec[0] == '@' || out_spec[0] == '>' || strstr(out_spec, "://"))
        vp_usage_error("option '--out': the table goes to - or a file, not a ZeroMQ endpoint");
    int nm = 0, *which = vp_calloc((size_t)model_args.n + 1, sizeof *which);
    for (int i = 0; i < model_args.n; i++) {
        const char *eq = strchr(model_args.v[i], '=');
        if (!eq || eq == model_args.v[i] || !eq[1]) vp_usage_error("option '--model': expected NAME=FILE, got '%s'", model_args.v[i]);
        size_t len = (size_t)(eq - model_args.v[i]);
        int k = 0;
        for (; k < nm; k++)
            if (strlen(model_name[k]) == len && !strncmp(model_name[k], model_args.v[i], len)) break;
        if (k == nm) {
            if (nm == 2) vp_usage_error("option '--model': give exactly two model names (a third: '%.*s')", (int)len, model_args.v[i]);
            model_name[nm++] = strndup(model_args.v[i], len);
        }
        which[i] = k;
    }
    if (nm != 2) vp_usage_error("give two models: --model A=FILE --model B=FILE");

    vp_table *tabs = vp_calloc((size_t)model_args.n, sizeof *tabs);
    int rc = 0;
    for (int i = 0; !rc && i < model_args.n; i++) {
        int r = vp_table_read(strchr(model_args.v[i], '=') + 1, &tabs[i]);
        rc = r ? -r : load(&tabs[i], which[i], i);
    }
    for (size_t g = 0; !rc && g < ngrps; g++) rc = analyse(&grps[g]);
    vp_out *out = NULL;
    if (!rc) {
        adjust();
        out = vp_out_open(out_spec, VP_OUT_ALLOW_TTY);
        if (!out) rc = VP_ERR_RUNTIME;
    }
    if (!rc) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        fputs("metric\tclass\tname\ttest\tstatistic\tvalue\n", f);
        for (size_t g = 0; g < ngrps; g++) write_group(f, &grps[g]);
        fclose(f);
        if (vp_out_write(out, buf, len) || vp_out_close(&out, 1)) rc = VP_ERR_RUNTIME;
        free(buf);
    }
    if (out) vp_out_close(&out, 0);
    for (size_t g = 0; g < ngrps; g++) { free(grps[g].o[0]); free(grps[g].o[1]); }
    free(grps); free(slots);
    for (int i = 0; i < model_args.n; i++) vp_table_free(&tabs[i]);
    free(tabs);
    free(which);
    free((void *)model_name[0]); free((void *)model_name[1]);
    free(model_args.v);
    return rc;
}
