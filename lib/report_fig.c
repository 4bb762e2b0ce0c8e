/* report_fig.c - see report.h: the heat maps and box plots of a report, as PNG */
#include "png.h"
#include "report.h"
#include "util.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const vp_rgb white = {255, 255, 255}, black = {0, 0, 0}, grid = {225, 225, 225},
                    undefined = {170, 170, 170}, ink = {60, 60, 60};

/* Tableau 10: one colour per model */
static const vp_rgb palette[VP_REPORT_MAX_MODELS] = {
    {78, 121, 167}, {242, 142, 43}, {89, 161, 79}, {225, 87, 89},
    {176, 122, 161}, {118, 183, 178}, {237, 201, 72}, {156, 117, 95},
};

void vp_report_model_colour(int k, uint8_t rgb[3])
{
    vp_rgb c = palette[k % VP_REPORT_MAX_MODELS];
    rgb[0] = c.r; rgb[1] = c.g; rgb[2] = c.b;
}

int vp_report_lower_better(const char *m)
{
    return !strncmp(m, "hd", 2) || !strncmp(m, "masd", 4) || !strncmp(m, "ahd", 3) || !strncmp(m, "assd", 4) ||
           !strcmp(m, "fp") || !strcmp(m, "fn");
}

/* diverging colour map, t = 0 worst (red) .. 1 best (blue), after ColorBrewer RdYlBu */
static vp_rgb colour_map(double t)
{
    static const vp_rgb stop[5] = {{165, 0, 38}, {244, 109, 67}, {254, 224, 144}, {116, 173, 209}, {49, 54, 149}};
    if (!(t > 0)) t = 0;
    if (t > 1) t = 1;
    double x = t * 4;
    int i = x >= 4 ? 3 : (int)x;
    double f = x - i;
    vp_rgb a = stop[i], b = stop[i + 1];
    return (vp_rgb){(uint8_t)lround(a.r + f * (b.r - a.r)), (uint8_t)lround(a.g + f * (b.g - a.g)),
                    (uint8_t)lround(a.b + f * (b.b - a.b))};
}

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

/* a name safe in a file name: [A-Za-z0-9._-] kept, anything else '_' */
static char *safe(const char *s)
{
    char *d = vp_strdup(s);
    for (char *p = d; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
              *p == '-' || *p == '_'))
            *p = '_';
    return d;
}

static void num(char *buf, size_t n, double v, int digits)
{
    snprintf(buf, n, "%.*g", digits < 1 ? 3 : digits, v);
}

/* text of at most `room` pixels wide (truncated) */
static void label(vp_image *im, int x, int y, const char *s, int room, vp_rgb c)
{
    char buf[64];
    int n = room / VP_FONT_ADVANCE;
    if (n <= 0) return;
    snprintf(buf, sizeof buf, "%.*s", n > 63 ? 63 : n, s);
    vp_image_text(im, x, y, buf, c);
}

static void finish(vp_figure *f, vp_image *im)
{
    f->w = im->w; f->h = im->h;
    if (vp_png_encode(im, &f->png, &f->len)) vp_die(VP_ERR_RUNTIME, "figure '%s': PNG encoding failed", f->file);
    vp_image_free(im);
}

/* finite range of the metric over every model and class, or [0, 1] */
static void data_range(const vp_report *r, size_t m, double *lo, double *hi)
{
    *lo = INFINITY; *hi = -INFINITY;
    for (int k = 0; k < r->nmodels; k++)
        for (size_t c = 0; c < r->nclass; c++)
            for (size_t i = 0; i < r->ncase; i++) {
                size_t at = vp_report_at(r, k, m, c, i);
                if (r->has[at] && isfinite(r->v[at])) { *lo = fmin(*lo, r->v[at]); *hi = fmax(*hi, r->v[at]); }
            }
    if (*lo > *hi) { *lo = 0; *hi = 1; }
}

static int class_has(const vp_report *r, size_t m, size_t c)
{
    for (int k = 0; k < r->nmodels; k++)
        for (size_t i = 0; i < r->ncase; i++)
            if (r->has[vp_report_at(r, k, m, c, i)]) return 1;
    return 0;
}

