/* nn_isa.h - which instruction-set variant of the CPU kernels to run (nn_ops_fast.c,
 * nn_ops_fast_conv.c, nn_grad_fast.c compile each kernel for AVX-512, AVX2 and a baseline), and
 * the macro that compiles a kernel's three variants (VP_NN_ISA_RANGES).
 *
 * Ownership: nothing is allocated. VOXPIPE_NN_ISA=base|avx2|avx512 caps the choice, so the tests
 * can run every variant against the reference.
 */
#ifndef VP_NN_ISA_H
#define VP_NN_ISA_H

#include <stdlib.h>
#include <string.h>

#include "parallel.h"

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

/* Defines three vp_parallel_for range functions NAME_avx512, NAME_avx2 and NAME_base, each
 * running the expression CALL512, CALL2 or CALLBASE (which may use ctx and the item index i) for
 * every item of its range, compiled for that instruction set with fused multiply-adds; and
 * `static vp_range_fn NAME_pick(int *isa)`, which returns the variant for this processor
 * (vp_nn_isa_level(), stored in *isa). Without x86 paths only the baseline exists. */
#define VP_NN_ISA_RANGE(NAME, ATTR, CALL)                                                        \
    ATTR static void NAME(void *ctx, uint64_t begin, uint64_t end, int worker)                   \
    {                                                                                            \
        (void)worker;                                                                            \
        for (uint64_t i = begin; i < end; i++) CALL;                                             \
    }
#ifdef HAVE_X86_PATHS
#define VP_NN_ISA_RANGES(NAME, CALL512, CALL2, CALLBASE)                                         \
    VP_NN_ISA_RANGES_C(NAME, "fp-contract=fast", CALL512, CALL2, CALLBASE)
/* The same without fused multiply-adds (each product rounded, as the baseline does): for kernels
 * whose bytes must not depend on the variant (element-wise ops, the norms' backward). */
#define VP_NN_ISA_RANGES_EXACT(NAME, CALL512, CALL2, CALLBASE)                                   \
    VP_NN_ISA_RANGES_C(NAME, "fp-contract=off", CALL512, CALL2, CALLBASE)
#define VP_NN_ISA_RANGES_C(NAME, CONTRACT, CALL512, CALL2, CALLBASE)                             \
    VP_NN_ISA_RANGE(NAME##_avx512, __attribute__((target("avx512f,avx512vl,fma"), optimize(CONTRACT))), CALL512) \
    VP_NN_ISA_RANGE(NAME##_avx2, __attribute__((target("avx2,fma"), optimize(CONTRACT))), CALL2) \
    VP_NN_ISA_RANGE(NAME##_base, , CALLBASE)                                                     \
    static vp_range_fn NAME##_pick(int *isa)                                                     \
    {                                                                                            \
        *isa = vp_nn_isa_level();                                                                \
        return *isa == VP_ISA_AVX512 ? NAME##_avx512 : *isa == VP_ISA_AVX2 ? NAME##_avx2 : NAME##_base; \
    }
#else
#define VP_NN_ISA_RANGES_EXACT VP_NN_ISA_RANGES
#define VP_NN_ISA_RANGES(NAME, CALL512, CALL2, CALLBASE)                                         \
    VP_NN_ISA_RANGE(NAME##_base, , CALLBASE)                                                     \
    static vp_range_fn NAME##_pick(int *isa)                                                     \
    {                                                                                            \
        *isa = VP_ISA_BASE;                                                                      \
        return NAME##_base;                                                                      \
    }
#endif

#endif
