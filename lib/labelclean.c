/* labelclean.c - see labelclean.h */
#include "labelclean.h"
#include "ccl.h"
#include "frame.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- the change log ---- */

void vp_lc_log_add(struct vp_lc_log *l, const struct vp_lc_change *c)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->v = vp_realloc(l->v, (size_t)l->cap * sizeof *l->v);
    }
    l->v[l->n++] = *c;
}

void vp_lc_log_free(struct vp_lc_log *l)
{
    free(l->v);
    memset(l, 0, sizeof *l);
}

void vp_lc_log_pack(const struct vp_lc_log *l, msgpack_packer *pk)
{
    msgpack_pack_array(pk, (size_t)l->n);
    for (int i = 0; i < l->n; i++) {
        const struct vp_lc_change *c = &l->v[i];
        msgpack_pack_map(pk, 5 + (c->has_pos ? 2 : 0) + (c->why[0] ? 1 : 0));
        vp_pack_cstr(pk, "op");
        vp_pack_cstr(pk, c->op);
        vp_pack_cstr(pk, "from");
        msgpack_pack_int64(pk, c->from);
        vp_pack_cstr(pk, "to");
        msgpack_pack_int64(pk, c->to);
        vp_pack_cstr(pk, "components");
        msgpack_pack_uint64(pk, c->components);
        vp_pack_cstr(pk, "voxels");
        msgpack_pack_uint64(pk, c->voxels);
        if (c->has_pos) {
            vp_pack_cstr(pk, "centroid");
            msgpack_pack_array(pk, 3);
            for (int d = 0; d < 3; d++) msgpack_pack_double(pk, c->centroid[d]);
            vp_pack_cstr(pk, "s_mm");
            msgpack_pack_double(pk, c->s_mm);
        }
        if (c->why[0]) {
            vp_pack_cstr(pk, "why");
            vp_pack_cstr(pk, c->why);
        }
    }
}

/* ---- helpers ---- */

int64_t vp_label_get(const vp_vol *v, uint64_t i)
{
    switch (v->dtype) {
    case VP_U8: return ((const uint8_t *)v->data)[i];
    case VP_U16: return ((const uint16_t *)v->data)[i];
    case VP_I16: return ((const int16_t *)v->data)[i];
    default: return ((const int32_t *)v->data)[i];
    }
}

void vp_label_set(vp_vol *v, uint64_t i, int64_t val)
{
    switch (v->dtype) {
    case VP_U8: ((uint8_t *)v->data)[i] = (uint8_t)val; break;
    case VP_U16: ((uint16_t *)v->data)[i] = (uint16_t)val; break;
    case VP_I16: ((int16_t *)v->data)[i] = (int16_t)val; break;
    default: ((int32_t *)v->data)[i] = (int32_t)val; break;
    }
}

double vp_voxel_volume(const double a[16])
{
    double d = a[0] * (a[5] * a[10] - a[6] * a[9]) - a[1] * (a[4] * a[10] - a[6] * a[8]) + a[2] * (a[4] * a[9] - a[5] * a[8]);
    return fabs(d);
}

/* components sorted by class, then size descending, then number */
static const vp_ccl *sort_ccl;
static int cmp_class_size(const void *pa, const void *pb)
{
    const struct vp_ccl_comp *a = &sort_ccl->comps[*(const uint32_t *)pa], *b = &sort_ccl->comps[*(const uint32_t *)pb];
    if (a->cls != b->cls) return a->cls < b->cls ? -1 : 1;
    if (a->size != b->size) return a->size > b->size ? -1 : 1;
    return *(const uint32_t *)pa < *(const uint32_t *)pb ? -1 : 1;
}

static uint32_t *by_class(const vp_ccl *c)
{
    uint32_t *idx = vp_malloc((c->ncomp ? c->ncomp : 1) * sizeof *idx);
    for (uint32_t k = 0; k < c->ncomp; k++) idx[k] = k;
    sort_ccl = c;
    qsort(idx, c->ncomp, sizeof *idx, cmp_class_size);
    return idx;
}

