/* resample_meta.c - see resample.h: the meta "resample" record that lets a later step go back. */
#include "resample.h"
#include "frame.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

void vp_resample_entry_add(struct vp_resample_entry *e, const char *name, const struct vp_grid *from,
                           const struct vp_grid *to)
{
    e->names = vp_realloc(e->names, (size_t)(e->n + 1) * sizeof *e->names);
    e->from = vp_realloc(e->from, (size_t)(e->n + 1) * sizeof *e->from);
    e->to = vp_realloc(e->to, (size_t)(e->n + 1) * sizeof *e->to);
    e->names[e->n] = vp_strdup(name);
    e->from[e->n] = *from;
    e->to[e->n] = *to;
    e->n++;
}

void vp_resample_entry_free(struct vp_resample_entry *e)
{
    for (int i = 0; i < e->n; i++) free(e->names[i]);
    free(e->names);
    free(e->from);
    free(e->to);
    memset(e, 0, sizeof *e);
}

static void pack_grid(msgpack_packer *pk, const struct vp_grid *g)
{
    msgpack_pack_map(pk, 2);
    vp_pack_cstr(pk, "dims");
    msgpack_pack_array(pk, 3);
    for (int a = 0; a < 3; a++) msgpack_pack_uint64(pk, g->dims[a]);
    vp_pack_cstr(pk, "affine");
    msgpack_pack_array(pk, 16);
    for (int i = 0; i < 16; i++) msgpack_pack_double(pk, g->affine[i]);
}

static void pack_grids(msgpack_packer *pk, const struct vp_resample_entry *e, const struct vp_grid *g)
{
    msgpack_pack_map(pk, (size_t)e->n);
    for (int i = 0; i < e->n; i++) {
        vp_pack_cstr(pk, e->names[i]);
        pack_grid(pk, &g[i]);
    }
}

/* the existing array (or none): its elements in *arr, 0 ok / -1 absent / -2 not an array */
static int parse_stack(const vp_case *c, msgpack_unpacked *u, msgpack_object_array *arr)
{
    if (vp_case_meta_parse(c, "resample", u)) return vp_case_meta(c, "resample") ? -2 : -1;
    if (u->data.type != MSGPACK_OBJECT_ARRAY) return -2;
    *arr = u->data.via.array;
    return 0;
}

void vp_resample_meta_push(vp_case *c, const struct vp_resample_entry *e)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    msgpack_object_array old = {0, NULL};
    int r = parse_stack(c, &u, &old);
    if (r == -2) vp_warn("case '%s': meta 'resample' is not an array; replacing it", c->id);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, (size_t)old.size + 1);
    for (uint32_t i = 0; i < old.size; i++) msgpack_pack_object(&pk, old.ptr[i]);
    msgpack_pack_map(&pk, 2);
    vp_pack_cstr(&pk, "from");
    pack_grids(&pk, e, e->from);
    vp_pack_cstr(&pk, "to");
    pack_grids(&pk, e, e->to);
    vp_case_meta_set_sbuf(c, "resample", &sb);
    msgpack_sbuffer_destroy(&sb);
    msgpack_unpacked_destroy(&u);
}

static const msgpack_object *map_get(const msgpack_object *m, const char *key)
{
    if (m->type != MSGPACK_OBJECT_MAP) return NULL;
    size_t kl = strlen(key);
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == kl && !memcmp(k->via.str.ptr, key, kl))
            return &m->via.map.ptr[i].val;
    }
    return NULL;
}

static int num(const msgpack_object *o, double *v)
{
    switch (o->type) {
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: *v = o->via.f64; return 0;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: *v = (double)o->via.u64; return 0;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: *v = (double)o->via.i64; return 0;
    default: return -1;
    }
}

static int parse_grid(const msgpack_object *o, struct vp_grid *g)
{
    const msgpack_object *d = map_get(o, "dims"), *a = map_get(o, "affine");
    if (!d || !a || d->type != MSGPACK_OBJECT_ARRAY || d->via.array.size != 3 || a->type != MSGPACK_OBJECT_ARRAY ||
        a->via.array.size != 16)
        return -1;
    for (int i = 0; i < 3; i++) {
        const msgpack_object *x = &d->via.array.ptr[i];
        if (x->type != MSGPACK_OBJECT_POSITIVE_INTEGER || x->via.u64 < 1 || x->via.u64 > VP_MAX_DIM) return -1;
        g->dims[i] = x->via.u64;
    }
    for (int i = 0; i < 16; i++)
        if (num(&a->via.array.ptr[i], &g->affine[i]) || !(g->affine[i] - g->affine[i] == 0)) return -1;
    return 0;
}

int vp_resample_meta_pop(vp_case *c, struct vp_resample_entry *e)
{
    memset(e, 0, sizeof *e);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    msgpack_object_array arr = {0, NULL};
    int r = parse_stack(c, &u, &arr), rc = -1;
    if (r == -1 || (r == 0 && arr.size == 0)) {
        vp_error("case '%s': no meta 'resample' record to go back to (was the case resampled?)", c->id);
        goto out;
    }
    if (r == -2) {
        vp_error("case '%s': meta 'resample': not an array of records", c->id);
        goto out;
    }
    const msgpack_object *last = &arr.ptr[arr.size - 1];
    const msgpack_object *from = map_get(last, "from"), *to = map_get(last, "to");
    if (!from || !to || from->type != MSGPACK_OBJECT_MAP || to->type != MSGPACK_OBJECT_MAP) {
        vp_error("case '%s': meta 'resample': the last record has no 'from'/'to' maps", c->id);
        goto out;
    }
    for (uint32_t i = 0; i < from->via.map.size; i++) {
        const msgpack_object_kv *kv = &from->via.map.ptr[i];
        char name[VP_MAX_NAME + 1];
        struct vp_grid gf, gt;
        if (kv->key.type != MSGPACK_OBJECT_STR || kv->key.via.str.size > VP_MAX_NAME) goto bad;
        memcpy(name, kv->key.via.str.ptr, kv->key.via.str.size);
        name[kv->key.via.str.size] = 0;
        const msgpack_object *t = map_get(to, name);
        if (!t || parse_grid(&kv->val, &gf) || parse_grid(t, &gt)) goto bad;
        vp_resample_entry_add(e, name, &gf, &gt);
    }
    /* pop */
    if (arr.size == 1) {
        vp_case_meta_remove(c, "resample");
    } else {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, (size_t)arr.size - 1);
        for (uint32_t i = 0; i + 1 < arr.size; i++) msgpack_pack_object(&pk, arr.ptr[i]);
        vp_case_meta_set_sbuf(c, "resample", &sb);
        msgpack_sbuffer_destroy(&sb);
    }
    rc = 0;
    goto out;
bad:
    vp_error("case '%s': meta 'resample': a grid in the last record is malformed (want {\"dims\": [3 ints], "
             "\"affine\": [16 numbers]})", c->id);
    vp_resample_entry_free(e);
out:
    msgpack_unpacked_destroy(&u);
    return rc;
}
