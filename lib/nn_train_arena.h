/* nn_train_arena.h - the activation arena of a vp_trainable (vp_tpool; unlike nn_tensor.h's bump
 * vp_arena, buffers are given back one by one, so backward's peak stays one step's): a pool of
 * 5-D tensors that the training step's forward activations, backward gradients and loss
 * gradients are drawn from, so an iteration with the same patch/batch shape as the previous one
 * allocates nothing (no malloc, no page faults, no cudaMalloc).
 *
 * Ownership: the arena owns every buffer it ever handed out. vp_tpool_get() lends one (marked
 * busy) until vp_tpool_put() gives it back; vp_tpool_free() releases all of them, busy or not.
 * A tensor from the arena must never be passed to vp_tensor_free / vp_cuda_tensor_free.
 *
 * Reuse: a request is served by the first free buffer of exactly the same shape (in creation
 * order: deterministic), else a new buffer is allocated. vp_tpool_trim() (end of a step) releases
 * the free buffers no request used since the previous trim, so when the patch shape changes the
 * old shape's buffers go away and the peak stays that of one step. Values are never cleared
 * (vp_tpool_zeros does): a buffer holds whatever its last user left, as a fresh vp_tensor_new's
 * contents are undefined. Not thread-safe (the step allocates from one thread).
 *
 * Device: an arena switched to a CUDA backend's device k (device = k + 1) allocates with
 * vp_cuda_tensor_new, or vp_cuda_tensor_new_cl for layout VP_CUDA_NDHWC (nn_cuda.h), and zeroes on
 * the backend's stream; device 0 is host memory.
 */
#ifndef VP_NN_TRAIN_ARENA_H
#define VP_NN_TRAIN_ARENA_H

#include <stdint.h>

#include "nn_backend.h"
#include "nn_tensor.h"

typedef struct vp_tpool_slot {
    vp_tensor *t;
    int busy, used; /* lent now; requested since the last trim */
} vp_tpool_slot;

typedef struct vp_tpool {
    vp_tpool_slot *s;
    int n, cap;
    const vp_nn_backend *be; /* NULL: host memory */
    int device, layout;      /* 0 host; k + 1: CUDA device k, in layout (VP_CUDA_NCDHW / _NDHWC) */
    int64_t allocs, reuses;  /* buffers allocated / requests served from the pool, since creation */
    int64_t bytes;           /* bytes held now */
} vp_tpool;

/* Switch the arena to host memory (be NULL) or to the device of CUDA backend be, activations in
 * layout; its buffers are released first (none may be busy). -1 after vp_error() when be is not a
 * CUDA backend. */
int vp_tpool_set_device(vp_tpool *a, const vp_nn_backend *be, int layout);

/* A buffer of this shape (5-D), lent until vp_tpool_put; contents undefined (vp_tpool_zeros:
 * zeroed). NULL after vp_error() only for device memory (host allocation failures exit). */
vp_tensor *vp_tpool_get(vp_tpool *a, const int64_t shape[5]);
vp_tensor *vp_tpool_zeros(vp_tpool *a, const int64_t shape[5]);

/* Give *t back (NULL-safe; sets *t to NULL). A tensor that is not from this arena is freed as
 * vp_tensor_free would (so callers can hold either kind). */
void vp_tpool_put(vp_tpool *a, vp_tensor **t);

/* Take t out of the arena: the caller owns it now (vp_tensor_free / vp_cuda_tensor_free). */
void vp_tpool_detach(vp_tpool *a, vp_tensor *t);

/* Release the free buffers that no request used since the previous trim. */
void vp_tpool_trim(vp_tpool *a);

/* Release every buffer; the arena can be used again. */
void vp_tpool_free(vp_tpool *a);

#endif
