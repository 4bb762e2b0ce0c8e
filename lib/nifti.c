/* nifti.c - NIfTI headers: parsing (NIfTI-1 and -2, either byte order), validation and the affine
 * as nibabel derives it (see nifti.h). Reading is in nifti_read.c, writing in nifti_write.c. */
#include "nifti.h"
#include "nifti_int.h"
#include "util.h"

#include <float.h>
#include <math.h>
#include <nifti2_io.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int vp_nifti_bad(const char *path, const char *fmt, ...)
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

static uint32_t bswap32(uint32_t x) { return __builtin_bswap32(x); }

/* The fields NIfTI-1 and NIfTI-2 headers share by name (in other widths) into struct hdr h;
 * x is a nifti_1_header or a nifti_2_header. */
#define COPY_FIELDS(h, x) do { \
        for (int i = 0; i < 8; i++) { (h)->dim[i] = (x).dim[i]; (h)->pixdim[i] = (x).pixdim[i]; } \
        (h)->datatype = (x).datatype; \
        (h)->vox_offset = (double)(x).vox_offset; \
        (h)->scl_slope = (x).scl_slope; \
        (h)->scl_inter = (x).scl_inter; \
        (h)->qform_code = (x).qform_code; \
        (h)->sform_code = (x).sform_code; \
        (h)->quatern[0] = (x).quatern_b; (h)->quatern[1] = (x).quatern_c; (h)->quatern[2] = (x).quatern_d; \
        (h)->qoffset[0] = (x).qoffset_x; (h)->qoffset[1] = (x).qoffset_y; (h)->qoffset[2] = (x).qoffset_z; \
        for (int i = 0; i < 4; i++) { \
            (h)->srow[i] = (x).srow_x[i]; (h)->srow[4 + i] = (x).srow_y[i]; (h)->srow[8 + i] = (x).srow_z[i]; \
        } \
        memcpy((h)->descrip, (x).descrip, 80); \
    } while (0)

