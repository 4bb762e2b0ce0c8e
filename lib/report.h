/* report.h - the study's tables and figures from tidy metric tables: the values of every model by
 * metric, class and case (loaded from metric-dice / hausdorff TSVs), optional p-values from a
 * ttest table, summaries (mean, sd, t confidence interval), and the figures (a heat map of one
 * metric per model, box plots per metric) rendered as PNG; report_doc.c writes Markdown and HTML.
 *
 * Ownership: a vp_report owns every string and array it holds (vp_report_free releases them);
 * vp_report_figures() returns figures the caller frees with vp_report_figures_free().
 */
#ifndef VP_REPORT_H
#define VP_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "stats.h"

#define VP_REPORT_MAX_MODELS 8
enum { VP_REP_STUDENT, VP_REP_WELCH, VP_REP_PAIRED, VP_REP_WILCOXON, VP_REP_NTESTS };
extern const char *const vp_report_test_names[]; /* "student", "welch", "paired", "wilcoxon" */
enum { VP_REP_ADJ_NONE, VP_REP_ADJ_HOLM, VP_REP_ADJ_BONFERRONI, VP_REP_NADJ };
extern const char *const vp_report_adj_stats[];  /* "p", "p_holm", "p_bonferroni" */

typedef struct vp_report {
    int nmodels;
    char *model[VP_REPORT_MAX_MODELS];
    size_t nmetric, nclass, ncase;
    char **metric;  /* order of first appearance */
    char **cls;     /* integer ids ascending, then other classes (groups) in order of appearance */
    char **cname;   /* class names ("" when no table names the class) */
    char **cas;     /* case ids in version order (strverscmp: c2 before c10) */
    double *v;      /* [model][metric][class][case]; NaN where absent or undefined */
    uint8_t *has;   /* same shape; 1 where a row gave the value */
    double *p;      /* from a ttest table: [metric][class][test][adjustment], NaN where absent;
                     * NULL when no ttest table was loaded */
} vp_report;

static inline size_t vp_report_at(const vp_report *r, int model, size_t metric, size_t cls, size_t cas)
{
    return (((size_t)model * r->nmetric + metric) * r->nclass + cls) * r->ncase + cas;
}

/* Load the tidy tables: paths[i] belongs to model which[i] (0 .. nmodels-1, named names[k]). Each
 * table needs the columns case, class, metric and value (name optional; any order; others
 * ignored). Errors (printed, naming file and line): a missing column, a value that is not a number,
 * a (case, class, metric) given twice for one model. Returns 0 or an exit code. */
int vp_report_load(vp_report *r, int nmodels, char *const *names, int nfiles, char *const *paths,
                   const int *which);

/* Load a ttest table (columns metric, class, test, statistic, value) for the p-values of the two
 * models of r. Exit code VP_ERR_DATA when a column is missing, a value is not a number, or the
 * table compares other models than r's; a table mean that differs from r's own (a stale table)
 * and groups r does not hold are warned about. Returns 0 or an exit code. */
int vp_report_load_ttest(vp_report *r, const char *path);

/* Index of a metric or class by name, or -1. */
long vp_report_metric(const vp_report *r, const char *name);
long vp_report_class(const vp_report *r, const char *name);

/* Values of model k for (metric, class) that are present and not NaN, in case order: the count,
 * written to out (room for ncase). */
size_t vp_report_values(const vp_report *r, int k, size_t metric, size_t cls, double *out);

/* Per case, the mean over the classes with sel[class] != 0 of model k's present, non-NaN values
 * of the metric (NaN for a case with none): out has room for ncase. */
void vp_report_case_means(const vp_report *r, int k, size_t metric, const uint8_t *sel, double *out);

/* Summary statistics of one row of a table: per model n, mean, sd, CI; p-values of the tests
 * between models 0 and 1 (NaN when fewer than two models or too few values). */
struct vp_report_row {
    struct vp_summary s[VP_REPORT_MAX_MODELS];
    double p[VP_REP_NTESTS];
};
/* Row of x[k][case] (NaN = left out) for every model: summaries at `level`, and with two models or
 * more, Student/Welch on the values, paired t and Wilcoxon on the cases both models hold. */
void vp_report_row_stats(const vp_report *r, double *const *x, double level, struct vp_report_row *row);

/* Figures ------------------------------------------------------------------------------------ */
typedef struct vp_figure {
    char *file;     /* file name (no directory) */
    char *title;    /* caption */
    char *note;     /* what the axes and colours mean */
    int w, h;
    uint8_t *png;
    size_t len;
} vp_figure;

struct vp_figure_opts {
    long heat_metric;     /* metric index of the heat maps, -1 for none */
    double heat_lo, heat_hi; /* colour range; NaN = the data's range over all models */
    int cell;             /* heat map cell size in pixels */
    const size_t *metrics; size_t nmetrics; /* box plots: one per metric listed */
    const uint8_t *summary_sel; /* classes averaged into the box plots' "mean" group */
    int digits;           /* of the legend's numbers */
};

/* Lower values are better for this metric (distances, fp, fn): colours and captions say so. */
int vp_report_lower_better(const char *metric);

/* Heat map of o->heat_metric per model, then one box plot per listed metric. Layout (pixels;
 * C = o->cell, F = 6-pixel font advance):
 *   heat map: width 44 + ncase*C + 70, height 16 + max(nclass*C, 120)
 *   box plot: width 56 + ngroups*(nmodels*12 + 10) + 8, height 228, where ngroups is the number
 *             of classes holding the metric, plus 1 for the per-case mean group
 * Returns the number of figures in *out (caller frees with vp_report_figures_free). */
size_t vp_report_figures(const vp_report *r, const struct vp_figure_opts *o, vp_figure **out);
void vp_report_figures_free(vp_figure *f, size_t n);

/* Model colour k (the box plots' fill), as used by the HTML legend. */
void vp_report_model_colour(int k, uint8_t rgb[3]);

/* Documents ---------------------------------------------------------------------------------- */
struct vp_doc_opts {
    const char *title;
    int digits;           /* decimals of means, sds and intervals */
    int pdigits;          /* decimals of p-values; smaller ones print as "< 0.00001" */
    int exact;            /* every number as the shortest text that reads back to the same double */
    double level;         /* of the confidence intervals */
    unsigned tests;       /* bit t (VP_REP_STUDENT ...) set: a p-value column for test t */
    int adjust;           /* the per-class p-values shown: VP_REP_ADJ_NONE, _HOLM or _BONFERRONI */
    const size_t *metrics; size_t nmetrics; /* the metrics, in order */
    const uint8_t *summary_sel;             /* classes averaged per case in the summary */
    int nfiles; char *const *files; const int *which; /* the inputs, listed in the text */
    const char *ttest_path;                 /* NULL: no per-class p-values */
    const char *figdir;   /* Markdown: the figures' directory as linked ("" for none written) */
};

/* The report as Markdown, or as one self-contained HTML page (figures embedded as data: URIs):
 * the same text and the same numbers in both. Sections: the inputs; "Summary" (one row per metric:
 * per model n, mean ± sd and CI of the per-case means over the summary classes, then p-values of
 * those per-case means); one section per metric (one row per class: per model n, mean ± sd, CI;
 * p-values from the ttest table); "Figures". Write errors show in ferror(f). */
void vp_report_markdown(FILE *f, const vp_report *r, const struct vp_doc_opts *o, const vp_figure *fig, size_t nfig);
void vp_report_html(FILE *f, const vp_report *r, const struct vp_doc_opts *o, const vp_figure *fig, size_t nfig);

void vp_report_free(vp_report *r);

#endif
