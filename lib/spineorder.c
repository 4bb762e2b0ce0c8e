/* spineorder.c - see spineorder.h */
#include "spineorder.h"
#include "ccl.h"
#include "necksplit.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FRAG 0.5
#define SPLIT_IFACE 0.5
#define SPLIT_MAX 1.5
#define ISLAND 0.05

const char *vp_spine25_name(int64_t id, char buf[24])
{
    if (id >= 1 && id <= 7) snprintf(buf, 24, "vertebrae_C%d", (int)id);
    else if (id >= 8 && id <= 19) snprintf(buf, 24, "vertebrae_T%d", (int)id - 7);
    else if (id >= 20 && id <= 24) snprintf(buf, 24, "vertebrae_L%d", (int)id - 19);
    else if (id == 25) snprintf(buf, 24, "sacrum");
    else buf[0] = 0;
    return buf;
}

/* short name for messages: "T12", "sacrum", "0" */
static const char *short_name(int64_t id, char buf[24])
{
    vp_spine25_name(id, buf);
    if (!buf[0]) snprintf(buf, 24, "%lld", (long long)id);
    else if (!strncmp(buf, "vertebrae_", 10)) memmove(buf, buf + 10, strlen(buf + 10) + 1);
    return buf;
}

/* ---- contacts, summed per pair of components, as adjacency lists ---- */

struct edge { uint32_t a, b; uint64_t n; };
struct edges { struct edge *v; size_t n, cap; };

static void on_contact(void *ctx, uint32_t a, uint32_t b, uint64_t n)
{
    struct edges *E = ctx;
    if (E->n + 2 > E->cap) {
        E->cap = E->cap ? 2 * E->cap : 1024;
        E->v = vp_realloc(E->v, E->cap * sizeof *E->v);
    }
    E->v[E->n++] = (struct edge){a, b, n};
    E->v[E->n++] = (struct edge){b, a, n};
}

static int cmp_edge(const void *pa, const void *pb)
{
    const struct edge *x = pa, *y = pb;
    if (x->a != y->a) return x->a < y->a ? -1 : 1;
    if (x->b != y->b) return x->b < y->b ? -1 : 1;
    return 0;
}

/* ---- state ---- */

enum role { NOT_VERTEBRA, CANDIDATE, FRAGMENT, REMOVED };

struct spine {
    const vp_ccl *c;
    const double *aff;
    const int64_t *ecls; /* effective class of each component: 1..25, or 0 for other values */
    const uint8_t *splitpart; /* split off a component holding two vertebrae: never a fragment */
    struct edge *e;     /* both directions, sorted by (a, b), counts summed */
    uint64_t *adj;      /* edges of component k: e[adj[k] .. adj[k+1]) */
    uint8_t *role;
    uint32_t *parent;   /* groups of candidates: union-find, smaller index as root */
    uint64_t *gsize;    /* group size at roots */
    uint32_t *attach;   /* fragment -> the candidate it joins */
    int64_t *label;     /* label of each group (at roots) */
    const char **why;   /* reason a component changes, or NULL */
};

static uint32_t root(uint32_t *p, uint32_t i)
{
    while (p[i] != i) i = p[i] = p[p[i]];
    return i;
}

static int is_vertebra(int64_t cls) { return cls >= 1 && cls <= VP_SPINE_N; }

static double world_s(const double *a, const double c[3]) { return a[8] * c[0] + a[9] * c[1] + a[10] * c[2] + a[11]; }

/* ---- step 6: labels for the ordered groups ---- */

struct cost { long ch, gaps; uint64_t vox; };
static int cost_lt(struct cost x, struct cost y)
{
    if (x.ch != y.ch) return x.ch < y.ch;
    if (x.gaps != y.gaps) return x.gaps < y.gaps;
    return x.vox < y.vox;
}

/* Strictly increasing labels 1..25 for n groups with labels lab and sizes sz, minimising (changes,
 * gaps, voxels); into out. Returns the number of changed groups. */
