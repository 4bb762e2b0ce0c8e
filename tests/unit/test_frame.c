/* Unit tests: frame round trips through files and ZeroMQ, chunked payloads, meta pass-through,
 * provenance, and the reader's limits. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "endpoint.h"
#include "frame.h"
#include "volume.h"

static char tmpdir[256];

static void mk_tmp(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/vp-test-frame-XXXXXX");
    cr_assert(mkdtemp(tmpdir));
}

static void rm_tmp(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(frame, .init = mk_tmp, .fini = rm_tmp);

static vp_vol *make_vol(enum vp_dtype t, uint64_t nx, uint64_t ny, uint64_t nz, uint64_t nc, unsigned seed)
{
    uint64_t dims[4] = {nx, ny, nz, nc};
    double aff[16] = {0.9, 0.1, 0, -10.5, -0.1, 0.9, 0, 20.25, 0, 0, 2.5, -30, 0, 0, 0, 1};
    vp_vol *v = vp_vol_new(dims, t, aff);
    v->has_channels = nc > 1;
    uint64_t n = vp_vol_nvox(v) * vp_dtype_size(t);
    unsigned char *p = v->data;
    for (uint64_t i = 0; i < n; i++) { seed = seed * 1103515245u + 12345u; p[i] = (unsigned char)(seed >> 16); }
    return v;
}

static void assert_vol_eq(const vp_vol *a, const vp_vol *b)
{
    cr_assert_eq(a->dtype, b->dtype);
    for (int i = 0; i < 4; i++) cr_assert_eq(a->dims[i], b->dims[i]);
    for (int i = 0; i < 16; i++) cr_assert_eq(a->affine[i], b->affine[i]);
    cr_assert_eq(memcmp(a->data, b->data, vp_vol_nvox(a) * vp_dtype_size(a->dtype)), 0);
}

static vp_case *roundtrip_file(const vp_case *c, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    vp_out *o = vp_out_open(path, 0);
    cr_assert(o);
    cr_assert_eq(vp_case_write(o, c), 0);
    cr_assert_eq(vp_stream_finish(&o), 0);
    vp_in *in = vp_in_open(path);
    cr_assert(in);
    vp_case *r = NULL;
    cr_assert_eq(vp_case_read(in, &r), 1);
    vp_case *end = NULL;
    cr_assert_eq(vp_case_read(in, &end), 0, "stream must end after one case");
    vp_in_close(&in);
    return r;
}

Test(frame, every_dtype_round_trips_exactly)
{
    vp_case *c = vp_case_new("s0011");
    const char *names[] = {"u8", "i16", "u16", "i32", "f16", "f32"};
    for (int t = 0; t < VP_NDTYPES; t++) vp_case_add_vol(c, names[t], make_vol((enum vp_dtype)t, 5, 4, 3, 1, (unsigned)t + 1));
    vp_case_add_vol(c, "probs", make_vol(VP_F32, 3, 3, 2, 4, 99));
    vp_case *r = roundtrip_file(c, "a.vxp");
    cr_assert_str_eq(r->id, "s0011");
    cr_assert_eq(r->nvols, c->nvols);
    for (int i = 0; i < c->nvols; i++) {
        cr_assert_str_eq(r->vol_names[i], c->vol_names[i]);
        assert_vol_eq(r->vols[i], c->vols[i]);
    }
    cr_assert(r->vols[c->nvols - 1]->has_channels);
    vp_case_free(&c);
    vp_case_free(&r);
}

Test(frame, payload_above_bin_limit_is_chunked_and_reassembled)
{
    vp_frame_bin_limit = 1000; /* stand-ins for 4 GiB and 1 GiB */
    vp_frame_chunk_bytes = 777;
    vp_case *c = vp_case_new("big");
    vp_case_add_vol(c, "image", make_vol(VP_I16, 31, 17, 5, 1, 7)); /* 5270 bytes: 7 chunks */
    char path[512];
    snprintf(path, sizeof path, "%s/chunked.vxp", tmpdir);
    vp_out *o = vp_out_open(path, 0);
    cr_assert_eq(vp_case_write(o, c), 0);
    cr_assert_eq(vp_stream_finish(&o), 0);
    /* the file really holds an array of 7 bins: check with the raw bytes */
    FILE *f = fopen(path, "rb");
    unsigned char buf[8192];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    int found = 0;
    for (size_t i = 0; i + 6 < n; i++)
        if (!memcmp(buf + i, "\xa4" "data\x97\xc5\x03\x09", 9)) found = 1; /* "data": [bin16 777, ...] */
    cr_assert(found, "chunked payload not found in the stream");
    vp_in *in = vp_in_open(path);
    vp_case *r;
    cr_assert_eq(vp_case_read(in, &r), 1);
    assert_vol_eq(r->vols[0], c->vols[0]);
    vp_in_close(&in);
    vp_case_free(&c);
    vp_case_free(&r);
    vp_frame_bin_limit = 0xffffffffu;
    vp_frame_chunk_bytes = VP_CHUNK_BYTES;
}

