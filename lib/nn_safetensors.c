/* nn_safetensors.c - see nn_safetensors.h. A small bounded JSON parser for exactly the header's
 * grammar (objects, strings, arrays of non-negative integers), then the layout checks. */
#include "nn_safetensors.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEADER_MAX ((uint64_t)100 << 20) /* the reference implementation's limit */

struct vp_safetensors {
    char *path;
    unsigned char *map;
    size_t map_len;
    const unsigned char *data; /* first byte after the header */
    uint64_t data_len;
    vp_st_tensor *t;
    int nt, cap;
    char **mkey, **mval;
    int nm, mcap;
};

/* ---- JSON */

struct js {
    const char *p, *end;
    const char *err; /* first error */
};

static int js_fail(struct js *j, const char *why)
{
    if (!j->err) j->err = why;
    return -1;
}

static void js_ws(struct js *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

static int js_lit(struct js *j, char c)
{
    js_ws(j);
    if (j->p >= j->end || *j->p != c) return -1;
    j->p++;
    return 0;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

/* A JSON string into a new NUL-terminated UTF-8 buffer (escapes decoded; no embedded NULs). */
static char *js_str(struct js *j)
{
    if (js_lit(j, '"')) return js_fail(j, "expected a string"), NULL;
    size_t cap = 16, n = 0;
    char *s = vp_malloc(cap);
    for (;;) {
        if (j->p >= j->end) goto bad_end;
        unsigned char c = (unsigned char)*j->p++;
        unsigned cp;
        if (c == '"') break;
        if (c < 0x20) { js_fail(j, "control character in string"); goto bad; }
        if (n + 5 > cap) s = vp_realloc(s, cap *= 2);
        if (c != '\\') { s[n++] = (char)c; continue; }
        if (j->p >= j->end) goto bad_end;
        switch (*j->p++) {
        case '"': s[n++] = '"'; continue;
        case '\\': s[n++] = '\\'; continue;
        case '/': s[n++] = '/'; continue;
        case 'b': s[n++] = '\b'; continue;
        case 'f': s[n++] = '\f'; continue;
        case 'n': s[n++] = '\n'; continue;
        case 'r': s[n++] = '\r'; continue;
        case 't': s[n++] = '\t'; continue;
        case 'u':
            if (j->end - j->p < 4 || hex4(j->p, &cp)) { js_fail(j, "bad \\u escape"); goto bad; }
            j->p += 4;
            if (cp >= 0xD800 && cp < 0xDC00) { /* surrogate pair */
                unsigned lo;
                if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u' || hex4(j->p + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
                    js_fail(j, "unpaired surrogate in \\u escape");
                    goto bad;
                }
                j->p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp < 0xE000) { js_fail(j, "unpaired surrogate in \\u escape"); goto bad; }
            if (cp == 0) { js_fail(j, "NUL in string"); goto bad; }
            if (cp < 0x80) s[n++] = (char)cp;
            else if (cp < 0x800) s[n++] = (char)(0xC0 | cp >> 6), s[n++] = (char)(0x80 | (cp & 63));
            else if (cp < 0x10000) s[n++] = (char)(0xE0 | cp >> 12), s[n++] = (char)(0x80 | ((cp >> 6) & 63)), s[n++] = (char)(0x80 | (cp & 63));
            else s[n++] = (char)(0xF0 | cp >> 18), s[n++] = (char)(0x80 | ((cp >> 12) & 63)), s[n++] = (char)(0x80 | ((cp >> 6) & 63)), s[n++] = (char)(0x80 | (cp & 63));
            continue;
        default: js_fail(j, "bad escape in string"); goto bad;
        }
    }
    s[n] = 0;
    return s;
bad_end:
    js_fail(j, "unterminated string");
bad:
    free(s);
    return NULL;
}

/* A non-negative integer below 2^63. */
static int js_uint(struct js *j, uint64_t *out)
{
    js_ws(j);
    if (j->p >= j->end || *j->p < '0' || *j->p > '9') return js_fail(j, "expected a non-negative integer");
    uint64_t v = 0;
    const char *start = j->p;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        if (v > (UINT64_C(1) << 62) / 5) return js_fail(j, "integer too large");
        v = v * 10 + (uint64_t)(*j->p++ - '0');
    }
    if (*start == '0' && j->p - start > 1) return js_fail(j, "leading zero in integer");
    if (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E')) return js_fail(j, "expected an integer, not a fraction");
    *out = v;
    return 0;
}

/* [u, u, ...] with at most max entries; *n gets the count. */
static int js_uint_array(struct js *j, uint64_t *v, int max, int *n)
{
    *n = 0;
    if (js_lit(j, '[')) return js_fail(j, "expected an array");
    if (!js_lit(j, ']')) return 0;
    for (;;) {
        if (*n == max) return js_fail(j, "array too long");
        if (js_uint(j, &v[(*n)++])) return -1;
        if (!js_lit(j, ']')) return 0;
        if (js_lit(j, ',')) return js_fail(j, "expected ',' or ']' in array");
    }
}

static const struct { const char *name; int size; } dtypes[] = {
    {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"F64", 8}, {"I64", 8}, {"I32", 4}, {"I16", 2}, {"I8", 1}, {"U64", 8},
    {"U32", 4}, {"U16", 2}, {"U8", 1}, {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1},
};

/* One tensor entry: {"dtype": s, "shape": [..], "data_offsets": [b, e]} in any order. */
static int parse_entry(struct js *j, vp_st_tensor *t, char *msg, size_t msz)
{
    int have_d = 0, have_s = 0, have_o = 0;
    if (js_lit(j, '{')) return js_fail(j, "tensor entry is not an object");
    if (!js_lit(j, '}')) goto done;
    for (;;) {
        char *k = js_str(j);
        if (!k) return -1;
        if (js_lit(j, ':')) { free(k); return js_fail(j, "expected ':'"); }
        int rc = 0;
        if (!strcmp(k, "dtype") && !have_d) {
            char *d = js_str(j);
            rc = -1;
            if (d) {
                for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++)
                    if (!strcmp(d, dtypes[i].name)) t->dtype = dtypes[i].name, t->elsize = dtypes[i].size, rc = 0;
                if (rc) snprintf(msg, msz, "unknown dtype \"%.40s\"", d), js_fail(j, msg);
                free(d);
            }
            have_d = 1;
        } else if (!strcmp(k, "shape") && !have_s) {
            uint64_t v[VP_ST_MAXDIM];
            rc = js_uint_array(j, v, VP_ST_MAXDIM, &t->ndim);
            for (int i = 0; i < t->ndim; i++) t->shape[i] = (int64_t)v[i];
            have_s = 1;
        } else if (!strcmp(k, "data_offsets") && !have_o) {
            uint64_t v[2];
            int n;
            rc = js_uint_array(j, v, 2, &n);
            if (!rc && n != 2) rc = js_fail(j, "data_offsets needs two integers");
            t->begin = v[0], t->end = v[1];
            have_o = 1;
        } else {
            snprintf(msg, msz, "unexpected or repeated key \"%.40s\" in tensor entry", k);
            rc = js_fail(j, msg);
        }
        free(k);
        if (rc) return -1;
        if (!js_lit(j, '}')) break;
        if (js_lit(j, ',')) return js_fail(j, "expected ',' or '}' in tensor entry");
    }
done:
    if (!have_d || !have_s || !have_o) return js_fail(j, "tensor entry lacks dtype, shape or data_offsets");
    return 0;
}

