/* Unit tests: the DICOMweb parsers (lib/dicom_web_parse.c): multipart/related bodies (parts
 * recovered byte for byte, every truncation refused), the Content-Type boundary, and QIDO-RS DICOM
 * JSON (the fields dcm-fetch reads, every truncation refused, nesting bounded). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dicom_web.h"

#define B "vp-b0undary"

struct parts {
    int n;
    char *data[8];
    size_t size[8];
};

static int keep(void *arg, const char *data, size_t size, char why[256])
{
    struct parts *p = arg;
    if (p->n == 8) { snprintf(why, 256, "too many"); return -1; }
    p->data[p->n] = malloc(size ? size : 1);
    memcpy(p->data[p->n], data, size);
    p->size[p->n++] = size;
    return 0;
}

static void parts_free(struct parts *p)
{
    for (int i = 0; i < p->n; i++) free(p->data[i]);
    p->n = 0;
}

/* payloads with binary zeros, a CRLF "--" that is not the boundary, and an empty one */
static const char pay0[] = "DICM\0\0\x01\x02 first";
static const char pay1[] = "x\r\n--vp-b0undarX\r\n-- not the end";
static const char pay2[] = "";
static const char *const pays[] = {pay0, pay1, pay2};
static const size_t lens[] = {sizeof pay0 - 1, sizeof pay1 - 1, 0};

/* the body of the three payloads; *close gets the offset just past the close delimiter */
static char *body(const char *preamble, const char *ctype, size_t *len, size_t *close)
{
    char *b = malloc(4096);
    size_t n = 0;
    n += (size_t)sprintf(b + n, "%s", preamble);
    for (int i = 0; i < 3; i++) {
        n += (size_t)sprintf(b + n, "--" B "\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n", ctype, lens[i]);
        memcpy(b + n, pays[i], lens[i]);
        n += lens[i];
        n += (size_t)sprintf(b + n, "\r\n");
    }
    n += (size_t)sprintf(b + n, "--" B "--");
    *close = n;
    n += (size_t)sprintf(b + n, "\r\nepilogue\r\n");
    *len = n;
    return b;
}

Test(dicom_web, multipart_parts_byte_for_byte)
{
    const char *pre[] = {"", "preamble text\r\n"};
    for (int k = 0; k < 2; k++) {
        size_t len, close;
        char *b = body(pre[k], "application/dicom; transfer-syntax=1.2.840.10008.1.2.4.90", &len, &close);
        struct parts p = {0};
        char why[256] = "";
        int n = vp_dcm_web_multipart(b, len, B, keep, &p, why);
        cr_assert_eq(n, 3, "%s", why);
        for (int i = 0; i < 3; i++) {
            cr_assert_eq(p.size[i], lens[i]);
            cr_assert_eq(memcmp(p.data[i], pays[i], lens[i]), 0);
        }
        parts_free(&p);
        free(b);
    }
}

Test(dicom_web, multipart_every_truncation_refused)
{
    size_t len, close;
    char *b = body("", "application/dicom", &len, &close);
    for (size_t cut = 0; cut < len; cut++) {
        char *c = malloc(cut ? cut : 1); /* exactly cut bytes: ASan sees any read past them */
        memcpy(c, b, cut);
        struct parts p = {0};
        char why[256] = "";
        int n = vp_dcm_web_multipart(c, cut, B, keep, &p, why);
        if (cut < close) {
            cr_assert_eq(n, -1, "cut at %zu of %zu accepted", cut, len);
            cr_assert(strstr(why, "multipart body"), "%s", why);
        } else {
            cr_assert_eq(n, 3, "cut at %zu: %s", cut, why);
        }
        parts_free(&p);
        free(c);
    }
    free(b);
}

Test(dicom_web, multipart_malformed)
{
    size_t len, close;
    char why[256];
    struct parts p = {0};
    char *b = body("", "text/plain", &len, &close);
    cr_assert_eq(vp_dcm_web_multipart(b, len, B, keep, &p, why), -1);
    cr_assert(strstr(why, "part 1 is 'text/plain', not application/dicom"), "%s", why);
    free(b);
    const char untyped[] = "--" B "\r\nX-Other: 1\r\n\r\nabc\r\n--" B "--";
    cr_assert_eq(vp_dcm_web_multipart(untyped, sizeof untyped - 1, B, keep, &p, why), -1);
    cr_assert(strstr(why, "part 1 is untyped"), "%s", why);
    const char other[] = "--other\r\nContent-Type: application/dicom\r\n\r\nabc\r\n--other--";
    cr_assert_eq(vp_dcm_web_multipart(other, sizeof other - 1, B, keep, &p, why), -1);
    cr_assert(strstr(why, "no boundary '" B "'"), "%s", why);
    const char nocrlf[] = "--" B "garbage\r\nContent-Type: application/dicom\r\n\r\nabc\r\n--" B "--";
    cr_assert_eq(vp_dcm_web_multipart(nocrlf, sizeof nocrlf - 1, B, keep, &p, why), -1);
    cr_assert(strstr(why, "no CRLF after the boundary of part 1"), "%s", why);
    cr_assert_eq(p.n, 0);
}