/* ---- reassign: the kept class with the most contacts ---- */

struct contact { uint32_t comp; int64_t cls; uint64_t n; };
struct contacts {
    const vp_ccl *c;
    const uint8_t *removed;
    struct contact *v;
    size_t n, cap;
};

static void push_contact(struct contacts *C, uint32_t comp, int64_t cls, uint64_t n)
{
    if (C->n == C->cap) {
        C->cap = C->cap ? 2 * C->cap : 256;
        C->v = vp_realloc(C->v, C->cap * sizeof *C->v);
    }
    C->v[C->n++] = (struct contact){comp, cls, n};
}

static void on_contact(void *ctx, uint32_t a, uint32_t b, uint64_t n)
{
    struct contacts *C = ctx;
    if (C->removed[a] && !C->removed[b]) push_contact(C, a, C->c->comps[b].cls, n);
    if (C->removed[b] && !C->removed[a]) push_contact(C, b, C->c->comps[a].cls, n);
}

static int cmp_contact(const void *pa, const void *pb)
{
    const struct contact *a = pa, *b = pb;
    if (a->comp != b->comp) return a->comp < b->comp ? -1 : 1;
    if (a->cls != b->cls) return a->cls < b->cls ? -1 : 1;
    return 0;
}

void vp_lc_reassign_targets(const vp_ccl *c, const uint8_t *removed, int64_t *to)
{
    struct contacts C = {c, removed, NULL, 0, 0};
    vp_ccl_contacts(c, on_contact, &C);
    if (C.n) qsort(C.v, C.n, sizeof *C.v, cmp_contact);
    uint64_t *best = vp_calloc(c->ncomp ? c->ncomp : 1, sizeof *best);
    for (uint32_t k = 0; k < c->ncomp; k++)
        if (removed[k]) to[k] = 0;
    for (size_t i = 0; i < C.n;) {
        size_t j = i;
        uint64_t sum = 0;
        while (j < C.n && C.v[j].comp == C.v[i].comp && C.v[j].cls == C.v[i].cls) sum += C.v[j++].n;
        uint32_t k = C.v[i].comp;
        if (sum > best[k]) { best[k] = sum; to[k] = C.v[i].cls; } /* ascending class: ties keep the lower */
        i = j;
    }
    free(best);
    free(C.v);
}

/* ---- step 1: removal ---- */

struct pairsum { int64_t from, to; uint64_t comps, voxels; };

static int cmp_pairsum(const void *pa, const void *pb)
{
    const struct pairsum *a = pa, *b = pb;
    if (a->from != b->from) return a->from < b->from ? -1 : 1;
    if (a->to != b->to) return a->to < b->to ? -1 : 1;
    return 0;
}

