/* nn_ops_fast_conv.h - the CPU backend's main conv3d kernel (nn_ops_fast_conv.c), private to the
 * backend (nn_ops_fast.c calls it, and falls back on its row kernel where this one does not apply).
 *
 * "Flat plane" direct convolution: an output plane (Ho x Wo) is computed as one flat run of
 * positions o = oh * Wq + ox over a row pitch Wq >= Wo (the padded input row, divided by the
 * stride), so that the vector tiles run across row ends instead of stopping at narrow rows (12-
 * and 24-wide rows of the deep levels waste no lanes on tails); the Wq - Wo columns past each row
 * are computed and dropped. Same contract as the reference conv3d (nn_backend.h); deterministic
 * for any thread count (every output element is summed by one tile, in ci, kd, kh, kw order).
 *
 * The header also declares the transposed convolution (nn_ops_fast_convt.c).
 *
 * Ownership: nothing is allocated for the caller; scratch (padded input, packed weights) is freed
 * before returning.
 */
#ifndef VP_NN_OPS_FAST_CONV_H
#define VP_NN_OPS_FAST_CONV_H

#include "nn_backend.h"

/* 1 when the flat kernel handles this convolution: equal strides along h and w, 1 or 2 (any
 * stride along d), any kernel size and zero padding. Shapes are not checked here. */
int vp_nn_flat_conv_applies(const vp_tensor *w, const vp_conv3d_params *p);

/* y = conv3d(x, w, b) (+ r when r is not NULL: the residual is added as each output tile is
 * stored, the bytes of conv3d then add) with the flat kernel; the caller has checked the shapes
 * (y and r have the output shape of vp_nn_conv3d_shape; r is neither x nor y) and that
 * vp_nn_flat_conv_applies(). Picks the widest instruction set the processor has
 * (VOXPIPE_NN_ISA=base|avx2|avx512 caps it). Returns 0. */
int vp_nn_flat_conv3d(const vp_tensor *x, const vp_tensor *w, const vp_tensor *b, const vp_conv3d_params *p,
                      const vp_tensor *r, vp_tensor *y);

/* Zero floats after the buffer of vp_nn_pad_copy(), for tail tiles and stride-2 loads. */
#define VP_NN_PAD_SLACK 256

/* A new zero-padded copy (N, C, D + 2 pad[0], H + 2 pad[1], W + 2 pad[2]) of x followed by
 * VP_NN_PAD_SLACK zero floats, filled in parallel; split: each padded row stored as its even
 * columns, then its odd ones (the flat kernel's stride-2 layout). The caller frees it. */
float *vp_nn_pad_copy(const vp_tensor *x, const int pad[3], int split);

/* y = conv_transpose3d(x, w, b) (nn_ops_fast_convt.c): multi-threaded when kernel == stride and
 * there is no padding or output_padding (every output voxel takes one tap), the reference
 * otherwise. Same contract as the reference op (checks the shapes itself). */
int vp_nn_fast_conv_transpose3d(const vp_tensor *x, const vp_tensor *w, const vp_tensor *b, const vp_conv3d_params *p,
                                vp_tensor *y);

#endif
