/* vol-read - read NIfTI files (or TotalSegmentator case directories) into a voxpipe stream. */
#include "cli.h"
#include "endpoint.h"
#include "frame.h"
#include "labels.h"
#include "nifti.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *out_spec = "-", *id_opt, *labels_opt;
static struct vp_strlist label_files;
static const char *image_name = "image", *label_name = "label";

static const struct vp_opt opts[] = {
    {'o', "out", "ENDPOINT", VP_OPT_STR, &out_spec, "where to write the stream (default -)", 0, 0, NULL},
    {'l', "label", "FILE", VP_OPT_LIST, &label_files, "label volume for the case (repeatable: one per input, in order)", 0, 0, NULL},
    {0, "id", "ID", VP_OPT_STR, &id_opt, "case id (one input only; default: the file or directory name)", 0, 0, NULL},
    {0, "labels", "PRESET|FILE", VP_OPT_STR, &labels_opt, "label map applied to label volumes (spine25, totalseg-v2, or a map file)", 0, 0, NULL},
    {0, "image-name", "NAME", VP_OPT_STR, &image_name, "name of the image volume (default image)", 0, 0, NULL},
    {0, "label-name", "NAME", VP_OPT_STR, &label_name, "name of the label volume (default label)", 0, 0, NULL},
    {0, NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
};

static const struct vp_cmd cmd = {
    "vol-read", "read NIfTI files or TotalSegmentator case directories into a voxpipe stream",
    "[options] INPUT...",
    "Each INPUT is a NIfTI-1/2 file (.nii or .nii.gz), giving one case whose id is the file name\n"
    "without extension, or a TotalSegmentator case directory (ct.nii.gz + segmentations/*.nii.gz),\n"
    "giving one case whose label volume merges the per-class masks into TotalSegmentator v2 ids\n"
    "(meta 'labels' names them; with --labels spine25 they become the 25 spine classes).\n"
    "The affine is the one nibabel's get_best_affine() gives: sform, else qform, else the base affine.",
    opts, 1, -1,
};

static vp_labelmap *lmap; /* from --labels, or NULL */

static char *case_id_from(const char *path)
{
    const char *b = strrchr(path, '/');
    char *s = vp_strdup(b ? b + 1 : path);
    size_t n = strlen(s);
    while (n > 1 && s[n - 1] == '/') s[--n] = 0;
    const char *exts[] = {".nii.gz", ".nii", NULL};
    for (int i = 0; exts[i]; i++) {
        size_t m = strlen(exts[i]);
        if (n > m && !strcmp(s + n - m, exts[i])) { s[n - m] = 0; break; }
    }
    return s;
}

static void pack_nifti_info(msgpack_packer *pk, const char *path, const struct vp_nifti_info *ni)
{
    msgpack_pack_map(pk, 6);
    vp_pack_cstr(pk, "path"); vp_pack_cstr(pk, path);
    vp_pack_cstr(pk, "version"); msgpack_pack_int(pk, ni->version);
    vp_pack_cstr(pk, "datatype"); msgpack_pack_int(pk, ni->datatype);
    vp_pack_cstr(pk, "qform_code"); msgpack_pack_int(pk, ni->qform_code);
    vp_pack_cstr(pk, "sform_code"); msgpack_pack_int(pk, ni->sform_code);
    vp_pack_cstr(pk, "descrip"); vp_pack_cstr(pk, ni->descrip);
}

/* label and image must share a grid: same dims and affines equal within 1e-4 mm */
static int same_grid(const vp_vol *a, const vp_vol *b)
{
    for (int i = 0; i < 3; i++)
        if (a->dims[i] != b->dims[i]) return 0;
    for (int i = 0; i < 12; i++)
        if (fabs(a->affine[i] - b->affine[i]) > 1e-4 * (1 + fabs(a->affine[i]))) return 0;
    return 1;
}

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Merge segmentations/NAME.nii.gz masks into one u8 volume of TotalSegmentator v2 ids. */
static int read_totalseg_dir(const char *dir, const vp_vol *image, vp_vol **out)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/segmentations", dir);
    DIR *d = opendir(path);
    if (!d) { vp_error("'%s': cannot open: %s", path, strerror(errno)); return -VP_ERR_RUNTIME; }
    char **names = NULL;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l > 7 && !strcmp(e->d_name + l - 7, ".nii.gz")) {
            names = vp_realloc(names, (size_t)(n + 1) * sizeof *names);
            names[n++] = vp_strdup(e->d_name);
        }
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    if (!n) { vp_error("'%s': no .nii.gz masks", path); free(names); return -VP_ERR_DATA; }
    /* ascending v2 id order: where masks overlap the higher id wins, deterministically */
    int *ids = vp_calloc((size_t)n, sizeof *ids);
    for (int i = 0; i < n; i++) {
        char cls[4096];
        snprintf(cls, sizeof cls, "%.*s", (int)(strlen(names[i]) - 7), names[i]);
        ids[i] = vp_totalseg_v2_id(cls);
        if (ids[i] < 0) vp_warn("'%s/%s': not a TotalSegmentator v2 class; skipped", path, names[i]);
    }
    vp_vol *lab = vp_vol_new(image->dims, VP_U8, image->affine);
    int rc = 0;
    for (int id = 1; id <= VP_TOTALSEG_V2_N && !rc; id++)
        for (int i = 0; i < n && !rc; i++) {
            if (ids[i] != id) continue;
            char mp[8192];
            snprintf(mp, sizeof mp, "%s/%s", path, names[i]);
            vp_vol *m;
            if ((rc = vp_nifti_read(mp, &m, NULL))) break;
            if (!same_grid(m, image) || vp_vol_nvox(m) != vp_vol_nvox(lab)) {
                vp_error("'%s': mask grid differs from the image grid", mp);
                rc = -VP_ERR_DATA;
            } else {
                uint64_t nv = vp_vol_nvox(lab);
                uint8_t *L = lab->data;
                for (uint64_t k = 0; k < nv; k++)
                    if (vp_vol_get(m, k) != 0) L[k] = (uint8_t)id;
            }
            vp_vol_free(&m);
        }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    free(ids);
    if (rc) { vp_vol_free(&lab); return rc; }
    *out = lab;
    return 0;
}

