/* test_dicom_deid.c - site-key pseudonyms, date shifts and sealed boxes (lib/dicom_deid.c). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dicom_deid.h"

static void make_key(const char *path, unsigned char fill, struct vp_deid_key *k)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    for (int i = 0; i < 32; i++) fputc(fill + i, f);
    fclose(f);
    cr_assert_eq(vp_deid_key_load(path, k), 0);
}

Test(deid, seal_round_trip_and_tamper)
{
    struct vp_deid_key a, b;
    make_key("/tmp/vp_test_deid_a.key", 1, &a);
    make_key("/tmp/vp_test_deid_b.key", 2, &b);
    const char msg[] = "1.2.826.0.1.3680043.8.498.1002";
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    vp_deid_seal(&a, msg, sizeof msg, &pk);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    cr_assert_eq(msgpack_unpack_next(&u, sb.data, sb.size, NULL), MSGPACK_UNPACK_SUCCESS);
    const msgpack_object_bin *nonce = &u.data.via.map.ptr[1].val.via.bin, *box = &u.data.via.map.ptr[2].val.via.bin;
    cr_assert_eq(nonce->size, 24);
    cr_assert(!memmem(box->ptr, box->size, msg, strlen(msg)), "plaintext visible in the box");
    size_t n = 0;
    unsigned char *m = vp_deid_unseal(&a, (const unsigned char *)nonce->ptr, (const unsigned char *)box->ptr, box->size, &n);
    cr_assert(m);
    cr_assert_eq(n, sizeof msg);
    cr_assert_str_eq((char *)m, msg);
    free(m);
    cr_assert_null(vp_deid_unseal(&b, (const unsigned char *)nonce->ptr, (const unsigned char *)box->ptr, box->size, &n));
    unsigned char *t = malloc(box->size);
    memcpy(t, box->ptr, box->size);
    t[box->size / 2] ^= 1;
    cr_assert_null(vp_deid_unseal(&a, (const unsigned char *)nonce->ptr, t, box->size, &n));
    free(t);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
    remove("/tmp/vp_test_deid_a.key");
    remove("/tmp/vp_test_deid_b.key");
}

Test(deid, pseudonyms_keyed_and_stable)
{
    struct vp_deid_key a, b;
    make_key("/tmp/vp_test_deid_c.key", 3, &a);
    make_key("/tmp/vp_test_deid_d.key", 4, &b);
    char p1[65], p2[65], p3[65], p4[65];
    vp_deid_pseudonym(&a, "PID-1", p1);
    vp_deid_pseudonym(&a, "PID-1", p2);
    vp_deid_pseudonym(&b, "PID-1", p3);
    vp_deid_pseudonym(&a, "PID-2", p4);
    cr_assert_str_eq(p1, p2);
    cr_assert_str_neq(p1, p3);
    cr_assert_str_neq(p1, p4);
    char u1[64], u2[64];
    vp_deid_uid(&a, "1.2.3", u1);
    vp_deid_uid(&b, "1.2.3", u2);
    cr_assert(!strncmp(u1, "2.25.", 5) && strlen(u1) <= 44 && strcmp(u1, u2));
    int off = vp_deid_date_offset(&a, "PID-1");
    cr_assert(off <= -1 && off >= -3650);
    cr_assert_eq(off, vp_deid_date_offset(&a, "PID-1"));
    remove("/tmp/vp_test_deid_c.key");
    remove("/tmp/vp_test_deid_d.key");
}

Test(deid, date_shift_round_trips_and_rejects_bad_dates)
{
    char d[9], e[9];
    const char *dates[] = {"20221208", "20200229", "19991231", "20000301"};
    for (int i = 0; i < 4; i++)
        for (int days = -3650; days <= 3650; days += 337) {
            cr_assert_eq(vp_deid_shift_date(dates[i], days, d), 0);
            cr_assert_eq(vp_deid_shift_date(d, -days, e), 0);
            cr_assert_str_eq(e, dates[i]);
        }
    cr_assert_eq(vp_deid_shift_date("2022-12-08", 1, d), -1);
    cr_assert_eq(vp_deid_shift_date("20221308", 1, d), -1);
    cr_assert_eq(vp_deid_shift_date(NULL, 1, d), -1);
}
