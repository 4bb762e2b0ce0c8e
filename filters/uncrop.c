/* uncrop - put the volumes of a cropped case (the crop's own, or derived ones such as predictions)
 * back on the grid they were cut from, using the record crop left in meta. */
#include "cli.h"
#include "crop.h"
#include "endpoint.h"
#include "filter.h"
#include "frame.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *in_spec = "-";
static const char *out_spec = "-";
static struct vp_strlist vols;
static struct vp_strlist fills;

static const struct vp_opt opts[] = {
    {'i', "in", "ENDPOINT", VP_OPT_STR, &in_spec, "where to read the stream: -, FILE, @tcp://ADDR:PORT, >tcp://HOST:PORT", 0, 0, NULL},
    {'o', "out", "ENDPOINT", VP_OPT_STR, &out_spec, "where to write the stream: -, FILE, @tcp://ADDR:PORT, >tcp://HOST:PORT", 0, 0, NULL},
    {0, "vol", "NAME", VP_OPT_LIST, &vols, "volume to put back (repeatable; default: every volume)", 0, 0, NULL},
    {0, "fill", "[VOL=]V", VP_OPT_LIST, &fills, "value outside the crop box (default 0); VOL=V for one volume (repeatable)", 0, 0, NULL},
    {0, NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
};

static const struct vp_cmd cmd = {
    "uncrop", "put cropped volumes back on their original grid (undo crop)",
    "[options]",
    "Takes the most recent record of meta.crop (written by crop) and puts each volume (or each --vol)\n"
    "back on the original grid: the original dims and affine, the volume's voxels inside the crop box,\n"
    "--fill elsewhere; voxels of the box that lay outside the image (padding) are dropped. Any volume\n"
    "on the cropped grid works, also one added after the crop (a prediction, probabilities with\n"
    "channels); its dtype is kept. The record is removed from meta.crop (the key with its last\n"
    "record), so crop | uncrop gives back the original volumes and meta, plus provenance.\n"
    "\n"
    "Errors (exit 3, nothing written): a case without meta.crop, a malformed record, a missing --vol,\n"
    "a volume not on the cropped grid (dims = box size, affine = the original moved to the box\n"
    "corner), a fill value the volume's dtype cannot hold.",
    opts, 0, 0,
};

static double fill_for(const char *name)
{
    double plain = 0, named = 0;
    int have_named = 0;
    for (int i = 0; i < fills.n; i++) {
        const char *s = fills.v[i], *eq = strchr(s, '=');
        if (!eq) plain = strtod(s, NULL);
        else if ((size_t)(eq - s) == strlen(name) && !strncmp(s, name, (size_t)(eq - s))) { named = strtod(eq + 1, NULL); have_named = 1; }
    }
    return have_named ? named : plain;
}

static int wanted(const char *name)
{
    if (!vols.n) return 1;
    for (int i = 0; i < vols.n; i++)
        if (!strcmp(vols.v[i], name)) return 1;
    return 0;
}

static int uncrop_case(vp_case *c)
{
    for (int i = 0; i < vols.n; i++)
        if (!vp_case_vol(c, vols.v[i])) { vp_error("case '%s': no volume '%s' (--vol)", c->id, vols.v[i]); return VP_ERR_DATA; }
    struct vp_crop_rec rec;
    char err[256] = "";
    int r = vp_crop_meta_pop(c, &rec, err, sizeof err);
    if (r == 0) { vp_error("case '%s': no crop record in meta 'crop' (was the case cropped with crop?)", c->id); return VP_ERR_DATA; }
    if (r < 0) { vp_error("case '%s': meta 'crop': %s", c->id, err); return VP_ERR_DATA; }
    double expect[16];
    vp_affine_shift(rec.orig_affine, rec.box.lo, expect);
    for (int i = 0; i < c->nvols; i++) {
        if (!wanted(c->vol_names[i])) continue;
        const vp_vol *v = c->vols[i];
        for (int a = 0; a < 3; a++)
            if ((int64_t)v->dims[a] != rec.box.hi[a] - rec.box.lo[a]) {
                vp_error("case '%s': volume '%s': dims %llux%llux%llu are not the crop box size %lldx%lldx%lld", c->id,
                         c->vol_names[i], (unsigned long long)v->dims[0], (unsigned long long)v->dims[1],
                         (unsigned long long)v->dims[2], (long long)(rec.box.hi[0] - rec.box.lo[0]),
                         (long long)(rec.box.hi[1] - rec.box.lo[1]), (long long)(rec.box.hi[2] - rec.box.lo[2]));
                return VP_ERR_DATA;
            }
        for (int k = 0; k < 16; k++)
            if (fabs(v->affine[k] - expect[k]) > 1e-4 * (1 + fabs(expect[k]))) {
                vp_error("case '%s': volume '%s': field 'affine': entry %d is %.17g but the cropped grid has %.17g "
                         "(was it resampled after the crop?)", c->id, c->vol_names[i], k, v->affine[k], expect[k]);
                return VP_ERR_DATA;
            }
        unsigned char tmp[8];
        double fv = fill_for(c->vol_names[i]);
        if (vp_dtype_encode(v->dtype, fv, tmp)) {
            vp_error("case '%s': volume '%s': fill value %g does not fit dtype %s", c->id, c->vol_names[i], fv, vp_dtype_name(v->dtype));
            return VP_ERR_DATA;
        }
    }
    for (int i = 0; i < c->nvols; i++) {
        if (!wanted(c->vol_names[i])) continue;
        vp_vol *o = vp_vol_uncrop(c->vols[i], &rec.box, rec.orig_dims, rec.orig_affine, fill_for(c->vol_names[i]));
        vp_vol_free(&c->vols[i]);
        c->vols[i] = o;
    }
    return 0;
}

static int step(vp_case *c, void *ctx) { (void)ctx; return uncrop_case(c); }

int main(int argc, char **argv)
{
    vp_cli_parse(&cmd, argc, argv);
    for (int i = 0; i < fills.n; i++) {
        const char *s = fills.v[i], *eq = strchr(s, '='), *num = eq ? eq + 1 : s;
        char *end;
        double x = strtod(num, &end);
        if (eq == s || end == num || *end || !isfinite(x)) vp_usage_error("option '--fill': '%s' is not V or VOL=V", s);
    }
    return vp_filter_run(cmd.name, in_spec, out_spec, step, NULL);
}
