/* dicom_web.h - dcm-fetch's DICOMweb source (--dicomweb URL): QIDO-RS to find the series with the
 * same query keys as the DIMSE path (dicom_net.h), WADO-RS to retrieve each series as
 * multipart/related; type="application/dicom", over HTTP or HTTPS with libcurl. The received
 * instances go to a private temporary directory as NNNNNN.dcm, then the same assembly, decoding and
 * pseudonymisation as every other source (dicom_pacs.c drives it, as for DIMSE).
 *
 * Bounds: --timeout is the connect timeout and the longest a transfer may stall (fewer than 1 byte
 * per second for that long); a response larger than max_bytes fails; a QIDO-RS answer is JSON of
 * at most 64 MiB; a multipart body that does not parse (no boundary, a part without headers, a
 * part that is not application/dicom, no closing delimiter) fails with the reason. Credentials
 * come from a file or an environment variable, never from the command line or the URL.
 *
 * lib/dicom_web.c is the HTTP layer (built with -DVP_WITH_CURL and linked with -lcurl; otherwise
 * a stub that says so); lib/dicom_web_parse.c holds the two parsers (JSON, multipart), pure
 * functions on a buffer, tested on their own (tests/unit/test_dicom_web.c).
 *
 * Ownership: the strings in struct vp_dcm_web are borrowed from the caller; vp_dcm_web_find()
 * returns a malloc'ed array (free()); vp_dcm_web_auth_load() fills a fixed buffer the caller
 * clears (vp_dcm_web_auth_clear()).
 */
#ifndef VP_DICOM_WEB_H
#define VP_DICOM_WEB_H

#include <stddef.h>

#include "dicom_net.h"

#ifdef __cplusplus
extern "C" {
#endif

struct vp_dcm_tls;

/* how to authenticate: none, HTTP basic (user:password) or a bearer token */
struct vp_dcm_web_auth {
    enum { VP_WEB_AUTH_NONE, VP_WEB_AUTH_BASIC, VP_WEB_AUTH_BEARER } kind;
    char secret[1024]; /* "user:password" or the token */
};

struct vp_dcm_web {
    const char *url;                     /* service base, e.g. http://host:8042/dicom-web (no trailing /) */
    int timeout;                         /* seconds: connect, and the longest stall of a transfer */
    long long max_bytes;                 /* largest response accepted (a WADO-RS series) */
    const struct vp_dcm_tls *tls;        /* https: ca (else the system's), cert/key, no_verify */
    const struct vp_dcm_web_auth *auth;  /* NULL: none */
};

/* Whether this build has the DICOMweb source (libcurl) (1) or the stub (0). */
int vp_dcm_web_available(void);

/* Checks a --dicomweb URL: http:// or https://, a host, no user:password@ in it, no query or
 * fragment. 0 ok, else -1 with the reason in why[256]. */
int vp_dcm_web_url_check(const char *url, char why[256]);

/* Credentials from the first line of file (when not NULL) or else of the environment variable env
 * (when set and not empty): "basic USER:PASSWORD" or "bearer TOKEN". 0 ok (a->kind NONE when
 * neither is given), -1 after an error naming the file or variable (never the secret). */
int vp_dcm_web_auth_load(const char *file, const char *env, struct vp_dcm_web_auth *a);
void vp_dcm_web_auth_clear(struct vp_dcm_web_auth *a);

/* QIDO-RS: studies matching the patient / study / accession / date keys, then their series matching
 * the series / modality keys; as vp_dcm_find() (hits ordered by study then series UID). */
int vp_dcm_web_find(const struct vp_dcm_web *w, const struct vp_dcm_query *q, struct vp_dcm_hit **hits,
                    char why[256]);

/* WADO-RS: each series into dir as NNNNNN.dcm (names never come from the server), as
 * vp_dcm_get(). */
int vp_dcm_web_get(const struct vp_dcm_web *w, const struct vp_dcm_hit *hits, int n, const char *dir, int *nfiles,
                   char why[256]);

/* ---- the parsers (lib/dicom_web_parse.c) ---- */

/* One QIDO-RS result (DICOM JSON, PS3.18 F.2): the first value of the attributes dcm-fetch asks for. */
struct vp_dcm_web_row {
    char study_uid[65], series_uid[65], modality[17], description[65];
    int instances; /* -1 when absent */
};

/* Parses a QIDO-RS body (a JSON array of objects keyed by 8-digit tags; an empty body means no
 * match) into *rows (malloc'ed; free()). Returns the count, or -1 with the reason (and the byte
 * offset) in why[256]. Values longer than the fields are an error, not truncated. */
int vp_dcm_web_parse_json(const char *buf, size_t len, struct vp_dcm_web_row **rows, char why[256]);

/* The boundary parameter of a multipart/related Content-Type (quoted or not) into b[128]; also
 * checks type="application/dicom" when a type is given. 0 ok, -1 with why[256]. */
int vp_dcm_web_boundary(const char *content_type, char b[128], char why[256]);

/* Calls part(arg, data, size, why) for each body part of a multipart body with that boundary, in
 * order (a part whose Content-Type is not application/dicom is an error). Returns the count of
 * parts, or -1 with the reason in why[256] (malformed or truncated body; or part() returned nonzero
 * after writing its reason there). */
int vp_dcm_web_multipart(const char *buf, size_t len, const char *boundary,
                         int (*part)(void *arg, const char *data, size_t size, char why[256]), void *arg,
                         char why[256]);

#ifdef __cplusplus
}
#endif

#endif
