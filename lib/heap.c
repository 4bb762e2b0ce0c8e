/* heap.c - see heap.h. */
#include "heap.h"

#include <pthread.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

static void keep(void)
{
#ifdef __GLIBC__
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

void vp_heap_keep_freed(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, keep);
}
