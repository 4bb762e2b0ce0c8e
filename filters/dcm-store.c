/* dcm-store - label volumes -> DICOM Segmentation objects, written to files or sent by C-STORE. */
#include "cli.h"
#include "dicom.h"
#include "dicom_deid.h"
#include "dicom_seg.h"
#include "dicom_tls.h"
#include "endpoint.h"
#include "frame.h"
#include "util.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *in_spec = "-", *out_dir, *pacs, *aet = "VOXPIPE", *aec = "ANY-SCP", *site_key, *vol_name = "label";
static const char *desc = "voxpipe segmentation", *date_opt;
static long timeout = 30;
static struct vp_dcm_tls tls;

static const struct vp_opt opts[] = {
    {'i', "in", "ENDPOINT", VP_OPT_STR, &in_spec, "stream to read (default -)", 0, 0, NULL},
    {'o', "out-dir", "DIR", VP_OPT_STR, &out_dir, "write one SEG file per case into DIR (SEG_<id>.dcm)", 0, 0, NULL},
    {0, "pacs", "HOST:PORT", VP_OPT_STR, &pacs, "send each SEG to this Storage SCP by C-STORE", 0, 0, NULL},
    {0, "aet", "AE", VP_OPT_STR, &aet, "our AE title (default VOXPIPE)", 0, 0, NULL},
    {0, "aec", "AE", VP_OPT_STR, &aec, "the PACS's AE title (default ANY-SCP)", 0, 0, NULL},
    {0, "timeout", "SEC", VP_OPT_INT, &timeout, "network timeout: connect, association, each message (default 30)", 1, 3600, NULL},
    {0, "tls", NULL, VP_OPT_FLAG, &tls.on, "DICOM TLS to the PACS (needs --tls-ca or --tls-no-verify)", 0, 0, NULL},
    {0, "tls-ca", "FILE", VP_OPT_STR, &tls.ca, "PEM certificate(s) the PACS's certificate must be signed by", 0, 0, NULL},
    {0, "tls-cert", "FILE", VP_OPT_STR, &tls.cert, "our PEM certificate (with --tls-key), for PACS that require one", 0, 0, NULL},
    {0, "tls-key", "FILE", VP_OPT_STR, &tls.key, "our PEM private key (unencrypted)", 0, 0, NULL},
    {0, "tls-no-verify", NULL, VP_OPT_FLAG, &tls.no_verify, "accept any PACS certificate (encryption without authentication)", 0, 0, NULL},
    {0, "site-key", "FILE", VP_OPT_STR, &site_key, "site secret that opens meta.dicom.sealed (pseudonymised streams)", 0, 0, NULL},
    {0, "vol", "NAME", VP_OPT_STR, &vol_name, "label volume (default label)", 0, 0, NULL},
    {0, "description", "TEXT", VP_OPT_STR, &desc, "SeriesDescription of the SEG", 0, 0, NULL},
    {0, "date", "YYYYMMDD[HHMMSS]", VP_OPT_STR, &date_opt, "the SEG's ContentDate/Time (default: the source study's date and time)", 0, 0, NULL},
    {0, NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
};

static const struct vp_cmd cmd = {
    "dcm-store", "turn label volumes into DICOM Segmentation objects (files or C-STORE)",
    "[options]",
    "Each case's integer label volume becomes one binary DICOM SEG (DCMTK dcmseg) in the study of its\n"
    "source series: one segment per label value present, named from meta \"labels\", with a recommended\n"
    "display colour and coded anatomy (SNOMED CT C1..L5 vertebrae and sacrum; other names get the\n"
    "generic \"Anatomical Structure\" code), frames positioned from the volume's affine (RAS -> LPS)\n"
    "and derived from the source slice of the same index. The volume must lie on the source grid.\n"
    "The source UIDs come from meta.dicom: in the clear after dcm-fetch --keep-identifiers, or sealed\n"
    "(pseudonymised stream) and opened with --site-key. The SEG's own UIDs are 2.25 UIDs keyed on the\n"
    "source series and the labels, so the same input gives the same UIDs. The SEG's ContentDate/\n"
    "ContentTime and InstanceCreationDate/Time are the source study's StudyDate/StudyTime (original,\n"
    "not shifted; time 000000 when the source has none) or --date: the same input gives the same\n"
    "bytes. A source without StudyDate needs --date (exit 3 otherwise). A stream resampled by\n"
    "dcm-fetch --uniform is refused (its slices are not the source images).\n"
    "--tls sends over DICOM TLS (DCMTK dcmtls), verifying the PACS's certificate against --tls-ca\n"
    "(see dcm-fetch --help).",
    opts, 0, 0,
};

static struct vp_deid_key key;

static const msgpack_object *map_get(const msgpack_object *m, const char *k)
{
    if (!m || m->type != MSGPACK_OBJECT_MAP) return NULL;
    size_t n = strlen(k);
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *kk = &m->via.map.ptr[i].key;
        if (kk->type == MSGPACK_OBJECT_STR && kk->via.str.size == n && !memcmp(kk->via.str.ptr, k, n))
            return &m->via.map.ptr[i].val;
    }
    return NULL;
}

