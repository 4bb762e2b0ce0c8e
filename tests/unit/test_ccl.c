/* Unit tests of lib/ccl: the run-based labeller against a plain flood fill written here (component
 * numbering, sizes, bounding boxes, centroids, contacts), for the three connectivities, every dtype,
 * thread counts 1..4, and volumes shaped to stress slabs and rows (1-voxel axes, long x rows). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "ccl.h"
#include "cli.h"
#include "volume.h"

/* ---- reference: flood fill in scipy's scan order (x slowest, z fastest) ---- */

static int in_structure(int dx, int dy, int dz, int conn)
{
    int k = abs(dx) + abs(dy) + abs(dz);
    if (k == 0) return 0;
    return conn == 6 ? k == 1 : conn == 18 ? k <= 2 : 1;
}

/* ids (x fastest) numbered by first voxel in (x, y, z) order; returns the count */
static int32_t flood(const vp_vol *v, int conn, int32_t *ids)
{
    int64_t nx = (int64_t)v->dims[0], ny = (int64_t)v->dims[1], nz = (int64_t)v->dims[2], n = nx * ny * nz;
    memset(ids, 0, (size_t)n * sizeof *ids);
    int64_t *stack = malloc((size_t)n * sizeof *stack);
    int32_t next = 0;
    for (int64_t x = 0; x < nx; x++)
        for (int64_t y = 0; y < ny; y++)
            for (int64_t z = 0; z < nz; z++) {
                int64_t i = x + nx * (y + ny * z);
                double val = vp_vol_get(v, (uint64_t)i);
                if (val == 0 || ids[i]) continue;
                ids[i] = ++next;
                int64_t sp = 0;
                stack[sp++] = i;
                while (sp) {
                    int64_t j = stack[--sp], jx = j % nx, jy = j / nx % ny, jz = j / (nx * ny);
                    for (int dz = -1; dz <= 1; dz++)
                        for (int dy = -1; dy <= 1; dy++)
                            for (int dx = -1; dx <= 1; dx++) {
                                if (!in_structure(dx, dy, dz, conn)) continue;
                                int64_t ax = jx + dx, ay = jy + dy, az = jz + dz;
                                if (ax < 0 || ay < 0 || az < 0 || ax >= nx || ay >= ny || az >= nz) continue;
                                int64_t q = ax + nx * (ay + ny * az);
                                if (ids[q] || vp_vol_get(v, (uint64_t)q) != val) continue;
                                ids[q] = next;
                                stack[sp++] = q;
                            }
                }
            }
    free(stack);
    return next;
}

static unsigned rnd(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (*s >> 16) & 0x7fff;
}

/* random blobs of nclass classes with density ~ fill/100 and some smoothing along x */
static vp_vol *random_vol(enum vp_dtype t, uint64_t nx, uint64_t ny, uint64_t nz, int nclass, int fill, unsigned seed)
{
    uint64_t dims[4] = {nx, ny, nz, 1};
    vp_vol *v = vp_vol_new(dims, t, NULL);
    uint64_t n = nx * ny * nz;
    int32_t cur = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (rnd(&seed) % 100 < 30) cur = (int)(rnd(&seed) % 100) < fill ? 1 + (int32_t)(rnd(&seed) % (unsigned)nclass) : 0;
        int32_t val = cur;
        if (t == VP_I16 && val) val = -val * 1000;     /* negative values are classes too */
        if (t == VP_I32 && val) val = val * 70000 - 3; /* beyond 16 bits */
        if (t == VP_U16 && val) val = val * 1000 + 7;
        switch (t) {
        case VP_U8: ((uint8_t *)v->data)[i] = (uint8_t)val; break;
        case VP_U16: ((uint16_t *)v->data)[i] = (uint16_t)val; break;
        case VP_I16: ((int16_t *)v->data)[i] = (int16_t)val; break;
        default: ((int32_t *)v->data)[i] = val; break;
        }
    }
    return v;
}