static int parse_meta(struct js *j, vp_safetensors *st)
{
    if (js_lit(j, '{')) return js_fail(j, "__metadata__ is not an object");
    if (!js_lit(j, '}')) return 0;
    for (;;) {
        char *k = js_str(j), *v = NULL;
        if (!k) return -1;
        if (js_lit(j, ':')) {
            free(k);
            return js_fail(j, "expected ':'");
        }
        js_ws(j);
        if (j->p >= j->end || *j->p != '"') {
            free(k);
            return js_fail(j, "__metadata__ values must be strings");
        }
        if (!(v = js_str(j))) {
            free(k);
            return -1;
        }
        if (st->nm == st->mcap) {
            st->mcap = st->mcap ? 2 * st->mcap : 16;
            st->mkey = vp_realloc(st->mkey, (size_t)st->mcap * sizeof *st->mkey);
            st->mval = vp_realloc(st->mval, (size_t)st->mcap * sizeof *st->mval);
        }
        st->mkey[st->nm] = k, st->mval[st->nm++] = v;
        if (!js_lit(j, '}')) return 0;
        if (js_lit(j, ',')) return js_fail(j, "expected ',' or '}' in __metadata__");
    }
}

static int parse_header(struct js *j, vp_safetensors *st, char *msg, size_t msz)
{
    int have_meta = 0;
    if (js_lit(j, '{')) return js_fail(j, "header is not a JSON object");
    if (js_lit(j, '}')) {
        for (;;) {
            char *k = js_str(j);
            if (!k) return -1;
            if (js_lit(j, ':')) { free(k); return js_fail(j, "expected ':'"); }
            if (!strcmp(k, "__metadata__")) {
                free(k);
                if (have_meta) return js_fail(j, "two __metadata__ entries");
                have_meta = 1;
                if (parse_meta(j, st)) return -1;
            } else {
                if (st->nt == st->cap) {
                    st->cap = st->cap ? 2 * st->cap : 64;
                    st->t = vp_realloc(st->t, (size_t)st->cap * sizeof *st->t);
                }
                vp_st_tensor *t = &st->t[st->nt++];
                memset(t, 0, sizeof *t);
                t->name = k;
                if (parse_entry(j, t, msg, msz)) {
                    char why[200];
                    snprintf(why, sizeof why, "%s", j->err);
                    snprintf(msg, msz, "tensor \"%.60s\": %.120s", k, why);
                    j->err = msg;
                    return -1;
                }
            }
            if (!js_lit(j, '}')) break;
            if (js_lit(j, ',')) return js_fail(j, "expected ',' or '}' in header");
        }
    }
    js_ws(j);
    if (j->p != j->end) return js_fail(j, "trailing bytes after the header object");
    return 0;
}