static long order_labels(int n, const int64_t *lab, const uint64_t *sz, int64_t *out)
{
    enum { L = VP_SPINE_N + 1 };
    struct cost (*f)[L] = vp_malloc((size_t)n * sizeof *f);
    int (*prev)[L] = vp_malloc((size_t)n * sizeof *prev);
    const struct cost inf = {1L << 40, 0, 0};
    for (int i = 0; i < n; i++)
        for (int l = 1; l < L; l++) {
            struct cost own = {l != lab[i], 0, l != lab[i] ? sz[i] : 0}, best = inf;
            int bp = 0;
            if (i == 0) best = own;
            for (int p = 1; i > 0 && p < l; p++) {
                if (f[i - 1][p].ch >= inf.ch) continue;
                struct cost cand = {f[i - 1][p].ch + own.ch, f[i - 1][p].gaps + (l - p - 1), f[i - 1][p].vox + own.vox};
                if (cost_lt(cand, best)) { best = cand; bp = p; }
            }
            f[i][l] = best;
            prev[i][l] = bp;
        }
    int bl = 0;
    for (int l = 1; l < L; l++)
        if (f[n - 1][l].ch < inf.ch && (!bl || cost_lt(f[n - 1][l], f[n - 1][bl]))) bl = l;
    long changes = -1;
    if (bl) {
        changes = f[n - 1][bl].ch;
        for (int i = n - 1; i >= 0; i--) {
            out[i] = bl;
            bl = prev[i][bl];
        }
    }
    free(f);
    free(prev);
    return changes;
}

/* ---- the steps ---- */

static void find_fragments(struct spine *S, const uint32_t *mainc)
{
    const vp_ccl *c = S->c;
    for (uint32_t k = 0; k < c->ncomp; k++) {
        int64_t cls = S->ecls[k];
        if (!is_vertebra(cls)) continue;
        uint32_t m = mainc[cls];
        S->role[k] = k != m && !S->splitpart[k] && (double)c->comps[k].size < FRAG * (double)c->comps[m].size ? FRAGMENT : CANDIDATE;
    }
    for (uint32_t k = 0; k < c->ncomp; k++) {
        if (S->role[k] != FRAGMENT) continue;
        uint64_t best = 0;
        for (uint64_t i = S->adj[k]; i < S->adj[k + 1]; i++) /* ascending b: ties keep the lower */
            if (S->role[S->e[i].b] == CANDIDATE && S->e[i].n > best) { best = S->e[i].n; S->attach[k] = S->e[i].b; }
        if (!best) { S->role[k] = REMOVED; S->why[k] = "isolated island"; }
    }
}

struct split { uint32_t a, b; double ratio; };
static int cmp_split(const void *pa, const void *pb)
{
    const struct split *x = pa, *y = pb;
    if (x->ratio != y->ratio) return x->ratio > y->ratio ? -1 : 1;
    if (x->a != y->a) return x->a < y->a ? -1 : 1;
    return x->b < y->b ? -1 : x->b > y->b;
}

static void join_splits(struct spine *S, const uint32_t *mainc, size_t nedges)
{
    const vp_ccl *c = S->c;
    struct split *sp = vp_malloc((nedges ? nedges : 1) * sizeof *sp);
    size_t ns = 0;
    for (size_t i = 0; i < nedges; i++) {
        uint32_t a = S->e[i].a, b = S->e[i].b;
        if (a >= b || S->role[a] != CANDIDATE || S->role[b] != CANDIDATE || S->ecls[a] == S->ecls[b]) continue;
        uint64_t mx = c->comps[a].size > c->comps[b].size ? c->comps[a].size : c->comps[b].size;
        double per_face = c->conn == 6 ? 1 : c->conn == 18 ? 5 : 9; /* pairs across a flat face */
        double ratio = (double)S->e[i].n / (per_face * pow((double)mx, 2.0 / 3.0));
        if (ratio >= SPLIT_IFACE) sp[ns++] = (struct split){a, b, ratio};
    }
    qsort(sp, ns, sizeof *sp, cmp_split);
    for (size_t i = 0; i < ns; i++) {
        uint32_t a = sp[i].a, b = sp[i].b, ra = root(S->parent, a), rb = root(S->parent, b);
        if (ra == rb) continue;
        uint64_t lim = c->comps[a].size;
        uint64_t cand[3] = {c->comps[b].size, c->comps[mainc[S->ecls[a]]].size, c->comps[mainc[S->ecls[b]]].size};
        for (int j = 0; j < 3; j++)
            if (cand[j] > lim) lim = cand[j];
        if ((double)(S->gsize[ra] + S->gsize[rb]) > SPLIT_MAX * (double)lim) continue;
        if (rb < ra) { uint32_t t = ra; ra = rb; rb = t; }
        S->parent[rb] = ra;
        S->gsize[ra] += S->gsize[rb];
    }
    free(sp);
}

