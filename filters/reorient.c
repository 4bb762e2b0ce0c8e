/* reorient - permute and flip the voxel axes of each volume to an axis code (RAS by default), exactly. */
#include "cli.h"
#include "endpoint.h"
#include "filter.h"
#include "frame.h"
#include "reorient.h"
#include "util.h"

#include <stdio.h>
#include <string.h>

static const char *in_spec = "-", *out_spec = "-";
static const char *code = "RAS";
static struct vp_strlist vol_list;

static const struct vp_opt opts[] = {
    {'i', "in", "ENDPOINT", VP_OPT_STR, &in_spec, "where to read the stream: -, FILE, @tcp://ADDR:PORT, >tcp://HOST:PORT", 0, 0, NULL},
    {'o', "out", "ENDPOINT", VP_OPT_STR, &out_spec, "where to write the stream: -, FILE, @tcp://ADDR:PORT, >tcp://HOST:PORT", 0, 0, NULL},
    {0, "to", "CODE", VP_OPT_STR, &code, "target axis code, e.g. RAS (default), LPS, PIR", 0, 0, NULL},
    {0, "vol", "NAME[,NAME]", VP_OPT_LIST, &vol_list, "reorient only these volumes (default: all); repeatable", 0, 0, NULL},
    {0, NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
};

static const struct vp_cmd cmd = {
    "reorient", "permute and flip voxel axes to an axis code, exactly",
    "[--to CODE] [options]",
    "An axis code names, for each voxel axis in order, the world direction it points to: one letter\n"
    "of R/L, one of A/P, one of S/I (RAS: x to the right, y to the front, z up; DICOM's patient\n"
    "frame is LPS). Each volume's current code is read from its affine (as nibabel's aff2axcodes and\n"
    "vol-info show it); its voxels are permuted and flipped, never interpolated, and the affine is\n"
    "changed so that every voxel keeps its world position: the same result as nibabel's\n"
    "img.as_reoriented(ornt_transform(io_orientation(affine), axcodes2ornt(CODE))). Channels follow\n"
    "their voxels. meta 'reorient' records {\"from\": {VOL: CODE}} for the volumes that changed, so\n"
    "`reorient --to CODE` goes back.\n"
    "\n"
    "Errors: a bad code is a usage error (2); a volume named by --vol that a case lacks, or an affine\n"
    "without a clear orientation, is bad input (3).",
    opts, 0, 0,
};

static int listed(const char *name)
{
    for (int i = 0; i < vol_list.n; i++) {
        const char *p = vol_list.v[i];
        size_t n = strlen(name);
        while (*p) {
            size_t k = strcspn(p, ",");
            if (k == n && !strncmp(p, name, n)) return 1;
            p += k + (p[k] == ',');
        }
    }
    return 0;
}

static int process(vp_case *c)
{
    for (int i = 0; i < vol_list.n; i++) {
        const char *p = vol_list.v[i];
        while (*p) {
            size_t k = strcspn(p, ",");
            char name[VP_MAX_NAME + 1];
            snprintf(name, sizeof name, "%.*s", (int)(k < VP_MAX_NAME ? k : VP_MAX_NAME), p);
            if (k && !vp_case_vol(c, name)) return vp_error("case '%s': no volume '%s' (named by --vol)", c->id, name);
            p += k + (p[k] == ',');
        }
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int nchanged = 0;
    char from[VP_MAX_VOLS][4];
    int which[VP_MAX_VOLS];
    for (int i = 0; i < c->nvols; i++) {
        if (vol_list.n && !listed(c->vol_names[i])) continue;
        vp_affine_axcodes(c->vols[i]->affine, from[nchanged]);
        if (!strcmp(from[nchanged], code)) continue;
        char ctx[VP_MAX_ID + VP_MAX_NAME + 32];
        snprintf(ctx, sizeof ctx, "case '%s': volume '%s'", c->id, c->vol_names[i]);
        vp_vol *r = vp_reorient(c->vols[i], code, ctx);
        if (!r) { msgpack_sbuffer_destroy(&sb); return -1; }
        vp_debug("%s: %s -> %s", ctx, from[nchanged], code);
        vp_vol_free(&c->vols[i]);
        c->vols[i] = r;
        which[nchanged++] = i;
    }
    msgpack_pack_map(&pk, 1);
    vp_pack_cstr(&pk, "from");
    msgpack_pack_map(&pk, (size_t)nchanged);
    for (int k = 0; k < nchanged; k++) {
        vp_pack_cstr(&pk, c->vol_names[which[k]]);
        vp_pack_cstr(&pk, from[k]);
    }
    if (nchanged) vp_case_meta_set_sbuf(c, "reorient", &sb);
    msgpack_sbuffer_destroy(&sb);
    return 0;
}

static int step(vp_case *c, void *ctx) { (void)ctx; return process(c) ? VP_ERR_DATA : 0; }

int main(int argc, char **argv)
{
    vp_cli_parse(&cmd, argc, argv);
    if (vp_axcode_valid(code))
        vp_usage_error("option '--to': '%s' is not an axis code (one letter of R/L, A/P and S/I each, e.g. RAS, LPS, PIR)", code);
    return vp_filter_run(cmd.name, in_spec, out_spec, step, NULL);
}