static int read_case(const char *input, const char *label_file, vp_case **out)
{
    int dir = is_dir(input);
    char img_path[4096];
    if (dir) snprintf(img_path, sizeof img_path, "%s/ct.nii.gz", input);
    else snprintf(img_path, sizeof img_path, "%s", input);
    char *id = id_opt ? vp_strdup(id_opt) : case_id_from(input);
    vp_case *c = vp_case_new(id);
    free(id);
    struct vp_nifti_info ii, li;
    vp_vol *img, *lab = NULL;
    int rc = vp_nifti_read(img_path, &img, &ii);
    if (rc) { vp_case_free(&c); return rc; }
    vp_case_add_vol(c, image_name, img);
    const char *lab_src = NULL;
    if (dir) {
        if ((rc = read_totalseg_dir(input, img, &lab))) { vp_case_free(&c); return rc; }
        lab_src = input;
    } else if (label_file) {
        if ((rc = vp_nifti_read(label_file, &lab, &li))) { vp_case_free(&c); return rc; }
        if (!same_grid(lab, img)) {
            vp_error("'%s': label grid (dims or affine) differs from the image '%s'", label_file, img_path);
            vp_vol_free(&lab);
            vp_case_free(&c);
            return -VP_ERR_DATA;
        }
        lab_src = label_file;
    }
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, lab && !dir ? 2 : 1);
    vp_pack_cstr(&pk, image_name);
    pack_nifti_info(&pk, img_path, &ii);
    if (lab && !dir) { vp_pack_cstr(&pk, label_name); pack_nifti_info(&pk, label_file, &li); }
    vp_case_meta_set_sbuf(c, "nifti", &sb);
    if (lab) {
        char ctx[512];
        snprintf(ctx, sizeof ctx, "'%s'", lab_src);
        if (lmap && vp_labelmap_apply(lmap, lab, ctx)) { msgpack_sbuffer_destroy(&sb); vp_vol_free(&lab); vp_case_free(&c); return -VP_ERR_DATA; }
        msgpack_sbuffer_clear(&sb);
        if (lmap) vp_labelmap_pack_names(lmap, &pk);
        else if (dir) vp_labels_pack_totalseg_v2(&pk);
        if (sb.size) vp_case_meta_set_sbuf(c, "labels", &sb);
        vp_case_add_vol(c, label_name, lab);
    }
    msgpack_sbuffer_destroy(&sb);
    vp_case_add_provenance(c, cmd.name);
    *out = c;
    return 0;
}

