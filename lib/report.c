/* report.c - see report.h: loading tidy tables and ttest tables, summaries of table rows */
#include "report.h"
#include "tidy.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const vp_report_test_names[] = {"student", "welch", "paired", "wilcoxon", NULL};
const char *const vp_report_adj_stats[] = {"p", "p_holm", "p_bonferroni", NULL};

/* strings interned in order of first appearance, with an open-addressing index */
struct strset {
    char **s;
    size_t n, cap;
    size_t *slot, nslot;
};

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static long strset_find(const struct strset *t, const char *s)
{
    if (!t->nslot) return -1;
    for (size_t i = hash(s) & (t->nslot - 1); t->slot[i] != (size_t)-1; i = (i + 1) & (t->nslot - 1))
        if (!strcmp(t->s[t->slot[i]], s)) return (long)t->slot[i];
    return -1;
}

static void strset_index(struct strset *t, size_t k)
{
    size_t i = hash(t->s[k]) & (t->nslot - 1);
    while (t->slot[i] != (size_t)-1) i = (i + 1) & (t->nslot - 1);
    t->slot[i] = k;
}

/* index of s, added (copied) when new; *added tells which */
static size_t strset_add(struct strset *t, const char *s, int *added)
{
    long k = strset_find(t, s);
    *added = k < 0;
    if (k >= 0) return (size_t)k;
    if (2 * (t->n + 1) > t->nslot) {
        free(t->slot);
        t->nslot = t->nslot ? 2 * t->nslot : 64;
        t->slot = vp_malloc(t->nslot * sizeof *t->slot);
        memset(t->slot, 0xff, t->nslot * sizeof *t->slot);
        for (size_t i = 0; i < t->n; i++) strset_index(t, i);
    }
    if (t->n == t->cap) t->s = vp_realloc(t->s, (t->cap = t->cap ? 2 * t->cap : 64) * sizeof *t->s);
    t->s[t->n] = vp_strdup(s);
    strset_index(t, t->n);
    return t->n++;
}

static void strset_free(struct strset *t)
{
    free(t->slot);
    free(t->s); /* the strings moved into the report */
}

static int need_cols(const vp_table *t, const char *const *need, int n, int *col, const char *what)
{
    for (int i = 0; i < n; i++)
        if ((col[i] = vp_table_col(t, need[i])) < 0)
            return vp_error("'%s': no column '%s' (%s)", t->path, need[i], what), VP_ERR_DATA;
    return 0;
}

/* an integer class id: the whole string a decimal integer */
static int class_id(const char *s, long long *id)
{
    if (!*s) return 0;
    char *end;
    errno = 0;
    *id = strtoll(s, &end, 10);
    return !*end && !errno;
}

static const struct strset *sort_set; /* for the qsort comparators */
static int cmp_class(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    long long ix, iy;
    int nx = class_id(sort_set->s[x], &ix), ny = class_id(sort_set->s[y], &iy);
    if (nx && ny && ix != iy) return ix < iy ? -1 : 1;
    if (nx != ny) return nx ? -1 : 1;
    return x < y ? -1 : x > y; /* groups, and "01" beside "1": order of appearance */
}
static int cmp_case(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    int c = strverscmp(sort_set->s[x], sort_set->s[y]);
    return c ? c : strcmp(sort_set->s[x], sort_set->s[y]);
}

/* sort the set with cmp: the strings in the new order into *out, old index -> new into perm */
static size_t *sorted(const struct strset *t, int (*cmp)(const void *, const void *), char ***out)
{
    size_t *order = vp_malloc((t->n + 1) * sizeof *order), *perm = vp_malloc((t->n + 1) * sizeof *perm);
    for (size_t i = 0; i < t->n; i++) order[i] = i;
    sort_set = t;
    if (cmp) qsort(order, t->n, sizeof *order, cmp);
    *out = vp_malloc((t->n + 1) * sizeof **out);
    for (size_t i = 0; i < t->n; i++) { (*out)[i] = t->s[order[i]]; perm[order[i]] = i; }
    free(order);
    return perm;
}

