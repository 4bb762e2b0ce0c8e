/* tidy.c - see tidy.h */
#include "tidy.h"
#include "endpoint.h"
#include "frame.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *vp_tidy_fmt(double v, char buf[32])
{
    if (isnan(v)) { strcpy(buf, "nan"); return buf; }
    if (isinf(v)) { strcpy(buf, v > 0 ? "inf" : "-inf"); return buf; }
    /* integers that a double holds exactly print without an exponent or a fraction */
    if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        snprintf(buf, 32, "%.0f", v);
        if (!strcmp(buf, "-0")) strcpy(buf, "0");
        return buf;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, 32, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    return buf;
}

void vp_tidy_field(char *dst, size_t n, const char *s)
{
    if (!n) return;
    size_t i = 0;
    for (; s[i] && i + 1 < n; i++) dst[i] = (s[i] == '\t' || s[i] == '\n' || s[i] == '\r') ? ' ' : s[i];
    dst[i] = 0;
}

void vp_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p == '\n') fputs("\\n", f);
        else if (*p == '\t') fputs("\\t", f);
        else if (*p == '\r') fputs("\\r", f);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

int vp_tidy_parse_double(const char *s, double *v)
{
    if (!*s || *s == ' ' || *s == '\t') return -1;
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (*end) return -1;
    if (errno == ERANGE && fabs(d) > 1) return -1; /* overflow; underflow to tiny values is fine */
    *v = d;
    return 0;
}

/* the whole of fd into a 0-terminated buffer */
static char *read_fd(int fd, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *b = vp_malloc(cap + 1);
    for (;;) {
        if (n == cap) b = vp_realloc(b, (cap *= 2) + 1);
        ssize_t r = read(fd, b + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) { free(b); return NULL; }
        if (!r) break;
        n += (size_t)r;
    }
    b[n] = 0;
    *len = n;
    return b;
}

void vp_table_free(vp_table *t)
{
    free(t->path);
    free(t->cols);
    free(t->cells);
    free(t->lines);
    free(t->buf);
    memset(t, 0, sizeof *t);
}

/* split line (0-terminated, no newline) at tabs into out[0..max); returns the field count */
static int split_tabs(char *line, char **out, int max)
{
    int n = 0;
    for (char *p = line;;) {
        char *tab = strchr(p, '\t');
        if (n < max) out[n] = p;
        n++;
        if (!tab) break;
        *tab = 0;
        p = tab + 1;
    }
    return n;
}

static int count_tabs(const char *s)
{
    int n = 0;
    for (; *s; s++) n += *s == '\t';
    return n;
}

int vp_table_read(const char *path, vp_table *t)
{
    memset(t, 0, sizeof *t);
    t->path = vp_strdup(path);
    int fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : 0;
    if (fd < 0) { vp_error("'%s': cannot open: %s", path, strerror(errno)); vp_table_free(t); return -VP_ERR_RUNTIME; }
    size_t len = 0;
    t->buf = read_fd(fd, &len);
    int err = errno;
    if (fd) close(fd);
    if (!t->buf) { vp_error("'%s': read failed: %s", path, strerror(err)); vp_table_free(t); return -VP_ERR_RUNTIME; }
    if (memchr(t->buf, 0, len)) { vp_error("'%s': not a text file (NUL byte)", path); vp_table_free(t); return -VP_ERR_DATA; }

    size_t cap = 0, lineno = 0;
    char *p = t->buf;
    while (*p) {
        char *nl = strchr(p, '\n'), *next = nl ? nl + 1 : p + strlen(p);
        if (nl) *nl = 0;
        lineno++;
        size_t l = strlen(p);
        if (l && p[l - 1] == '\r') p[--l] = 0;
        if (!l) { p = next; continue; }
        if (!t->cols) {
            t->ncols = count_tabs(p) + 1;
            t->cols = vp_calloc((size_t)t->ncols, sizeof *t->cols);
            split_tabs(p, t->cols, t->ncols);
            for (int i = 0; i < t->ncols; i++)
                for (int j = 0; j < i; j++)
                    if (!strcmp(t->cols[i], t->cols[j])) {
                        vp_error("%s:%zu: column '%s' appears twice in the header", path, lineno, t->cols[i]);
                        vp_table_free(t);
                        return -VP_ERR_DATA;
                    }
        } else {
            int nf = count_tabs(p) + 1;
            if (nf != t->ncols) {
                vp_error("%s:%zu: %d fields, but the header has %d columns", path, lineno, nf, t->ncols);
                vp_table_free(t);
                return -VP_ERR_DATA;
            }
            if (t->nrows == cap) {
                cap = cap ? cap * 2 : 256;
                t->cells = vp_realloc(t->cells, cap * (size_t)t->ncols * sizeof *t->cells);
                t->lines = vp_realloc(t->lines, cap * sizeof *t->lines);
            }
            split_tabs(p, t->cells + t->nrows * (size_t)t->ncols, t->ncols);
            t->lines[t->nrows++] = lineno;
        }
        p = next;
    }
    if (!t->cols) { vp_error("'%s': empty file: no header line", path); vp_table_free(t); return -VP_ERR_DATA; }
    return 0;
}

int vp_table_col(const vp_table *t, const char *name)
{
    for (int i = 0; i < t->ncols; i++)
        if (!strcmp(t->cols[i], name)) return i;
    return -1;
}

static int flush_rows(vp_out *out, char **buf, size_t *len, FILE **f)
{
    fflush(*f);
    int w = *len ? vp_out_write(out, *buf, *len) : 0;
    if (!w) w = vp_out_end_frame(out);
    fclose(*f);
    free(*buf);
    *buf = NULL;
    *f = open_memstream(buf, len);
    return w;
}

int vp_tidy_run(const char *in_spec, const char *out_spec, int json, vp_score_fn score)
{
    vp_in *in = vp_in_open(in_spec);
    if (!in) return VP_ERR_RUNTIME;
    vp_out *out = vp_out_open(out_spec, VP_OUT_ALLOW_TTY);
    if (!out) { vp_in_close(&in); return VP_ERR_RUNTIME; }
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!json) fputs("case\tclass\tname\tmetric\tvalue\n", f);
    vp_case *c;
    int r = 0, rc = 0;
    while (!rc && (r = vp_case_read(in, &c)) > 0) {
        rc = score(c, f);
        vp_case_free(&c);
        if (!rc && flush_rows(out, &buf, &len, &f)) rc = VP_ERR_RUNTIME;
    }
    if (!rc && r < 0) rc = -r;
    if (!rc && flush_rows(out, &buf, &len, &f)) rc = VP_ERR_RUNTIME;
    fclose(f);
    free(buf);
    vp_in_close(&in);
    if (rc) { vp_out_close(&out, 0); return rc; }
    return vp_out_close(&out, 1) ? VP_ERR_RUNTIME : 0;
}

int vp_tidy_pair(const vp_case *c, const char *pred, const char *ref, const char *ctx, const vp_vol **p, const vp_vol **r)
{
    *p = vp_case_vol(c, pred), *r = vp_case_vol(c, ref);
    if (*p && *r) return 0;
    vp_error("%s: no volume '%s' (the %s; see --%s)", ctx, *p ? ref : pred, *p ? "reference" : "prediction",
             *p ? "ref" : "pred");
    return VP_ERR_DATA;
}