static void remove_components(vp_vol *v, const struct vp_lc_opts *o, const vp_ccl *c, struct vp_lc_log *log)
{
    uint32_t n = c->ncomp;
    uint8_t *removed = vp_calloc(n ? n : 1, 1);
    uint8_t *why_largest = vp_calloc(n ? n : 1, 1);
    uint32_t *idx = by_class(c);
    double vv = o->min_size_mm3 ? vp_voxel_volume(v->affine) : 1;
    uint64_t nremoved = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t k = idx[i];
        int first_of_class = i == 0 || c->comps[idx[i - 1]].cls != c->comps[k].cls;
        if (o->largest && !first_of_class) removed[k] = why_largest[k] = 1;
        else if (o->min_size > 0 && (double)c->comps[k].size * vv < o->min_size) removed[k] = 1;
        nremoved += removed[k];
    }
    free(idx);
    if (!nremoved) { free(removed); free(why_largest); return; }
    int64_t *to = vp_calloc(n, sizeof *to);
    if (o->reassign) vp_lc_reassign_targets(c, removed, to);
    vp_ccl_paint(c, v, removed, to);

    /* one log entry per (operation, from, to) */
    for (int pass = 0; pass < 2; pass++) {
        struct pairsum *ps = vp_malloc(nremoved * sizeof *ps);
        size_t np = 0;
        for (uint32_t k = 0; k < n; k++)
            if (removed[k] && why_largest[k] == !pass)
                ps[np++] = (struct pairsum){c->comps[k].cls, to[k], 1, c->comps[k].size};
        qsort(ps, np, sizeof *ps, cmp_pairsum);
        for (size_t i = 0; i < np;) {
            struct vp_lc_change ch = {{0}, ps[i].from, ps[i].to, 0, 0, 0, {0, 0, 0}, 0, {0}};
            snprintf(ch.op, sizeof ch.op, "%s", pass == 0 ? "largest" : "min-size");
            size_t j = i;
            while (j < np && ps[j].from == ps[i].from && ps[j].to == ps[i].to) {
                ch.components++;
                ch.voxels += ps[j++].voxels;
            }
            vp_lc_log_add(log, &ch);
            i = j;
        }
        free(ps);
    }
    free(removed);
    free(why_largest);
    free(to);
}

/* ---- step 2: fill holes ---- */

struct fillctx {
    vp_vol *v;
    const vp_vol *orig;
    uint32_t *best; /* size of the smallest hole that filled each voxel so far; UINT32_MAX: none */
    int conn;
};

/* Fill the holes of class cls inside box [lo, hi] (the class's bounding box grown by one voxel,
 * clipped). Returns the number of holes holding a 0 voxel. */
static uint64_t fill_class(struct fillctx *F, int64_t cls, const uint64_t lo[3], const uint64_t hi[3])
{
    const vp_vol *o = F->orig;
    uint64_t nx = o->dims[0], ny = o->dims[1];
    uint64_t bd[4] = {hi[0] - lo[0] + 1, hi[1] - lo[1] + 1, hi[2] - lo[2] + 1, 1};
    vp_vol *m = vp_vol_new(bd, VP_U8, NULL);
    uint8_t *mp = m->data;
    for (uint64_t z = 0; z < bd[2]; z++)
        for (uint64_t y = 0; y < bd[1]; y++) {
            uint64_t g = lo[0] + nx * (lo[1] + y + ny * (lo[2] + z));
            for (uint64_t x = 0; x < bd[0]; x++) mp[x + bd[0] * (y + bd[1] * z)] = vp_label_get(o, g + x) != cls;
        }
    vp_ccl mc;
    if (vp_ccl_label(m, F->conn, &mc, "fill-holes")) vp_die(VP_ERR_RUNTIME, "fill-holes: labelling failed");
    uint32_t *hole = vp_calloc(mc.ncomp ? mc.ncomp : 1, sizeof *hole); /* hole size (capped), 0 = no hole */
    for (uint32_t k = 0; k < mc.ncomp; k++)
        if (!vp_ccl_touches_border(&mc, k)) hole[k] = mc.comps[k].size < UINT32_MAX - 1 ? (uint32_t)mc.comps[k].size : UINT32_MAX - 1;
    uint8_t *has_zero = vp_calloc(mc.ncomp ? mc.ncomp : 1, 1);
    for (uint64_t r = 0; r < bd[1] * bd[2]; r++) {
        uint64_t y = r % bd[1], z = r / bd[1];
        uint64_t g0 = lo[0] + nx * (lo[1] + y + ny * (lo[2] + z));
        for (uint64_t i = mc.row[r]; i < mc.row[r + 1]; i++) {
            uint32_t s = hole[mc.comp[i]];
            if (!s) continue;
            for (uint64_t x = mc.x0[i]; x <= mc.x1[i]; x++) {
                uint64_t g = g0 + x;
                if (vp_label_get(o, g) != 0) continue;
                has_zero[mc.comp[i]] = 1;
                if (s < F->best[g]) {
                    F->best[g] = s;
                    vp_label_set(F->v, g, cls);
                }
            }
        }
    }
    uint64_t nholes = 0;
    for (uint32_t k = 0; k < mc.ncomp; k++) nholes += has_zero[k];
    free(hole);
    free(has_zero);
    vp_ccl_free(&mc);
    vp_vol_free(&m);
    return nholes;
}

