/* frame.c - see frame.h and docs/FORMAT.md */
#include "frame.h"
#include "cli.h"
#include "mpread.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "voxpipe payloads are little-endian; big-endian hosts need byte swapping here"
#endif

#define PROGRESSIVE_STEP ((uint64_t)64 << 20)

uint64_t vp_frame_bin_limit = 0xffffffffu;
uint64_t vp_frame_chunk_bytes = VP_CHUNK_BYTES;

/* ---- case objects ---- */

vp_case *vp_case_new(const char *id)
{
    vp_case *c = vp_calloc(1, sizeof *c);
    c->id = vp_strdup(id ? id : "");
    return c;
}

static void free_kvs(vp_kv *kv, int n)
{
    for (int i = 0; i < n; i++) { free(kv[i].key); free(kv[i].raw); }
    free(kv);
}

void vp_case_free(vp_case **pc)
{
    vp_case *c = *pc;
    if (!c) return;
    for (int i = 0; i < c->nvols; i++) { free(c->vol_names[i]); vp_vol_free(&c->vols[i]); }
    free_kvs(c->meta, c->nmeta);
    free_kvs(c->extra, c->nextra);
    free(c->id);
    free(c);
    *pc = NULL;
}

vp_vol *vp_case_vol(const vp_case *c, const char *name)
{
    for (int i = 0; i < c->nvols; i++)
        if (!strcmp(c->vol_names[i], name)) return c->vols[i];
    return NULL;
}

void vp_case_add_vol(vp_case *c, const char *name, vp_vol *v)
{
    for (int i = 0; i < c->nvols; i++)
        if (!strcmp(c->vol_names[i], name)) { vp_vol_free(&c->vols[i]); c->vols[i] = v; return; }
    if (c->nvols >= VP_MAX_VOLS) vp_die(VP_ERR_DATA, "case '%s': more than %d volumes", c->id, VP_MAX_VOLS);
    c->vol_names[c->nvols] = vp_strdup(name);
    c->vols[c->nvols++] = v;
}

vp_vol *vp_case_take_vol(vp_case *c, const char *name)
{
    for (int i = 0; i < c->nvols; i++)
        if (!strcmp(c->vol_names[i], name)) {
            vp_vol *v = c->vols[i];
            free(c->vol_names[i]);
            memmove(&c->vols[i], &c->vols[i + 1], (size_t)(c->nvols - i - 1) * sizeof c->vols[0]);
            memmove(&c->vol_names[i], &c->vol_names[i + 1], (size_t)(c->nvols - i - 1) * sizeof c->vol_names[0]);
            c->nvols--;
            return v;
        }
    return NULL;
}

const vp_kv *vp_case_meta(const vp_case *c, const char *key)
{
    for (int i = 0; i < c->nmeta; i++)
        if (!strcmp(c->meta[i].key, key)) return &c->meta[i];
    return NULL;
}

void vp_case_meta_set(vp_case *c, const char *key, const void *raw, size_t len)
{
    unsigned char *copy = vp_malloc(len);
    memcpy(copy, raw, len);
    for (int i = 0; i < c->nmeta; i++)
        if (!strcmp(c->meta[i].key, key)) { free(c->meta[i].raw); c->meta[i].raw = copy; c->meta[i].len = len; return; }
    c->meta = vp_realloc(c->meta, (size_t)(c->nmeta + 1) * sizeof *c->meta);
    c->meta[c->nmeta++] = (vp_kv){vp_strdup(key), copy, len};
}

void vp_case_meta_remove(vp_case *c, const char *key)
{
    for (int i = 0; i < c->nmeta; i++)
        if (!strcmp(c->meta[i].key, key)) {
            free(c->meta[i].key);
            free(c->meta[i].raw);
            memmove(&c->meta[i], &c->meta[i + 1], (size_t)(c->nmeta - i - 1) * sizeof *c->meta);
            c->nmeta--;
            return;
        }
}

void vp_case_meta_set_sbuf(vp_case *c, const char *key, const msgpack_sbuffer *sb)
{
    vp_case_meta_set(c, key, sb->data, sb->size);
}

int vp_case_meta_parse(const vp_case *c, const char *key, msgpack_unpacked *u)
{
    const vp_kv *kv = vp_case_meta(c, key);
    if (!kv) return -1;
    size_t off = 0;
    return msgpack_unpack_next(u, (const char *)kv->raw, kv->len, &off) == MSGPACK_UNPACK_SUCCESS ? 0 : -1;
}

void vp_pack_cstr(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

/* Split a raw msgpack array into its element count and the offset of its first element. */
static int raw_array_header(const unsigned char *p, size_t len, uint32_t *count, size_t *hdr)
{
    if (!len) return -1;
    if ((p[0] & 0xf0) == 0x90) { *count = p[0] & 0x0f; *hdr = 1; return 0; }
    if (p[0] == 0xdc && len >= 3) { *count = (uint32_t)p[1] << 8 | p[2]; *hdr = 3; return 0; }
    if (p[0] == 0xdd && len >= 5) { *count = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4]; *hdr = 5; return 0; }
    return -1;
}

