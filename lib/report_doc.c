/* report_doc.c - see report.h: the report's text and tables, as Markdown or HTML. One function
 * (content) decides what the report says; two emitters say it in each format. */
#include "report.h"
#include "tidy.h"
#include "util.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

struct emitter {
    FILE *f;
    int html;
    const struct vp_doc_opts *o;
};

static char *dupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *dupf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) vp_die(VP_ERR_RUNTIME, "out of memory");
    va_end(ap);
    return s;
}

/* ---- escaping and numbers */
static void put_html(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '&') fputs("&amp;", f);
        else if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '"') fputs("&quot;", f);
        else fputc(*s, f);
    }
}

static void put_cell_md(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '|') fputs("\\|", f);
        else if (*s == '\n') fputc(' ', f);
        else fputc(*s, f);
    }
}

static void put_text(const struct emitter *e, const char *s)
{
    if (e->html) put_html(e->f, s);
    else fputs(s, e->f);
}

static char *fmt_num(const struct vp_doc_opts *o, double v)
{
    char buf[32];
    if (o->exact) return vp_strdup(vp_tidy_fmt(v, buf));
    if (isnan(v)) return vp_strdup("n/a");
    if (isinf(v)) return vp_strdup(v > 0 ? "inf" : "-inf");
    return dupf("%.*f", o->digits, v);
}

static char *fmt_p(const struct vp_doc_opts *o, double p)
{
    char buf[32];
    if (o->exact) return vp_strdup(vp_tidy_fmt(p, buf));
    if (isnan(p)) return vp_strdup("n/a");
    if (p < pow(10, -o->pdigits)) return dupf("< %.*f", o->pdigits, pow(10, -o->pdigits));
    return dupf("%.*f", o->pdigits, p);
}

static char *fmt_mean_sd(const struct vp_doc_opts *o, const struct vp_summary *s)
{
    char *m = fmt_num(o, s->mean), *d = fmt_num(o, s->sd), *r = dupf("%s ± %s", m, d);
    free(m); free(d);
    return r;
}

static char *fmt_ci(const struct vp_doc_opts *o, const struct vp_summary *s)
{
    if (isnan(s->ci_lo) && isnan(s->ci_hi)) return vp_strdup("n/a");
    char *a = fmt_num(o, s->ci_lo), *b = fmt_num(o, s->ci_hi), *r = dupf("[%s, %s]", a, b);
    free(a); free(b);
    return r;
}

static const char *const test_label[] = {"Student", "Welch", "paired", "Wilcoxon"};
static const char *const adj_label[] = {"", " (Holm)", " (Bonferroni)"};

/* ---- the two formats */
static void heading(const struct emitter *e, int level, const char *s)
{
    if (e->html) { fprintf(e->f, "<h%d>", level); put_html(e->f, s); fprintf(e->f, "</h%d>\n", level); }
    else fprintf(e->f, "%.*s %s\n\n", level, "####", s);
}

static void para(const struct emitter *e, const char *s)
{
    if (e->html) { fputs("<p>", e->f); put_html(e->f, s); fputs("</p>\n", e->f); }
    else fprintf(e->f, "%s\n\n", s);
}

/* a table: ncol header cells, then nrow * ncol cells (freed here) */
static void table(const struct emitter *e, int ncol, char **head, size_t nrow, char **cell)
{
    FILE *f = e->f;
    if (e->html) {
        fputs("<table>\n<tr>", f);
        for (int j = 0; j < ncol; j++) { fputs("<th>", f); put_html(f, head[j]); fputs("</th>", f); }
        fputs("</tr>\n", f);
        for (size_t i = 0; i < nrow; i++) {
            fputs("<tr>", f);
            for (int j = 0; j < ncol; j++) { fputs("<td>", f); put_html(f, cell[i * (size_t)ncol + (size_t)j]); fputs("</td>", f); }
            fputs("</tr>\n", f);
        }
        fputs("</table>\n", f);
    } else {
        for (int j = 0; j < ncol; j++) { fputs("| ", f); put_cell_md(f, head[j]); fputc(' ', f); }
        fputs("|\n", f);
        for (int j = 0; j < ncol; j++) fputs("|---", f);
        fputs("|\n", f);
        for (size_t i = 0; i < nrow; i++) {
            for (int j = 0; j < ncol; j++) { fputs("| ", f); put_cell_md(f, cell[i * (size_t)ncol + (size_t)j]); fputc(' ', f); }
            fputs("|\n", f);
        }
        fputc('\n', f);
    }
    for (int j = 0; j < ncol; j++) free(head[j]);
    for (size_t i = 0; i < nrow * (size_t)ncol; i++) free(cell[i]);
}

