/* dicom_fetch.c - files -> series -> cases for dcm-fetch (dicom_fetch.h). */
#include "dicom.h"
#include "dicom_fetch.h"
#include "cli.h"
#include "frame.h"
#include "parallel.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct plist { char **v; int n, cap; };

static void push(struct plist *l, const char *p)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->v = vp_realloc(l->v, sizeof *l->v * (size_t)l->cap);
    }
    l->v[l->n++] = vp_strdup(p);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int walk(const char *path, struct plist *l, int depth)
{
    struct stat st;
    if (stat(path, &st)) return vp_error("'%s': %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
        push(l, path);
        return 0;
    }
    if (depth > 32) return vp_error("'%s': directories nested too deeply", path);
    DIR *d = opendir(path);
    if (!d) return vp_error("'%s': cannot open: %s", path, strerror(errno));
    struct plist sub = {0};
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        size_t n = strlen(path) + strlen(e->d_name) + 2;
        char *p = vp_malloc(n);
        snprintf(p, n, "%s/%s", path, e->d_name);
        push(&sub, p);
        free(p);
    }
    closedir(d);
    qsort(sub.v, (size_t)sub.n, sizeof *sub.v, cmp_str);
    int rc = 0;
    for (int i = 0; i < sub.n && !rc; i++) rc = walk(sub.v[i], l, depth + 1);
    vp_dcm_paths_free(sub.v, sub.n);
    return rc;
}

int vp_dcm_collect(char **inputs, int ninputs, const char *const *lists, int nlists, char ***paths)
{
    struct plist l = {0};
    for (int i = 0; i < ninputs; i++)
        if (walk(inputs[i], &l, 0)) goto fail;
    for (int i = 0; i < nlists; i++) {
        FILE *f = fopen(lists[i], "r");
        if (!f) { vp_error("list '%s': %s", lists[i], strerror(errno)); goto fail; }
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        while ((n = getline(&line, &cap, f)) >= 0) {
            while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
            if (n && line[0] != '#' && walk(line, &l, 0)) { free(line); fclose(f); goto fail; }
        }
        free(line);
        fclose(f);
    }
    *paths = l.v;
    return l.n;
fail:
    vp_dcm_paths_free(l.v, l.n);
    return -1;
}

void vp_dcm_paths_free(char **paths, int n)
{
    for (int i = 0; i < n; i++) free(paths[i]);
    free(paths);
}

struct rd { char **paths; struct vp_dcm_file *f; int *rc; char (*why)[256]; };

static void read_range(void *ctx, uint64_t b, uint64_t e, int worker)
{
    struct rd *r = ctx;
    for (uint64_t i = b; i < e; i++) r->rc[i] = vp_dcm_read(r->paths[i], VP_DCM_DEFER, &r->f[i], r->why[i]);
}

/* case ids: letters, digits, '.', '_', '-' only, not starting with '.', at most 128 characters */
static void sanitise(char *s)
{
    size_t n = 0;
    for (char *p = s; *p && n < 128; p++, n++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
        if (!ok || (n == 0 && c == '.')) *p = '_';
    }
    s[n] = 0;
}

static void kv_str(msgpack_packer *pk, const char *k, const char *v)
{
    vp_pack_cstr(pk, k);
    if (v) vp_pack_cstr(pk, v); else msgpack_pack_nil(pk);
}

static const char *S(const struct vp_dcm_file *f, enum vp_dcm_tag t) { return f->str[t]; }

/* a UID in the clear, or its keyed pseudonym; nil when absent */
static void pack_uid(msgpack_packer *pk, const char *uid, const struct vp_deid_key *key)
{
    if (!uid) { msgpack_pack_nil(pk); return; }
    if (!key) { vp_pack_cstr(pk, uid); return; }
    char u[64];
    vp_deid_uid(key, uid, u);
    vp_pack_cstr(pk, u);
}

/* slices that are frames of a multi-frame (enhanced) image: then each slice's frame number goes along */
static int has_frames(const struct vp_dcm_series *s)
{
    for (int i = 0; i < s->n; i++)
        if (s->files[i]->frame > 0) return 1;
    return 0;
}

/* StudyInstanceUID, SeriesInstanceUID, FrameOfReferenceUID, SOPInstanceUIDs (slice order), and for
 * enhanced sources ReferencedFrameNumbers (slice order; 1-based, 0 for a single-frame image): 4 or 5
 * keys (4 + has_frames) */