Test(frame, meta_and_unknown_keys_pass_through_byte_for_byte)
{
    vp_case *c = vp_case_new("m1");
    vp_case_add_vol(c, "image", make_vol(VP_U8, 2, 2, 2, 1, 3));
    /* {"x": [1, -2, 3.5, "s", {"deep": nil}], } as raw msgpack */
    static const unsigned char raw[] = {0x95, 0x01, 0xfe, 0xcb, 0x40, 0x0c, 0, 0, 0, 0, 0, 0, 0xa1, 's', 0x81, 0xa4, 'd', 'e', 'e', 'p', 0xc0};
    vp_case_meta_set(c, "custom", raw, sizeof raw);
    c->extra = malloc(sizeof *c->extra);
    c->extra[0].key = strdup("future_key");
    c->extra[0].raw = malloc(1);
    c->extra[0].raw[0] = 0xc3;
    c->extra[0].len = 1;
    c->nextra = 1;
    vp_case *r = roundtrip_file(c, "m.vxp");
    const vp_kv *kv = vp_case_meta(r, "custom");
    cr_assert(kv);
    cr_assert_eq(kv->len, sizeof raw);
    cr_assert_eq(memcmp(kv->raw, raw, sizeof raw), 0);
    cr_assert_eq(r->nextra, 1);
    cr_assert_str_eq(r->extra[0].key, "future_key");
    cr_assert_eq(r->extra[0].raw[0], 0xc3);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    cr_assert_eq(vp_case_meta_parse(r, "custom", &u), 0);
    cr_assert_eq(u.data.type, MSGPACK_OBJECT_ARRAY);
    cr_assert_eq(u.data.via.array.size, 5);
    cr_assert_eq(u.data.via.array.ptr[1].via.i64, -2);
    cr_assert_float_eq(u.data.via.array.ptr[2].via.f64, 3.5, 0);
    msgpack_unpacked_destroy(&u);
    vp_case_free(&c);
    vp_case_free(&r);
}

Test(frame, provenance_appends_one_entry_per_program)
{
    vp_case *c = vp_case_new("p");
    vp_case_add_provenance(c, "first");
    vp_case_add_provenance(c, "second");
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    cr_assert_eq(vp_case_meta_parse(c, "provenance", &u), 0);
    cr_assert_eq(u.data.type, MSGPACK_OBJECT_ARRAY);
    cr_assert_eq(u.data.via.array.size, 2);
    msgpack_object e = u.data.via.array.ptr[1];
    cr_assert_eq(e.type, MSGPACK_OBJECT_MAP);
    cr_assert_eq(e.via.map.ptr[0].val.via.str.size, 6);
    cr_assert_eq(memcmp(e.via.map.ptr[0].val.via.str.ptr, "second", 6), 0);
    msgpack_unpacked_destroy(&u);
    vp_case_free(&c);
}

