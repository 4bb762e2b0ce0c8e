/* mpread.h - a bounded, pull-style msgpack token reader over a vp_in stream.
 *
 * msgpack-c's unpacker buffers whole objects; voxpipe needs to read a frame's headers one token at a
 * time so that a voxel payload (a msgpack bin) goes straight from the stream into the volume's final
 * buffer. This reader does exactly that and nothing more: it decodes one header at a time, and can
 * capture one complete value as raw msgpack bytes (for meta passed through untouched), with limits on
 * nesting depth and total size. Parsed views of captured values use msgpack-c (msgpack_unpack).
 *
 * Ownership: mp_capture appends to a caller-owned growable buffer.
 */
#ifndef VP_MPREAD_H
#define VP_MPREAD_H

#include <stddef.h>
#include <stdint.h>

#include "endpoint.h"

enum mp_kind { MP_NIL, MP_BOOL, MP_UINT, MP_INT, MP_FLOAT, MP_STR, MP_BIN, MP_ARRAY, MP_MAP, MP_EXT };

struct mp_tok {
    enum mp_kind kind;
    uint64_t u;   /* UINT value, BOOL value, or length/count for STR/BIN/EXT/ARRAY/MAP */
    int64_t i;    /* INT value (negative) */
    double f;     /* FLOAT value */
    unsigned char raw[10]; /* the header bytes as read */
    size_t rawlen;
};

struct mp_buf {
    unsigned char *p;
    size_t len, cap, max; /* max: refuse to grow beyond this many bytes */
};

/* Read one token header. 0 ok, -1 on short read or a reserved byte (0xc1) with *why set. */
int mp_read_tok(vp_in *in, struct mp_tok *t, const char **why);
/* Read a str token of at most maxlen bytes into a new NUL-terminated string (rejects embedded NUL). */
int mp_read_str(vp_in *in, const struct mp_tok *t, size_t maxlen, char **out, const char **why);
/* Skip or capture the body of a value whose header t was just read; nested values are read
 * recursively up to depth levels. If buf is non-NULL the header and body are appended to it. */
int mp_finish_value(vp_in *in, const struct mp_tok *t, int depth, struct mp_buf *buf, const char **why);
/* Append bytes to a growable buffer honouring buf->max. */
int mp_buf_append(struct mp_buf *b, const void *p, size_t n);

/* Number value of a token (UINT/INT/FLOAT): 0 ok, -1 if not a number. */
int mp_tok_number(const struct mp_tok *t, double *out);

#endif
