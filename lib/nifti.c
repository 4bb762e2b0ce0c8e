/* nifti.c - see nifti.h */
#include "nifti.h"
#include "endpoint.h"
#include "gzstream.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <libdeflate.h>
#include <math.h>
#include <nifti2_io.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define DEFLATE_MAX_RATIO 1032 /* deflate cannot expand more than ~1032:1 */

static int bad(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(const char *path, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    vp_error("'%s': %s", path, msg);
    return -VP_ERR_DATA;
}

/* ---- header ---- */

struct hdr {
    int version, swapped;
    int64_t dim[8];
    double pixdim[8];
    int datatype;
    double vox_offset, scl_slope, scl_inter;
    int qform_code, sform_code;
    double quatern[3], qoffset[3], srow[12];
    char descrip[81];
    size_t hdr_size;
};

static uint32_t bswap32(uint32_t x) { return __builtin_bswap32(x); }

/* Parse a header from the first n bytes of a file. */
static int parse_header(const char *path, const unsigned char *buf, size_t n, struct hdr *h)
{
    memset(h, 0, sizeof *h);
    if (n < 4) return bad(path, "file too short for a NIfTI header (%zu bytes)", n);
    int32_t sz;
    memcpy(&sz, buf, 4);
    if (sz == 348 || (int32_t)bswap32((uint32_t)sz) == 348) h->version = 1;
    else if (sz == 540 || (int32_t)bswap32((uint32_t)sz) == 540) h->version = 2;
    else return bad(path, "not a NIfTI file (header size field is %d, expected 348 or 540)", sz);
    h->swapped = sz != 348 && sz != 540;
    if (h->version == 1) {
        nifti_1_header n1;
        if (n < sizeof n1) return bad(path, "file too short for a NIfTI-1 header (%zu bytes)", n);
        memcpy(&n1, buf, sizeof n1);
        if (h->swapped) swap_nifti_header(&n1, 1);
        if (memcmp(n1.magic, "n+1", 4)) {
            if (!memcmp(n1.magic, "ni1", 4)) return bad(path, "two-file NIfTI (.hdr/.img) is not supported; convert it to .nii");
            return bad(path, "NIfTI-1 magic is not \"n+1\" (Analyze files are not supported)");
        }
        for (int i = 0; i < 8; i++) { h->dim[i] = n1.dim[i]; h->pixdim[i] = n1.pixdim[i]; }
        h->datatype = n1.datatype;
        h->vox_offset = n1.vox_offset;
        h->scl_slope = n1.scl_slope;
        h->scl_inter = n1.scl_inter;
        h->qform_code = n1.qform_code;
        h->sform_code = n1.sform_code;
        h->quatern[0] = n1.quatern_b; h->quatern[1] = n1.quatern_c; h->quatern[2] = n1.quatern_d;
        h->qoffset[0] = n1.qoffset_x; h->qoffset[1] = n1.qoffset_y; h->qoffset[2] = n1.qoffset_z;
        for (int i = 0; i < 4; i++) { h->srow[i] = n1.srow_x[i]; h->srow[4 + i] = n1.srow_y[i]; h->srow[8 + i] = n1.srow_z[i]; }
        memcpy(h->descrip, n1.descrip, 80);
        h->hdr_size = 348;
    } else {
        nifti_2_header n2;
        if (n < sizeof n2) return bad(path, "file too short for a NIfTI-2 header (%zu bytes)", n);
        memcpy(&n2, buf, sizeof n2);
        if (h->swapped) swap_nifti_header(&n2, 2);
        if (memcmp(n2.magic, "n+2\0\r\n\032\n", 8)) {
            if (!memcmp(n2.magic, "ni2", 4)) return bad(path, "two-file NIfTI-2 (.hdr/.img) is not supported; convert it to .nii");
            return bad(path, "NIfTI-2 magic is not \"n+2\"");
        }
        for (int i = 0; i < 8; i++) { h->dim[i] = n2.dim[i]; h->pixdim[i] = n2.pixdim[i]; }
        h->datatype = n2.datatype;
        h->vox_offset = (double)n2.vox_offset;
        h->scl_slope = n2.scl_slope;
        h->scl_inter = n2.scl_inter;
        h->qform_code = n2.qform_code;
        h->sform_code = n2.sform_code;
        h->quatern[0] = n2.quatern_b; h->quatern[1] = n2.quatern_c; h->quatern[2] = n2.quatern_d;
        h->qoffset[0] = n2.qoffset_x; h->qoffset[1] = n2.qoffset_y; h->qoffset[2] = n2.qoffset_z;
        for (int i = 0; i < 4; i++) { h->srow[i] = n2.srow_x[i]; h->srow[4 + i] = n2.srow_y[i]; h->srow[8 + i] = n2.srow_z[i]; }
        memcpy(h->descrip, n2.descrip, 80);
        h->hdr_size = 540;
    }
    h->descrip[80] = 0;
    /* as nibabel's header check on load: an xform code it does not know (valid: 0..5) becomes 0 */
    if (h->qform_code < 0 || h->qform_code > 5) h->qform_code = 0;
    if (h->sform_code < 0 || h->sform_code > 5) h->sform_code = 0;
    return 0;
}

int vp_nifti_affine_from_fields(int version, int qform_code, int sform_code, const double pixdim[8],
                                const double q[3], const double qoff[3], const double srow[12],
                                const int64_t dim[8], double A[16], const char **why)
{
    memset(A, 0, 16 * sizeof *A);
    A[15] = 1;
    if (sform_code != 0) {
        memcpy(A, srow, 12 * sizeof *A);
    } else if (qform_code != 0) {
        /* nibabel: fillpositive(b, c, d) with threshold -3 eps, then quat2mat, times diag(pixdim) */
        double b = q[0], c = q[1], d = q[2];
        double thresh = version == 1 ? 3 * (double)FLT_EPSILON : 3 * DBL_EPSILON;
        double w2 = 1.0 - (b * b + c * c + d * d), a;
        /* nibabel >= 5: |w2| below the threshold is a 180-degree rotation (w = 0), not sqrt(w2) */
        if (fabs(w2) < thresh) a = 0;
        else if (w2 < 0) { *why = "qform quaternion has norm above 1"; return -1; }
        else a = sqrt(w2);
        double Nq = a * a + b * b + c * c + d * d, R[9];
        if (Nq < DBL_EPSILON) {
            double I[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
            memcpy(R, I, sizeof R);
        } else {
            double s = 2.0 / Nq, X = b * s, Y = c * s, Z = d * s;
            double wX = a * X, wY = a * Y, wZ = a * Z, xX = b * X, xY = b * Y, xZ = b * Z;
            double yY = c * Y, yZ = c * Z, zZ = d * Z;
            double M[9] = {1.0 - (yY + zZ), xY - wZ, xZ + wY, xY + wZ, 1.0 - (xX + zZ), yZ - wX,
                           xZ - wY, yZ + wX, 1.0 - (xX + yY)};
            memcpy(R, M, sizeof R);
        }
        double vox[3] = {pixdim[1], pixdim[2], pixdim[3]};
        if (pixdim[0] == -1) vox[2] = -vox[2]; /* qfac; other values are taken as 1, as nibabel fixes them */
        for (int r = 0; r < 3; r++) {
            for (int k = 0; k < 3; k++) A[r * 4 + k] = R[r * 3 + k] * vox[k];
            A[r * 4 + 3] = qoff[r];
        }
    } else {
        /* Analyze base affine: shape_zoom_affine(shape, zooms, x_flip=True) */
        int nd = (int)dim[0];
        for (int k = 0; k < 3; k++) {
            double n = k < nd ? (double)dim[k + 1] : 1, z = k < nd ? pixdim[k + 1] : 1;
            if (k == 0) z = -z;
            A[k * 4 + k] = z;
            A[k * 4 + 3] = -((n - 1) / 2.0) * z;
        }
    }
    for (int i = 0; i < 12; i++)
        if (!isfinite(A[i])) { *why = "affine contains a non-finite value"; return -1; }
    for (int k = 0; k < 3; k++) {
        double s = A[k] * A[k] + A[4 + k] * A[4 + k] + A[8 + k] * A[8 + k];
        if (!(s > 0)) { *why = "affine has zero voxel spacing (degenerate)"; return -1; }
    }
    return 0;
}

/* ---- gzip ---- */

/* Inflate just the first n bytes (the header) with zlib. Returns bytes produced or -1. */
static long gz_peek(const unsigned char *src, size_t srclen, unsigned char *dst, size_t n)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) return -1;
    z.next_in = (unsigned char *)src;
    z.avail_in = srclen > UINT32_MAX ? UINT32_MAX : (uInt)srclen;
    z.next_out = dst;
    z.avail_out = (uInt)n;
    int rc = inflate(&z, Z_SYNC_FLUSH);
    long got = (long)(n - z.avail_out);
    inflateEnd(&z);
    return rc == Z_OK || rc == Z_STREAM_END || rc == Z_BUF_ERROR ? got : -1;
}