Test(dicom_web, content_type_boundary)
{
    char b[128], why[256];
    cr_assert_eq(vp_dcm_web_boundary("multipart/related; type=\"application/dicom\"; boundary=\"a b;c\"", b, why), 0, "%s", why);
    cr_assert_str_eq(b, "a b;c");
    cr_assert_eq(vp_dcm_web_boundary("Multipart/Related;boundary=xyz;type=application/dicom", b, why), 0, "%s", why);
    cr_assert_str_eq(b, "xyz");
    cr_assert_eq(vp_dcm_web_boundary("multipart/related; type=\"application/dicom\"", b, why), -1);
    cr_assert(strstr(why, "no boundary"), "%s", why);
    cr_assert_eq(vp_dcm_web_boundary("multipart/related; type=\"image/jpeg\"; boundary=x", b, why), -1);
    cr_assert(strstr(why, "'image/jpeg', not application/dicom"), "%s", why);
    cr_assert_eq(vp_dcm_web_boundary("application/dicom+json", b, why), -1);
    cr_assert(strstr(why, "not multipart/related"), "%s", why);
    cr_assert_eq(vp_dcm_web_boundary(NULL, b, why), -1);
    cr_assert_eq(vp_dcm_web_boundary("multipart/related; boundary=\"unterminated", b, why), -1);
}

static const char qido[] =
    "[ {\"00080005\": {\"vr\": \"CS\", \"Value\": [\"ISO_IR 100\"]},\n"
    "   \"00100010\": {\"vr\": \"PN\", \"Value\": [{\"Alphabetic\": \"Doe^J\"}]},\n"
    "   \"0020000d\": {\"vr\": \"UI\", \"Value\": [\"1.2.3\"]},\n"
    "   \"0020000E\": {\"Value\": [\"1.2.3.4\", \"ignored\"], \"vr\": \"UI\"},\n"
    "   \"00080060\": {\"vr\": \"CS\", \"Value\": [\"CT\"]},\n"
    "   \"0008103E\": {\"vr\": \"LO\", \"Value\": [\"Body \\\"3\\\" \\u00e9\\\\ \\/\"]},\n"
    "   \"00201209\": {\"vr\": \"IS\", \"Value\": [141]},\n"
    "   \"00081190\": {\"vr\": \"UR\", \"Value\": [\"http://x/y\"]}, \"7FE00010\": {\"vr\": \"OW\", \"InlineBinary\": \"AAAA\"} },\n"
    "  {\"0020000E\": {\"vr\": \"UI\", \"Value\": [\"5.6\"]}, \"00201209\": {\"vr\": \"IS\"}, \"x\": [true, false, null, -1.5e3]} ]\n";

Test(dicom_web, qido_json_fields)
{
    struct vp_dcm_web_row *r = NULL;
    char why[256] = "";
    int n = vp_dcm_web_parse_json(qido, sizeof qido - 1, &r, why);
    cr_assert_eq(n, 2, "%s", why);
    cr_assert_str_eq(r[0].study_uid, "1.2.3");
    cr_assert_str_eq(r[0].series_uid, "1.2.3.4");
    cr_assert_str_eq(r[0].modality, "CT");
    cr_assert_str_eq(r[0].description, "Body \"3\" ?\\ /");
    cr_assert_eq(r[0].instances, 141);
    cr_assert_str_eq(r[1].study_uid, "");
    cr_assert_str_eq(r[1].series_uid, "5.6");
    cr_assert_eq(r[1].instances, -1);
    free(r);
    cr_assert_eq(vp_dcm_web_parse_json("", 0, &r, why), 0);
    cr_assert_eq(vp_dcm_web_parse_json(" [ ] \n", 6, &r, why), 0);
    free(r);
}

Test(dicom_web, qido_json_every_truncation_refused)
{
    size_t len = sizeof qido - 1, end = len;
    while (end && (qido[end - 1] == '\n' || qido[end - 1] == ' ')) end--; /* just past the closing ] */
    for (size_t cut = 1; cut < end; cut++) {
        char *c = malloc(cut);
        memcpy(c, qido, cut);
        struct vp_dcm_web_row *r = NULL;
        char why[256] = "";
        int n = vp_dcm_web_parse_json(c, cut, &r, why);
        cr_assert_eq(n, -1, "cut at %zu accepted", cut);
        cr_assert(strstr(why, "not DICOM JSON"), "%s", why);
        cr_assert_null(r);
        free(c);
    }
}

Test(dicom_web, qido_json_malformed)
{
    struct vp_dcm_web_row *r = NULL;
    char why[256], uid[200];
    /* a UID longer than 64 characters is refused, not truncated */
    memset(uid, '1', 70);
    uid[70] = 0;
    char doc[400];
    snprintf(doc, sizeof doc, "[{\"0020000E\": {\"vr\": \"UI\", \"Value\": [\"%s\"]}}]", uid);
    cr_assert_eq(vp_dcm_web_parse_json(doc, strlen(doc), &r, why), -1);
    cr_assert(strstr(why, "value too long"), "%s", why);
    /* nesting is bounded */
    char deep[2100];
    size_t k = (size_t)sprintf(deep, "[{\"a\": ");
    memset(deep + k, '[', 1000);
    memset(deep + k + 1000, ']', 1000);
    k += 2000 + (size_t)sprintf(deep + k + 2000, "}]");
    cr_assert_eq(vp_dcm_web_parse_json(deep, k, &r, why), -1);
    cr_assert(strstr(why, "nested too deeply"), "%s", why);
    const char *bad[] = {"{}", "[1]", "[{}] x", "[{\"a\" 1}]", "[{\"a\": \"\x01\"}]", "[{\"a\": \"\\q\"}]", "[{}{}]", NULL};
    for (int i = 0; bad[i]; i++) {
        cr_assert_eq(vp_dcm_web_parse_json(bad[i], strlen(bad[i]), &r, why), -1, "accepted: %s", bad[i]);
        cr_assert_null(r);
    }
}