Test(frame, zeromq_push_pull_carries_frames_and_end_of_stream)
{
    char ep_bind[300], ep_conn[300];
    snprintf(ep_bind, sizeof ep_bind, "@ipc://%s/zmq.sock", tmpdir);
    snprintf(ep_conn, sizeof ep_conn, ">ipc://%s/zmq.sock", tmpdir);
    vp_in *in = vp_in_open(ep_bind);
    cr_assert(in);
    cr_assert(vp_in_is_msg(in));
    vp_out *o = vp_out_open(ep_conn, 0);
    cr_assert(o);
    vp_case *c1 = vp_case_new("z1"), *c2 = vp_case_new("z2");
    vp_case_add_vol(c1, "image", make_vol(VP_I16, 9, 8, 7, 1, 11));
    vp_case_add_vol(c2, "image", make_vol(VP_F32, 4, 5, 6, 1, 12));
    cr_assert_eq(vp_case_write(o, c1), 0);
    cr_assert_eq(vp_case_write(o, c2), 0);
    cr_assert_eq(vp_stream_finish(&o), 0);
    vp_case *r;
    cr_assert_eq(vp_case_read(in, &r), 1);
    cr_assert_str_eq(r->id, "z1");
    assert_vol_eq(r->vols[0], c1->vols[0]);
    vp_case_free(&r);
    cr_assert_eq(vp_case_read(in, &r), 1);
    cr_assert_str_eq(r->id, "z2");
    assert_vol_eq(r->vols[0], c2->vols[0]);
    vp_case_free(&r);
    cr_assert_eq(vp_case_read(in, &r), 0, "end-of-stream frame ends the stream");
    vp_in_close(&in);
    vp_case_free(&c1);
    vp_case_free(&c2);
}

Test(frame, a_failed_output_leaves_no_file)
{
    char path[512];
    snprintf(path, sizeof path, "%s/never.vxp", tmpdir);
    vp_out *o = vp_out_open(path, 0);
    cr_assert(o);
    cr_assert_eq(vp_out_write(o, "abc", 3), 0);
    cr_assert_eq(vp_out_close(&o, 0), 0);
    cr_assert_eq(access(path, F_OK), -1);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s')\"", tmpdir);
    cr_assert_eq(system(cmd), 0, "temporary file left behind");
}

Test(volume, half_float_conversion_round_trips_and_rounds_to_nearest_even)
{
    for (uint32_t h = 0; h < 0x10000; h++) {
        uint16_t x = (uint16_t)h;
        if ((x & 0x7c00) == 0x7c00 && (x & 0x3ff)) continue; /* NaN payloads */
        cr_assert_eq(vp_float_to_half(vp_half_to_float(x)), x, "half 0x%04x", x);
    }
    cr_assert_eq(vp_float_to_half(1.0f + 1.0f / 2048), 0x3c00); /* tie -> even */
    cr_assert_eq(vp_float_to_half(1.0f + 3.0f / 2048), 0x3c02);
    cr_assert_eq(vp_float_to_half(65520.0f), 0x7c00);           /* overflow -> inf */
}

Test(volume, axcodes_name_the_world_direction_of_each_axis)
{
    char ax[4];
    double ras[16] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
    vp_affine_axcodes(ras, ax);
    cr_assert_str_eq(ax, "RAS");
    double lps[16] = {-1, 0, 0, 0, 0, -1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
    vp_affine_axcodes(lps, ax);
    cr_assert_str_eq(ax, "LPS");
    double pil[16] = {0, 0, -2, 0, -0.5, 0, 0, 0, 0, -3, 0, 0, 0, 0, 0, 1}; /* i->P, j->I, k->L */
    vp_affine_axcodes(pil, ax);
    cr_assert_str_eq(ax, "PIL");
    vp_vol v = {.dtype = VP_U8};
    memcpy(v.affine, pil, sizeof pil);
    double sp[3];
    vp_vol_spacing(&v, sp);
    cr_assert_float_eq(sp[0], 0.5, 1e-12);
    cr_assert_float_eq(sp[1], 3, 1e-12);
    cr_assert_float_eq(sp[2], 2, 1e-12);
}

Test(volume, nbytes_rejects_overflow_and_limits)
{
    uint64_t n;
    uint64_t ok[4] = {512, 512, 400, 1};
    cr_assert_eq(vp_vol_nbytes(ok, VP_I16, &n), 0);
    cr_assert_eq(n, 512ull * 512 * 400 * 2);
    uint64_t big[4] = {1u << 20, 1u << 20, 1u << 20, 4096};
    cr_assert_eq(vp_vol_nbytes(big, VP_F32, &n), -1);
    uint64_t toowide[4] = {(1u << 20) + 1, 1, 1, 1};
    cr_assert_eq(vp_vol_nbytes(toowide, VP_U8, &n), -1);
}
