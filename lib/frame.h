/* frame.h - the voxpipe stream, format v1 (docs/FORMAT.md is the specification).
 *
 * A stream is a sequence of frames, one msgpack map per case:
 *   {"voxpipe": 1, "id": str, "meta": {...}, "vols": {name: VOL, ...}}
 * Readers accept the keys in any order; writers emit this order ("vols" last, "data" last in each
 * volume) so that a streaming filter sees the small header before the payloads.
 *
 * Ownership: a vp_case owns its id, volumes and meta entries; vp_case_free() releases all of them.
 * vp_case_add_vol() takes ownership of the volume; vp_case_take_vol() gives it back to the caller.
 */
#ifndef VP_FRAME_H
#define VP_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <msgpack.h>

#include "endpoint.h"
#include "volume.h"

#define VP_FORMAT_MAJOR 1
#define VP_MAX_VOLS 64
#define VP_MAX_KEYS 256           /* entries in the top-level and meta maps */
#define VP_MAX_NAME 256           /* key, volume name, dtype string */
#define VP_MAX_ID 1024
#define VP_MAX_META ((size_t)64 << 20) /* raw bytes of meta in one frame */
#define VP_MAX_DEPTH 32
#define VP_MAX_CHUNKS 65536
#define VP_CHUNK_BYTES ((uint64_t)1 << 30) /* writers split payloads into 1 GiB bins above 4 GiB */

/* one key with its value kept as raw msgpack bytes */
typedef struct vp_kv {
    char *key;
    unsigned char *raw;
    size_t len;
} vp_kv;

typedef struct vp_case {
    char *id;
    int nvols;
    char *vol_names[VP_MAX_VOLS];
    vp_vol *vols[VP_MAX_VOLS];
    int nmeta;
    vp_kv *meta;
    int nextra;   /* unknown top-level keys, passed through */
    vp_kv *extra;
} vp_case;

/* A payload above vp_frame_bin_limit bytes (default 2^32-1, the largest msgpack bin) is written as
 * an array of bins of vp_frame_chunk_bytes each (default 1 GiB). Tests lower both to exercise it. */
extern uint64_t vp_frame_bin_limit, vp_frame_chunk_bytes;

vp_case *vp_case_new(const char *id);
void vp_case_free(vp_case **c);

/* Read the next case. Returns 1 with *out set, 0 at the end of the stream (EOF at a frame boundary
 * or an end-of-stream frame), or a negative exit code (-VP_ERR_DATA, -VP_ERR_RUNTIME) after printing
 * "prog: error: <input>: case '<id>': <field>: <why>". */
int vp_case_read(vp_in *in, vp_case **out);

/* Write one case as one frame (a message on ZeroMQ). 0 ok, -1 error (printed). */
int vp_case_write(vp_out *out, const vp_case *c);
/* End the stream: on ZeroMQ send the end-of-stream frame; then close (commit). 0 ok, -1 error. */
int vp_stream_finish(vp_out **out);

/* ---- streaming: volumes piece by piece, never a whole frame in memory ----
 *
 * vp_case_begin() reads a frame up to its volumes: *head holds the id, meta, unknown keys and any
 * volume that had to be read whole (a frame whose keys come in another order than writers use);
 * *sr then yields the remaining volumes one at a time, their payloads still in the stream:
 *
 *   while ((r = vp_case_begin(in, &head, &sr)) > 0) {
 *       vp_case_write_head(out, head, vp_sreader_pending(sr));
 *       while (vp_sreader_next(sr, &name, &hdr) > 0) {       // hdr: dims, dtype, affine; no data
 *           struct vp_payload_writer pw;
 *           vp_case_write_vol_head(out, name, hdr, &pw);
 *           vp_sreader_copy(sr, &pw);                       // or vp_sreader_read / _take
 *       }
 *       vp_out_end_frame(out); vp_sreader_end(&sr); vp_case_free(&head);
 *   }
 * Ownership: the sreader owns the current header and name (valid until the next call);
 * vp_sreader_take() hands the current volume, data and all, to the caller. Functions return 0 (or
 * 1 from next) on success and a negative exit code after printing an error. */
typedef struct vp_sreader vp_sreader;
struct vp_payload_writer {
    vp_out *out;
    uint64_t left, chunk_left;
    int chunked;
};

int vp_case_begin(vp_in *in, vp_case **head, vp_sreader **sr); /* 1 case, 0 end, <0 error */
int vp_sreader_pending(const vp_sreader *sr); /* streamed volumes in this frame */
int vp_sreader_next(vp_sreader *sr, const char **name, const vp_vol **hdr); /* skips an unread rest */
uint64_t vp_sreader_left(const vp_sreader *sr); /* payload bytes of the current volume not yet read */
int vp_sreader_read(vp_sreader *sr, void *buf, size_t n);
int vp_sreader_copy(vp_sreader *sr, struct vp_payload_writer *pw); /* the rest of the payload; splices */
vp_vol *vp_sreader_take(vp_sreader *sr, int *rc); /* the rest into a new volume; NULL on error */
int vp_sreader_end(vp_sreader **sr); /* skip what is left, finish the frame, free */
void vp_sreader_abort(vp_sreader **sr); /* free after an error */

/* Writer pieces: the frame up to its volumes (head's own volumes included, nstream more to come),
 * then per streamed volume its header and payload. vp_case_write() is head + vp_out_end_frame(). */
int vp_case_write_head(vp_out *out, const vp_case *c, int nstream);
int vp_case_write_vol_head(vp_out *out, const char *name, const vp_vol *hdr, struct vp_payload_writer *pw);
int vp_payload_write(struct vp_payload_writer *pw, const void *buf, size_t n);

vp_vol *vp_case_vol(const vp_case *c, const char *name); /* NULL if absent */
void vp_case_add_vol(vp_case *c, const char *name, vp_vol *v); /* replaces a volume of that name */
vp_vol *vp_case_take_vol(vp_case *c, const char *name);        /* remove and return, or NULL */

/* Meta: values are raw msgpack. */
const vp_kv *vp_case_meta(const vp_case *c, const char *key);
void vp_case_meta_set(vp_case *c, const char *key, const void *raw, size_t len); /* copies */
void vp_case_meta_set_sbuf(vp_case *c, const char *key, const msgpack_sbuffer *sb);
void vp_case_meta_remove(vp_case *c, const char *key); /* no-op when absent */
/* Parse a meta value with msgpack-c into *u (msgpack_unpacked_init before, _destroy after);
 * the object is u->data. 0 ok, -1 absent or invalid. */
int vp_case_meta_parse(const vp_case *c, const char *key, msgpack_unpacked *u);
/* Append {"program", "version", "args"} to meta.provenance, using vp_cli_argv(). */
void vp_case_add_provenance(vp_case *c, const char *program);

/* Pack a str with msgpack-c. */
void vp_pack_cstr(msgpack_packer *pk, const char *s);

#endif