/* ---- checks */

static int cmp_begin(const void *a, const void *b)
{
    const vp_st_tensor *x = *(vp_st_tensor *const *)a, *y = *(vp_st_tensor *const *)b;
    return (x->begin > y->begin) - (x->begin < y->begin);
}

static int check_layout(vp_safetensors *st)
{
    for (int i = 0; i < st->nt; i++) {
        vp_st_tensor *t = &st->t[i];
        for (int k = 0; k < i; k++)
            if (!strcmp(st->t[k].name, t->name)) return vp_error("%s: tensor \"%s\" appears twice", st->path, t->name);
        uint64_t n = (uint64_t)t->elsize;
        for (int d = 0; d < t->ndim; d++)
            if (vp_mul_overflow(n, (uint64_t)t->shape[d], &n)) return vp_error("%s: tensor \"%s\": shape overflows", st->path, t->name);
        if (t->end < t->begin) return vp_error("%s: tensor \"%s\": data_offsets [%llu, %llu] end before begin", st->path, t->name,
                                               (unsigned long long)t->begin, (unsigned long long)t->end);
        if (t->end > st->data_len)
            return vp_error("%s: tensor \"%s\": data_offsets [%llu, %llu] out of range (data section is %llu bytes)", st->path,
                            t->name, (unsigned long long)t->begin, (unsigned long long)t->end, (unsigned long long)st->data_len);
        if (t->end - t->begin != n)
            return vp_error("%s: tensor \"%s\": %s shape needs %llu bytes, data_offsets give %llu", st->path, t->name, t->dtype,
                            (unsigned long long)n, (unsigned long long)(t->end - t->begin));
    }
    vp_st_tensor **by = vp_malloc((size_t)(st->nt ? st->nt : 1) * sizeof *by);
    for (int i = 0; i < st->nt; i++) by[i] = &st->t[i];
    qsort(by, (size_t)st->nt, sizeof *by, cmp_begin);
    uint64_t at = 0;
    int rc = 0;
    for (int i = 0; i < st->nt && !rc; i++) {
        if (by[i]->begin < at)
            rc = vp_error("%s: tensor \"%s\" overlaps tensor \"%s\" (data_offsets)", st->path, by[i]->name, by[i - 1]->name);
        else if (by[i]->begin > at)
            rc = vp_error("%s: %llu unclaimed bytes before tensor \"%s\" (data_offsets)", st->path,
                          (unsigned long long)(by[i]->begin - at), by[i]->name);
        at = by[i]->end;
    }
    if (!rc && at != st->data_len)
        rc = vp_error("%s: %llu bytes after the last tensor are unclaimed (truncated header or extra data)", st->path,
                      (unsigned long long)(st->data_len - at));
    free(by);
    return rc;
}

vp_safetensors *vp_st_open(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return vp_error("%s: cannot open: %s", path, strerror(errno)), NULL;
    struct stat sb;
    if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
        close(fd);
        return vp_error("%s: not a regular file", path), NULL;
    }
    vp_safetensors *st = vp_calloc(1, sizeof *st);
    st->path = vp_strdup(path);
    st->map_len = (size_t)sb.st_size;
    if (st->map_len < 8) {
        vp_error("%s: %zu bytes: too short for a safetensors header", path, st->map_len);
        goto fail;
    }
    st->map = mmap(NULL, st->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (st->map == MAP_FAILED) {
        st->map = NULL;
        vp_error("%s: mmap: %s", path, strerror(errno));
        goto fail;
    }
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | st->map[i];
    if (hl > HEADER_MAX || hl > st->map_len - 8) {
        vp_error("%s: bad header: length %llu does not fit the %zu-byte file (or exceeds 100 MiB)", path, (unsigned long long)hl,
                 st->map_len);
        goto fail;
    }
    if (hl < 2 || st->map[8] != '{') {
        vp_error("%s: bad header: does not start with '{' (not a safetensors file?)", path);
        goto fail;
    }
    char msg[200];
    struct js j = {(const char *)st->map + 8, (const char *)st->map + 8 + hl, NULL};
    if (parse_header(&j, st, msg, sizeof msg)) {
        vp_error("%s: bad header at byte %lld: %s", path, (long long)(j.p - (const char *)st->map), j.err);
        goto fail;
    }
    st->data = st->map + 8 + hl;
    st->data_len = st->map_len - 8 - hl;
    if (check_layout(st)) goto fail;
    close(fd);
    return st;
fail:
    close(fd);
    vp_st_close(&st);
    return NULL;
}