/* group of a live component (candidate or attached fragment), or UINT32_MAX */
static uint32_t group_of(struct spine *S, uint32_t k)
{
    if (S->role[k] == CANDIDATE) return root(S->parent, k);
    if (S->role[k] == FRAGMENT) return root(S->parent, S->attach[k]);
    return UINT32_MAX;
}

static void remove_islands(struct spine *S, double ref)
{
    const vp_ccl *c = S->c;
    uint32_t n = c->ncomp;
    uint8_t *keep = vp_calloc(n ? n : 1, 1); /* at roots: touches another vertebra or the border */
    for (uint32_t k = 0; k < n; k++) {
        uint32_t g = group_of(S, k);
        if (g == UINT32_MAX) continue;
        if (vp_ccl_touches_border(c, k)) keep[g] = 1;
        for (uint64_t i = S->adj[k]; i < S->adj[k + 1]; i++) {
            uint32_t h = group_of(S, S->e[i].b);
            if (h != UINT32_MAX && h != g) keep[g] = 1;
        }
    }
    for (uint32_t k = 0; k < n; k++) {
        uint32_t g = group_of(S, k);
        if (g == UINT32_MAX || keep[g] || (double)S->gsize[g] >= ISLAND * ref) continue;
        S->why[k] = "isolated island";
        S->role[k] = REMOVED;
    }
    free(keep);
}

struct grp { uint32_t root; double s; uint64_t size; double sum[3]; };
static int cmp_grp(const void *pa, const void *pb)
{
    const struct grp *x = pa, *y = pb;
    if (x->s != y->s) return x->s > y->s ? -1 : 1;
    return x->root < y->root ? -1 : x->root > y->root;
}

static void order_groups(struct spine *S, const char *ctx)
{
    const vp_ccl *c = S->c;
    struct grp *g = vp_calloc(c->ncomp ? c->ncomp : 1, sizeof *g);
    uint32_t *slot = vp_malloc((c->ncomp ? c->ncomp : 1) * sizeof *slot);
    int ng = 0;
    for (uint32_t k = 0; k < c->ncomp; k++) {
        if (S->role[k] != CANDIDATE) continue;
        uint32_t r = root(S->parent, k);
        if (r == k) { slot[k] = (uint32_t)ng; g[ng++].root = k; }
        struct grp *q = &g[slot[r]]; /* r <= k: its slot is set */
        q->size += c->comps[k].size;
        for (int d = 0; d < 3; d++) q->sum[d] += c->comps[k].centroid[d] * (double)c->comps[k].size;
    }
    for (int i = 0; i < ng; i++) {
        double cen[3] = {g[i].sum[0] / (double)g[i].size, g[i].sum[1] / (double)g[i].size, g[i].sum[2] / (double)g[i].size};
        g[i].s = world_s(S->aff, cen);
    }
    qsort(g, (size_t)ng, sizeof *g, cmp_grp);
    int64_t lab[VP_SPINE_N], out[VP_SPINE_N];
    uint64_t sz[VP_SPINE_N];
    int ordered = 1;
    for (int i = 0; i < ng && i < VP_SPINE_N; i++) {
        lab[i] = S->label[g[i].root];
        sz[i] = g[i].size;
        if (i && lab[i] <= lab[i - 1]) ordered = 0;
    }
    if (ng > VP_SPINE_N) {
        vp_warn("%s: spine-order: %d vertebra components, more than %d; order left as is", ctx, ng, VP_SPINE_N);
    } else if (!ordered) {
        long ch = order_labels(ng, lab, sz, out);
        if (ch < 0 || 2 * ch > ng) {
            vp_warn("%s: spine-order: restoring the order would relabel %ld of %d vertebrae; left as is", ctx, ch, ng);
        } else {
            for (int i = 0; i < ng; i++) S->label[g[i].root] = out[i];
        }
    }
    free(g);
    free(slot);
}

/* ---- components holding two vertebrae ---- */

