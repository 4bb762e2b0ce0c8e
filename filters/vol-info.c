/* vol-info - describe the cases of a stream: volumes, dims, spacing, orientation, value range, labels. */
#include "cli.h"
#include "endpoint.h"
#include "frame.h"
#include "util.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *in_spec = "-";
static int json;
static struct vp_strlist label_vols;

static const struct vp_opt opts[] = {
    {'i', "in", "ENDPOINT", VP_OPT_STR, &in_spec, "input stream (default -)", 0, 0, NULL},
    {0, "json", NULL, VP_OPT_FLAG, &json, "one JSON object per case (JSON lines)", 0, 0, NULL},
    {0, "labels", "VOL", VP_OPT_LIST, &label_vols, "count voxels per label in VOL (repeatable; default: integer volumes not named 'image')", 0, 0, NULL},
    {0, NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
};

static const struct vp_cmd cmd = {
    "vol-info", "describe the cases of a voxpipe stream",
    "[options]",
    "Prints, per case and volume: dtype, dims, spacing (mm), orientation code (e.g. RAS, LPS), min, max\n"
    "and mean, and for label volumes the voxel count of every label present, with its name when the\n"
    "case's meta carries a label table.",
    opts, 0, 0,
};

static int is_label_vol(const char *name, const vp_vol *v)
{
    if (v->dtype == VP_F32 || v->dtype == VP_F16) return 0;
    if (label_vols.n) {
        for (int i = 0; i < label_vols.n; i++)
            if (!strcmp(label_vols.v[i], name)) return 1;
        return 0;
    }
    return strcmp(name, "image") != 0;
}

/* JSON string, escaped */
static void jstr(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') printf("\\%c", *p);
        else if (*p < 0x20) printf("\\u%04x", *p);
        else putchar(*p);
    }
    putchar('"');
}

static void jnum(double x)
{
    if (isfinite(x)) printf("%.17g", x);
    else printf("null");
}

/* label name from meta.labels {"1": "vertebrae_C1", ...} */
static const char *label_name(const msgpack_object *labels, long id, char *buf, size_t n)
{
    if (!labels || labels->type != MSGPACK_OBJECT_MAP) return NULL;
    char key[32];
    snprintf(key, sizeof key, "%ld", id);
    for (uint32_t i = 0; i < labels->via.map.size; i++) {
        const msgpack_object_kv *kv = &labels->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == strlen(key) &&
            !memcmp(kv->key.via.str.ptr, key, kv->key.via.str.size) && kv->val.type == MSGPACK_OBJECT_STR) {
            snprintf(buf, n, "%.*s", (int)kv->val.via.str.size, kv->val.via.str.ptr);
            return buf;
        }
    }
    return NULL;
}

static void describe(const vp_case *c, const msgpack_object *labels, int first_case)
{
    (void)first_case;
    if (json) { printf("{\"id\":"); jstr(c->id); printf(",\"vols\":{"); }
    else printf("case %s\n", c->id);
    for (int i = 0; i < c->nvols; i++) {
        const vp_vol *v = c->vols[i];
        double sp[3];
        char ax[4];
        vp_vol_spacing(v, sp);
        vp_affine_axcodes(v->affine, ax);
        struct vp_vol_stats st;
        vp_vol_stats(v, &st);
        uint64_t *counts = NULL;
        long maxlab = -1;
        if (is_label_vol(c->vol_names[i], v) && st.min >= 0 && st.max <= 65535) {
            maxlab = (long)st.max;
            counts = vp_calloc((size_t)maxlab + 1, sizeof *counts);
            uint64_t n = vp_vol_nvox(v);
            for (uint64_t k = 0; k < n; k++) counts[(long)vp_vol_get(v, k)]++;
        }
        if (json) {
            printf("%s", i ? "," : "");
            jstr(c->vol_names[i]);
            printf(":{\"dtype\":\"%s\",\"dims\":[%" PRIu64 ",%" PRIu64 ",%" PRIu64, vp_dtype_name(v->dtype), v->dims[0], v->dims[1], v->dims[2]);
            if (v->has_channels || v->dims[3] > 1) printf(",%" PRIu64, v->dims[3]);
            printf("],\"spacing\":[");
            jnum(sp[0]); putchar(','); jnum(sp[1]); putchar(','); jnum(sp[2]);
            printf("],\"orientation\":\"%s\",\"affine\":[", ax);
            for (int k = 0; k < 16; k++) { if (k) putchar(','); jnum(v->affine[k]); }
            printf("],\"min\":"); jnum(st.min);
            printf(",\"max\":"); jnum(st.max);
            printf(",\"mean\":"); jnum(st.mean);
            if (st.nan_count) printf(",\"nan\":%" PRIu64, st.nan_count);
            if (counts) {
                printf(",\"labels\":{");
                int first = 1;
                for (long l = 0; l <= maxlab; l++) {
                    if (!counts[l]) continue;
                    char nb[128];
                    const char *nm = label_name(labels, l, nb, sizeof nb);
                    printf("%s\"%ld\":{\"voxels\":%" PRIu64, first ? "" : ",", l, counts[l]);
                    if (nm) { printf(",\"name\":"); jstr(nm); }
                    putchar('}');
                    first = 0;
                }
                putchar('}');
            }
            putchar('}');
        } else {
            printf("  %-8s %-4s %" PRIu64 "x%" PRIu64 "x%" PRIu64, c->vol_names[i], vp_dtype_name(v->dtype), v->dims[0], v->dims[1], v->dims[2]);
            if (v->has_channels || v->dims[3] > 1) printf("x%" PRIu64, v->dims[3]);
            printf("  spacing %.4gx%.4gx%.4g mm  %s  min %.6g max %.6g mean %.6g", sp[0], sp[1], sp[2], ax, st.min, st.max, st.mean);
            if (st.nan_count) printf("  nan %" PRIu64, st.nan_count);
            putchar('\n');
            if (counts)
                for (long l = 1; l <= maxlab; l++) {
                    if (!counts[l]) continue;
                    char nb[128];
                    const char *nm = label_name(labels, l, nb, sizeof nb);
                    printf("    label %-4ld %-24s %" PRIu64 " voxels\n", l, nm ? nm : "", counts[l]);
                }
        }
        free(counts);
    }
    if (json) printf("}}\n");
}

int main(int argc, char **argv)
{
    vp_cli_parse(&cmd, argc, argv);
    vp_in *in = vp_in_open(in_spec);
    if (!in) return VP_ERR_RUNTIME;
    vp_case *c;
    int r, n = 0;
    while ((r = vp_case_read(in, &c)) > 0) {
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        for (int i = 0; i < label_vols.n; i++)
            if (!vp_case_vol(c, label_vols.v[i])) {
                fflush(stdout);
                vp_die(VP_ERR_DATA, "case '%s': no volume '%s' (--labels)", c->id, label_vols.v[i]);
            }
        int have = vp_case_meta_parse(c, "labels", &u) == 0;
        describe(c, have ? &u.data : NULL, n == 0);
        msgpack_unpacked_destroy(&u);
        vp_case_free(&c);
        n++;
    }
    vp_in_close(&in);
    if (fflush(stdout)) vp_die(VP_ERR_RUNTIME, "cannot write output");
    return r < 0 ? -r : 0;
}
