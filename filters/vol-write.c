/* vol-write - write the cases of a stream as NIfTI files (one per case and volume) or as a stream file. */
#include "cli.h"
#include "endpoint.h"
#include "frame.h"
#include "nifti.h"
#include "pathpat.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *in_spec = "-", *out_pat;
static struct vp_strlist vols;
static long level = 1;
static int nifti2, force_stream, force_nifti;

static const struct vp_opt opts[] = {
    {'i', "in", "ENDPOINT", VP_OPT_STR, &in_spec, "input stream: -, FILE, @tcp://ADDR:PORT, >tcp://HOST:PORT (default -)", 0, 0, NULL},
    {'o', "out", "PATTERN", VP_OPT_STR, &out_pat, "output: NIfTI name pattern with {id} and {vol} (.nii, .nii.gz), or a stream file", 0, 0, NULL},
    {0, "vol", "NAME", VP_OPT_LIST, &vols, "volume to write (repeatable; default: all)", 0, 0, NULL},
    {0, "gzip-level", "N", VP_OPT_INT, &level, "gzip level for .nii.gz, 0..12 (default 1, as nibabel)", 0, 12, NULL},
    {0, "nifti2", NULL, VP_OPT_FLAG, &nifti2, "write NIfTI-2 headers (64-bit dims, double affine)", 0, 0, NULL},
    {0, "stream", NULL, VP_OPT_FLAG, &force_stream, "write the raw voxpipe stream to the output file", 0, 0, NULL},
    {0, "nifti", NULL, VP_OPT_FLAG, &force_nifti, "write NIfTI whatever the extension", 0, 0, NULL},
    {0, NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
};

static const struct vp_cmd cmd = {
    "vol-write", "write cases as NIfTI files or as a stream file",
    "[options] -o PATTERN",
    "NIfTI output: one file per case and volume; {id} is the case id and {vol} the volume name, e.g.\n"
    "  vol-write -o 'seg/{id}_{vol}.nii.gz'\n"
    "Without {vol} exactly one volume must be selected (--vol, or a case with one volume).\n"
    "Both sform and qform are set (code 1, scanner); a case's files are written to temporary names and\n"
    "renamed into place once the whole case has been read, so a failed run leaves no partial file and\n"
    "no partial case (the cases before it are complete). Missing directories are created.\n"
    "Any other extension (or --stream) writes the voxpipe stream itself to one file.",
    opts, 0, 0,
};

static unsigned char *seen; /* seen[i]: the case being written has volume vols.v[i] */

static int selected(const char *name)
{
    if (!vols.n) return 1;
    for (int i = 0; i < vols.n; i++)
        if (!strcmp(vols.v[i], name)) return seen[i] = 1;
    return 0;
}

/* Two selected volumes and a pattern without {vol}: they would overwrite each other. */
static void one_vol_only(const char *id)
{
    vp_die(VP_ERR_USAGE, "case '%s' has more than one selected volume but pattern '%s' has no {vol} (select one with --vol)", id, out_pat);
}

/* The first --vol name the case did not have, or NULL. */
static const char *missing_vol(void)
{
    for (int i = 0; i < vols.n; i++)
        if (!seen[i]) return vols.v[i];
    return NULL;
}

static int ends_with(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

/* The files of the case being written: each under a hidden temporary name beside its target until
 * the whole frame has been read, then all renamed into place (a case is written whole or not at all).
 * The cleanup hook removes them when the run fails or is interrupted. */
static struct staged { char *tmp, *final; } staged[VP_MAX_VOLS];
static int nstaged;

static void unlink_staged(void *arg)
{
    (void)arg;
    for (int i = 0; i < nstaged; i++)
        if (staged[i].tmp) unlink(staged[i].tmp);
}

static void drop_staged(void)
{
    for (int i = 0; i < nstaged; i++) { free(staged[i].tmp); free(staged[i].final); }
    nstaged = 0;
}

/* Stage final (taken over): create missing directories and check the target can be created (so a
 * message names it, not the temporary), then return the temporary path to write,
 * ".vol-write.PID.N.BASENAME" in the same directory (same extension: gzip follows the name as for
 * the target). NULL after a message. */
static const char *stage(char *final)
{
    staged[nstaged].final = final;
    staged[nstaged].tmp = NULL;
    nstaged++;
    vp_out *probe = vp_mkdir_parents(final) ? NULL : vp_out_open(final, VP_OUT_ALLOW_TTY);
    if (!probe) return NULL;
    vp_out_close(&probe, 0);
    const char *slash = strrchr(final, '/');
    size_t dir = slash ? (size_t)(slash - final + 1) : 0;
    size_t n = strlen(final) + 64;
    char *tmp = vp_malloc(n);
    snprintf(tmp, n, "%.*s.vol-write.%ld.%d.%s", (int)dir, final, (long)getpid(), nstaged - 1, final + dir);
    return staged[nstaged - 1].tmp = tmp;
}

/* The case is complete: rename its files into place. 0 ok, or VP_ERR_RUNTIME after a message. */
static int commit_staged(void)
{
    int rc = 0;
    for (int i = 0; i < nstaged; i++) {
        if (!rc && staged[i].tmp && rename(staged[i].tmp, staged[i].final)) {
            vp_error("'%s': cannot rename into place: %s", staged[i].final, strerror(errno));
            rc = VP_ERR_RUNTIME;
        }
        if (rc && staged[i].tmp) unlink(staged[i].tmp);
        else vp_debug("wrote '%s'", staged[i].final);
    }
    drop_staged();
    return rc;
}

static int abort_staged(int rc)
{
    unlink_staged(NULL);
    drop_staged();
    return rc;
}

int main(int argc, char **argv)
{
    vp_cli_parse(&cmd, argc, argv);
    if (!out_pat) vp_usage_error("missing -o/--out");
    int nifti = force_nifti || (!force_stream && (ends_with(out_pat, ".nii") || ends_with(out_pat, ".nii.gz")));
    vp_in *in = vp_in_open(in_spec);
    if (!in) return VP_ERR_RUNTIME;

    if (!nifti) { /* the stream itself, atomically */
        if (vp_path_has(out_pat, "{")) vp_usage_error("a stream file name takes no {placeholders}");
        if (vp_mkdir_parents(out_pat)) { vp_in_close(&in); return VP_ERR_RUNTIME; }
        vp_out *out = vp_out_open(out_pat, 0);
        if (!out) { vp_in_close(&in); return VP_ERR_RUNTIME; }
        vp_case *c;
        int r;
        while ((r = vp_case_read(in, &c)) > 0) {
            vp_case_add_provenance(c, cmd.name);
            int w = vp_case_write(out, c);
            vp_case_free(&c);
            if (w) { vp_in_close(&in); vp_out_close(&out, 0); return VP_ERR_RUNTIME; }
        }
        vp_in_close(&in);
        if (r < 0) { vp_out_close(&out, 0); return -r; }
        return vp_out_close(&out, 1) ? VP_ERR_RUNTIME : 0;
    }

    struct vp_nifti_wopts wo;
    vp_nifti_wopts_default(&wo);
    wo.level = (int)level;
    wo.version = nifti2 ? 2 : 1;
    wo.threads = vp_threads;
    int has_vol = vp_path_has(out_pat, "{vol}");
    int gz = ends_with(out_pat, ".gz");
    vp_case *c;
    vp_sreader *sr;
    int r, nfiles = 0;
    vp_atexit_cleanup(unlink_staged, NULL);
    seen = vp_calloc((size_t)vols.n + 1, 1);
    while ((r = vp_case_begin(in, &c, &sr)) > 0) {
        memset(seen, 0, (size_t)vols.n + 1);
        /* volumes read whole (frames in another key order) and streamed ones, in frame order */
        int nsel = 0, total = c->nvols + vp_sreader_pending(sr);
        if (!vols.n && total > 1 && !has_vol)
            vp_die(VP_ERR_USAGE, "case '%s' has %d volumes to write but pattern '%s' has no {vol} (select one with --vol)", c->id, total, out_pat);
        int rc = 0;
        for (int i = 0; i < c->nvols && !rc; i++) {
            if (!selected(c->vol_names[i])) continue;
            if (nsel++ && !has_vol) one_vol_only(c->id);
            char *final = vp_path_expand(out_pat, c->id, c->vol_names[i]);
            if (!final) { rc = VP_ERR_DATA; break; }
            const char *path = stage(final);
            if (!path || vp_nifti_write(path, c->vols[i], &wo)) rc = VP_ERR_RUNTIME;
            else nfiles++;
        }
        const char *name;
        const vp_vol *hdr;
        while (!rc && (r = vp_sreader_next(sr, &name, &hdr)) > 0) {
            if (!selected(name)) continue; /* skipped by the next call */
            if (nsel++ && !has_vol) one_vol_only(c->id);
            char *final = vp_path_expand(out_pat, c->id, name);
            if (!final) { rc = VP_ERR_DATA; break; }
            const char *path = stage(final);
            if (!path) { rc = VP_ERR_RUNTIME; break; }
            if (gz || hdr->dtype == VP_F16) { /* compress or convert: needs the whole volume */
                vp_vol *v = vp_sreader_take(sr, &r);
                if (!v) break;
                if (vp_nifti_write(path, v, &wo)) rc = VP_ERR_RUNTIME;
                vp_vol_free(&v);
            } else { /* header, then the payload spliced from the stream into the file */
                unsigned char hb[548];
                size_t hl;
                vp_out *o = vp_out_open(path, VP_OUT_ALLOW_TTY);
                struct vp_payload_writer pw;
                if (!o || vp_nifti_header(hdr, &wo, hb, &hl) || vp_out_write(o, hb, hl)) rc = VP_ERR_RUNTIME;
                else {
                    pw.out = o;
                    vp_vol_nbytes(hdr->dims, hdr->dtype, &pw.left);
                    pw.chunk_left = 0;
                    pw.chunked = 0;
                    if ((r = vp_sreader_copy(sr, &pw)) < 0) { vp_out_close(&o, 0); break; }
                }
                if (o && vp_out_close(&o, rc == 0)) rc = VP_ERR_RUNTIME;
            }
            if (!rc) nfiles++;
        }
        if (rc || r < 0) {
            vp_sreader_abort(&sr);
            vp_case_free(&c);
            vp_in_close(&in);
            return abort_staged(rc ? rc : -r);
        }
        r = vp_sreader_end(&sr);
        const char *miss = r < 0 || rc ? NULL : missing_vol();
        if (!miss && r >= 0 && !nsel) vp_warn("case '%s': no selected volume to write", c->id);
        if (miss) { /* nothing of this case is written */
            vp_error("case '%s': no volume '%s' (--vol)", c->id, miss);
            vp_case_free(&c);
            vp_in_close(&in);
            return abort_staged(VP_ERR_DATA);
        }
        vp_case_free(&c);
        if (r < 0) { abort_staged(0); break; }
        if ((rc = commit_staged())) { vp_in_close(&in); return rc; }
    }
    vp_in_close(&in);
    if (r < 0) return -r;
    vp_debug("%d file(s) written", nfiles);
    return 0;
}