#define MERGED 1.4     /* a component this many times its largest neighbour's main is tried */
#define MIN_PART 0.25  /* each part of an accepted split holds this fraction of the component */
#define STACKED 0.5    /* and the parts' centroids lie along S/I: |dS| >= STACKED x distance */
#define NECK_MM 4.5    /* erosion depth tried, in mm */

static void world_delta(const double *a, const double p[3], const double q[3], double out[3])
{
    for (int r = 0; r < 3; r++) out[r] = a[r * 4] * (p[0] - q[0]) + a[r * 4 + 1] * (p[1] - q[1]) + a[r * 4 + 2] * (p[2] - q[2]);
}

/* Split the vertebra components that are much larger than their neighbours and fall apart at a
 * thin neck into two parts stacked along S/I: the inferior part gets a temporary value above every
 * value of v in *work (an i32 copy of v, made on the first split). Returns the number of splits. */
static int split_merged(const vp_vol *v, const vp_ccl *c, const uint32_t *mainc, vp_vol **work, int64_t *tbase,
                        int64_t *tclass, const char *ctx)
{
    double sp[3];
    vp_vol_spacing(v, sp);
    double smin = sp[0] < sp[1] ? (sp[0] < sp[2] ? sp[0] : sp[2]) : (sp[1] < sp[2] ? sp[1] : sp[2]);
    int depth = (int)ceil(NECK_MM / smin);
    depth = depth < 1 ? 1 : depth > 8 ? 8 : depth;
    int nsplit = 0;
    for (uint32_t k = 0; k < c->ncomp && nsplit < VP_SPINE_N; k++) {
        int64_t cls = c->comps[k].cls;
        if (!is_vertebra(cls) || cls == VP_SPINE_N) continue; /* never the sacrum */
        uint64_t nb = 0;
        for (int64_t o = cls - 3; o <= cls + 3; o++)
            if (o != cls && is_vertebra(o) && mainc[o] != UINT32_MAX && c->comps[mainc[o]].size > nb) nb = c->comps[mainc[o]].size;
        if (!nb || (double)c->comps[k].size < MERGED * (double)nb) continue;
        vp_split s;
        if (!vp_neck_split(c, k, depth, MIN_PART, &s)) continue;
        double dw[3];
        world_delta(v->affine, s.centroid[0], s.centroid[1], dw);
        double dist = sqrt(dw[0] * dw[0] + dw[1] * dw[1] + dw[2] * dw[2]);
        int ok = fabs(dw[2]) >= STACKED * dist;
        vp_debug("%s: spine-order: component of %llu voxels (%lld) splits at depth %d into %llu + %llu voxels: %s", ctx,
                 (unsigned long long)c->comps[k].size, (long long)cls, s.depth, (unsigned long long)s.size[0],
                 (unsigned long long)s.size[1], ok ? "accepted" : "not stacked along S/I");
        if (ok && !*work) {
            int64_t mx = 0;
            for (uint64_t i = 0; i < vp_vol_nvox(v); i++)
                if (vp_label_get(v, i) > mx) mx = vp_label_get(v, i);
            if (mx + 1 + VP_SPINE_N > INT32_MAX) { ok = 0; vp_warn("%s: spine-order: label values too large to split components", ctx); }
            else {
                *tbase = mx + 1;
                uint64_t d[4] = {v->dims[0], v->dims[1], v->dims[2], 1};
                *work = vp_vol_new(d, VP_I32, v->affine);
                for (uint64_t i = 0; i < vp_vol_nvox(v); i++) ((int32_t *)(*work)->data)[i] = (int32_t)vp_label_get(v, i);
            }
        }
        if (ok) {
            int lower = world_s(v->affine, s.centroid[0]) < world_s(v->affine, s.centroid[1]) ? 1 : 2;
            int32_t tv = (int32_t)(*tbase + nsplit), *w = (*work)->data;
            tclass[nsplit++] = cls;
            for (uint64_t z = 0; z < s.dims[2]; z++)
                for (uint64_t y = 0; y < s.dims[1]; y++)
                    for (uint64_t x = 0; x < s.dims[0]; x++)
                        if (s.part[x + s.dims[0] * (y + s.dims[1] * z)] == lower)
                            w[(x + s.lo[0]) + v->dims[0] * ((y + s.lo[1]) + v->dims[1] * (z + s.lo[2]))] = tv;
        }
        vp_split_free(&s);
    }
    return nsplit;
}

