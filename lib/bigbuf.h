/* bigbuf.h - large scratch and voxel buffers backed by transparent huge pages where the kernel
 * offers them (madvise mode), so that filling a fresh 400 MB buffer takes hundreds of page faults
 * instead of a hundred thousand.
 *
 * Ownership: the caller frees the buffer with free() (it may become a vp_vol's alloc).
 */
#ifndef VP_BIGBUF_H
#define VP_BIGBUF_H

#include <stddef.h>

/* n bytes, uninitialised, 2 MiB aligned when n >= 32 MiB; exits with VP_ERR_RUNTIME when out of
 * memory, like vp_malloc. */
void *vp_big_alloc(size_t n);

#endif