/* Decompress all gzip members of src into *dst (capacity *cap, grown if needed). */
static int gz_all(const char *path, const unsigned char *src, size_t srclen, unsigned char **dst, size_t *cap, size_t *outlen)
{
    struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();
    if (!d) vp_die(VP_ERR_RUNTIME, "out of memory");
    size_t in = 0, out = 0;
    int rc = 0;
    while (in < srclen) {
        if (srclen - in < 18 || src[in] != 0x1f || src[in + 1] != 0x8b) {
            if (out == 0) { rc = bad(path, "corrupt gzip data: bad gzip header"); break; }
            break; /* trailing garbage after the last member: ignored, as gzip does */
        }
        size_t ain = 0, aout = 0;
        enum libdeflate_result r = libdeflate_gzip_decompress_ex(d, src + in, srclen - in, *dst + out, *cap - out, &ain, &aout);
        if (r == LIBDEFLATE_INSUFFICIENT_SPACE) {
            size_t bound = srclen * (size_t)DEFLATE_MAX_RATIO + (1u << 20);
            if (*cap >= bound) { rc = bad(path, "corrupt gzip data: expands beyond the deflate limit"); break; }
            size_t ncap = *cap * 2 < bound ? *cap * 2 : bound;
            *dst = vp_realloc(*dst, ncap);
            *cap = ncap;
            continue;
        }
        if (r != LIBDEFLATE_SUCCESS) {
            rc = bad(path, "corrupt gzip data (%s)", r == LIBDEFLATE_SHORT_OUTPUT ? "short output" : "bad data or truncated file");
            break;
        }
        in += ain;
        out += aout;
    }
    libdeflate_free_decompressor(d);
    *outlen = out;
    return rc;
}

