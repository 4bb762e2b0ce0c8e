/* frame_read.c - reading frames: the top-level map, then the volumes one at a time from the stream
 * (vp_case_begin, vp_sreader_*) or all into memory (vp_case_read); see frame.h. */
#include "frame_int.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    int rc = vp_frame_tok(&r, &t), have_version = 0, have_id = 0, eos = 0;
    uint64_t stream_vols = 0;
    int streaming = 0;
    size_t budget = VP_MAX_META;
    if (rc) goto fail;
    if (t.kind != MP_MAP) { rc = vp_frame_fail(&r, VP_ERR_DATA, "top-level value is not a map (not a voxpipe stream?)"); goto fail; }
    if (t.u > VP_MAX_KEYS) { rc = vp_frame_fail(&r, VP_ERR_DATA, "top-level map has too many keys"); goto fail; }
    uint64_t nk = t.u;
    for (uint64_t i = 0; i < nk; i++) {
        char *k;
        r.field = NULL;
        if ((rc = vp_frame_key(&r, &k))) goto fail;
        if (!strcmp(k, "voxpipe")) {
            r.field = "voxpipe";
            free(k);
            if ((rc = vp_frame_tok(&r, &t))) goto fail;
            if (t.kind != MP_UINT) { rc = vp_frame_fail(&r, VP_ERR_DATA, "format version is not an integer"); goto fail; }
            if (t.u != VP_FORMAT_MAJOR) {
                char why[128];
                snprintf(why, sizeof why, "unsupported format version %llu (this program reads version %d)",
                         (unsigned long long)t.u, VP_FORMAT_MAJOR);
                rc = vp_frame_fail(&r, VP_ERR_DATA, why);
                goto fail;
            }
            have_version = 1;
        } else if (!strcmp(k, "id")) {
            r.field = "id";
            free(k);
            const char *why = NULL;
            char *id;
            if ((rc = vp_frame_tok(&r, &t))) goto fail;
            if (t.kind != MP_STR) { rc = vp_frame_fail(&r, VP_ERR_DATA, "must be a string"); goto fail; }
            if (mp_read_str(in, &t, VP_MAX_ID, &id, &why)) { rc = vp_frame_fail_read(&r, why); goto fail; }
            free(r.c->id);
            r.c->id = id;
            have_id = 1;
        } else if (!strcmp(k, "eos")) {
            r.field = "eos";
            free(k);
            if ((rc = vp_frame_tok(&r, &t))) goto fail;
            eos = t.kind == MP_BOOL && t.u;
        } else if (!strcmp(k, "meta")) {
            r.field = "meta";
            free(k);
            if ((rc = vp_frame_read_kvs(&r, &r.c->meta, &r.c->nmeta, &budget))) goto fail;
        } else if (!strcmp(k, "vols")) {
            free(k);
            r.field = "vols";
            if ((rc = vp_frame_tok(&r, &t))) goto fail;
            if (t.kind != MP_MAP) { rc = vp_frame_fail(&r, VP_ERR_DATA, "must be a map"); goto fail; }
            if (t.u > VP_MAX_VOLS) { rc = vp_frame_fail(&r, VP_ERR_DATA, "too many volumes"); goto fail; }
            uint64_t nv = t.u;
            if (i == nk - 1) { /* the last key, as writers put it: leave the volumes in the stream */
                stream_vols = nv;
                streaming = 1;
                break;
            }
            for (uint64_t v = 0; v < nv; v++) {
                char *name;
                r.field = "vols";
                if ((rc = vp_frame_key(&r, &name))) goto fail;
                if (vp_case_vol(r.c, name)) { free(name); rc = vp_frame_fail(&r, VP_ERR_DATA, "duplicate volume name"); goto fail; }
                r.vol = name;
                r.field = NULL;
                vp_vol *vol = NULL;
                rc = vp_frame_read_vol(&r, &vol, NULL);
                r.vol = NULL;
                if (rc) { free(name); goto fail; }
                r.c->vol_names[r.c->nvols] = name;
                r.c->vols[r.c->nvols++] = vol;
            }
        } else { /* unknown top-level key: keep it raw and pass it on */
            r.field = k;
            struct mp_buf b = {NULL, 0, 0, budget};
            const char *why = NULL;
            if ((rc = vp_frame_tok(&r, &t))) { free(k); goto fail; }
            if (mp_finish_value(in, &t, VP_MAX_DEPTH, &b, &why)) { free(b.p); rc = vp_frame_fail_read(&r, why); free(k); goto fail; }
            budget -= b.len;
            r.c->extra = vp_realloc(r.c->extra, (size_t)(r.c->nextra + 1) * sizeof *r.c->extra);
            r.c->extra[r.c->nextra++] = (vp_kv){k, b.p, b.len};
        }
    }
    r.field = NULL;
    if (!have_version) { r.field = "voxpipe"; rc = vp_frame_fail(&r, VP_ERR_DATA, "missing (not a voxpipe stream?)"); goto fail; }
    if (eos && !stream_vols) {
        if (vp_in_end_frame(in)) { rc = -VP_ERR_DATA; goto fail; }
        vp_case_free(&r.c);
        return 0;
    }
    if (!have_id || !r.c->id[0]) { r.field = "id"; rc = vp_frame_fail(&r, VP_ERR_DATA, "missing or empty"); goto fail; }
    if (!streaming && vp_in_end_frame(in)) { rc = -VP_ERR_DATA; goto fail; }
    vp_sreader *sr = vp_calloc(1, sizeof *sr);
    sr->r = r;
    sr->head = r.c;
    sr->vols_left = stream_vols;
    sr->nstream = (int)stream_vols;
    sr->r.field = NULL;
    sr->r.vol = NULL;
    sr->bounce = NULL;
    if (r.c->nvols + stream_vols > VP_MAX_VOLS) { rc = vp_frame_fail(&r, VP_ERR_DATA, "too many volumes"); free(sr); goto fail; }
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
            return vp_frame_mismatch(&sr->r, sr->p.total - sr->p.left, sr->cur->dims, sr->cur->dtype, sr->p.total);
        struct mp_tok b;
        int rc = vp_frame_tok(&sr->r, &b);
        if (rc) return rc;
        if (b.kind != MP_BIN) return vp_frame_fail(&sr->r, VP_ERR_DATA, "chunks must be bin values");
        if (b.u > sr->p.left)
            return vp_frame_mismatch(&sr->r, sr->p.total - sr->p.left + b.u, sr->cur->dims, sr->cur->dtype, sr->p.total);
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
        int rc = vp_frame_tok(&sr->r, &b);
        if (rc) return rc;
        if (b.kind != MP_BIN) return vp_frame_fail(&sr->r, VP_ERR_DATA, "chunks must be bin values");
        if (b.u) return vp_frame_mismatch(&sr->r, sr->p.total + b.u, sr->cur->dims, sr->cur->dtype, sr->p.total);
        sr->p.chunks_left--;
    }
    return 0;
}

