/* necksplit.c - see necksplit.h */
#include "necksplit.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

void vp_split_free(vp_split *s)
{
    free(s->part);
    s->part = NULL;
}

/* neighbour offsets of a connectivity */
static int offsets(int conn, int off[26][3])
{
    int n = 0;
    for (int dz = -1; dz <= 1; dz++)
        for (int dy = -1; dy <= 1; dy++)
            for (int dx = -1; dx <= 1; dx++) {
                int k = abs(dx) + abs(dy) + abs(dz);
                if (!k || (conn == 6 && k > 1) || (conn == 18 && k > 2)) continue;
                off[n][0] = dx;
                off[n][1] = dy;
                off[n][2] = dz;
                n++;
            }
    return n;
}

/* one erosion step with the 6-neighbour structure; outside the box is background */
static void erode(const uint8_t *in, uint8_t *out, const uint64_t d[3])
{
    for (uint64_t z = 0; z < d[2]; z++)
        for (uint64_t y = 0; y < d[1]; y++)
            for (uint64_t x = 0; x < d[0]; x++) {
                uint64_t i = x + d[0] * (y + d[1] * z);
                out[i] = in[i] && x > 0 && x + 1 < d[0] && y > 0 && y + 1 < d[1] && z > 0 && z + 1 < d[2] &&
                         in[i - 1] && in[i + 1] && in[i - d[0]] && in[i + d[0]] && in[i - d[0] * d[1]] && in[i + d[0] * d[1]];
            }
}

/* Grow the seeds (pieces a -> part 1 and b -> part 2 of the labelling pc of the mask eroded `depth`
 * times) back over the component: for j = depth-1 .. 0, breadth-first within the voxels that survive
 * j erosions (lev >= j), one layer at a time; an unassigned voxel next to the last layer goes to the
 * part with more neighbours in that layer (ties: part 1, the larger seed). The result does not depend
 * on the memory order, so not on the orientation. Fills s->part, sizes and centroids. */
static void regrow(const vp_ccl *pc, uint32_t a, uint32_t b, const uint8_t *lev, int depth, const uint64_t d[3], int conn, vp_split *s)
{
    uint64_t nbox = d[0] * d[1] * d[2];
    memset(s->part, 0, nbox);
    uint64_t *front = vp_malloc(nbox * sizeof *front), *cand = vp_malloc(nbox * sizeof *cand), nf = 0;
    uint8_t (*votes)[2] = vp_calloc(nbox, sizeof *votes);
    for (uint64_t r = 0; r < d[1] * d[2]; r++)
        for (uint64_t i = pc->row[r]; i < pc->row[r + 1]; i++) {
            uint8_t p = pc->comp[i] == a ? 1 : pc->comp[i] == b ? 2 : 0;
            if (p) memset(s->part + r * d[0] + pc->x0[i], p, (size_t)pc->x1[i] - pc->x0[i] + 1);
        }
    int off[26][3], no = offsets(conn, off);
    for (int j = depth - 1; j >= 0; j--) {
        nf = 0;
        for (uint64_t i = 0; i < nbox; i++)
            if (s->part[i]) front[nf++] = i;
        while (nf) {
            uint64_t nc = 0;
            for (uint64_t f = 0; f < nf; f++) {
                uint64_t i = front[f];
                int64_t x = (int64_t)(i % d[0]), y = (int64_t)(i / d[0] % d[1]), z = (int64_t)(i / (d[0] * d[1]));
                for (int o = 0; o < no; o++) {
                    int64_t ax = x + off[o][0], ay = y + off[o][1], az = z + off[o][2];
                    if (ax < 0 || ay < 0 || az < 0 || ax >= (int64_t)d[0] || ay >= (int64_t)d[1] || az >= (int64_t)d[2]) continue;
                    uint64_t q = (uint64_t)ax + d[0] * ((uint64_t)ay + d[1] * (uint64_t)az);
                    if (lev[q] == 255 || lev[q] < j || s->part[q]) continue;
                    if (!votes[q][0] && !votes[q][1]) cand[nc++] = q;
                    votes[q][s->part[i] - 1]++;
                }
            }
            for (uint64_t k = 0; k < nc; k++) {
                uint64_t q = cand[k];
                s->part[q] = votes[q][1] > votes[q][0] ? 2 : 1;
                votes[q][0] = votes[q][1] = 0;
                front[k] = q;
            }
            nf = nc;
        }
    }
    free(front);
    free(cand);
    free(votes);
    double sum[2][3] = {{0, 0, 0}, {0, 0, 0}};
    s->size[0] = s->size[1] = 0;
    for (uint64_t i = 0; i < nbox; i++) {
        if (!s->part[i]) continue;
        int p = s->part[i] - 1;
        s->size[p]++;
        sum[p][0] += (double)(i % d[0] + s->lo[0]);
        sum[p][1] += (double)(i / d[0] % d[1] + s->lo[1]);
        sum[p][2] += (double)(i / (d[0] * d[1]) + s->lo[2]);
    }
    for (int p = 0; p < 2; p++)
        for (int k = 0; k < 3; k++) s->centroid[p][k] = s->size[p] ? sum[p][k] / (double)s->size[p] : 0;
}