static int read_whole(const char *path, unsigned char **buf, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { vp_error("'%s': cannot open: %s", path, strerror(errno)); return -VP_ERR_RUNTIME; }
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        vp_error("'%s': not a regular file", path);
        close(fd);
        return -VP_ERR_RUNTIME;
    }
    size_t n = (size_t)st.st_size, got = 0;
    unsigned char *b = vp_malloc(n);
    while (got < n) {
        ssize_t r = read(fd, b + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) { vp_error("'%s': read failed: %s", path, r ? strerror(errno) : "file shrank"); free(b); close(fd); return -VP_ERR_RUNTIME; }
        got += (size_t)r;
    }
    close(fd);
    *buf = b;
    *len = n;
    return 0;
}

/* ---- voxel conversion ---- */

static int dtype_of(int dt)
{
    switch (dt) {
    case DT_UINT8: return VP_U8;
    case DT_INT16: return VP_I16;
    case DT_UINT16: return VP_U16;
    case DT_INT32: return VP_I32;
    case DT_FLOAT32: return VP_F32;
    default: return -1;
    }
}

static double raw_get(const void *p, int dt, uint64_t i)
{
    switch (dt) {
    case DT_UINT8: return ((const uint8_t *)p)[i];
    case DT_INT8: return ((const int8_t *)p)[i];
    case DT_INT16: return ((const int16_t *)p)[i];
    case DT_UINT16: return ((const uint16_t *)p)[i];
    case DT_INT32: return ((const int32_t *)p)[i];
    case DT_UINT32: return ((const uint32_t *)p)[i];
    case DT_INT64: return (double)((const int64_t *)p)[i];
    case DT_UINT64: return (double)((const uint64_t *)p)[i];
    case DT_FLOAT32: return ((const float *)p)[i];
    case DT_FLOAT64: return ((const double *)p)[i];
    default: return NAN;
    }
}

/* Convert raw voxels (type dt, scaled by slope/inter) to a voxpipe type: integers stay integers when
 * the scaled values are exact integers that fit i16/i32; anything else becomes f32. */
