/* nifti_int.h - internal interface between the parts of the NIfTI code: nifti.c (header parsing and
 * validation, the affine), nifti_read.c (whole-file and streaming reading) and nifti_write.c.
 * Not for programs: use nifti.h.
 *
 * Ownership: nothing here allocates; the structs are filled in place.
 */
#ifndef VP_NIFTI_INT_H
#define VP_NIFTI_INT_H

#include <stddef.h>
#include <stdint.h>

#define DEFLATE_MAX_RATIO 1032 /* deflate cannot expand more than ~1032:1 */

/* the header fields voxpipe uses, from a NIfTI-1 or NIfTI-2 header in native byte order */
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

/* what check_header derives: sizes, scaling and the affine */
struct hinfo {
    int nd, nbyper, swapsize;
    uint64_t dims[4], nvox, nbytes, off;
    double slope, inter, aff[16];
};

/* Print "prog: error: 'path': <message>" and return -VP_ERR_DATA. */
int vp_nifti_bad(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parse a header from the first n bytes of a file. 0 ok, or -VP_ERR_DATA after a message. */
int vp_nifti_parse_header(const char *path, const unsigned char *buf, size_t n, struct hdr *h);
/* Validate a parsed header and derive sizes, scaling and the affine. 0 ok, or -VP_ERR_DATA. */
int vp_nifti_check_header(const char *path, const struct hdr *h, struct hinfo *hi);
/* The voxpipe dtype of a NIfTI datatype stored without conversion, or -1. */
int vp_nifti_dtype_of(int dt);

#endif
