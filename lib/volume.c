/* volume.c - see volume.h */
#include "volume.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const dtype_names[VP_NDTYPES] = {"u8", "i16", "u16", "i32", "f16", "f32"};
static const size_t dtype_sizes[VP_NDTYPES] = {1, 2, 2, 4, 2, 4};

const char *vp_dtype_name(enum vp_dtype t) { return (unsigned)t < VP_NDTYPES ? dtype_names[t] : "?"; }
size_t vp_dtype_size(enum vp_dtype t) { return (unsigned)t < VP_NDTYPES ? dtype_sizes[t] : 0; }

int vp_dtype_from_name(const char *s, size_t len)
{
    for (int i = 0; i < VP_NDTYPES; i++)
        if (strlen(dtype_names[i]) == len && !memcmp(dtype_names[i], s, len)) return i;
    return -1;
}

int vp_vol_nbytes(const uint64_t dims[4], enum vp_dtype t, uint64_t *out)
{
    uint64_t n = vp_dtype_size(t);
    if (!n) return -1;
    for (int i = 0; i < 4; i++) {
        if (dims[i] > (i == 3 ? VP_MAX_CHANNELS : VP_MAX_DIM)) return -1;
        if (vp_mul_overflow(n, dims[i], &n)) return -1;
    }
    if (n > VP_MAX_VOL_BYTES) return -1;
    *out = n;
    return 0;
}

uint64_t vp_vol_nvox(const vp_vol *v) { return v->dims[0] * v->dims[1] * v->dims[2] * v->dims[3]; }

vp_vol *vp_vol_wrap(const uint64_t dims[4], enum vp_dtype t, const double affine[16], void *alloc, size_t offset)
{
    vp_vol *v = vp_calloc(1, sizeof *v);
    memcpy(v->dims, dims, sizeof v->dims);
    v->dtype = t;
    if (affine) memcpy(v->affine, affine, sizeof v->affine);
    else for (int i = 0; i < 4; i++) v->affine[i * 5] = 1;
    v->alloc = alloc;
    v->data = alloc ? (char *)alloc + offset : NULL; /* header-only volumes: no arithmetic on NULL (UB) */
    return v;
}

vp_vol *vp_vol_new(const uint64_t dims[4], enum vp_dtype t, const double affine[16])
{
    uint64_t n;
    if (vp_vol_nbytes(dims, t, &n)) vp_die(VP_ERR_DATA, "volume dimensions too large");
    return vp_vol_wrap(dims, t, affine, vp_calloc(1, (size_t)n), 0);
}

void vp_vol_free(vp_vol **v)
{
    if (!v || !*v) return;
    free((*v)->alloc);
    free(*v);
    *v = NULL;
}

void vp_vol_spacing(const vp_vol *v, double sp[3])
{
    for (int c = 0; c < 3; c++) {
        double s = 0;
        for (int r = 0; r < 3; r++) s += v->affine[r * 4 + c] * v->affine[r * 4 + c];
        sp[c] = sqrt(s);
    }
}

void vp_affine_axcodes(const double a[16], char out[4])
{
    static const char pos[3] = {'R', 'A', 'S'}, neg[3] = {'L', 'P', 'I'};
    int used_row[3] = {0, 0, 0}, done_col[3] = {0, 0, 0};
    double m[3][3];
    for (int c = 0; c < 3; c++) {
        double n = 0;
        for (int r = 0; r < 3; r++) n += a[r * 4 + c] * a[r * 4 + c];
        n = n > 0 ? sqrt(n) : 1;
        for (int r = 0; r < 3; r++) m[r][c] = a[r * 4 + c] / n;
    }
    out[0] = out[1] = out[2] = '?';
    out[3] = 0;
    /* greedy: repeatedly take the largest remaining |entry| (nibabel's io_orientation does the same
     * on the orthogonalised matrix; identical for the non-degenerate affines scanners write) */
    for (int it = 0; it < 3; it++) {
        int br = -1, bc = -1;
        double best = 0;
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 3; c++)
                if (!used_row[r] && !done_col[c] && fabs(m[r][c]) > best) { best = fabs(m[r][c]); br = r; bc = c; }
        if (br < 0) break;
        used_row[br] = done_col[bc] = 1;
        out[bc] = m[br][bc] > 0 ? pos[br] : neg[br];
    }
}