static void pack_uids(msgpack_packer *pk, const struct vp_dcm_series *s, const struct vp_deid_key *key)
{
    if (has_frames(s)) {
        vp_pack_cstr(pk, "ReferencedFrameNumbers");
        msgpack_pack_array(pk, (size_t)s->n);
        for (int i = 0; i < s->n; i++) msgpack_pack_int(pk, s->files[i]->frame);
    }
    const struct vp_dcm_file *f = s->files[0];
    static const enum vp_dcm_tag t[3] = {VP_DCM_STUDY_UID, VP_DCM_SERIES_UID, VP_DCM_FOR_UID};
    for (int i = 0; i < 3; i++) {
        vp_pack_cstr(pk, vp_dcm_tag_name(t[i]));
        pack_uid(pk, S(f, t[i]), key);
    }
    vp_pack_cstr(pk, "SOPInstanceUIDs");
    msgpack_pack_array(pk, (size_t)s->n);
    for (int i = 0; i < s->n; i++) pack_uid(pk, S(s->files[i], VP_DCM_SOP_UID), key);
}

/* meta.dicom: see dcm-fetch --help. Pseudonymised, only what Annex E's basic profile keeps (or
 * replaces) goes in: names, IDs, institution, times, descriptions and private tags never do. */
/* meta.dicom.uniform: what --uniform did (uv: the resampled volume, or NULL when it did nothing) */
static void pack_uniform(msgpack_packer *pk, const struct vp_dcm_series *s, const vp_vol *uv)
{
    vp_pack_cstr(pk, "uniform");
    msgpack_pack_map(pk, 4);
    vp_pack_cstr(pk, "source_slices");
    msgpack_pack_int(pk, s->n);
    vp_pack_cstr(pk, "slices");
    msgpack_pack_uint64(pk, uv->dims[2]);
    vp_pack_cstr(pk, "spacing");
    msgpack_pack_double(pk, s->median_spacing);
    vp_pack_cstr(pk, "tilt_degrees");
    msgpack_pack_double(pk, s->tilt);
}

static void pack_meta(msgpack_packer *pk, const struct vp_dcm_series *s, const struct vp_dcm_fetch_opts *o, const vp_vol *uv)
{
    const struct vp_dcm_file *f = s->files[0];
    const struct vp_deid_key *key = o->key;
    int desc = !key || o->keep_descriptions;
    msgpack_pack_map(pk, (size_t)(key ? 14 + desc : 16) + (uv != NULL) + has_frames(s));
    if (uv) pack_uniform(pk, s, uv);
    vp_pack_cstr(pk, "pseudonymised");
    if (key) msgpack_pack_true(pk); else msgpack_pack_false(pk);
    kv_str(pk, "grouping", s->fallback_key ? "FrameOfReferenceUID+ImageOrientationPatient+Rows/Columns (no SeriesInstanceUID)"
                                           : "SeriesInstanceUID");
    kv_str(pk, "Modality", S(f, VP_DCM_MODALITY));
    kv_str(pk, "SOPClassUID", S(f, VP_DCM_SOP_CLASS)); /* a standard UID: identifies no one */
    kv_str(pk, "TransferSyntaxUID", S(f, VP_DCM_TRANSFER_SYNTAX));
    vp_pack_cstr(pk, "slices");
    msgpack_pack_int(pk, uv ? (int)uv->dims[2] : s->nslices);
    vp_pack_cstr(pk, "slice_spacing");
    msgpack_pack_double(pk, uv ? s->median_spacing : s->spacing);
    if (desc) kv_str(pk, "SeriesDescription", S(f, VP_DCM_SERIES_DESC));
    const char *pid = S(f, VP_DCM_PATIENT_ID), *date = S(f, VP_DCM_STUDY_DATE);
    if (!key) {
        kv_str(pk, "SeriesNumber", S(f, VP_DCM_SERIES_NUMBER));
        kv_str(pk, "PatientID", pid);
        kv_str(pk, "StudyDate", date);
        kv_str(pk, "StudyTime", S(f, VP_DCM_STUDY_TIME));
        pack_uids(pk, s, NULL);
        return;
    }
    char ps[65], d[9];
    vp_deid_pseudonym(key, pid, ps);
    kv_str(pk, "PatientID", ps);
    kv_str(pk, "StudyDate", vp_deid_shift_date(date, vp_deid_date_offset(key, pid), d) ? NULL : d);
    pack_uids(pk, s, key);
    /* the originals, for dcm-store at the hospital: sealed with the site key */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer sp;
    msgpack_packer_init(&sp, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&sp, (size_t)(7 + has_frames(s)));
    pack_uids(&sp, s, NULL);
    kv_str(&sp, "PatientID", pid);
    kv_str(&sp, "StudyDate", date); /* the SEG goes back into the original study: its date and time */
    kv_str(&sp, "StudyTime", S(f, VP_DCM_STUDY_TIME));
    vp_pack_cstr(pk, "sealed");
    vp_deid_seal(key, sb.data, sb.size, pk);
    msgpack_sbuffer_destroy(&sb);
}

