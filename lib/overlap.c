/* overlap.c - see overlap.h */
#include "overlap.h"
#include "parallel.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const vp_empty_names[] = {"nan", "one", "zero", NULL};
const char *const vp_ovm_names[] = {"tp", "fp", "fn", "tn", "dice", "iou", "accuracy", "balanced_accuracy",
                                    "precision", "sensitivity", "specificity", "kappa", "auc",
                                    "volume_similarity", NULL};

/* ---- per-worker table of raw (pred bits << 32 | ref bits) -> voxel count, open addressing */

#define PM_MAX ((size_t)1 << 22) /* distinct pairs one worker may see: 4096^2 / 4 */

struct pairmap {
    uint64_t *keys, *vals;
    unsigned char *used;
    size_t cap, n;
    int shift, overflow;
};

static void pm_init(struct pairmap *m, int bits)
{
    m->cap = (size_t)1 << bits;
    m->shift = 64 - bits;
    m->n = 0;
    m->overflow = 0;
    m->keys = vp_malloc(m->cap * sizeof *m->keys);
    m->vals = vp_malloc(m->cap * sizeof *m->vals);
    m->used = vp_calloc(m->cap, 1);
}

static void pm_free(struct pairmap *m)
{
    free(m->keys); free(m->vals); free(m->used);
}

static size_t pm_slot(const struct pairmap *m, uint64_t key)
{
    size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> m->shift), mask = m->cap - 1;
    while (m->used[i] && m->keys[i] != key) i = (i + 1) & mask;
    return i;
}

static void pm_add(struct pairmap *m, uint64_t key, uint64_t cnt)
{
    size_t i = pm_slot(m, key);
    if (m->used[i]) { m->vals[i] += cnt; return; }
    if (m->n >= PM_MAX) { m->overflow = 1; return; }
    if (2 * (m->n + 1) > m->cap) {
        struct pairmap g;
        pm_init(&g, 64 - m->shift + 1);
        for (size_t j = 0; j < m->cap; j++)
            if (m->used[j]) {
                size_t s = pm_slot(&g, m->keys[j]);
                g.used[s] = 1; g.keys[s] = m->keys[j]; g.vals[s] = m->vals[j];
            }
        g.n = m->n;
        pm_free(m);
        *m = g;
        i = pm_slot(m, key);
    }
    m->used[i] = 1; m->keys[i] = key; m->vals[i] = cnt; m->n++;
}

/* ---- the counting pass: runs of equal (pred, ref) raw values, blocks of 64 tested at once */

struct count_ctx {
    const void *p, *r;
    int psz, rsz; /* bytes per voxel: 1, 2 or 4 */
    struct pairmap *maps; /* one per worker */
};

#define KEY(a, b) ((uint64_t)(a) << 32 | (uint64_t)(b))
#define BLOCK 64

#define DEFINE_KERNEL(NAME, PT, RT)                                                               \
    static void NAME(const void *pv, const void *rv, uint64_t b, uint64_t e, struct pairmap *m)   \
    {                                                                                             \
        const PT *p = pv;                                                                         \
        const RT *r = rv;                                                                         \
        PT lp = p[b];                                                                             \
        RT lr = r[b];                                                                             \
        uint64_t run = 0, i = b;                                                                  \
        while (i < e) {                                                                           \
            uint64_t end = e - i >= BLOCK ? i + BLOCK : e;                                        \
            if (end - i == BLOCK) {                                                               \
                unsigned d = 0;                                                                   \
                for (int k = 0; k < BLOCK; k++) d |= (unsigned)(p[i + k] ^ lp) | (unsigned)(r[i + k] ^ lr); \
                if (!d) { run += BLOCK; i = end; continue; }                                      \
            }                                                                                     \
            for (; i < end; i++) {                                                                \
                if (p[i] == lp && r[i] == lr) { run++; continue; }                                \
                pm_add(m, KEY(lp, lr), run);                                                      \
                lp = p[i]; lr = r[i]; run = 1;                                                    \
            }                                                                                     \
        }                                                                                         \
        if (run) pm_add(m, KEY(lp, lr), run);                                                     \
    }

