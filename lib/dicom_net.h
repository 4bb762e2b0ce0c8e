/* dicom_net.h - dcm-fetch's PACS source over DIMSE (DCMTK dcmnet): C-FIND at study then series
 * level, C-GET (or C-MOVE to a storage SCP of our own) of the matching series into a private
 * temporary directory, then the same series assembly and pseudonymisation as files (dicom_fetch.h).
 *
 * lib/dicom_net.cc is the C-callable layer over DcmSCU (find, get); lib/dicom_pacs.c drives it
 * (temporary directory, --query listing, handing the files to vp_dcm_fetch_run()).
 *
 * Ownership: every string in struct vp_dcm_peer / vp_dcm_query is borrowed from the caller;
 * vp_dcm_find() returns a malloc'ed array of fixed-size records (free()).
 */
#ifndef VP_DICOM_NET_H
#define VP_DICOM_NET_H

#ifdef __cplusplus
extern "C" {
#endif

struct vp_dcm_tls;
struct vp_dcm_web;

struct vp_dcm_peer {
    const char *host;
    int port;
    const char *aet, *aec; /* our AE title, the PACS's */
    int timeout;           /* seconds: connect, association, each DIMSE message */
    const struct vp_dcm_tls *tls; /* NULL or off: plain TCP (dicom_tls.h) */
    int move_port;         /* > 0: retrieve by C-MOVE to our own storage SCP on this port, else C-GET */
    const struct vp_dcm_web *web; /* not NULL: the DICOMweb source instead of DIMSE (dicom_web.h) */
};

/* Query keys (NULL: not constrained); at least one must be set. Values may use DICOM wildcards. */
struct vp_dcm_query {
    const char *patient_id, *study_uid, *series_uid, *accession, *modality;
    const char *date; /* StudyDate: YYYYMMDD or a range YYYYMMDD-YYYYMMDD (either end open) */
};

/* One matching series, as the PACS reported it (UIDs in the clear). */
struct vp_dcm_hit {
    char study_uid[65], series_uid[65], modality[17], description[65];
    int instances; /* NumberOfSeriesRelatedInstances, -1 when the PACS does not say */
};

/* C-FIND: studies matching the patient / study / accession keys, then their series matching the
 * series / modality keys, on one association. *hits gets the series (ordered by study then series
 * UID), the count is returned; -VP_ERR_RUNTIME with the reason (naming the peer) in why[256]. */
int vp_dcm_find(const struct vp_dcm_peer *p, const struct vp_dcm_query *q, struct vp_dcm_hit **hits, char why[256]);

/* C-GET of each series (at SERIES level) into dir, on one association; the received objects are
 * written as dir/NNNNNN.dcm (names never come from the peer) in the transfer syntax they arrived
 * in. *nfiles counts the files written, also on error. 0 ok, or -VP_ERR_RUNTIME with why[256]. */
int vp_dcm_get(const struct vp_dcm_peer *p, const struct vp_dcm_hit *hits, int n, const char *dir, int *nfiles,
               char why[256]);

/* C-MOVE of each series (at SERIES level) to our own AE title p->aet, received by a storage SCP of
 * ours listening on p->move_port while the C-MOVE runs (lib/dicom_move.cc); otherwise as vp_dcm_get.
 * The PACS must map p->aet to this host and port. */
int vp_dcm_move(const struct vp_dcm_peer *p, const struct vp_dcm_hit *hits, int n, const char *dir, int *nfiles,
                char why[256]);

/* dcm-fetch --pacs: find the series, then list them (query: tidy TSV on stdout, pseudonymised
 * unless o->key is NULL) or fetch them into a private temporary directory (removed at the end,
 * also on error or signal) and write one case per series to out_spec as from files. Returns an
 * exit code; no output file is left on failure. */
struct vp_dcm_fetch_opts;
int vp_dcm_pacs_run(const struct vp_dcm_peer *p, const struct vp_dcm_query *q, int query_only,
                    const struct vp_dcm_fetch_opts *o, const char *out_spec);

#ifdef __cplusplus
}

#include <memory>

#include "dicom_tls.h"

/* C++, the association setup that C-FIND/C-GET (dicom_net.cc) and C-MOVE (dicom_move.cc) share: */

/* the transfer syntaxes we accept (what the reader decodes), preferred first */
extern const char *const vp_dcm_xfers[];
extern const int vp_dcm_n_xfers;

/* the image storage classes we accept (C-GET sub-operations, our C-MOVE storage SCP) */
extern const char *const vp_dcm_image_classes[];
extern const int vp_dcm_n_image_classes;

/* peer address, AE titles, timeouts (connect, ACSE, DIMSE non-blocking) from p, and a presentation
 * context for the query/retrieve class qr (explicit or implicit little endian) */
void vp_dcm_scu_setup(VpTlsScu &scu, const struct vp_dcm_peer *p, const char *qr);

/* network, TLS (when p asks; tl keeps the layer: declare it before scu), association. 0 ok, or
 * -VP_ERR_RUNTIME/-VP_ERR_USAGE with the reason, naming the peer, in why[256] */
int vp_dcm_scu_connect(VpTlsScu &scu, const struct vp_dcm_peer *p, std::unique_ptr<DcmTransportLayer> &tl,
                       char why[256]);

/* why = "WHAT with AEC at HOST:PORT: condition"; returns -VP_ERR_RUNTIME */
int vp_dcm_net_fail(char why[256], const struct vp_dcm_peer *p, const char *what, const OFCondition &c);
#endif

#endif