void vp_case_add_provenance(vp_case *c, const char *program)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    const vp_kv *old = vp_case_meta(c, "provenance");
    uint32_t count = 0;
    size_t hdr = 0;
    if (old && raw_array_header(old->raw, old->len, &count, &hdr) == 0) {
        msgpack_pack_array(&pk, count + 1);
        msgpack_sbuffer_write(&sb, (const char *)old->raw + hdr, old->len - hdr);
    } else {
        if (old) vp_warn("case '%s': meta 'provenance' is not an array; replacing it", c->id);
        msgpack_pack_array(&pk, 1);
    }
    msgpack_pack_map(&pk, 3);
    vp_pack_cstr(&pk, "program");
    vp_pack_cstr(&pk, program);
    vp_pack_cstr(&pk, "version");
    vp_pack_cstr(&pk, VP_VERSION);
    vp_pack_cstr(&pk, "args");
    int argc = vp_cli_argc();
    char **argv = vp_cli_argv();
    msgpack_pack_array(&pk, (size_t)(argc > 0 ? argc : 0));
    for (int i = 0; i < argc; i++) vp_pack_cstr(&pk, argv[i]);
    vp_case_meta_set_sbuf(c, "provenance", &sb);
    msgpack_sbuffer_destroy(&sb);
}

/* ---- reading ---- */

struct rctx {
    vp_in *in;
    vp_case *c;
    const char *vol;   /* volume being read, for messages */
    const char *field; /* field being read */
    long frame_no;
};

static int fail(struct rctx *r, int code, const char *why)
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
static int fail_read(struct rctx *r, const char *why)
{
    if (!why || !strcmp(why, "unexpected end of input")) return fail(r, VP_ERR_DATA, "truncated frame: unexpected end of input");
    return fail(r, strstr(why, "read failed") ? VP_ERR_RUNTIME : VP_ERR_DATA, why);
}

static int tok(struct rctx *r, struct mp_tok *t)
{
    const char *why = NULL;
    if (mp_read_tok(r->in, t, &why)) return fail_read(r, why);
    return 0;
}

static int key(struct rctx *r, char **out)
{
    struct mp_tok t;
    const char *why = NULL;
    int rc = tok(r, &t);
    if (rc) return rc;
    if (t.kind != MP_STR) return fail(r, VP_ERR_DATA, "map key is not a string");
    if (mp_read_str(r->in, &t, VP_MAX_NAME, out, &why)) return fail_read(r, why);
    return 0;
}

/* Read n payload bytes to buf+*used, growing *buf. Never allocates more than the input can hold:
 * with a known remaining size (file, message) the length is checked first; on a pipe the buffer
 * grows in steps as bytes actually arrive. */
static int read_payload(struct rctx *r, unsigned char **buf, uint64_t *cap, uint64_t *used, uint64_t n)
{
    uint64_t rem = vp_in_remaining(r->in);
    if (rem != VP_UNKNOWN_SIZE && n > rem) {
        char why[160];
        snprintf(why, sizeof why, "truncated frame: declared payload of %llu bytes runs past the end of the input (%llu bytes left)",
                 (unsigned long long)n, (unsigned long long)rem);
        return fail(r, VP_ERR_DATA, why);
    }
    if (n > VP_MAX_VOL_BYTES - *used) return fail(r, VP_ERR_DATA, "payload larger than the 1 TiB limit");
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
        if (vp_in_read(r->in, *buf + *used, (size_t)k)) return fail_read(r, vp_in_errmsg(r->in));
        *used += k;
        n -= k;
    }
    return 0;
}

/* A payload left in the stream for the caller to read piece by piece. */
struct pend {
    uint64_t left;        /* payload bytes not yet consumed */
    uint64_t chunk_left;  /* bytes left in the current bin */
    uint64_t chunks_left; /* bins still to come (array form) */
    uint64_t total;
};

static int spacing_ok(const double aff[16])
{
    for (int c = 0; c < 3; c++) {
        double s = 0;
        for (int i = 0; i < 3; i++) s += aff[i * 4 + c] * aff[i * 4 + c];
        if (!(s > 0)) return 0;
    }
    return 1;
}

static int mismatch(struct rctx *r, uint64_t got, const uint64_t dims[4], int dtype, uint64_t expect)
{
    char why[256];
    r->field = "data";
    snprintf(why, sizeof why, "payload is %llu bytes but dims %llux%llux%llux%llu of %s need %llu",
             (unsigned long long)got, (unsigned long long)dims[0], (unsigned long long)dims[1],
             (unsigned long long)dims[2], (unsigned long long)dims[3], vp_dtype_name((enum vp_dtype)dtype),
             (unsigned long long)expect);
    return fail(r, VP_ERR_DATA, why);
}

