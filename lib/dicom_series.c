/* dicom_series.c - DICOM files -> series -> one HU volume with its RAS affine (see dicom.h).
 *
 * Geometry (PS3.3 C.7.6.2): the row direction r and column direction c are the two halves of
 * ImageOrientationPatient, the slice normal n = r x c; a slice's place along the stack is
 * ImagePositionPatient . n. Voxel (i, j, k) of the volume is column i, row j of slice k, so the
 * LPS affine has columns r*PixelSpacing[1], c*PixelSpacing[0], n*spacing and origin the first
 * slice's position; RAS negates the first two rows.
 *
 * Ownership: vp_dcm_group() allocates the series array and each series' files array; the files
 * themselves stay the caller's.
 */
#include "dicom.h"
#include "parallel.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const double ident_iop[6] = {1, 0, 0, 0, 1, 0};

static const double *iop_of(const struct vp_dcm_file *f) { return f->has_iop ? f->iop : ident_iop; }

static void normal_of(const double *iop, double n[3])
{
    n[0] = iop[1] * iop[5] - iop[2] * iop[4];
    n[1] = iop[2] * iop[3] - iop[0] * iop[5];
    n[2] = iop[0] * iop[4] - iop[1] * iop[3];
    double l = sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2]);
    if (l > 0)
        for (int i = 0; i < 3; i++) n[i] /= l;
}

static const char *s_or(const char *s) { return s ? s : ""; }

/* same series: same UID (or both empty), frame of reference, orientation (within 1e-4), size */
static int same_group(const struct vp_dcm_file *a, const struct vp_dcm_file *b)
{
    if (strcmp(s_or(a->str[VP_DCM_SERIES_UID]), s_or(b->str[VP_DCM_SERIES_UID]))) return 0;
    if (strcmp(s_or(a->str[VP_DCM_FOR_UID]), s_or(b->str[VP_DCM_FOR_UID]))) return 0;
    if (a->rows != b->rows || a->cols != b->cols || a->has_iop != b->has_iop) return 0;
    for (int i = 0; i < 6; i++)
        if (fabs(iop_of(a)[i] - iop_of(b)[i]) > 1e-4) return 0;
    return 1;
}

static int cmp_path(const void *a, const void *b)
{
    const struct vp_dcm_file *const *x = a, *const *y = b;
    return strcmp((*x)->path, (*y)->path);
}

int vp_dcm_group(struct vp_dcm_file *files, int n, struct vp_dcm_series **out)
{
    struct vp_dcm_file **byp = vp_malloc(sizeof *byp * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) byp[i] = &files[i];
    qsort(byp, (size_t)n, sizeof *byp, cmp_path);
    struct vp_dcm_series *s = vp_calloc((size_t)(n ? n : 1), sizeof *s);
    int ns = 0;
    for (int i = 0; i < n; i++) {
        int g = 0;
        while (g < ns && !same_group(s[g].files[0], byp[i])) g++;
        if (g == ns) {
            s[ns].files = vp_malloc(sizeof *s[ns].files * (size_t)n);
            s[ns].fallback_key = !byp[i]->str[VP_DCM_SERIES_UID];
            ns++;
        }
        s[g].files[s[g].n++] = byp[i];
    }
    free(byp);
    *out = s;
    return ns;
}

struct pos { double d; struct vp_dcm_file *f; };

