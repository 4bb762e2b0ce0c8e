/* dicom_web.c - the DICOMweb source of dcm-fetch over libcurl: QIDO-RS, WADO-RS (see dicom_web.h). */
#include "dicom_web.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#ifdef VP_WITH_CURL
#include <curl/curl.h>
#endif

#include "dicom_tls.h"
#include "util.h"

int vp_dcm_web_available(void)
{
#ifdef VP_WITH_CURL
    return 1;
#else
    return 0;
#endif
}

int vp_dcm_web_url_check(const char *url, char why[256])
{
    const char *h = !strncasecmp(url, "http://", 7) ? url + 7 : !strncasecmp(url, "https://", 8) ? url + 8 : NULL;
    if (!h) { snprintf(why, 256, "expected an http:// or https:// URL, got '%.80s'", url); return -1; }
    size_t hl = strcspn(h, "/");
    if (!hl || h[0] == ':') { snprintf(why, 256, "no host in '%.80s'", url); return -1; }
    if (memchr(h, '@', hl)) { snprintf(why, 256, "credentials go in --auth-file or --auth-env, not in the URL"); return -1; }
    if (strpbrk(url, "?# \t\r\n")) { snprintf(why, 256, "the service URL takes no query, fragment or space: '%.80s'", url); return -1; }
    if (strlen(url) > 1024) { snprintf(why, 256, "URL longer than 1024 characters"); return -1; }
    return 0;
}

int vp_dcm_web_auth_load(const char *file, const char *env, struct vp_dcm_web_auth *a)
{
    memset(a, 0, sizeof *a);
    char line[1100] = "", what[300];
    if (file) {
        snprintf(what, sizeof what, "--auth-file '%.250s'", file);
        FILE *f = fopen(file, "r");
        if (!f) return vp_error("%s: %m", what), -1;
        int ok = fgets(line, sizeof line, f) != NULL;
        fclose(f);
        if (!ok) return vp_error("%s: empty", what), -1;
    } else if (env && getenv(env) && *getenv(env)) {
        snprintf(what, sizeof what, "environment variable %.200s (--auth-env)", env);
        snprintf(line, sizeof line, "%s", getenv(env));
    } else {
        if (env) vp_warn("--auth-env %s: not set, no credentials sent", env);
        return 0;
    }
    size_t l = strcspn(line, "\r\n");
    line[l] = 0;
    const char *s = NULL;
    if (!strncasecmp(line, "basic ", 6)) a->kind = VP_WEB_AUTH_BASIC, s = line + 6;
    else if (!strncasecmp(line, "bearer ", 7)) a->kind = VP_WEB_AUTH_BEARER, s = line + 7;
    int bad = !s || !*s || strlen(s) >= sizeof a->secret || (a->kind == VP_WEB_AUTH_BASIC && !strchr(s, ':'));
    if (!bad) memcpy(a->secret, s, strlen(s) + 1);
    explicit_bzero(line, sizeof line);
    if (bad) {
        vp_dcm_web_auth_clear(a);
        return vp_error("%s: expected 'basic USER:PASSWORD' or 'bearer TOKEN' (one line, < 1024 bytes)", what), -1;
    }
    return 0;
}

void vp_dcm_web_auth_clear(struct vp_dcm_web_auth *a) { explicit_bzero(a, sizeof *a); }

#ifndef VP_WITH_CURL

int vp_dcm_web_find(const struct vp_dcm_web *w, const struct vp_dcm_query *q, struct vp_dcm_hit **hits, char why[256])
{
    *hits = NULL;
    snprintf(why, 256, "--dicomweb: this build has no DICOMweb (libcurl): build with -DVP_WITH_CURL and link -lcurl");
    return -VP_ERR_RUNTIME;
}

int vp_dcm_web_get(const struct vp_dcm_web *w, const struct vp_dcm_hit *hits, int n, const char *dir, int *nfiles,
                   char why[256])
{
    *nfiles = 0;
    snprintf(why, 256, "--dicomweb: this build has no DICOMweb (libcurl)");
    return -VP_ERR_RUNTIME;
}

#else

/* a response body, refused beyond max bytes */
struct body {
    char *d;
    size_t n, cap, max;
    int over;
};

