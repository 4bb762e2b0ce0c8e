/* nn_grad_fast_dw.h - the CPU weight gradient of conv3d and conv_transpose3d (lib/nn_grad_fast_dw.c),
 * used by lib/nn_grad_fast.c.
 *
 * Ownership: the caller owns every tensor; nothing is kept between calls.
 */
#ifndef VP_NN_GRAD_FAST_DW_H
#define VP_NN_GRAD_FAST_DW_H

#include "nn_backend.h"

/* dw[co,ci,k] = sum over n, o of dy[n,co,o] x[n,ci,o*s-p+k], overwriting dw; shapes already
 * checked by the caller. Deterministic for any thread count (fixed chunks, f64 partials added in
 * chunk order). */
void vp_nn_fast_weight_grad(const vp_tensor *x, const vp_tensor *dy, const vp_conv3d_params *p, vp_tensor *dw);

#endif