uint64_t vp_sreader_left(const vp_sreader *sr) { return sr->cur ? sr->p.left : 0; }

int vp_sreader_read(vp_sreader *sr, void *buf, size_t n)
{
    unsigned char *d = buf;
    if (n > sr->p.left) return vp_frame_fail(&sr->r, VP_ERR_RUNTIME, "read past the end of the payload (program bug)");
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
        if (vp_in_read(sr->r.in, d, k)) return vp_frame_fail_read(&sr->r, vp_in_errmsg(sr->r.in));
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
                if (s < 0) return s == -2 ? vp_frame_fail_read(&sr->r, vp_in_errmsg(sr->r.in)) : -VP_ERR_RUNTIME;
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
    if ((rc = vp_frame_key(&sr->r, &nm))) return rc;
    for (int i = 0; i < sr->nnames; i++)
        if (!strcmp(sr->names[i], nm)) { free(nm); return vp_frame_fail(&sr->r, VP_ERR_DATA, "duplicate volume name"); }
    if (vp_case_vol(sr->head, nm)) { free(nm); return vp_frame_fail(&sr->r, VP_ERR_DATA, "duplicate volume name"); }
    sr->names[sr->nnames++] = nm;
    sr->vols_left--;
    sr->r.vol = nm;
    sr->r.field = NULL;
    vp_vol *v = NULL;
    if ((rc = vp_frame_read_vol(&sr->r, &v, &sr->p))) return rc;
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
        if ((*rc = vp_frame_read_payload(&sr->r, &buf, &cap, &used, k))) { free(buf); return NULL; }
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
