/* trainer_ckpt.c - training-state files, history and the SVG curve plot (see trainer_ckpt.h). */
#include "trainer_ckpt.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

/* ---- growable text buffer */
typedef struct sbuf {
    char *p;
    size_t n, cap;
} sbuf;

static void sb_add(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(sbuf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->n;
        int k = vsnprintf(b->p ? b->p + b->n : NULL, room, fmt, ap);
        va_end(ap);
        if (k < 0) return;
        if ((size_t)k < room) { b->n += (size_t)k; return; }
        b->cap = (b->cap + (size_t)k + 1) * 2;
        b->p = vp_realloc(b->p, b->cap);
    }
}

char *vp_json_escape(const char *s)
{
    sbuf b = {0};
    sb_add(&b, "%s", "");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') sb_add(&b, "\\%c", *p);
        else if (*p < 0x20) sb_add(&b, "\\u%04x", *p);
        else sb_add(&b, "%c", *p);
    }
    return b.p;
}

/* ---- atomic writes */
static char tmp_path[4096 + 16];
static void unlink_tmp(void *arg) { unlink((const char *)arg); }

static int write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += k, n -= (size_t)k;
    }
    return 0;
}

/* Write the pieces to a temporary file beside path, fsync, rename over path, fsync the directory. */
static int atomic_write(const char *path, int npieces, const void *const *bufs, const size_t *lens)
{
    if (strlen(path) > 4096) return vp_error("%s: path too long", path);
    snprintf(tmp_path, sizeof tmp_path, "%s.tmp%ld", path, (long)getpid());
    vp_atexit_cleanup(unlink_tmp, tmp_path);
    int fd = open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        vp_cancel_cleanup(unlink_tmp, tmp_path);
        return vp_error("%s: cannot create: %s", path, strerror(errno));
    }
    for (int i = 0; i < npieces; i++)
        if (write_all(fd, bufs[i], lens[i])) goto fail;
    if (fsync(fd)) goto fail;
    if (close(fd)) { fd = -1; goto fail; }
    fd = -1;
    if (rename(tmp_path, path)) goto fail;
    vp_cancel_cleanup(unlink_tmp, tmp_path);
    char dir[4096 + 16];
    snprintf(dir, sizeof dir, "%s", path);
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
fail:;
    int e = errno;
    if (fd >= 0) close(fd);
    unlink(tmp_path);
    vp_cancel_cleanup(unlink_tmp, tmp_path);
    return vp_error("%s: cannot write: %s", path, strerror(e));
}

int vp_atomic_write_text(const char *path, const char *text, size_t len)
{
    const void *b[1] = {text};
    return atomic_write(path, 1, b, &len);
}

int vp_tst_write(const char *path, int n, const char *const *names, const float *const *data, const int64_t *len,
                 int nmeta, const char *const *keys, const char *const *values)
{
    sbuf h = {0};
    sb_add(&h, "{");
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        char *en = vp_json_escape(names[i]);
        uint64_t bytes = (uint64_t)len[i] * 4;
        sb_add(&h, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld],\"data_offsets\":[%llu,%llu]}", i ? "," : "", en,
               (long long)len[i], (unsigned long long)off, (unsigned long long)(off + bytes));
        free(en);
        off += bytes;
    }
    if (nmeta) {
        sb_add(&h, "%s\"__metadata__\":{", n ? "," : "");
        for (int i = 0; i < nmeta; i++) {
            char *ek = vp_json_escape(keys[i]), *ev = vp_json_escape(values[i]);
            sb_add(&h, "%s\"%s\":\"%s\"", i ? "," : "", ek, ev);
            free(ek);
            free(ev);
        }
        sb_add(&h, "}");
    }
    sb_add(&h, "}");
    while (h.n % 8) sb_add(&h, " "); /* the data starts 8-byte aligned */
    unsigned char hl[8];
    for (int i = 0; i < 8; i++) hl[i] = (unsigned char)((uint64_t)h.n >> (8 * i));
    int np = n + 2;
    const void **bufs = vp_malloc((size_t)np * sizeof *bufs);
    size_t *lens = vp_malloc((size_t)np * sizeof *lens);
    bufs[0] = hl, lens[0] = 8, bufs[1] = h.p, lens[1] = h.n;
    for (int i = 0; i < n; i++) bufs[i + 2] = data[i], lens[i + 2] = (size_t)len[i] * 4; /* little-endian host */
    int rc = atomic_write(path, np, bufs, lens);
    free(bufs);
    free(lens);
    free(h.p);
    return rc;
}

/* ---- history */

void vp_thist_add(vp_thist *h, double loss, double dice)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 64;
        h->loss = vp_realloc(h->loss, (size_t)h->cap * sizeof *h->loss);
        h->dice = vp_realloc(h->dice, (size_t)h->cap * sizeof *h->dice);
    }
    h->loss[h->n] = loss, h->dice[h->n] = dice;
    h->n++;
}

void vp_thist_set_dice(vp_thist *h, double dice)
{
    if (h->n) h->dice[h->n - 1] = dice;
}

