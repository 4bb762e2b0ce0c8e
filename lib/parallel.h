/* parallel.h - deterministic parallel-for over an index range with POSIX threads.
 *
 * vp_parallel_for(n, fn, ctx) calls fn(ctx, begin, end, worker) over disjoint ranges that cover
 * [0, n), using vp_threads workers (cli.h --threads). The ranges depend only on n and the grain, not
 * on timing, so a kernel that writes only its own range gives the same bytes whatever the thread
 * count; reductions should combine per-range partial results in range order.
 *
 * Ownership: nothing is allocated for the caller.
 */
#ifndef VP_PARALLEL_H
#define VP_PARALLEL_H

#include <stdint.h>

typedef void (*vp_range_fn)(void *ctx, uint64_t begin, uint64_t end, int worker);

/* Split [0, n) into ranges of `grain` items (the last may be shorter) handed to workers on demand.
 * grain 0 picks n / (8 * threads), at least 1. Runs inline when threads == 1 or n is small. */
void vp_parallel_for(uint64_t n, uint64_t grain, vp_range_fn fn, void *ctx);

/* Number of worker slots fn may see (worker in [0, vp_parallel_workers())), for per-worker scratch. */
int vp_parallel_workers(void);

#endif
