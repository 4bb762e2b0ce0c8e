/* dicom_seg.h - label volumes -> DICOM Segmentation objects (binary SEG, DCMTK dcmseg) and
 * sending DICOM files to a PACS by C-STORE (DCMTK dcmnet).
 *
 * lib/dicom_seg.cc is the C-callable layer over DCMTK; lib/dicom_anatomy.c holds the coded anatomy
 * (SNOMED CT, from DICOM PS3.16 CID 7603 "Vertebra" and CID 4031 "Common Anatomic Region") that
 * names each segment.
 *
 * Ownership: every string in struct vp_seg_ref / vp_seg_segment is borrowed from the caller for
 * the duration of the call. vp_seg_write() writes one file atomically (temp + rename).
 */
#ifndef VP_DICOM_SEG_H
#define VP_DICOM_SEG_H

#include <stddef.h>

#include "volume.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A code (Coding Scheme Designator, Code Value, Code Meaning). */
struct vp_code { const char *scheme, *value, *meaning; };

/* What the SEG references: the source series. sop_uids[k] (frame_numbers[k]) is the source image of slice k of the
 * label volume (dcm-fetch's slice order), so the volume must lie on the source grid.
 * content_date/content_time (DA "YYYYMMDD", TM "HHMMSS") become the SEG's ContentDate/Time and
 * InstanceCreationDate/Time: the caller derives them from the source (or takes them from the user),
 * never from the clock, so the same input gives the same bytes. study_time may be NULL. */
struct vp_seg_ref {
    const char *patient_id, *study_uid, *series_uid, *for_uid, *sop_class, *study_date, *study_time;
    const char *const *sop_uids;
    int nsop;
    const char *content_date, *content_time;
    /* NULL, or per slice the 1-based frame of sop_uids[k] that slice k is (a multi-frame source;
     * 0 for a single-frame image): the SEG's per-frame source references then name the frame */
    const int *frame_numbers;
};

struct vp_seg_segment {
    int value;               /* label value in the volume */
    char label[65];          /* SegmentLabel (LO) */
    struct vp_code category; /* Segmented Property Category (CID 7150) */
    struct vp_code type;     /* Segmented Property Type */
    double rgb[3];           /* recommended display colour, sRGB 0..1 */
};

/* Coded anatomy for a class name ("vertebrae_C1", "C1", "vertebra L5", "sacrum"): the SNOMED CT
 * code and 1, or the generic SCT "Anatomical Structure" code and 0 when the name is not one of
 * C1..L5 or the sacrum. The category is always SCT "Anatomical Structure". */
int vp_seg_anatomy(const char *name, struct vp_code *category, struct vp_code *type);

/* A recommended display colour for label value v (distinct hues, deterministic). */
void vp_seg_colour(int value, double rgb[3]);

/* Build the SEG of an integer label volume (one segment per entry of segs, one frame per slice
 * where that segment has voxels) and write it atomically to path. series_uid/sop_uid: the new
 * object's UIDs; series_desc its SeriesDescription. 0 ok, or -VP_ERR_DATA / -VP_ERR_RUNTIME with
 * the reason in why[256]. */
int vp_seg_write(const vp_vol *labels, const struct vp_seg_ref *ref, const struct vp_seg_segment *segs, int nseg,
                 const char *series_uid, const char *sop_uid, const char *series_desc, const char *path,
                 char why[256]);

/* Send DICOM files to a Storage SCP by C-STORE. timeout: seconds for connecting, association and
 * each DIMSE message; tls: NULL or off for plain TCP (dicom_tls.h). 0 ok, or -VP_ERR_RUNTIME (or
 * -VP_ERR_USAGE for unusable TLS files) with the reason in why[256]. */
struct vp_dcm_tls;
int vp_dcm_cstore(const char *host, int port, const char *aet, const char *aec, int timeout,
                  const struct vp_dcm_tls *tls, const char *const *paths, int n, char why[256]);

#ifdef __cplusplus
}
#endif
#endif