static void heatmap(const vp_report *r, const struct vp_figure_opts *o, int k, vp_figure *f)
{
    size_t m = (size_t)o->heat_metric, *rows = vp_malloc((r->nclass + 1) * sizeof *rows), nr = 0;
    for (size_t c = 0; c < r->nclass; c++)
        if (class_has(r, m, c)) rows[nr++] = c;
    double lo = o->heat_lo, hi = o->heat_hi;
    if (isnan(lo) || isnan(hi)) data_range(r, m, &lo, &hi);
    if (!(hi > lo)) { lo -= 0.5; hi += 0.5; }
    int lower = vp_report_lower_better(r->metric[m]), C = o->cell;
    int ph = (int)nr * C > 120 ? (int)nr * C : 120, x0 = 44, y0 = 8;
    vp_image im;
    vp_image_init(&im, 44 + (int)r->ncase * C + 70, 16 + ph, white);
    int every = C >= 9 ? 1 : (9 + C - 1) / C; /* class labels that fit */
    for (size_t j = 0; j < nr; j++) {
        if (j % (size_t)every == 0) label(&im, 4, y0 + (int)j * C + (C - VP_FONT_HEIGHT) / 2, r->cls[rows[j]], 36, ink);
        for (size_t i = 0; i < r->ncase; i++) {
            size_t at = vp_report_at(r, k, m, rows[j], i);
            if (!r->has[at]) continue; /* absent: background */
            double v = r->v[at];
            vp_rgb c = isfinite(v) ? colour_map(lower ? (hi - v) / (hi - lo) : (v - lo) / (hi - lo)) : undefined;
            int gap = C >= 6;
            vp_image_fill(&im, x0 + (int)i * C, y0 + (int)j * C, C - gap, C - gap, c);
        }
    }
    int bx = x0 + (int)r->ncase * C + 12; /* legend: hi at the top, lo at the bottom */
    for (int y = 0; y < ph; y++) {
        double v = hi - (hi - lo) * y / (ph > 1 ? ph - 1 : 1);
        vp_image_hline(&im, bx, bx + 11, y0 + y, colour_map(lower ? (hi - v) / (hi - lo) : (v - lo) / (hi - lo)));
    }
    vp_image_frame(&im, bx, y0, 12, ph, ink);
    char buf[32];
    num(buf, sizeof buf, hi, o->digits); label(&im, bx + 16, y0, buf, 46, ink);
    num(buf, sizeof buf, (lo + hi) / 2, o->digits); label(&im, bx + 16, y0 + ph / 2 - 3, buf, 46, ink);
    num(buf, sizeof buf, lo, o->digits); label(&im, bx + 16, y0 + ph - VP_FONT_HEIGHT, buf, 46, ink);
    char *sm = safe(r->metric[m]), *sk = safe(r->model[k]);
    f->file = dupf("heatmap-%s-%s.png", sm, sk);
    f->title = dupf("%s per class and case: %s", r->metric[m], r->model[k]);
    char los[32], his[32];
    num(los, sizeof los, lo, o->digits); num(his, sizeof his, hi, o->digits);
    f->note = dupf("rows: classes (ids at the left), columns: the %zu cases in the order listed above; colour "
                   "from red (%s) to blue (%s), %s is better; grey: undefined (NaN) or infinite; white: no value",
                   r->ncase, lower ? his : los, lower ? los : his, lower ? "lower" : "higher");
    free(sm); free(sk); free(rows);
    finish(f, &im);
}

