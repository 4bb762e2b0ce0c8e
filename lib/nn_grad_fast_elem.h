/* nn_grad_fast_elem.h - the CPU backward ops other than the convolutions (nn_grad_fast_elem.c),
 * used by nn_grad_fast.c's vp_nn_grad_cpu(); private to the engine. Same contracts as nn_grad.h.
 *
 * Determinism: work items are fixed by the shape alone; each output element is written by one
 * item, and the per-channel sums of group norm are f64 partials per batch index added in order, so
 * the bytes do not depend on the thread count (group norm's are not the reference's bytes: its
 * sums are reassociated; the others' are).
 *
 * Ownership: nothing is allocated for the caller.
 */
#ifndef VP_NN_GRAD_FAST_ELEM_H
#define VP_NN_GRAD_FAST_ELEM_H

#include "nn_tensor.h"

/* (lib/nn_grad_fast_norm.c) One item per (n, group), three passes: statistics and sums in f64
 * (16 lanes, fixed order), dx in f32 vectors from f64 coefficients; within ~1e-7 relative of the
 * reference, the same bytes for every thread count and instruction-set variant. dx may be dy. */
int vp_nn_fast_group_norm_bwd(const vp_tensor *x, const vp_tensor *dy, int groups, float eps, const vp_tensor *gamma,
                              vp_tensor *dx, vp_tensor *dgamma, vp_tensor *dbeta);
/* The same through y = leaky_relu(group_norm(x), slope) (nn_grad.h's group_norm_leaky_relu_bwd):
 * the activation's gradient is computed in registers in both passes that read dy, so the bytes of
 * vp_nn_fast_leaky_relu_bwd then vp_nn_fast_group_norm_bwd, without writing and re-reading it. */
int vp_nn_fast_group_norm_leaky_relu_bwd(const vp_tensor *x, const vp_tensor *y, const vp_tensor *dy, int groups, float eps,
                                         float slope, const vp_tensor *gamma, vp_tensor *dx, vp_tensor *dgamma, vp_tensor *dbeta);
/* Masks of 16 floats at a time over fixed chunks (AVX-512 / AVX2; the baseline loops); the
 * reference's bytes. */
int vp_nn_fast_relu_bwd(const vp_tensor *y, const vp_tensor *dy, vp_tensor *dx);
int vp_nn_fast_leaky_relu_bwd(const vp_tensor *y, const vp_tensor *dy, float slope, vp_tensor *dx);
/* One (n, c) volume per item, the reference's arithmetic and bytes. */
int vp_nn_fast_upsample_trilinear2x_bwd(const vp_tensor *dy, vp_tensor *dx);

#endif
