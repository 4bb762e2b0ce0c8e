/* fuzz_nifti.c - libFuzzer target for NIfTI reading (lib/nifti.c, lib/gzstream.c). The input is saved
 * as .nii.gz when it starts with the gzip magic, else as .nii, then read whole (vp_nifti_read) and
 * through the streaming path vol-read uses (vp_nifti_probe + vp_nifti_copy_voxels into a discarded
 * file output). A plain input is also gzip-compressed (libdeflate) and read again as .nii.gz, whole
 * and cut short, so the mutated headers reach the gzip paths too (mutations of compressed bytes
 * rarely get past the deflate decoder). */
#include <libdeflate.h>

#include "fuzz_common.h"
#include "nifti.h"

static void read_one(const char *path);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    if (!init) { fz_init("fuzz_nifti"); init = 1; }
    int gz = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
    read_one(fz_file(0, gz ? ".nii.gz" : ".nii", data, size));
    if (!gz && size) {
        struct libdeflate_compressor *c = libdeflate_alloc_compressor(1);
        size_t cap = libdeflate_gzip_compress_bound(c, size);
        uint8_t *z = malloc(cap);
        size_t n = libdeflate_gzip_compress(c, data, size, z, cap);
        libdeflate_free_compressor(c);
        if (n) {
            read_one(fz_file(1, ".nii.gz", z, n));
            read_one(fz_file(1, ".nii.gz", z, n - 1 - data[size - 1] % (n - 1 > 0 ? n - 1 : 1)));
        }
        free(z);
    }
    return 0;
}

static void read_one(const char *path)
{
    vp_vol *v = NULL;
    struct vp_nifti_info info;
    if (vp_nifti_read(path, &v, &info) == 0) vp_vol_free(&v);

    vp_vol *hdr = NULL;
    uint64_t off = 0;
    if (vp_nifti_probe(path, &hdr, &info, &off) == 1) {
        char outpath[600];
        snprintf(outpath, sizeof outpath, "%s.out", path);
        vp_out *o = vp_out_open(outpath, 0);
        uint64_t n = 0;
        if (o && !vp_vol_nbytes(hdr->dims, hdr->dtype, &n)) (void)vp_nifti_copy_voxels(path, off, n, o);
        if (o) {
            vp_out_close(&o, 0);
        }
        vp_vol_free(&hdr);
    }
}