DEFINE_KERNEL(k11, uint8_t, uint8_t)
DEFINE_KERNEL(k12, uint8_t, uint16_t)
DEFINE_KERNEL(k14, uint8_t, uint32_t)
DEFINE_KERNEL(k21, uint16_t, uint8_t)
DEFINE_KERNEL(k22, uint16_t, uint16_t)
DEFINE_KERNEL(k24, uint16_t, uint32_t)
DEFINE_KERNEL(k41, uint32_t, uint8_t)
DEFINE_KERNEL(k42, uint32_t, uint16_t)
DEFINE_KERNEL(k44, uint32_t, uint32_t)

typedef void (*kernel_fn)(const void *, const void *, uint64_t, uint64_t, struct pairmap *);

static kernel_fn pick_kernel(int psz, int rsz)
{
    static const kernel_fn k[3][3] = {{k11, k12, k14}, {k21, k22, k24}, {k41, k42, k44}};
    int a = psz == 1 ? 0 : psz == 2 ? 1 : 2, b = rsz == 1 ? 0 : rsz == 2 ? 1 : 2;
    return k[a][b];
}

static void count_range(void *vctx, uint64_t b, uint64_t e, int worker)
{
    struct count_ctx *c = vctx;
    pick_kernel(c->psz, c->rsz)(c->p, c->r, b, e, &c->maps[worker]);
}

/* ---- decoding raw values, merging */

/* raw bits of one voxel -> integer label value; -1 if it is not an integer (float dtypes) */
static int decode(uint32_t raw, enum vp_dtype t, int64_t *v, double *asfloat)
{
    float f;
    switch (t) {
    case VP_U8: case VP_U16: *v = raw; return 0;
    case VP_I16: *v = (int16_t)raw; return 0;
    case VP_I32: *v = (int32_t)raw; return 0;
    case VP_F16: f = vp_half_to_float((uint16_t)raw); break;
    default: memcpy(&f, &raw, 4); break;
    }
    *asfloat = f;
    if (!isfinite(f) || f != floorf(f) || fabsf(f) > 2147483647.0f) return -1;
    *v = (int64_t)f;
    return 0;
}

struct rawpair { uint64_t key, n; };

static int cmp_raw(const void *a, const void *b)
{
    uint64_t x = ((const struct rawpair *)a)->key, y = ((const struct rawpair *)b)->key;
    return x < y ? -1 : x > y;
}

