/* frame_decode.c - msgpack values of a frame: volume maps and key/value maps, read token by token
 * with bounded allocation, and the error messages that name input, case, volume and field
 * (see frame_int.h, frame.h and docs/FORMAT.md). */
#include "frame_int.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROGRESSIVE_STEP ((uint64_t)64 << 20)

int vp_frame_fail(struct rctx *r, int code, const char *why)
{
    char where[VP_MAX_NAME * 2 + 64] = "";
    if (r->vol && r->field) snprintf(where, sizeof where, "volume '%s': field '%s': ", r->vol, r->field);
    else if (r->vol) snprintf(where, sizeof where, "volume '%s': ", r->vol);
    else if (r->field) snprintf(where, sizeof where, "field '%s': ", r->field);
    if (r->c && r->c->id[0])
        vp_error("%s: case '%s': %s%s", vp_in_name(r->in), r->c->id, where, why);
    else
        vp_error("%s: frame %ld: %s%s", vp_in_name(r->in), r->frame_no, where, why);
    return -code;
}

/* A read that fails mid-frame is a truncated frame, unless the source reported an I/O error. */
int vp_frame_fail_read(struct rctx *r, const char *why)
{
    if (!why || !strcmp(why, "unexpected end of input")) return vp_frame_fail(r, VP_ERR_DATA, "truncated frame: unexpected end of input");
    return vp_frame_fail(r, strstr(why, "read failed") ? VP_ERR_RUNTIME : VP_ERR_DATA, why);
}

int vp_frame_tok(struct rctx *r, struct mp_tok *t)
{
    const char *why = NULL;
    if (mp_read_tok(r->in, t, &why)) return vp_frame_fail_read(r, why);
    return 0;
}

int vp_frame_key(struct rctx *r, char **out)
{
    struct mp_tok t;
    const char *why = NULL;
    int rc = vp_frame_tok(r, &t);
    if (rc) return rc;
    if (t.kind != MP_STR) return vp_frame_fail(r, VP_ERR_DATA, "map key is not a string");
    if (mp_read_str(r->in, &t, VP_MAX_NAME, out, &why)) return vp_frame_fail_read(r, why);
    return 0;
}

/* Read n payload bytes to buf+*used, growing *buf. Never allocates more than the input can hold:
 * with a known remaining size (file, message) the length is checked first; on a pipe the buffer
 * grows in steps as bytes actually arrive. */
int vp_frame_read_payload(struct rctx *r, unsigned char **buf, uint64_t *cap, uint64_t *used, uint64_t n)
{
    uint64_t rem = vp_in_remaining(r->in);
    if (rem != VP_UNKNOWN_SIZE && n > rem) {
        char why[160];
        snprintf(why, sizeof why, "truncated frame: declared payload of %llu bytes runs past the end of the input (%llu bytes left)",
                 (unsigned long long)n, (unsigned long long)rem);
        return vp_frame_fail(r, VP_ERR_DATA, why);
    }
    if (n > VP_MAX_VOL_BYTES - *used) return vp_frame_fail(r, VP_ERR_DATA, "payload larger than the 1 TiB limit");
    if (rem != VP_UNKNOWN_SIZE && *cap < *used + n) {
        *buf = vp_realloc(*buf, (size_t)(*used + n));
        *cap = *used + n;
    }
    while (n) {
        if (*cap == *used) {
            uint64_t grow = *cap < PROGRESSIVE_STEP ? PROGRESSIVE_STEP : *cap;
            if (grow > n) grow = n;
            *buf = vp_realloc(*buf, (size_t)(*cap + grow));
            *cap += grow;
        }
        uint64_t k = *cap - *used < n ? *cap - *used : n;
        if (vp_in_read(r->in, *buf + *used, (size_t)k)) return vp_frame_fail_read(r, vp_in_errmsg(r->in));
        *used += k;
        n -= k;
    }
    return 0;
}

static int spacing_ok(const double aff[16])
{
    for (int c = 0; c < 3; c++) {
        double s = 0;
        for (int i = 0; i < 3; i++) s += aff[i * 4 + c] * aff[i * 4 + c];
        if (!(s > 0)) return 0;
    }
    return 1;
}

int vp_frame_mismatch(struct rctx *r, uint64_t got, const uint64_t dims[4], int dtype, uint64_t expect)
{
    char why[256];
    r->field = "data";
    snprintf(why, sizeof why, "payload is %llu bytes but dims %llux%llux%llux%llu of %s need %llu",
             (unsigned long long)got, (unsigned long long)dims[0], (unsigned long long)dims[1],
             (unsigned long long)dims[2], (unsigned long long)dims[3], vp_dtype_name((enum vp_dtype)dtype),
             (unsigned long long)expect);
    return vp_frame_fail(r, VP_ERR_DATA, why);
}

