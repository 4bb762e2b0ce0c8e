/* nifti.h - NIfTI-1 and NIfTI-2 (.nii, .nii.gz) reading and writing.
 *
 * Headers are validated and swapped with nifticlib; gzip goes through libdeflate (whole-buffer,
 * several times faster than zlib's inflate). The voxel-to-RAS affine is derived exactly as nibabel's
 * Nifti1Header.get_best_affine(): sform if sform_code > 0, else qform if qform_code > 0, else the
 * Analyze base affine (x flipped, origin at the volume centre).
 *
 * Ownership: vp_nifti_read() returns a new volume the caller frees with vp_vol_free().
 */
#ifndef VP_NIFTI_H
#define VP_NIFTI_H

#include "endpoint.h"
#include "volume.h"

struct vp_nifti_info {
    int version;            /* 1 or 2 */
    int qform_code, sform_code;
    int datatype;           /* NIfTI datatype code in the file */
    double scl_slope, scl_inter; /* as applied (1, 0 when none) */
    char descrip[81];
    int converted;          /* voxel values were converted (scaling, or a type voxpipe lacks) */
};

/* Read a file. 0 ok, or a negative exit code (-VP_ERR_RUNTIME for I/O, -VP_ERR_DATA for a bad file)
 * after printing "prog: error: 'path': why". */
int vp_nifti_read(const char *path, vp_vol **out, struct vp_nifti_info *info);

/* For streaming: when path is a NIfTI (.nii or .nii.gz) whose voxels need no conversion (a voxpipe
 * dtype, native byte order, no scaling), set *hdr to a header-only volume (dims, dtype, affine;
 * data NULL), fill *info and the voxel data's offset in the (decompressed) file, and return 1.
 * Return 0 when the file must be read whole with vp_nifti_read (conversion needed), or a negative
 * exit code on error. */
int vp_nifti_probe(const char *path, vp_vol **hdr, struct vp_nifti_info *info, uint64_t *data_off);
/* Copy n voxel bytes at offset off of the (decompressed) file to out: sendfile for .nii, streaming
 * igzip decoding on a second thread for .nii.gz. 0 ok, or after a message -VP_ERR_DATA (corrupt or
 * truncated file) or -VP_ERR_RUNTIME (I/O). */
int vp_nifti_copy_voxels(const char *path, uint64_t off, uint64_t n, vp_out *out);

struct vp_nifti_wopts {
    int version;      /* 1 (default, as nibabel) or 2 */
    int gzip;         /* -1: from the file name (.gz), 0 no, 1 yes */
    int level;        /* gzip level 0..12 (libdeflate), default 1 as nibabel */
    int threads;      /* compression threads */
    int qform_code, sform_code; /* default 1 (scanner) */
    const char *descrip;
};
void vp_nifti_wopts_default(struct vp_nifti_wopts *o);

/* The header (and the 4-byte empty extension flag) vol-write puts before the voxels: 352 bytes for
 * NIfTI-1, 544 for NIfTI-2. v's data is not used. 0 ok, -1 after a message. */
int vp_nifti_header(const vp_vol *v, const struct vp_nifti_wopts *o, unsigned char hbuf[548], size_t *hlen);

/* Write atomically (temporary file + rename). f16 is written as float32. 0 ok, -1 after a message. */
int vp_nifti_write(const char *path, const vp_vol *v, const struct vp_nifti_wopts *o);

/* Affine from raw header fields as nibabel computes it (exposed for tests). */
int vp_nifti_affine_from_fields(int version, int qform_code, int sform_code, const double pixdim[8],
                                const double quatern[3], const double qoffset[3], const double srow[12],
                                const int64_t dim[8], double affine[16], const char **why);

#endif
