/* nn_tensor.h - f32 tensors for the nn engine: shape + strides, NCDHW activations.
 *
 * Ownership: vp_tensor_new()/vp_tensor_zeros() allocate one block that vp_tensor_free() releases;
 * vp_tensor_view() wraps memory the caller keeps (free does not touch it); tensors taken from a
 * vp_arena belong to the arena and are released all at once by vp_arena_reset()/vp_arena_free().
 *
 * Layout: activations are (N, C, D, H, W) row-major ("NCDHW", PyTorch's layout), weights are
 * PyTorch's own: conv (Co, Ci, kd, kh, kw), transposed conv (Ci, Co, kd, kh, kw). Strides are in
 * elements; every op in nn_backend.h takes contiguous tensors (vp_tensor_is_contiguous).
 * `device` is 0 for host memory; a second backend (CUDA) may put device pointers in `data`.
 */
#ifndef VP_NN_TENSOR_H
#define VP_NN_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#define VP_NN_MAXDIM 5

typedef struct vp_tensor {
    int ndim;
    int64_t shape[VP_NN_MAXDIM];
    int64_t stride[VP_NN_MAXDIM]; /* elements; contiguous: stride[ndim-1] = 1 */
    float *data;
    int owns;   /* 1: vp_tensor_free() frees data */
    int device; /* 0: host */
} vp_tensor;

/* Number of elements (product of the shape; 1 for ndim 0). */
int64_t vp_tensor_numel(const vp_tensor *t);

/* A host tensor of the given shape, contiguous, uninitialised (vp_tensor_zeros: zeroed). Exits
 * VP_ERR_RUNTIME when memory runs out or the size overflows. */
vp_tensor *vp_tensor_new(int ndim, const int64_t *shape);
vp_tensor *vp_tensor_zeros(int ndim, const int64_t *shape);

/* Shorthand for a 5-D (N, C, D, H, W) tensor. */
vp_tensor *vp_tensor_new5(int64_t n, int64_t c, int64_t d, int64_t h, int64_t w);

/* A contiguous tensor header over caller-owned memory (not freed by vp_tensor_free). Returned by
 * value so it can live on the stack. */
vp_tensor vp_tensor_view(float *data, int ndim, const int64_t *shape);

/* Free a tensor from vp_tensor_new/zeros (and its data when it owns it); sets *t to NULL. */
void vp_tensor_free(vp_tensor **t);

/* 1 when strides are the row-major strides of the shape. */
int vp_tensor_is_contiguous(const vp_tensor *t);

/* 1 when a and b have the same ndim and shape. */
int vp_tensor_same_shape(const vp_tensor *a, const vp_tensor *b);

/* Write "(2,3,4)" into buf (for messages); returns buf. */
const char *vp_tensor_shape_str(const vp_tensor *t, char *buf, size_t n);

/* Arena for activations: tensors carved from one growing list of blocks (64-byte aligned), freed
 * together. A forward pass resets the arena between patches instead of calling malloc per layer. */
typedef struct vp_arena vp_arena;

/* An empty arena whose blocks are at least block_bytes (0: 64 MiB). */
vp_arena *vp_arena_new(size_t block_bytes);
/* A contiguous tensor (uninitialised) owned by the arena; valid until reset/free. The header
 * itself is also in the arena. */
vp_tensor *vp_arena_tensor(vp_arena *a, int ndim, const int64_t *shape);
/* Release every tensor taken since creation; keeps the largest block for reuse. */
void vp_arena_reset(vp_arena *a);
/* Bytes currently handed out, and the high-water mark since creation. */
size_t vp_arena_used(const vp_arena *a);
size_t vp_arena_peak(const vp_arena *a);
void vp_arena_free(vp_arena **a);

#endif
