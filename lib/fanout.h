/* fanout.h - the fan-out broker: one input stream of cases handed to remote workers, one output
 * stream of results, each case id exactly once (docs/FANOUT.md: protocol and design).
 *
 * Ownership: the config's strings belong to the caller (argv); vp_fanout_run owns everything it
 * opens (endpoints, sockets, the ZAP thread, the reader thread) and releases it before returning.
 */
#ifndef VP_FANOUT_H
#define VP_FANOUT_H

#include <stdint.h>

struct vp_fanout_cfg {
    const char *in_spec, *out_spec; /* any vp_in / vp_out spec */
    const char *bind;               /* ROUTER endpoint workers connect to, e.g. tcp://<any>:5560 */
    int ordered;                    /* emit in input order */
    long window;                    /* --ordered: most cases between the oldest unwritten and the newest read */
    long max_attempts;              /* a case that fails on this many workers is given up */
    long heartbeat_ms, timeout_ms;  /* heartbeat interval; a peer silent this long is dead */
    long case_timeout_ms;           /* a case not answered this long is taken back (0: never) */
    uint64_t max_frame;             /* largest frame (bytes) a peer may send: ZMQ_MAXMSGSIZE */
    const char *key_file;           /* broker secret key (CURVE) */
    const char *allow;              /* allow-list of worker public keys (dir or file) */
    int insecure;                   /* plain TCP, no CURVE, no ZAP */
};

/* Run the broker to the end of the input (or SIGINT/SIGTERM); prints a summary on stderr.
 * Returns 0 when every case has its result; 1 when a case was given up (after max_attempts
 * failures) or a runtime error occurred; 130 when interrupted (the cases already read are
 * finished and written first; a second signal aborts and discards the output). */
int vp_fanout_run(const struct vp_fanout_cfg *cfg);

#endif
