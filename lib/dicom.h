/* dicom.h - reading DICOM image files (DCMTK) and assembling them into volumes.
 *
 * lib/dicom_dcmtk.cc is the only C++ file: a C-callable layer over DCMTK that parses a file, pulls
 * out the attributes voxpipe uses (struct vp_dcm_file) and decodes the pixel data of every
 * transfer syntax DCMTK handles (uncompressed little/big endian, deflate, RLE, JPEG, JPEG-LS).
 * JPEG 2000 fragments are handed back undecoded and decoded with OpenJPEG (lib/dicom_j2k.c).
 * lib/dicom_series.c groups files into series, orders slices along the slice normal, checks the
 * spacing and builds the HU volume with its RAS affine.
 *
 * Ownership: vp_dcm_read() fills a struct the caller releases with vp_dcm_file_clear(); its strings
 * and pixel buffer are owned by it. vp_dcm_series_build() returns a new volume (vp_vol_free).
 */
#ifndef VP_DICOM_H
#define VP_DICOM_H

#include <stddef.h>
#include <stdint.h>

#include "volume.h"

#ifdef __cplusplus
extern "C" {
#endif

/* String attributes extracted from each file (all optional; NULL when absent or empty). */
enum vp_dcm_tag {
    VP_DCM_STUDY_UID, VP_DCM_SERIES_UID, VP_DCM_SOP_UID, VP_DCM_FOR_UID, VP_DCM_SOP_CLASS,
    VP_DCM_SERIES_DESC, VP_DCM_STUDY_DESC, VP_DCM_MODALITY, VP_DCM_SERIES_NUMBER,
    VP_DCM_PATIENT_ID, VP_DCM_PATIENT_NAME, VP_DCM_PATIENT_BIRTH, VP_DCM_PATIENT_SEX,
    VP_DCM_STUDY_DATE, VP_DCM_SERIES_DATE, VP_DCM_ACQ_DATE, VP_DCM_CONTENT_DATE, VP_DCM_STUDY_TIME,
    VP_DCM_ACCESSION, VP_DCM_STUDY_ID, VP_DCM_INSTITUTION, VP_DCM_REFERRING, VP_DCM_MANUFACTURER,
    VP_DCM_BODY_PART, VP_DCM_KERNEL, VP_DCM_TRANSFER_SYNTAX, VP_DCM_PHOTOMETRIC,
    VP_DCM_NTAGS
};
/* Attribute keyword of a tag (e.g. "StudyInstanceUID"). */
const char *vp_dcm_tag_name(enum vp_dcm_tag t);

struct vp_dcm_file {
    char *path;
    char *str[VP_DCM_NTAGS];
    int has_iop, has_ipp, has_ps;
    double iop[6], ipp[3], ps[2]; /* ps: row spacing, column spacing (mm) */
    double thickness, between;    /* SliceThickness, SpacingBetweenSlices (0 when absent) */
    double slope, inter;          /* RescaleSlope/Intercept (1, 0 when absent) */
    double tilt;                  /* GantryDetectorTilt in degrees (0 when absent) */
    int rows, cols, frames, spp;
    int bits_alloc, bits_stored, pixrep;
    int is_j2k;                   /* pixels are JPEG 2000 (decoded by vp_dcm_decode_j2k) */
    int64_t instance;             /* InstanceNumber, for messages */
    int frame;                    /* 1-based frame of the multi-frame file it was split from, else 0 */
    /* enhanced (multi-frame) images: the per-frame functional groups' PlanePositionSequence, frames x 3
     * (NULL otherwise). Orientation, pixel measures and rescale come from the functional groups
     * (shared or per frame; they must not vary between frames) into iop, ps, thickness, between,
     * slope and inter above. */
    double *frame_ipp;
    /* decoded pixels: frames * rows * cols values of bits_alloc (8 or 16) bits, host order,
     * exactly as stored (not yet masked to bits_stored nor sign-extended) */
    void *pix;
    size_t pix_bytes;
    /* deferred (VP_DCM_DEFER, pix NULL): those pix_bytes bytes, already in host order, lie at this
     * offset of the file; vp_dcm_series_build reads them from there. 0 otherwise. */
    int64_t pix_off;
};

/* vp_dcm_read modes */
enum {
    VP_DCM_PIXELS = 0,  /* read and decode the pixel data */
    VP_DCM_HEADERS = 1, /* skip the pixel data */
    VP_DCM_DEFER = 2,   /* as VP_DCM_PIXELS, but uncompressed host-order single-frame pixel data is
                         * only located (pix_off), checked to lie within the file, and left there */
};
/* Read and decode one file (mode: see above). 0 ok, or -VP_ERR_DATA (not DICOM, malformed,
 * unsupported) / -VP_ERR_RUNTIME (I/O) with the reason in why[256]. Thread-safe. */
int vp_dcm_read(const char *path, int mode, struct vp_dcm_file *f, char why[256]);
void vp_dcm_file_clear(struct vp_dcm_file *f);
/* Register DCMTK's decoders once (call before any thread reads). */
void vp_dcm_init(void);

/* Split every multi-frame file with per-frame positions (frame_ipp) into single-frame files, one per
 * frame, in frame order (path "PATH[frame N]"); the others are moved over unchanged. *files (n of
 * them) is replaced by a new array (the old one freed), the new count returned. */
int vp_dcm_split_frames(struct vp_dcm_file **files, int n);

/* JPEG 2000 (dicom_j2k.c): decode one codestream (J2K or JP2) into out (rows*cols values of
 * bits_alloc bits). 0 ok, -1 with why. */
int vp_dcm_decode_j2k(const unsigned char *cs, size_t n, int rows, int cols, int bits_alloc,
                      void *out, char why[256]);

/* ---- series assembly (dicom_series.c) ---- */
struct vp_dcm_series {
    struct vp_dcm_file **files; /* borrowed, in slice order after vp_dcm_series_order */
    int n;
    int fallback_key;           /* grouped without a SeriesInstanceUID */
    int nslices;                /* slices (files x frames) */
    double spacing;             /* between slices, from positions (mean) */
    double median_spacing;      /* the median step between neighbouring slices */
    double normal[3];
    int nonuniform;             /* spacing varies (missing slices or irregular) */
    double tilt;                /* degrees the stack advances off the slice normal (gantry tilt), or 0 */
    char why[256];              /* the non-uniformity, for messages */
};

/* Group files into series: by SeriesInstanceUID, or when it is empty by FrameOfReferenceUID +
 * ImageOrientationPatient + Rows/Columns. Returns the number of series; *out an array the caller
 * frees (files arrays too). Deterministic: series ordered by their first file's path. */
int vp_dcm_group(struct vp_dcm_file *files, int n, struct vp_dcm_series **out);

/* Order slices along the normal, compute the spacing from positions and check it. 0 ok, or
 * -VP_ERR_DATA with why (duplicate positions, mixed sizes). Uneven spacing sets nonuniform (with
 * why), a sheared stack (gantry tilt) sets tilt with why: the caller refuses or resamples. */
int vp_dcm_series_order(struct vp_dcm_series *s, double tol_rel, char why[256]);

/* Build the HU volume (i16 when the values fit, else u16, i32, or f32 when the rescale is not
 * integral; u8 for 8-bit data without rescale) and its RAS affine. 0 ok or -VP_ERR_DATA. */
int vp_dcm_series_build(const struct vp_dcm_series *s, vp_vol **out, char why[256]);

/* dicom_uniform.c: resample the volume built from s (slice k = s->files[k]) onto a uniform,
 * orthogonal grid: median spacing along the normal (linear between slices), in-plane shifts of a
 * sheared stack undone (bilinear), the in-plane extent widened to keep every pixel. Same dtype
 * (rounded half up). 0 ok, or -VP_ERR_DATA with why. */
int vp_dcm_series_uniform(const struct vp_dcm_series *s, const vp_vol *in, vp_vol **out, char why[256]);

#ifdef __cplusplus
}
#endif
#endif
