/* nifti_read.c - reading NIfTI files: whole (libdeflate for .nii.gz, voxel conversion where
 * voxpipe lacks the type or the header scales) or streamed (probe, then copy the voxels); see
 * nifti.h. */
#include "nifti.h"
#include "nifti_int.h"
#include "gzstream.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <libdeflate.h>
#include <math.h>
#include <nifti2_io.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

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
            if (out == 0) { rc = vp_nifti_bad(path, "corrupt gzip data: bad gzip header"); break; }
            break; /* trailing garbage after the last member: ignored, as gzip does */
        }
        size_t ain = 0, aout = 0;
        enum libdeflate_result r = libdeflate_gzip_decompress_ex(d, src + in, srclen - in, *dst + out, *cap - out, &ain, &aout);
        if (r == LIBDEFLATE_INSUFFICIENT_SPACE) {
            size_t bound = srclen * (size_t)DEFLATE_MAX_RATIO + (1u << 20);
            if (*cap >= bound) { rc = vp_nifti_bad(path, "corrupt gzip data: expands beyond the deflate limit"); break; }
            size_t ncap = *cap * 2 < bound ? *cap * 2 : bound;
            *dst = vp_realloc(*dst, ncap);
            *cap = ncap;
            continue;
        }
        if (r != LIBDEFLATE_SUCCESS) {
            rc = vp_nifti_bad(path, "corrupt gzip data (%s)", r == LIBDEFLATE_SHORT_OUTPUT ? "short output" : "bad data or truncated file");
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


/* What vp_nifti_read and vp_nifti_probe report about a file (info may be NULL); converted is 0. */
static void fill_info(struct vp_nifti_info *info, const struct hdr *h, double slope, double inter)
{
    if (!info) return;
    memset(info, 0, sizeof *info);
    info->version = h->version;
    info->qform_code = h->qform_code;
    info->sform_code = h->sform_code;
    info->datatype = h->datatype;
    info->scl_slope = slope;
    info->scl_inter = inter;
    memcpy(info->descrip, h->descrip, sizeof info->descrip);
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
        if (g < 0) { rc = vp_nifti_bad(path, "corrupt gzip data: cannot inflate the header"); goto done; }
        headlen = (size_t)g;
    } else {
        headlen = flen < sizeof head ? flen : sizeof head;
        memcpy(head, file, headlen);
    }
    struct hdr h;
    if ((rc = vp_nifti_parse_header(path, head, headlen, &h))) goto done;

    struct hinfo hi;
    if ((rc = vp_nifti_check_header(path, &h, &hi))) goto done;
    int nd = hi.nd, nbyper = hi.nbyper, swapsize = hi.swapsize;
    uint64_t *dims = hi.dims, nvox = hi.nvox, nbytes = hi.nbytes, off = hi.off;
    double slope = hi.slope, inter = hi.inter, *aff = hi.aff;
    (void)nbyper;

    /* voxel data into its final buffer */
    size_t data_off;
    if (gz) {
        uint64_t need = off + nbytes;
        if (need > (uint64_t)flen * DEFLATE_MAX_RATIO + (1u << 20)) {
            rc = vp_nifti_bad(path, "header declares %llu bytes of voxel data, more than a %zu-byte gzip file can hold",
                     (unsigned long long)nbytes, flen);
            goto done;
        }
        size_t cap = (size_t)need, got = 0;
        buf = vp_malloc(cap);
        if ((rc = gz_all(path, file, flen, &buf, &cap, &got))) goto done;
        if (got < need) {
            rc = vp_nifti_bad(path, "truncated: header declares %llu bytes of voxel data at offset %llu, the file holds %llu",
                     (unsigned long long)nbytes, (unsigned long long)off, (unsigned long long)(got > off ? got - off : 0));
            goto done;
        }
        data_off = (size_t)off;
    } else {
        if (off + nbytes > flen) {
            rc = vp_nifti_bad(path, "truncated: header declares %llu bytes of voxel data at offset %llu, the file holds %llu",
                     (unsigned long long)nbytes, (unsigned long long)off, (unsigned long long)(flen > off ? flen - off : 0));
            goto done;
        }
        buf = file; /* the file buffer becomes the volume: no copy */
        file = NULL;
        data_off = (size_t)off;
    }
    unsigned char *data = buf + data_off;
    if (h.swapped && swapsize > 1) nifti_swap_Nbytes((int64_t)nvox, swapsize, data);

    int vt = vp_nifti_dtype_of(h.datatype);
    int identity = slope == 1 && inter == 0;
    fill_info(info, &h, slope, inter);
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
    int rc = vp_nifti_parse_header(path, head, (size_t)n, &h);
    if (rc || (rc = vp_nifti_check_header(path, &h, &hi))) return rc;
    int vt = vp_nifti_dtype_of(h.datatype);
    if (vt < 0 || h.swapped || hi.slope != 1 || hi.inter != 0) return 0; /* needs conversion */
    uint64_t fsize = (uint64_t)st.st_size;
    if (gz && hi.off + hi.nbytes > fsize * DEFLATE_MAX_RATIO + (1u << 20))
        return vp_nifti_bad(path, "header declares %llu bytes of voxel data, more than a %llu-byte gzip file can hold",
                   (unsigned long long)hi.nbytes, (unsigned long long)fsize);
    if (!gz && hi.off + hi.nbytes > fsize)
        return vp_nifti_bad(path, "truncated: header declares %llu bytes of voxel data at offset %llu, the file holds %llu",
                   (unsigned long long)hi.nbytes, (unsigned long long)hi.off,
                   (unsigned long long)(fsize > hi.off ? fsize - hi.off : 0));
    *hdr = vp_vol_wrap(hi.dims, (enum vp_dtype)vt, hi.aff, NULL, 0);
    (*hdr)->has_channels = hi.nd >= 4;
    fill_info(info, &h, 1, 0);
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
