/* bytemask.h - byte masks eight voxels at a time (SWAR on 64-bit words).
 *
 * The masks of the metrics are mostly zero and their bytes small codes (0/1/2); these helpers load
 * 8 bytes as one word and answer per byte at once, with the high bit (0x80) of each byte of the
 * result set where the answer is yes. They are exact (no carries between bytes).
 *
 * Ownership: nothing is allocated.
 */
#ifndef VP_BYTEMASK_H
#define VP_BYTEMASK_H

#include <stdint.h>
#include <string.h>

#define VP_BYTES_01 0x0101010101010101ull
#define VP_BYTES_7F 0x7F7F7F7F7F7F7F7Full
#define VP_BYTES_80 0x8080808080808080ull

static inline uint64_t vp_load8(const void *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
}

/* high bit set in each byte of w that is zero */
static inline uint64_t vp_bytes_zero(uint64_t w)
{
    return ~(((w & VP_BYTES_7F) + VP_BYTES_7F) | w | VP_BYTES_7F);
}

/* high bit set in each byte of w equal to b */
static inline uint64_t vp_bytes_eq(uint64_t w, uint8_t b)
{
    return vp_bytes_zero(w ^ (VP_BYTES_01 * b));
}

/* high bits -> bytes 0/1 */
static inline uint64_t vp_bytes_bool(uint64_t hi)
{
    return hi >> 7;
}

/* number of nonzero bytes in w */
static inline int vp_bytes_nonzero(uint64_t w)
{
    return 8 - (int)((vp_bytes_bool(vp_bytes_zero(w)) * VP_BYTES_01) >> 56);
}

#endif
