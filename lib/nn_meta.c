/* nn_meta.c - model metadata: spacing, normalisation, label names (see nn_meta.h). */
#include "nn_meta.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "util.h"

/* ---- a small JSON reader: values of the metadata strings (objects, arrays, strings, numbers) ---- */

enum { J_NULL, J_NUM, J_STR, J_ARR, J_OBJ, J_BOOL };

struct jv {
    int type;
    double num;
    char *str;      /* J_STR */
    int n;          /* J_ARR / J_OBJ entries */
    char **keys;    /* J_OBJ */
    struct jv *v;   /* J_ARR / J_OBJ values */
};

static void jv_free(struct jv *j)
{
    for (int i = 0; i < j->n; i++) {
        jv_free(&j->v[i]);
        if (j->keys) free(j->keys[i]);
    }
    free(j->keys), free(j->v), free(j->str);
    memset(j, 0, sizeof *j);
}

static const char *ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    return p;
}

/* A JSON string at *pp (on the opening quote), unescaped into a new UTF-8 string; \uXXXX escapes
 * (surrogate pairs included) become UTF-8. NULL on a malformed string. */
static char *jstr(const char **pp)
{
    const char *p = *pp + 1;
    size_t cap = 16, n = 0;
    char *s = vp_malloc(cap);
    for (;; p++) {
        unsigned u = (unsigned char)*p;
        if (!u || u < 0x20) break;
        if (n + 5 > cap) s = vp_realloc(s, cap *= 2);
        if (u == '"') {
            s[n] = 0;
            *pp = p + 1;
            return s;
        }
        if (u != '\\') {
            s[n++] = (char)u;
            continue;
        }
        switch (*++p) {
        case 'n': s[n++] = '\n'; break;
        case 't': s[n++] = '\t'; break;
        case 'r': s[n++] = '\r'; break;
        case 'b': s[n++] = '\b'; break;
        case 'f': s[n++] = '\f'; break;
        case '"': case '\\': case '/': s[n++] = *p; break;
        case 'u': {
            unsigned cp = 0;
            for (int k = 0; k < 2; k++) {
                unsigned v = 0;
                for (int i = 1; i <= 4; i++) {
                    char h = p[i];
                    int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
                    if (d < 0) goto bad;
                    v = v * 16 + (unsigned)d;
                }
                p += 4;
                if (k == 0 && v >= 0xD800 && v < 0xDC00) { /* high surrogate: a low one must follow */
                    if (p[1] != '\\' || p[2] != 'u') goto bad;
                    cp = v;
                    p += 2; /* on the second 'u': the next round reads p[1..4] */
                    continue;
                }
                if (k == 1) {
                    if (v < 0xDC00 || v >= 0xE000) goto bad;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (v - 0xDC00);
                } else
                    cp = v;
                break;
            }
            if (!cp || (cp >= 0xDC00 && cp < 0xE000)) goto bad;
            if (cp < 0x80) s[n++] = (char)cp;
            else if (cp < 0x800) s[n++] = (char)(0xC0 | cp >> 6), s[n++] = (char)(0x80 | (cp & 0x3F));
            else if (cp < 0x10000)
                s[n++] = (char)(0xE0 | cp >> 12), s[n++] = (char)(0x80 | ((cp >> 6) & 0x3F)), s[n++] = (char)(0x80 | (cp & 0x3F));
            else
                s[n++] = (char)(0xF0 | cp >> 18), s[n++] = (char)(0x80 | ((cp >> 12) & 0x3F)),
                s[n++] = (char)(0x80 | ((cp >> 6) & 0x3F)), s[n++] = (char)(0x80 | (cp & 0x3F));
            break;
        }
        default: goto bad;
        }
    }
bad:
    free(s);
    return NULL;
}