static int convert(const char *path, const void *raw, int dt, uint64_t n, double slope, double inter,
                   enum vp_dtype *outt, void **outbuf)
{
    int is_int = dt != DT_FLOAT32 && dt != DT_FLOAT64;
    int int_scale = slope == floor(slope) && inter == floor(inter);
    if (is_int && int_scale) {
        double lo = INFINITY, hi = -INFINITY;
        for (uint64_t i = 0; i < n; i++) {
            double x = raw_get(raw, dt, i) * slope + inter;
            if (x < lo) lo = x;
            if (x > hi) hi = x;
        }
        enum vp_dtype t = lo >= 0 && hi <= 255 && dt == DT_UINT8 ? VP_U8
                        : lo >= -32768 && hi <= 32767 ? VP_I16
                        : lo >= 0 && hi <= 65535 ? VP_U16
                        : lo >= INT32_MIN && hi <= INT32_MAX ? VP_I32 : VP_F32;
        if (t == VP_F32 && dt != DT_FLOAT32) vp_warn("'%s': integer values beyond int32 stored as float32", path);
        void *b = vp_malloc((size_t)(n * vp_dtype_size(t)));
        for (uint64_t i = 0; i < n; i++) {
            double x = raw_get(raw, dt, i) * slope + inter;
            switch (t) {
            case VP_U8: ((uint8_t *)b)[i] = (uint8_t)x; break;
            case VP_I16: ((int16_t *)b)[i] = (int16_t)x; break;
            case VP_U16: ((uint16_t *)b)[i] = (uint16_t)x; break;
            case VP_I32: ((int32_t *)b)[i] = (int32_t)x; break;
            default: ((float *)b)[i] = (float)x; break;
            }
        }
        *outt = t;
        *outbuf = b;
        return 0;
    }
    float *b = vp_malloc((size_t)(n * 4));
    for (uint64_t i = 0; i < n; i++) b[i] = (float)(raw_get(raw, dt, i) * slope + inter);
    *outt = VP_F32;
    *outbuf = b;
    return 0;
}

/* ---- read ---- */

struct hinfo {
    int nd, nbyper, swapsize;
    uint64_t dims[4], nvox, nbytes, off;
    double slope, inter, aff[16];
};

/* Validate a parsed header and derive sizes, scaling and the affine. 0 ok, or -VP_ERR_DATA. */
static int check_header(const char *path, const struct hdr *h, struct hinfo *hi)
{
    int nd = (int)h->dim[0];
    if (nd < 1 || nd > 7) return bad(path, "dim[0] = %d is outside 1..7", nd);
    uint64_t dims[4] = {1, 1, 1, 1};
    for (int i = 1; i <= nd; i++) {
        if (h->dim[i] <= 0) return bad(path, "dim[%d] = %lld is not positive", i, (long long)h->dim[i]);
        if (i <= 4) dims[i - 1] = (uint64_t)h->dim[i];
        else if (h->dim[i] != 1) return bad(path, "dim[%d] = %lld: only 3D volumes with optional channels (dim[4]) are supported", i, (long long)h->dim[i]);
    }
    int nbyper = 0, swapsize = 0;
    nifti_datatype_sizes(h->datatype, &nbyper, &swapsize);
    int supported = dtype_of(h->datatype) >= 0 || h->datatype == DT_INT8 || h->datatype == DT_UINT32 ||
                    h->datatype == DT_INT64 || h->datatype == DT_UINT64 || h->datatype == DT_FLOAT64;
    if (!nbyper || !supported) {
        return bad(path, "unsupported NIfTI datatype %d (%s)", h->datatype, nifti_datatype_to_string(h->datatype));
    }
    uint64_t nvox = 0, nbytes = 0;
    enum vp_dtype probe = VP_U8;
    if (vp_vol_nbytes(dims, probe, &nvox) || vp_mul_overflow(nvox, (uint64_t)nbyper, &nbytes) || nbytes > VP_MAX_VOL_BYTES) {
        return bad(path, "dimensions %lldx%lldx%lldx%lld are too large", (long long)dims[0], (long long)dims[1], (long long)dims[2], (long long)dims[3]);
    }
    if (!isfinite(h->vox_offset) || h->vox_offset < 0 || h->vox_offset > 1e12) return bad(path, "vox_offset %g is invalid", h->vox_offset);
    uint64_t off = (uint64_t)h->vox_offset;
    if (off < h->hdr_size + 4) off = h->hdr_size + 4; /* as nibabel: data never overlaps the header */

    /* slope/inter as nibabel: slope 0 or non-finite means no scaling; a bad intercept is an error */
    double slope = h->scl_slope, inter = h->scl_inter;
    if (slope == 0 || !isfinite(slope)) { slope = 1; inter = 0; }
    else if (!isfinite(inter)) return bad(path, "valid scl_slope %g but invalid scl_inter %g", slope, inter);

    /* the affine, with nibabel's precedence; pixdims must be sane where they are the spacing */
    if (h->sform_code == 0) {
        for (int i = 1; i <= 3; i++) {
            if (isnan(h->pixdim[i])) return bad(path, "pixdim[%d] (voxel spacing) is NaN", i);
            if (h->pixdim[i] < 0) return bad(path, "pixdim[%d] (voxel spacing) is negative (%g)", i, h->pixdim[i]);
            if (h->pixdim[i] == 0 && i <= (nd < 3 ? nd : 3)) return bad(path, "pixdim[%d] (voxel spacing) is zero", i);
        }
    }
    double aff[16];
    const char *why = NULL;
    if (vp_nifti_affine_from_fields(h->version, h->qform_code, h->sform_code, h->pixdim, h->quatern, h->qoffset, h->srow, h->dim, aff, &why)) {
        return bad(path, "%s", why);
    }

    hi->nd = nd;
    hi->nbyper = nbyper;
    hi->swapsize = swapsize;
    memcpy(hi->dims, dims, sizeof dims);
    hi->nvox = nvox;
    hi->nbytes = nbytes;
    hi->off = off;
    hi->slope = slope;
    hi->inter = inter;
    memcpy(hi->aff, aff, sizeof aff);
    return 0;
}