/* Read one VOL map. With pend != NULL and "data" the last key after dims, dtype and affine (the
 * order writers use), stop at the payload: *out is a header-only volume (data NULL) and *pend
 * describes the payload left in the stream. Otherwise the payload is read into memory. */
int vp_frame_read_vol(struct rctx *r, vp_vol **out, struct pend *pend)
{
    struct mp_tok t;
    int rc = vp_frame_tok(r, &t);
    if (rc) return rc;
    if (t.kind != MP_MAP) return vp_frame_fail(r, VP_ERR_DATA, "volume is not a map");
    if (t.u > 64) return vp_frame_fail(r, VP_ERR_DATA, "volume map has too many keys");
    uint64_t dims[4] = {0, 0, 0, 1};
    int ndims = 0, dtype = -1, have_affine = 0;
    double aff[16];
    unsigned char *data = NULL;
    uint64_t cap = 0, used = 0, expect = 0;
    int have_data = 0, known = 0;
    uint64_t nkeys = t.u;
    for (uint64_t k = 0; k < nkeys; k++) {
        char *name;
        r->field = NULL;
        if ((rc = vp_frame_key(r, &name))) goto out;
        char namebuf[VP_MAX_NAME + 1];
        snprintf(namebuf, sizeof namebuf, "%s", name);
        free(name);
        r->field = namebuf;
        if ((rc = vp_frame_tok(r, &t))) goto out;
        if (!strcmp(namebuf, "dims")) {
            if (t.kind != MP_ARRAY || (t.u != 3 && t.u != 4)) { rc = vp_frame_fail(r, VP_ERR_DATA, "must be an array of 3 or 4 sizes"); goto out; }
            ndims = (int)t.u;
            for (int i = 0; i < ndims; i++) {
                struct mp_tok d;
                if ((rc = vp_frame_tok(r, &d))) goto out;
                if (d.kind != MP_UINT || d.u == 0) { rc = vp_frame_fail(r, VP_ERR_DATA, "sizes must be positive integers"); goto out; }
                if (d.u > (i == 3 ? VP_MAX_CHANNELS : VP_MAX_DIM)) { rc = vp_frame_fail(r, VP_ERR_DATA, "size beyond the limit (2^20 per axis, 4096 channels)"); goto out; }
                dims[i] = d.u;
            }
        } else if (!strcmp(namebuf, "dtype")) {
            char *s;
            const char *why = NULL;
            if (t.kind != MP_STR) { rc = vp_frame_fail(r, VP_ERR_DATA, "must be a string"); goto out; }
            if (mp_read_str(r->in, &t, 16, &s, &why)) { rc = vp_frame_fail_read(r, why); goto out; }
            dtype = vp_dtype_from_name(s, strlen(s));
            if (dtype < 0) {
                char why2[96];
                snprintf(why2, sizeof why2, "unknown dtype '%s' (u8, i16, u16, i32, f16, f32)", s);
                free(s);
                rc = vp_frame_fail(r, VP_ERR_DATA, why2);
                goto out;
            }
            free(s);
        } else if (!strcmp(namebuf, "affine")) {
            if (t.kind != MP_ARRAY || t.u != 16) { rc = vp_frame_fail(r, VP_ERR_DATA, "must be an array of 16 numbers"); goto out; }
            for (int i = 0; i < 16; i++) {
                struct mp_tok d;
                if ((rc = vp_frame_tok(r, &d))) goto out;
                if (mp_tok_number(&d, &aff[i])) { rc = vp_frame_fail(r, VP_ERR_DATA, "must be an array of 16 numbers"); goto out; }
                if (!isfinite(aff[i])) { rc = vp_frame_fail(r, VP_ERR_DATA, "contains a non-finite value"); goto out; }
            }
            have_affine = 1;
        } else if (!strcmp(namebuf, "data")) {
            if (have_data) { rc = vp_frame_fail(r, VP_ERR_DATA, "given twice"); goto out; }
            have_data = 1;
            known = ndims && dtype >= 0;
            if (known && vp_vol_nbytes(dims, (enum vp_dtype)dtype, &expect)) { r->field = "dims"; rc = vp_frame_fail(r, VP_ERR_DATA, "dims x dtype size overflows or exceeds the 1 TiB limit"); goto out; }
            if (pend && known && have_affine && k == nkeys - 1 && (t.kind == MP_BIN || t.kind == MP_ARRAY)) {
                uint64_t rem = vp_in_remaining(r->in);
                if (t.kind == MP_BIN && t.u != expect) goto size_mismatch_bin;
                if (t.kind == MP_ARRAY && t.u > VP_MAX_CHUNKS) { rc = vp_frame_fail(r, VP_ERR_DATA, "too many chunks"); goto out; }
                if (rem != VP_UNKNOWN_SIZE && expect > rem) {
                    char why[160];
                    snprintf(why, sizeof why, "truncated frame: declared payload of %llu bytes runs past the end of the input (%llu bytes left)",
                             (unsigned long long)expect, (unsigned long long)rem);
                    rc = vp_frame_fail(r, VP_ERR_DATA, why);
                    goto out;
                }
                if (!spacing_ok(aff)) { r->field = "affine"; rc = vp_frame_fail(r, VP_ERR_DATA, "zero voxel spacing (degenerate affine)"); goto out; }
                *pend = (struct pend){expect, t.kind == MP_BIN ? t.u : 0, t.kind == MP_ARRAY ? t.u : 0, expect};
                *out = vp_vol_wrap(dims, (enum vp_dtype)dtype, aff, NULL, 0);
                (*out)->has_channels = ndims == 4;
                r->field = NULL;
                return 0;
            }
            if (t.kind == MP_BIN) {
                if (known && t.u != expect) goto size_mismatch_bin;
                if ((rc = vp_frame_read_payload(r, &data, &cap, &used, t.u))) goto out;
            } else if (t.kind == MP_ARRAY) {
                if (t.u > VP_MAX_CHUNKS) { rc = vp_frame_fail(r, VP_ERR_DATA, "too many chunks"); goto out; }
                uint64_t nch = t.u;
                for (uint64_t i = 0; i < nch; i++) {
                    struct mp_tok b;
                    if ((rc = vp_frame_tok(r, &b))) goto out;
                    if (b.kind != MP_BIN) { rc = vp_frame_fail(r, VP_ERR_DATA, "chunks must be bin values"); goto out; }
                    if (known && b.u > expect - used) { t.u = used + b.u; goto size_mismatch_bin; }
                    if ((rc = vp_frame_read_payload(r, &data, &cap, &used, b.u))) goto out;
                }
            } else { rc = vp_frame_fail(r, VP_ERR_DATA, "must be a bin or an array of bins"); goto out; }
        } else { /* unknown volume key: skip (forward compatible) */
            const char *why = NULL;
            if (mp_finish_value(r->in, &t, VP_MAX_DEPTH, NULL, &why)) { rc = vp_frame_fail_read(r, why); goto out; }
        }
    }
    r->field = NULL;
    if (!ndims) { r->field = "dims"; rc = vp_frame_fail(r, VP_ERR_DATA, "missing"); goto out; }
    if (dtype < 0) { r->field = "dtype"; rc = vp_frame_fail(r, VP_ERR_DATA, "missing"); goto out; }
    if (!have_affine) { r->field = "affine"; rc = vp_frame_fail(r, VP_ERR_DATA, "missing"); goto out; }
    if (!have_data) { r->field = "data"; rc = vp_frame_fail(r, VP_ERR_DATA, "missing"); goto out; }
    if (vp_vol_nbytes(dims, (enum vp_dtype)dtype, &expect)) { r->field = "dims"; rc = vp_frame_fail(r, VP_ERR_DATA, "dims x dtype size overflows or exceeds the 1 TiB limit"); goto out; }
    if (used != expect) { t.u = used; goto size_mismatch_bin; }
    if (!spacing_ok(aff)) { r->field = "affine"; rc = vp_frame_fail(r, VP_ERR_DATA, "zero voxel spacing (degenerate affine)"); goto out; }
    if (!data) data = vp_malloc(1);
    *out = vp_vol_wrap(dims, (enum vp_dtype)dtype, aff, data, 0);
    (*out)->has_channels = ndims == 4;
    r->field = NULL;
    return 0;

size_mismatch_bin:
    rc = vp_frame_mismatch(r, t.u, dims, dtype, expect);
out:
    free(data);
    return rc;
}