static int jparse(const char **pp, struct jv *out, int depth)
{
    const char *p = ws(*pp);
    memset(out, 0, sizeof *out);
    if (depth > 16) return -1;
    if (*p == '"') {
        out->type = J_STR;
        if (!(out->str = jstr(&p))) return -1;
    } else if (*p == '{' || *p == '[') {
        int obj = *p == '{';
        char close = obj ? '}' : ']';
        out->type = obj ? J_OBJ : J_ARR;
        p = ws(p + 1);
        if (*p == close) p++;
        else
            for (;;) {
                out->v = vp_realloc(out->v, sizeof(struct jv) * (size_t)(out->n + 1));
                if (obj) out->keys = vp_realloc(out->keys, sizeof(char *) * (size_t)(out->n + 1));
                if (obj) {
                    p = ws(p);
                    char *k = *p == '"' ? jstr(&p) : NULL;
                    if (!k) return -1;
                    out->keys[out->n] = k;
                    p = ws(p);
                    if (*p++ != ':') {
                        memset(&out->v[out->n], 0, sizeof(struct jv));
                        out->n++;
                        return -1;
                    }
                }
                int r = jparse(&p, &out->v[out->n], depth + 1);
                out->n++;
                if (r) return -1;
                p = ws(p);
                if (*p == ',') {
                    p++;
                    continue;
                }
                if (*p++ != close) return -1;
                break;
            }
    } else if (!strncmp(p, "true", 4) || !strncmp(p, "false", 5)) {
        out->type = J_BOOL;
        out->num = *p == 't';
        p += *p == 't' ? 4 : 5;
    } else if (!strncmp(p, "null", 4)) {
        p += 4;
    } else {
        char *end;
        errno = 0;
        out->num = strtod(p, &end);
        if (end == p || errno) return -1;
        out->type = J_NUM;
        p = end;
    }
    *pp = p;
    return 0;
}

/* Parse the whole string s as one JSON value; -1 on a syntax error or trailing text. */
static int jparse_all(const char *s, struct jv *out)
{
    const char *p = s;
    if (jparse(&p, out, 0) || *ws(p)) {
        jv_free(out);
        return -1;
    }
    return 0;
}

static const struct jv *jget(const struct jv *o, const char *key)
{
    if (o->type != J_OBJ) return NULL;
    for (int i = 0; i < o->n; i++)
        if (!strcmp(o->keys[i], key)) return &o->v[i];
    return NULL;
}

/* ---- the metadata ---- */

static int parse_doubles(const char *s, double *v, int n)
{
    for (int i = 0; i < n; i++) {
        char *end;
        errno = 0;
        v[i] = strtod(s, &end);
        if (end == s || errno || !isfinite(v[i])) return -1;
        s = end;
        if (i < n - 1 && *s++ != ',') return -1;
    }
    return *s ? -1 : 0;
}

static int meta_double(const vp_safetensors *st, const char *where, const char *key, double *v)
{
    const char *s = vp_st_meta(st, key);
    if (!s) return vp_error("%s: metadata %s is missing", where, key);
    if (parse_doubles(s, v, 1)) return vp_error("%s: metadata %s: '%s' is not a number", where, key, s);
    return 0;
}

static int cmp_id(const void *a, const void *b)
{
    int32_t x = ((const vp_label_name *)a)->id, y = ((const vp_label_name *)b)->id;
    return x < y ? -1 : x > y;
}

static int read_labels(const char *s, const char *where, const char *key, vp_nn_meta *m)
{
    struct jv j;
    if (jparse_all(s, &j) || j.type != J_OBJ) {
        if (j.type) jv_free(&j);
        return vp_error("%s: metadata %s: not a JSON object {\"1\": \"name\", ...}", where, key);
    }
    m->labels = vp_calloc((size_t)(j.n ? j.n : 1), sizeof(vp_label_name));
    for (int i = 0; i < j.n; i++) {
        char *end;
        long id = strtol(j.keys[i], &end, 10);
        if (!*j.keys[i] || *end || id < 0 || id > 65535 || j.v[i].type != J_STR) {
            vp_error("%s: metadata %s: entry '%s' is not \"ID\": \"name\" with ID 0..65535", where, key, j.keys[i]);
            jv_free(&j);
            return -1;
        }
        for (int k = 0; k < m->nlabels; k++)
            if (m->labels[k].id == id) {
                vp_error("%s: metadata %s: id %ld given twice", where, key, id);
                jv_free(&j);
                return -1;
            }
        m->labels[m->nlabels].id = (int32_t)id;
        m->labels[m->nlabels++].name = vp_strdup(j.v[i].str);
    }
    qsort(m->labels, (size_t)m->nlabels, sizeof *m->labels, cmp_id);
    jv_free(&j);
    return 0;
}