int vp_nifti_read(const char *path, vp_vol **out, struct vp_nifti_info *info)
{
    *out = NULL;
    nifti_set_debug_level(0);
    unsigned char *file = NULL, *buf = NULL;
    size_t flen = 0;
    int rc = read_whole(path, &file, &flen);
    if (rc) return rc;
    int gz = flen >= 2 && file[0] == 0x1f && file[1] == 0x8b;
    unsigned char head[540];
    size_t headlen;
    if (gz) {
        long g = gz_peek(file, flen, head, sizeof head);
        if (g < 0) { rc = bad(path, "corrupt gzip data: cannot inflate the header"); goto done; }
        headlen = (size_t)g;
    } else {
        headlen = flen < sizeof head ? flen : sizeof head;
        memcpy(head, file, headlen);
    }
    struct hdr h;
    if ((rc = parse_header(path, head, headlen, &h))) goto done;

    struct hinfo hi;
    if ((rc = check_header(path, &h, &hi))) goto done;
    int nd = hi.nd, nbyper = hi.nbyper, swapsize = hi.swapsize;
    uint64_t *dims = hi.dims, nvox = hi.nvox, nbytes = hi.nbytes, off = hi.off;
    double slope = hi.slope, inter = hi.inter, *aff = hi.aff;
    (void)nbyper;

    /* voxel data into its final buffer */
    size_t data_off;
    if (gz) {
        uint64_t need = off + nbytes;
        if (need > (uint64_t)flen * DEFLATE_MAX_RATIO + (1u << 20)) {
            rc = bad(path, "header declares %llu bytes of voxel data, more than a %zu-byte gzip file can hold",
                     (unsigned long long)nbytes, flen);
            goto done;
        }
        size_t cap = (size_t)need, got = 0;
        buf = vp_malloc(cap);
        if ((rc = gz_all(path, file, flen, &buf, &cap, &got))) goto done;
        if (got < need) {
            rc = bad(path, "truncated: header declares %llu bytes of voxel data at offset %llu, the file holds %llu",
                     (unsigned long long)nbytes, (unsigned long long)off, (unsigned long long)(got > off ? got - off : 0));
            goto done;
        }
        data_off = (size_t)off;
    } else {
        if (off + nbytes > flen) {
            rc = bad(path, "truncated: header declares %llu bytes of voxel data at offset %llu, the file holds %llu",
                     (unsigned long long)nbytes, (unsigned long long)off, (unsigned long long)(flen > off ? flen - off : 0));
            goto done;
        }
        buf = file; /* the file buffer becomes the volume: no copy */
        file = NULL;
        data_off = (size_t)off;
    }
    unsigned char *data = buf + data_off;
    if (h.swapped && swapsize > 1) nifti_swap_Nbytes((int64_t)nvox, swapsize, data);

    int vt = dtype_of(h.datatype);
    int identity = slope == 1 && inter == 0;
    if (info) {
        memset(info, 0, sizeof *info);
        info->version = h.version;
        info->qform_code = h.qform_code;
        info->sform_code = h.sform_code;
        info->datatype = h.datatype;
        info->scl_slope = slope;
        info->scl_inter = inter;
        memcpy(info->descrip, h.descrip, sizeof info->descrip);
    }
    if (vt >= 0 && identity) {
        *out = vp_vol_wrap(dims, (enum vp_dtype)vt, aff, buf, data_off);
        buf = NULL;
    } else {
        enum vp_dtype t;
        void *conv;
        convert(path, data, h.datatype, nvox, slope, inter, &t, &conv);
        *out = vp_vol_wrap(dims, t, aff, conv, 0);
        if (info) info->converted = 1;
    }
    (*out)->has_channels = nd >= 4;
    rc = 0;
done:
    free(file);
    free(buf);
    return rc;
}