/* a str value as a malloc'ed C string, or NULL */
static char *str_dup(const msgpack_object *o)
{
    if (!o || o->type != MSGPACK_OBJECT_STR) return NULL;
    char *s = vp_malloc(o->via.str.size + 1);
    memcpy(s, o->via.str.ptr, o->via.str.size);
    s[o->via.str.size] = 0;
    return s;
}

struct src {
    char *pid, *study, *series, *forr, *sop_class, *date, *time;
    char **sops;
    int nsop;
    int *frames; /* ReferencedFrameNumbers (enhanced source), or NULL */
};

static void src_free(struct src *s)
{
    free(s->pid); free(s->study); free(s->series); free(s->forr); free(s->sop_class); free(s->date); free(s->time);
    for (int i = 0; i < s->nsop; i++) free(s->sops[i]);
    free(s->sops);
    free(s->frames);
}

static int take_uids(const msgpack_object *m, struct src *s, const char *id)
{
    s->study = str_dup(map_get(m, "StudyInstanceUID"));
    s->series = str_dup(map_get(m, "SeriesInstanceUID"));
    s->forr = str_dup(map_get(m, "FrameOfReferenceUID"));
    s->pid = str_dup(map_get(m, "PatientID"));
    s->date = str_dup(map_get(m, "StudyDate"));
    s->time = str_dup(map_get(m, "StudyTime"));
    const msgpack_object *a = map_get(m, "SOPInstanceUIDs");
    if (!s->study || !s->series || !a || a->type != MSGPACK_OBJECT_ARRAY || !a->via.array.size)
        return vp_error("case '%s': meta.dicom: no StudyInstanceUID, SeriesInstanceUID or SOPInstanceUIDs "
                        "(the source series had no UIDs: give it UIDs before dcm-fetch)", id);
    s->nsop = (int)a->via.array.size;
    s->sops = vp_calloc((size_t)s->nsop, sizeof *s->sops);
    for (int i = 0; i < s->nsop; i++)
        if (!(s->sops[i] = str_dup(&a->via.array.ptr[i])))
            return vp_error("case '%s': meta.dicom.SOPInstanceUIDs[%d]: not a UID", id, i);
    const msgpack_object *fr = map_get(m, "ReferencedFrameNumbers");
    if (!fr) return 0;
    if (fr->type != MSGPACK_OBJECT_ARRAY || fr->via.array.size != (uint32_t)s->nsop)
        return vp_error("case '%s': meta.dicom.ReferencedFrameNumbers: not one per SOPInstanceUID", id);
    s->frames = vp_calloc((size_t)s->nsop, sizeof *s->frames);
    for (int i = 0; i < s->nsop; i++) {
        const msgpack_object *x = &fr->via.array.ptr[i];
        if (x->type != MSGPACK_OBJECT_POSITIVE_INTEGER || x->via.u64 > 65535)
            return vp_error("case '%s': meta.dicom.ReferencedFrameNumbers[%d]: not a frame number (0..65535)", id, i);
        s->frames[i] = (int)x->via.u64;
    }
    return 0;
}

