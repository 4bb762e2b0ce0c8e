/* fuzz_dicom.c - libFuzzer target for DICOM image files through dcm-fetch's own entry point
 * (lib/dicom_fetch.c vp_dcm_fetch_run: lib/dicom_dcmtk.cc parsing and pixel decoding, lib/dicom_j2k.c,
 * lib/dicom_series.c grouping, ordering, volume building and frame splitting, lib/dicom_uniform.c,
 * meta packing), the case written to a discarded file output. The input is one file; run a second
 * time with --uniform's option set so tilted or uneven multi-frame inputs are resampled. */
#include "fuzz_common.h"
#include "dicom.h"
#include "dicom_fetch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    if (!init) { fz_init("fuzz_dicom"); init = 1; }
    const char *path = fz_file(0, ".dcm", data, size);
    char *paths[1] = {(char *)path};
    char outpath[600];
    snprintf(outpath, sizeof outpath, "%s.out", path);
    for (int uniform = 0; uniform < 2; uniform++) {
        struct vp_dcm_fetch_opts o = {.id = "fz", .image_name = "image", .key = NULL, .tolerance = 0.01,
                                      .uniform = uniform, .allow_nonuniform = 1};
        vp_out *out = vp_out_open(outpath, 0);
        if (!out) abort();
        (void)vp_dcm_fetch_run(paths, 1, &o, out);
        vp_out_close(&out, 0);
    }
    return 0;
}
