/* crop.c - see crop.h */
#include "crop.h"
#include "parallel.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- foreground bounding box ---- */

struct slice_box {
    int any;
    int64_t x0, x1, y0, y1; /* inclusive */
};

struct fg_ctx {
    const vp_vol *v;
    double thr;
    struct slice_box *sb; /* one per (channel, z) slice */
};

static void fg_range(void *p, uint64_t b, uint64_t e, int worker)
{
    struct fg_ctx *c = p;
    const vp_vol *v = c->v;
    uint64_t nx = v->dims[0], ny = v->dims[1];
    for (uint64_t s = b; s < e; s++) {
        struct slice_box r = {0, INT64_MAX, -1, INT64_MAX, -1};
        for (uint64_t y = 0; y < ny; y++) {
            uint64_t row = (s * ny + y) * nx;
            int64_t first = -1, last = -1;
#define SCAN(T)                                                                              \
            do {                                                                             \
                const T *q = (const T *)v->data + row;                                       \
                for (uint64_t x = 0; x < nx; x++) if ((double)q[x] > c->thr) { first = (int64_t)x; break; } \
                if (first >= 0)                                                              \
                    for (uint64_t x = nx; x-- > 0;) if ((double)q[x] > c->thr) { last = (int64_t)x; break; } \
            } while (0)
            switch (v->dtype) {
            case VP_U8: SCAN(uint8_t); break;
            case VP_I16: SCAN(int16_t); break;
            case VP_U16: SCAN(uint16_t); break;
            case VP_I32: SCAN(int32_t); break;
            case VP_F32: SCAN(float); break;
            default:
                for (uint64_t x = 0; x < nx; x++) if (vp_vol_get(v, row + x) > c->thr) { first = (int64_t)x; break; }
                if (first >= 0)
                    for (uint64_t x = nx; x-- > 0;) if (vp_vol_get(v, row + x) > c->thr) { last = (int64_t)x; break; }
            }
#undef SCAN
            if (first < 0) continue;
            r.any = 1;
            if (first < r.x0) r.x0 = first;
            if (last > r.x1) r.x1 = last;
            if ((int64_t)y < r.y0) r.y0 = (int64_t)y;
            r.y1 = (int64_t)y;
        }
        c->sb[s] = r;
    }
}

int vp_fg_bbox(const vp_vol *v, double thr, struct vp_box *b)
{
    uint64_t nz = v->dims[2], ns = nz * v->dims[3];
    struct fg_ctx c = {v, thr, vp_calloc(ns, sizeof(struct slice_box))};
    vp_parallel_for(ns, 1, fg_range, &c);
    struct vp_box r = {{INT64_MAX, INT64_MAX, INT64_MAX}, {-1, -1, -1}};
    int found = 0;
    for (uint64_t s = 0; s < ns; s++) {
        const struct slice_box *q = &c.sb[s];
        if (!q->any) continue;
        found = 1;
        int64_t z = (int64_t)(s % nz);
        if (q->x0 < r.lo[0]) r.lo[0] = q->x0;
        if (q->x1 + 1 > r.hi[0]) r.hi[0] = q->x1 + 1;
        if (q->y0 < r.lo[1]) r.lo[1] = q->y0;
        if (q->y1 + 1 > r.hi[1]) r.hi[1] = q->y1 + 1;
        if (z < r.lo[2]) r.lo[2] = z;
        if (z + 1 > r.hi[2]) r.hi[2] = z + 1;
    }
    free(c.sb);
    if (found) *b = r;
    return found;
}

void vp_box_add_margin(struct vp_box *b, const int64_t margin[3], const uint64_t dims[3], int allow_smaller)
{
    for (int a = 0; a < 3; a++) {
        b->lo[a] -= margin[a];
        b->hi[a] += margin[a];
        if (allow_smaller) {
            if (b->lo[a] < 0) b->lo[a] = 0;
            if (b->hi[a] > (int64_t)dims[a]) b->hi[a] = (int64_t)dims[a];
        }
    }
}

