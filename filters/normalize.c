/* normalize - intensity normalisation to f32: MONAI ScaleIntensityRange, NormalizeIntensity,
 * GaussianSmooth, ScaleIntensity; nnU-Net CTNormalization; MONAI Label's segmentation chain. */
#include "cli.h"
#include "endpoint.h"
#include "filter.h"
#include "frame.h"
#include "gauss.h"
#include "normalize.h"
#include "optlist.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *in_spec = "-";
static const char *out_spec = "-";
static const char *vol_name = "image";
static const char *range_s, *ct_stats_s, *gauss_s, *minmax_s, *chain_s;
static int clip, zscore, nonzero, channel_wise, ct;
static const char *fg_name = "label";
static int kernel = 0;

static const char *const kernels[] = {"monai", "scipy", NULL};

static const struct vp_opt opts[] = {
    {'i', "in", "ENDPOINT", VP_OPT_STR, &in_spec, "where to read the stream: -, FILE, @tcp://ADDR:PORT, >tcp://HOST:PORT", 0, 0, NULL},
    {'o', "out", "ENDPOINT", VP_OPT_STR, &out_spec, "where to write the stream: -, FILE, @tcp://ADDR:PORT, >tcp://HOST:PORT", 0, 0, NULL},
    {0, "vol", "NAME", VP_OPT_STR, &vol_name, "the volume to normalise (default: image); it becomes f32", 0, 0, NULL},
    {0, "range", "A0,A1[,B0,B1]", VP_OPT_STR, &range_s, "map A0..A1 linearly to B0..B1 (default 0,1): MONAI ScaleIntensityRange", 0, 0, NULL},
    {0, "clip", NULL, VP_OPT_FLAG, &clip, "with --range: clip the result to B0..B1 (a CT window)", 0, 0, NULL},
    {0, "zscore", NULL, VP_OPT_FLAG, &zscore, "(x - mean) / std: MONAI NormalizeIntensity", 0, 0, NULL},
    {0, "nonzero", NULL, VP_OPT_FLAG, &nonzero, "with --zscore: statistics over and changes to non-zero voxels only", 0, 0, NULL},
    {0, "channel-wise", NULL, VP_OPT_FLAG, &channel_wise, "with --zscore: statistics per channel", 0, 0, NULL},
    {0, "ct", NULL, VP_OPT_FLAG, &ct, "nnU-Net CT normalisation with this case's foreground statistics", 0, 0, NULL},
    {0, "fg", "NAME", VP_OPT_STR, &fg_name, "with --ct: the foreground is this volume > 0 (default: label)", 0, 0, NULL},
    {0, "ct-stats", "P0.5,P99.5,MEAN,STD", VP_OPT_STR, &ct_stats_s, "nnU-Net CT normalisation with given (dataset) statistics", 0, 0, NULL},
    {0, "gaussian", "SIGMA[,S,S][mm]", VP_OPT_STR, &gauss_s, "Gaussian smoothing, sigma in voxels (or mm with the suffix mm)", 0, 0, NULL},
    {0, "kernel", "NAME", VP_OPT_CHOICE, &kernel, "Gaussian kernel and boundary of this peer", 0, 0, kernels},
    {0, "minmax", "B0,B1", VP_OPT_STR, &minmax_s, "map min..max of the volume to B0..B1: MONAI ScaleIntensity", 0, 0, NULL},
    {0, "chain", "NAME", VP_OPT_STR, &chain_s, "a preprocessing chain: monailabel", 0, 0, NULL},
    {0, NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
};

static const struct vp_cmd cmd = {
    "normalize", "intensity normalisation (MONAI / nnU-Net) of one volume, to f32",
    "[options]",
    "Give one mode: --range, --zscore, --ct, --ct-stats, --gaussian, --minmax or --chain. The volume\n"
    "--vol becomes f32 (channels, dims and affine kept); other volumes pass unchanged. meta.normalize\n"
    "gets a record {\"vol\", \"mode\", ...} of the statistics used. Arithmetic per voxel is single\n"
    "precision in the peers' order, statistics double precision; NaN voxels are left out of the\n"
    "statistics. The output is the same for any --threads.\n"
    "\n"
    "  --range A0,A1[,B0,B1] [--clip]  MONAI ScaleIntensityRange(a_min, a_max, b_min, b_max, clip):\n"
    "       (x - A0) / (A1 - A0) * (B1 - B0) + B0, then clipped to B0..B1 with --clip.\n"
    "  --zscore [--nonzero] [--channel-wise]  MONAI NormalizeIntensity: mean and population std\n"
    "       (ddof 0) over all voxels, or the non-zero ones (the others stay 0); std 0 divides by 1.\n"
    "  --ct [--fg NAME]  nnU-Net CTNormalization with statistics of this case's foreground (voxels\n"
    "       where NAME > 0): 0.5 and 99.5 percentiles (numpy 'linear' interpolation, as\n"
    "       np.percentile), mean and std (ddof 0), over all foreground voxels. nnU-Net takes them\n"
    "       from its dataset fingerprint (10000 random foreground voxels per training case, pooled);\n"
    "       for dataset values use --ct-stats.\n"
    "  --ct-stats P0.5,P99.5,MEAN,STD  clip to P0.5..P99.5, subtract MEAN, divide by max(STD, 1e-8)\n"
    "       (nnU-Net's percentile_00_5, percentile_99_5, mean, std of the plans' intensity properties).\n"
    "  --gaussian SIGMA [--kernel monai|scipy]  separable Gaussian, per axis sigma allowed, in voxels\n"
    "       or in mm (suffix mm, divided by the spacing). monai (default): MONAI GaussianSmooth (erf\n"
    "       kernel, radius int(max(4 sigma, 0.5) + 0.5), zero padding); scipy:\n"
    "       scipy.ndimage.gaussian_filter (sampled kernel, truncate 4.0, mode reflect).\n"
    "  --minmax B0,B1  MONAI ScaleIntensity(minv=B0, maxv=B1): min..max to B0..B1.\n"
    "  --chain monailabel  MONAI Label's segmentation preprocessing after resampling: --zscore\n"
    "       --nonzero, then --gaussian 0.4 (monai kernel), then --minmax -1,1.\n"
    "\n"
    "Errors: a missing --vol or --fg volume, a foreground on another grid, no foreground voxel, NaN in\n"
    "the foreground exit 3; bad parameters (A0 == A1, P0.5 > P99.5, STD <= 0, sigma < 0 or above\n"
    "1000 voxels, two modes) exit 2. Nothing is written on error.",
    opts, 0, 0,
};

enum mode { M_RANGE, M_ZSCORE, M_CT, M_CTSTATS, M_GAUSS, M_MINMAX, M_CHAIN };
static const char *const mode_names[] = {"range", "zscore", "ct", "ct-stats", "gaussian", "minmax", "monailabel"};

static const char *const mm_unit[] = {"mm", NULL};

/* "a,b,..." with exactly n numbers (or between nmin and n); returns the count */
static int numlist(const char *opt, const char *s, int nmin, int n, double *out)
{
    int k = 0;
    const char *p = s;
    for (;;) {
        char *end;
        double x = strtod(p, &end);
        if (end == p || !isfinite(x) || k >= n) break;
        out[k++] = x;
        p = end;
        if (*p == ',') { p++; continue; }
        if (!*p && k >= nmin) return k;
        break;
    }
    vp_usage_error("option '--%s': '%s' is not a list of %d%s numbers", opt, s, nmin, n > nmin ? " or more" : "");
}

static struct {
    enum mode mode;
    double range[4];
    struct vp_elem ctstats;
    double sigma[3];
    int sigma_mm;
    double minmax[2];
} P;

static void parse_options(void)
{
    int modes = (range_s != NULL) + zscore + ct + (ct_stats_s != NULL) + (gauss_s != NULL) + (minmax_s != NULL) + (chain_s != NULL);
    if (modes != 1) vp_usage_error("give exactly one mode: --range, --zscore, --ct, --ct-stats, --gaussian, --minmax, --chain");
    if (clip && !range_s) vp_usage_error("--clip goes with --range");
    if ((nonzero || channel_wise) && !zscore) vp_usage_error("--nonzero and --channel-wise go with --zscore");
    if (range_s) {
        P.mode = M_RANGE;
        P.range[2] = 0, P.range[3] = 1;
        int k = numlist("range", range_s, 2, 4, P.range);
        if (k == 3) vp_usage_error("option '--range': give A0,A1 or A0,A1,B0,B1");
        if (P.range[0] == P.range[1]) vp_usage_error("option '--range': A0 and A1 are equal (%g): nothing to scale", P.range[0]);
        if (clip && P.range[2] > P.range[3]) vp_usage_error("option '--range': with --clip B0 must not exceed B1");
    }
    if (zscore) P.mode = M_ZSCORE;
    if (ct) P.mode = M_CT;
    if (ct_stats_s) {
        P.mode = M_CTSTATS;
        double s[4];
        numlist("ct-stats", ct_stats_s, 4, 4, s);
        if (s[0] > s[1]) vp_usage_error("option '--ct-stats': P0.5 (%g) is above P99.5 (%g)", s[0], s[1]);
        if (s[3] <= 0) vp_usage_error("option '--ct-stats': STD must be > 0, not %g", s[3]);
        P.ctstats = (struct vp_elem){.kind = VP_ELEM_CT, .lo = s[0], .hi = s[1], .sub = s[2], .div = s[3]};
    }
    if (gauss_s) {
        P.mode = M_GAUSS;
        int unit;
        if (vp_parse_dlist(gauss_s, 3, P.sigma, mm_unit, &unit))
            vp_usage_error("option '--gaussian': '%s' is not SIGMA or SX,SY,SZ (optionally with mm)", gauss_s);
        P.sigma_mm = unit == 0;
        for (int a = 0; a < 3; a++)
            if (P.sigma[a] < 0 || (!P.sigma_mm && P.sigma[a] > VP_GAUSS_MAX_SIGMA))
                vp_usage_error("option '--gaussian': sigma %g is outside [0, %g] voxels", P.sigma[a], VP_GAUSS_MAX_SIGMA);
    } else if (kernel) vp_usage_error("--kernel goes with --gaussian");
    if (minmax_s) {
        P.mode = M_MINMAX;
        numlist("minmax", minmax_s, 2, 2, P.minmax);
    }
    if (chain_s) {
        if (strcmp(chain_s, "monailabel")) vp_usage_error("option '--chain': unknown chain '%s' (known: monailabel)", chain_s);
        P.mode = M_CHAIN;
    }
}

/* --- meta record --- */
static void pack_kd(msgpack_packer *pk, const char *k, double v) { vp_pack_cstr(pk, k); msgpack_pack_double(pk, v); }

static void add_record(vp_case *c, const char *mode, const char *const *keys, const double *vals, int n)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    int have = vp_case_meta_parse(c, "normalize", &u) == 0 && u.data.type == MSGPACK_OBJECT_ARRAY;
    uint32_t old = have ? u.data.via.array.size : 0;
    msgpack_pack_array(&pk, old + 1);
    for (uint32_t i = 0; i < old; i++) msgpack_pack_object(&pk, u.data.via.array.ptr[i]);
    msgpack_pack_map(&pk, 2 + (size_t)n);
    vp_pack_cstr(&pk, "vol");
    vp_pack_cstr(&pk, vol_name);
    vp_pack_cstr(&pk, "mode");
    vp_pack_cstr(&pk, mode);
    for (int i = 0; i < n; i++) pack_kd(&pk, keys[i], vals[i]);
    vp_case_meta_set_sbuf(c, "normalize", &sb);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
}