static size_t on_body(char *p, size_t sz, size_t nm, void *u)
{
    struct body *b = u;
    size_t l = sz * nm;
    if (l > b->max - b->n) { b->over = 1; return 0; }
    if (b->n + l > b->cap) {
        size_t c = b->cap ? b->cap : 1 << 16;
        while (c < b->n + l) c = c > b->max / 2 ? b->max : 2 * c;
        char *t = realloc(b->d, c);
        if (!t) { b->over = 2; return 0; }
        b->d = t;
        b->cap = c;
    }
    memcpy(b->d + b->n, p, l);
    b->n += l;
    return l;
}

/* the Content-Type header of the final response */
static size_t on_header(char *p, size_t sz, size_t nm, void *u)
{
    char *ct = u;
    size_t l = sz * nm;
    if (l > 5 && !strncmp(p, "HTTP/", 5)) ct[0] = 0;
    if (l > 13 && !strncasecmp(p, "Content-Type:", 13)) {
        const char *v = p + 13;
        size_t vl = l - 13;
        while (vl && (*v == ' ' || *v == '\t')) v++, vl--;
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' ')) vl--;
        snprintf(ct, 512, "%.*s", (int)(vl < 511 ? vl : 511), v);
    }
    return l;
}

/* GET url with that Accept header into b (at most max bytes); Content-Type into ct[512]. 0 ok, or
 * -VP_ERR_RUNTIME with the reason (naming the URL) in why */
static int http_get(const struct vp_dcm_web *w, const char *url, const char *accept, size_t max, struct body *b,
                    char ct[512], char why[256])
{
    static int inited;
    if (!inited) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT)) { snprintf(why, 256, "libcurl initialisation failed"); return -VP_ERR_RUNTIME; }
        inited = 1;
    }
    memset(b, 0, sizeof *b);
    b->max = max;
    ct[0] = 0;
    CURL *c = curl_easy_init();
    if (!c) { snprintf(why, 256, "libcurl: no handle"); return -VP_ERR_RUNTIME; }
    char err[CURL_ERROR_SIZE] = "", hacc[300];
    snprintf(hacc, sizeof hacc, "Accept: %s", accept);
    struct curl_slist *hs = curl_slist_append(NULL, hacc);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L); /* credentials never follow a redirect elsewhere */
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)w->timeout);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)w->timeout);
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hs);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "voxpipe-dcm-fetch");
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, ct);
    const struct vp_dcm_tls *t = w->tls;
    if (t && t->on) {
        if (t->ca) curl_easy_setopt(c, CURLOPT_CAINFO, t->ca);
        if (t->cert) curl_easy_setopt(c, CURLOPT_SSLCERT, t->cert);
        if (t->key) curl_easy_setopt(c, CURLOPT_SSLKEY, t->key);
        if (t->no_verify) {
            curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
            curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
        }
    }
    if (w->auth && w->auth->kind == VP_WEB_AUTH_BASIC) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERPWD, w->auth->secret);
    } else if (w->auth && w->auth->kind == VP_WEB_AUTH_BEARER) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
        curl_easy_setopt(c, CURLOPT_XOAUTH2_BEARER, w->auth->secret);
    }
    CURLcode r = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    curl_slist_free_all(hs);
    int rc = 0;
    if ((r == CURLE_WRITE_ERROR && b->over == 1) || r == CURLE_FILESIZE_EXCEEDED)
        snprintf(why, 256, "GET %.120s: response larger than the limit of %zu bytes (--max-mib)", url, max), rc = 1;
    else if (r == CURLE_WRITE_ERROR && b->over == 2) snprintf(why, 256, "GET %.120s: out of memory", url), rc = 1;
    else if (r == CURLE_OPERATION_TIMEDOUT)
        snprintf(why, 256, "GET %.120s: timed out (--timeout %d): %.100s", url, w->timeout, err[0] ? err : curl_easy_strerror(r)), rc = 1;
    else if (r != CURLE_OK)
        snprintf(why, 256, "GET %.120s: %.120s", url, err[0] ? err : curl_easy_strerror(r)), rc = 1;
    else if (code >= 300)
        snprintf(why, 256, "GET %.120s: HTTP %ld%s", url, code,
                 code == 401 || code == 403 ? " (credentials: --auth-file or --auth-env)" : ""), rc = 1;
    if (rc) { free(b->d); b->d = NULL; return -VP_ERR_RUNTIME; }
    return 0;
}