/* full check of vp_ccl_label against the flood fill */
static void check_vol(const vp_vol *v, int conn)
{
    uint64_t n = vp_vol_nvox(v), nx = v->dims[0], ny = v->dims[1];
    int32_t *want = malloc(n * sizeof *want), *got = malloc(n * sizeof *got);
    int32_t nwant = flood(v, conn, want);
    vp_ccl c;
    cr_assert_eq(vp_ccl_label(v, conn, &c, "test"), 0);
    cr_assert_eq((int32_t)c.ncomp, nwant, "conn %d: %u components, flood fill %d", conn, c.ncomp, nwant);
    vp_ccl_ids(&c, got);
    cr_assert_eq(memcmp(want, got, n * sizeof *got), 0, "conn %d: component ids differ", conn);
    /* statistics from the ids */
    for (uint32_t k = 0; k < c.ncomp; k++) {
        uint64_t size = 0;
        double sum[3] = {0, 0, 0};
        uint32_t lo[3] = {UINT32_MAX, UINT32_MAX, UINT32_MAX}, hi[3] = {0, 0, 0};
        int64_t cls = 0;
        for (uint64_t i = 0; i < n; i++) {
            if (want[i] != (int32_t)k + 1) continue;
            uint32_t p[3] = {(uint32_t)(i % nx), (uint32_t)(i / nx % ny), (uint32_t)(i / (nx * ny))};
            if (!size) cls = (int64_t)vp_vol_get(v, i);
            size++;
            for (int d = 0; d < 3; d++) {
                sum[d] += p[d];
                if (p[d] < lo[d]) lo[d] = p[d];
                if (p[d] > hi[d]) hi[d] = p[d];
            }
        }
        const struct vp_ccl_comp *q = &c.comps[k];
        cr_assert_eq(q->size, size);
        cr_assert_eq(q->cls, cls);
        for (int d = 0; d < 3; d++) {
            cr_assert_eq(q->lo[d], lo[d]);
            cr_assert_eq(q->hi[d], hi[d]);
            cr_assert_float_eq(q->centroid[d], sum[d] / (double)size, 1e-9);
        }
    }
    vp_ccl_free(&c);
    free(want);
    free(got);
}

static const enum vp_dtype dtypes[] = {VP_U8, VP_U16, VP_I16, VP_I32};

Test(ccl, matches_flood_fill_all_connectivities_and_dtypes)
{
    const int conns[] = {6, 18, 26};
    for (int t = 0; t < 4; t++)
        for (int k = 0; k < 3; k++) {
            vp_vol *v = random_vol(dtypes[t], 23, 17, 13, 3, 60, 11u + (unsigned)t);
            check_vol(v, conns[k]);
            vp_vol_free(&v);
        }
}

Test(ccl, odd_shapes_and_thread_counts)
{
    const uint64_t shapes[][3] = {{1, 1, 1}, {1, 1, 40}, {40, 1, 1}, {1, 30, 1}, {70, 3, 2}, {2, 2, 33}, {9, 8, 31}, {300, 2, 5}};
    for (int th = 1; th <= 4; th++) {
        vp_threads = th;
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            vp_vol *v = random_vol(VP_U8, shapes[s][0], shapes[s][1], shapes[s][2], 2, 70, 100u + (unsigned)s);
            check_vol(v, 26);
            check_vol(v, 6);
            vp_vol_free(&v);
        }
    }
    vp_threads = 1;
}

Test(ccl, empty_and_full_volumes)
{
    uint64_t dims[4] = {5, 4, 3, 1};
    vp_vol *v = vp_vol_new(dims, VP_U8, NULL);
    vp_ccl c;
    cr_assert_eq(vp_ccl_label(v, 26, &c, "test"), 0);
    cr_assert_eq(c.ncomp, 0);
    vp_ccl_free(&c);
    memset(v->data, 9, 60);
    cr_assert_eq(vp_ccl_label(v, 6, &c, "test"), 0);
    cr_assert_eq(c.ncomp, 1);
    cr_assert_eq(c.comps[0].size, 60);
    cr_assert_eq(c.comps[0].cls, 9);
    cr_assert(vp_ccl_touches_border(&c, 0));
    vp_ccl_free(&c);
    vp_vol_free(&v);
}