static int cmp_pos(const void *a, const void *b)
{
    const struct pos *x = a, *y = b;
    if (x->d != y->d) return x->d < y->d ? -1 : 1;
    return strcmp(x->f->path, y->f->path);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int vp_dcm_series_order(struct vp_dcm_series *s, double tol_rel, char why[256])
{
    const struct vp_dcm_file *f0 = s->files[0];
    normal_of(iop_of(f0), s->normal);
    s->nonuniform = 0;
    s->tilt = 0;
    s->why[0] = 0;
    for (int i = 1; i < s->n; i++) {
        const struct vp_dcm_file *f = s->files[i];
        if (f->bits_alloc != f0->bits_alloc || f->pixrep != f0->pixrep || f->frames != 1 || f0->frames != 1) {
            snprintf(why, 256, "'%s' and '%s' differ in BitsAllocated or PixelRepresentation, or are multi-frame",
                     f0->path, f->path);
            return -VP_ERR_DATA;
        }
    }
    if (s->n == 1) {
        s->nslices = f0->frames;
        s->spacing = f0->between > 0 ? f0->between : f0->thickness > 0 ? f0->thickness : 1.0;
        s->median_spacing = s->spacing;
        return 0;
    }
    for (int i = 0; i < s->n; i++)
        if (!s->files[i]->has_ipp) {
            snprintf(why, 256, "'%s' has no ImagePositionPatient: the slices cannot be ordered", s->files[i]->path);
            return -VP_ERR_DATA;
        }
    struct pos *p = vp_malloc(sizeof *p * (size_t)s->n);
    for (int i = 0; i < s->n; i++) {
        const double *x = s->files[i]->ipp;
        p[i].d = x[0] * s->normal[0] + x[1] * s->normal[1] + x[2] * s->normal[2];
        p[i].f = s->files[i];
    }
    qsort(p, (size_t)s->n, sizeof *p, cmp_pos);
    for (int i = 0; i < s->n; i++) s->files[i] = p[i].f;
    int n = s->n, rc = 0;
    double *diff = vp_malloc(sizeof *diff * (size_t)n);
    for (int i = 0; i + 1 < n; i++) {
        diff[i] = p[i + 1].d - p[i].d;
        if (diff[i] < 1e-4) {
            snprintf(why, 256, "'%s' and '%s' are at the same position along the slice normal (%.4f mm)",
                     p[i].f->path, p[i + 1].f->path, p[i].d);
            rc = -VP_ERR_DATA;
            goto done;
        }
    }
    /* gantry tilt: the positions run along a line that is not the slice normal */
    const double *a = s->files[0]->ipp, *b = s->files[n - 1]->ipp;
    double v[3] = {b[0] - a[0], b[1] - a[1], b[2] - a[2]};
    double lv = sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
    double cosang = (v[0] * s->normal[0] + v[1] * s->normal[1] + v[2] * s->normal[2]) / lv;
    double ang = acos(fmin(1.0, fabs(cosang))) * 180 / M_PI;
    if (ang > 0.01) s->tilt = ang;
    qsort(diff, (size_t)(n - 1), sizeof *diff, cmp_double);
    double med = diff[(n - 1) / 2], tol = fmax(tol_rel * med, 1e-3);
    s->spacing = (p[n - 1].d - p[0].d) / (n - 1);
    s->median_spacing = med;
    for (int i = 0; i + 1 < n; i++) {
        double d = p[i + 1].d - p[i].d;
        if (fabs(d - med) <= tol) continue;
        s->nonuniform = 1;
        double k = d / med;
        if (fabs(k - round(k)) * med <= tol && round(k) >= 2)
            snprintf(s->why, sizeof s->why, "%d missing slice(s) between '%s' and '%s' (gap %.4f mm, spacing %.4f mm)",
                     (int)round(k) - 1, p[i].f->path, p[i + 1].f->path, d, med);
        else
            snprintf(s->why, sizeof s->why, "non-uniform spacing: %.4f mm between '%s' and '%s', %.4f mm elsewhere",
                     d, p[i].f->path, p[i + 1].f->path, med);
        break;
    }
    s->nslices = n;
done:
    free(diff);
    free(p);
    return rc;
}

/* stored values: masked to BitsStored, sign-extended when signed (two shifts: vectorisable) */
struct rawfmt { uint32_t mask; int sh, sgn, b8; };

static struct rawfmt fmt_of(const struct vp_dcm_file *f)
{
    int bs = f->bits_stored > 0 && f->bits_stored <= f->bits_alloc ? f->bits_stored : f->bits_alloc;
    struct rawfmt r = {(uint32_t)((1ull << bs) - 1), 32 - bs, f->pixrep != 0, f->bits_alloc == 8};
    return r;
}

static inline __attribute__((always_inline)) int32_t raw_v(uint32_t v, struct rawfmt r, int sgn)
{
    v &= r.mask;
    return sgn ? (int32_t)(v << r.sh) >> r.sh : (int32_t)v;
}

struct job {
    const struct vp_dcm_series *s;
    size_t plane, *zoff;
    int32_t *mn, *mx;
    vp_vol *v;
    int *rc;           /* per file: 0 or -VP_ERR_* (deferred reads) */
    char (*why)[256];
};

/* the deferred pixel bytes of f (pix_off, pix_bytes) into buf: 0, or -VP_ERR_DATA with why */
static int read_deferred(const struct vp_dcm_file *f, void *buf, char why[256])
{
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, 256, "'%s': cannot reopen for the pixel data: %s", f->path, strerror(errno));
        return -VP_ERR_DATA;
    }
    size_t got = 0;
    while (got < f->pix_bytes) {
        ssize_t r = pread(fd, (char *)buf + got, f->pix_bytes - got, (off_t)f->pix_off + (off_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            snprintf(why, 256, "'%s': PixelData ends early (the file changed while it was read?)%s%s", f->path,
                     r < 0 ? ": " : "", r < 0 ? strerror(errno) : "");
            close(fd);
            return -VP_ERR_DATA;
        }
        got += (size_t)r;
    }
    close(fd);
    return 0;
}