int vp_report_load(vp_report *r, int nmodels, char *const *names, int nfiles, char *const *paths,
                   const int *which)
{
    static const char *const need[] = {"case", "class", "metric", "value"};
    memset(r, 0, sizeof *r);
    r->nmodels = nmodels;
    for (int k = 0; k < nmodels; k++) r->model[k] = vp_strdup(names[k]);
    vp_table *tabs = vp_calloc((size_t)nfiles + 1, sizeof *tabs);
    int (*cols)[5] = vp_calloc((size_t)nfiles + 1, sizeof *cols);
    struct strset metrics = {0}, classes = {0}, cases = {0};
    char **cname = NULL;
    size_t *pm = NULL, *pc = NULL, *pk = NULL;
    int rc = 0, added;
    for (int f = 0; !rc && f < nfiles; f++) {
        int e = vp_table_read(paths[f], &tabs[f]);
        if (e) { rc = -e; break; }
        vp_table *t = &tabs[f];
        if ((rc = need_cols(t, need, 4, cols[f], "a tidy table needs case, class, metric, value"))) break;
        cols[f][4] = vp_table_col(t, "name");
        for (size_t i = 0; i < t->nrows; i++) {
            double v;
            const char *vs = vp_table_cell(t, i, cols[f][3]);
            if (vp_tidy_parse_double(vs, &v)) {
                vp_error("%s:%zu: value '%s' is not a number", t->path, t->lines[i], vs);
                rc = VP_ERR_DATA;
                break;
            }
            strset_add(&metrics, vp_table_cell(t, i, cols[f][2]), &added);
            strset_add(&cases, vp_table_cell(t, i, cols[f][0]), &added);
            size_t c = strset_add(&classes, vp_table_cell(t, i, cols[f][1]), &added);
            if (added) {
                cname = vp_realloc(cname, classes.cap * sizeof *cname);
                cname[c] = NULL;
            }
            const char *nm = cols[f][4] >= 0 ? vp_table_cell(t, i, cols[f][4]) : "";
            if (!cname[c] && *nm) cname[c] = vp_strdup(nm);
        }
    }
    if (!rc) {
        pm = sorted(&metrics, NULL, &r->metric);
        pc = sorted(&classes, cmp_class, &r->cls);
        pk = sorted(&cases, cmp_case, &r->cas);
        r->nmetric = metrics.n; r->nclass = classes.n; r->ncase = cases.n;
        r->cname = vp_malloc((r->nclass + 1) * sizeof *r->cname);
        for (size_t i = 0; i < classes.n; i++) r->cname[pc[i]] = cname[i] ? cname[i] : vp_strdup("");
        size_t total = (size_t)nmodels * r->nmetric * r->nclass * r->ncase;
        r->v = vp_malloc((total + 1) * sizeof *r->v);
        r->has = vp_calloc(total + 1, 1);
        for (size_t i = 0; i < total; i++) r->v[i] = NAN;
        for (int f = 0; !rc && f < nfiles; f++) {
            const vp_table *t = &tabs[f];
            for (size_t i = 0; i < t->nrows; i++) {
                const char *cs = vp_table_cell(t, i, cols[f][0]), *cl = vp_table_cell(t, i, cols[f][1]),
                           *mt = vp_table_cell(t, i, cols[f][2]);
                size_t at = vp_report_at(r, which[f], pm[strset_find(&metrics, mt)], pc[strset_find(&classes, cl)],
                                         pk[strset_find(&cases, cs)]);
                if (r->has[at]) {
                    vp_error("%s:%zu: case '%s', class '%s', metric '%s' already given for model '%s'", t->path,
                             t->lines[i], cs, cl, mt, r->model[which[f]]);
                    rc = VP_ERR_DATA;
                    break;
                }
                r->has[at] = 1;
                vp_tidy_parse_double(vp_table_cell(t, i, cols[f][3]), &r->v[at]);
            }
        }
    } else { /* the interned strings were not moved into the report */
        for (size_t i = 0; i < metrics.n; i++) free(metrics.s[i]);
        for (size_t i = 0; i < classes.n; i++) { free(classes.s[i]); free(cname[i]); }
        for (size_t i = 0; i < cases.n; i++) free(cases.s[i]);
    }
    strset_free(&metrics); strset_free(&classes); strset_free(&cases);
    free(cname); free(pm); free(pc); free(pk);
    for (int f = 0; f < nfiles; f++) vp_table_free(&tabs[f]);
    free(tabs); free(cols);
    return rc;
}

