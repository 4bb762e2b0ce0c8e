/* frame_int.h - internal interface between the parts of the stream reader: frame_decode.c (msgpack
 * values of a frame into volumes and key/values, with the error messages) and frame_read.c (frames
 * and the streaming volume reader); frame_write.c includes it for the byte-order check. Not for
 * programs: use frame.h.
 *
 * Ownership: struct rctx borrows its input and case; the decoders give the caller what they return
 * (a volume, key/value entries) and free what they allocated when they fail.
 */
#ifndef VP_FRAME_INT_H
#define VP_FRAME_INT_H

#include "frame.h"
#include "mpread.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "voxpipe payloads are little-endian; big-endian hosts need byte swapping here"
#endif

/* where the reader is, for messages */
struct rctx {
    vp_in *in;
    vp_case *c;
    const char *vol;   /* volume being read, for messages */
    const char *field; /* field being read */
    long frame_no;
};

/* A payload left in the stream for the caller to read piece by piece. */
struct pend {
    uint64_t left;        /* payload bytes not yet consumed */
    uint64_t chunk_left;  /* bytes left in the current bin */
    uint64_t chunks_left; /* bins still to come (array form) */
    uint64_t total;
};

/* Print "prog: error: <input>: case '<id>': volume '<v>': field '<f>': why" (or "frame N" before the
 * id is known) and return -code. */
int vp_frame_fail(struct rctx *r, int code, const char *why);
/* A read that fails mid-frame is a truncated frame (-VP_ERR_DATA), unless the source reported an I/O
 * error (-VP_ERR_RUNTIME). */
int vp_frame_fail_read(struct rctx *r, const char *why);
/* The next msgpack token; 0 or a negative exit code after the message. */
int vp_frame_tok(struct rctx *r, struct mp_tok *t);
/* A map key (a string of at most VP_MAX_NAME bytes) into *out, which the caller frees. */
int vp_frame_key(struct rctx *r, char **out);
/* Read n payload bytes to buf+*used, growing *buf (capacity *cap) no faster than the input delivers. */
int vp_frame_read_payload(struct rctx *r, unsigned char **buf, uint64_t *cap, uint64_t *used, uint64_t n);
/* The "payload is N bytes but dims ... need M" error (field 'data'). */
int vp_frame_mismatch(struct rctx *r, uint64_t got, const uint64_t dims[4], int dtype, uint64_t expect);
/* Read one VOL map into *out; with pend, stop before a payload that comes last (*out is then a
 * header-only volume and *pend describes the payload left in the stream). */
int vp_frame_read_vol(struct rctx *r, vp_vol **out, struct pend *pend);
/* Read a map of raw values, appending to *kvs (*n entries); *budget bytes at most, reduced. */
int vp_frame_read_kvs(struct rctx *r, vp_kv **kvs, int *n, size_t *budget);

#endif
