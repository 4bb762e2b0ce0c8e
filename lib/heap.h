/* heap.h - the one process-wide malloc setting of the nn engine (inference and training).
 *
 * Ownership: nothing is allocated; the setting lasts for the life of the process.
 */
#ifndef VP_HEAP_H
#define VP_HEAP_H

/* Keep large freed blocks in the heap instead of returning them to the kernel. Activations of a
 * forward pass and of a training step are tens of MiB each, allocated and freed once per layer
 * (every iteration when training). glibc serves blocks above its mmap threshold (at most 32 MiB)
 * with a fresh mmap each time, so every layer would page-fault its output in again (about a
 * seventh of a SegResNet forward pass, a tenth of a training step went to the kernel zeroing
 * pages). Raising the mmap and trim thresholds to 1 GiB keeps freed blocks for the next layer: the
 * peak memory is the same, the faults are gone; blocks of 1 GiB and more are still mmapped.
 * Idempotent and thread-safe: the first call applies it, later calls do nothing. No-op without
 * glibc. Called by vp_nn_backend_cpu() and by the trainable-model constructors. */
void vp_heap_keep_freed(void);

#endif