long vp_report_metric(const vp_report *r, const char *name)
{
    for (size_t i = 0; i < r->nmetric; i++)
        if (!strcmp(r->metric[i], name)) return (long)i;
    return -1;
}

long vp_report_class(const vp_report *r, const char *name)
{
    for (size_t i = 0; i < r->nclass; i++)
        if (!strcmp(r->cls[i], name)) return (long)i;
    return -1;
}

static int index_of(const char *const *list, const char *s)
{
    for (int i = 0; list[i]; i++)
        if (!strcmp(list[i], s)) return i;
    return -1;
}

int vp_report_load_ttest(vp_report *r, const char *path)
{
    static const char *const need[] = {"metric", "class", "test", "statistic", "value"};
    vp_table t;
    int col[5], rc = vp_table_read(path, &t);
    if (rc) return -rc;
    if ((rc = need_cols(&t, need, 5, col, "a ttest table needs metric, class, test, statistic, value"))) {
        vp_table_free(&t);
        return rc;
    }
    size_t np = r->nmetric * r->nclass * VP_REP_NTESTS * VP_REP_NADJ;
    r->p = vp_malloc((np + 1) * sizeof *r->p);
    for (size_t i = 0; i < np; i++) r->p[i] = NAN;
    const char *seen[2] = {NULL, NULL}; /* the models the table names (tests with a 'mean') */
    size_t unknown = 0, stale = 0;
    for (size_t i = 0; !rc && i < t.nrows; i++) {
        const char *mt = vp_table_cell(&t, i, col[0]), *cl = vp_table_cell(&t, i, col[1]),
                   *test = vp_table_cell(&t, i, col[2]), *stat = vp_table_cell(&t, i, col[3]),
                   *vs = vp_table_cell(&t, i, col[4]);
        double v;
        if (vp_tidy_parse_double(vs, &v)) {
            vp_error("%s:%zu: value '%s' is not a number", t.path, t.lines[i], vs);
            rc = VP_ERR_DATA;
            break;
        }
        int ti = index_of(vp_report_test_names, test), ai = index_of(vp_report_adj_stats, stat);
        int model = -1;
        if (ti < 0 && !strcmp(stat, "mean")) { /* a model's summary row */
            int j = 0;
            while (j < 2 && seen[j] && strcmp(seen[j], test)) j++;
            if (j == 2) {
                vp_error("%s:%zu: the table compares more than two models ('%s', '%s', '%s')", t.path, t.lines[i],
                         seen[0], seen[1], test);
                rc = VP_ERR_DATA;
                break;
            }
            seen[j] = test;
            for (int k = 0; k < r->nmodels; k++)
                if (!strcmp(r->model[k], test)) model = k;
            if (model < 0) {
                vp_error("%s:%zu: the ttest table compares model '%s', which no --model names", t.path, t.lines[i], test);
                rc = VP_ERR_DATA;
                break;
            }
        }
        if ((ti < 0 || ai < 0) && model < 0) continue;
        long m = vp_report_metric(r, mt), c = vp_report_class(r, cl);
        if (m < 0 || c < 0) { unknown++; continue; }
        if (model >= 0) { /* the same values give the same mean: else the table is stale */
            double *vals = vp_malloc((r->ncase + 1) * sizeof *vals);
            struct vp_summary s;
            vp_summarize(vals, vp_report_values(r, model, (size_t)m, (size_t)c, vals), 0.95, &s);
            free(vals);
            if (isfinite(v) && isfinite(s.mean) && fabs(v - s.mean) > 1e-9 * fmax(1, fabs(v))) stale++;
            continue;
        }
        r->p[(((size_t)m * r->nclass + (size_t)c) * VP_REP_NTESTS + (size_t)ti) * VP_REP_NADJ + (size_t)ai] = v;
    }
    if (!rc && seen[0] && (!seen[1] || r->nmodels < 2 ||
                           !((!strcmp(seen[0], r->model[0]) && !strcmp(seen[1], r->model[1])) ||
                             (!strcmp(seen[0], r->model[1]) && !strcmp(seen[1], r->model[0]))))) {
        vp_error("'%s': the ttest table compares '%s' and '%s', the report '%s' and '%s'", t.path, seen[0],
                 seen[1] ? seen[1] : "", r->model[0], r->nmodels > 1 ? r->model[1] : "");
        rc = VP_ERR_DATA;
    }
    if (!rc && unknown) vp_warn("'%s': %zu row(s) of metrics or classes the metric tables do not hold: ignored", t.path, unknown);
    if (!rc && stale) vp_warn("'%s': %zu mean(s) differ from the metric tables' (a ttest table of other data?)", t.path, stale);
    vp_table_free(&t);
    return rc;
}