static int cmp_pair(const void *a, const void *b)
{
    const vp_pair *x = a, *y = b;
    if (x->pred != y->pred) return x->pred < y->pred ? -1 : 1;
    return x->ref < y->ref ? -1 : x->ref > y->ref;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

void vp_confusion_free(vp_confusion *cf)
{
    free(cf->pairs);
    free(cf->vals);
    memset(cf, 0, sizeof *cf);
}

static void fmt_dims(const vp_vol *v, char *s, size_t n)
{
    snprintf(s, n, "%llux%llux%llu", (unsigned long long)v->dims[0], (unsigned long long)v->dims[1],
             (unsigned long long)v->dims[2]);
}

int vp_overlap_same_grid(const vp_vol *a, const vp_vol *b, char *why, size_t whylen)
{
    if (a->dims[0] != b->dims[0] || a->dims[1] != b->dims[1] || a->dims[2] != b->dims[2]) {
        char da[80], db[80];
        fmt_dims(a, da, sizeof da);
        fmt_dims(b, db, sizeof db);
        snprintf(why, whylen, "dims %s vs %s", da, db);
        return 0;
    }
    for (int i = 0; i < 12; i++)
        if (fabs(a->affine[i] - b->affine[i]) > 1e-4 * (1 + fabs(a->affine[i]))) {
            snprintf(why, whylen, "affine entry [%d][%d] %.9g vs %.9g", i / 4, i % 4, a->affine[i], b->affine[i]);
            return 0;
        }
    return 1;
}

static int check_label_vol(const vp_vol *v, const char *name, const char *ctx)
{
    if (v->dims[3] != 1) {
        vp_error("%s: volume '%s': %llu channels; a label volume has one", ctx, name, (unsigned long long)v->dims[3]);
        return -1;
    }
    return 0;
}

int vp_overlap_count(const vp_vol *pred, const char *pname, const vp_vol *ref, const char *rname,
                     const char *ctx, vp_confusion *cf)
{
    memset(cf, 0, sizeof *cf);
    if (check_label_vol(pred, pname, ctx) || check_label_vol(ref, rname, ctx)) return -1;
    char why[256];
    if (!vp_overlap_same_grid(pred, ref, why, sizeof why))
        return vp_error("%s: volumes '%s' and '%s' are on different grids (%s); resample one first", ctx, pname,
                        rname, why);

    uint64_t n = vp_vol_nvox(pred);
    int nw = vp_parallel_workers();
    struct count_ctx c = {pred->data, ref->data, (int)vp_dtype_size(pred->dtype), (int)vp_dtype_size(ref->dtype),
                          vp_calloc((size_t)nw, sizeof(struct pairmap))};
    for (int w = 0; w < nw; w++) pm_init(&c.maps[w], 8);
    uint64_t grain = (n / (8 * (uint64_t)nw) + BLOCK - 1) / BLOCK * BLOCK;
    if (grain < ((uint64_t)1 << 16)) grain = (uint64_t)1 << 16;
    vp_parallel_for(n, grain, count_range, &c);

    size_t total = 0;
    int overflow = 0;
    for (int w = 0; w < nw; w++) { total += c.maps[w].n; overflow |= c.maps[w].overflow; }
    struct rawpair *raw = overflow ? NULL : vp_malloc((total ? total : 1) * sizeof *raw);
    size_t k = 0;
    for (int w = 0; w < nw; w++) {
        for (size_t j = 0; raw && j < c.maps[w].cap; j++)
            if (c.maps[w].used[j]) raw[k++] = (struct rawpair){c.maps[w].keys[j], c.maps[w].vals[j]};
        pm_free(&c.maps[w]);
    }
    free(c.maps);
    if (overflow)
        return vp_error("%s: volumes '%s' and '%s' hold more than %zu distinct value pairs: not label volumes?", ctx,
                        pname, rname, PM_MAX);
    qsort(raw, k, sizeof *raw, cmp_raw);

    vp_pair *pairs = vp_malloc((k ? k : 1) * sizeof *pairs);
    size_t np = 0;
    for (size_t i = 0; i < k; i++) {
        if (i && raw[i].key == raw[i - 1].key) { pairs[np - 1].n += raw[i].n; continue; }
        int64_t a, b;
        double fa = 0, fb = 0;
        int ea = decode((uint32_t)(raw[i].key >> 32), pred->dtype, &a, &fa);
        int eb = decode((uint32_t)raw[i].key, ref->dtype, &b, &fb);
        if (ea || eb) {
            vp_error("%s: volume '%s': value %.9g is not an integer label (dtype %s)", ctx, ea ? pname : rname,
                     ea ? fa : fb, vp_dtype_name(ea ? pred->dtype : ref->dtype));
            free(raw); free(pairs);
            return -1;
        }
        pairs[np++] = (vp_pair){a, b, raw[i].n};
    }
    free(raw);
    /* floats: -0 and 0 decode alike; combine pairs that became equal */
    qsort(pairs, np, sizeof *pairs, cmp_pair);
    size_t m = 0;
    for (size_t i = 0; i < np; i++) {
        if (m && pairs[m - 1].pred == pairs[i].pred && pairs[m - 1].ref == pairs[i].ref) pairs[m - 1].n += pairs[i].n;
        else pairs[m++] = pairs[i];
    }
    int64_t *vals = vp_malloc((m ? 2 * m : 1) * sizeof *vals);
    size_t nv = 0;
    for (size_t i = 0; i < m; i++) { vals[nv++] = pairs[i].pred; vals[nv++] = pairs[i].ref; }
    qsort(vals, nv, sizeof *vals, cmp_i64);
    size_t u = 0;
    for (size_t i = 0; i < nv; i++)
        if (!u || vals[u - 1] != vals[i]) vals[u++] = vals[i];
    if (u > VP_OVERLAP_MAX_VALUES) {
        free(pairs); free(vals);
        return vp_error("%s: volumes '%s' and '%s' hold %zu distinct values (at most %d): not label volumes?", ctx,
                        pname, rname, u, VP_OVERLAP_MAX_VALUES);
    }
    cf->nvox = n;
    cf->pairs = pairs;
    cf->npairs = m;
    cf->vals = vals;
    cf->nvals = u;
    return 0;
}

static int in_set(const int64_t *set, size_t n, int64_t v)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (set[mid] < v) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && set[lo] == v;
}