/* floor division for a possibly negative numerator, positive divisor */
static int64_t floordiv(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

void vp_box_k_divisible(struct vp_box *b, const int64_t k[3])
{
    for (int a = 0; a < 3; a++) {
        if (k[a] <= 0) continue;
        int64_t s = b->hi[a] - b->lo[a];
        int64_t ns = (s + k[a] - 1) / k[a] * k[a];
        b->lo[a] -= floordiv(ns - s, 2);
        b->hi[a] = b->lo[a] + ns;
    }
}

int vp_box_inside(const struct vp_box *b, const uint64_t dims[3])
{
    for (int a = 0; a < 3; a++)
        if (b->lo[a] < 0 || b->hi[a] > (int64_t)dims[a] || b->lo[a] >= b->hi[a]) return 0;
    return 1;
}

int vp_box_overlaps(const struct vp_box *b, const uint64_t dims[3])
{
    for (int a = 0; a < 3; a++)
        if (b->hi[a] <= 0 || b->lo[a] >= (int64_t)dims[a] || b->lo[a] >= b->hi[a]) return 0;
    return 1;
}

/* ---- voxel values ---- */

int vp_dtype_encode(enum vp_dtype t, double x, void *out)
{
    if (!isfinite(x)) return -1;
    int integral = x == floor(x);
    switch (t) {
    case VP_U8: if (!integral || x < 0 || x > 255) return -1; *(uint8_t *)out = (uint8_t)x; return 0;
    case VP_I16: if (!integral || x < -32768 || x > 32767) return -1; { int16_t y = (int16_t)x; memcpy(out, &y, 2); } return 0;
    case VP_U16: if (!integral || x < 0 || x > 65535) return -1; { uint16_t y = (uint16_t)x; memcpy(out, &y, 2); } return 0;
    case VP_I32: if (!integral || x < -2147483648.0 || x > 2147483647.0) return -1; { int32_t y = (int32_t)x; memcpy(out, &y, 4); } return 0;
    case VP_F16: if (fabs(x) > 65504) return -1; { uint16_t y = vp_float_to_half((float)x); memcpy(out, &y, 2); } return 0;
    case VP_F32: if (fabs(x) > 3.4028234663852886e38) return -1; { float y = (float)x; memcpy(out, &y, 4); } return 0;
    default: return -1;
    }
}

static void fill_bytes(unsigned char *dst, const unsigned char *val, size_t es, uint64_t n)
{
    if (n == 0) return;
    memcpy(dst, val, es);
    uint64_t have = 1;
    while (have < n) { /* doubling copy */
        uint64_t m = have < n - have ? have : n - have;
        memcpy(dst + have * es, dst, m * es);
        have += m;
    }
}

void vp_affine_shift(const double in[16], const int64_t lo[3], double out[16])
{
    double a[16];
    memcpy(a, in, sizeof a);
    for (int r = 0; r < 3; r++)
        a[r * 4 + 3] = in[r * 4 + 0] * (double)lo[0] + in[r * 4 + 1] * (double)lo[1] + in[r * 4 + 2] * (double)lo[2] + in[r * 4 + 3];
    memcpy(out, a, sizeof a);
}

static int64_t clamp64(int64_t x, int64_t lo, int64_t hi) { return x < lo ? lo : x > hi ? hi : x; }

vp_vol *vp_vol_crop(const vp_vol *v, const struct vp_box *b, enum vp_pad_mode mode, double pad)
{
    uint64_t od[4] = {(uint64_t)(b->hi[0] - b->lo[0]), (uint64_t)(b->hi[1] - b->lo[1]), (uint64_t)(b->hi[2] - b->lo[2]), v->dims[3]};
    double aff[16];
    vp_affine_shift(v->affine, b->lo, aff);
    vp_vol *o = vp_vol_new(od, v->dtype, aff);
    o->has_channels = v->has_channels;
    size_t es = vp_dtype_size(v->dtype);
    unsigned char pv[8] = {0};
    if (mode == VP_PAD_CONSTANT && vp_dtype_encode(v->dtype, pad, pv)) memset(pv, 0, sizeof pv);
    int64_t nx = (int64_t)v->dims[0], ny = (int64_t)v->dims[1], nz = (int64_t)v->dims[2];
    /* x extent of the source inside the box: [ix0, ix1) in box coordinates */
    int64_t ix0 = clamp64(-b->lo[0], 0, (int64_t)od[0]), ix1 = clamp64(nx - b->lo[0], 0, (int64_t)od[0]);
    if (ix1 < ix0) ix1 = ix0;
    const unsigned char *src = v->data;
    unsigned char *dst = o->data;
    for (uint64_t ch = 0; ch < od[3]; ch++)
        for (int64_t z = 0; z < (int64_t)od[2]; z++)
            for (int64_t y = 0; y < (int64_t)od[1]; y++) {
                unsigned char *d = dst + (((ch * od[2] + (uint64_t)z) * od[1] + (uint64_t)y) * od[0]) * es;
                int64_t sz = z + b->lo[2], sy = y + b->lo[1];
                int inside = sz >= 0 && sz < nz && sy >= 0 && sy < ny;
                if (!inside && mode == VP_PAD_CONSTANT) { fill_bytes(d, pv, es, od[0]); continue; }
                sz = clamp64(sz, 0, nz - 1);
                sy = clamp64(sy, 0, ny - 1);
                const unsigned char *s = src + (((ch * (uint64_t)nz + (uint64_t)sz) * (uint64_t)ny + (uint64_t)sy) * (uint64_t)nx) * es;
                if (mode == VP_PAD_CONSTANT) {
                    fill_bytes(d, pv, es, (uint64_t)ix0);
                    fill_bytes(d + (uint64_t)ix1 * es, pv, es, od[0] - (uint64_t)ix1);
                } else {
                    fill_bytes(d, s, es, (uint64_t)ix0);                                   /* left edge */
                    fill_bytes(d + (uint64_t)ix1 * es, s + (uint64_t)(nx - 1) * es, es, od[0] - (uint64_t)ix1);
                }
                if (ix1 > ix0) memcpy(d + (uint64_t)ix0 * es, s + (uint64_t)(ix0 + b->lo[0]) * es, (uint64_t)(ix1 - ix0) * es);
            }
    return o;
}

vp_vol *vp_vol_uncrop(const vp_vol *v, const struct vp_box *b, const uint64_t orig_dims[3],
                      const double orig_affine[16], double fill)
{
    uint64_t od[4] = {orig_dims[0], orig_dims[1], orig_dims[2], v->dims[3]};
    vp_vol *o = vp_vol_new(od, v->dtype, orig_affine);
    o->has_channels = v->has_channels;
    size_t es = vp_dtype_size(v->dtype);
    unsigned char fv[8] = {0};
    if (vp_dtype_encode(v->dtype, fill, fv)) memset(fv, 0, sizeof fv);
    fill_bytes(o->data, fv, es, vp_vol_nvox(o));
    int64_t lo[3], hi[3];
    for (int a = 0; a < 3; a++) {
        lo[a] = b->lo[a] < 0 ? 0 : b->lo[a];
        hi[a] = b->hi[a] > (int64_t)orig_dims[a] ? (int64_t)orig_dims[a] : b->hi[a];
        if (hi[a] <= lo[a]) return o; /* no overlap: all fill */
    }
    const unsigned char *src = v->data;
    unsigned char *dst = o->data;
    uint64_t vx = v->dims[0], vy = v->dims[1], vz = v->dims[2];
    for (uint64_t ch = 0; ch < od[3]; ch++)
        for (int64_t z = lo[2]; z < hi[2]; z++)
            for (int64_t y = lo[1]; y < hi[1]; y++) {
                uint64_t sz = (uint64_t)(z - b->lo[2]), sy = (uint64_t)(y - b->lo[1]), sx = (uint64_t)(lo[0] - b->lo[0]);
                memcpy(dst + (((ch * od[2] + (uint64_t)z) * od[1] + (uint64_t)y) * od[0] + (uint64_t)lo[0]) * es,
                       src + (((ch * vz + sz) * vy + sy) * vx + sx) * es, (uint64_t)(hi[0] - lo[0]) * es);
            }
    return o;
}

/* ---- meta ---- */

static void pack_rec(msgpack_packer *pk, const struct vp_crop_rec *r)
{
    msgpack_pack_map(pk, 3);
    vp_pack_cstr(pk, "box");
    msgpack_pack_array(pk, 6);
    for (int i = 0; i < 6; i++) msgpack_pack_int64(pk, i < 3 ? r->box.lo[i] : r->box.hi[i - 3]);
    vp_pack_cstr(pk, "orig_dims");
    msgpack_pack_array(pk, 3);
    for (int i = 0; i < 3; i++) msgpack_pack_uint64(pk, r->orig_dims[i]);
    vp_pack_cstr(pk, "orig_affine");
    msgpack_pack_array(pk, 16);
    for (int i = 0; i < 16; i++) msgpack_pack_double(pk, r->orig_affine[i]);
}

static int obj_int(const msgpack_object *o, int64_t *out)
{
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (o->via.u64 > INT64_MAX) return -1;
        *out = (int64_t)o->via.u64;
        return 0;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) { *out = o->via.i64; return 0; }
    return -1;
}

