/* endpoint.h - where a stream comes from and goes to.
 *
 * A spec is "-" (stdin/stdout), a file path, or a ZeroMQ endpoint in CZMQ's convention:
 * "@tcp://<any>:5557" binds (<any> = the star wildcard), ">tcp://host:5557" connects (also ipc://, inproc://); without a prefix an
 * input binds and an output connects. Pipes and files carry a byte stream; ZeroMQ carries one frame
 * per message over PUSH/PULL, and the writer ends the stream with an end-of-stream frame.
 *
 * Ownership: vp_in_open/vp_out_open return handles the caller closes with vp_in_close/vp_out_close,
 * which set the caller's pointer to NULL. A file output is written to a temporary file beside the
 * target and renamed over it only by vp_out_close(&o, 1): a failed run leaves no half-written file.
 */
#ifndef VP_ENDPOINT_H
#define VP_ENDPOINT_H

#include <stddef.h>
#include <stdint.h>

typedef struct vp_in vp_in;
typedef struct vp_out vp_out;

#define VP_UNKNOWN_SIZE UINT64_MAX

/* Returns NULL after printing "prog: error: ..." on failure. */
vp_in *vp_in_open(const char *spec);
/* Start the next frame: 1 = there is one, 0 = clean end of stream, -1 = error (printed). */
int vp_in_begin_frame(vp_in *in);
/* Read exactly n bytes of the current frame: 0 ok, -1 = short (truncated) or I/O error. */
int vp_in_read(vp_in *in, void *buf, size_t n);
/* Bytes known to remain in the current frame (message or file), or VP_UNKNOWN_SIZE (pipe). */
uint64_t vp_in_remaining(const vp_in *in);
/* Finish the current frame; -1 if a message had trailing bytes. */
int vp_in_end_frame(vp_in *in);
/* True when the input is message based (ZeroMQ): streams end with an end-of-stream frame. */
int vp_in_is_msg(const vp_in *in);
const char *vp_in_name(const vp_in *in);
/* Why the last vp_in_read failed ("unexpected end of input", an errno string, ...). */
const char *vp_in_errmsg(const vp_in *in);
void vp_in_close(vp_in **in);

enum { VP_OUT_ALLOW_TTY = 1 };
vp_out *vp_out_open(const char *spec, int flags);
int vp_out_write(vp_out *o, const void *buf, size_t n); /* 0 ok, -1 error (printed) */
int vp_out_end_frame(vp_out *o);                        /* flush a pipe, send a message */
int vp_out_is_msg(const vp_out *o);
const char *vp_out_name(const vp_out *o);
/* commit = 1: flush, end the stream, rename a temp file into place; 0: discard. 0 ok, -1 error. */
int vp_out_close(vp_out **o, int commit);

/* Move n bytes of the current frame from in to out without passing them through user space where
 * the kernel can (splice between pipes and files); falls back to a copy. 0 ok, -2 short input
 * (truncated), -1 other error (printed). */
int vp_in_splice_to(vp_in *in, vp_out *out, uint64_t n);
/* Append n bytes of file fd at offset off to out (sendfile/splice where possible). 0 ok, -1 error. */
int vp_out_copy_fd(vp_out *out, int fd, uint64_t off, uint64_t n);

/* ZeroMQ high-water mark in frames for both directions (default 4, env VOXPIPE_HWM). */
int vp_zmq_hwm(void);

#endif