static void base64(FILE *f, const uint8_t *p, size_t n)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        fputc(b64[v >> 18 & 63], f);
        fputc(b64[v >> 12 & 63], f);
        fputc(i + 1 < n ? b64[v >> 6 & 63] : '=', f);
        fputc(i + 2 < n ? b64[v & 63] : '=', f);
    }
}

static void figure(const struct emitter *e, const vp_figure *g)
{
    heading(e, 3, g->title);
    if (e->html) {
        fprintf(e->f, "<figure><img src=\"data:image/png;base64,");
        base64(e->f, g->png, g->len);
        fprintf(e->f, "\" width=\"%d\" height=\"%d\" alt=\"", g->w, g->h);
        put_html(e->f, g->file);
        fputs("\"><figcaption>", e->f);
        put_html(e->f, g->note);
        fputs("</figcaption></figure>\n", e->f);
    } else if (e->o->figdir && *e->o->figdir) {
        fprintf(e->f, "![%s](%s/%s)\n\n*%s*\n\n", g->title, e->o->figdir, g->file, g->note);
    }
}

static void legend(const struct emitter *e, const vp_report *r)
{
    if (e->html) fputs("<p>Model colours in the box plots:", e->f);
    else fputs("Model colours in the box plots:", e->f);
    for (int k = 0; k < r->nmodels; k++) {
        uint8_t c[3];
        vp_report_model_colour(k, c);
        if (e->html) {
            fprintf(e->f, " <span style=\"display:inline-block;width:1em;height:1em;background:#%02x%02x%02x\"></span> ",
                    c[0], c[1], c[2]);
            put_html(e->f, r->model[k]);
        } else {
            fprintf(e->f, "%s %s #%02x%02x%02x", k ? "," : "", r->model[k], c[0], c[1], c[2]);
        }
    }
    fputs(e->html ? "</p>\n" : "\n\n", e->f);
}

/* ---- what the report says */
static void list_join(char **out, const char *add, const char *sep)
{
    char *s = *out ? dupf("%s%s%s", *out, sep, add) : vp_strdup(add);
    free(*out);
    *out = s;
}

static int ntests(const struct vp_doc_opts *o)
{
    int n = 0;
    for (int t = 0; t < VP_REP_NTESTS; t++) n += (o->tests >> t) & 1;
    return n;
}

/* header cells of the model columns (+ p columns) after `first` leading cells */
static char **head_cells(const vp_report *r, const struct vp_doc_opts *o, int first, const char *const *lead,
                         int with_p, int adj, int *ncol)
{
    int n = first + 3 * r->nmodels + (with_p ? ntests(o) : 0), j = 0;
    char **h = vp_malloc((size_t)n * sizeof *h);
    for (; j < first; j++) h[j] = vp_strdup(lead[j]);
    int pct = (int)lround(o->level * 100);
    for (int k = 0; k < r->nmodels; k++) {
        h[j++] = dupf("%s n", r->model[k]);
        h[j++] = dupf("%s mean ± sd", r->model[k]);
        if (fabs(o->level * 100 - pct) < 1e-9) h[j++] = dupf("%s %d%% CI", r->model[k], pct);
        else h[j++] = dupf("%s %g%% CI", r->model[k], o->level * 100);
    }
    if (with_p)
        for (int t = 0; t < VP_REP_NTESTS; t++)
            if ((o->tests >> t) & 1) h[j++] = dupf("p %s%s", test_label[t], adj_label[adj]);
    *ncol = n;
    return h;
}