/* give every deferred file its pixels in memory (pix), for the general conversion below */
static void load_range(void *ctx, uint64_t b, uint64_t e, int worker)
{
    struct job *j = ctx;
    for (uint64_t k = b; k < e; k++) {
        struct vp_dcm_file *f = j->s->files[k];
        if (f->pix || !f->pix_off) continue;
        f->pix = vp_malloc(f->pix_bytes);
        j->rc[k] = read_deferred(f, f->pix, j->why[k]);
        if (j->rc[k]) { free(f->pix); f->pix = NULL; }
    }
}

/* one loop per (8/16 bits, signed) with constants the compiler can vectorise */
#define MINMAX(PT, SGN)                                                       \
    for (size_t i = 0; i < nv; i++) {                                         \
        int32_t v = raw_v(((const PT *)f->pix)[i], r, SGN);                   \
        mn = v < mn ? v : mn;                                                 \
        mx = v > mx ? v : mx;                                                 \
    }

static void minmax_range(void *ctx, uint64_t b, uint64_t e, int worker)
{
    struct job *j = ctx;
    for (uint64_t k = b; k < e; k++) {
        const struct vp_dcm_file *f = j->s->files[k];
        struct rawfmt r = fmt_of(f);
        int32_t mn = INT32_MAX, mx = INT32_MIN;
        size_t nv = j->plane * (size_t)f->frames;
        if (r.b8) { if (r.sgn) { MINMAX(uint8_t, 1) } else { MINMAX(uint8_t, 0) } }
        else { if (r.sgn) { MINMAX(uint16_t, 1) } else { MINMAX(uint16_t, 0) } }
        j->mn[k] = mn;
        j->mx[k] = mx;
    }
}

#define CONV1(T, PT, SGN, EXPR)                                              \
    for (size_t i = 0; i < nv; i++) {                                        \
        int32_t x = raw_v(((const PT *)f->pix)[i], r, SGN);                  \
        ((T *)j->v->data)[base + i] = (T)(EXPR);                             \
    }
#define CONVERT(T, EXPR)                                                     \
    do {                                                                     \
        if (r.b8) { if (r.sgn) { CONV1(T, uint8_t, 1, EXPR) } else { CONV1(T, uint8_t, 0, EXPR) } } \
        else { if (r.sgn) { CONV1(T, uint16_t, 1, EXPR) } else { CONV1(T, uint16_t, 0, EXPR) } }    \
    } while (0)

static void convert_range(void *ctx, uint64_t b, uint64_t e, int worker)
{
    struct job *j = ctx;
    for (uint64_t k = b; k < e; k++) {
        const struct vp_dcm_file *f = j->s->files[k];
        struct rawfmt r = fmt_of(f);
        size_t nv = j->plane * (size_t)f->frames, base = j->zoff[k] * j->plane;
        double sl = f->slope, in = f->inter;
        int32_t isl = (int32_t)sl, iin = (int32_t)in; /* exact when the rescale is integral */
        switch (j->v->dtype) {
        case VP_U8: CONVERT(uint8_t, x * isl + iin); break;
        case VP_I16: CONVERT(int16_t, x * isl + iin); break;
        case VP_U16: CONVERT(uint16_t, x * isl + iin); break;
        case VP_I32: CONVERT(int32_t, (int64_t)x * isl + iin); break;
        default: CONVERT(float, x * sl + in); break;
        }
    }
}

/* One slice of the i16 guess, in 16-bit lanes (SSE2 has 16-bit min/max/multiply): raw values masked
 * to BitsStored and sign-extended, their min/max, and x * slope + intercept truncated to 16 bits --
 * exact whenever the result fits i16, which is the only case the guess is kept. src may be dst
 * (element i is read before it is written), hence ivdep. */
#define GUESS_LOOP(XT, EXPR)                                                 \
    do {                                                                     \
        XT lo = (XT)EXPR(src[0]), hi = lo;                                   \
        _Pragma("GCC ivdep") for (size_t i = 0; i < n; i++) {                \
            XT x = (XT)EXPR(src[i]);                                         \
            lo = x < lo ? x : lo;                                            \
            hi = x > hi ? x : hi;                                            \
            dst[i] = (int16_t)(uint16_t)((uint16_t)x * sl + in);             \
        }                                                                    \
        *mn = lo;                                                            \
        *mx = hi;                                                            \
    } while (0)