/* the source references from meta.dicom (opening the sealed box when pseudonymised) */
static int source(const vp_case *c, struct src *s)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    int rc = -1;
    if (vp_case_meta_parse(c, "dicom", &u) || u.data.type != MSGPACK_OBJECT_MAP) {
        vp_error("case '%s': meta.dicom: missing (not a stream from dcm-fetch?)", c->id);
        goto out;
    }
    const msgpack_object *d = &u.data, *ps = map_get(d, "pseudonymised");
    int pseudo = ps && ps->type == MSGPACK_OBJECT_BOOLEAN && ps->via.boolean;
    if (map_get(d, "uniform")) {
        vp_error("case '%s': meta.dicom.uniform: resampled by dcm-fetch --uniform, so its slices are not the source "
                 "images: labels must lie on the source grid", c->id);
        goto out;
    }
    s->sop_class = str_dup(map_get(d, "SOPClassUID"));
    if (!s->sop_class) {
        char *mod = str_dup(map_get(d, "Modality"));
        if (mod && !strcmp(mod, "CT")) s->sop_class = vp_strdup("1.2.840.10008.5.1.4.1.1.2");
        else if (mod && !strcmp(mod, "MR")) s->sop_class = vp_strdup("1.2.840.10008.5.1.4.1.1.4");
        free(mod);
        if (!s->sop_class) { vp_error("case '%s': meta.dicom: no SOPClassUID and no CT/MR Modality", c->id); goto out; }
    }
    if (!pseudo) {
        rc = take_uids(d, s, c->id);
        goto out;
    }
    const msgpack_object *box = map_get(d, "sealed"), *nonce = map_get(box, "nonce"), *b = map_get(box, "box");
    if (!b || b->type != MSGPACK_OBJECT_BIN || !nonce || nonce->type != MSGPACK_OBJECT_BIN || nonce->via.bin.size != 24) {
        vp_error("case '%s': meta.dicom.sealed: missing or malformed in a pseudonymised stream", c->id);
        goto out;
    }
    if (!site_key) { vp_error("case '%s': pseudonymised: give --site-key to open meta.dicom.sealed", c->id); goto out; }
    size_t n = 0;
    unsigned char *plain = vp_deid_unseal(&key, (const unsigned char *)nonce->via.bin.ptr,
                                          (const unsigned char *)b->via.bin.ptr, b->via.bin.size, &n);
    if (!plain) { vp_error("case '%s': meta.dicom.sealed: cannot open it (another site key, or altered)", c->id); goto out; }
    msgpack_unpacked p;
    msgpack_unpacked_init(&p);
    if (msgpack_unpack_next(&p, (const char *)plain, n, NULL) == MSGPACK_UNPACK_SUCCESS)
        rc = take_uids(&p.data, s, c->id);
    else
        vp_error("case '%s': meta.dicom.sealed: unreadable contents", c->id);
    msgpack_unpacked_destroy(&p);
    sodium_memzero(plain, n);
    free(plain);
out:
    msgpack_unpacked_destroy(&u);
    return rc;
}

/* "2.25." + the decimal of 128 bits of BLAKE2b(what) */
static void keyed_uid(const char *tag, const char *a, const void *data, size_t n, char out[64])
{
    unsigned char h[16];
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof h);
    crypto_generichash_update(&st, (const unsigned char *)tag, strlen(tag) + 1);
    crypto_generichash_update(&st, (const unsigned char *)a, strlen(a) + 1);
    crypto_generichash_update(&st, data, n);
    crypto_generichash_final(&st, h, sizeof h);
    h[0] &= 0x7f; /* keeps it under 39 digits */
    char dig[48];
    int nd = 0;
    for (;;) {
        int nz = 0, rem = 0;
        for (int i = 0; i < 16; i++) {
            int cur = rem * 256 + h[i];
            h[i] = (unsigned char)(cur / 10);
            rem = cur % 10;
            nz |= h[i];
        }
        dig[nd++] = (char)('0' + rem);
        if (!nz) break;
    }
    int o = snprintf(out, 64, "2.25.");
    while (nd) out[o++] = dig[--nd];
    out[o] = 0;
}

