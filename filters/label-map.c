/* label-map - remap the values of a label volume (a preset or a map file) and name the classes. */
#include "cli.h"
#include "endpoint.h"
#include "filter.h"
#include "frame.h"
#include "labels.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

static const char *in_spec = "-";
static const char *out_spec = "-";
static const char *preset = NULL;
static const char *map_path = NULL;
static const char *vol_name = "label";

static const struct vp_opt opts[] = {
    {'i', "in", "ENDPOINT", VP_OPT_STR, &in_spec, "where to read the stream: -, FILE, @tcp://ADDR:PORT, >tcp://HOST:PORT", 0, 0, NULL},
    {'o', "out", "ENDPOINT", VP_OPT_STR, &out_spec, "where to write the stream: -, FILE, @tcp://ADDR:PORT, >tcp://HOST:PORT", 0, 0, NULL},
    {0, "preset", "NAME", VP_OPT_STR, &preset, "built-in map: spine25 or totalseg-v2", 0, 0, NULL},
    {0, "map", "FILE", VP_OPT_STR, &map_path, "map file with lines 'FROM TO [NAME]'", 0, 0, NULL},
    {0, "vol", "NAME", VP_OPT_STR, &vol_name, "the label volume to remap (default: label)", 0, 0, NULL},
    {0, NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
};

static const struct vp_cmd cmd = {
    "label-map", "remap the values of a label volume and attach class names",
    "[options]",
    "Exactly one of --preset and --map is required. The volume named by --vol (u8, u16, i16 or i32)\n"
    "is remapped voxel by voxel; a u8 or i16 volume is widened (u16, else i16, else i32) when the map\n"
    "can produce values it cannot hold. meta.labels becomes the map's name table {\"ID\": NAME, ...}\n"
    "(empty when the map names nothing); other volumes and meta pass unchanged. A case without the\n"
    "volume passes through with a warning.\n"
    "\n"
    "Presets:\n"
    "  spine25      TotalSegmentator v2 \"total\" ids -> C1..C7 = 1..7, T1..T12 = 8..19,\n"
    "               L1..L5 = 20..24, sacrum and vertebrae_S1 = 25, everything else 0\n"
    "  totalseg-v2  identity on 0..117 (other values 0), with the v2 class names\n"
    "\n"
    "Map file: one 'FROM TO [NAME]' per line; FROM is a value 0..65535 or a TotalSegmentator v2\n"
    "class name, TO an integer, NAME names the output TO. '#' starts a comment. Unmapped values\n"
    "become 0, or N with a line '* N', or keep their value with '* KEEP'. A bad map file or preset\n"
    "exits 2.",
    opts, 0, 0,
};

static vp_labelmap map; /* 256 KiB: static */

struct mapping {
    const vp_labelmap *map;
    const msgpack_sbuffer *names;
};

static int step(vp_case *c, void *ctx)
{
    const struct mapping *m = ctx;
    vp_vol *v = vp_case_vol(c, vol_name);
    if (!v) {
        vp_warn("case '%s': no volume '%s'; passed through unchanged", c->id, vol_name);
        return 0;
    }
    char where[VP_MAX_ID + VP_MAX_NAME + 32];
    snprintf(where, sizeof where, "case '%s': volume '%s'", c->id, vol_name);
    if (vp_labelmap_apply(m->map, v, where)) return VP_ERR_DATA;
    vp_case_meta_set_sbuf(c, "labels", m->names);
    return 0;
}

int main(int argc, char **argv)
{
    vp_cli_parse(&cmd, argc, argv);
    if (!preset == !map_path) vp_usage_error("give exactly one of --preset and --map");
    /* an unreadable map file is a missing input (1); a malformed one a bad argument (2) */
    if (map_path && access(map_path, R_OK)) vp_die(VP_ERR_RUNTIME, "--map '%s': %s", map_path, strerror(errno));
    if (preset ? vp_labelmap_preset(preset, &map) : vp_labelmap_load(map_path, &map)) return VP_ERR_USAGE;

    msgpack_sbuffer names;
    msgpack_sbuffer_init(&names);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &names, msgpack_sbuffer_write);
    vp_labelmap_pack_names(&map, &pk);

    struct mapping m = {&map, &names};
    int rc = vp_filter_run(cmd.name, in_spec, out_spec, step, &m);
    msgpack_sbuffer_destroy(&names);
    vp_labelmap_clear(&map);
    return rc;
}