#define RAW_U(v) ((v) & mask)
#define RAW_S(v) ((int16_t)(uint16_t)((uint32_t)(v) << sh) >> sh)

__attribute__((optimize("tree-vectorize", "vect-cost-model=dynamic")))
static void guess_slice(const uint16_t *src, int16_t *dst, size_t n, struct rawfmt r, int32_t isl, int32_t iin,
                        int32_t *mn, int32_t *mx)
{
    uint16_t mask = (uint16_t)r.mask;
    uint32_t sl = (uint16_t)isl, in = (uint16_t)iin; /* mod 2^16, unsigned: no int overflow */
    int sh = r.sh - 16;
    if (r.sgn) GUESS_LOOP(int16_t, RAW_S);
    else GUESS_LOOP(uint16_t, RAW_U);
}

/* The i16 guess for 16-bit data with an integral rescale (CT): each file's raw values go into its
 * slice of the i16 volume (deferred ones read straight there from the file), then in the same
 * cache-hot pass min/max of the raw values is taken and the slice converted in place. When the
 * min/max then say the series needs another type, the caller starts again the general way. */
static void guess_range(void *ctx, uint64_t b, uint64_t e, int worker)
{
    struct job *j = ctx;
    for (uint64_t k = b; k < e; k++) {
        const struct vp_dcm_file *f = j->s->files[k];
        int16_t *dst = (int16_t *)j->v->data + j->zoff[k] * j->plane;
        const void *src = f->pix;
        if (!src) {
            if ((j->rc[k] = read_deferred(f, dst, j->why[k]))) continue;
            src = dst; /* in place */
        }
        guess_slice(src, dst, j->plane * (size_t)f->frames, fmt_of(f), (int32_t)f->slope, (int32_t)f->inter,
                    &j->mn[k], &j->mx[k]);
    }
}

/* the first failed file's reason into why (files in slice order): its code, or 0 */
static int first_failure(const struct job *j, char why[256])
{
    for (int k = 0; k < j->s->n; k++)
        if (j->rc[k]) {
            snprintf(why, 256, "%s", j->why[k]);
            return j->rc[k];
        }
    return 0;
}

static void job_free(struct job *j)
{
    free(j->zoff);
    free(j->mn);
    free(j->mx);
    free(j->rc);
    free(j->why);
}