static int obj_num(const msgpack_object *o, double *out)
{
    if (o->type == MSGPACK_OBJECT_FLOAT64 || o->type == MSGPACK_OBJECT_FLOAT32) *out = o->via.f64;
    else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) *out = (double)o->via.u64;
    else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) *out = (double)o->via.i64;
    else return -1;
    return isfinite(*out) ? 0 : -1;
}

static const msgpack_object *map_get(const msgpack_object *m, const char *key)
{
    size_t n = strlen(key);
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n && !memcmp(k->via.str.ptr, key, n))
            return &m->via.map.ptr[i].val;
    }
    return NULL;
}

static const msgpack_object *num_array(const msgpack_object *m, const char *key, uint32_t n)
{
    const msgpack_object *a = map_get(m, key);
    return a && a->type == MSGPACK_OBJECT_ARRAY && a->via.array.size == n ? a->via.array.ptr : NULL;
}

static int parse_rec(const msgpack_object *m, struct vp_crop_rec *r, char *err, size_t errlen)
{
    if (m->type != MSGPACK_OBJECT_MAP) { snprintf(err, errlen, "record is not a map"); return -1; }
    const msgpack_object *box = num_array(m, "box", 6), *dims = num_array(m, "orig_dims", 3),
                         *aff = num_array(m, "orig_affine", 16);
    if (!box) { snprintf(err, errlen, "field 'box': not an array of 6 integers"); return -1; }
    if (!dims) { snprintf(err, errlen, "field 'orig_dims': not an array of 3 integers"); return -1; }
    if (!aff) { snprintf(err, errlen, "field 'orig_affine': not an array of 16 numbers"); return -1; }
    for (int i = 0; i < 6; i++) {
        int64_t x;
        if (obj_int(&box[i], &x) || x < -(int64_t)VP_MAX_DIM || x > 2 * (int64_t)VP_MAX_DIM) {
            snprintf(err, errlen, "field 'box': entry %d is not an integer in range", i);
            return -1;
        }
        if (i < 3) r->box.lo[i] = x; else r->box.hi[i - 3] = x;
    }
    for (int a = 0; a < 3; a++)
        if (r->box.hi[a] <= r->box.lo[a] || (uint64_t)(r->box.hi[a] - r->box.lo[a]) > VP_MAX_DIM) {
            snprintf(err, errlen, "field 'box': empty or oversized on axis %d", a);
            return -1;
        }
    for (int i = 0; i < 3; i++) {
        int64_t x;
        if (obj_int(&dims[i], &x) || x < 1 || (uint64_t)x > VP_MAX_DIM) {
            snprintf(err, errlen, "field 'orig_dims': entry %d is not an integer in 1..%llu", i, (unsigned long long)VP_MAX_DIM);
            return -1;
        }
        r->orig_dims[i] = (uint64_t)x;
    }
    for (int i = 0; i < 16; i++)
        if (obj_num(&aff[i], &r->orig_affine[i])) {
            snprintf(err, errlen, "field 'orig_affine': entry %d is not a finite number", i);
            return -1;
        }
    return 0;
}