/* appends s (URL-escaped when esc) to u[4096]; -1 when it does not fit */
static int cat(char *u, const char *s, int esc)
{
    size_t l = strlen(u);
    char *e = esc ? curl_easy_escape(NULL, s, 0) : NULL;
    const char *v = esc ? e : s;
    int rc = v && l + strlen(v) < 4096 ? (memcpy(u + l, v, strlen(v) + 1), 0) : -1;
    curl_free(e);
    return rc;
}

/* ?key=value&... for the keys that are set */
static int add_keys(char *u, const char *const *names, const char *const *vals, int n)
{
    int first = !strchr(u, '?'), rc = 0;
    for (int i = 0; i < n; i++) {
        if (!vals[i]) continue;
        rc |= cat(u, first ? "?" : "&", 0) | cat(u, names[i], 0) | cat(u, "=", 0) | cat(u, vals[i], 1);
        first = 0;
    }
    return rc;
}

#define QIDO_MAX ((size_t)64 << 20)
#define SERIES_FIELDS "includefield=0008103E&includefield=00201209&includefield=00080060"

/* one QIDO-RS query, its rows appended to h (n of them); study (when not NULL) fills rows without a study UID */
static int qido(const struct vp_dcm_web *w, const char *url, const char *study, struct vp_dcm_web_row **h, int *n,
                char why[256])
{
    struct body b;
    char ct[512];
    int rc = http_get(w, url, "application/dicom+json", QIDO_MAX, &b, ct, why);
    if (rc) return rc;
    struct vp_dcm_web_row *r = NULL;
    int m = vp_dcm_web_parse_json(b.d ? b.d : "", b.n, &r, why);
    free(b.d);
    if (m < 0) return -VP_ERR_RUNTIME;
    struct vp_dcm_web_row *t = realloc(*h, ((size_t)*n + (size_t)m + 1) * sizeof **h);
    if (!t) { free(r); snprintf(why, 256, "out of memory"); return -VP_ERR_RUNTIME; }
    *h = t;
    for (int i = 0; i < m; i++) {
        if (study && !r[i].study_uid[0]) snprintf(r[i].study_uid, sizeof r[i].study_uid, "%s", study);
        (*h)[(*n)++] = r[i];
    }
    free(r);
    return 0;
}

static int cmp_row(const void *a, const void *b)
{
    const struct vp_dcm_web_row *x = a, *y = b;
    int c = strcmp(x->study_uid, y->study_uid);
    return c ? c : strcmp(x->series_uid, y->series_uid);
}

