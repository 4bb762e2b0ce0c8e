/* fanout_worker.h - the worker side of the fan-out: connects (DEALER) to a fanout broker, announces
 * its credit, heartbeats, and feeds each case to a filter command through pipes (the case frame on
 * the child's stdin, its one result frame from the child's stdout), so any voxpipe program scales
 * out unchanged. By default each of the --jobs slots keeps one long-running filter process that
 * streams case after case (voxpipe filters flush one frame per case); a process that dies fails its
 * case and the next case starts a new one. With fresh = 1 every case gets its own process, for
 * programs that read their whole input before writing. A single-threaded event loop polls the
 * socket and the children's pipes together, so heartbeats continue while a filter runs.
 *
 * Ownership: the config's strings and argv belong to the caller; vp_fo_worker_run owns its socket,
 * children and buffers and releases them before returning.
 */
#ifndef VP_FANOUT_WORKER_H
#define VP_FANOUT_WORKER_H

#include <stdint.h>

struct vp_fo_worker_cfg {
    const char *connect;            /* broker endpoint, e.g. tcp://head:5560 */
    const char *name;               /* shown in the broker's log and summary */
    long credit;                    /* most cases held at once (running + waiting) */
    long jobs;                      /* filter processes run at once (<= credit) */
    long heartbeat_ms, timeout_ms;  /* the broker silent this long: reconnect */
    uint64_t max_frame;             /* ZMQ_MAXMSGSIZE */
    const char *key_file;           /* this worker's secret key (CURVE) */
    const char *server_key;         /* the broker's public key file */
    int insecure;
    int fresh;                      /* a new filter process per case (default: one per slot, kept) */
    char **argv;                    /* FILTER ARGS... (NULL-terminated) */
};

/* Serve until the broker says DONE (exit 0) or SIGINT/SIGTERM (130); 1 on a setup error. */
int vp_fo_worker_run(const struct vp_fo_worker_cfg *cfg);

#endif
