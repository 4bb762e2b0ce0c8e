/* Unit tests: the fan-out worker's frame scanner (lib/fanout_frame.h) on frames written by the real
 * writer (lib/frame.c): frame ends and ids found in whole and in growing buffers, two frames in one
 * stream, chunked payloads, and bytes that are not a frame. Frame lengths come from the writer (the
 * size of a file holding one frame), never from the test. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "endpoint.h"
#include "fanout_frame.h"
#include "frame.h"
#include "volume.h"

static char tmpdir[256];

static void mk_tmp(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/vp-test-fanout-frame-XXXXXX");
    cr_assert(mkdtemp(tmpdir));
}

static void rm_tmp(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(fanout_frame, .init = mk_tmp, .fini = rm_tmp);

static vp_vol *make_vol(enum vp_dtype t, uint64_t nx, uint64_t ny, uint64_t nz, unsigned seed)
{
    uint64_t dims[4] = {nx, ny, nz, 1};
    double aff[16] = {1.5, 0, 0, -10, 0, 1.5, 0, 20, 0, 0, 3, -30, 0, 0, 0, 1};
    vp_vol *v = vp_vol_new(dims, t, aff);
    uint64_t n = vp_vol_nvox(v) * vp_dtype_size(t);
    unsigned char *p = v->data;
    for (uint64_t i = 0; i < n; i++) { seed = seed * 1103515245u + 12345u; p[i] = (unsigned char)(seed >> 16); }
    return v;
}

/* A case with meta (provenance, a nested custom value) and two volumes. */
static vp_case *make_case(const char *id, unsigned seed)
{
    vp_case *c = vp_case_new(id);
    vp_case_add_vol(c, "image", make_vol(VP_I16, 23, 19, 7, seed));
    vp_case_add_vol(c, "label", make_vol(VP_U8, 23, 19, 7, seed + 1));
    static const unsigned char raw[] = {0x93, 0x01, 0xa1, 'x', 0x81, 0xa2, 'i', 'd', 0xa3, 'n', 'o', 't'}; /* [1, "x", {"id": "not"}] */
    vp_case_meta_set(c, "custom", raw, sizeof raw);
    vp_case_add_provenance(c, "test");
    return c;
}

/* Write c alone to a file and return its bytes (*len: what the writer wrote). */
static unsigned char *frame_bytes(const vp_case *c, const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    vp_out *o = vp_out_open(path, 0);
    cr_assert(o);
    cr_assert_eq(vp_case_write(o, c), 0);
    cr_assert_eq(vp_stream_finish(&o), 0);
    FILE *f = fopen(path, "rb");
    cr_assert(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*len);
    cr_assert_eq(fread(b, 1, *len, f), *len);
    fclose(f);
    return b;
}

static void assert_id(const unsigned char *buf, size_t len, const char *want)
{
    const unsigned char *id;
    size_t n;
    cr_assert_eq(vp_fo_frame_id(buf, len, &id, &n), 0);
    cr_assert_eq(n, strlen(want));
    cr_assert_eq(memcmp(id, want, n), 0, "id '%.*s', want '%s'", (int)n, (const char *)id, want);
}

Test(fanout_frame, whole_frame_end_and_id)
{
    vp_case *c = make_case("s0011", 1);
    size_t len;
    unsigned char *b = frame_bytes(c, "a.vxp", &len);
    vp_fo_scan s;
    size_t need;
    vp_fo_scan_init(&s);
    cr_assert_eq(vp_fo_scan_frame(&s, b, len, &need), 1);
    cr_assert_eq(s.pos, len);
    assert_id(b, len, "s0011"); /* the "id" inside meta.custom is not the frame's */
    free(b);
    vp_case_free(&c);
}