void vp_thist_free(vp_thist *h)
{
    free(h->loss);
    free(h->dice);
    memset(h, 0, sizeof *h);
}

char *vp_thist_to_json(const vp_thist *h)
{
    sbuf b = {0};
    sb_add(&b, "[");
    for (int i = 0; i < h->n; i++) {
        sb_add(&b, "%s[%.9g,", i ? "," : "", h->loss[i]);
        if (isnan(h->dice[i])) sb_add(&b, "null]");
        else sb_add(&b, "%.9g]", h->dice[i]);
    }
    sb_add(&b, "]");
    return b.p;
}

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') p++;
    return p;
}

int vp_thist_from_json(vp_thist *h, const char *s)
{
    vp_thist_free(h);
    const char *p = skip_ws(s);
    if (*p++ != '[') return -1;
    p = skip_ws(p);
    if (*p == ']') return *skip_ws(p + 1) ? -1 : 0;
    for (;;) {
        double v[2];
        p = skip_ws(p);
        if (*p++ != '[') return -1;
        for (int k = 0; k < 2; k++) {
            p = skip_ws(p);
            if (k == 1 && !strncmp(p, "null", 4)) v[1] = NAN, p += 4;
            else {
                char *e;
                v[k] = strtod(p, &e);
                if (e == p) return -1;
                p = e;
            }
            p = skip_ws(p);
            if (*p++ != (k ? ']' : ',')) return -1;
        }
        vp_thist_add(h, v[0], v[1]);
        p = skip_ws(p);
        if (*p == ']') return *skip_ws(p + 1) ? -1 : 0;
        if (*p++ != ',') return -1;
    }
}

/* ---- SVG plot */

char *vp_thist_svg(const vp_thist *h, const char *title)
{
    const double W = 720, H = 400, L = 70, R = 70, T = 40, B = 50, pw = W - L - R, ph = H - T - B;
    double lmax = 0;
    for (int i = 0; i < h->n; i++)
        if (isfinite(h->loss[i]) && h->loss[i] > lmax) lmax = h->loss[i];
    if (lmax <= 0) lmax = 1;
    int nx = h->n > 1 ? h->n - 1 : 1;
    char *et = vp_json_escape(title); /* no quotes or controls left; escape XML specials below */
    sbuf b = {0};
    sb_add(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" viewBox=\"0 0 %g %g\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
           W, H, W, H);
    sb_add(&b, "<text x=\"%g\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">", W / 2);
    for (const char *p = et; *p; p++) {
        if (*p == '<') sb_add(&b, "&lt;");
        else if (*p == '>') sb_add(&b, "&gt;");
        else if (*p == '&') sb_add(&b, "&amp;");
        else sb_add(&b, "%c", *p);
    }
    sb_add(&b, "</text>\n");
    free(et);
    sb_add(&b, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" stroke=\"#444\"/>\n", L, T, pw, ph);
    for (int k = 0; k <= 4; k++) { /* grid and both axes' labels */
        double y = T + ph - ph * k / 4;
        sb_add(&b, "<line x1=\"%g\" y1=\"%.1f\" x2=\"%g\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", L, y, L + pw, y);
        sb_add(&b, "<text x=\"%g\" y=\"%.1f\" text-anchor=\"end\" fill=\"#1f77b4\">%.3g</text>\n", L - 6, y + 4, lmax * k / 4);
        sb_add(&b, "<text x=\"%g\" y=\"%.1f\" fill=\"#d62728\">%.2f</text>\n", L + pw + 6, y + 4, k / 4.0);
    }
    sb_add(&b, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">epoch (1 .. %d)</text>\n", L + pw / 2, H - 15, h->n);
    sb_add(&b, "<text x=\"18\" y=\"%g\" fill=\"#1f77b4\" transform=\"rotate(-90 18 %g)\" text-anchor=\"middle\">loss</text>\n",
           T + ph / 2, T + ph / 2);
    sb_add(&b, "<text x=\"%g\" y=\"%g\" fill=\"#d62728\" transform=\"rotate(90 %g %g)\" text-anchor=\"middle\">mean val Dice</text>\n",
           W - 18, T + ph / 2, W - 18, T + ph / 2);
    for (int s = 0; s < 2; s++) { /* 0: loss, 1: Dice */
        const double *v = s ? h->dice : h->loss;
        double vmax = s ? 1 : lmax;
        sb_add(&b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", s ? "#d62728" : "#1f77b4");
        for (int i = 0; i < h->n; i++)
            if (isfinite(v[i]))
                sb_add(&b, "%.1f,%.1f ", L + (h->n > 1 ? pw * i / nx : pw / 2), T + ph - ph * fmin(fmax(v[i] / vmax, 0), 1));
        sb_add(&b, "\"/>\n");
        for (int i = 0; s && i < h->n; i++)
            if (isfinite(v[i]))
                sb_add(&b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"#d62728\"/>\n",
                       L + (h->n > 1 ? pw * i / nx : pw / 2), T + ph - ph * fmin(fmax(v[i], 0), 1));
    }
    sb_add(&b, "</svg>\n");
    return b.p;
}
