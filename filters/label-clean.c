/* label-clean - per-class clean-up of a label volume: largest component, small islands, holes,
 * and the order of the vertebrae along the body axis. */
#include "ccl.h"
#include "cli.h"
#include "endpoint.h"
#include "filter.h"
#include "frame.h"
#include "labelclean.h"
#include "spineorder.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *in_spec = "-";
static const char *out_spec = "-";
static const char *vol_name = "label";
static const char *min_size_arg = NULL;
static const char *components_name = NULL;
static int conn_choice = 2, largest, fill_holes, reassign, spine_order;
static const char *const conn_choices[] = {"6", "18", "26", NULL};

static const struct vp_opt opts[] = {
    {'i', "in", "ENDPOINT", VP_OPT_STR, &in_spec, "where to read the stream: -, FILE, @tcp://ADDR:PORT, >tcp://HOST:PORT", 0, 0, NULL},
    {'o', "out", "ENDPOINT", VP_OPT_STR, &out_spec, "where to write the stream: -, FILE, @tcp://ADDR:PORT, >tcp://HOST:PORT", 0, 0, NULL},
    {0, "vol", "NAME", VP_OPT_STR, &vol_name, "the label volume to clean (default: label)", 0, 0, NULL},
    {0, "connectivity", "N", VP_OPT_CHOICE, &conn_choice, "neighbours of a voxel: faces, + edges, + corners (default 26)", 0, 0, conn_choices},
    {0, "largest", NULL, VP_OPT_FLAG, &largest, "keep only the largest connected component of each class", 0, 0, NULL},
    {0, "min-size", "N[mm3]", VP_OPT_STR, &min_size_arg, "remove components of fewer than N voxels (or N mm^3)", 0, 0, NULL},
    {0, "reassign", NULL, VP_OPT_FLAG, &reassign, "removed voxels take the most touching kept class instead of 0", 0, 0, NULL},
    {0, "fill-holes", NULL, VP_OPT_FLAG, &fill_holes, "fill the enclosed background holes of each class", 0, 0, NULL},
    {0, "spine-order", NULL, VP_OPT_FLAG, &spine_order, "make spine25 vertebra labels one component each, C1 -> sacrum head to feet", 0, 0, NULL},
    {0, "components", "NAME", VP_OPT_STR, &components_name, "also write the component ids of the result as i32 volume NAME", 0, 0, NULL},
    {0, NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
};

static const struct vp_cmd cmd = {
    "label-clean", "per-class clean-up of a label volume: components, islands, holes, vertebra order",
    "[options]",
    "The volume named by --vol (u8, u16, i16 or i32; every non-zero value is a class) is cleaned in\n"
    "this order: --spine-order, then --largest / --min-size, then --fill-holes. Components never\n"
    "cross class boundaries; --connectivity 6|18|26 is scipy.ndimage.generate_binary_structure(3,\n"
    "1|2|3) (default 26, as MONAI's KeepLargestConnectedComponent).\n"
    "\n"
    "  --largest      every component of a class but its largest is removed (ties: the first in the\n"
    "                 numbering below).\n"
    "  --min-size N   components of fewer than N voxels are removed; 'Nmm3' compares voxels x voxel\n"
    "                 volume (|det| of the affine) with N mm^3. With --largest both apply.\n"
    "  --reassign     removed voxels become the class with the most contacts with the removed\n"
    "                 component (neighbouring voxel pairs, kept voxels only; ties: the lower class),\n"
    "                 or 0 when it touches no kept class. Without it they become 0.\n"
    "  --fill-holes   per class c (ascending): the 0 voxels inside the holes that\n"
    "                 scipy.ndimage.binary_fill_holes(label == c, structure) finds become c; a voxel\n"
    "                 in holes of several classes goes to the class with the smallest hole.\n"
    "  --spine-order  spine25 ids (C1..C7 = 1..7, T1..T12 = 8..19, L1..L5 = 20..24, sacrum = 25):\n"
    "                 a component holding two touching vertebrae is cut at its thinnest neck,\n"
    "                 fragments join the vertebra they touch, split vertebrae are joined, isolated\n"
    "                 islands are removed, and vertebrae out of order head to feet (along the\n"
    "                 affine's S axis) are relabelled with the fewest changes; each change is logged\n"
    "                 (lib/spineorder.h has the rules and thresholds).\n"
    "                 Refused (exit 3) when meta.labels names ids 1..25 otherwise than spine25.\n"
    "  --components NAME  component ids of the cleaned volume, numbered as scipy.ndimage.label numbers\n"
    "                 them on the [x, y, z] array (by each component's first voxel in C order of that\n"
    "                 array), all classes in one labelling, 0 = background.\n"
    "\n"
    "meta.label_clean lists the changes: {op, from, to, components, voxels[, centroid, s_mm, why]}\n"
    "(one entry per class pair for removals and fills, one per component for --spine-order). A case\n"
    "without the volume, a float or multi-channel volume: exit 3, nothing written.",
    opts, 0, 0,
};

static void parse_min_size(struct vp_lc_opts *o)
{
    if (!min_size_arg) return;
    char *end;
    double v = strtod(min_size_arg, &end);
    int mm3 = !strcmp(end, "mm3");
    if (end == min_size_arg || (*end && !mm3) || !isfinite(v) || v <= 0)
        vp_usage_error("option '--min-size': '%s' is not a positive number of voxels or 'Nmm3'", min_size_arg);
    o->min_size = v;
    o->min_size_mm3 = mm3;
}

/* meta.labels, when present, must name ids 1..25 as spine25 does */
static int check_spine_labels(const vp_case *c, const char *ctx)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    int rc = 0;
    if (vp_case_meta_parse(c, "labels", &u) == 0 && u.data.type == MSGPACK_OBJECT_MAP) {
        const msgpack_object_map *m = &u.data.via.map;
        for (uint32_t i = 0; i < m->size && !rc; i++) {
            const msgpack_object *k = &m->ptr[i].key, *val = &m->ptr[i].val;
            if (k->type != MSGPACK_OBJECT_STR || val->type != MSGPACK_OBJECT_STR) continue;
            char key[32], name[VP_MAX_NAME], want[24];
            if (k->via.str.size >= sizeof key || val->via.str.size >= sizeof name) continue;
            memcpy(key, k->via.str.ptr, k->via.str.size);
            key[k->via.str.size] = 0;
            memcpy(name, val->via.str.ptr, val->via.str.size);
            name[val->via.str.size] = 0;
            char *end;
            long id = strtol(key, &end, 10);
            if (*end || end == key || id < 1 || id > VP_SPINE_N) continue;
            if (strcmp(vp_spine25_name(id, want), name))
                rc = vp_error("%s: meta 'labels': id %ld is '%s', not spine25's '%s' (map the labels with "
                              "label-map --preset spine25 first)", ctx, id, name, want);
        }
    }
    msgpack_unpacked_destroy(&u);
    return rc;
}

