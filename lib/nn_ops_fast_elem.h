/* nn_ops_fast_elem.h - the CPU backend's multi-threaded non-convolution ops (nn_ops_fast_elem.c),
 * used by nn_ops_fast.c; private to the backend. Same contracts as the reference ops in
 * nn_backend.h (shape checks, in-place rules, return 0 or -1 after vp_error()).
 *
 * Determinism: work is split into ranges fixed by the tensor shape alone (never by the thread
 * count) and every output element is computed by one thread, so the bytes are the same for any
 * --threads. Activations, add, upsampling, softmax and argmax do the reference's arithmetic per
 * element (the reference's bytes); the norms' statistics are f64 (per fixed-size block: the sum,
 * then the squared deviations from the block's mean, combined in block order with Chan's formula)
 * and the normalisation is f32, (x - mean) * (rstd * gamma) + beta (tests/unit/test_nn_fast.c:
 * within 1e-5 x max(1, max |y|) of the reference's f64 expression).
 *
 * Ownership: nothing is allocated for the caller.
 */
#ifndef VP_NN_OPS_FAST_ELEM_H
#define VP_NN_OPS_FAST_ELEM_H

#include "nn_tensor.h"

/* GroupNorm (instance norm: groups = C): one parallel pass for the block statistics (each block
 * read once from memory), a short serial combination, one parallel f32 normalising pass. */
int vp_nn_fast_group_norm(const vp_tensor *x, int groups, float eps, const vp_tensor *gamma, const vp_tensor *beta,
                          vp_tensor *y);
/* relu(group_norm(x)) with the relu in the normalising pass: the bytes of the two ops in turn,
 * one pass over the data fewer. */
int vp_nn_fast_group_norm_relu(const vp_tensor *x, int groups, float eps, const vp_tensor *gamma, const vp_tensor *beta,
                               vp_tensor *y);
/* Element-wise ops, parallel over fixed chunks; in place allowed as in the reference. */
int vp_nn_fast_relu(const vp_tensor *x, vp_tensor *y);
int vp_nn_fast_leaky_relu(const vp_tensor *x, float slope, vp_tensor *y);
int vp_nn_fast_add(const vp_tensor *a, const vp_tensor *b, vp_tensor *y);
/* Trilinear x2 upsampling, parallel over output planes, per-axis indices and weights precomputed;
 * the reference's f64 expression per element, so the same bytes as the reference. */
int vp_nn_fast_upsample_trilinear2x(const vp_tensor *x, vp_tensor *y);
/* Softmax and argmax over channels, parallel over voxel chunks, reference arithmetic per voxel. */
int vp_nn_fast_softmax_c(const vp_tensor *x, vp_tensor *y);
int vp_nn_fast_argmax_c(const vp_tensor *x, int32_t *out);

#endif