/* the quantile q of sorted x[0..n) by linear interpolation (numpy's default) */
static double quantile(const double *x, size_t n, double q)
{
    double pos = q * (double)(n - 1);
    size_t i = (size_t)floor(pos);
    if (i + 1 >= n) return x[n - 1];
    return x[i] + (pos - (double)i) * (x[i + 1] - x[i]);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double nice_step(double span)
{
    double raw = span / 5, p = pow(10, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

/* one box: Tukey whiskers (furthest values within 1.5 IQR of the quartiles), outliers as dots */
static void box(vp_image *im, int x, double *v, size_t n, double lo, double hi, vp_rgb fill)
{
    if (!n) return;
    qsort(v, n, sizeof *v, cmp_double);
#define Y(val) (208 - (int)lround(((val) - lo) / (hi - lo) * 200))
    double q1 = quantile(v, n, 0.25), med = quantile(v, n, 0.5), q3 = quantile(v, n, 0.75), iqr = q3 - q1;
    double wlo = q3, whi = q1;
    for (size_t i = 0; i < n; i++) {
        if (v[i] >= q1 - 1.5 * iqr && v[i] < wlo) wlo = v[i];
        if (v[i] <= q3 + 1.5 * iqr && v[i] > whi) whi = v[i];
    }
    vp_image_vline(im, x + 5, Y(wlo), Y(whi), ink);
    vp_image_hline(im, x + 2, x + 7, Y(wlo), ink);
    vp_image_hline(im, x + 2, x + 7, Y(whi), ink);
    vp_image_fill(im, x, Y(q3), 10, Y(q1) - Y(q3) + 1, fill);
    vp_image_frame(im, x, Y(q3), 10, Y(q1) - Y(q3) + 1, ink);
    vp_image_fill(im, x, Y(med) - 1, 10, 2, black);
    for (size_t i = 0; i < n; i++)
        if (v[i] < wlo || v[i] > whi) vp_image_fill(im, x + 4, Y(v[i]) - 1, 3, 3, ink);
#undef Y
}

static void boxplot(const vp_report *r, const struct vp_figure_opts *o, size_t m, vp_figure *f)
{
    size_t *g = vp_malloc((r->nclass + 1) * sizeof *g), ng = 0, nc = r->ncase;
    for (size_t c = 0; c < r->nclass; c++)
        if (class_has(r, m, c)) g[ng++] = c;
    /* the values of every group and model: classes, then the per-case means */
    double *val = vp_malloc(((ng + 1) * (size_t)r->nmodels * nc + 1) * sizeof *val), *means = vp_malloc((nc + 1) * sizeof *means);
    size_t *cnt = vp_calloc((ng + 1) * (size_t)r->nmodels + 1, sizeof *cnt);
    double lo = INFINITY, hi = -INFINITY;
    for (size_t j = 0; j <= ng; j++)
        for (int k = 0; k < r->nmodels; k++) {
            size_t slot = j * (size_t)r->nmodels + (size_t)k;
            double *v = val + slot * nc;
            if (j < ng) {
                cnt[slot] = vp_report_values(r, k, m, g[j], v);
            } else {
                vp_report_case_means(r, k, m, o->summary_sel, means);
                for (size_t i = 0; i < nc; i++)
                    if (!isnan(means[i])) v[cnt[slot]++] = means[i];
            }
            size_t w = 0; /* finite values only */
            for (size_t i = 0; i < cnt[slot]; i++)
                if (isfinite(v[i])) { v[w++] = v[i]; lo = fmin(lo, v[i]); hi = fmax(hi, v[i]); }
            cnt[slot] = w;
        }
    if (lo > hi) { lo = 0; hi = 1; }
    double pad = (hi - lo) * 0.05;
    if (!(pad > 0)) pad = fmax(fabs(hi) * 0.05, 0.5);
    lo -= pad; hi += pad;
    int gw = r->nmodels * 12 + 10;
    vp_image im;
    vp_image_init(&im, 56 + (int)(ng + 1) * gw + 8, 228, white);
    double step = nice_step(hi - lo);
    char buf[32];
    for (double t = ceil(lo / step) * step; t <= hi; t += step) {
        int y = 208 - (int)lround((t - lo) / (hi - lo) * 200);
        vp_image_hline(&im, 54, im.w - 8, y, grid);
        num(buf, sizeof buf, fabs(t) < step * 1e-9 ? 0 : t, 4);
        int len = (int)strlen(buf) * VP_FONT_ADVANCE;
        label(&im, 50 - len > 0 ? 50 - len : 0, y - 3, buf, 50, ink);
    }
    vp_image_vline(&im, 54, 8, 208, ink);
    vp_image_hline(&im, 54, im.w - 8, 208, ink);
    for (size_t j = 0; j <= ng; j++) {
        int gx = 56 + (int)j * gw;
        for (int k = 0; k < r->nmodels; k++) {
            size_t slot = j * (size_t)r->nmodels + (size_t)k;
            box(&im, gx + 5 + k * 12, val + slot * nc, cnt[slot], lo, hi, palette[k]);
        }
        label(&im, gx + 2, 214, j < ng ? r->cls[g[j]] : "mean", gw - 2, ink);
    }
    char *sm = safe(r->metric[m]);
    f->file = dupf("box-%s.png", sm);
    f->title = dupf("%s per class, and the per-case mean over classes", r->metric[m]);
    f->note = dupf("one box per model and class (ids below the axis; 'mean': per case, the mean over its classes): "
                   "median, quartiles, whiskers to the furthest value within 1.5 IQR, dots beyond; %s is better; "
                   "non-finite values left out", vp_report_lower_better(r->metric[m]) ? "lower" : "higher");
    free(sm); free(g); free(val); free(means); free(cnt);
    finish(f, &im);
}

size_t vp_report_figures(const vp_report *r, const struct vp_figure_opts *o, vp_figure **out)
{
    size_t n = (o->heat_metric >= 0 ? (size_t)r->nmodels : 0) + o->nmetrics, i = 0;
    vp_figure *f = vp_calloc(n + 1, sizeof *f);
    if (o->heat_metric >= 0)
        for (int k = 0; k < r->nmodels; k++) heatmap(r, o, k, &f[i++]);
    for (size_t j = 0; j < o->nmetrics; j++) boxplot(r, o, o->metrics[j], &f[i++]);
    *out = f;
    return n;
}

void vp_report_figures_free(vp_figure *f, size_t n)
{
    for (size_t i = 0; i < n; i++) { free(f[i].file); free(f[i].title); free(f[i].note); free(f[i].png); }
    free(f);
}
