/* mpread.c - see mpread.h. Encoding per the msgpack spec (github.com/msgpack/msgpack/spec.md). */
#include "mpread.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

static uint64_t be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = (v << 8) | p[i];
    return v;
}

static int rd(vp_in *in, struct mp_tok *t, int n, const char **why)
{
    if (vp_in_read(in, t->raw + t->rawlen, (size_t)n)) { *why = vp_in_errmsg(in); return -1; }
    t->rawlen += (size_t)n;
    return 0;
}

int mp_read_tok(vp_in *in, struct mp_tok *t, const char **why)
{
    memset(t, 0, sizeof *t);
    if (rd(in, t, 1, why)) return -1;
    unsigned b = t->raw[0];
    const unsigned char *x = t->raw + 1;
    if (b <= 0x7f) { t->kind = MP_UINT; t->u = b; return 0; }
    if (b >= 0xe0) { t->kind = MP_INT; t->i = (int8_t)b; return 0; }
    if ((b & 0xf0) == 0x80) { t->kind = MP_MAP; t->u = b & 0x0f; return 0; }
    if ((b & 0xf0) == 0x90) { t->kind = MP_ARRAY; t->u = b & 0x0f; return 0; }
    if ((b & 0xe0) == 0xa0) { t->kind = MP_STR; t->u = b & 0x1f; return 0; }
    int n;
    switch (b) {
    case 0xc0: t->kind = MP_NIL; return 0;
    case 0xc2: case 0xc3: t->kind = MP_BOOL; t->u = b == 0xc3; return 0;
    case 0xc4: case 0xc5: case 0xc6:
        n = 1 << (b - 0xc4);
        if (rd(in, t, n, why)) return -1;
        t->kind = MP_BIN; t->u = be(x, n); return 0;
    case 0xc7: case 0xc8: case 0xc9:
        n = 1 << (b - 0xc7);
        if (rd(in, t, n + 1, why)) return -1;
        t->kind = MP_EXT; t->u = be(x, n); return 0;
    case 0xca: {
        if (rd(in, t, 4, why)) return -1;
        uint32_t v = (uint32_t)be(x, 4);
        float f;
        memcpy(&f, &v, 4);
        t->kind = MP_FLOAT; t->f = f; return 0;
    }
    case 0xcb: {
        if (rd(in, t, 8, why)) return -1;
        uint64_t v = be(x, 8);
        double f;
        memcpy(&f, &v, 8);
        t->kind = MP_FLOAT; t->f = f; return 0;
    }
    case 0xcc: case 0xcd: case 0xce: case 0xcf:
        n = 1 << (b - 0xcc);
        if (rd(in, t, n, why)) return -1;
        t->kind = MP_UINT; t->u = be(x, n); return 0;
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
        n = 1 << (b - 0xd0);
        if (rd(in, t, n, why)) return -1;
        uint64_t v = be(x, n);
        int64_t s = n == 8 ? (int64_t)v : (int64_t)(v ^ (1ull << (8 * n - 1))) - (int64_t)(1ull << (8 * n - 1));
        if (s >= 0) { t->kind = MP_UINT; t->u = (uint64_t)s; }
        else { t->kind = MP_INT; t->i = s; }
        return 0;
    }
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
        if (rd(in, t, 1, why)) return -1;
        t->kind = MP_EXT; t->u = 1u << (b - 0xd4); return 0;
    case 0xd9: case 0xda: case 0xdb:
        n = 1 << (b - 0xd9);
        if (rd(in, t, n, why)) return -1;
        t->kind = MP_STR; t->u = be(x, n); return 0;
    case 0xdc: case 0xdd:
        n = 2 << (b - 0xdc);
        if (rd(in, t, n, why)) return -1;
        t->kind = MP_ARRAY; t->u = be(x, n); return 0;
    case 0xde: case 0xdf:
        n = 2 << (b - 0xde);
        if (rd(in, t, n, why)) return -1;
        t->kind = MP_MAP; t->u = be(x, n); return 0;
    default:
        *why = "invalid msgpack byte 0xc1";
        return -1;
    }
}

int mp_buf_append(struct mp_buf *b, const void *p, size_t n)
{
    if (n > b->max - b->len) return -1;
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) cap *= 2;
        if (cap > b->max) cap = b->max;
        b->p = vp_realloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

/* Copy n body bytes from the stream into buf (or discard them), in bounded steps so a lying length
 * never causes a large allocation. */
static int body(vp_in *in, uint64_t n, struct mp_buf *buf, const char **why)
{
    if (vp_in_remaining(in) != VP_UNKNOWN_SIZE && n > vp_in_remaining(in)) {
        *why = "truncated frame: declared length runs past the end of the input";
        return -1;
    }
    unsigned char tmp[8192];
    while (n) {
        size_t k = n < sizeof tmp ? (size_t)n : sizeof tmp;
        if (vp_in_read(in, tmp, k)) { *why = vp_in_errmsg(in); return -1; }
        if (buf && mp_buf_append(buf, tmp, k)) { *why = "value larger than the allowed size"; return -1; }
        n -= k;
    }
    return 0;
}

int mp_finish_value(vp_in *in, const struct mp_tok *t, int depth, struct mp_buf *buf, const char **why)
{
    if (buf && mp_buf_append(buf, t->raw, t->rawlen)) { *why = "value larger than the allowed size"; return -1; }
    switch (t->kind) {
    case MP_STR: case MP_BIN: return body(in, t->u, buf, why);
    case MP_EXT: return body(in, t->u, buf, why);
    case MP_ARRAY: case MP_MAP: {
        if (depth <= 0) { *why = "values nested too deeply"; return -1; }
        uint64_t n = t->kind == MP_MAP ? t->u * 2 : t->u; /* u <= 2^32, no overflow */
        for (uint64_t i = 0; i < n; i++) {
            struct mp_tok c;
            if (mp_read_tok(in, &c, why) || mp_finish_value(in, &c, depth - 1, buf, why)) return -1;
        }
        return 0;
    }
    default: return 0;
    }
}

int mp_read_str(vp_in *in, const struct mp_tok *t, size_t maxlen, char **out, const char **why)
{
    if (t->kind != MP_STR) { *why = "expected a string"; return -1; }
    if (t->u > maxlen) { *why = "string too long"; return -1; }
    char *s = vp_malloc((size_t)t->u + 1);
    if (vp_in_read(in, s, (size_t)t->u)) { free(s); *why = vp_in_errmsg(in); return -1; }
    s[t->u] = 0;
    if (strlen(s) != t->u) { free(s); *why = "string contains a NUL byte"; return -1; }
    *out = s;
    return 0;
}

int mp_tok_number(const struct mp_tok *t, double *out)
{
    switch (t->kind) {
    case MP_UINT: *out = (double)t->u; return 0;
    case MP_INT: *out = (double)t->i; return 0;
    case MP_FLOAT: *out = t->f; return 0;
    default: return -1;
    }
}