/* the segments: label values present, named from meta "labels" */
static int segments(const vp_case *c, const vp_vol *v, struct vp_seg_segment **out)
{
    static unsigned char seen[65536];
    memset(seen, 0, sizeof seen);
    uint64_t n = vp_vol_nvox(v);
    for (uint64_t i = 0; i < n; i++) {
        double x = vp_vol_get(v, i);
        if (x < 0 || x > 65535) { vp_error("case '%s': volume '%s': label %g outside 0..65535", c->id, vol_name, x); return -1; }
        seen[(int)x] = 1;
    }
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    int have = vp_case_meta_parse(c, "labels", &u) == 0;
    struct vp_seg_segment *s = NULL;
    int ns = 0;
    for (int val = 1; val < 65536; val++) {
        if (!seen[val]) continue;
        s = vp_realloc(s, sizeof *s * (size_t)(ns + 1));
        struct vp_seg_segment *g = &s[ns++];
        memset(g, 0, sizeof *g);
        g->value = val;
        char k[16];
        snprintf(k, sizeof k, "%d", val);
        char *name = have ? str_dup(map_get(&u.data, k)) : NULL;
        snprintf(g->label, sizeof g->label, "%s", name ? name : k);
        for (char *p = g->label; *p; p++)
            if (*p == '\\' || (unsigned char)*p < 32) *p = '_'; /* LO: no backslash, no control characters */
        if (!vp_seg_anatomy(name, &g->category, &g->type))
            vp_info("case '%s': label %d ('%s'): no specific code; SCT 91723000 \"Anatomical Structure\"", c->id, val, g->label);
        vp_seg_colour(val, g->rgb);
        free(name);
    }
    msgpack_unpacked_destroy(&u);
    if (!ns) { free(s); vp_error("case '%s': volume '%s': no labels (all zero): nothing to store", c->id, vol_name); return -1; }
    *out = s;
    return ns;
}

/* file names: letters, digits, '.', '_', '-' only; not starting with '.' */
static void safe_name(const char *id, char *out, size_t cap)
{
    snprintf(out, cap, "SEG_%.100s.dcm", id);
    for (char *p = out + 4; p[4]; p++) {
        char ch = *p;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
            *p = '_';
    }
}

