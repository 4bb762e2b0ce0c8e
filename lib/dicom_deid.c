/* dicom_deid.c - keyed pseudonyms, date shifts, pseudonymous UIDs and sealed boxes (dicom_deid.h),
 * on libsodium. */
#include "dicom_deid.h"
#include "frame.h"
#include "util.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int vp_deid_key_load(const char *path, struct vp_deid_key *k)
{
    if (sodium_init() < 0) return vp_error("libsodium cannot be initialised");
    FILE *f = fopen(path, "rb");
    if (!f) return vp_error("site key '%s': %s", path, strerror(errno));
    unsigned char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, f);
    int bad = ferror(f);
    fclose(f);
    if (bad) return vp_error("site key '%s': read error", path);
    if (n < 32) {
        sodium_memzero(buf, sizeof buf);
        return vp_error("site key '%s': %zu bytes; it needs at least 32 random bytes "
                        "(head -c 32 /dev/urandom > FILE)", path, n);
    }
    unsigned char master[crypto_kdf_KEYBYTES];
    crypto_generichash(master, sizeof master, buf, n, NULL, 0);
    sodium_memzero(buf, sizeof buf);
    unsigned char *sub[] = {k->pid, k->date, k->uid, k->seal, k->nonce};
    for (int i = 0; i < 5; i++) crypto_kdf_derive_from_key(sub[i], 32, (uint64_t)i + 1, "vpdeid01", master);
    sodium_memzero(master, sizeof master);
    return 0;
}

void vp_deid_key_clear(struct vp_deid_key *k) { sodium_memzero(k, sizeof *k); }

static void hmac(const unsigned char key[32], const char *s, unsigned char out[32])
{
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, key, 32);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)s, strlen(s));
    crypto_auth_hmacsha256_final(&st, out);
}

void vp_deid_pseudonym(const struct vp_deid_key *k, const char *patient_id, char out[65])
{
    unsigned char h[32];
    hmac(k->pid, patient_id ? patient_id : "", h);
    sodium_bin2hex(out, 65, h, sizeof h);
}

int vp_deid_date_offset(const struct vp_deid_key *k, const char *patient_id)
{
    unsigned char h[32];
    hmac(k->date, patient_id ? patient_id : "", h);
    uint32_t v = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
    return -(int)(v % 3650) - 1;
}

/* days since 1970-01-01 <-> civil date (H. Hinnant's algorithms) */
static long days_from_civil(long y, long m, long d)
{
    y -= m <= 2;
    long era = (y >= 0 ? y : y - 399) / 400, yoe = y - era * 400;
    long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1, doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(long z, long *y, long *m, long *d)
{
    z += 719468;
    long era = (z >= 0 ? z : z - 146096) / 146097, doe = z - era * 146097;
    long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp + (mp < 10 ? 3 : -9);
    *y = yoe + era * 400 + (*m <= 2);
}

int vp_deid_shift_date(const char *date, int days, char out[9])
{
    long y, m, d;
    if (!date || strlen(date) != 8 || strspn(date, "0123456789") != 8) return -1;
    if (sscanf(date, "%4ld%2ld%2ld", &y, &m, &d) != 3 || m < 1 || m > 12 || d < 1 || d > 31) return -1;
    civil_from_days(days_from_civil(y, m, d) + days, &y, &m, &d);
    if (y < 0 || y > 9999) return -1;
    snprintf(out, 9, "%04u%02u%02u", (unsigned)y % 10000u, (unsigned)m % 100u, (unsigned)d % 100u);
    return 0;
}

void vp_deid_uid(const struct vp_deid_key *k, const char *uid, char out[64])
{
    unsigned char h[32];
    hmac(k->uid, uid ? uid : "", h);
    unsigned __int128 v = 0;
    for (int i = 0; i < 16; i++) v = v << 8 | h[i];
    char digits[48];
    int n = 0;
    do {
        digits[n++] = (char)('0' + (int)(v % 10));
        v /= 10;
    } while (v);
    int o = snprintf(out, 64, "2.25.");
    while (n) out[o++] = digits[--n];
    out[o] = 0;
}

void vp_deid_seal(const struct vp_deid_key *k, const void *msg, size_t n, msgpack_packer *pk)
{
    unsigned char nonce[crypto_secretbox_NONCEBYTES];
    crypto_generichash(nonce, sizeof nonce, msg, n, k->nonce, sizeof k->nonce);
    unsigned char *box = vp_malloc(n + crypto_secretbox_MACBYTES);
    crypto_secretbox_easy(box, msg, n, nonce, k->seal);
    msgpack_pack_map(pk, 3);
    vp_pack_cstr(pk, "alg");
    vp_pack_cstr(pk, "xsalsa20poly1305");
    vp_pack_cstr(pk, "nonce");
    msgpack_pack_bin(pk, sizeof nonce);
    msgpack_pack_bin_body(pk, nonce, sizeof nonce);
    vp_pack_cstr(pk, "box");
    msgpack_pack_bin(pk, n + crypto_secretbox_MACBYTES);
    msgpack_pack_bin_body(pk, box, n + crypto_secretbox_MACBYTES);
    free(box);
}

unsigned char *vp_deid_unseal(const struct vp_deid_key *k, const unsigned char nonce[24], const unsigned char *box,
                              size_t n, size_t *len)
{
    if (n < crypto_secretbox_MACBYTES) return NULL;
    unsigned char *m = vp_malloc(n - crypto_secretbox_MACBYTES + 1);
    if (crypto_secretbox_open_easy(m, box, n, nonce, k->seal)) {
        free(m);
        return NULL;
    }
    *len = n - crypto_secretbox_MACBYTES;
    return m;
}
