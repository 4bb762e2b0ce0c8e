/* fanout_frame.c - see fanout_frame.h */
#include "fanout_frame.h"

#include <string.h>

static uint64_t be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = v << 8 | p[i];
    return v;
}

/* The header of the msgpack object at p (avail bytes there): *hdr = header bytes, *body = payload
 * bytes after the header, *kids = objects nested in it (array items, map keys + values). 1 ok, 0 the
 * header is cut off, -1 a byte that starts no object. */
static int head(const unsigned char *p, size_t avail, size_t *hdr, uint64_t *body, uint64_t *kids)
{
    if (!avail) return 0;
    unsigned b = p[0];
    *body = 0; *kids = 0; *hdr = 1;
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) return 1;
    if (b >= 0x80 && b <= 0x8f) { *kids = 2 * (uint64_t)(b & 0x0f); return 1; }
    if (b >= 0x90 && b <= 0x9f) { *kids = b & 0x0f; return 1; }
    if (b >= 0xa0 && b <= 0xbf) { *body = b & 0x1f; return 1; }
    int lenbytes = 0, extra = 0; /* a length field of lenbytes, then extra fixed bytes (ext type) */
    uint64_t fixed = 0;           /* fixed-size bodies */
    int count = 0;                /* 1: the length is an item count (array), 2: a pair count (map) */
    switch (b) {
    case 0xc4: case 0xd9: lenbytes = 1; break;
    case 0xc5: case 0xda: lenbytes = 2; break;
    case 0xc6: case 0xdb: lenbytes = 4; break;
    case 0xc7: lenbytes = 1; extra = 1; break;
    case 0xc8: lenbytes = 2; extra = 1; break;
    case 0xc9: lenbytes = 4; extra = 1; break;
    case 0xca: case 0xce: case 0xd2: fixed = 4; break;
    case 0xcb: case 0xcf: case 0xd3: fixed = 8; break;
    case 0xcc: case 0xd0: fixed = 1; break;
    case 0xcd: case 0xd1: fixed = 2; break;
    case 0xd4: fixed = 2; break;
    case 0xd5: fixed = 3; break;
    case 0xd6: fixed = 5; break;
    case 0xd7: fixed = 9; break;
    case 0xd8: fixed = 17; break;
    case 0xdc: lenbytes = 2; count = 1; break;
    case 0xdd: lenbytes = 4; count = 1; break;
    case 0xde: lenbytes = 2; count = 2; break;
    case 0xdf: lenbytes = 4; count = 2; break;
    default: return -1; /* 0xc1 */
    }
    if (!lenbytes) { *body = fixed; return 1; }
    if (avail < (size_t)(1 + lenbytes + extra)) return 0;
    uint64_t n = be(p + 1, lenbytes);
    *hdr = (size_t)(1 + lenbytes + extra);
    if (count) *kids = n * (uint64_t)count;
    else *body = n;
    return 1;
}

/* Skip one whole object at buf[pos..len): 1 with *end set, 0 cut off (*need), -1 malformed. */
static int skip(const unsigned char *buf, size_t len, size_t pos, size_t *end, size_t *need)
{
    uint64_t pending = 1;
    while (pending) {
        size_t hdr;
        uint64_t body, kids;
        int k = head(buf + pos, len - pos, &hdr, &body, &kids);
        if (k < 0) return -1;
        if (k == 0) { *need = len + 1; return 0; }
        if (body > (uint64_t)SIZE_MAX - pos - hdr) return -1;
        size_t next = pos + hdr + (size_t)body;
        if (next > len) { *need = next; return 0; }
        pos = next;
        pending += kids - 1;
        if (pending > ((uint64_t)1 << 40)) return -1;
    }
    *end = pos;
    return 1;
}

void vp_fo_scan_init(vp_fo_scan *s) { memset(s, 0, sizeof *s); }

int vp_fo_scan_frame(vp_fo_scan *s, const unsigned char *buf, size_t len, size_t *need)
{
    *need = len + 1;
    if (!s->started) {
        size_t hdr;
        uint64_t body, kids;
        int k = head(buf, len, &hdr, &body, &kids);
        if (k < 0) return -1;
        if (k == 0) return 0;
        unsigned b = buf[0];
        if (!((b >= 0x80 && b <= 0x8f) || b == 0xde || b == 0xdf)) return -1;
        s->started = 1;
        s->items = kids;
        s->pos = hdr;
    }
    while (s->done < s->items) {
        size_t end;
        int k = skip(buf, len, s->pos, &end, need);
        if (k <= 0) return k;
        int is_key = s->done % 2 == 0;
        const unsigned char *p = buf + s->pos;
        size_t hdr;
        uint64_t body, kids;
        int is_str = head(p, end - s->pos, &hdr, &body, &kids) == 1 &&
                     ((p[0] >= 0xa0 && p[0] <= 0xbf) || p[0] == 0xd9 || p[0] == 0xda || p[0] == 0xdb);
        if (is_key) s->key_is_id = is_str && body == 2 && !memcmp(p + hdr, "id", 2);
        else if (s->key_is_id && is_str) { s->have_id = 1; s->id_off = s->pos + hdr; s->id_len = (size_t)body; }
        s->pos = end;
        s->done++;
    }
    return 1;
}

int vp_fo_frame_id(const unsigned char *buf, size_t len, const unsigned char **id, size_t *idlen)
{
    vp_fo_scan s;
    size_t need;
    vp_fo_scan_init(&s);
    if (vp_fo_scan_frame(&s, buf, len, &need) != 1 || s.pos != len || !s.have_id) return -1;
    *id = buf + s.id_off;
    *idlen = s.id_len;
    return 0;
}