size_t vp_report_values(const vp_report *r, int k, size_t metric, size_t cls, double *out)
{
    size_t n = 0, at = vp_report_at(r, k, metric, cls, 0);
    for (size_t i = 0; i < r->ncase; i++)
        if (r->has[at + i] && !isnan(r->v[at + i])) out[n++] = r->v[at + i];
    return n;
}

void vp_report_case_means(const vp_report *r, int k, size_t metric, const uint8_t *sel, double *out)
{
    for (size_t i = 0; i < r->ncase; i++) {
        double s = 0;
        size_t n = 0;
        for (size_t c = 0; c < r->nclass; c++) {
            size_t at = vp_report_at(r, k, metric, c, i);
            if (sel[c] && r->has[at] && !isnan(r->v[at])) { s += r->v[at]; n++; }
        }
        out[i] = n ? s / (double)n : NAN;
    }
}

void vp_report_row_stats(const vp_report *r, double *const *x, double level, struct vp_report_row *row)
{
    size_t n = r->ncase;
    double *a = vp_malloc((n + 1) * sizeof *a), *b = vp_malloc((n + 1) * sizeof *b);
    double *pa = vp_malloc((n + 1) * sizeof *pa), *pb = vp_malloc((n + 1) * sizeof *pb);
    size_t na = 0, nb = 0, np = 0;
    for (int k = 0; k < r->nmodels; k++) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (!isnan(x[k][i])) a[m++] = x[k][i];
        vp_summarize(a, m, level, &row->s[k]);
    }
    for (int t = 0; t < VP_REP_NTESTS; t++) row->p[t] = NAN;
    if (r->nmodels >= 2) {
        for (size_t i = 0; i < n; i++) {
            if (!isnan(x[0][i])) a[na++] = x[0][i];
            if (!isnan(x[1][i])) b[nb++] = x[1][i];
            if (!isnan(x[0][i]) && !isnan(x[1][i])) { pa[np] = x[0][i]; pb[np] = x[1][i]; np++; }
        }
        struct vp_ttest t;
        struct vp_wilcoxon w;
        vp_ttest_student(a, na, b, nb, &t); row->p[VP_REP_STUDENT] = t.p;
        vp_ttest_welch(a, na, b, nb, &t);   row->p[VP_REP_WELCH] = t.p;
        vp_ttest_paired(pa, pb, np, &t);    row->p[VP_REP_PAIRED] = t.p;
        vp_wilcoxon(pa, pb, np, &w);        row->p[VP_REP_WILCOXON] = w.p;
    }
    free(a); free(b); free(pa); free(pb);
}

void vp_report_free(vp_report *r)
{
    for (int k = 0; k < r->nmodels; k++) free(r->model[k]);
    for (size_t i = 0; i < r->nmetric; i++) free(r->metric[i]);
    for (size_t i = 0; i < r->nclass; i++) { free(r->cls[i]); free(r->cname[i]); }
    for (size_t i = 0; i < r->ncase; i++) free(r->cas[i]);
    free(r->metric); free(r->cls); free(r->cname); free(r->cas);
    free(r->v); free(r->has); free(r->p);
    memset(r, 0, sizeof *r);
}
