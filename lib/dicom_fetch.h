/* dicom_fetch.h - what dcm-fetch does between the command line and the stream: collect files,
 * read them in parallel, assemble series and turn each into a case (volume + meta), with the
 * identifying attributes pseudonymised (dicom_deid.h) unless the caller keeps them.
 *
 * Ownership: vp_dcm_collect() returns a malloc'ed array of malloc'ed paths (vp_dcm_paths_free);
 * vp_dcm_fetch_run() writes every case to out and frees what it read.
 */
#ifndef VP_DICOM_FETCH_H
#define VP_DICOM_FETCH_H

#include "dicom_deid.h"
#include "endpoint.h"

struct vp_dcm_fetch_opts {
    const char *id;              /* case id (one series) or prefix (several); NULL: derived */
    const char *image_name;      /* volume name */
    const struct vp_deid_key *key; /* NULL: --keep-identifiers */
    int keep_descriptions;       /* Annex E "retain description" option */
    int allow_nonuniform;
    int skip_bad;                /* a malformed file is skipped (1) or fails the run (0) */
    double tolerance;            /* relative spacing tolerance */
    int uniform;                 /* resample uneven spacing and gantry tilt (dicom_uniform.c) */
};

/* Inputs (files or directories, walked recursively in name order; and the lines of list files)
 * into *paths. Returns the count, or -1 after an error. */
int vp_dcm_collect(char **inputs, int ninputs, const char *const *lists, int nlists, char ***paths);
void vp_dcm_paths_free(char **paths, int n);

/* Read, assemble and write one case per series. Returns an exit code (0 ok). */
int vp_dcm_fetch_run(char **paths, int n, const struct vp_dcm_fetch_opts *o, vp_out *out);

#endif
