/* frame.c - the case model: cases, their volumes and meta, provenance (see frame.h and
 * docs/FORMAT.md). Decoding is in frame_decode.c, frames and streaming volumes in frame_read.c,
 * writing in frame_write.c. */
#include "frame.h"
#include "cli.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

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