/* Read one VOL map. With pend != NULL and "data" the last key after dims, dtype and affine (the
 * order writers use), stop at the payload: *out is a header-only volume (data NULL) and *pend
 * describes the payload left in the stream. Otherwise the payload is read into memory. */
static int read_vol(struct rctx *r, vp_vol **out, struct pend *pend)
{
    struct mp_tok t;
    int rc = tok(r, &t);
    if (rc) return rc;
    if (t.kind != MP_MAP) return fail(r, VP_ERR_DATA, "volume is not a map");
    if (t.u > 64) return fail(r, VP_ERR_DATA, "volume map has too many keys");
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
        if ((rc = key(r, &name))) goto out;
        char namebuf[VP_MAX_NAME + 1];
        snprintf(namebuf, sizeof namebuf, "%s", name);
        free(name);
        r->field = namebuf;
        if ((rc = tok(r, &t))) goto out;
        if (!strcmp(namebuf, "dims")) {
            if (t.kind != MP_ARRAY || (t.u != 3 && t.u != 4)) { rc = fail(r, VP_ERR_DATA, "must be an array of 3 or 4 sizes"); goto out; }
            ndims = (int)t.u;
            for (int i = 0; i < ndims; i++) {
                struct mp_tok d;
                if ((rc = tok(r, &d))) goto out;
                if (d.kind != MP_UINT || d.u == 0) { rc = fail(r, VP_ERR_DATA, "sizes must be positive integers"); goto out; }
                if (d.u > (i == 3 ? VP_MAX_CHANNELS : VP_MAX_DIM)) { rc = fail(r, VP_ERR_DATA, "size beyond the limit (2^20 per axis, 4096 channels)"); goto out; }
                dims[i] = d.u;
            }
        } else if (!strcmp(namebuf, "dtype")) {
            char *s;
            const char *why = NULL;
            if (t.kind != MP_STR) { rc = fail(r, VP_ERR_DATA, "must be a string"); goto out; }
            if (mp_read_str(r->in, &t, 16, &s, &why)) { rc = fail_read(r, why); goto out; }
            dtype = vp_dtype_from_name(s, strlen(s));
            if (dtype < 0) {
                char why2[96];
                snprintf(why2, sizeof why2, "unknown dtype '%s' (u8, i16, u16, i32, f16, f32)", s);
                free(s);
                rc = fail(r, VP_ERR_DATA, why2);
                goto out;
            }
            free(s);
        } else if (!strcmp(namebuf, "affine")) {
            if (t.kind != MP_ARRAY || t.u != 16) { rc = fail(r, VP_ERR_DATA, "must be an array of 16 numbers"); goto out; }
            for (int i = 0; i < 16; i++) {
                struct mp_tok d;
                if ((rc = tok(r, &d))) goto out;
                if (mp_tok_number(&d, &aff[i])) { rc = fail(r, VP_ERR_DATA, "must be an array of 16 numbers"); goto out; }
                if (!isfinite(aff[i])) { rc = fail(r, VP_ERR_DATA, "contains a non-finite value"); goto out; }
            }
            have_affine = 1;
        } else if (!strcmp(namebuf, "data")) {
            if (have_data) { rc = fail(r, VP_ERR_DATA, "given twice"); goto out; }
            have_data = 1;
            known = ndims && dtype >= 0;
            if (known && vp_vol_nbytes(dims, (enum vp_dtype)dtype, &expect)) { r->field = "dims"; rc = fail(r, VP_ERR_DATA, "dims x dtype size overflows or exceeds the 1 TiB limit"); goto out; }
            if (pend && known && have_affine && k == nkeys - 1 && (t.kind == MP_BIN || t.kind == MP_ARRAY)) {
                uint64_t rem = vp_in_remaining(r->in);
                if (t.kind == MP_BIN && t.u != expect) goto size_mismatch_bin;
                if (t.kind == MP_ARRAY && t.u > VP_MAX_CHUNKS) { rc = fail(r, VP_ERR_DATA, "too many chunks"); goto out; }
                if (rem != VP_UNKNOWN_SIZE && expect > rem) {
                    char why[160];
                    snprintf(why, sizeof why, "truncated frame: declared payload of %llu bytes runs past the end of the input (%llu bytes left)",
                             (unsigned long long)expect, (unsigned long long)rem);
                    rc = fail(r, VP_ERR_DATA, why);
                    goto out;
                }
                if (!spacing_ok(aff)) { r->field = "affine"; rc = fail(r, VP_ERR_DATA, "zero voxel spacing (degenerate affine)"); goto out; }
                *pend = (struct pend){expect, t.kind == MP_BIN ? t.u : 0, t.kind == MP_ARRAY ? t.u : 0, expect};
                *out = vp_vol_wrap(dims, (enum vp_dtype)dtype, aff, NULL, 0);
                (*out)->has_channels = ndims == 4;
                r->field = NULL;
                return 0;
            }
            if (t.kind == MP_BIN) {
                if (known && t.u != expect) goto size_mismatch_bin;
                if ((rc = read_payload(r, &data, &cap, &used, t.u))) goto out;
            } else if (t.kind == MP_ARRAY) {
                if (t.u > VP_MAX_CHUNKS) { rc = fail(r, VP_ERR_DATA, "too many chunks"); goto out; }
                uint64_t nch = t.u;
                for (uint64_t i = 0; i < nch; i++) {
                    struct mp_tok b;
                    if ((rc = tok(r, &b))) goto out;
                    if (b.kind != MP_BIN) { rc = fail(r, VP_ERR_DATA, "chunks must be bin values"); goto out; }
                    if (known && b.u > expect - used) { t.u = used + b.u; goto size_mismatch_bin; }
                    if ((rc = read_payload(r, &data, &cap, &used, b.u))) goto out;
                }
            } else { rc = fail(r, VP_ERR_DATA, "must be a bin or an array of bins"); goto out; }
        } else { /* unknown volume key: skip (forward compatible) */
            const char *why = NULL;
            if (mp_finish_value(r->in, &t, VP_MAX_DEPTH, NULL, &why)) { rc = fail_read(r, why); goto out; }
        }
    }
    r->field = NULL;
    if (!ndims) { r->field = "dims"; rc = fail(r, VP_ERR_DATA, "missing"); goto out; }
    if (dtype < 0) { r->field = "dtype"; rc = fail(r, VP_ERR_DATA, "missing"); goto out; }
    if (!have_affine) { r->field = "affine"; rc = fail(r, VP_ERR_DATA, "missing"); goto out; }
    if (!have_data) { r->field = "data"; rc = fail(r, VP_ERR_DATA, "missing"); goto out; }
    if (vp_vol_nbytes(dims, (enum vp_dtype)dtype, &expect)) { r->field = "dims"; rc = fail(r, VP_ERR_DATA, "dims x dtype size overflows or exceeds the 1 TiB limit"); goto out; }
    if (used != expect) { t.u = used; goto size_mismatch_bin; }
    if (!spacing_ok(aff)) { r->field = "affine"; rc = fail(r, VP_ERR_DATA, "zero voxel spacing (degenerate affine)"); goto out; }
    if (!data) data = vp_malloc(1);
    *out = vp_vol_wrap(dims, (enum vp_dtype)dtype, aff, data, 0);
    (*out)->has_channels = ndims == 4;
    r->field = NULL;
    return 0;