/* ---- write ---- */

void vp_nifti_wopts_default(struct vp_nifti_wopts *o)
{
    memset(o, 0, sizeof *o);
    o->version = 1;
    o->gzip = -1;
    o->level = 1;
    o->threads = 1;
    o->qform_code = o->sform_code = NIFTI_XFORM_SCANNER_ANAT;
}

struct zjob {
    const unsigned char *src;
    size_t len;
    unsigned char *dst;
    size_t dstlen;
    int level;
};

struct zpool {
    struct zjob *jobs;
    int njobs, next;
    pthread_mutex_t mu;
};

static void *zworker(void *arg)
{
    struct zpool *p = arg;
    struct libdeflate_compressor *c = NULL;
    int level = -1;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        int j = p->next < p->njobs ? p->next++ : -1;
        pthread_mutex_unlock(&p->mu);
        if (j < 0) break;
        struct zjob *job = &p->jobs[j];
        if (!c || level != job->level) {
            if (c) libdeflate_free_compressor(c);
            c = libdeflate_alloc_compressor(job->level);
            level = job->level;
        }
        size_t bound = libdeflate_gzip_compress_bound(c, job->len);
        job->dst = malloc(bound);
        job->dstlen = job->dst && c ? libdeflate_gzip_compress(c, job->src, job->len, job->dst, bound) : 0;
    }
    if (c) libdeflate_free_compressor(c);
    return NULL;
}

#define GZ_CHUNK ((size_t)32 << 20)

/* gzip of a header and the voxel data as consecutive gzip members (RFC 1952 allows several;
 * zlib, Python's gzip and nibabel read them as one stream), compressed in parallel. */
static int write_gz(vp_out *o, const void *hdr, size_t hlen, const void *data, size_t dlen, int level, int threads)
{
    size_t nchunks = (dlen + GZ_CHUNK - 1) / GZ_CHUNK;
    struct zjob *jobs = vp_calloc(nchunks + 1, sizeof *jobs);
    jobs[0] = (struct zjob){hdr, hlen, NULL, 0, level};
    for (size_t i = 0; i < nchunks; i++) {
        size_t off = i * GZ_CHUNK;
        jobs[i + 1] = (struct zjob){(const unsigned char *)data + off, dlen - off < GZ_CHUNK ? dlen - off : GZ_CHUNK, NULL, 0, level};
    }
    struct zpool pool = {jobs, (int)nchunks + 1, 0, PTHREAD_MUTEX_INITIALIZER};
    int nt = threads < 1 ? 1 : threads;
    if (nt > pool.njobs) nt = pool.njobs;
    pthread_t tid[64];
    if (nt > 64) nt = 64;
    int started = 0;
    for (int i = 1; i < nt; i++)
        if (!pthread_create(&tid[started], NULL, zworker, &pool)) started++;
    zworker(&pool);
    for (int i = 0; i < started; i++) pthread_join(tid[i], NULL);
    int rc = 0;
    for (int i = 0; i < pool.njobs; i++) {
        if (!rc && (!jobs[i].dst || !jobs[i].dstlen)) rc = vp_error("'%s': gzip compression failed", vp_out_name(o));
        if (!rc) rc = vp_out_write(o, jobs[i].dst, jobs[i].dstlen);
        free(jobs[i].dst);
    }
    free(jobs);
    return rc;
}

static int nifti_dt(enum vp_dtype t)
{
    switch (t) {
    case VP_U8: return DT_UINT8;
    case VP_I16: return DT_INT16;
    case VP_U16: return DT_UINT16;
    case VP_I32: return DT_INT32;
    default: return DT_FLOAT32;
    }
}