static int read_voxpipe_norm(const vp_safetensors *st, const char *where, const char *s, vp_nn_meta *m)
{
    m->has_norm = 1;
    if (!strcmp(s, "none")) m->norm = VP_NN_NORM_NONE;
    else if (!strcmp(s, "zscore")) m->norm = VP_NN_NORM_ZSCORE;
    else if (!strcmp(s, "range")) {
        m->norm = VP_NN_NORM_RANGE;
        if (meta_double(st, where, "voxpipe.a_min", &m->a_min) || meta_double(st, where, "voxpipe.a_max", &m->a_max) ||
            meta_double(st, where, "voxpipe.b_min", &m->b_min) || meta_double(st, where, "voxpipe.b_max", &m->b_max))
            return -1;
        if (m->a_min == m->a_max) return vp_error("%s: metadata voxpipe.a_min equals voxpipe.a_max", where);
        const char *c = vp_st_meta(st, "voxpipe.clip");
        m->clip = !c || !strcmp(c, "1") || !strcmp(c, "true") || !strcmp(c, "True");
        if (c && !m->clip && strcmp(c, "0") && strcmp(c, "false") && strcmp(c, "False"))
            return vp_error("%s: metadata voxpipe.clip: '%s' is not 1 or 0", where, c);
    } else if (!strcmp(s, "ct")) {
        m->norm = VP_NN_NORM_CT;
        if (meta_double(st, where, "voxpipe.ct_lo", &m->lo) || meta_double(st, where, "voxpipe.ct_hi", &m->hi) ||
            meta_double(st, where, "voxpipe.ct_mean", &m->mean) || meta_double(st, where, "voxpipe.ct_std", &m->std))
            return -1;
    } else
        return vp_error("%s: metadata voxpipe.norm: '%s' is not range, ct, zscore or none", where, s);
    return 0;
}

static int read_nnunet_norm(const vp_safetensors *st, const char *where, const char *s, vp_nn_meta *m)
{
    struct jv j, props = {0};
    if (jparse_all(s, &j) || j.type != J_ARR) {
        if (j.type) jv_free(&j);
        return vp_error("%s: metadata normalization: not a JSON list of scheme names", where);
    }
    int rc = 0;
    if (j.n != 1 || j.v[0].type != J_STR) {
        rc = vp_error("%s: metadata normalization: %d entries; one input channel with one scheme is supported", where, j.n);
        goto out;
    }
    const char *sch = j.v[0].str;
    m->has_norm = 1;
    if (!strcmp(sch, "NoNormalization")) m->norm = VP_NN_NORM_NONE;
    else if (!strcmp(sch, "ZScoreNormalization")) m->norm = VP_NN_NORM_ZSCORE;
    else if (!strcmp(sch, "CTNormalization")) {
        m->norm = VP_NN_NORM_CT;
        const char *ps = vp_st_meta(st, "intensity_properties");
        if (!ps || jparse_all(ps, &props)) {
            rc = vp_error("%s: metadata intensity_properties: %s (CTNormalization needs it)", where, ps ? "not JSON" : "missing");
            goto out;
        }
        const struct jv *c0 = jget(&props, "0");
        const char *names[4] = {"percentile_00_5", "percentile_99_5", "mean", "std"};
        double *dst[4] = {&m->lo, &m->hi, &m->mean, &m->std};
        for (int i = 0; i < 4; i++) {
            const struct jv *v = c0 ? jget(c0, names[i]) : NULL;
            if (!v || v->type != J_NUM || !isfinite(v->num)) {
                rc = vp_error("%s: metadata intensity_properties: channel \"0\" has no number %s", where, names[i]);
                goto out;
            }
            *dst[i] = v->num;
        }
    } else
        rc = vp_error("%s: metadata normalization: scheme %s is not supported (CTNormalization, ZScoreNormalization, "
                      "NoNormalization)", where, sch);
out:
    jv_free(&j);
    if (props.type) jv_free(&props);
    return rc;
}