size_mismatch_bin:
    rc = mismatch(r, t.u, dims, dtype, expect);
out:
    free(data);
    return rc;
}

static int read_kvs(struct rctx *r, vp_kv **kvs, int *n, size_t *budget)
{
    struct mp_tok t;
    int rc = tok(r, &t);
    if (rc) return rc;
    if (t.kind != MP_MAP) return fail(r, VP_ERR_DATA, "must be a map");
    if (t.u > VP_MAX_KEYS) return fail(r, VP_ERR_DATA, "map has too many keys");
    uint64_t nk = t.u;
    for (uint64_t i = 0; i < nk; i++) {
        char *k;
        if ((rc = key(r, &k))) return rc;
        struct mp_buf b = {NULL, 0, 0, *budget};
        const char *why = NULL;
        struct mp_tok v;
        if ((rc = tok(r, &v))) { free(k); return rc; }
        if (mp_finish_value(r->in, &v, VP_MAX_DEPTH, &b, &why)) {
            free(k);
            free(b.p);
            return !strcmp(why, "value larger than the allowed size") ? fail(r, VP_ERR_DATA, "meta larger than 64 MiB")
                                                                     : fail_read(r, why);
        }
        *budget -= b.len;
        *kvs = vp_realloc(*kvs, (size_t)(*n + 1) * sizeof **kvs);
        (*kvs)[(*n)++] = (vp_kv){k, b.p, b.len};
    }
    return 0;
}

struct vp_sreader {
    struct rctx r;
    vp_case *head;
    uint64_t vols_left;     /* streamed volumes not yet started */
    int nstream;            /* streamed volumes in all */
    char *names[VP_MAX_VOLS];
    int nnames;
    char *cur_name;
    vp_vol *cur;            /* header of the current volume (or a whole one read into memory) */
    int cur_mem;            /* cur holds its data: serve the payload from memory */
    uint64_t mem_off;
    struct pend p;
    unsigned char *bounce;
};