/* mains: the largest component of each effective class */
static void find_mains(const vp_ccl *c, const int64_t *ecls, uint32_t mainc[VP_SPINE_N + 1])
{
    for (int i = 0; i <= VP_SPINE_N; i++) mainc[i] = UINT32_MAX;
    for (uint32_t k = 0; k < c->ncomp; k++) {
        int64_t cls = ecls[k];
        if (is_vertebra(cls) && (mainc[cls] == UINT32_MAX || c->comps[k].size > c->comps[mainc[cls]].size)) mainc[cls] = k;
    }
}

/* ---- log ---- */

static void log_changes(struct spine *S, const int64_t *to, const int64_t *before, struct vp_lc_log *log, const char *ctx)
{
    const vp_ccl *c = S->c;
    for (uint32_t k = 0; k < c->ncomp; k++) {
        if (S->role[k] == NOT_VERTEBRA || to[k] == S->ecls[k]) continue;
        char why[96], a[24], b[24];
        uint32_t r = S->role[k] == CANDIDATE ? root(S->parent, k) : k;
        if (S->why[k]) snprintf(why, sizeof why, "%s", S->why[k]);
        else if (S->role[k] == FRAGMENT)
            snprintf(why, sizeof why, "fragment touching %s", short_name(S->ecls[S->attach[k]], a));
        else if (before[r] != S->ecls[k])
            snprintf(why, sizeof why, "part of a split vertebra, joined to its %s part", short_name(before[r], a));
        else if (S->splitpart[k])
            snprintf(why, sizeof why, "lower part of a component holding two vertebrae; order along S/I");
        else snprintf(why, sizeof why, "order along S/I");
        struct vp_lc_change ch = {"spine-order", S->ecls[k], to[k], 1, c->comps[k].size, 1,
                                  {c->comps[k].centroid[0], c->comps[k].centroid[1], c->comps[k].centroid[2]},
                                  world_s(S->aff, c->comps[k].centroid), {0}};
        snprintf(ch.why, sizeof ch.why, "%s", why);
        vp_lc_log_add(log, &ch);
        vp_info("%s: spine-order: component of %llu voxels at voxel (%.1f, %.1f, %.1f), S=%.1f mm: %s -> %s (%s)", ctx,
                (unsigned long long)ch.voxels, ch.centroid[0], ch.centroid[1], ch.centroid[2], ch.s_mm,
                short_name(ch.from, a), short_name(ch.to, b), why);
    }
}

