/* dicom_pacs.c - dcm-fetch --pacs: query, fetch into a private temporary directory, assemble (see
 * dicom_net.h). */
#include "dicom_net.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dicom_fetch.h"
#include "dicom_web.h"
#include "endpoint.h"
#include "frame.h"
#include "tidy.h"
#include "util.h"

/* remove the temporary directory and the files in it (C-GET writes only plain NNNNNN.dcm there) */
static void rm_tmpdir(void *arg)
{
    const char *dir = arg;
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[4096];
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* --query: study uid, series uid, modality, description, instances; pseudonymised unless the
 * identifiers are kept (UIDs keyed as in the stream, descriptions only with --keep-descriptions) */
static int print_hits(const struct vp_dcm_hit *h, int n, const struct vp_dcm_fetch_opts *o)
{
    printf("study_uid\tseries_uid\tmodality\tdescription\tinstances\n");
    for (int i = 0; i < n; i++) {
        char st[65], se[65], mo[17], de[65];
        if (o->key) {
            vp_deid_uid(o->key, h[i].study_uid, st);
            vp_deid_uid(o->key, h[i].series_uid, se);
        } else {
            vp_tidy_field(st, sizeof st, h[i].study_uid);
            vp_tidy_field(se, sizeof se, h[i].series_uid);
        }
        vp_tidy_field(mo, sizeof mo, h[i].modality);
        vp_tidy_field(de, sizeof de, !o->key || o->keep_descriptions ? h[i].description : "");
        char ni[16] = "NA";
        if (h[i].instances >= 0) snprintf(ni, sizeof ni, "%d", h[i].instances);
        printf("%s\t%s\t%s\t%s\t%s\n", st, se, mo, de, ni);
    }
    return fflush(stdout) || ferror(stdout) ? VP_ERR_RUNTIME : 0;
}

int vp_dcm_pacs_run(const struct vp_dcm_peer *p, const struct vp_dcm_query *q, int query_only,
                    const struct vp_dcm_fetch_opts *o, const char *out_spec)
{
    char why[256];
    struct vp_dcm_hit *hits = NULL;
    int n = p->web ? vp_dcm_web_find(p->web, q, &hits, why) : vp_dcm_find(p, q, &hits, why);
    if (n < 0) { vp_error("%s", why); free(hits); return -n; }
    if (query_only) { int rc = print_hits(hits, n, o); free(hits); return rc; }
    if (!n && p->web) { vp_error("no series at %s matches the query", p->web->url); free(hits); return VP_ERR_DATA; }
    if (!n) { vp_error("no series at %s (%s:%d) matches the query", p->aec, p->host, p->port); free(hits); return VP_ERR_DATA; }
    const char *tmp = getenv("TMPDIR");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/vp-dcm-fetch-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) { vp_error("creating a temporary directory under '%s': %m", tmp && *tmp ? tmp : "/tmp"); free(hits); return VP_ERR_RUNTIME; }
    vp_atexit_cleanup(rm_tmpdir, dir); /* on vp_die and SIGINT/SIGTERM */
    int nf = 0, rc = p->web ? -vp_dcm_web_get(p->web, hits, n, dir, &nf, why)
                            : -(p->move_port > 0 ? vp_dcm_move : vp_dcm_get)(p, hits, n, dir, &nf, why);
    if (rc) vp_error("%s", why);
    else vp_info("%d series, %d object(s) received from %s", n, nf, p->web ? p->web->url : p->aec);
    free(hits);
    char **paths = NULL;
    int np = 0;
    vp_out *out = NULL;
    if (!rc && (np = vp_dcm_collect((char *[]){dir}, 1, NULL, 0, &paths)) < 0) rc = VP_ERR_RUNTIME;
    if (!rc && !(out = vp_out_open(out_spec, 0))) rc = VP_ERR_RUNTIME;
    if (!rc) rc = vp_dcm_fetch_run(paths, np, o, out);
    if (paths) vp_dcm_paths_free(paths, np);
    if (out) {
        if (rc) vp_out_close(&out, 0);
        else if (vp_stream_finish(&out)) rc = VP_ERR_RUNTIME;
    }
    vp_cancel_cleanup(rm_tmpdir, dir);
    rm_tmpdir(dir);
    return rc;
}