/* Parse a header from the first n bytes of a file. */
int vp_nifti_parse_header(const char *path, const unsigned char *buf, size_t n, struct hdr *h)
{
    memset(h, 0, sizeof *h);
    if (n < 4) return vp_nifti_bad(path, "file too short for a NIfTI header (%zu bytes)", n);
    int32_t sz;
    memcpy(&sz, buf, 4);
    if (sz == 348 || (int32_t)bswap32((uint32_t)sz) == 348) h->version = 1;
    else if (sz == 540 || (int32_t)bswap32((uint32_t)sz) == 540) h->version = 2;
    else return vp_nifti_bad(path, "not a NIfTI file (header size field is %d, expected 348 or 540)", sz);
    h->swapped = sz != 348 && sz != 540;
    union { nifti_1_header n1; nifti_2_header n2; } u;
    size_t hsz = h->version == 1 ? sizeof u.n1 : sizeof u.n2;
    if (n < hsz) return vp_nifti_bad(path, "file too short for a NIfTI-%d header (%zu bytes)", h->version, n);
    memcpy(&u, buf, hsz);
    if (h->swapped) swap_nifti_header(&u, h->version);
    if (h->version == 1) {
        if (memcmp(u.n1.magic, "n+1", 4)) {
            if (!memcmp(u.n1.magic, "ni1", 4)) return vp_nifti_bad(path, "two-file NIfTI (.hdr/.img) is not supported; convert it to .nii");
            return vp_nifti_bad(path, "NIfTI-1 magic is not \"n+1\" (Analyze files are not supported)");
        }
        COPY_FIELDS(h, u.n1);
        h->hdr_size = 348;
    } else {
        if (memcmp(u.n2.magic, "n+2\0\r\n\032\n", 8)) {
            if (!memcmp(u.n2.magic, "ni2", 4)) return vp_nifti_bad(path, "two-file NIfTI-2 (.hdr/.img) is not supported; convert it to .nii");
            return vp_nifti_bad(path, "NIfTI-2 magic is not \"n+2\"");
        }
        COPY_FIELDS(h, u.n2);
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

/* ---- validation ---- */

int vp_nifti_dtype_of(int dt)
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

/* Validate a parsed header and derive sizes, scaling and the affine. 0 ok, or -VP_ERR_DATA. */
int vp_nifti_check_header(const char *path, const struct hdr *h, struct hinfo *hi)
{
    int nd = (int)h->dim[0];
    if (nd < 1 || nd > 7) return vp_nifti_bad(path, "dim[0] = %d is outside 1..7", nd);
    uint64_t dims[4] = {1, 1, 1, 1};
    for (int i = 1; i <= nd; i++) {
        if (h->dim[i] <= 0) return vp_nifti_bad(path, "dim[%d] = %lld is not positive", i, (long long)h->dim[i]);
        if (i <= 4) dims[i - 1] = (uint64_t)h->dim[i];
        else if (h->dim[i] != 1) return vp_nifti_bad(path, "dim[%d] = %lld: only 3D volumes with optional channels (dim[4]) are supported", i, (long long)h->dim[i]);
    }
    int nbyper = 0, swapsize = 0;
    nifti_datatype_sizes(h->datatype, &nbyper, &swapsize);
    int supported = vp_nifti_dtype_of(h->datatype) >= 0 || h->datatype == DT_INT8 || h->datatype == DT_UINT32 ||
                    h->datatype == DT_INT64 || h->datatype == DT_UINT64 || h->datatype == DT_FLOAT64;
    if (!nbyper || !supported) {
        return vp_nifti_bad(path, "unsupported NIfTI datatype %d (%s)", h->datatype, nifti_datatype_to_string(h->datatype));
    }
    uint64_t nvox = 0, nbytes = 0;
    enum vp_dtype probe = VP_U8;
    if (vp_vol_nbytes(dims, probe, &nvox) || vp_mul_overflow(nvox, (uint64_t)nbyper, &nbytes) || nbytes > VP_MAX_VOL_BYTES) {
        return vp_nifti_bad(path, "dimensions %lldx%lldx%lldx%lld are too large", (long long)dims[0], (long long)dims[1], (long long)dims[2], (long long)dims[3]);
    }
    if (!isfinite(h->vox_offset) || h->vox_offset < 0 || h->vox_offset > 1e12) return vp_nifti_bad(path, "vox_offset %g is invalid", h->vox_offset);
    uint64_t off = (uint64_t)h->vox_offset;
    if (off < h->hdr_size + 4) off = h->hdr_size + 4; /* as nibabel: data never overlaps the header */

    /* slope/inter as nibabel: slope 0 or non-finite means no scaling; a bad intercept is an error */
    double slope = h->scl_slope, inter = h->scl_inter;
    if (slope == 0 || !isfinite(slope)) { slope = 1; inter = 0; }
    else if (!isfinite(inter)) return vp_nifti_bad(path, "valid scl_slope %g but invalid scl_inter %g", slope, inter);

    /* the affine, with nibabel's precedence; pixdims must be sane where they are the spacing */
    if (h->sform_code == 0) {
        for (int i = 1; i <= 3; i++) {
            if (isnan(h->pixdim[i])) return vp_nifti_bad(path, "pixdim[%d] (voxel spacing) is NaN", i);
            if (h->pixdim[i] < 0) return vp_nifti_bad(path, "pixdim[%d] (voxel spacing) is negative (%g)", i, h->pixdim[i]);
            if (h->pixdim[i] == 0 && i <= (nd < 3 ? nd : 3)) return vp_nifti_bad(path, "pixdim[%d] (voxel spacing) is zero", i);
        }
    }
    double aff[16];
    const char *why = NULL;
    if (vp_nifti_affine_from_fields(h->version, h->qform_code, h->sform_code, h->pixdim, h->quatern, h->qoffset, h->srow, h->dim, aff, &why)) {
        return vp_nifti_bad(path, "%s", why);
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
