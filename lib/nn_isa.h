/* nn_isa.h - which instruction-set variant of the CPU kernels to run (nn_ops_fast.c,
 * nn_ops_fast_conv.c, nn_grad_fast.c compile each kernel for AVX-512, AVX2 and a baseline).
 *
 * Ownership: nothing is allocated. VOXPIPE_NN_ISA=base|avx2|avx512 caps the choice, so the tests
 * can run every variant against the reference.
 */
#ifndef VP_NN_ISA_H
#define VP_NN_ISA_H

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#define HAVE_X86_PATHS 1
#endif

enum { VP_ISA_BASE = 1, VP_ISA_AVX2 = 2, VP_ISA_AVX512 = 3 };

/* The best variant this processor runs (AVX-512 needs avx512f+avx512vl+fma, AVX2 needs
 * avx2+fma), capped by VOXPIPE_NN_ISA. */
static inline int vp_nn_isa_level(void)
{
#ifdef HAVE_X86_PATHS
    const char *e = getenv("VOXPIPE_NN_ISA");
    int cap = !e ? 3 : !strcmp(e, "base") ? 1 : !strcmp(e, "avx2") ? 2 : 3;
    __builtin_cpu_init();
    int fma = __builtin_cpu_supports("fma");
    if (cap >= 3 && fma && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")) return VP_ISA_AVX512;
    if (cap >= 2 && fma && __builtin_cpu_supports("avx2")) return VP_ISA_AVX2;
#endif
    return VP_ISA_BASE;
}

#endif