float vp_half_to_float(uint16_t h)
{
    uint32_t s = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1f, f = h & 0x3ff, bits;
    if (e == 0) {
        if (f == 0) bits = s;
        else { /* subnormal */
            float r = ldexpf((float)f, -24);
            return s ? -r : r;
        }
    } else if (e == 31) bits = s | 0x7f800000u | (f << 13);
    else bits = s | ((e + 112) << 23) | (f << 13);
    float r;
    memcpy(&r, &bits, 4);
    return r;
}

uint16_t vp_float_to_half(float x)
{
    uint32_t b;
    memcpy(&b, &x, 4);
    uint32_t s = (b >> 16) & 0x8000, e = (b >> 23) & 0xff, f = b & 0x7fffff;
    if (e == 0xff) return (uint16_t)(s | 0x7c00 | (f ? 0x200 : 0));
    int32_t ne = (int32_t)e - 127 + 15;
    if (ne >= 31) return (uint16_t)(s | 0x7c00);
    if (ne <= 0) {
        if (ne < -10) return (uint16_t)s;
        f |= 0x800000;
        uint32_t shift = (uint32_t)(14 - ne);
        uint32_t hf = f >> shift, rem = f & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (hf & 1))) hf++;
        return (uint16_t)(s | hf);
    }
    uint32_t hf = f >> 13, rem = f & 0x1fff;
    uint32_t h = s | ((uint32_t)ne << 10) | hf;
    if (rem > 0x1000 || (rem == 0x1000 && (hf & 1))) h++; /* round to nearest even; carries into exponent */
    return (uint16_t)h;
}

double vp_vol_get(const vp_vol *v, uint64_t i)
{
    switch (v->dtype) {
    case VP_U8: return ((const uint8_t *)v->data)[i];
    case VP_I16: return ((const int16_t *)v->data)[i];
    case VP_U16: return ((const uint16_t *)v->data)[i];
    case VP_I32: return ((const int32_t *)v->data)[i];
    case VP_F16: return vp_half_to_float(((const uint16_t *)v->data)[i]);
    case VP_F32: return ((const float *)v->data)[i];
    default: return NAN;
    }
}

#define STATS_LOOP(T)                                                   \
    do {                                                                \
        const T *p = v->data;                                           \
        T lo = p[0], hi = p[0];                                         \
        double sum = 0;                                                 \
        for (uint64_t i = 0; i < n; i++) {                              \
            T x = p[i];                                                 \
            if (x < lo) lo = x;                                         \
            if (x > hi) hi = x;                                         \
            sum += x;                                                   \
        }                                                               \
        s->min = lo; s->max = hi; s->mean = sum / (double)n;            \
    } while (0)

void vp_vol_stats(const vp_vol *v, struct vp_vol_stats *s)
{
    uint64_t n = vp_vol_nvox(v);
    memset(s, 0, sizeof *s);
    if (!n) { s->min = s->max = s->mean = NAN; return; }
    switch (v->dtype) {
    case VP_U8: STATS_LOOP(uint8_t); return;
    case VP_I16: STATS_LOOP(int16_t); return;
    case VP_U16: STATS_LOOP(uint16_t); return;
    case VP_I32: STATS_LOOP(int32_t); return;
    default: break;
    }
    double lo = INFINITY, hi = -INFINITY, sum = 0;
    uint64_t finite = 0;
    for (uint64_t i = 0; i < n; i++) {
        double x = vp_vol_get(v, i);
        if (isnan(x)) { s->nan_count++; continue; }
        if (x < lo) lo = x;
        if (x > hi) hi = x;
        sum += x;
        finite++;
    }
    s->min = finite ? lo : NAN;
    s->max = finite ? hi : NAN;
    s->mean = finite ? sum / (double)finite : NAN;
}
