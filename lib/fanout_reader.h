/* fanout_reader.h - the broker's input thread: reads cases from any vp_in spec, encodes each as one
 * frame in memory, and hands them to the main loop only as fast as the main loop asks (credit), so
 * the broker never blocks on its input and never holds more cases than it has asked for.
 *
 * Ownership: vp_fo_reader_open/close own the input endpoint and the thread; a vp_fo_item returned by
 * vp_fo_reader_take belongs to the caller (free item->id, item->data, then item).
 */
#ifndef VP_FANOUT_READER_H
#define VP_FANOUT_READER_H

#include <stddef.h>
#include <stdint.h>

typedef struct vp_fo_item {
    char *id;
    unsigned char *data; /* the encoded frame */
    size_t len;
    struct vp_fo_item *next;
} vp_fo_item;

typedef struct vp_fo_reader vp_fo_reader;

/* Open the input and start the thread. NULL on error (printed). */
vp_fo_reader *vp_fo_reader_open(const char *in_spec);
/* File descriptor that becomes readable when an item or the end is ready (for zmq_poll). */
int vp_fo_reader_fd(const vp_fo_reader *r);
/* Allow the thread to read n more cases. */
void vp_fo_reader_ask(vp_fo_reader *r, int n);
/* Next item read, or NULL; *end = 1 once the input is over and every item was taken, with *rc the
 * read status (0 clean end, else an exit code). */
vp_fo_item *vp_fo_reader_take(vp_fo_reader *r, int *end, int *rc);
/* Stop: joins the thread when it is idle or done; a thread blocked in a read is left behind
 * (detached) since the process is about to exit. */
void vp_fo_reader_close(vp_fo_reader **r);

#endif