static void model_cells(const vp_report *r, const struct vp_doc_opts *o, const struct vp_report_row *row, char **c)
{
    for (int k = 0; k < r->nmodels; k++) {
        *c++ = dupf("%zu", row->s[k].n);
        *c++ = fmt_mean_sd(o, &row->s[k]);
        *c++ = fmt_ci(o, &row->s[k]);
    }
}

static void content(const struct emitter *e, const vp_report *r, const vp_figure *fig, size_t nfig)
{
    const struct vp_doc_opts *o = e->o;
    char *s = NULL, *t = NULL;
    heading(e, 1, o->title);
    for (int k = 0; k < r->nmodels; k++) {
        char *files = NULL;
        for (int i = 0; i < o->nfiles; i++)
            if (o->which[i] == k) list_join(&files, o->files[i], ", ");
        t = dupf("%s (%s)", r->model[k], files ? files : "");
        list_join(&s, t, "; ");
        free(t); free(files);
    }
    t = dupf("Models: %s.", s);
    para(e, t);
    free(s); free(t); s = NULL;
    for (size_t i = 0; i < r->ncase; i++) list_join(&s, r->cas[i], ", ");
    t = dupf("Cases (%zu, the order of the heat maps' columns): %s.", r->ncase, s ? s : "none");
    para(e, t);
    free(s); free(t); s = NULL;
    for (size_t c = 0; c < r->nclass; c++) {
        t = *r->cname[c] ? dupf("%s %s", r->cls[c], r->cname[c]) : vp_strdup(r->cls[c]);
        list_join(&s, t, ", ");
        free(t);
    }
    t = dupf("Classes (%zu): %s.", r->nclass, s ? s : "none");
    para(e, t);
    free(s); free(t); s = NULL;
    t = dupf("Values: mean ± sd (ddof 1) over cases and the %g%% t confidence interval of the mean; n counts the "
             "values; undefined values (NaN) are left out. p-values are two-sided.%s",
             o->level * 100, o->exact ? "" : " Numbers are rounded for display.");
    para(e, t);
    free(t);

    /* summary: per case the mean over the summary classes */
    heading(e, 2, "Summary");
    for (size_t c = 0; c < r->nclass; c++)
        if (o->summary_sel[c]) list_join(&s, r->cls[c], ", ");
    t = dupf("Per case, the mean of the metric over its classes (%s); then over cases. p-values of those per-case "
             "means, computed here (Student: pooled variance, as the study; paired t and Wilcoxon: the cases both "
             "models hold), not adjusted.", s ? s : "none");
    para(e, t);
    free(s); free(t); s = NULL;
    static const char *const lead_sum[] = {"metric"}, *const lead_cls[] = {"class", "name"};
    int with_p = r->nmodels >= 2, ncol;
    char **head = head_cells(r, o, 1, lead_sum, with_p, VP_REP_ADJ_NONE, &ncol);
    char **cell = vp_malloc((o->nmetrics * (size_t)ncol + 1) * sizeof *cell);
    double *x[VP_REPORT_MAX_MODELS];
    for (int k = 0; k < r->nmodels; k++) x[k] = vp_malloc((r->ncase + 1) * sizeof *x[k]);
    struct vp_report_row row;
    for (size_t i = 0; i < o->nmetrics; i++) {
        char **c = cell + i * (size_t)ncol;
        for (int k = 0; k < r->nmodels; k++) vp_report_case_means(r, k, o->metrics[i], o->summary_sel, x[k]);
        vp_report_row_stats(r, x, o->level, &row);
        *c++ = vp_strdup(r->metric[o->metrics[i]]);
        model_cells(r, o, &row, c);
        c += 3 * r->nmodels;
        for (int tt = 0; with_p && tt < VP_REP_NTESTS; tt++)
            if ((o->tests >> tt) & 1) *c++ = fmt_p(o, row.p[tt]);
    }
    table(e, ncol, head, o->nmetrics, cell);
    free(head); free(cell);

    /* per metric: one row per class */
    with_p = r->p != NULL;
    for (size_t i = 0; i < o->nmetrics; i++) {
        size_t m = o->metrics[i], nrow = 0;
        t = dupf("%s%s", r->metric[m], vp_report_lower_better(r->metric[m]) ? " (lower is better)" : "");
        heading(e, 2, t);
        free(t);
        if (with_p) {
            t = dupf("p-values from the ttest table %s%s.", o->ttest_path,
                     o->adjust == VP_REP_ADJ_HOLM ? ", Holm-adjusted across this metric's classes"
                     : o->adjust == VP_REP_ADJ_BONFERRONI ? ", Bonferroni-adjusted across this metric's classes" : "");
            para(e, t);
            free(t);
        }
        head = head_cells(r, o, 2, lead_cls, with_p, o->adjust, &ncol);
        cell = vp_malloc((r->nclass * (size_t)ncol + 1) * sizeof *cell);
        for (size_t c = 0; c < r->nclass; c++) {
            int any = 0;
            for (int k = 0; k < r->nmodels; k++)
                for (size_t j = 0; j < r->ncase; j++) {
                    size_t at = vp_report_at(r, k, m, c, j);
                    any |= r->has[at];
                    x[k][j] = r->has[at] ? r->v[at] : NAN;
                }
            if (!any) continue;
            vp_report_row_stats(r, x, o->level, &row);
            char **cc = cell + nrow++ * (size_t)ncol;
            *cc++ = vp_strdup(r->cls[c]);
            *cc++ = vp_strdup(r->cname[c]);
            model_cells(r, o, &row, cc);
            cc += 3 * r->nmodels;
            for (int tt = 0; with_p && tt < VP_REP_NTESTS; tt++)
                if ((o->tests >> tt) & 1)
                    *cc++ = fmt_p(o, r->p[((m * r->nclass + c) * VP_REP_NTESTS + (size_t)tt) * VP_REP_NADJ + (size_t)o->adjust]);
        }
        table(e, ncol, head, nrow, cell);
        free(head); free(cell);
    }
    for (int k = 0; k < r->nmodels; k++) free(x[k]);

    heading(e, 2, "Figures");
    if (!nfig && o->figdir && *o->figdir) para(e, "No figures: the tables hold no values to draw.");
    else if (!nfig) para(e, "No figures were written (give -o FILE, --html FILE or --figures DIR).");
    else if (!e->html && !(o->figdir && *o->figdir)) para(e, "The figures are in the HTML report.");
    else legend(e, r);
    for (size_t i = 0; i < nfig; i++) figure(e, &fig[i]);
}

void vp_report_markdown(FILE *f, const vp_report *r, const struct vp_doc_opts *o, const vp_figure *fig, size_t nfig)
{
    struct emitter e = {f, 0, o};
    content(&e, r, fig, nfig);
}

void vp_report_html(FILE *f, const vp_report *r, const struct vp_doc_opts *o, const vp_figure *fig, size_t nfig)
{
    struct emitter e = {f, 1, o};
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>", f);
    put_text(&e, o->title);
    fputs("</title>\n<style>\n"
          "body { font-family: sans-serif; max-width: 80em; margin: 2em auto; padding: 0 1em; color: #222; }\n"
          "table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }\n"
          "th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }\n"
          "th { background: #f0f0f0; } td:first-child, th:first-child { text-align: left; }\n"
          "figure { margin: 1em 0; } figcaption { font-size: 0.85em; color: #555; max-width: 60em; }\n"
          "img { image-rendering: pixelated; }\n"
          "</style>\n</head>\n<body>\n", f);
    content(&e, r, fig, nfig);
    fputs("</body>\n</html>\n", f);
}