/* Read a frame up to its volumes. *sr is NULL when the frame holds no streamed volumes. */
static int read_head(vp_in *in, vp_case **out, vp_sreader **psr)
{
    static long frame_no;
    *out = NULL;
    *psr = NULL;
    int r0 = vp_in_begin_frame(in);
    if (r0 <= 0) return r0 == 0 ? 0 : -VP_ERR_RUNTIME;
    struct rctx r = {in, vp_case_new(NULL), NULL, NULL, ++frame_no};
    struct mp_tok t;
    int rc = tok(&r, &t), have_version = 0, have_id = 0, eos = 0;
    uint64_t stream_vols = 0;
    int streaming = 0;
    size_t budget = VP_MAX_META;
    if (rc) goto fail;
    if (t.kind != MP_MAP) { rc = fail(&r, VP_ERR_DATA, "top-level value is not a map (not a voxpipe stream?)"); goto fail; }
    if (t.u > VP_MAX_KEYS) { rc = fail(&r, VP_ERR_DATA, "top-level map has too many keys"); goto fail; }
    uint64_t nk = t.u;
    for (uint64_t i = 0; i < nk; i++) {
        char *k;
        r.field = NULL;
        if ((rc = key(&r, &k))) goto fail;
        if (!strcmp(k, "voxpipe")) {
            r.field = "voxpipe";
            free(k);
            if ((rc = tok(&r, &t))) goto fail;
            if (t.kind != MP_UINT) { rc = fail(&r, VP_ERR_DATA, "format version is not an integer"); goto fail; }
            if (t.u != VP_FORMAT_MAJOR) {
                char why[128];
                snprintf(why, sizeof why, "unsupported format version %llu (this program reads version %d)",
                         (unsigned long long)t.u, VP_FORMAT_MAJOR);
                rc = fail(&r, VP_ERR_DATA, why);
                goto fail;
            }
            have_version = 1;
        } else if (!strcmp(k, "id")) {
            r.field = "id";
            free(k);
            const char *why = NULL;
            char *id;
            if ((rc = tok(&r, &t))) goto fail;
            if (t.kind != MP_STR) { rc = fail(&r, VP_ERR_DATA, "must be a string"); goto fail; }
            if (mp_read_str(in, &t, VP_MAX_ID, &id, &why)) { rc = fail_read(&r, why); goto fail; }
            free(r.c->id);
            r.c->id = id;
            have_id = 1;
        } else if (!strcmp(k, "eos")) {
            r.field = "eos";
            free(k);
            if ((rc = tok(&r, &t))) goto fail;
            eos = t.kind == MP_BOOL && t.u;
        } else if (!strcmp(k, "meta")) {
            r.field = "meta";
            free(k);
            if ((rc = read_kvs(&r, &r.c->meta, &r.c->nmeta, &budget))) goto fail;
        } else if (!strcmp(k, "vols")) {
            free(k);
            r.field = "vols";
            if ((rc = tok(&r, &t))) goto fail;
            if (t.kind != MP_MAP) { rc = fail(&r, VP_ERR_DATA, "must be a map"); goto fail; }
            if (t.u > VP_MAX_VOLS) { rc = fail(&r, VP_ERR_DATA, "too many volumes"); goto fail; }
            uint64_t nv = t.u;
            if (i == nk - 1) { /* the last key, as writers put it: leave the volumes in the stream */
                stream_vols = nv;
                streaming = 1;
                break;
            }
            for (uint64_t v = 0; v < nv; v++) {
                char *name;
                r.field = "vols";
                if ((rc = key(&r, &name))) goto fail;
                if (vp_case_vol(r.c, name)) { free(name); rc = fail(&r, VP_ERR_DATA, "duplicate volume name"); goto fail; }
                r.vol = name;
                r.field = NULL;
                vp_vol *vol = NULL;
                rc = read_vol(&r, &vol, NULL);
                r.vol = NULL;
                if (rc) { free(name); goto fail; }
                r.c->vol_names[r.c->nvols] = name;
                r.c->vols[r.c->nvols++] = vol;
            }
        } else { /* unknown top-level key: keep it raw and pass it on */
            r.field = k;
            struct mp_buf b = {NULL, 0, 0, budget};
            const char *why = NULL;
            if ((rc = tok(&r, &t))) { free(k); goto fail; }
            if (mp_finish_value(in, &t, VP_MAX_DEPTH, &b, &why)) { free(b.p); rc = fail_read(&r, why); free(k); goto fail; }
            budget -= b.len;
            r.c->extra = vp_realloc(r.c->extra, (size_t)(r.c->nextra + 1) * sizeof *r.c->extra);
            r.c->extra[r.c->nextra++] = (vp_kv){k, b.p, b.len};
        }
    }
    r.field = NULL;
    if (!have_version) { r.field = "voxpipe"; rc = fail(&r, VP_ERR_DATA, "missing (not a voxpipe stream?)"); goto fail; }
    if (eos && !stream_vols) {
        if (vp_in_end_frame(in)) { rc = -VP_ERR_DATA; goto fail; }
        vp_case_free(&r.c);
        return 0;
    }
    if (!have_id || !r.c->id[0]) { r.field = "id"; rc = fail(&r, VP_ERR_DATA, "missing or empty"); goto fail; }
    if (!streaming && vp_in_end_frame(in)) { rc = -VP_ERR_DATA; goto fail; }
    vp_sreader *sr = vp_calloc(1, sizeof *sr);
    sr->r = r;
    sr->head = r.c;
    sr->vols_left = stream_vols;
    sr->nstream = (int)stream_vols;
    sr->r.field = NULL;
    sr->r.vol = NULL;
    sr->bounce = NULL;
    if (r.c->nvols + stream_vols > VP_MAX_VOLS) { rc = fail(&r, VP_ERR_DATA, "too many volumes"); free(sr); goto fail; }
    *psr = sr;
    *out = r.c;
    return 1;
fail:
    vp_case_free(&r.c);
    return rc;
}