void vp_confusion_counts(const vp_confusion *cf, const int64_t *set, size_t nset, struct vp_counts *out)
{
    uint64_t tp = 0, pp = 0, rp = 0;
    for (size_t i = 0; i < cf->npairs; i++) {
        int a = in_set(set, nset, cf->pairs[i].pred), b = in_set(set, nset, cf->pairs[i].ref);
        if (a) pp += cf->pairs[i].n;
        if (b) rp += cf->pairs[i].n;
        if (a && b) tp += cf->pairs[i].n;
    }
    out->tp = tp;
    out->fp = pp - tp;
    out->fn = rp - tp;
    out->tn = cf->nvox - tp - out->fp - out->fn;
}

double vp_overlap_metric(enum vp_ovm m, const struct vp_counts *c, enum vp_empty rule)
{
    const double tp = (double)c->tp, fp = (double)c->fp, fn = (double)c->fn, tn = (double)c->tn;
    const double undef = rule == VP_EMPTY_ONE ? 1.0 : rule == VP_EMPTY_ZERO ? 0.0 : NAN;
    const uint64_t pos = c->tp + c->fn, neg = c->tn + c->fp; /* reference positives, negatives */
    switch (m) {
    case VP_OVM_TP: return tp;
    case VP_OVM_FP: return fp;
    case VP_OVM_FN: return fn;
    case VP_OVM_TN: return tn;
    case VP_OVM_DICE: return c->tp + c->fp + c->fn != 0 ? 2 * tp / (2 * tp + fp + fn) : undef;
    case VP_OVM_IOU: return c->tp + c->fp + c->fn ? tp / (tp + fp + fn) : undef;
    case VP_OVM_ACCURACY: return (tp + tn) / (tp + fp + fn + tn);
    case VP_OVM_BALANCED_ACCURACY: return pos && neg ? (tp / (tp + fn) + tn / (tn + fp)) / 2 : undef;
    case VP_OVM_PRECISION: return c->tp + c->fp ? tp / (tp + fp) : undef;
    case VP_OVM_SENSITIVITY: return pos ? tp / (tp + fn) : undef;
    case VP_OVM_SPECIFICITY: return neg ? tn / (tn + fp) : undef;
    case VP_OVM_KAPPA: {
        /* exact integer numerator and denominator (products reach 2^80), one rounding each */
        unsigned __int128 den = (unsigned __int128)(c->tp + c->fp) * (c->fp + c->tn) +
                                (unsigned __int128)(c->tp + c->fn) * (c->fn + c->tn);
        __int128 num = 2 * ((__int128)c->tp * c->tn - (__int128)c->fn * c->fp);
        return den ? (double)num / (double)den : undef;
    }
    case VP_OVM_AUC: return pos && neg ? 1 - (fp / (fp + tn) + fn / (tp + fn)) / 2 : undef;
    case VP_OVM_VOLUME_SIMILARITY:
        return c->tp + c->fp + c->fn != 0 ? 1 - fabs(fn - fp) / (2 * tp + fp + fn) : undef;
    default: return NAN;
    }
}
