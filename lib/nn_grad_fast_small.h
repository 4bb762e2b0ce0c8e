/* nn_grad_fast_small.h - the conv3d weight gradient for outputs narrower than a vector
 * (nn_grad_fast_small.c), used by nn_grad_fast.c's vp_nn_grad_cpu(); private to the engine.
 *
 * Ownership: nothing is allocated for the caller (a temporary unrolled copy of x is freed before
 * returning).
 */
#ifndef VP_NN_GRAD_FAST_SMALL_H
#define VP_NN_GRAD_FAST_SMALL_H

#include "nn_backend.h"

/* dw[co][ci][k] = sum over n, o of dy[n][co][o] * x[n][ci][o*stride - pad + k] (no bias), shapes
 * already checked, for an output row length dy->shape[4] below 8 and an unrolled input of at most
 * 64 MiB; returns 1 without touching dw otherwise (the caller uses the row kernels), 0 when done.
 * f32 sums in a fixed order (vector lanes, then the lanes added): the same bytes for any thread
 * count; within float reassociation of the reference. */
int vp_nn_fast_dw_small(const vp_tensor *x, const vp_tensor *dy, const vp_conv3d_params *p, vp_tensor *dw);

#endif