int vp_case_begin(vp_in *in, vp_case **head, vp_sreader **sr)
{
    return read_head(in, head, sr);
}

int vp_sreader_pending(const vp_sreader *sr) { return sr ? sr->nstream : 0; }

/* Make sure the current bin has bytes (read the next chunk header if needed). */
static int piece(vp_sreader *sr)
{
    while (sr->p.chunk_left == 0 && sr->p.left > 0) {
        if (!sr->p.chunks_left)
            return mismatch(&sr->r, sr->p.total - sr->p.left, sr->cur->dims, sr->cur->dtype, sr->p.total);
        struct mp_tok b;
        int rc = tok(&sr->r, &b);
        if (rc) return rc;
        if (b.kind != MP_BIN) return fail(&sr->r, VP_ERR_DATA, "chunks must be bin values");
        if (b.u > sr->p.left)
            return mismatch(&sr->r, sr->p.total - sr->p.left + b.u, sr->cur->dims, sr->cur->dtype, sr->p.total);
        sr->p.chunk_left = b.u;
        sr->p.chunks_left--;
    }
    return 0;
}

/* After the last payload byte: any remaining chunks must be empty. */
static int finish_payload(vp_sreader *sr)
{
    while (sr->p.chunks_left) {
        struct mp_tok b;
        int rc = tok(&sr->r, &b);
        if (rc) return rc;
        if (b.kind != MP_BIN) return fail(&sr->r, VP_ERR_DATA, "chunks must be bin values");
        if (b.u) return mismatch(&sr->r, sr->p.total + b.u, sr->cur->dims, sr->cur->dtype, sr->p.total);
        sr->p.chunks_left--;
    }
    return 0;
}

uint64_t vp_sreader_left(const vp_sreader *sr) { return sr->cur ? sr->p.left : 0; }

int vp_sreader_read(vp_sreader *sr, void *buf, size_t n)
{
    unsigned char *d = buf;
    if (n > sr->p.left) return fail(&sr->r, VP_ERR_RUNTIME, "read past the end of the payload (program bug)");
    if (sr->cur_mem) {
        memcpy(d, (unsigned char *)sr->cur->data + sr->mem_off, n);
        sr->mem_off += n;
        sr->p.left -= n;
        return 0;
    }
    while (n) {
        int rc = piece(sr);
        if (rc) return rc;
        size_t k = n < sr->p.chunk_left ? n : (size_t)sr->p.chunk_left;
        if (vp_in_read(sr->r.in, d, k)) return fail_read(&sr->r, vp_in_errmsg(sr->r.in));
        d += k;
        n -= k;
        sr->p.chunk_left -= k;
        sr->p.left -= k;
    }
    return sr->p.left ? 0 : finish_payload(sr);
}

#define BOUNCE ((size_t)1 << 20)

int vp_sreader_copy(vp_sreader *sr, struct vp_payload_writer *pw)
{
    while (sr->p.left) {
        if (!sr->cur_mem) {
            int rc = piece(sr);
            if (rc) return rc;
            if (!pw->chunked) { /* whole bins on both sides: let the kernel move the bytes */
                uint64_t k = sr->p.chunk_left;
                int s = vp_in_splice_to(sr->r.in, pw->out, k);
                if (s < 0) return s == -2 ? fail_read(&sr->r, vp_in_errmsg(sr->r.in)) : -VP_ERR_RUNTIME;
                sr->p.chunk_left -= k;
                sr->p.left -= k;
                pw->left -= k;
                continue;
            }
        }
        if (!sr->bounce) sr->bounce = vp_malloc(BOUNCE);
        size_t k = sr->p.left < BOUNCE ? (size_t)sr->p.left : BOUNCE;
        int rc = vp_sreader_read(sr, sr->bounce, k);
        if (rc) return rc;
        if (vp_payload_write(pw, sr->bounce, k)) return -VP_ERR_RUNTIME;
    }
    return finish_payload(sr);
}