static int store(vp_case *c, const char *host, int port)
{
    vp_vol *v = vp_case_vol(c, vol_name);
    if (!v) return vp_error("case '%s': no volume '%s' (--vol)", c->id, vol_name), VP_ERR_DATA;
    if (v->dtype == VP_F16 || v->dtype == VP_F32 || v->dims[3] != 1)
        return vp_error("case '%s': volume '%s': %s: not a 3D integer label volume", c->id, vol_name, vp_dtype_name(v->dtype)), VP_ERR_DATA;
    struct src s = {0};
    struct vp_seg_segment *segs = NULL;
    int rc = VP_ERR_DATA, ns;
    if (source(c, &s) || (ns = segments(c, v, &segs)) < 0) goto out;
    char series_uid[64], sop_uid[64], why[256], path[4096], name[128];
    uint64_t nb = vp_vol_nvox(v) * vp_dtype_size(v->dtype);
    keyed_uid("voxpipe-seg-series", s.series, v->data, nb, series_uid);
    keyed_uid("voxpipe-seg-instance", s.series, v->data, nb, sop_uid);
    /* ContentDate/Time: --date, else the source study's date and time (deterministic bytes) */
    char c_date[9], c_time[7] = "000000";
    const char *dsrc = date_opt ? date_opt : s.date;
    if (!dsrc) {
        vp_error("case '%s': meta.dicom: no StudyDate for the SEG's ContentDate: give --date YYYYMMDD", c->id);
        goto out;
    }
    snprintf(c_date, sizeof c_date, "%.8s", dsrc);
    if (date_opt && strlen(date_opt) > 8) snprintf(c_time, sizeof c_time, "%.6s", date_opt + 8);
    else if (!date_opt && s.time && strlen(s.time) >= 6 && strspn(s.time, "0123456789") >= 6) snprintf(c_time, sizeof c_time, "%.6s", s.time);
    if (strlen(c_date) != 8 || strspn(c_date, "0123456789") != 8) {
        vp_error("case '%s': meta.dicom.StudyDate: '%s' is not a DICOM date YYYYMMDD: give --date", c->id, dsrc);
        goto out;
    }
    struct vp_seg_ref ref = {s.pid, s.study, s.series, s.forr, s.sop_class, s.date, s.time, (const char *const *)s.sops, s.nsop,
                             c_date, c_time, s.frames};
    safe_name(c->id, name, sizeof name);
    if (out_dir) snprintf(path, sizeof path, "%s/%s", out_dir, name);
    else snprintf(path, sizeof path, "%s/voxpipe-%ld-%s", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (long)getpid(), name);
    int r = vp_seg_write(v, &ref, segs, ns, series_uid, sop_uid, desc, path, why);
    if (r) { rc = -r; vp_error("case '%s': %s: %s", c->id, out_dir ? path : "SEG", why); goto out; }
    rc = 0;
    if (host) {
        const char *p1[1] = {path};
        r = vp_dcm_cstore(host, port, aet, aec, (int)timeout, &tls, p1, 1, why);
        if (r) { rc = -r; vp_error("case '%s': %s", c->id, why); }
        else vp_info("case '%s': SEG %s stored at %s (%d segments)", c->id, sop_uid, aec, ns);
        if (!out_dir) unlink(path);
    }
    if (out_dir) vp_info("case '%s': %s (%d segments)", c->id, path, ns);
out:
    free(segs);
    src_free(&s);
    return rc;
}

int main(int argc, char **argv)
{
    vp_cli_parse(&cmd, argc, argv);
    if (date_opt && (strspn(date_opt, "0123456789") != strlen(date_opt) || (strlen(date_opt) != 8 && strlen(date_opt) != 14)))
        vp_usage_error("--date: expected YYYYMMDD or YYYYMMDDHHMMSS, got '%s'", date_opt);
    if (!out_dir && !pacs) vp_usage_error("give -o DIR and/or --pacs HOST:PORT");
    char host[256] = "";
    long port = 0;
    if (pacs) {
        const char *colon = strrchr(pacs, ':');
        char *end = NULL;
        if (colon) port = strtol(colon + 1, &end, 10);
        if (!colon || colon == pacs || (size_t)(colon - pacs) >= sizeof host || !end || *end || port < 1 || port > 65535)
            vp_usage_error("--pacs: expected HOST:PORT, got '%s'", pacs);
        memcpy(host, pacs, (size_t)(colon - pacs));
    }
    if (!pacs && tls.on) vp_usage_error("--tls needs --pacs");
    vp_dcm_tls_check(&tls);
    if (site_key && vp_deid_key_load(site_key, &key)) return VP_ERR_USAGE;
    vp_dcm_init(); /* DCMTK quiet: errors are reported by us */
    if (sodium_init() < 0) return vp_error("libsodium failed to initialise"), VP_ERR_RUNTIME;
    vp_in *in = vp_in_open(in_spec);
    if (!in) return VP_ERR_RUNTIME;
    vp_case *c = NULL;
    int r, rc = 0;
    while (!rc && (r = vp_case_read(in, &c)) > 0) {
        rc = store(c, pacs ? host : NULL, (int)port);
        vp_case_free(&c);
    }
    if (!rc && r < 0) rc = -r;
    vp_in_close(&in);
    vp_deid_key_clear(&key);
    return rc;
}