static void list_vols(const vp_case *c, char *buf, size_t n)
{
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < c->nvols && len + 1 < n; i++) {
        int w = snprintf(buf + len, n - len, "%s%s", i ? ", " : "", c->vol_names[i]);
        if (w < 0) break;
        len += (size_t)w;
    }
    if (!c->nvols) snprintf(buf, n, "none");
}

/* Clean one case. 0 ok, or an exit code after an error. */
static int clean_case(vp_case *c, const struct vp_lc_opts *o)
{
    char ctx[VP_MAX_ID + VP_MAX_NAME + 32];
    vp_vol *v = vp_case_vol(c, vol_name);
    if (!v) {
        char have[1024];
        list_vols(c, have, sizeof have);
        vp_error("case '%s': no volume '%s' (volumes: %s)", c->id, vol_name, have);
        return VP_ERR_DATA;
    }
    snprintf(ctx, sizeof ctx, "case '%s': volume '%s'", c->id, vol_name);
    if (!vp_ccl_dtype_ok(v->dtype)) {
        vp_error("%s: dtype %s: a label volume must be an integer type (u8, u16, i16, i32)", ctx, vp_dtype_name(v->dtype));
        return VP_ERR_DATA;
    }
    if (v->dims[3] > 1) {
        vp_error("%s: %llu channels: a label volume has one", ctx, (unsigned long long)v->dims[3]);
        return VP_ERR_DATA;
    }
    struct vp_lc_log log = {0, 0, NULL};
    if (spine_order && (check_spine_labels(c, ctx) || vp_spine_order(v, o->conn, o->reassign, &log, ctx))) {
        vp_lc_log_free(&log);
        return VP_ERR_DATA;
    }
    if (vp_label_clean(v, o, &log, ctx)) {
        vp_lc_log_free(&log);
        return VP_ERR_DATA;
    }
    for (int i = 0; i < log.n; i++) {
        const struct vp_lc_change *ch = &log.v[i];
        if (strcmp(ch->op, "spine-order")) /* spine-order printed its own lines */
            vp_info("%s: %s: %llu component%s, %llu voxels: %lld -> %lld", ctx, ch->op,
                    (unsigned long long)ch->components, ch->components == 1 ? "" : "s",
                    (unsigned long long)ch->voxels, (long long)ch->from, (long long)ch->to);
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    vp_lc_log_pack(&log, &pk);
    vp_case_meta_set_sbuf(c, "label_clean", &sb);
    msgpack_sbuffer_destroy(&sb);
    vp_lc_log_free(&log);

    if (components_name) {
        vp_ccl cc;
        if (vp_ccl_label(v, o->conn, &cc, ctx)) return VP_ERR_DATA;
        if (cc.ncomp > INT32_MAX) {
            vp_ccl_free(&cc);
            vp_error("%s: %u components do not fit an i32 volume", ctx, cc.ncomp);
            return VP_ERR_DATA;
        }
        uint64_t dims[4] = {v->dims[0], v->dims[1], v->dims[2], 1};
        vp_vol *ids = vp_vol_new(dims, VP_I32, v->affine);
        vp_ccl_ids(&cc, ids->data);
        vp_ccl_free(&cc);
        vp_case_add_vol(c, components_name, ids);
    }
    return 0;
}

static int step(vp_case *c, void *ctx) { return clean_case(c, ctx); }

int main(int argc, char **argv)
{
    vp_cli_parse(&cmd, argc, argv);
    static const int conns[] = {6, 18, 26};
    struct vp_lc_opts o = {conns[conn_choice], largest, 0, 0, reassign, fill_holes};
    parse_min_size(&o);
    if (!largest && !min_size_arg && !fill_holes && !spine_order && !components_name)
        vp_usage_error("nothing to do: give --largest, --min-size, --fill-holes, --spine-order or --components");
    if (reassign && !largest && !min_size_arg && !spine_order)
        vp_usage_error("--reassign needs --largest, --min-size or --spine-order");
    if (components_name && !strcmp(components_name, vol_name))
        vp_usage_error("--components '%s' would replace the label volume", components_name);

    return vp_filter_run(cmd.name, in_spec, out_spec, step, &o);
}