int vp_frame_read_kvs(struct rctx *r, vp_kv **kvs, int *n, size_t *budget)
{
    struct mp_tok t;
    int rc = vp_frame_tok(r, &t);
    if (rc) return rc;
    if (t.kind != MP_MAP) return vp_frame_fail(r, VP_ERR_DATA, "must be a map");
    if (t.u > VP_MAX_KEYS) return vp_frame_fail(r, VP_ERR_DATA, "map has too many keys");
    uint64_t nk = t.u;
    for (uint64_t i = 0; i < nk; i++) {
        char *k;
        if ((rc = vp_frame_key(r, &k))) return rc;
        struct mp_buf b = {NULL, 0, 0, *budget};
        const char *why = NULL;
        struct mp_tok v;
        if ((rc = vp_frame_tok(r, &v))) { free(k); return rc; }
        if (mp_finish_value(r->in, &v, VP_MAX_DEPTH, &b, &why)) {
            free(k);
            free(b.p);
            return !strcmp(why, "value larger than the allowed size") ? vp_frame_fail(r, VP_ERR_DATA, "meta larger than 64 MiB")
                                                                     : vp_frame_fail_read(r, why);
        }
        *budget -= b.len;
        *kvs = vp_realloc(*kvs, (size_t)(*n + 1) * sizeof **kvs);
        (*kvs)[(*n)++] = (vp_kv){k, b.p, b.len};
    }
    return 0;
}
