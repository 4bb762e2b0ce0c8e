/* nn_safetensors.h - read .safetensors model files (the format of `safetensors.torch.save_file`).
 *
 * Ownership: vp_st_open() maps the file and returns a handle that owns the mapping, the parsed
 * header and every string it hands out (names, metadata); they stay valid until vp_st_close().
 * vp_st_load() returns a new f32 tensor the caller frees with vp_tensor_free().
 *
 * Format: an 8-byte little-endian header length N, N bytes of JSON (an object: tensor name ->
 * {"dtype", "shape", "data_offsets": [begin, end]} relative to the byte after the header, and an
 * optional "__metadata__" object of string -> string), then the data, row-major little-endian.
 * Checked on open: the header length and JSON syntax, known dtype names, non-negative integer
 * shapes, offsets inside the file, end - begin == numel * dtype size, no two tensors overlapping
 * and no bytes left unclaimed (as the reference implementation requires), no duplicate names.
 * Loading converts F32, F16 and BF16 to f32; other valid dtypes (I64, U8, ...) are listed but
 * refused by vp_st_load with a message naming the tensor.
 */
#ifndef VP_NN_SAFETENSORS_H
#define VP_NN_SAFETENSORS_H

#include <stdint.h>

#include "nn_tensor.h"

#define VP_ST_MAXDIM 8

typedef struct vp_st_tensor {
    const char *name;
    const char *dtype; /* as in the file: "F32", "F16", "BF16", "I64", ... */
    int elsize;        /* bytes per element */
    int ndim;
    int64_t shape[VP_ST_MAXDIM];
    uint64_t begin, end; /* byte offsets into the data section */
} vp_st_tensor;

typedef struct vp_safetensors vp_safetensors;

/* Map and validate path. NULL after vp_error("PATH: ...: why") on any of the checks above. */
vp_safetensors *vp_st_open(const char *path);
/* Unmap and free everything; sets *st to NULL. */
void vp_st_close(vp_safetensors **st);

/* Tensors in file order (the header's order). */
int vp_st_count(const vp_safetensors *st);
const vp_st_tensor *vp_st_at(const vp_safetensors *st, int i);
/* The tensor called name, or NULL. */
const vp_st_tensor *vp_st_find(const vp_safetensors *st, const char *name);

/* __metadata__: value of key or NULL; count and i-th pair in file order. */
const char *vp_st_meta(const vp_safetensors *st, const char *key);
int vp_st_meta_count(const vp_safetensors *st);
void vp_st_meta_at(const vp_safetensors *st, int i, const char **key, const char **value);

/* The tensor called name as a new contiguous f32 tensor of its shape (at most VP_NN_MAXDIM
 * dimensions). NULL after vp_error() when it is missing, its dtype is not F32/F16/BF16, or it
 * has too many dimensions. */
vp_tensor *vp_st_load(const vp_safetensors *st, const char *name);

/* Like vp_st_load, and also checks the shape is exactly (shape[0], ..., shape[ndim-1]). */
vp_tensor *vp_st_load_shape(const vp_safetensors *st, const char *name, int ndim, const int64_t *shape);

/* f16 / bf16 bit patterns to f32 (exact; subnormals, infinities and NaN kept). */
float vp_f16_to_f32(uint16_t h);
float vp_bf16_to_f32(uint16_t h);

#endif
