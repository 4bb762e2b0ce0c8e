/* bench_nn_peak - the machine's f32 FMA peak, for the GFLOP/s reports of bench_segresnet*.sh:
 * each of THREADS threads runs 12 independent chains of vfmadd231ps (zmm with AVX-512, else ymm
 * with AVX2+FMA) in inline asm, enough to cover the FMA latency on current x86 cores. Each thread
 * times itself in CPU time (CLOCK_THREAD_CPUTIME_ID), so a busy shared machine does not lower the
 * figure: it is the cores' peak, summed over the threads.
 *   usage: bench_nn_peak THREADS  -> prints "gflops isa" (all threads together) */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static const long iters = 50000000;
static int wide;

static double cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* arg: a double, set to this thread's CPU seconds */
static void *run(void *arg)
{
    double t0 = cpu_now();
#if defined(__x86_64__) && defined(__GNUC__)
    long n = iters;
    if (wide)
        __asm__ volatile("vxorps %%xmm0, %%xmm0, %%xmm0\n1:\n"
                         ".irp r,1,2,3,4,5,6,7,8,9,10,11,12\n vfmadd231ps %%zmm0, %%zmm0, %%zmm\\r\n.endr\n"
                         " dec %0\n jnz 1b"
                         : "+r"(n)::"xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
                           "xmm10", "xmm11", "xmm12", "cc");
    else
        __asm__ volatile("vxorps %%xmm0, %%xmm0, %%xmm0\n1:\n"
                         ".irp r,1,2,3,4,5,6,7,8,9,10,11,12\n vfmadd231ps %%ymm0, %%ymm0, %%ymm\\r\n.endr\n"
                         " dec %0\n jnz 1b"
                         : "+r"(n)::"xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
                           "xmm10", "xmm11", "xmm12", "cc");
#endif
    *(double *)arg = cpu_now() - t0;
    return arg;
}

int main(int argc, char **argv)
{
    int nt = argc > 1 ? atoi(argv[1]) : 1;
    if (nt < 1 || nt > 256) nt = 1;
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("fma") || !__builtin_cpu_supports("avx2")) return printf("0 none\n"), 0;
    wide = __builtin_cpu_supports("avx512f");
#else
    return printf("0 none\n"), 0;
#endif
    pthread_t th[256];
    double secs[256];
    for (int i = 0; i < nt; i++) pthread_create(&th[i], NULL, run, &secs[i]);
    for (int i = 0; i < nt; i++) pthread_join(th[i], NULL);
    double g = 0;
    for (int i = 0; i < nt; i++) g += (double)iters * 12 * (wide ? 16 : 8) * 2 / secs[i] * 1e-9;
    printf("%.1f %s\n", g, wide ? "avx512" : "avx2");
    return 0;
}
