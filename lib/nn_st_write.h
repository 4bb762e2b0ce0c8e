/* nn_st_write.h - write .safetensors files (read back by nn_safetensors.h, safetensors.torch and
 * the inference programs): f32 tensors plus a "__metadata__" object of strings.
 *
 * Format written: 8-byte little-endian header length, the JSON header (tensors in the order
 * given, each {"dtype":"F32","shape":[...],"data_offsets":[b,e]}, then "__metadata__"), padded
 * with spaces to a multiple of 8 bytes so the data starts 8-byte aligned, then the data.
 * The file is written atomically: a temporary file in the same directory, fsync, rename, fsync of
 * the directory; an interrupted write leaves the old file (or none), never a partial one.
 *
 * Ownership: nothing is kept; the caller's arrays are only read.
 */
#ifndef VP_NN_ST_WRITE_H
#define VP_NN_ST_WRITE_H

#include <stdint.h>

typedef struct vp_st_entry {
    const char *name;
    int ndim;
    const int64_t *shape;
    const float *data; /* numel(shape) floats */
} vp_st_entry;

/* Write n tensors and n_meta metadata pairs to path. 0, or -1 after vp_error("PATH: ...")
 * (duplicate or empty name, I/O failure; no file is left behind then). */
int vp_st_write(const char *path, const vp_st_entry *t, int n, int n_meta, const char *const *keys,
                const char *const *values);

#endif