/* two voxels meeting at an edge or a corner: joined by 18/26 or 26 only */
Test(ccl, diagonal_neighbours_follow_the_connectivity)
{
    uint64_t dims[4] = {3, 3, 3, 1};
    vp_vol *v = vp_vol_new(dims, VP_U8, NULL);
    uint8_t *p = v->data;
    p[0] = 1;
    p[1 + 3 * 1] = 1; /* (1,1,0): edge neighbour of (0,0,0) */
    p[2 + 3 * (2 + 3 * 1)] = 1; /* (2,2,1): corner neighbour of (1,1,0) */
    const int conns[] = {6, 18, 26}, want[] = {3, 2, 1};
    for (int k = 0; k < 3; k++) {
        vp_ccl c;
        cr_assert_eq(vp_ccl_label(v, conns[k], &c, "test"), 0);
        cr_assert_eq(c.ncomp, (uint32_t)want[k], "conn %d", conns[k]);
        vp_ccl_free(&c);
    }
    vp_vol_free(&v);
}

Test(ccl, refuses_float_several_channels_and_bad_connectivity)
{
    uint64_t d3[4] = {2, 2, 2, 1}, d4[4] = {2, 2, 2, 2};
    vp_vol *f = vp_vol_new(d3, VP_F32, NULL), *m = vp_vol_new(d4, VP_U8, NULL), *u = vp_vol_new(d3, VP_U8, NULL);
    vp_ccl c;
    cr_assert_eq(vp_ccl_label(f, 26, &c, "test"), -1);
    cr_assert_eq(vp_ccl_label(m, 26, &c, "test"), -1);
    cr_assert_eq(vp_ccl_label(u, 8, &c, "test"), -1);
    vp_vol_free(&f);
    vp_vol_free(&m);
    vp_vol_free(&u);
}

/* contacts: summed per component pair, against counting neighbour voxel pairs directly */
struct pairs { uint32_t n; uint64_t *m; };
static void add_contact(void *ctx, uint32_t a, uint32_t b, uint64_t n)
{
    struct pairs *P = ctx;
    P->m[(uint64_t)a * P->n + b] += n;
    P->m[(uint64_t)b * P->n + a] += n;
}

Test(ccl, contacts_count_neighbouring_voxel_pairs)
{
    const int conns[] = {6, 18, 26};
    for (int k = 0; k < 3; k++) {
        vp_vol *v = random_vol(VP_U8, 14, 11, 9, 4, 80, 7u);
        vp_ccl c;
        cr_assert_eq(vp_ccl_label(v, conns[k], &c, "test"), 0);
        uint64_t n = vp_vol_nvox(v);
        int32_t *ids = malloc(n * sizeof *ids);
        vp_ccl_ids(&c, ids);
        struct pairs got = {c.ncomp, calloc((size_t)c.ncomp * c.ncomp, sizeof(uint64_t))};
        uint64_t *want = calloc((size_t)c.ncomp * c.ncomp, sizeof(uint64_t));
        vp_ccl_contacts(&c, add_contact, &got);
        int nx = 14, ny = 11, nz = 9;
        for (int z = 0; z < nz; z++)
            for (int y = 0; y < ny; y++)
                for (int x = 0; x < nx; x++)
                    for (int dz = -1; dz <= 1; dz++)
                        for (int dy = -1; dy <= 1; dy++)
                            for (int dx = -1; dx <= 1; dx++) {
                                if (!in_structure(dx, dy, dz, conns[k])) continue;
                                int ax = x + dx, ay = y + dy, az = z + dz;
                                if (ax < 0 || ay < 0 || az < 0 || ax >= nx || ay >= ny || az >= nz) continue;
                                int32_t a = ids[x + nx * (y + ny * z)], b = ids[ax + nx * (ay + ny * az)];
                                if (a && b && a != b) want[(uint64_t)(a - 1) * c.ncomp + (uint64_t)(b - 1)]++;
                            }
        cr_assert_eq(memcmp(want, got.m, (size_t)c.ncomp * c.ncomp * sizeof(uint64_t)), 0, "conn %d", conns[k]);
        free(want);
        free(got.m);
        free(ids);
        vp_ccl_free(&c);
        vp_vol_free(&v);
    }
}