int vp_spine_order(vp_vol *v, int conn, int reassign, struct vp_lc_log *log, const char *ctx)
{
    vp_ccl c;
    if (vp_ccl_label(v, conn, &c, ctx)) return -1;
    uint32_t mainc[VP_SPINE_N + 1];
    int64_t *ecls = vp_malloc((c.ncomp ? c.ncomp : 1) * sizeof *ecls);
    for (uint32_t k = 0; k < c.ncomp; k++) ecls[k] = is_vertebra(c.comps[k].cls) ? c.comps[k].cls : 0;
    find_mains(&c, ecls, mainc);

    /* components holding two vertebrae: relabel on an i32 copy with temporary values */
    vp_vol *work = NULL;
    int64_t tbase = 0, tclass[VP_SPINE_N];
    int nsplit = split_merged(v, &c, mainc, &work, &tbase, tclass, ctx);
    if (nsplit) {
        vp_ccl_free(&c);
        if (vp_ccl_label(work, conn, &c, ctx)) { vp_vol_free(&work); free(ecls); return -1; }
        ecls = vp_realloc(ecls, (c.ncomp ? c.ncomp : 1) * sizeof *ecls);
    }
    uint32_t n = c.ncomp;
    uint8_t *splitpart = vp_calloc(n ? n : 1, 1);
    for (uint32_t k = 0; k < n; k++) {
        int64_t v0 = c.comps[k].cls;
        int temp = nsplit && v0 >= tbase && v0 < tbase + nsplit;
        ecls[k] = temp ? tclass[v0 - tbase] : is_vertebra(v0) ? v0 : 0;
        splitpart[k] = (uint8_t)temp;
    }
    find_mains(&c, ecls, mainc);
    uint64_t msz[VP_SPINE_N];
    int nm = 0;
    for (int i = 1; i <= VP_SPINE_N; i++)
        if (mainc[i] != UINT32_MAX) msz[nm++] = c.comps[mainc[i]].size;
    if (!nm) { vp_ccl_free(&c); free(ecls); free(splitpart); return 0; }
    for (int i = 1; i < nm; i++) /* sort the few main sizes for the median */
        for (int j = i; j > 0 && msz[j - 1] > msz[j]; j--) { uint64_t t = msz[j]; msz[j] = msz[j - 1]; msz[j - 1] = t; }
    double ref = nm % 2 ? (double)msz[nm / 2] : 0.5 * ((double)msz[nm / 2 - 1] + (double)msz[nm / 2]);

    struct edges E = {NULL, 0, 0};
    vp_ccl_contacts(&c, on_contact, &E);
    if (E.n) qsort(E.v, E.n, sizeof *E.v, cmp_edge);
    size_t ne = 0;
    for (size_t i = 0; i < E.n; i++) {
        if (ne && E.v[ne - 1].a == E.v[i].a && E.v[ne - 1].b == E.v[i].b) E.v[ne - 1].n += E.v[i].n;
        else E.v[ne++] = E.v[i];
    }
    size_t nn = n ? n : 1;
    struct spine S = {&c, v->affine, ecls, splitpart, E.v, vp_calloc(nn + 1, sizeof(uint64_t)), vp_calloc(nn, 1),
                      vp_malloc(nn * sizeof(uint32_t)), vp_calloc(nn, sizeof(uint64_t)), vp_calloc(nn, sizeof(uint32_t)),
                      vp_calloc(nn, sizeof(int64_t)), vp_calloc(nn, sizeof(char *))};
    for (size_t i = 0; i < ne; i++) S.adj[E.v[i].a + 1]++;
    for (uint32_t k = 0; k < n; k++) S.adj[k + 1] += S.adj[k];
    for (uint32_t k = 0; k < n; k++) { S.parent[k] = k; S.gsize[k] = c.comps[k].size; }

    find_fragments(&S, mainc);
    join_splits(&S, mainc, ne);
    remove_islands(&S, ref);
    /* a group takes the class of its largest component */
    uint32_t *big = vp_malloc(nn * sizeof *big);
    for (uint32_t k = 0; k < n; k++) big[k] = UINT32_MAX;
    for (uint32_t k = 0; k < n; k++) {
        if (S.role[k] != CANDIDATE) continue;
        uint32_t r = root(S.parent, k);
        if (big[r] == UINT32_MAX || c.comps[k].size > c.comps[big[r]].size) big[r] = k;
    }
    for (uint32_t k = 0; k < n; k++)
        if (S.role[k] == CANDIDATE && root(S.parent, k) == k) S.label[k] = ecls[big[k]];
    int64_t *before = vp_malloc(nn * sizeof *before); /* group classes before ordering */
    memcpy(before, S.label, nn * sizeof *before);
    order_groups(&S, ctx);

    /* final classes: every vertebra component gets its group's label, removed ones 0 (or reassigned) */
    uint8_t *change = vp_calloc(nn, 1), *removed = vp_calloc(nn, 1);
    int64_t *to = vp_calloc(nn, sizeof *to);
    for (uint32_t k = 0; k < n; k++) {
        uint32_t g = group_of(&S, k);
        if (S.role[k] == REMOVED) removed[k] = 1;
        else if (g != UINT32_MAX) to[k] = S.label[g];
    }
    if (reassign) {
        vp_lc_reassign_targets(&c, removed, to);
        for (uint32_t k = 0; k < n; k++) /* a temporary value stands for its class */
            if (removed[k] && nsplit && to[k] >= tbase && to[k] < tbase + nsplit) to[k] = tclass[to[k] - tbase];
    }
    for (uint32_t k = 0; k < n; k++) change[k] = S.role[k] != NOT_VERTEBRA && to[k] != ecls[k];
    log_changes(&S, to, before, log, ctx);
    vp_ccl_paint(&c, v, change, to); /* c may label the work copy: same grid, v's dtype */
    free(big);
    free(before);
    free(change);
    free(removed);
    free(to);
    free(S.e);
    free(S.adj);
    free(S.role);
    free(S.parent);
    free(S.gsize);
    free(S.attach);
    free(S.label);
    free(S.why);
    free(ecls);
    free(splitpart);
    vp_vol_free(&work);
    vp_ccl_free(&c);
    return 0;
}