int vp_dcm_series_build(const struct vp_dcm_series *s, vp_vol **out, char why[256])
{
    const struct vp_dcm_file *f0 = s->files[0];
    uint64_t nx = (uint64_t)f0->cols, ny = (uint64_t)f0->rows, nz = (uint64_t)s->nslices;
    size_t plane = (size_t)nx * ny;
    int integral = 1, plain8 = 1, all16 = 1;
    double lo = INFINITY, hi = -INFINITY;
    size_t n = (size_t)s->n;
    struct job j = {s, plane, vp_malloc(sizeof(size_t) * n), vp_malloc(sizeof(int32_t) * n), vp_malloc(sizeof(int32_t) * n),
                    NULL, vp_calloc(n, sizeof(int)), vp_calloc(n, 256)};
    size_t z = 0;
    for (int k = 0; k < s->n; k++) {
        const struct vp_dcm_file *f = s->files[k];
        if ((!f->pix && !f->pix_off) || f->pix_bytes < plane * (size_t)f->frames * (size_t)(f->bits_alloc / 8)) {
            snprintf(why, 256, "'%s': pixel data missing", f->path);
            job_free(&j);
            return -VP_ERR_DATA;
        }
        if (f->slope != round(f->slope) || f->inter != round(f->inter) || fabs(f->slope) > 65536 || fabs(f->inter) > 1e9)
            integral = 0;
        if (f->bits_alloc != 8 || f->pixrep || f->slope != 1 || f->inter != 0) plain8 = 0;
        if (f->bits_alloc != 16) all16 = 0;
        j.zoff[k] = z;
        z += (size_t)f->frames;
    }
    /* affine: LPS columns, then RAS */
    const double *iop = iop_of(f0);
    double A[16] = {0};
    double psr = f0->has_ps ? f0->ps[0] : 1, psc = f0->has_ps ? f0->ps[1] : 1;
    const double *o = f0->ipp;
    static const double zero[3] = {0, 0, 0};
    if (!f0->has_ipp) o = zero;
    for (int r = 0; r < 3; r++) {
        A[r * 4 + 0] = iop[r] * psc;
        A[r * 4 + 1] = iop[3 + r] * psr;
        A[r * 4 + 2] = s->normal[r] * s->spacing;
        A[r * 4 + 3] = o[r];
    }
    for (int c = 0; c < 4; c++) {
        A[c] = -A[c];
        A[4 + c] = -A[4 + c];
    }
    A[15] = 1;
    uint64_t dims[4] = {nx, ny, nz, 1};
    uint64_t nb;
    if (vp_vol_nbytes(dims, VP_F32, &nb)) { /* the widest type it can become */
        snprintf(why, 256, "volume %llux%llux%llu is too large", (unsigned long long)nx, (unsigned long long)ny,
                 (unsigned long long)nz);
        job_free(&j);
        return -VP_ERR_DATA;
    }
    int rc;
    enum vp_dtype t = VP_F32;
    if (integral && all16) {
        vp_vol_nbytes(dims, VP_I16, &nb);
        j.v = vp_vol_wrap(dims, VP_I16, A, vp_malloc(nb ? nb : 1), 0);
        vp_parallel_for((uint64_t)s->n, 1, guess_range, &j);
        if ((rc = first_failure(&j, why))) {
            vp_vol_free(&j.v);
            job_free(&j);
            return rc;
        }
    } else {
        vp_parallel_for((uint64_t)s->n, 1, load_range, &j);
        if ((rc = first_failure(&j, why))) { job_free(&j); return rc; }
        vp_parallel_for((uint64_t)s->n, 1, minmax_range, &j);
    }
    for (int k = 0; k < s->n; k++) {
        const struct vp_dcm_file *f = s->files[k];
        double a = j.mn[k] * f->slope + f->inter, b = j.mx[k] * f->slope + f->inter;
        lo = fmin(lo, fmin(a, b));
        hi = fmax(hi, fmax(a, b));
    }
    t = !integral ? VP_F32 : plain8 ? VP_U8 : (lo >= -32768 && hi <= 32767) ? VP_I16
      : (lo >= 0 && hi <= 65535) ? VP_U16 : (lo >= -2147483648.0 && hi <= 2147483647.0) ? VP_I32 : VP_F32;
    if (j.v && t != VP_I16) { /* the guess was wrong: the raw values again, the general way */
        vp_vol_free(&j.v);
        vp_parallel_for((uint64_t)s->n, 1, load_range, &j);
        if ((rc = first_failure(&j, why))) { job_free(&j); return rc; }
    }
    if (!j.v) {
        j.v = vp_vol_new(dims, t, A);
        vp_parallel_for((uint64_t)s->n, 1, convert_range, &j);
    }
    job_free(&j);
    *out = j.v;
    return 0;
}

int vp_dcm_split_frames(struct vp_dcm_file **files, int n)
{
    struct vp_dcm_file *in = *files;
    int total = 0;
    for (int i = 0; i < n; i++) total += in[i].frame_ipp && in[i].pix ? in[i].frames : 1;
    if (total == n) return n;
    struct vp_dcm_file *out = vp_calloc((size_t)total, sizeof *out);
    int o = 0;
    for (int i = 0; i < n; i++) {
        struct vp_dcm_file *f = &in[i];
        if (!f->frame_ipp || !f->pix) { out[o++] = *f; continue; }
        size_t fb = (size_t)f->rows * (size_t)f->cols * (size_t)(f->bits_alloc / 8);
        for (int k = 0; k < f->frames; k++) {
            struct vp_dcm_file *g = &out[o++];
            *g = *f;
            size_t pl = strlen(f->path) + 32;
            g->path = vp_malloc(pl);
            snprintf(g->path, pl, "%s[frame %d]", f->path, k + 1);
            for (int t = 0; t < VP_DCM_NTAGS; t++) g->str[t] = f->str[t] ? vp_strdup(f->str[t]) : NULL;
            g->frames = 1;
            g->frame = k + 1;
            g->frame_ipp = NULL;
            memcpy(g->ipp, f->frame_ipp + 3 * k, sizeof g->ipp);
            g->has_ipp = 1;
            g->pix = vp_malloc(fb);
            memcpy(g->pix, (const unsigned char *)f->pix + fb * (size_t)k, fb);
            g->pix_bytes = fb;
        }
        vp_dcm_file_clear(f);
    }
    free(in);
    *files = out;
    return total;
}