/* NIfTI that needs no conversion goes from the file to the output piece by piece, never whole in
 * memory: through the kernel (sendfile) for .nii, decoded on a second thread while the previous
 * piece is written for .nii.gz. Returns 1 when done (*err set on failure), 0 when the case must be
 * read whole. */
static int stream_case(const char *input, const char *label_file, vp_out *out, int *err)
{
    *err = 0;
    if (is_dir(input) || lmap) return 0;
    const char *paths[2] = {input, label_file};
    vp_vol *hdr[2] = {NULL, NULL};
    struct vp_nifti_info ni[2];
    uint64_t off[2] = {0, 0};
    int n = label_file ? 2 : 1, ok = 1;
    for (int i = 0; i < n && ok; i++) {
        int r = vp_nifti_probe(paths[i], &hdr[i], &ni[i], &off[i]);
        if (r < 0) { *err = -r; ok = 0; }
        else if (r == 0) ok = 0;
        else {
            uint64_t nb;
            vp_vol_nbytes(hdr[i]->dims, hdr[i]->dtype, &nb);
            if (nb > vp_frame_bin_limit) ok = 0; /* > 4 GiB: the chunked path reads it whole */
        }
    }
    if (ok && n == 2 && !same_grid(hdr[1], hdr[0])) {
        vp_error("'%s': label grid (dims or affine) differs from the image '%s'", label_file, input);
        *err = VP_ERR_DATA;
        ok = 0;
    }
    if (!ok) { vp_vol_free(&hdr[0]); vp_vol_free(&hdr[1]); return *err ? 1 : 0; }

    char *id = id_opt ? vp_strdup(id_opt) : case_id_from(input);
    vp_case *c = vp_case_new(id);
    free(id);
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, (size_t)n);
    vp_pack_cstr(&pk, image_name);
    pack_nifti_info(&pk, input, &ni[0]);
    if (n == 2) { vp_pack_cstr(&pk, label_name); pack_nifti_info(&pk, label_file, &ni[1]); }
    vp_case_meta_set_sbuf(c, "nifti", &sb);
    msgpack_sbuffer_destroy(&sb);
    vp_case_add_provenance(c, cmd.name);
    int rc = vp_case_write_head(out, c, n);
    for (int i = 0; i < n && !rc; i++) {
        struct vp_payload_writer pw;
        rc = vp_case_write_vol_head(out, i ? label_name : image_name, hdr[i], &pw);
        if (rc) break;
        int cr = vp_nifti_copy_voxels(paths[i], off[i], pw.left, out);
        if (cr) { *err = -cr; rc = -1; }
    }
    if (!rc) rc = vp_out_end_frame(out);
    vp_case_free(&c);
    vp_vol_free(&hdr[0]);
    vp_vol_free(&hdr[1]);
    if (rc && !*err) *err = VP_ERR_RUNTIME;
    return 1;
}

int main(int argc, char **argv)
{
    int first = vp_cli_parse(&cmd, argc, argv);
    int n = argc - first;
    if (id_opt && n > 1) vp_usage_error("--id needs exactly one input");
    if (label_files.n && label_files.n != n) vp_usage_error("%d --label file(s) for %d input(s): give one per input", label_files.n, n);
    if (labels_opt) {
        lmap = vp_malloc(sizeof *lmap);
        int preset = 0;
        for (int i = 0; vp_labelmap_preset_names[i]; i++) preset |= !strcmp(vp_labelmap_preset_names[i], labels_opt);
        if (preset ? vp_labelmap_preset(labels_opt, lmap) : vp_labelmap_load(labels_opt, lmap)) return VP_ERR_USAGE;
    }
    vp_out *out = vp_out_open(out_spec, 0);
    if (!out) return VP_ERR_RUNTIME;
    for (int i = 0; i < n; i++) {
        const char *lf = label_files.n ? label_files.v[i] : NULL;
        int err;
        if (stream_case(argv[first + i], lf, out, &err)) {
            if (err) { vp_out_close(&out, 0); return err; }
            continue;
        }
        vp_case *c;
        int rc = read_case(argv[first + i], lf, &c);
        if (rc) { vp_out_close(&out, 0); return -rc; }
        int w = vp_case_write(out, c);
        vp_case_free(&c);
        if (w) { vp_out_close(&out, 0); return VP_ERR_RUNTIME; }
    }
    if (lmap) { vp_labelmap_clear(lmap); free(lmap); }
    return vp_stream_finish(&out) ? VP_ERR_RUNTIME : 0;
}