int vp_nifti_header(const vp_vol *v, const struct vp_nifti_wopts *opt, unsigned char hbuf[548], size_t *hlenp)
{
    struct vp_nifti_wopts dflt;
    if (!opt) { vp_nifti_wopts_default(&dflt); opt = &dflt; }
    nifti_set_debug_level(0);
    int nd = v->has_channels || v->dims[3] > 1 ? 4 : 3;
    int64_t d64[8] = {nd, (int64_t)v->dims[0], (int64_t)v->dims[1], (int64_t)v->dims[2], (int64_t)v->dims[3], 1, 1, 1};
    int dt = nifti_dt(v->dtype);

    /* qform from the affine, as nibabel's set_qform: nifticlib's polar decomposition */
    nifti_dmat44 R;
    memset(&R, 0, sizeof R);
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++) R.m[r][c] = v->affine[r * 4 + c];
    double qb, qc, qd, qx, qy, qz, dx, dy, dz, qfac;
    nifti_dmat44_to_quatern(R, &qb, &qc, &qd, &qx, &qy, &qz, &dx, &dy, &dz, &qfac);
    double sp[3];
    vp_vol_spacing(v, sp);

    size_t hlen;
    if (opt->version == 2) {
        nifti_2_header *h = nifti_make_new_n2_header(d64, dt);
        if (!h) return vp_error("cannot build a NIfTI-2 header");
        h->pixdim[0] = qfac;
        for (int i = 0; i < 3; i++) h->pixdim[i + 1] = sp[i];
        h->quatern_b = qb; h->quatern_c = qc; h->quatern_d = qd;
        h->qoffset_x = qx; h->qoffset_y = qy; h->qoffset_z = qz;
        for (int i = 0; i < 4; i++) { h->srow_x[i] = v->affine[i]; h->srow_y[i] = v->affine[4 + i]; h->srow_z[i] = v->affine[8 + i]; }
        h->qform_code = opt->qform_code;
        h->sform_code = opt->sform_code;
        h->scl_slope = 1;
        h->scl_inter = 0;
        h->xyzt_units = NIFTI_UNITS_MM;
        h->vox_offset = 544;
        memset(h->descrip, 0, sizeof h->descrip);
        snprintf(h->descrip, sizeof h->descrip, "%s", opt->descrip ? opt->descrip : "voxpipe " VP_VERSION);
        memcpy(hbuf, h, sizeof *h);
        hlen = sizeof *h;
        free(h);
    } else {
        nifti_1_header *h = nifti_make_new_n1_header(d64, dt);
        if (!h) return vp_error("cannot build a NIfTI-1 header");
        h->pixdim[0] = (float)qfac;
        for (int i = 0; i < 3; i++) h->pixdim[i + 1] = (float)sp[i];
        h->quatern_b = (float)qb; h->quatern_c = (float)qc; h->quatern_d = (float)qd;
        h->qoffset_x = (float)qx; h->qoffset_y = (float)qy; h->qoffset_z = (float)qz;
        for (int i = 0; i < 4; i++) {
            h->srow_x[i] = (float)v->affine[i];
            h->srow_y[i] = (float)v->affine[4 + i];
            h->srow_z[i] = (float)v->affine[8 + i];
        }
        h->qform_code = (short)opt->qform_code;
        h->sform_code = (short)opt->sform_code;
        h->scl_slope = 1;
        h->scl_inter = 0;
        h->xyzt_units = NIFTI_UNITS_MM;
        h->vox_offset = 352;
        memset(h->descrip, 0, sizeof h->descrip);
        snprintf(h->descrip, sizeof h->descrip, "%s", opt->descrip ? opt->descrip : "voxpipe " VP_VERSION);
        memcpy(hbuf, h, sizeof *h);
        hlen = sizeof *h;
        free(h);
    }
    memset(hbuf + hlen, 0, 4); /* extension flag: none */
    *hlenp = hlen + 4;
    return 0;
}

