/* reorient.c - see reorient.h */
#include "reorient.h"
#include "parallel.h"
#include "util.h"

#include <string.h>

/* world axis (0 R/L, 1 A/P, 2 S/I) and sign (+1 for R, A, S) of a code letter; -1 if none */
static int letter_axis(char l, int *sign)
{
    static const char pos[] = "RAS", neg[] = "LPI";
    for (int a = 0; a < 3; a++) {
        if (l == pos[a]) { *sign = 1; return a; }
        if (l == neg[a]) { *sign = -1; return a; }
    }
    return -1;
}

int vp_axcode_valid(const char *code)
{
    if (!code || strlen(code) != 3) return -1;
    int seen[3] = {0, 0, 0}, s;
    for (int j = 0; j < 3; j++) {
        int a = letter_axis(code[j], &s);
        if (a < 0 || seen[a]++) return -1;
    }
    return 0;
}

int vp_reorient_plan(const vp_vol *v, const char *code, int perm[3], int flip[3])
{
    char cur[4];
    vp_affine_axcodes(v->affine, cur);
    if (vp_axcode_valid(cur)) return -1;
    for (int j = 0; j < 3; j++) {
        int sj = 0, si = 0;
        int wa = letter_axis(code[j], &sj);
        perm[j] = -1;
        for (int i = 0; i < 3; i++)
            if (letter_axis(cur[i], &si) == wa) { perm[j] = i; flip[j] = si != sj; }
        if (perm[j] < 0) return -1;
    }
    return 0;
}

struct ro_ctx {
    const vp_vol *in;
    vp_vol *out;
    size_t es;
    uint64_t on[3];         /* output dims */
    int64_t step[3];        /* input element step per output axis step */
    int64_t start;          /* input element of output voxel 0 */
    uint64_t nvin, nvout, nch;
};

/* output rows r = (channel, z, y) in [r0, r1) */
static void ro_rows(void *ctx, uint64_t r0, uint64_t r1, int worker)
{
    const struct ro_ctx *c = ctx;
    const unsigned char *src = c->in->data;
    unsigned char *dst = c->out->data;
    for (uint64_t r = r0; r < r1; r++) {
        uint64_t y = r % c->on[1], z = r / c->on[1] % c->on[2], ch = r / (c->on[1] * c->on[2]);
        int64_t s = c->start + (int64_t)y * c->step[1] + (int64_t)z * c->step[2] + (int64_t)(ch * c->nvin);
        unsigned char *o = dst + r * c->on[0] * c->es;
        const int64_t st = c->step[0];
        switch (c->es) {
        case 1: for (uint64_t x = 0; x < c->on[0]; x++, s += st) o[x] = src[s]; break;
        case 2: for (uint64_t x = 0; x < c->on[0]; x++, s += st) ((uint16_t *)o)[x] = ((const uint16_t *)src)[s]; break;
        case 4: for (uint64_t x = 0; x < c->on[0]; x++, s += st) ((uint32_t *)o)[x] = ((const uint32_t *)src)[s]; break;
        default: for (uint64_t x = 0; x < c->on[0]; x++, s += st) memcpy(o + x * c->es, src + s * (int64_t)c->es, c->es);
        }
    }
    (void)worker;
}

vp_vol *vp_reorient(const vp_vol *v, const char *code, const char *ctx)
{
    int perm[3], flip[3];
    if (vp_reorient_plan(v, code, perm, flip)) {
        char cur[4];
        vp_affine_axcodes(v->affine, cur);
        vp_error("%s: cannot tell the orientation of the affine (axis code '%s')", ctx, cur);
        return NULL;
    }
    uint64_t dims[4] = {v->dims[perm[0]], v->dims[perm[1]], v->dims[perm[2]], v->dims[3]};
    double aff[16];
    memcpy(aff, v->affine, sizeof aff);
    int64_t istride[3] = {1, (int64_t)v->dims[0], (int64_t)(v->dims[0] * v->dims[1])};
    struct ro_ctx c = {v, NULL, vp_dtype_size(v->dtype), {dims[0], dims[1], dims[2]}, {0, 0, 0}, 0,
                       v->dims[0] * v->dims[1] * v->dims[2], dims[0] * dims[1] * dims[2], v->dims[3]};
    /* output voxel o sits at input index p with p[perm[j]] = flip[j] ? n - 1 - o[j] : o[j] */
    for (int j = 0; j < 3; j++) {
        int i = perm[j];
        double sg = flip[j] ? -1.0 : 1.0;
        for (int r = 0; r < 3; r++) aff[r * 4 + j] = sg * v->affine[r * 4 + i];
        c.step[j] = flip[j] ? -istride[i] : istride[i];
        if (flip[j]) c.start += (int64_t)(v->dims[i] - 1) * istride[i];
    }
    for (int r = 0; r < 3; r++) { /* the world position of the new voxel 0 */
        double t = v->affine[r * 4 + 3];
        for (int i = 0; i < 3; i++) {
            int j = 0;
            while (perm[j] != i) j++;
            if (flip[j]) t += v->affine[r * 4 + i] * (double)(v->dims[i] - 1);
        }
        aff[r * 4 + 3] = t;
    }
    vp_vol *out = vp_vol_new(dims, v->dtype, aff);
    out->has_channels = v->has_channels;
    c.out = out;
    vp_parallel_for(dims[1] * dims[2] * dims[3], 0, ro_rows, &c);
    return out;
}