/* z-score of f (f32) in place, from the statistics of src; returns mean/std of the last channel */
static void do_zscore(const vp_vol *src, vp_vol *f, int nz_only, int per_channel, double *mean, double *std)
{
    uint64_t n = vp_vol_nvox(src), parts = per_channel ? src->dims[3] : 1, per = n / parts;
    for (uint64_t p = 0; p < parts; p++) {
        uint64_t cnt;
        vp_moments(src, p * per, per, nz_only, mean, std, &cnt);
        if (!cnt) continue; /* MONAI: nothing non-zero, image unchanged */
        struct vp_elem op = {.kind = VP_ELEM_SUBDIV, .sub = *mean, .div = *std == 0 ? 1.0 : *std, .nonzero = nz_only};
        vp_elem_apply(f, f, p * per, per, &op);
    }
}

static void do_minmax(vp_vol *f, double b0, double b1, double *mn, double *mx)
{
    uint64_t n = vp_vol_nvox(f);
    vp_minmax(f, 0, n, mn, mx);
    struct vp_elem op = {.kind = VP_ELEM_MINMAX, .a0 = *mn, .a1 = *mx, .b0 = b0, .b1 = b1};
    vp_elem_apply(f, f, 0, n, &op);
}

static int norm_case(vp_case *c)
{
    vp_vol *v = vp_case_vol(c, vol_name);
    if (!v) { vp_error("case '%s': no volume '%s' (--vol)", c->id, vol_name); return VP_ERR_DATA; }
    vp_vol *f = NULL;
    uint64_t n = vp_vol_nvox(v);
    switch (P.mode) {
    case M_RANGE: {
        struct vp_elem op = {.kind = VP_ELEM_RANGE, .a0 = P.range[0], .a1 = P.range[1], .b0 = P.range[2], .b1 = P.range[3], .has_b = 1, .clip = clip};
        f = vp_vol_new_f32(v);
        vp_elem_apply(v, f, 0, n, &op);
        const char *k[] = {"a_min", "a_max", "b_min", "b_max", "clip"};
        double x[] = {P.range[0], P.range[1], P.range[2], P.range[3], clip};
        add_record(c, mode_names[P.mode], k, x, 5);
        break;
    }
    case M_ZSCORE: {
        double mean = 0, std = 0;
        f = vp_vol_to_f32(v);
        do_zscore(v, f, nonzero, channel_wise, &mean, &std);
        const char *k[] = {"mean", "std", "nonzero", "channel_wise"};
        double x[] = {mean, std, nonzero, channel_wise};
        add_record(c, mode_names[P.mode], k, x, channel_wise && v->dims[3] > 1 ? 0 : 4);
        break;
    }
    case M_CT:
    case M_CTSTATS: {
        struct vp_elem op = P.ctstats;
        if (P.mode == M_CT) {
            const vp_vol *m = vp_case_vol(c, fg_name);
            if (!m) { vp_error("case '%s': no volume '%s' (--fg) for the foreground statistics", c->id, fg_name); return VP_ERR_DATA; }
            int same = !memcmp(v->dims, m->dims, sizeof v->dims);
            for (int i = 0; i < 16; i++) same &= fabs(v->affine[i] - m->affine[i]) <= 1e-4 * (1 + fabs(v->affine[i]));
            if (v->dims[3] != 1 || m->dims[3] != 1 || !same) {
                vp_error("case '%s': volumes '%s' and '%s' (--fg) must have one channel and share one grid (dims and affine)", c->id, vol_name, fg_name);
                return VP_ERR_DATA;
            }
            struct vp_ct_stats s;
            int64_t cnt = vp_ct_stats(v, m, &s);
            if (cnt < 0) { vp_error("case '%s': volume '%s' has NaN voxels in the foreground", c->id, vol_name); return VP_ERR_DATA; }
            if (cnt == 0) { vp_error("case '%s': volume '%s' (--fg) has no voxel > 0: no foreground statistics", c->id, fg_name); return VP_ERR_DATA; }
            vp_debug("case '%s': foreground %lld voxels: p0.5 %.17g p99.5 %.17g mean %.17g std %.17g", c->id, (long long)cnt,
                     s.p00_5, s.p99_5, s.mean, s.std);
            op = (struct vp_elem){.kind = VP_ELEM_CT, .lo = s.p00_5, .hi = s.p99_5, .sub = s.mean, .div = s.std};
        }
        f = vp_vol_new_f32(v);
        vp_elem_apply(v, f, 0, n, &op);
        const char *k[] = {"percentile_00_5", "percentile_99_5", "mean", "std"};
        double x[] = {op.lo, op.hi, op.sub, op.div};
        add_record(c, mode_names[P.mode], k, x, 4);
        break;
    }
    case M_GAUSS: {
        double sig[3], sp[3];
        vp_vol_spacing(v, sp);
        for (int a = 0; a < 3; a++) {
            sig[a] = P.sigma_mm ? P.sigma[a] / sp[a] : P.sigma[a];
            if (sig[a] > VP_GAUSS_MAX_SIGMA) {
                vp_error("case '%s': volume '%s': sigma %g mm is %g voxels on axis %d, above %g", c->id, vol_name, P.sigma[a], sig[a], a, VP_GAUSS_MAX_SIGMA);
                return VP_ERR_USAGE;
            }
        }
        f = vp_vol_to_f32(v);
        vp_gauss_smooth(f, sig, (enum vp_gauss_kind)kernel);
        const char *k[] = {"sigma_x", "sigma_y", "sigma_z"};
        add_record(c, kernel ? "gaussian-scipy" : "gaussian-monai", k, sig, 3);
        break;
    }
    case M_MINMAX: {
        double mn, mx;
        f = vp_vol_to_f32(v);
        do_minmax(f, P.minmax[0], P.minmax[1], &mn, &mx);
        const char *k[] = {"min", "max", "b_min", "b_max"};
        double x[] = {mn, mx, P.minmax[0], P.minmax[1]};
        add_record(c, mode_names[P.mode], k, x, 4);
        break;
    }
    case M_CHAIN: {
        double mean = 0, std = 0, mn, mx, sig[3] = {0.4, 0.4, 0.4};
        f = vp_vol_to_f32(v);
        do_zscore(v, f, 1, 0, &mean, &std);
        vp_gauss_smooth(f, sig, VP_GAUSS_MONAI);
        do_minmax(f, -1, 1, &mn, &mx);
        const char *k[] = {"mean", "std", "sigma", "min", "max"};
        double x[] = {mean, std, 0.4, mn, mx};
        add_record(c, mode_names[P.mode], k, x, 5);
        break;
    }
    }
    f->has_channels = v->has_channels;
    vp_case_add_vol(c, vol_name, f);
    return 0;
}

static int step(vp_case *c, void *ctx) { (void)ctx; return norm_case(c); }

int main(int argc, char **argv)
{
    vp_cli_parse(&cmd, argc, argv);
    parse_options();
    return vp_filter_run(cmd.name, in_spec, out_spec, step, NULL);
}