void vp_st_close(vp_safetensors **pst)
{
    vp_safetensors *st = pst ? *pst : NULL;
    if (!st) return;
    if (st->map) munmap(st->map, st->map_len);
    for (int i = 0; i < st->nt; i++) free((char *)st->t[i].name);
    for (int i = 0; i < st->nm; i++) free(st->mkey[i]), free(st->mval[i]);
    free(st->t), free(st->mkey), free(st->mval), free(st->path), free(st);
    *pst = NULL;
}

int vp_st_count(const vp_safetensors *st) { return st->nt; }
const vp_st_tensor *vp_st_at(const vp_safetensors *st, int i) { return i >= 0 && i < st->nt ? &st->t[i] : NULL; }

const vp_st_tensor *vp_st_find(const vp_safetensors *st, const char *name)
{
    for (int i = 0; i < st->nt; i++)
        if (!strcmp(st->t[i].name, name)) return &st->t[i];
    return NULL;
}

const char *vp_st_meta(const vp_safetensors *st, const char *key)
{
    for (int i = 0; i < st->nm; i++)
        if (!strcmp(st->mkey[i], key)) return st->mval[i];
    return NULL;
}

int vp_st_meta_count(const vp_safetensors *st) { return st->nm; }
void vp_st_meta_at(const vp_safetensors *st, int i, const char **key, const char **value)
{
    *key = i >= 0 && i < st->nm ? st->mkey[i] : NULL;
    *value = i >= 0 && i < st->nm ? st->mval[i] : NULL;
}

float vp_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31, m = h & 1023, bits;
    if (e == 31) bits = sign | 0x7F800000u | m << 13; /* inf, NaN (payload kept) */
    else if (e) bits = sign | (e + 112) << 23 | m << 13;
    else if (!m) bits = sign;
    else { /* subnormal: normalise */
        e = 113;
        while (!(m & 1024)) m <<= 1, e--;
        bits = sign | e << 23 | (m & 1023) << 13;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

float vp_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

vp_tensor *vp_st_load(const vp_safetensors *st, const char *name)
{
    const vp_st_tensor *t = vp_st_find(st, name);
    if (!t) return vp_error("%s: tensor \"%s\" missing", st->path, name), NULL;
    if (strcmp(t->dtype, "F32") && strcmp(t->dtype, "F16") && strcmp(t->dtype, "BF16"))
        return vp_error("%s: tensor \"%s\": dtype %s not supported (F32, F16, BF16)", st->path, name, t->dtype), NULL;
    if (t->ndim > VP_NN_MAXDIM)
        return vp_error("%s: tensor \"%s\": %d dimensions (at most %d)", st->path, name, t->ndim, VP_NN_MAXDIM), NULL;
    vp_tensor *out = vp_tensor_new(t->ndim, t->shape);
    const unsigned char *src = st->data + t->begin;
    int64_t n = vp_tensor_numel(out);
    /* little-endian bytes, possibly unaligned: assemble each value */
    for (int64_t i = 0; i < n; i++) {
        if (t->elsize == 4) {
            uint32_t b = (uint32_t)src[4 * i] | (uint32_t)src[4 * i + 1] << 8 | (uint32_t)src[4 * i + 2] << 16 | (uint32_t)src[4 * i + 3] << 24;
            memcpy(&out->data[i], &b, 4);
        } else {
            uint16_t b = (uint16_t)(src[2 * i] | src[2 * i + 1] << 8);
            out->data[i] = t->dtype[0] == 'B' ? vp_bf16_to_f32(b) : vp_f16_to_f32(b);
        }
    }
    return out;
}

vp_tensor *vp_st_load_shape(const vp_safetensors *st, const char *name, int ndim, const int64_t *shape)
{
    vp_tensor *t = vp_st_load(st, name);
    if (!t) return NULL;
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
    if (!ok) {
        char got[96], want[160];
        size_t k = 0;
        k += (size_t)snprintf(want + k, sizeof want - k, "(");
        for (int i = 0; i < ndim && k < sizeof want; i++) k += (size_t)snprintf(want + k, sizeof want - k, "%s%lld", i ? "," : "", (long long)shape[i]);
        if (k < sizeof want) snprintf(want + k, sizeof want - k, ")");
        vp_error("%s: tensor \"%s\": shape %s, expected %s", st->path, name, vp_tensor_shape_str(t, got, sizeof got), want);
        vp_tensor_free(&t);
    }
    return t;
}