static int skip_rest(vp_sreader *sr)
{
    while (sr->p.left) {
        if (!sr->bounce) sr->bounce = vp_malloc(BOUNCE);
        size_t k = sr->p.left < BOUNCE ? (size_t)sr->p.left : BOUNCE;
        int rc = vp_sreader_read(sr, sr->bounce, k);
        if (rc) return rc;
    }
    return 0;
}

static void drop_current(vp_sreader *sr)
{
    vp_vol_free(&sr->cur);
    sr->cur_mem = 0;
    sr->mem_off = 0;
    memset(&sr->p, 0, sizeof sr->p);
}

int vp_sreader_next(vp_sreader *sr, const char **name, const vp_vol **hdr)
{
    int rc;
    if (sr->cur && (rc = skip_rest(sr))) return rc;
    drop_current(sr);
    if (!sr->vols_left) return 0;
    char *nm;
    sr->r.field = "vols";
    if ((rc = key(&sr->r, &nm))) return rc;
    for (int i = 0; i < sr->nnames; i++)
        if (!strcmp(sr->names[i], nm)) { free(nm); return fail(&sr->r, VP_ERR_DATA, "duplicate volume name"); }
    if (vp_case_vol(sr->head, nm)) { free(nm); return fail(&sr->r, VP_ERR_DATA, "duplicate volume name"); }
    sr->names[sr->nnames++] = nm;
    sr->vols_left--;
    sr->r.vol = nm;
    sr->r.field = NULL;
    vp_vol *v = NULL;
    if ((rc = read_vol(&sr->r, &v, &sr->p))) return rc;
    sr->cur = v;
    sr->r.field = "data"; /* errors from here on are about the payload */
    if (v->data) { /* the payload came before the end of its map: it is in memory */
        uint64_t nb;
        vp_vol_nbytes(v->dims, v->dtype, &nb);
        sr->cur_mem = 1;
        sr->p = (struct pend){nb, nb, 0, nb};
    }
    *name = nm;
    *hdr = v;
    return 1;
}

vp_vol *vp_sreader_take(vp_sreader *sr, int *rc)
{
    vp_vol *v = sr->cur;
    *rc = 0;
    if (sr->cur_mem) { sr->cur = NULL; drop_current(sr); return v; }
    unsigned char *buf = NULL;
    uint64_t cap = 0, used = 0;
    while (sr->p.left) {
        if ((*rc = piece(sr))) { free(buf); return NULL; }
        uint64_t k = sr->p.chunk_left, before = used;
        if ((*rc = read_payload(&sr->r, &buf, &cap, &used, k))) { free(buf); return NULL; }
        sr->p.chunk_left -= used - before;
        sr->p.left -= used - before;
    }
    if ((*rc = finish_payload(sr))) { free(buf); return NULL; }
    if (!buf) buf = vp_malloc(1);
    v->alloc = v->data = buf;
    sr->cur = NULL;
    drop_current(sr);
    return v;
}

int vp_sreader_end(vp_sreader **psr)
{
    vp_sreader *sr = *psr;
    int rc = 0;
    if (!sr) return 0;
    const char *name;
    const vp_vol *hdr;
    while ((rc = vp_sreader_next(sr, &name, &hdr)) > 0) {}
    if (!rc && vp_in_end_frame(sr->r.in)) rc = -VP_ERR_DATA;
    drop_current(sr);
    for (int i = 0; i < sr->nnames; i++) free(sr->names[i]);
    free(sr->bounce);
    free(sr);
    *psr = NULL;
    return rc;
}

void vp_sreader_abort(vp_sreader **psr)
{
    vp_sreader *sr = *psr;
    if (!sr) return;
    drop_current(sr);
    for (int i = 0; i < sr->nnames; i++) free(sr->names[i]);
    free(sr->bounce);
    free(sr);
    *psr = NULL;
}

int vp_case_read(vp_in *in, vp_case **out)
{
    vp_case *c;
    vp_sreader *sr;
    int rc = read_head(in, &c, &sr);
    if (rc <= 0) return rc;
    const char *name;
    const vp_vol *hdr;
    while ((rc = vp_sreader_next(sr, &name, &hdr)) > 0) {
        vp_vol *v = vp_sreader_take(sr, &rc);
        if (!v) break;
        c->vol_names[c->nvols] = vp_strdup(name);
        c->vols[c->nvols++] = v;
    }
    if (rc < 0) { vp_sreader_abort(&sr); vp_case_free(&c); return rc; }
    if ((rc = vp_sreader_end(&sr)) < 0) { vp_case_free(&c); return rc; }
    *out = c;
    return 1;
}

/* ---- writing ---- */

