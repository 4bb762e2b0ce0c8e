/* fanout_proto.h - the fan-out wire protocol (docs/FANOUT.md) and its security: CurveZMQ keys,
 * the allow-list, the ZAP handler thread.
 *
 * Every message between the broker (ROUTER) and a worker (DEALER) is multipart:
 *   part 0 "VPF1" (protocol and version), part 1 the command, then the command's arguments.
 * The broker's ROUTER prefixes the worker's routing id; these helpers see the parts after it.
 *
 * Ownership: vp_fo_msg owns its parts (vp_fo_msg_close releases them); vp_fo_send copies what it
 * sends, vp_fo_send_shared shares a message the caller keeps (reference counted by ZeroMQ), and
 * vp_fo_send_owned takes a malloc'd buffer over (ZeroMQ frees it); the allow-list returned by
 * vp_fo_allow_load is freed with vp_fo_allow_free; a ZAP handler is stopped by vp_fo_zap_stop
 * (after the context's other sockets are closed, before zmq_ctx_term).
 */
#ifndef VP_FANOUT_PROTO_H
#define VP_FANOUT_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#define VP_FO_PROTO "VPF1"
#define VP_FO_MAXPARTS 6

/* commands: worker -> broker */
#define VP_FO_READY "READY"         /* credit, worker name */
#define VP_FO_HEARTBEAT "HEARTBEAT" /* both directions, no arguments */
#define VP_FO_RESULT "RESULT"       /* sequence number, result frame */
#define VP_FO_FAILED "FAILED"       /* sequence number, reason (text) */
/* commands: broker -> worker */
#define VP_FO_CASE "CASE"           /* sequence number, case frame */
#define VP_FO_CANCEL "CANCEL"       /* sequence number: stop working on it, do not answer */
#define VP_FO_DISCONNECT "DISCONNECT" /* the broker does not know you: send READY again */
#define VP_FO_DONE "DONE"           /* the stream is over: exit */

/* A received message: routing id (ROUTER only) and up to VP_FO_MAXPARTS parts. */
typedef struct vp_fo_msg {
    zmq_msg_t id;
    int has_id;
    zmq_msg_t part[VP_FO_MAXPARTS];
    int n;
} vp_fo_msg;

/* Receive one whole multipart message (router = 1: the first part is a routing id). Returns 1 with
 * *m filled, 0 if nothing was waiting (ZMQ_DONTWAIT), -1 on error (errno, e.g. ETERM, EINTR).
 * A message with more parts than VP_FO_MAXPARTS, or a wrong protocol part, is read to its end and
 * reported as 2 with m->n = 0 (the caller logs and ignores it). */
int vp_fo_recv(void *sock, int router, vp_fo_msg *m);
void vp_fo_msg_close(vp_fo_msg *m);
/* Part i as data/size; vp_fo_is(m, 1, "CASE") compares a part with a string. */
const void *vp_fo_data(vp_fo_msg *m, int i, size_t *len);
int vp_fo_is(vp_fo_msg *m, int i, const char *s);
/* Part i parsed as a decimal unsigned number; -1 if it is not one. */
int64_t vp_fo_num(vp_fo_msg *m, int i);

/* Send [routing id] VPF1 cmd [arg1 [arg2]] (args: data+len, NULL for none). Copies the data.
 * Returns 0, or -1 (errno) when the peer is gone (ZMQ_ROUTER_MANDATORY) or the queue is full. */
int vp_fo_send(void *sock, const zmq_msg_t *route, const char *cmd, const void *a1, size_t n1,
               const void *a2, size_t n2);
/* Like vp_fo_send with a2 a message that is shared with ZeroMQ (zmq_msg_copy), not copied: the
 * caller keeps *data and may send it again. */
int vp_fo_send_shared(void *sock, const zmq_msg_t *route, const char *cmd, const void *a1, size_t n1,
                      zmq_msg_t *data);
/* Make *m a message that owns data (from malloc; freed when the last copy of *m is closed). */
void vp_fo_msg_from_buffer(zmq_msg_t *m, void *data, size_t n);
/* Worker side: send VPF1 cmd a1 data, where data (n bytes, from malloc) is handed to ZeroMQ without a
 * copy and freed by it once sent (or here, on failure). 0 ok, -1 (errno) as vp_fo_send. */
int vp_fo_send_owned(void *sock, const char *cmd, const void *a1, size_t n1, void *data, size_t n);

/* ---- keys: Z85 text, 40 characters. A public key file holds the key on its first line (text after
 * it is ignored); a secret key file holds "secret: Z85" and "public: Z85" lines and must not be
 * readable by group or others (refused otherwise). 0 ok, -1 error (printed). */
int vp_fo_key_load_public(const char *path, char z85[41]);
int vp_fo_key_load_secret(const char *path, char secret[41], char pub[41]);

/* The allow-list: a directory (every *.pub file in it) or a file (one Z85 key per line, '#'
 * comments). NULL on error (printed) or when it holds no key. */
typedef struct vp_fo_allow vp_fo_allow;
vp_fo_allow *vp_fo_allow_load(const char *path);
int vp_fo_allow_count(const vp_fo_allow *a);
void vp_fo_allow_free(vp_fo_allow **a);

/* Run the ZAP handler (RFC 27) for context ctx in a thread bound to inproc://zeromq.zap.01: a CURVE
 * client whose public key is in the allow-list is admitted (user id = the key), every other request
 * (unknown key, another mechanism) is refused with 400 and logged. Returns NULL on error (printed). */
typedef struct vp_fo_zap vp_fo_zap;
vp_fo_zap *vp_fo_zap_start(void *ctx, const vp_fo_allow *allow);
/* Stop and join the thread; returns how many peers it refused. */
long vp_fo_zap_stop(vp_fo_zap **z);

/* Frames of tens of MiB are allocated and freed case after case by the broker and the worker; glibc
 * would map and unmap each one (a page fault per 4 KiB, every time). Keep them in one heap instead,
 * for reuse. Call once at start, before any thread starts. */
void vp_fo_malloc_tune(void);

/* Check libzmq's CURVE support (libsodium): 1 yes, 0 no (printed as an error when need = 1). */
int vp_fo_have_curve(int need);

#endif