int vp_nn_meta_read(const vp_safetensors *st, const char *where, vp_nn_meta *m)
{
    memset(m, 0, sizeof *m);
    const char *s;
    if ((s = vp_st_meta(st, "voxpipe.spacing"))) {
        if (parse_doubles(s, m->spacing, 3) || !(m->spacing[0] > 0 && m->spacing[1] > 0 && m->spacing[2] > 0))
            return vp_error("%s: metadata voxpipe.spacing: '%s' is not X,Y,Z of positive mm", where, s);
        m->has_spacing = 1;
    } else if ((s = vp_st_meta(st, "spacing"))) {
        const char *ax = vp_st_meta(st, "axes");
        double sp[3];
        if (parse_doubles(s, sp, 3) || !(sp[0] > 0 && sp[1] > 0 && sp[2] > 0))
            return vp_error("%s: metadata spacing: '%s' is not D,H,W of positive mm", where, s);
        if (ax && strcmp(ax, "zyx")) return vp_error("%s: metadata axes: '%s' (only zyx is supported)", where, ax);
        for (int a = 0; a < 3; a++) m->spacing[a] = sp[2 - a];
        m->has_spacing = 1;
    }
    int rc = 0;
    if ((s = vp_st_meta(st, "voxpipe.norm"))) rc = read_voxpipe_norm(st, where, s, m);
    else if ((s = vp_st_meta(st, "normalization"))) rc = read_nnunet_norm(st, where, s, m);
    if (!rc) {
        if ((s = vp_st_meta(st, "voxpipe.labels"))) rc = read_labels(s, where, "voxpipe.labels", m);
        else if ((s = vp_st_meta(st, "labels"))) rc = read_labels(s, where, "labels", m);
    }
    if (rc) vp_nn_meta_free(m);
    return rc;
}

void vp_nn_meta_free(vp_nn_meta *m)
{
    for (int i = 0; i < m->nlabels; i++) free(m->labels[i].name);
    free(m->labels);
    m->labels = NULL;
    m->nlabels = 0;
}

void vp_nn_meta_pack_labels(const vp_nn_meta *m, msgpack_packer *pk)
{
    msgpack_pack_map(pk, (size_t)m->nlabels);
    for (int i = 0; i < m->nlabels; i++) {
        char b[16];
        snprintf(b, sizeof b, "%d", m->labels[i].id);
        vp_pack_cstr(pk, b);
        vp_pack_cstr(pk, m->labels[i].name);
    }
}

void vp_nn_meta_describe(const vp_nn_meta *m, char *buf, size_t n)
{
    int k = 0;
    if (m->has_spacing) k = snprintf(buf, n, "spacing %g,%g,%g mm", m->spacing[0], m->spacing[1], m->spacing[2]);
    else k = snprintf(buf, n, "no spacing");
    if ((size_t)k >= n) return;
    switch (m->norm) {
    case VP_NN_NORM_RANGE:
        snprintf(buf + k, n - (size_t)k, ", ScaleIntensityRange %g..%g -> %g..%g%s", m->a_min, m->a_max, m->b_min, m->b_max,
                 m->clip ? " clip" : "");
        break;
    case VP_NN_NORM_CT:
        snprintf(buf + k, n - (size_t)k, ", CTNormalization clip %g..%g, mean %g, std %g", m->lo, m->hi, m->mean, m->std);
        break;
    case VP_NN_NORM_ZSCORE: snprintf(buf + k, n - (size_t)k, ", z-score per image"); break;
    default: snprintf(buf + k, n - (size_t)k, m->has_norm ? ", no normalisation" : ", no normalisation in the metadata"); break;
    }
}

void vp_nn_meta_set_case_labels(vp_case *cs, const vp_nn_meta *m)
{
    if (!m->nlabels) return;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    vp_nn_meta_pack_labels(m, &pk);
    vp_case_meta_set_sbuf(cs, "labels", &sb);
    msgpack_sbuffer_destroy(&sb);
}
