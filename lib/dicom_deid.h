/* dicom_deid.h - pseudonymisation of what dcm-fetch puts into a stream (DICOM PS3.15 Annex E).
 *
 * Everything is keyed by one site secret, a file of at least 32 random bytes that never leaves the
 * hospital (make one with `head -c 32 /dev/urandom > site.key; chmod 600 site.key`). From it
 * (BLAKE2b, then libsodium's KDF) come independent subkeys for:
 *   - the patient pseudonym: HMAC-SHA256(subkey, PatientID), hex; the same patient maps to the same
 *     pseudonym at this site, and nobody without the key can invert it or test a guess;
 *   - the date shift: a per-patient offset of 1..3650 days into the past, HMAC-derived, so the
 *     intervals between one patient's studies survive;
 *   - pseudonymous UIDs "2.25.<128 bits of HMAC(subkey, UID)>", consistent across runs;
 *   - the sealed box: the original UIDs that dcm-store needs to reference the source series,
 *     encrypted and authenticated with crypto_secretbox (XSalsa20-Poly1305). Its nonce is a keyed
 *     hash of the plaintext, so the same input gives the same bytes (voxpipe output is
 *     deterministic); the only thing this reveals is that two boxes hold identical contents.
 *
 * Ownership: struct vp_deid_key holds only fixed-size secrets; vp_deid_key_clear() wipes them.
 * vp_deid_unseal() returns a malloc'ed plaintext.
 */
#ifndef VP_DICOM_DEID_H
#define VP_DICOM_DEID_H

#include <stddef.h>
#include <msgpack.h>

struct vp_deid_key {
    unsigned char pid[32], date[32], uid[32], seal[32], nonce[32];
};

/* Load the site key file. 0 ok, or -1 after printing an error (missing, unreadable, < 32 bytes). */
int vp_deid_key_load(const char *path, struct vp_deid_key *k);
void vp_deid_key_clear(struct vp_deid_key *k);

/* HMAC-SHA256 pseudonym of a patient ID as 64 hex characters. */
void vp_deid_pseudonym(const struct vp_deid_key *k, const char *patient_id, char out[65]);
/* Day offset (-3650..-1) for a patient; dates of that patient are shifted by it. */
int vp_deid_date_offset(const struct vp_deid_key *k, const char *patient_id);
/* Shift a DICOM date "YYYYMMDD" by days into out[9]. 0 ok, -1 when the date is not valid. */
int vp_deid_shift_date(const char *date, int days, char out[9]);
/* Pseudonymous UID "2.25.N" (at most 44 characters). */
void vp_deid_uid(const struct vp_deid_key *k, const char *uid, char out[64]);

/* Pack {"alg": "xsalsa20poly1305", "nonce": bin, "box": bin} sealing msg[0..n). */
void vp_deid_seal(const struct vp_deid_key *k, const void *msg, size_t n, msgpack_packer *pk);
/* Open a box sealed with the same key: returns the plaintext (malloc) and its length, or NULL when
 * the key is wrong or the box was altered. */
unsigned char *vp_deid_unseal(const struct vp_deid_key *k, const unsigned char nonce[24], const unsigned char *box,
                              size_t n, size_t *len);

#endif
