/* test_labels.c - TotalSegmentator v2 names, label map presets, map files, apply. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "labels.h"
#include "volume.h"

static vp_labelmap *new_map(void) { return calloc(1, sizeof(vp_labelmap)); }

static void free_map(vp_labelmap *m)
{
    vp_labelmap_clear(m);
    free(m);
}

/* Write text to a fresh temporary file; the caller unlinks and frees the path. */
static char *write_tmp(const char *text)
{
    char *path = strdup("/tmp/vp_test_labels_XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    FILE *f = fdopen(fd, "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static int load_text(const char *text, vp_labelmap *m)
{
    char *path = write_tmp(text);
    int r = vp_labelmap_load(path, m);
    unlink(path);
    free(path);
    return r;
}

Test(totalseg_v2, names_and_ids)
{
    cr_expect_null(vp_totalseg_v2_name(0));
    cr_expect_null(vp_totalseg_v2_name(118));
    cr_expect_null(vp_totalseg_v2_name(-1));
    cr_expect_str_eq(vp_totalseg_v2_name(1), "spleen");
    cr_expect_str_eq(vp_totalseg_v2_name(2), "kidney_right");
    cr_expect_str_eq(vp_totalseg_v2_name(25), "sacrum");
    cr_expect_str_eq(vp_totalseg_v2_name(26), "vertebrae_S1");
    cr_expect_str_eq(vp_totalseg_v2_name(27), "vertebrae_L5");
    cr_expect_str_eq(vp_totalseg_v2_name(31), "vertebrae_L1");
    cr_expect_str_eq(vp_totalseg_v2_name(32), "vertebrae_T12");
    cr_expect_str_eq(vp_totalseg_v2_name(43), "vertebrae_T1");
    cr_expect_str_eq(vp_totalseg_v2_name(44), "vertebrae_C7");
    cr_expect_str_eq(vp_totalseg_v2_name(50), "vertebrae_C1");
    cr_expect_str_eq(vp_totalseg_v2_name(92), "rib_left_1");
    cr_expect_str_eq(vp_totalseg_v2_name(104), "rib_right_1");
    cr_expect_str_eq(vp_totalseg_v2_name(117), "costal_cartilages");
    for (int id = 1; id <= VP_TOTALSEG_V2_N; id++) {
        const char *n = vp_totalseg_v2_name(id);
        cr_assert_not_null(n, "id %d", id);
        cr_expect_eq(vp_totalseg_v2_id(n), id, "name %s", n); /* names are unique */
    }
    cr_expect_eq(vp_totalseg_v2_id("no_such_class"), -1);
    cr_expect_eq(vp_totalseg_v2_id("Spleen"), -1);
}

/* spine25 output expected for a v2 id, derived from its name. */
static int spine25_expected(int id)
{
    const char *n = vp_totalseg_v2_name(id);
    if (!n) return 0;
    if (!strcmp(n, "sacrum") || !strcmp(n, "vertebrae_S1")) return 25;
    if (strncmp(n, "vertebrae_", 10)) return 0;
    int k = atoi(n + 11);
    switch (n[10]) {
    case 'C': return k;
    case 'T': return 7 + k;
    case 'L': return 19 + k;
    default: return -1;
    }
}

Test(preset, spine25)
{
    vp_labelmap *m = new_map();
    cr_assert_eq(vp_labelmap_preset("spine25", m), 0);
    int seen[26] = {0};
    for (int id = 0; id <= VP_TOTALSEG_V2_N; id++) {
        int want = spine25_expected(id);
        cr_expect_eq(m->map[id], want, "id %d (%s): got %d, want %d", id,
                     vp_totalseg_v2_name(id) ? vp_totalseg_v2_name(id) : "-", m->map[id], want);
        if (want >= 0 && want <= 25) seen[want]++;
    }
    for (int k = 1; k <= 24; k++) cr_expect_eq(seen[k], 1, "output %d hit %d times", k, seen[k]);
    cr_expect_eq(seen[25], 2);
    cr_expect_eq(m->map[vp_totalseg_v2_id("vertebrae_T5")], 8 + 4);
    cr_expect_eq(m->map[25], 25);
    cr_expect_eq(m->map[26], 25);
    for (int v = 118; v < VP_LABELMAP_N; v++) cr_assert_eq(m->map[v], 0, "value %d", v);
    cr_expect_eq(m->keep_other, 0);
    cr_expect_eq(m->other, 0);

    /* names: output k is named like every v2 class that maps to it (sacrum for 25) */
    cr_expect_eq(m->nnames, 25);
    for (int id = 1; id <= 50; id++) {
        int k = spine25_expected(id);
        if (k >= 1 && k <= 24) cr_expect_str_eq(vp_labelmap_name(m, k), vp_totalseg_v2_name(id));
    }
    cr_expect_str_eq(vp_labelmap_name(m, 1), "vertebrae_C1");
    cr_expect_str_eq(vp_labelmap_name(m, 7), "vertebrae_C7");
    cr_expect_str_eq(vp_labelmap_name(m, 8), "vertebrae_T1");
    cr_expect_str_eq(vp_labelmap_name(m, 19), "vertebrae_T12");
    cr_expect_str_eq(vp_labelmap_name(m, 24), "vertebrae_L5");
    cr_expect_str_eq(vp_labelmap_name(m, 25), "sacrum");
    cr_expect_null(vp_labelmap_name(m, 0));
    cr_expect_null(vp_labelmap_name(m, 26));
    free_map(m);
}

Test(preset, totalseg_v2_and_unknown, .init = cr_redirect_stderr)
{
    vp_labelmap *m = new_map();
    cr_assert_eq(vp_labelmap_preset("totalseg-v2", m), 0);
    for (int id = 0; id <= VP_TOTALSEG_V2_N; id++) cr_expect_eq(m->map[id], id);
    cr_expect_eq(m->map[118], 0);
    cr_expect_eq(m->nnames, VP_TOTALSEG_V2_N);
    cr_expect_str_eq(vp_labelmap_name(m, 117), "costal_cartilages");
    free_map(m);
    m = new_map();
    cr_expect_eq(vp_labelmap_preset("spine24", m), -1);
    free_map(m);
}

Test(pack, names_map)
{
    vp_labelmap *m = new_map();
    cr_assert_eq(vp_labelmap_preset("spine25", m), 0);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    vp_labelmap_pack_names(m, &pk);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    cr_assert_eq(msgpack_unpack_next(&u, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq(u.data.type, MSGPACK_OBJECT_MAP);
    cr_assert_eq(u.data.via.map.size, 25);
    msgpack_object_kv *kv = u.data.via.map.ptr;
    cr_assert_eq(kv[0].key.type, MSGPACK_OBJECT_STR);
    cr_expect_eq(kv[0].key.via.str.size, 1);
    cr_expect(!memcmp(kv[0].key.via.str.ptr, "1", 1));
    cr_expect(kv[0].val.via.str.size == 12 && !memcmp(kv[0].val.via.str.ptr, "vertebrae_C1", 12));
    cr_expect(kv[24].key.via.str.size == 2 && !memcmp(kv[24].key.via.str.ptr, "25", 2));
    cr_expect(kv[24].val.via.str.size == 6 && !memcmp(kv[24].val.via.str.ptr, "sacrum", 6));
    msgpack_unpacked_destroy(&u);

    /* whole v2 table */
    msgpack_sbuffer_clear(&sb);
    vp_labels_pack_totalseg_v2(&pk);
    msgpack_unpacked_init(&u);
    off = 0;
    cr_assert_eq(msgpack_unpack_next(&u, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq(u.data.via.map.size, VP_TOTALSEG_V2_N);
    kv = u.data.via.map.ptr;
    cr_expect(kv[116].key.via.str.size == 3 && !memcmp(kv[116].key.via.str.ptr, "117", 3));
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
    free_map(m);
}

Test(mapfile, numbers_names_comments)
{
    vp_labelmap *m = new_map();
    int r = load_text("# spine subset\n"
                      "\n"
                      "50 1 vertebrae_C1\n"
                      "vertebrae_C2 2 vertebrae_C2   # trailing comment\n"
                      "  sacrum\t25\tsacrum and S1\r\n"
                      "vertebrae_S1 25\n"
                      "7 -3\n"
                      "   # indented comment\n"
                      "65535 70000\n",
                      m);
    cr_assert_eq(r, 0);
    cr_expect_eq(m->map[50], 1);
    cr_expect_eq(m->map[49], 2);
    cr_expect_eq(m->map[25], 25);
    cr_expect_eq(m->map[26], 25);
    cr_expect_eq(m->map[7], -3);
    cr_expect_eq(m->map[65535], 70000);
    cr_expect_eq(m->map[0], 0);
    cr_expect_eq(m->map[1], 0); /* unmapped -> 0 */
    cr_expect_eq(m->keep_other, 0);
    cr_expect_eq(m->nnames, 3);
    cr_expect_str_eq(vp_labelmap_name(m, 1), "vertebrae_C1");
    cr_expect_str_eq(vp_labelmap_name(m, 2), "vertebrae_C2");
    cr_expect_str_eq(vp_labelmap_name(m, 25), "sacrum and S1");
    cr_expect_null(vp_labelmap_name(m, -3));
    free_map(m);
}

Test(mapfile, keep_and_default)
{
    vp_labelmap *m = new_map();
    cr_assert_eq(load_text("1 10\n* KEEP\n", m), 0);
    cr_expect_eq(m->keep_other, 1);
    cr_expect_eq(m->map[1], 10);
    cr_expect_eq(m->map[0], 0);
    cr_expect_eq(m->map[2], 2);
    cr_expect_eq(m->map[65535], 65535);
    vp_labelmap_clear(m);

    cr_assert_eq(load_text("* 99\n3 4\n", m), 0);
    cr_expect_eq(m->keep_other, 0);
    cr_expect_eq(m->other, 99);
    cr_expect_eq(m->map[3], 4);
    cr_expect_eq(m->map[0], 99);
    cr_expect_eq(m->map[1000], 99);
    free_map(m);
}

Test(mapfile, errors, .init = cr_redirect_stderr)
{
    static const char *const bad[] = {
        "1 2\n3\n",                  /* missing TO */
        "1 2\nfoo 3\n",              /* unknown name */
        "65536 1\n",                 /* FROM out of range */
        "-1 1\n",                    /* negative FROM */
        "1 x\n",                     /* TO not a number */
        "1 4294967296\n",            /* TO out of int32 */
        "1 2\n1 3\n",                /* duplicate FROM */
        "spleen 2\n1 3\n",           /* duplicate via name */
        "1 5 a\n2 5 b\n",            /* conflicting names */
        "* KEEP\n* 0\n",             /* two star lines */
        "* keepit\n",                /* bad star */
        "* 1 name\n",                /* name on star line */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        vp_labelmap *m = new_map();
        cr_expect_eq(load_text(bad[i], m), -1, "map %zu should fail: %s", i, bad[i]);
        cr_expect_eq(m->nnames, 0);
        free_map(m);
    }
    vp_labelmap *m = new_map();
    cr_expect_eq(vp_labelmap_load("/nonexistent/map.txt", m), -1);
    free_map(m);
    /* same name twice for one output is fine */
    m = new_map();
    cr_expect_eq(load_text("1 5 a\n2 5 a\n", m), 0);
    free_map(m);
}

Test(mapfile, error_message_has_line, .init = cr_redirect_stderr)
{
    vp_labelmap *m = new_map();
    char *path = write_tmp("# header\n1 2\n\nbogus_class 3\n");
    cr_assert_eq(vp_labelmap_load(path, m), -1);
    fflush(stderr);
    char want[256];
    snprintf(want, sizeof want, "%s:4: FROM 'bogus_class' is neither a number nor a TotalSegmentator v2 class name", path);
    FILE *f = cr_get_redirected_stderr();
    char buf[1024] = {0};
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    cr_expect(strstr(buf, want) != NULL, "stderr was: %s", buf);
    unlink(path);
    free(path);
    free_map(m);
}

static vp_vol *vol_of(enum vp_dtype t, uint64_t n)
{
    uint64_t dims[4] = {n, 1, 1, 1};
    return vp_vol_new(dims, t, NULL);
}

Test(apply, u8_spine25)
{
    vp_labelmap *m = new_map();
    cr_assert_eq(vp_labelmap_preset("spine25", m), 0);
    vp_vol *v = vol_of(VP_U8, 256);
    uint8_t *d = v->data;
    for (int i = 0; i < 256; i++) d[i] = (uint8_t)i;
    cr_assert_eq(vp_labelmap_apply(m, v, "t"), 0);
    cr_assert_eq(v->dtype, VP_U8);
    d = v->data;
    for (int i = 0; i < 256; i++) cr_expect_eq(d[i], spine25_expected(i), "value %d", i);
    vp_vol_free(&v);
    free_map(m);
}

Test(apply, u8_widens)
{
    vp_labelmap *m = new_map();
    cr_assert_eq(load_text("1 300\n2 7\n", m), 0);
    cr_expect_eq(vp_labelmap_out_dtype(m, VP_U8), VP_U16);
    vp_vol *v = vol_of(VP_U8, 4);
    uint8_t *d = v->data;
    d[0] = 0; d[1] = 1; d[2] = 2; d[3] = 3;
    cr_assert_eq(vp_labelmap_apply(m, v, "t"), 0);
    cr_assert_eq(v->dtype, VP_U16);
    uint16_t *w = v->data;
    cr_expect_eq(w[0], 0);
    cr_expect_eq(w[1], 300);
    cr_expect_eq(w[2], 7);
    cr_expect_eq(w[3], 0);
    vp_vol_free(&v);
    vp_labelmap_clear(m);

    cr_assert_eq(load_text("1 -1\n", m), 0);
    cr_expect_eq(vp_labelmap_out_dtype(m, VP_U8), VP_I16);
    cr_expect_eq(vp_labelmap_out_dtype(m, VP_U16), VP_I16);
    vp_labelmap_clear(m);
    cr_assert_eq(load_text("1 70000\n", m), 0);
    cr_expect_eq(vp_labelmap_out_dtype(m, VP_U8), VP_I32);
    cr_expect_eq(vp_labelmap_out_dtype(m, VP_I32), VP_I32);
    cr_expect_eq(vp_labelmap_out_dtype(m, VP_F32), -1);
    free_map(m);
}

Test(apply, i16_and_i32)
{
    vp_labelmap *m = new_map();
    cr_assert_eq(load_text("vertebrae_T5 12\n26 25\n1000 2\n* KEEP\n", m), 0);
    vp_vol *v = vol_of(VP_I16, 6);
    int16_t *d = v->data;
    int16_t in[6] = {39, 26, 1000, -5, 7, 32767};
    memcpy(d, in, sizeof in);
    cr_assert_eq(vp_labelmap_apply(m, v, "t"), 0);
    cr_assert_eq(v->dtype, VP_I16);
    d = v->data;
    int16_t want[6] = {12, 25, 2, -5, 7, 32767};
    for (int i = 0; i < 6; i++) cr_expect_eq(d[i], want[i], "voxel %d: %d", i, d[i]);
    vp_vol_free(&v);
    vp_labelmap_clear(m);

    /* without KEEP negatives go to the default */
    cr_assert_eq(load_text("39 12\n* 0\n", m), 0);
    v = vol_of(VP_I16, 3);
    d = v->data;
    d[0] = 39; d[1] = -5; d[2] = 40;
    cr_assert_eq(vp_labelmap_apply(m, v, "t"), 0);
    d = v->data;
    cr_expect_eq(d[0], 12);
    cr_expect_eq(d[1], 0);
    cr_expect_eq(d[2], 0);
    vp_vol_free(&v);

    /* i32 with values beyond the table */
    v = vol_of(VP_I32, 3);
    int32_t *e = v->data;
    e[0] = 39; e[1] = 100000; e[2] = -100000;
    cr_assert_eq(vp_labelmap_apply(m, v, "t"), 0);
    e = v->data;
    cr_expect_eq(e[0], 12);
    cr_expect_eq(e[1], 0);
    cr_expect_eq(e[2], 0);
    vp_vol_free(&v);
    free_map(m);
}

Test(apply, u16_spine25)
{
    vp_labelmap *m = new_map();
    cr_assert_eq(vp_labelmap_preset("spine25", m), 0);
    vp_vol *v = vol_of(VP_U16, 65536);
    uint16_t *d = v->data;
    for (int i = 0; i < 65536; i++) d[i] = (uint16_t)i;
    cr_assert_eq(vp_labelmap_apply(m, v, "t"), 0);
    cr_assert_eq(v->dtype, VP_U16);
    d = v->data;
    for (int i = 0; i < 65536; i++)
        if (d[i] != spine25_expected(i)) cr_assert_fail("value %d -> %d", i, d[i]);
    vp_vol_free(&v);
    free_map(m);
}

Test(apply, float_is_error, .init = cr_redirect_stderr)
{
    vp_labelmap *m = new_map();
    cr_assert_eq(vp_labelmap_preset("spine25", m), 0);
    vp_vol *v = vol_of(VP_F32, 2);
    cr_expect_eq(vp_labelmap_apply(m, v, "case 'x': volume 'label'"), -1);
    cr_expect_eq(v->dtype, VP_F32);
    fflush(stderr);
    FILE *f = cr_get_redirected_stderr();
    char buf[1024] = {0};
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    cr_expect(strstr(buf, "case 'x': volume 'label': dtype f32") != NULL, "stderr was: %s", buf);
    vp_vol_free(&v);
    free_map(m);
}
