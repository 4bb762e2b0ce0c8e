/* dicom_web_parse.c - the QIDO-RS JSON and WADO-RS multipart parsers of the DICOMweb source
 * (dicom_web.h): pure functions on a buffer, bounded by its length, no allocation but the rows. */
#include "dicom_web.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- JSON (RFC 8259), only as deep as DICOM JSON needs; numbers and strings kept as text ---- */

struct jp {
    const char *b, *p, *e;
    char *why;
    int err;
};

static int jfail(struct jp *j, const char *msg)
{
    if (!j->err) snprintf(j->why, 256, "QIDO-RS answer is not DICOM JSON (byte %td): %s", j->p - j->b, msg);
    j->err = 1;
    return -1;
}

static void ws(struct jp *j)
{
    while (j->p < j->e && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

static int lit(struct jp *j, char c)
{
    ws(j);
    if (j->p >= j->e || *j->p != c) return 0;
    j->p++;
    return 1;
}

/* a string into out[cap] (NULL: skipped); longer than cap-1: error unless trunc */
static int jstr(struct jp *j, char *out, size_t cap, int trunc)
{
    size_t n = 0;
    if (!lit(j, '"')) return jfail(j, "expected a string");
    for (;;) {
        if (j->p >= j->e) return jfail(j, "unterminated string");
        unsigned char c = (unsigned char)*j->p++;
        if (c == '"') break;
        if (c < 0x20) return jfail(j, "control character in a string");
        if (c == '\\') {
            if (j->p >= j->e) return jfail(j, "unterminated escape");
            char x = *j->p++;
            const char *map = strchr("\"\"\\\\//b\bf\fn\nr\rt\t", x);
            if (x == 'u') {
                if (j->e - j->p < 4) return jfail(j, "short \\u escape");
                for (int i = 0; i < 4; i++)
                    if (!isxdigit((unsigned char)j->p[i])) return jfail(j, "bad \\u escape");
                j->p += 4;
                c = '?'; /* no identifier dcm-fetch reads needs more than ASCII */
            } else if (map && ((map - "\"\"\\\\//b\bf\fn\nr\rt\t") % 2) == 0) {
                c = (unsigned char)map[1];
            } else {
                return jfail(j, "bad escape");
            }
        }
        if (out) {
            if (n + 1 >= cap) {
                if (!trunc) return jfail(j, "value too long");
                continue;
            }
            out[n++] = (char)c;
        }
    }
    if (out) out[n] = 0;
    return 0;
}

static int jnum(struct jp *j, char *out, size_t cap)
{
    ws(j);
    const char *s = j->p;
    while (j->p < j->e && strchr("+-0123456789.eE", *j->p)) j->p++;
    if (j->p == s) return jfail(j, "expected a value");
    if (out) {
        if ((size_t)(j->p - s) >= cap) return jfail(j, "number too long");
        memcpy(out, s, (size_t)(j->p - s));
        out[j->p - s] = 0;
    }
    return 0;
}

static int jvalue(struct jp *j, int depth, char *out, size_t cap, int trunc);

/* an array; its first element (when a string or number) into out */
static int jarray(struct jp *j, int depth, char *out, size_t cap, int trunc)
{
    if (!lit(j, '[')) return jfail(j, "expected an array");
    if (lit(j, ']')) return 0;
    for (int i = 0;; i++) {
        if (jvalue(j, depth + 1, i ? NULL : out, cap, trunc)) return -1;
        if (lit(j, ']')) return 0;
        if (!lit(j, ',')) return jfail(j, "expected , or ] in an array");
    }
}

/* an object: each member's key to key(arg, key) which returns where its value goes (or NULL) */
typedef char *(*jkey_fn)(void *arg, const char *key, size_t *cap, int *trunc, int *value_array);
static int jobject(struct jp *j, int depth, jkey_fn key, void *arg)
{
    if (!lit(j, '{')) return jfail(j, "expected an object");
    if (lit(j, '}')) return 0;
    for (;;) {
        char k[16];
        if (jstr(j, k, sizeof k, 1) || !lit(j, ':')) return j->err ? -1 : jfail(j, "expected :");
        size_t cap = 0;
        int trunc = 0, arr = 0;
        char *out = key ? key(arg, k, &cap, &trunc, &arr) : NULL;
        if (out && arr ? jarray(j, depth + 1, out, cap, trunc) : jvalue(j, depth + 1, out, cap, trunc)) return -1;
        if (lit(j, '}')) return 0;
        if (!lit(j, ',')) return jfail(j, "expected , or } in an object");
    }
}

static int jvalue(struct jp *j, int depth, char *out, size_t cap, int trunc)
{
    if (depth > 32) return jfail(j, "nested too deeply");
    ws(j);
    if (j->p >= j->e) return jfail(j, "unexpected end");
    switch (*j->p) {
    case '"': return jstr(j, out, cap, trunc);
    case '[': return jarray(j, depth, NULL, 0, 0);
    case '{': return jobject(j, depth, NULL, NULL);
    }
    static const char *const words[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++) {
        size_t l = strlen(words[i]);
        if ((size_t)(j->e - j->p) >= l && !memcmp(j->p, words[i], l)) {
            j->p += l;
            return 0;
        }
    }
    return jnum(j, out, cap);
}

/* the attribute object {"vr": .., "Value": [first, ...]}: Value's first element into its slot */
struct attr_ctx {
    char *out;
    size_t cap;
    int trunc;
};
static char *attr_key(void *arg, const char *key, size_t *cap, int *trunc, int *arr)
{
    struct attr_ctx *a = arg;
    if (strcmp(key, "Value")) return NULL;
    *cap = a->cap;
    *trunc = a->trunc;
    *arr = 1;
    return a->out;
}

struct row_ctx {
    struct jp *j;
    struct vp_dcm_web_row *r;
    char instances[16];
};

/* a dataset member: the tags dcm-fetch reads get their attribute object parsed into the row */
static int dataset(struct row_ctx *rc, int depth)
{
    struct jp *j = rc->j;
    struct vp_dcm_web_row *r = rc->r;
    if (!lit(j, '{')) return jfail(j, "expected an object (one dataset)");
    if (lit(j, '}')) return 0;
    for (;;) {
        char k[16];
        if (jstr(j, k, sizeof k, 1) || !lit(j, ':')) return j->err ? -1 : jfail(j, "expected :");
        struct attr_ctx a = {NULL, 0, 0};
        if (!strcasecmp(k, "0020000D")) a = (struct attr_ctx){r->study_uid, sizeof r->study_uid, 0};
        else if (!strcasecmp(k, "0020000E")) a = (struct attr_ctx){r->series_uid, sizeof r->series_uid, 0};
        else if (!strcasecmp(k, "00080060")) a = (struct attr_ctx){r->modality, sizeof r->modality, 1};
        else if (!strcasecmp(k, "0008103E")) a = (struct attr_ctx){r->description, sizeof r->description, 1};
        else if (!strcasecmp(k, "00201209")) a = (struct attr_ctx){rc->instances, sizeof rc->instances, 0};
        if (a.out ? jobject(j, depth + 1, attr_key, &a) : jvalue(j, depth + 1, NULL, 0, 0)) return -1;
        if (lit(j, '}')) return 0;
        if (!lit(j, ',')) return jfail(j, "expected , or } in a dataset");
    }
}

int vp_dcm_web_parse_json(const char *buf, size_t len, struct vp_dcm_web_row **rows, char why[256])
{
    struct jp j = {buf, buf, buf + len, why, 0};
    *rows = NULL;
    size_t n = 0, cap = 0;
    ws(&j);
    if (j.p == j.e) return 0; /* 204 No Content or an empty body: no match */
    if (!lit(&j, '[')) return jfail(&j, "expected an array of datasets");
    if (!lit(&j, ']'))
        for (;;) {
            if (n == cap) {
                cap = cap ? 2 * cap : 16;
                struct vp_dcm_web_row *t = realloc(*rows, cap * sizeof **rows);
                if (!t) { free(*rows); *rows = NULL; snprintf(why, 256, "out of memory"); return -1; }
                *rows = t;
            }
            struct row_ctx rc = {&j, *rows + n, ""};
            memset(rc.r, 0, sizeof *rc.r);
            if (dataset(&rc, 1)) { free(*rows); *rows = NULL; return -1; }
            char *end = NULL;
            long v = strtol(rc.instances, &end, 10);
            rc.r->instances = rc.instances[0] && end && !*end && v >= 0 && v < 1L << 30 ? (int)v : -1;
            n++;
            if (lit(&j, ']')) break;
            if (!lit(&j, ',')) { free(*rows); *rows = NULL; return jfail(&j, "expected , or ] after a dataset"); }
        }
    ws(&j);
    if (j.p != j.e) { free(*rows); *rows = NULL; return jfail(&j, "trailing data after the array"); }
    return (int)n;
}

/* ---- multipart/related (RFC 2046, PS3.18 8.6.1.2) ---- */

int vp_dcm_web_boundary(const char *ct, char b[128], char why[256])
{
    b[0] = 0;
    if (!ct) { snprintf(why, 256, "WADO-RS answer has no Content-Type"); return -1; }
    while (*ct == ' ') ct++;
    if (strncasecmp(ct, "multipart/related", 17) || (ct[17] && ct[17] != ';' && ct[17] != ' ')) {
        snprintf(why, 256, "WADO-RS answer is '%.60s', not multipart/related", ct);
        return -1;
    }
    for (const char *p = ct + 17; (p = strchr(p, ';'));) {
        p++;
        while (*p == ' ') p++;
        const char *eq = strchr(p, '=');
        if (!eq) break;
        size_t kl = (size_t)(eq - p);
        const char *v = eq + 1, *ve;
        char val[128];
        if (*v == '"') {
            v++;
            if (!(ve = strchr(v, '"'))) { snprintf(why, 256, "WADO-RS Content-Type: unterminated quoted parameter"); return -1; }
        } else {
            ve = v + strcspn(v, "; ");
        }
        if ((size_t)(ve - v) >= sizeof val) { snprintf(why, 256, "WADO-RS Content-Type: parameter too long"); return -1; }
        memcpy(val, v, (size_t)(ve - v));
        val[ve - v] = 0;
        if (kl == 8 && !strncasecmp(p, "boundary", 8)) {
            if (!val[0] || strlen(val) > 70) { snprintf(why, 256, "WADO-RS Content-Type: bad boundary"); return -1; }
            memcpy(b, val, strlen(val) + 1);
        } else if (kl == 4 && !strncasecmp(p, "type", 4) && strcasecmp(val, "application/dicom")) {
            snprintf(why, 256, "WADO-RS answer holds '%.60s', not application/dicom", val);
            return -1;
        }
        p = ve;
    }
    if (!b[0]) { snprintf(why, 256, "WADO-RS Content-Type has no boundary"); return -1; }
    return 0;
}

/* the Content-Type of a part's header block [h, e): application/dicom (1), absent (0), other (-1) */
static int part_type(const char *h, const char *e, char *seen, size_t cap)
{
    while (h < e) {
        const char *nl = memchr(h, '\n', (size_t)(e - h));
        const char *le = nl ? nl : e;
        if (le - h > 13 && !strncasecmp(h, "Content-Type:", 13)) {
            const char *v = h + 13;
            while (v < le && (*v == ' ' || *v == '\t')) v++;
            size_t l = (size_t)(le - v);
            while (l && (v[l - 1] == '\r' || v[l - 1] == ' ')) l--;
            snprintf(seen, cap, "%.*s", (int)(l < 60 ? l : 60), v);
            return l >= 17 && !strncasecmp(v, "application/dicom", 17) && (l == 17 || v[17] == ';' || v[17] == ' ') ? 1
                                                                                                              : -1;
        }
        h = le + 1;
    }
    return 0;
}

int vp_dcm_web_multipart(const char *buf, size_t len, const char *boundary,
                         int (*part)(void *arg, const char *data, size_t size, char why[256]), void *arg, char why[256])
{
    char d[80]; /* CRLF "--" boundary */
    int dl = snprintf(d, sizeof d, "\r\n--%s", boundary);
    const char *e = buf + len, *p;
    /* the first delimiter may open the body (no preamble) */
    if (len >= (size_t)dl - 2 && !memcmp(buf, d + 2, (size_t)dl - 2)) p = buf + dl - 2;
    else if ((p = memmem(buf, len, d, (size_t)dl))) p += dl;
    else { snprintf(why, 256, "malformed multipart body: no boundary '%.70s' in %zu bytes", boundary, len); return -1; }
    for (int n = 0;; n++) {
        if (e - p >= 2 && p[0] == '-' && p[1] == '-') return n; /* close delimiter; the epilogue is ignored */
        while (p < e && (*p == ' ' || *p == '\t')) p++;
        if (e - p < 2 || p[0] != '\r' || p[1] != '\n') {
            snprintf(why, 256, "malformed multipart body: %s after the boundary of part %d",
                     p == e ? "truncated (no close delimiter)" : "no CRLF", n + 1);
            return -1;
        }
        p += 2;
        const char *h = p, *body;
        if (e - p >= 2 && p[0] == '\r' && p[1] == '\n') body = p + 2; /* no headers */
        else {
            const char *he = memmem(p, (size_t)(e - p) < 16384 ? (size_t)(e - p) : 16384, "\r\n\r\n", 4);
            if (!he) { snprintf(why, 256, "malformed multipart body: part %d has no end of headers", n + 1); return -1; }
            body = he + 4;
        }
        char seen[64] = "";
        int t = part_type(h, body, seen, sizeof seen);
        if (t <= 0) {
            snprintf(why, 256, "multipart body: part %d is %s%s%s, not application/dicom", n + 1, t ? "'" : "untyped",
                     seen, t ? "'" : "");
            return -1;
        }
        const char *pe = memmem(body, (size_t)(e - body), d, (size_t)dl);
        if (!pe) {
            snprintf(why, 256, "malformed multipart body: truncated in part %d (%td bytes, no closing boundary)", n + 1,
                     e - body);
            return -1;
        }
        if (part(arg, body, (size_t)(pe - body), why)) return -1;
        p = pe + dl;
    }
}