int vp_neck_split(const vp_ccl *c, uint32_t k, int max_erode, double min_part, vp_split *s)
{
    const struct vp_ccl_comp *q = &c->comps[k];
    memset(s, 0, sizeof *s);
    uint64_t ny = c->dims[1], d[4] = {0, 0, 0, 1};
    for (int a = 0; a < 3; a++) {
        s->lo[a] = q->lo[a];
        d[a] = s->dims[a] = (uint64_t)q->hi[a] - q->lo[a] + 1;
    }
    uint64_t nbox = d[0] * d[1] * d[2];
    vp_vol *cur = vp_vol_new(d, VP_U8, NULL), *next = vp_vol_new(d, VP_U8, NULL);
    uint8_t *mask = vp_calloc(nbox, 1);
    for (uint64_t z = q->lo[2]; z <= q->hi[2]; z++)
        for (uint64_t y = q->lo[1]; y <= q->hi[1]; y++) {
            uint64_t r = y + ny * z;
            for (uint64_t i = c->row[r]; i < c->row[r + 1]; i++)
                if (c->comp[i] == k)
                    memset(mask + (c->x0[i] - s->lo[0]) + d[0] * ((y - s->lo[1]) + d[1] * (z - s->lo[2])), 1, (size_t)c->x1[i] - c->x0[i] + 1);
        }
    memcpy(cur->data, mask, nbox);
    uint8_t *lev = vp_malloc(nbox); /* erosions a voxel survives; 255 outside the component */
    for (uint64_t i = 0; i < nbox; i++) lev[i] = mask[i] ? 0 : 255;
    s->part = vp_malloc(nbox);
    int found = 0;
    for (int step = 1; step <= max_erode && !found; step++) {
        erode(cur->data, next->data, d);
        for (uint64_t i = 0; i < nbox; i++)
            if (((uint8_t *)next->data)[i]) lev[i] = (uint8_t)step;
        vp_ccl pc;
        if (vp_ccl_label(next, c->conn, &pc, "neck split")) break;
        uint32_t npieces = pc.ncomp;
        if (npieces >= 2) {
            uint32_t a = 0, b = UINT32_MAX; /* the two largest, ties: the lower number */
            for (uint32_t j = 1; j < pc.ncomp; j++)
                if (pc.comps[j].size > pc.comps[a].size) a = j;
            for (uint32_t j = 0; j < pc.ncomp; j++)
                if (j != a && (b == UINT32_MAX || pc.comps[j].size > pc.comps[b].size)) b = j;
            regrow(&pc, a, b, lev, step, d, c->conn, s);
            double lim = min_part * (double)q->size;
            found = (double)s->size[0] >= lim && (double)s->size[1] >= lim;
            s->depth = step;
        }
        vp_ccl_free(&pc);
        if (npieces == 0) break;
        vp_vol *t = cur;
        cur = next;
        next = t;
    }
    if (!found) vp_split_free(s);
    free(lev);
    free(mask);
    vp_vol_free(&cur);
    vp_vol_free(&next);
    return found;
}