/* provenance; pseudonymised, input paths (file names may hold UIDs or names) become INPUT */
static void add_provenance(vp_case *c, const struct vp_dcm_fetch_opts *o)
{
    if (!o->key) { vp_case_add_provenance(c, "dcm-fetch"); return; }
    static const char *const valued[] = {"--id", "--site-key", "--image-name", "--on-error", "--tolerance", "--list", NULL};
    int argc = vp_cli_argc();
    char **argv = vp_cli_argv();
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_map(&pk, 3);
    kv_str(&pk, "program", "dcm-fetch");
    kv_str(&pk, "version", VP_VERSION);
    vp_pack_cstr(&pk, "args");
    msgpack_pack_array(&pk, (size_t)(argc > 0 ? argc : 0));
    /* --pacs query keys and peer: their values may identify (a patient, a study, a site) */
    static const char *const hidden[] = {"--patient-id", "--study-uid", "--series-uid", "--accession", "--pacs", "--aet",
                                         "--aec", "--dicomweb", "--date", NULL};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int v = 0, h = 0;
        for (int j = 0; valued[j]; j++) v |= !strcmp(a, valued[j]);
        for (int j = 0; hidden[j]; j++) {
            size_t l = strlen(hidden[j]);
            h |= !strncmp(a, hidden[j], l) && (a[l] == 0 || a[l] == '=');
        }
        char buf[64];
        const char *eq = a[0] == '-' ? strchr(a, '=') : NULL;
        if (eq && (h || !strncmp(a, "--list=", 7))) { /* --opt=VALUE: the value goes */
            snprintf(buf, sizeof buf, "%.*s=%s", (int)(eq - a) < 40 ? (int)(eq - a) : 40, a, h ? "INPUT" : "LIST");
            a = buf;
        }
        vp_pack_cstr(&pk, a[0] == '-' ? a : "INPUT");
        if (h && !eq && i + 1 < argc) {
            i++;
            vp_pack_cstr(&pk, "INPUT");
        } else if (v && i + 1 < argc) {
            i++;
            vp_pack_cstr(&pk, !strcmp(a, "--list") ? "LIST" : argv[i]);
        }
    }
    vp_case_meta_set_sbuf(c, "provenance", &sb);
    msgpack_sbuffer_destroy(&sb);
}

static char *case_id(const struct vp_dcm_series *s, int idx, int nseries, const struct vp_dcm_fetch_opts *o)
{
    char buf[256];
    const struct vp_dcm_file *f = s->files[0];
    const char *suid = S(f, VP_DCM_SERIES_UID);
    if (o->id) {
        if (nseries == 1) snprintf(buf, sizeof buf, "%s", o->id);
        else snprintf(buf, sizeof buf, "%s-%d", o->id, idx + 1);
    } else if (o->key) {
        /* keyed, so the same series gets the same id, and nothing of the original shows */
        /* the smallest SOPInstanceUID: the same id whatever the files are called or their order */
        const char *sop = NULL;
        for (int i = 0; i < s->n; i++) {
            const char *u = S(s->files[i], VP_DCM_SOP_UID);
            if (u && (!sop || strcmp(u, sop) < 0)) sop = u;
        }
        char k[512], h[65];
        snprintf(k, sizeof k, "%s|%s|%s|%d", suid ? suid : "", S(f, VP_DCM_FOR_UID) ? S(f, VP_DCM_FOR_UID) : "",
                 sop ? sop : f->path, idx);
        vp_deid_pseudonym(o->key, k, h);
        snprintf(buf, sizeof buf, "s%.16s", h);
    } else if (suid) {
        snprintf(buf, sizeof buf, "%s", suid);
    } else {
        snprintf(buf, sizeof buf, "series-%d", idx + 1);
    }
    sanitise(buf);
    return vp_strdup(buf);
}