int vp_dcm_web_find(const struct vp_dcm_web *w, const struct vp_dcm_query *q, struct vp_dcm_hit **hits, char why[256])
{
    *hits = NULL;
    char u[4096];
    struct vp_dcm_web_row *studies = NULL, *series = NULL;
    int ns = 0, n = 0, rc = 0;
    static const char *const sk[] = {"PatientID", "StudyInstanceUID", "AccessionNumber", "StudyDate"};
    static const char *const ek[] = {"SeriesInstanceUID", "Modality"};
    const char *sv[] = {q->patient_id, q->study_uid, q->accession, q->date}, *ev[] = {q->series_uid, q->modality};
    if (q->patient_id || q->accession || q->date) { /* study level first, then the series of each study */
        snprintf(u, sizeof u, "%s/studies", w->url);
        if (add_keys(u, sk, sv, 4)) goto too_long;
        rc = qido(w, u, NULL, &studies, &ns, why);
        if (ns) qsort(studies, (size_t)ns, sizeof *studies, cmp_row);
        for (int i = 0; i < ns && !rc; i++) {
            if (!studies[i].study_uid[0] || (i && !strcmp(studies[i].study_uid, studies[i - 1].study_uid))) continue;
            snprintf(u, sizeof u, "%s/studies/", w->url);
            if (cat(u, studies[i].study_uid, 1) || cat(u, "/series?" SERIES_FIELDS, 0) || add_keys(u, ek, ev, 2)) goto too_long;
            rc = qido(w, u, studies[i].study_uid, &series, &n, why);
        }
    } else if (q->study_uid) {
        snprintf(u, sizeof u, "%s/studies/", w->url);
        if (cat(u, q->study_uid, 1) || cat(u, "/series?" SERIES_FIELDS, 0) || add_keys(u, ek, ev, 2)) goto too_long;
        rc = qido(w, u, q->study_uid, &series, &n, why);
    } else { /* series keys only: one query across studies */
        snprintf(u, sizeof u, "%s/series?" SERIES_FIELDS "&includefield=0020000D", w->url);
        if (add_keys(u, ek, ev, 2)) goto too_long;
        rc = qido(w, u, NULL, &series, &n, why);
    }
    free(studies);
    if (rc) { free(series); return rc; }
    if (n) qsort(series, (size_t)n, sizeof *series, cmp_row);
    *hits = calloc((size_t)n + 1, sizeof **hits);
    if (!*hits) { free(series); snprintf(why, 256, "out of memory"); return -VP_ERR_RUNTIME; }
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (!series[i].study_uid[0] || !series[i].series_uid[0]) continue;
        if (i && !cmp_row(series + i, series + i - 1)) continue;
        struct vp_dcm_hit *x = *hits + m++;
        memcpy(x->study_uid, series[i].study_uid, sizeof x->study_uid);
        memcpy(x->series_uid, series[i].series_uid, sizeof x->series_uid);
        memcpy(x->modality, series[i].modality, sizeof x->modality);
        memcpy(x->description, series[i].description, sizeof x->description);
        x->instances = series[i].instances;
    }
    free(series);
    return m;
too_long:
    free(studies);
    free(series);
    snprintf(why, 256, "QIDO-RS: query URL longer than 4096 bytes");
    return -VP_ERR_USAGE;
}

struct sink {
    const char *dir;
    int stored;
};

/* one instance as DIR/NNNNNN.dcm, exactly as received */
static int store_part(void *arg, const char *data, size_t size, char why[256])
{
    struct sink *s = arg;
    char p[4200];
    snprintf(p, sizeof p, "%s/%06d.dcm", s->dir, s->stored);
    int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) { snprintf(why, 256, "writing '%.200s': %s", p, strerror(errno)); return -1; }
    while (size) {
        ssize_t k = write(fd, data, size);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) { snprintf(why, 256, "writing '%.200s': %s", p, strerror(errno)); close(fd); return -1; }
        data += k;
        size -= (size_t)k;
    }
    if (close(fd)) { snprintf(why, 256, "writing '%.200s': %s", p, strerror(errno)); return -1; }
    s->stored++;
    return 0;
}

int vp_dcm_web_get(const struct vp_dcm_web *w, const struct vp_dcm_hit *hits, int n, const char *dir, int *nfiles,
                   char why[256])
{
    struct sink s = {dir, 0};
    *nfiles = 0;
    for (int i = 0; i < n; i++) {
        char u[4096], ct[512], bd[128], e[256];
        snprintf(u, sizeof u, "%s/studies/", w->url);
        if (cat(u, hits[i].study_uid, 1) || cat(u, "/series/", 0) || cat(u, hits[i].series_uid, 1)) {
            snprintf(why, 256, "WADO-RS: URL too long");
            return -VP_ERR_RUNTIME;
        }
        struct body b;
        int rc = http_get(w, u, "multipart/related; type=\"application/dicom\"; transfer-syntax=*",
                          (size_t)w->max_bytes, &b, ct, why);
        if (rc) return rc;
        int before = s.stored, m = -1;
        if (!vp_dcm_web_boundary(ct, bd, e)) m = vp_dcm_web_multipart(b.d ? b.d : "", b.n, bd, store_part, &s, e);
        free(b.d);
        *nfiles = s.stored;
        if (m < 0) { snprintf(why, 256, "series %d, GET %.70s: %.150s", i + 1, u, e); return -VP_ERR_RUNTIME; }
        if (s.stored == before) { snprintf(why, 256, "series %d, GET %.120s: no instance received", i + 1, u); return -VP_ERR_RUNTIME; }
    }
    return 0;
}

#endif
