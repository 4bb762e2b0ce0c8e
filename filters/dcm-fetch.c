/* dcm-fetch - DICOM files (a directory or a list) -> one case per series, pseudonymised. */
#include "cli.h"
#include "dicom_fetch.h"
#include "dicom_net.h"
#include "dicom_tls.h"
#include "dicom_web.h"
#include "endpoint.h"
#include "frame.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *out_spec = "-", *id_opt, *site_key, *image_name = "image";
static struct vp_strlist lists;
static int keep_ids, keep_desc, allow_nonuniform, uniform, on_error;
static double tolerance = 0.01;
static const char *pacs, *aet = "VOXPIPE", *aec = "ANY-SCP";
static long timeout = 30;
static int query_only, move;
static long move_port;
static const char *dicomweb, *auth_file, *auth_env;
static long max_mib = 4096;
static struct vp_dcm_query q;
static struct vp_dcm_tls tls;
static const char *const on_error_choices[] = {"fail", "skip", NULL};

static const struct vp_opt opts[] = {
    {'o', "out", "ENDPOINT", VP_OPT_STR, &out_spec, "where to write the stream (default -)", 0, 0, NULL},
    {0, "list", "FILE", VP_OPT_LIST, &lists, "file naming DICOM files or directories, one per line (repeatable)", 0, 0, NULL},
    {0, "site-key", "FILE", VP_OPT_STR, &site_key, "site secret (>= 32 bytes) keying pseudonyms, date shifts and the sealed UIDs", 0, 0, NULL},
    {0, "keep-identifiers", NULL, VP_OPT_FLAG, &keep_ids, "do not pseudonymise (inside the hospital only)", 0, 0, NULL},
    {0, "keep-descriptions", NULL, VP_OPT_FLAG, &keep_desc, "keep SeriesDescription when pseudonymising (Annex E retain-descriptions option)", 0, 0, NULL},
    {0, "allow-nonuniform", NULL, VP_OPT_FLAG, &allow_nonuniform, "accept missing slices or uneven spacing (warns; mean spacing)", 0, 0, NULL},
    {0, "uniform", NULL, VP_OPT_FLAG, &uniform, "resample uneven spacing and gantry tilt onto a uniform grid (see below)", 0, 0, NULL},
    {0, "tolerance", "FRAC", VP_OPT_DOUBLE, &tolerance, "relative spacing deviation still uniform (default 0.01)", 1e-6, 0.5, NULL},
    {0, "on-error", "MODE", VP_OPT_CHOICE, &on_error, "a malformed or truncated file: fail (default) or skip", 0, 0, on_error_choices},
    {0, "pacs", "HOST:PORT", VP_OPT_STR, &pacs, "fetch from this PACS (C-FIND, then C-GET) instead of files", 0, 0, NULL},
    {0, "dicomweb", "URL", VP_OPT_STR, &dicomweb, "fetch from this DICOMweb service (QIDO-RS, then WADO-RS) instead of files", 0, 0, NULL},
    {0, "auth-file", "FILE", VP_OPT_STR, &auth_file, "DICOMweb credentials: first line 'basic USER:PASSWORD' or 'bearer TOKEN'", 0, 0, NULL},
    {0, "auth-env", "NAME", VP_OPT_STR, &auth_env, "DICOMweb credentials from this environment variable (same syntax)", 0, 0, NULL},
    {0, "max-mib", "MIB", VP_OPT_INT, &max_mib, "DICOMweb: largest WADO-RS response (one series) accepted (default 4096)", 1, 1 << 20, NULL},
    {0, "aet", "AE", VP_OPT_STR, &aet, "our AE title (default VOXPIPE)", 0, 0, NULL},
    {0, "aec", "AE", VP_OPT_STR, &aec, "the PACS's AE title (default ANY-SCP)", 0, 0, NULL},
    {0, "timeout", "SEC", VP_OPT_INT, &timeout, "network timeout: connect, association, each message (default 30)", 1, 3600, NULL},
    {0, "tls", NULL, VP_OPT_FLAG, &tls.on, "DICOM TLS to the PACS (needs --tls-ca or --tls-no-verify)", 0, 0, NULL},
    {0, "tls-ca", "FILE", VP_OPT_STR, &tls.ca, "PEM certificate(s) the PACS's certificate must be signed by", 0, 0, NULL},
    {0, "tls-cert", "FILE", VP_OPT_STR, &tls.cert, "our PEM certificate (with --tls-key), for PACS that require one", 0, 0, NULL},
    {0, "tls-key", "FILE", VP_OPT_STR, &tls.key, "our PEM private key (unencrypted)", 0, 0, NULL},
    {0, "tls-no-verify", NULL, VP_OPT_FLAG, &tls.no_verify, "accept any PACS certificate (encryption without authentication)", 0, 0, NULL},
    {0, "patient-id", "ID", VP_OPT_STR, &q.patient_id, "query key: PatientID", 0, 0, NULL},
    {0, "study-uid", "UID", VP_OPT_STR, &q.study_uid, "query key: StudyInstanceUID", 0, 0, NULL},
    {0, "series-uid", "UID", VP_OPT_STR, &q.series_uid, "query key: SeriesInstanceUID", 0, 0, NULL},
    {0, "accession", "NUMBER", VP_OPT_STR, &q.accession, "query key: AccessionNumber", 0, 0, NULL},
    {0, "modality", "MOD", VP_OPT_STR, &q.modality, "query key: Modality (of the series)", 0, 0, NULL},
    {0, "date", "DATE", VP_OPT_STR, &q.date, "query key: StudyDate, YYYYMMDD or a range YYYYMMDD-YYYYMMDD", 0, 0, NULL},
    {0, "move", NULL, VP_OPT_FLAG, &move, "retrieve by C-MOVE to our own storage SCP (--port) instead of C-GET", 0, 0, NULL},
    {0, "port", "PORT", VP_OPT_INT, &move_port, "with --move: the port our storage SCP listens on", 1, 65535, NULL},
    {0, "query", NULL, VP_OPT_FLAG, &query_only, "list the matching series (TSV on stdout) instead of fetching", 0, 0, NULL},
    {0, "id", "ID", VP_OPT_STR, &id_opt, "case id (one series) or prefix (ID-1, ID-2 ...)", 0, 0, NULL},
    {0, "image-name", "NAME", VP_OPT_STR, &image_name, "name of the image volume (default image)", 0, 0, NULL},
    {0, NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
};

static const struct vp_cmd cmd = {
    "dcm-fetch", "read DICOM series from files or directories into a voxpipe stream",
    "[options] FILE|DIR...   or   --pacs HOST:PORT --aec AE QUERY-KEYS...   or   --dicomweb URL QUERY-KEYS...",
    "Files are parsed with DCMTK (uncompressed little/big endian, deflate, RLE, JPEG baseline and\n"
    "lossless, JPEG-LS) and OpenJPEG (JPEG 2000). They are grouped into series by SeriesInstanceUID\n"
    "(and orientation and size); when the UID is empty, by FrameOfReferenceUID + orientation + size\n"
    "(with a warning). Slices are ordered by ImagePositionPatient along the slice normal (row x column\n"
    "direction), the spacing comes from the positions; missing slices or uneven spacing fail the series\n"
    "(exit 3) unless --allow-nonuniform or --uniform, so does gantry tilt unless --uniform. Enhanced\n"
    "(multi-frame) images are split into slices by their per-frame functional groups (plane position;\n"
    "orientation, pixel measures and rescale may not vary). Voxels are HU (RescaleSlope/Intercept\n"
    "applied): i16 when they fit, else u16/i32, f32 for a non-integral rescale, u8 for 8-bit data.\n"
    "The affine maps (column, row, slice) to RAS. One case per series; its id is sanitised.\n"
    "--uniform resamples onto a uniform, orthogonal grid: the median slice spacing from the first to\n"
    "the last slice, linear along the normal between the two nearest slices; a sheared stack (gantry\n"
    "tilt) is shifted back slice by slice (bilinear in-plane) onto the first slice's grid, widened so\n"
    "no pixel is lost (as dcm2niix's _Tilt output); uncovered voxels get the minimum (air); integer\n"
    "values are rounded half up. meta.dicom.uniform records it; the slices no longer match the source\n"
    "images, so dcm-store refuses labels on this grid.\n"
    "\n"
    "meta.dicom: pseudonymised (bool), grouping, Modality, TransferSyntaxUID, slices, slice_spacing,\n"
    "PatientID, StudyDate, StudyInstanceUID, SeriesInstanceUID, FrameOfReferenceUID, SOPInstanceUIDs\n"
    "(slice order; from a multi-frame source also ReferencedFrameNumbers, the frame of each slice);\n"
    "with --keep-identifiers also SeriesDescription, SeriesNumber and StudyTime, as in the files.\n"
    "\n"
    "Pseudonymisation (default; needs --site-key) follows DICOM PS3.15 Annex E's basic profile for\n"
    "everything in the stream: only the attributes above travel; PatientID becomes HMAC-SHA256(site\n"
    "key, PatientID), StudyDate is shifted by a per-patient keyed offset (1..3650 days back), UIDs\n"
    "become keyed 2.25 UIDs, names, other IDs, institution, times, descriptions and private tags are\n"
    "dropped, and input paths leave the provenance. The original UIDs, PatientID, StudyDate and\n"
    "StudyTime travel in meta.dicom.sealed, encrypted with the site key (XSalsa20-Poly1305): only\n"
    "the hospital side, holding the key, can open it (dcm-store). Make a key once per site:\n"
    "  head -c 32 /dev/urandom > site.key && chmod 600 site.key\n"
    "\n"
    "PACS (--pacs): C-FIND (Study Root) at study level with --patient-id/--study-uid/--accession,\n"
    "then at series level with --series-uid/--modality (at least one key; DICOM wildcards pass\n"
    "through), then C-GET of each matching series on one association into a private temporary\n"
    "directory ($TMPDIR or /tmp, removed at the end, also on error or signal; file names never come\n"
    "from the peer), then assembly and pseudonymisation exactly as for files. --timeout bounds the\n"
    "connection, the association and each DIMSE message; a refused association or a timeout fails\n"
    "(exit 1) naming the peer. --tls encrypts the associations (DCMTK dcmtls, BCP 195 cipher suites)\n"
    "and verifies the PACS's certificate against --tls-ca (the host name is not checked: trust the\n"
    "CA you give); a certificate it cannot verify fails the association (exit 1).\n"
    "--move retrieves by C-MOVE instead (as DCMTK movescu): a storage SCP of ours listens on --port\n"
    "while the PACS sends the series to our AE title (--aet), which the PACS must know with this\n"
    "host and port (Orthanc: DicomModalities). It accepts only associations called by --aec and\n"
    "the image storage classes. With --tls that storage SCP accepts TLS only, presents --tls-cert/\n"
    "--tls-key (required then) and requires the PACS's certificate signed by --tls-ca (unless\n"
    "--tls-no-verify); the PACS must be told to use TLS towards our AE title.\n"
    "--dicomweb URL (e.g. http://pacs:8042/dicom-web) queries by QIDO-RS with the same keys (studies,\n"
    "then their series) and retrieves each series by WADO-RS (multipart/related; type=application/dicom;\n"
    "transfer-syntax=*: instances as stored) over HTTP or HTTPS (libcurl), then assembles them as above.\n"
    "--timeout is the connect timeout and the longest a transfer may stall; a response over --max-mib\n"
    "fails, as does a malformed or truncated multipart body (exit 1, nothing written). https verifies the\n"
    "server and its host name against the system CAs or --tls-ca (--tls-no-verify turns that off);\n"
    "--tls-cert/--tls-key give a client certificate. Credentials never go on the command line or in the\n"
    "URL: --auth-file FILE or --auth-env NAME holds 'basic USER:PASSWORD' or 'bearer TOKEN'. Redirects\n"
    "are not followed.\n"
    "--query prints the matching series as TSV (study_uid series_uid modality description\n"
    "instances) instead of fetching. Pseudonymised (the default), the UIDs printed are the keyed\n"
    "UIDs the stream would carry and the description is empty (unless --keep-descriptions); to\n"
    "see or select by the real UIDs, query with --keep-identifiers inside the hospital.",
    opts, 0, -1,
};

int main(int argc, char **argv)
{
    int first = vp_cli_parse(&cmd, argc, argv);
    const char *src = pacs ? "--pacs" : "--dicomweb";
    if (pacs && dicomweb) vp_usage_error("give either --pacs or --dicomweb, not both");
    if (!pacs && !dicomweb && (query_only || q.patient_id || q.study_uid || q.series_uid || q.accession || q.modality || q.date))
        vp_usage_error("--query and the query keys need --pacs HOST:PORT or --dicomweb URL");
    if ((pacs || dicomweb) && (first < argc || lists.n)) vp_usage_error("give either %s or files, not both", src);
    if (uniform && allow_nonuniform) vp_usage_error("--uniform and --allow-nonuniform exclude each other");
    if ((pacs || dicomweb) && !q.patient_id && !q.study_uid && !q.series_uid && !q.accession && !q.modality && !q.date)
        vp_usage_error("%s needs at least one query key (--patient-id, --study-uid, --series-uid, --accession, --modality, --date)", src);
    if (!dicomweb && (auth_file || auth_env)) vp_usage_error("--auth-file and --auth-env need --dicomweb");
    if (auth_file && auth_env) vp_usage_error("--auth-file and --auth-env exclude each other");
    char host[256];
    long port = 0;
    if (pacs) {
        const char *colon = strrchr(pacs, ':');
        char *end = NULL;
        if (colon) port = strtol(colon + 1, &end, 10);
        if (!colon || colon == pacs || (size_t)(colon - pacs) >= sizeof host || !end || *end || port < 1 || port > 65535)
            vp_usage_error("--pacs: expected HOST:PORT, got '%s'", pacs);
        memcpy(host, pacs, (size_t)(colon - pacs));
        host[colon - pacs] = 0;
    }
    struct vp_dcm_web web = {dicomweb, (int)timeout, (long long)max_mib << 20, &tls, NULL};
    if (dicomweb) {
        char why[256];
        if (vp_dcm_web_url_check(dicomweb, why)) vp_usage_error("--dicomweb: %s", why);
        int https = !strncasecmp(dicomweb, "https:", 6);
        if (tls.on) vp_usage_error("--dicomweb: no --tls (an https:// URL is TLS)");
        if (!https && (tls.ca || tls.cert || tls.key || tls.no_verify))
            vp_usage_error("--tls-ca, --tls-cert, --tls-key and --tls-no-verify need an https:// URL");
        tls.on = https;
        if (tls.ca && tls.no_verify) vp_usage_error("--tls-ca and --tls-no-verify exclude each other");
        if (!tls.cert != !tls.key) vp_usage_error("--tls-cert and --tls-key come together");
        if (move || move_port) vp_usage_error("--move and --port need --pacs");
        if (!vp_dcm_web_available())
            vp_die(VP_ERR_RUNTIME, "--dicomweb: this build has no DICOMweb (libcurl): build with -DVP_WITH_CURL and link -lcurl");
    } else if (!pacs && tls.on) vp_usage_error("--tls needs --pacs");
    if ((move || move_port) && !pacs) vp_usage_error("--move and --port need --pacs");
    if (move != (move_port > 0)) vp_usage_error("--move and --port PORT come together");
    if (move && tls.on && !tls.cert) vp_usage_error("--move --tls: our storage SCP needs --tls-cert and --tls-key");
    if (!dicomweb) vp_dcm_tls_check(&tls);
    if (!pacs && !dicomweb && first >= argc && !lists.n) vp_usage_error("give DICOM files or directories, or --list FILE");
    if (!keep_ids && !site_key) vp_usage_error("pseudonymisation needs --site-key FILE (or --keep-identifiers inside the hospital)");
    if (keep_ids && site_key) vp_usage_error("--site-key and --keep-identifiers exclude each other");
    struct vp_deid_key key;
    if (site_key && vp_deid_key_load(site_key, &key)) return VP_ERR_USAGE;
    struct vp_dcm_web_auth auth;
    if (dicomweb && vp_dcm_web_auth_load(auth_file, auth_env, &auth)) return VP_ERR_USAGE;
    if (dicomweb) web.auth = &auth;
    if (pacs || dicomweb) {
        struct vp_dcm_peer peer = {pacs ? host : dicomweb, (int)port, aet, dicomweb ? "DICOMweb" : aec, (int)timeout, &tls,
                                   move ? (int)move_port : 0, dicomweb ? &web : NULL};
        struct vp_dcm_fetch_opts o = {id_opt, image_name, site_key ? &key : NULL, keep_desc, allow_nonuniform,
                                      on_error == 1, tolerance, uniform};
        int rc = vp_dcm_pacs_run(&peer, &q, query_only, &o, out_spec);
        if (site_key) vp_deid_key_clear(&key);
        if (dicomweb) vp_dcm_web_auth_clear(&auth);
        return rc;
    }
    char **paths = NULL;
    int n = vp_dcm_collect(argv + first, argc - first, lists.v, lists.n, &paths);
    if (n < 0) return VP_ERR_RUNTIME;
    struct vp_dcm_fetch_opts o = {id_opt, image_name, site_key ? &key : NULL, keep_desc, allow_nonuniform,
                                  on_error == 1, tolerance, uniform};
    vp_out *out = vp_out_open(out_spec, 0);
    if (!out) { vp_dcm_paths_free(paths, n); return VP_ERR_RUNTIME; }
    int rc = vp_dcm_fetch_run(paths, n, &o, out);
    vp_dcm_paths_free(paths, n);
    if (site_key) vp_deid_key_clear(&key);
    if (rc) { vp_out_close(&out, 0); return rc; }
    return vp_stream_finish(&out) ? VP_ERR_RUNTIME : 0;
}