int vp_nifti_write(const char *path, const vp_vol *v, const struct vp_nifti_wopts *opt)
{
    struct vp_nifti_wopts dflt;
    if (!opt) { vp_nifti_wopts_default(&dflt); opt = &dflt; }
    unsigned char hbuf[548];
    size_t hlen;
    uint64_t nvox = vp_vol_nvox(v);
    if (vp_nifti_header(v, opt, hbuf, &hlen)) return -1;

    const void *data = v->data;
    float *tmp = NULL;
    size_t dlen = (size_t)(nvox * vp_dtype_size(v->dtype));
    if (v->dtype == VP_F16) {
        tmp = vp_malloc((size_t)nvox * 4);
        for (uint64_t i = 0; i < nvox; i++) tmp[i] = vp_half_to_float(((const uint16_t *)v->data)[i]);
        data = tmp;
        dlen = (size_t)nvox * 4;
    }
    size_t pl = strlen(path);
    int gz = opt->gzip >= 0 ? opt->gzip : (pl > 3 && !strcmp(path + pl - 3, ".gz"));
    vp_out *o = vp_out_open(path, VP_OUT_ALLOW_TTY);
    if (!o) { free(tmp); return -1; }
    int rc;
    if (gz) rc = write_gz(o, hbuf, hlen, data, dlen, opt->level, opt->threads);
    else rc = vp_out_write(o, hbuf, hlen) || vp_out_write(o, data, dlen) ? -1 : 0;
    free(tmp);
    if (vp_out_close(&o, rc == 0)) rc = -1;
    return rc;
}

int vp_nifti_probe(const char *path, vp_vol **hdr, struct vp_nifti_info *info, uint64_t *data_off)
{
    *hdr = NULL;
    nifti_set_debug_level(0);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { vp_error("'%s': cannot open: %s", path, strerror(errno)); return -VP_ERR_RUNTIME; }
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) { vp_error("'%s': not a regular file", path); close(fd); return -VP_ERR_RUNTIME; }
    unsigned char head[540];
    ssize_t n = pread(fd, head, sizeof head, 0);
    close(fd);
    if (n < 0) { vp_error("'%s': read failed: %s", path, strerror(errno)); return -VP_ERR_RUNTIME; }
    int gz = n >= 2 && head[0] == 0x1f && head[1] == 0x8b;
    if (gz) { /* the header is the first bytes of the decompressed stream */
        vp_gzin *g = vp_gzin_open(path);
        if (!g) return -VP_ERR_DATA;
        long long r = vp_gzin_read(g, head, sizeof head);
        vp_gzin_close(&g);
        if (r < 0) return -VP_ERR_DATA;
        n = (ssize_t)r;
    }
    struct hdr h;
    struct hinfo hi;
    int rc = parse_header(path, head, (size_t)n, &h);
    if (rc || (rc = check_header(path, &h, &hi))) return rc;
    int vt = dtype_of(h.datatype);
    if (vt < 0 || h.swapped || hi.slope != 1 || hi.inter != 0) return 0; /* needs conversion */
    uint64_t fsize = (uint64_t)st.st_size;
    if (gz && hi.off + hi.nbytes > fsize * DEFLATE_MAX_RATIO + (1u << 20))
        return bad(path, "header declares %llu bytes of voxel data, more than a %llu-byte gzip file can hold",
                   (unsigned long long)hi.nbytes, (unsigned long long)fsize);
    if (!gz && hi.off + hi.nbytes > fsize)
        return bad(path, "truncated: header declares %llu bytes of voxel data at offset %llu, the file holds %llu",
                   (unsigned long long)hi.nbytes, (unsigned long long)hi.off,
                   (unsigned long long)(fsize > hi.off ? fsize - hi.off : 0));
    *hdr = vp_vol_wrap(hi.dims, (enum vp_dtype)vt, hi.aff, NULL, 0);
    (*hdr)->has_channels = hi.nd >= 4;
    if (info) {
        memset(info, 0, sizeof *info);
        info->version = h.version;
        info->qform_code = h.qform_code;
        info->sform_code = h.sform_code;
        info->datatype = h.datatype;
        info->scl_slope = 1;
        memcpy(info->descrip, h.descrip, sizeof info->descrip);
    }
    *data_off = hi.off;
    return 1;
}

int vp_nifti_copy_voxels(const char *path, uint64_t off, uint64_t n, vp_out *out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return vp_error("'%s': cannot open: %s", path, strerror(errno));
    unsigned char magic[2] = {0, 0};
    ssize_t m = pread(fd, magic, 2, 0);
    int rc;
    if (m == 2 && magic[0] == 0x1f && magic[1] == 0x8b) {
        close(fd);
        vp_gzin *g = vp_gzin_open(path);
        if (!g) return -VP_ERR_DATA;
        rc = vp_gzin_skip(g, off);
        if (!rc) rc = vp_gzin_copy(g, out, n);
        vp_gzin_close(&g);
        return rc == -2 ? -VP_ERR_DATA : rc ? -VP_ERR_RUNTIME : 0;
    }
    rc = vp_out_copy_fd(out, fd, off, n);
    close(fd);
    return rc ? -VP_ERR_RUNTIME : 0;
}
