/* bigbuf.c - see bigbuf.h */
#include "bigbuf.h"
#include "util.h"

#include <stdlib.h>
#include <sys/mman.h>

#define HUGE_ALIGN ((size_t)2 << 20)

void *vp_big_alloc(size_t n)
{
    if (n < ((size_t)32 << 20)) return vp_malloc(n ? n : 1);
    void *p = NULL;
    size_t rounded = (n + HUGE_ALIGN - 1) / HUGE_ALIGN * HUGE_ALIGN;
    if (posix_memalign(&p, HUGE_ALIGN, rounded)) return vp_malloc(n); /* vp_malloc reports failure */
#ifdef MADV_HUGEPAGE
    madvise(p, rounded, MADV_HUGEPAGE); /* advice only: failure is harmless */
#endif
    return p;
}