static int out_cb(void *data, const char *buf, size_t len)
{
    return vp_out_write((vp_out *)data, buf, len);
}

int vp_case_write_vol_head(vp_out *out, const char *name, const vp_vol *v, struct vp_payload_writer *pw)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, out_cb);
    uint64_t nbytes;
    if (vp_vol_nbytes(v->dims, v->dtype, &nbytes)) return vp_error("volume '%s' too large to write", name);
    int nd = v->has_channels || v->dims[3] > 1 ? 4 : 3;
    vp_pack_cstr(&pk, name);
    msgpack_pack_map(&pk, 4);
    vp_pack_cstr(&pk, "dims");
    msgpack_pack_array(&pk, (size_t)nd);
    for (int i = 0; i < nd; i++) msgpack_pack_uint64(&pk, v->dims[i]);
    vp_pack_cstr(&pk, "dtype");
    vp_pack_cstr(&pk, vp_dtype_name(v->dtype));
    vp_pack_cstr(&pk, "affine");
    msgpack_pack_array(&pk, 16);
    for (int i = 0; i < 16; i++) msgpack_pack_double(&pk, v->affine[i]);
    vp_pack_cstr(&pk, "data");
    pw->out = out;
    pw->left = nbytes;
    pw->chunk_left = 0;
    pw->chunked = nbytes > vp_frame_bin_limit;
    if (!pw->chunked) return msgpack_pack_bin(&pk, (size_t)nbytes);
    uint64_t cb = vp_frame_chunk_bytes;
    return msgpack_pack_array(&pk, (size_t)((nbytes + cb - 1) / cb));
}

int vp_payload_write(struct vp_payload_writer *pw, const void *buf, size_t n)
{
    const unsigned char *p = buf;
    if (n > pw->left) return vp_error("'%s': payload longer than its volume (program bug)", vp_out_name(pw->out));
    if (!pw->chunked) {
        pw->left -= n;
        return vp_out_write(pw->out, p, n);
    }
    while (n) {
        if (!pw->chunk_left) {
            msgpack_packer pk;
            msgpack_packer_init(&pk, pw->out, out_cb);
            pw->chunk_left = pw->left < vp_frame_chunk_bytes ? pw->left : vp_frame_chunk_bytes;
            if (msgpack_pack_bin(&pk, (size_t)pw->chunk_left)) return -1;
        }
        size_t k = n < pw->chunk_left ? n : (size_t)pw->chunk_left;
        if (vp_out_write(pw->out, p, k)) return -1;
        p += k;
        n -= k;
        pw->chunk_left -= k;
        pw->left -= k;
    }
    return 0;
}

int vp_case_write_head(vp_out *out, const vp_case *c, int nstream)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, out_cb);
    int rc = msgpack_pack_map(&pk, (size_t)(4 + c->nextra));
    vp_pack_cstr(&pk, "voxpipe");
    msgpack_pack_uint32(&pk, VP_FORMAT_MAJOR);
    vp_pack_cstr(&pk, "id");
    vp_pack_cstr(&pk, c->id);
    vp_pack_cstr(&pk, "meta");
    msgpack_pack_map(&pk, (size_t)c->nmeta);
    for (int i = 0; i < c->nmeta; i++) {
        vp_pack_cstr(&pk, c->meta[i].key);
        rc |= vp_out_write(out, c->meta[i].raw, c->meta[i].len);
    }
    for (int i = 0; i < c->nextra; i++) { /* before "vols", which stays last */
        vp_pack_cstr(&pk, c->extra[i].key);
        rc |= vp_out_write(out, c->extra[i].raw, c->extra[i].len);
    }
    vp_pack_cstr(&pk, "vols");
    rc |= msgpack_pack_map(&pk, (size_t)(c->nvols + nstream));
    for (int i = 0; i < c->nvols && !rc; i++) {
        struct vp_payload_writer pw;
        rc |= vp_case_write_vol_head(out, c->vol_names[i], c->vols[i], &pw);
        if (!rc) rc |= vp_payload_write(&pw, c->vols[i]->data, (size_t)pw.left);
    }
    return rc ? -1 : 0;
}

int vp_case_write(vp_out *out, const vp_case *c)
{
    if (vp_case_write_head(out, c, 0)) return -1;
    return vp_out_end_frame(out);
}

int vp_stream_finish(vp_out **out)
{
    if (!*out) return 0;
    if (vp_out_is_msg(*out)) {
        static const unsigned char eos[] = {0x82, 0xa7, 'v', 'o', 'x', 'p', 'i', 'p', 'e', 0x01, 0xa3, 'e', 'o', 's', 0xc3};
        if (vp_out_write(*out, eos, sizeof eos) || vp_out_end_frame(*out)) { vp_out_close(out, 0); return -1; }
    }
    return vp_out_close(out, 1);
}