Test(ccl, paint_changes_only_the_chosen_components)
{
    vp_vol *v = random_vol(VP_I16, 12, 10, 8, 3, 70, 5u);
    vp_ccl c;
    cr_assert_eq(vp_ccl_label(v, 26, &c, "test"), 0);
    uint64_t n = vp_vol_nvox(v);
    int32_t *ids = malloc(n * sizeof *ids);
    vp_ccl_ids(&c, ids);
    int16_t *before = malloc(n * sizeof *before);
    memcpy(before, v->data, n * sizeof *before);
    uint8_t *change = calloc(c.ncomp, 1);
    int64_t *to = calloc(c.ncomp, sizeof *to);
    for (uint32_t k = 0; k < c.ncomp; k += 2) { change[k] = 1; to[k] = -7; }
    vp_ccl_paint(&c, v, change, to);
    const int16_t *after = v->data;
    for (uint64_t i = 0; i < n; i++) {
        int changed = ids[i] && change[ids[i] - 1];
        cr_assert_eq(after[i], changed ? -7 : before[i]);
    }
    free(ids);
    free(before);
    free(change);
    free(to);
    vp_ccl_free(&c);
    vp_vol_free(&v);
}

/* ---- lib/necksplit: two blocks joined by a one-voxel bridge come apart exactly; one block does not ---- */
#include "necksplit.h"

Test(necksplit, two_blocks_joined_by_a_bridge_split_exactly)
{
    uint64_t dims[4] = {9, 9, 20, 1};
    vp_vol *v = vp_vol_new(dims, VP_U8, NULL);
    uint8_t *p = v->data;
    for (uint64_t z = 0; z < 20; z++)
        for (uint64_t y = 1; y < 8; y++)
            for (uint64_t x = 1; x < 8; x++) {
                int lower = z >= 1 && z < 8, upper = z >= 11 && z < 19;
                int bridge = x == 4 && y == 4 && z >= 8 && z < 11;
                if (lower || upper || bridge) p[x + 9 * (y + 9 * z)] = 5;
            }
    vp_ccl c;
    cr_assert_eq(vp_ccl_label(v, 26, &c, "test"), 0);
    cr_assert_eq(c.ncomp, 1);
    vp_split s;
    cr_assert_eq(vp_neck_split(&c, 0, 3, 0.25, &s), 1);
    cr_assert_eq(s.depth, 1);
    /* every block voxel in its block's part; the bridge voxels split between them */
    int part_lower = 0, part_upper = 0;
    for (uint64_t z = 0; z < s.dims[2]; z++)
        for (uint64_t y = 0; y < s.dims[1]; y++)
            for (uint64_t x = 0; x < s.dims[0]; x++) {
                uint8_t q = s.part[x + s.dims[0] * (y + s.dims[1] * z)];
                uint64_t gz = z + s.lo[2];
                if (gz < 8) { cr_assert(q); if (!part_lower) part_lower = q; cr_assert_eq(q, part_lower); }
                if (gz >= 11 && q) { if (!part_upper) part_upper = q; cr_assert_eq(q, part_upper); }
            }
    cr_assert_neq(part_lower, part_upper);
    cr_assert_eq(s.size[0] + s.size[1], c.comps[0].size);
    cr_assert(s.size[part_lower - 1] >= 7 * 7 * 7 && s.size[part_upper - 1] >= 7 * 7 * 8);
    vp_split_free(&s);
    vp_ccl_free(&c);

    /* without the upper block: nothing to split */
    memset(p + 9 * 9 * 9, 0, 9 * 9 * 11);
    cr_assert_eq(vp_ccl_label(v, 26, &c, "test"), 0);
    cr_assert_eq(vp_neck_split(&c, 0, 3, 0.25, &s), 0);
    cr_assert_null(s.part);
    vp_ccl_free(&c);
    vp_vol_free(&v);
}
