/* fanout_frame.h - find where one voxpipe frame ends in a byte stream that is still arriving, and
 * where its case id is, without decoding it: the fan-out worker uses it to cut a long-running
 * filter's stdout into one result frame per case, and to check that the id is the case's own.
 *
 * Only msgpack's structure is walked (lengths and counts); payloads are skipped, never copied, so a
 * scan costs a few steps per msgpack object whatever the volume sizes. A scan can be resumed after
 * more bytes arrived: it continues from the last top-level key or value it finished.
 *
 * Ownership: vp_fo_scan is a plain value (no allocation); it points into no buffer (offsets only).
 */
#ifndef VP_FANOUT_FRAME_H
#define VP_FANOUT_FRAME_H

#include <stddef.h>
#include <stdint.h>

typedef struct vp_fo_scan {
    size_t pos;           /* offset after the last finished top-level item (the frame's end when done) */
    uint64_t items, done; /* top-level map: keys + values, and how many were finished */
    int started;          /* the map header was read */
    int key_is_id;        /* the last key finished was "id" */
    size_t id_off, id_len; /* the id string's bytes (valid when have_id) */
    int have_id;
} vp_fo_scan;

/* Start a new scan (a new frame at offset 0 of the buffer). */
void vp_fo_scan_init(vp_fo_scan *s);

/* Scan buf[0..len) (the same bytes as before plus any that arrived since) for one whole frame.
 * Returns 1 when the frame is complete (it ends at s->pos; bytes after it belong to no frame of
 * this scan); 0 when more bytes are needed (*need: the length the buffer must reach at least, a
 * hint for growing it); -1 when the bytes are not a msgpack map (not a frame). */
int vp_fo_scan_frame(vp_fo_scan *s, const unsigned char *buf, size_t len, size_t *need);

/* Scan a complete buffer: 0 when buf holds exactly one frame with a string "id" (its bytes are
 * returned through id and idlen, pointing into buf), -1 otherwise. */
int vp_fo_frame_id(const unsigned char *buf, size_t len, const unsigned char **id, size_t *idlen);

#endif
