/* nn_simd.h - the vector types and loads shared by the CPU kernels (nn_ops_fast.c,
 * nn_ops_fast_conv.c, nn_grad_fast.c): GCC vector extensions, no intrinsics, so one source
 * compiles for AVX-512, AVX2 and the baseline (nn_isa.h picks the variant at run time).
 *
 * Ownership: nothing is allocated; header-only, private to the CPU backend.
 */
#ifndef VP_NN_SIMD_H
#define VP_NN_SIMD_H

#include <string.h>

typedef float v8 __attribute__((vector_size(8 * sizeof(float))));
typedef float v16 __attribute__((vector_size(16 * sizeof(float))));
typedef int v8i __attribute__((vector_size(8 * sizeof(int))));
typedef int v16i __attribute__((vector_size(16 * sizeof(int))));
typedef float v8u __attribute__((vector_size(8 * sizeof(float)), aligned(4))); /* unaligned access */
typedef float v16u __attribute__((vector_size(16 * sizeof(float)), aligned(4)));
typedef double v8d __attribute__((vector_size(8 * sizeof(double))));

/* *v = p[0], p[sw], p[2 sw], ... (by pointer: a vector return value would change the ABI).
 * Stride 1 is one unaligned load; stride 2 reads two contiguous vectors and keeps the even
 * lanes (so it reads one vector past the last element it uses); other strides gather. */
static inline __attribute__((always_inline)) void load8(v8 *v, const float *p, int sw)
{
    if (sw == 1) {
        memcpy(v, p, sizeof *v);
    } else if (sw == 2) {
        v8 lo, hi;
        memcpy(&lo, p, sizeof lo), memcpy(&hi, p + 8, sizeof hi);
        *v = __builtin_shuffle(lo, hi, (v8i){0, 2, 4, 6, 8, 10, 12, 14});
    } else {
        for (int l = 0; l < 8; l++) (*v)[l] = p[l * sw];
    }
}
static inline __attribute__((always_inline)) void load16(v16 *v, const float *p, int sw)
{
    if (sw == 1) {
        memcpy(v, p, sizeof *v);
    } else if (sw == 2) {
        v16 lo, hi;
        memcpy(&lo, p, sizeof lo), memcpy(&hi, p + 16, sizeof hi);
        *v = __builtin_shuffle(lo, hi, (v16i){0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30});
    } else {
        for (int l = 0; l < 16; l++) (*v)[l] = p[l * sw];
    }
}

/* f in every lane: a plain broadcast (`(VT){0} + f` would add 0 first, to keep -0.0 as +0.0) */
#define bc8(f) ((v8){(f), (f), (f), (f), (f), (f), (f), (f)})
#define bc16(f) ((v16){(f), (f), (f), (f), (f), (f), (f), (f), (f), (f), (f), (f), (f), (f), (f), (f)})

#endif