static int fetch_series(struct vp_dcm_series *s, int idx, int nseries, const struct vp_dcm_fetch_opts *o, vp_out *out)
{
    char why[256];
    char *id = case_id(s, idx, nseries, o);
    int rc = vp_dcm_series_order(s, o->tolerance, why);
    if (rc) { vp_error("series %d ('%s', %d files): %s", idx + 1, id, s->n, why); free(id); return -rc; }
    if (s->fallback_key)
        vp_warn("series %d ('%s'): no SeriesInstanceUID; grouped by FrameOfReferenceUID, orientation and size", idx + 1, id);
    if (s->tilt > 0 && !o->uniform) {
        vp_error("series %d ('%s'): gantry tilt (or sheared stack): slices advance %.3f degrees off the slice normal; "
                 "--uniform resamples it onto an orthogonal grid", idx + 1, id, s->tilt);
        free(id);
        return VP_ERR_DATA;
    }
    if (s->nonuniform && !o->uniform) {
        if (!o->allow_nonuniform) {
            vp_error("series %d ('%s'): %s (--uniform resamples, --allow-nonuniform takes the mean spacing)", idx + 1, id, s->why);
            free(id);
            return VP_ERR_DATA;
        }
        vp_warn("series %d ('%s'): %s; using the mean spacing %.4f mm", idx + 1, id, s->why, s->spacing);
    }
    if (s->n == 1 && s->files[0]->frames > 1)
        vp_warn("series %d ('%s'): multi-frame file: frames stacked along the normal %.4f mm apart", idx + 1, id, s->spacing);
    if (!s->files[0]->has_iop || !s->files[0]->has_ipp)
        vp_warn("series %d ('%s'): no ImageOrientationPatient/ImagePositionPatient: identity orientation assumed", idx + 1, id);
    vp_vol *v = NULL;
    if ((rc = vp_dcm_series_build(s, &v, why))) { vp_error("series %d ('%s'): %s", idx + 1, id, why); free(id); return -rc; }
    int resampled = o->uniform && (s->nonuniform || s->tilt > 0);
    if (resampled) {
        vp_vol *u = NULL;
        if ((rc = vp_dcm_series_uniform(s, v, &u, why))) {
            vp_error("series %d ('%s'): %s", idx + 1, id, why);
            vp_vol_free(&v);
            free(id);
            return -rc;
        }
        vp_info("series %d ('%s'): %s%s%s; resampled from %d slices to %llu at %.4f mm%s", idx + 1, id,
                s->nonuniform ? s->why : "", s->nonuniform && s->tilt > 0 ? "; " : "", s->tilt > 0 ? "gantry tilt" : "",
                s->n, (unsigned long long)u->dims[2], s->median_spacing, s->tilt > 0 ? ", tilt corrected" : "");
        vp_vol_free(&v);
        v = u;
    }
    vp_case *c = vp_case_new(id);
    free(id);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pack_meta(&pk, s, o, resampled ? v : NULL);
    vp_case_meta_set_sbuf(c, "dicom", &sb);
    msgpack_sbuffer_destroy(&sb);
    add_provenance(c, o);
    vp_case_add_vol(c, o->image_name, v);
    rc = vp_case_write(out, c) ? VP_ERR_RUNTIME : 0;
    vp_case_free(&c);
    return rc;
}

int vp_dcm_fetch_run(char **paths, int n, const struct vp_dcm_fetch_opts *o, vp_out *out)
{
    vp_dcm_init();
    struct vp_dcm_file *f = vp_calloc((size_t)(n ? n : 1), sizeof *f);
    int *rcs = vp_calloc((size_t)(n ? n : 1), sizeof *rcs);
    char (*why)[256] = vp_calloc((size_t)(n ? n : 1), sizeof *why);
    struct rd r = {paths, f, rcs, why};
    vp_parallel_for((uint64_t)n, 1, read_range, &r);
    int good = 0, rc = 0;
    for (int i = 0; i < n; i++) {
        if (!rcs[i]) { if (good != i) { f[good] = f[i]; memset(&f[i], 0, sizeof f[i]); } good++; continue; }
        if (!strncmp(why[i], "no PixelData", 12)) {
            vp_info("'%s': %s; skipped", paths[i], why[i]);
        } else if (o->skip_bad) {
            vp_warn("'%s': %s; skipped", paths[i], why[i]);
        } else {
            vp_error("'%s': %s", paths[i], why[i]);
            if (!rc) rc = -rcs[i];
        }
        vp_dcm_file_clear(&f[i]);
    }
    if (!rc && !good) { vp_error("no DICOM images among %d file(s)", n); rc = VP_ERR_DATA; }
    /* enhanced multi-frame images: one slice per frame, placed by its own position */
    int nf = rc ? n : vp_dcm_split_frames(&f, good); /* f's entries from here on */
    struct vp_dcm_series *s = NULL;
    int ns = rc ? 0 : vp_dcm_group(f, nf, &s);
    for (int i = 0; i < ns && !rc; i++) rc = fetch_series(&s[i], i, ns, o, out);
    for (int i = 0; i < ns; i++) free(s[i].files);
    free(s);
    for (int i = 0; i < nf; i++) vp_dcm_file_clear(&f[i]);
    free(f);
    free(rcs);
    free(why);
    return rc;
}