static void fill_holes(vp_vol *v, const struct vp_lc_opts *o, const vp_ccl *c, struct vp_lc_log *log)
{
    uint64_t nvox = vp_vol_nvox(v), nbytes = nvox * vp_dtype_size(v->dtype);
    vp_vol orig = *v;
    orig.alloc = NULL;
    orig.data = vp_malloc(nbytes);
    memcpy(orig.data, v->data, nbytes);
    struct fillctx F = {v, &orig, vp_malloc(nvox * sizeof(uint32_t)), o->conn};
    memset(F.best, 0xff, nvox * sizeof(uint32_t));

    uint32_t *idx = by_class(c);
    int64_t *classes = vp_malloc((c->ncomp ? c->ncomp : 1) * sizeof *classes);
    uint64_t *holes = vp_calloc(c->ncomp ? c->ncomp : 1, sizeof *holes);
    uint32_t ncls = 0;
    for (uint32_t i = 0; i < c->ncomp;) {
        int64_t cls = c->comps[idx[i]].cls;
        uint64_t lo[3], hi[3];
        for (int d = 0; d < 3; d++) { lo[d] = UINT64_MAX; hi[d] = 0; }
        for (; i < c->ncomp && c->comps[idx[i]].cls == cls; i++)
            for (int d = 0; d < 3; d++) {
                if (c->comps[idx[i]].lo[d] < lo[d]) lo[d] = c->comps[idx[i]].lo[d];
                if (c->comps[idx[i]].hi[d] > hi[d]) hi[d] = c->comps[idx[i]].hi[d];
            }
        for (int d = 0; d < 3; d++) {
            if (lo[d] > 0) lo[d]--;
            if (hi[d] + 1 < v->dims[d]) hi[d]++;
        }
        classes[ncls] = cls;
        holes[ncls++] = fill_class(&F, cls, lo, hi);
    }
    /* voxels each class finally received */
    uint64_t *filled = vp_calloc(ncls ? ncls : 1, sizeof *filled);
    for (uint64_t g = 0; g < nvox; g++) {
        if (F.best[g] == UINT32_MAX) continue;
        int64_t cls = vp_label_get(v, g);
        uint32_t a = 0, b = ncls;
        while (b - a > 1) {
            uint32_t mid = (a + b) / 2;
            if (classes[mid] <= cls) a = mid;
            else b = mid;
        }
        filled[a]++;
    }
    for (uint32_t i = 0; i < ncls; i++) {
        if (!filled[i]) continue;
        struct vp_lc_change ch = {"fill-holes", 0, classes[i], holes[i], filled[i], 0, {0, 0, 0}, 0, {0}};
        vp_lc_log_add(log, &ch);
    }
    free(filled);
    free(classes);
    free(holes);
    free(idx);
    free(F.best);
    free(orig.data);
}

int vp_label_clean(vp_vol *v, const struct vp_lc_opts *o, struct vp_lc_log *log, const char *ctx)
{
    vp_ccl c;
    if ((o->largest || o->min_size > 0) && !(vp_ccl_label(v, o->conn, &c, ctx))) {
        remove_components(v, o, &c, log);
        vp_ccl_free(&c);
    } else if (o->largest || o->min_size > 0) {
        return -1;
    }
    if (o->fill_holes) {
        if (vp_ccl_label(v, o->conn, &c, ctx)) return -1;
        fill_holes(v, o, &c, log);
        vp_ccl_free(&c);
    }
    return 0;
}