/* Feed two concatenated frames in steps of `step` bytes, as a pipe would deliver them. */
static void growing(size_t step)
{
    vp_case *c1 = make_case("first", 2), *c2 = make_case("second-case", 3);
    size_t l1, l2;
    unsigned char *b1 = frame_bytes(c1, "1.vxp", &l1), *b2 = frame_bytes(c2, "2.vxp", &l2);
    unsigned char *all = malloc(l1 + l2);
    memcpy(all, b1, l1);
    memcpy(all + l1, b2, l2);
    vp_fo_scan s;
    size_t need, len = 0;
    int k = 0;
    vp_fo_scan_init(&s);
    while (len < l1 + l2) {
        len = len + step < l1 + l2 ? len + step : l1 + l2;
        k = vp_fo_scan_frame(&s, all, len, &need);
        if (k == 1) break;
        cr_assert_eq(k, 0, "step %zu, %zu bytes: not a frame", step, len);
        cr_assert(need > len && need <= l1, "step %zu: need %zu outside (%zu, %zu]", step, need, len, l1);
    }
    cr_assert_eq(k, 1);
    cr_assert(len >= l1);
    cr_assert_eq(s.pos, l1, "step %zu: frame end %zu, written %zu", step, s.pos, l1);
    cr_assert(s.have_id);
    cr_assert_eq(s.id_len, strlen("first"));
    cr_assert_eq(memcmp(all + s.id_off, "first", s.id_len), 0);
    /* the rest is the second frame, whole */
    assert_id(all + l1, l2, "second-case");
    const unsigned char *id;
    size_t n;
    cr_assert_eq(vp_fo_frame_id(all, l1 + l2, &id, &n), -1, "two frames are not one");
    free(all); free(b1); free(b2);
    vp_case_free(&c1);
    vp_case_free(&c2);
}

Test(fanout_frame, growing_buffer_byte_by_byte) { growing(1); }
Test(fanout_frame, growing_buffer_small_steps) { growing(7); }
Test(fanout_frame, growing_buffer_pipe_steps) { growing(4096); }

Test(fanout_frame, chunked_payload)
{
    vp_frame_bin_limit = 1000; /* stand-ins for 4 GiB and 1 GiB: "data" becomes an array of bins */
    vp_frame_chunk_bytes = 777;
    vp_case *c = make_case("chunky", 4);
    size_t len;
    unsigned char *b = frame_bytes(c, "c.vxp", &len);
    vp_frame_bin_limit = 0xffffffffu;
    vp_frame_chunk_bytes = VP_CHUNK_BYTES;
    assert_id(b, len, "chunky");
    vp_fo_scan s;
    size_t need;
    vp_fo_scan_init(&s);
    cr_assert_eq(vp_fo_scan_frame(&s, b, len - 1, &need), 0); /* one byte short */
    cr_assert_eq(need, len);
    cr_assert_eq(vp_fo_scan_frame(&s, b, len, &need), 1);
    cr_assert_eq(s.pos, len);
    free(b);
    vp_case_free(&c);
}

Test(fanout_frame, not_a_frame)
{
    vp_case *c = make_case("x1", 5);
    size_t len;
    unsigned char *b = frame_bytes(c, "x.vxp", &len);
    vp_fo_scan s;
    size_t need;
    const unsigned char *id;
    size_t n;
    /* an array at the top */
    static const unsigned char arr[] = {0x91, 0x01};
    vp_fo_scan_init(&s);
    cr_assert_eq(vp_fo_scan_frame(&s, arr, sizeof arr, &need), -1);
    /* 0xc1 (never used) where the first value starts */
    unsigned char *bad = malloc(len);
    memcpy(bad, b, len);
    vp_fo_scan_init(&s);
    cr_assert_eq(vp_fo_scan_frame(&s, b, 1, &need), 0); /* just the map header */
    size_t first_value = 1 + 1 + strlen("voxpipe");  /* fixstr key "voxpipe" */
    cr_assert_eq(memcmp(b + 2, "voxpipe", strlen("voxpipe")), 0);
    bad[first_value] = 0xc1;
    vp_fo_scan_init(&s);
    cr_assert_eq(vp_fo_scan_frame(&s, bad, len, &need), -1);
    /* trailing bytes after the frame */
    unsigned char *more = malloc(len + 1);
    memcpy(more, b, len);
    more[len] = 0xc0;
    cr_assert_eq(vp_fo_frame_id(more, len + 1, &id, &n), -1);
    /* a map without "id" */
    static const unsigned char noid[] = {0x81, 0xa2, 'i', 'x', 0xa1, 'a'};
    cr_assert_eq(vp_fo_frame_id(noid, sizeof noid, &id, &n), -1);
    free(b); free(bad); free(more);
    vp_case_free(&c);
}