void vp_crop_meta_push(vp_case *c, const struct vp_crop_rec *r)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    int have = vp_case_meta_parse(c, "crop", &u) == 0;
    if (have && u.data.type != MSGPACK_OBJECT_ARRAY) {
        vp_warn("case '%s': meta 'crop' is not an array; replacing it", c->id);
        have = 0;
    }
    uint32_t n = have ? u.data.via.array.size : 0;
    msgpack_pack_array(&pk, n + 1);
    for (uint32_t i = 0; i < n; i++) msgpack_pack_object(&pk, u.data.via.array.ptr[i]);
    pack_rec(&pk, r);
    vp_case_meta_set_sbuf(c, "crop", &sb);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
}

int vp_crop_meta_pop(vp_case *c, struct vp_crop_rec *r, char *err, size_t errlen)
{
    if (!vp_case_meta(c, "crop")) return 0;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    int rc;
    if (vp_case_meta_parse(c, "crop", &u)) { snprintf(err, errlen, "not valid msgpack"); rc = -1; goto out; }
    if (u.data.type != MSGPACK_OBJECT_ARRAY) { snprintf(err, errlen, "not an array of crop records"); rc = -1; goto out; }
    uint32_t n = u.data.via.array.size;
    if (!n) { rc = 0; goto out; }
    if (parse_rec(&u.data.via.array.ptr[n - 1], r, err, errlen)) { rc = -1; goto out; }
    if (n == 1) vp_case_meta_remove(c, "crop");
    else {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, n - 1);
        for (uint32_t i = 0; i + 1 < n; i++) msgpack_pack_object(&pk, u.data.via.array.ptr[i]);
        vp_case_meta_set_sbuf(c, "crop", &sb);
        msgpack_sbuffer_destroy(&sb);
    }
    rc = 1;
out:
    msgpack_unpacked_destroy(&u);
    return rc;
}
