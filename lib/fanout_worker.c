/* fanout_worker.c - see fanout_worker.h */
#include "fanout_worker.h"
#include "fanout_frame.h"
#include "fanout_proto.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PIPE_BYTES (1 << 20) /* pipe buffer asked for (F_SETPIPE_SZ): fewer wake-ups per frame */

struct job {                 /* one held case: waiting (slot -1) or running in a slot */
    int used;
    uint64_t seq;
    zmq_msg_t in;            /* the case frame as received (no copy) */
    int slot;
};

struct slot {                /* one filter process, running or not */
    pid_t pid;               /* 0: none */
    int to_child, from_child; /* -1 when closed */
    int job;                 /* index into jobs, -1: idle */
    size_t inpos;            /* bytes of the job's frame written to the child */
    unsigned char *out; size_t outlen, outcap;
    size_t hint;             /* the last result's size: the next buffer starts that large */
    vp_fo_scan scan;
    int eof;                 /* the child closed its stdout */
    int exited, status;      /* the child exited (reaped, with this wait status) */
};

struct wstate {
    const struct vp_fo_worker_cfg *cfg;
    void *ctx, *sock;
    struct job *jobs; int njobs;  /* jobs[credit]; njobs = how many are used */
    struct slot *slots;           /* slots[cfg->jobs] */
    long done, failed, started;
};

static volatile sig_atomic_t stop_signal;
static void on_signal(int sig) { stop_signal = sig; }

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void close_fd(int *fd) { if (*fd >= 0) close(*fd); *fd = -1; }

/* Reap the slot's child: kill it first when kill_it, else wait up to grace_ms for it to exit (then
 * kill it); then kill what is left of its process group (the other stages of a pipeline). Returns
 * its wait status. */
static int reap(struct slot *s, int kill_it, int grace_ms)
{
    int st = s->status;
    if (s->pid > 0) {
        if (!s->exited) {
            if (kill_it) kill(-s->pid, SIGKILL);
            for (int t = 0; waitpid(s->pid, &st, kill_it ? 0 : WNOHANG) == 0; t++) {
                if (t >= grace_ms) { kill(-s->pid, SIGKILL); kill_it = 1; continue; }
                usleep(1000);
            }
        }
        kill(-s->pid, SIGKILL);
    }
    s->pid = 0;
    s->exited = 0;
    close_fd(&s->to_child);
    close_fd(&s->from_child);
    s->eof = 0;
    return st;
}

static void job_release(struct wstate *w, int ji)
{
    struct job *j = &w->jobs[ji];
    if (!j->used) return;
    zmq_msg_close(&j->in);
    j->used = 0;
    w->njobs--;
}

/* The slot's case is over (answered, failed or cancelled): release it and reset the buffers. */
static void slot_clear(struct wstate *w, struct slot *s)
{
    if (s->job >= 0) job_release(w, s->job);
    s->job = -1;
    s->inpos = 0;
    s->outlen = 0;
    vp_fo_scan_init(&s->scan);
}

static void drop_all(struct wstate *w, int keep_idle)
{
    for (long i = 0; i < w->cfg->jobs; i++) {
        struct slot *s = &w->slots[i];
        if (s->job >= 0 || !keep_idle) reap(s, 1, 0);
        slot_clear(w, s);
    }
    for (long i = 0; i < w->cfg->credit; i++) job_release(w, (int)i);
}

static int open_socket(struct wstate *w)
{
    const struct vp_fo_worker_cfg *cfg = w->cfg;
    w->sock = zmq_socket(w->ctx, ZMQ_DEALER);
    int linger = 1000;
    int64_t maxmsg = (int64_t)cfg->max_frame + 4096;
    zmq_setsockopt(w->sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(w->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    int sndtimeo = (int)cfg->heartbeat_ms; /* no broker to send to: give up on this message */
    zmq_setsockopt(w->sock, ZMQ_SNDTIMEO, &sndtimeo, sizeof sndtimeo);
    if (!cfg->insecure) {
        char sec[41], pub[41], srv[41];
        if (vp_fo_key_load_secret(cfg->key_file, sec, pub) || vp_fo_key_load_public(cfg->server_key, srv)) return -1;
        zmq_setsockopt(w->sock, ZMQ_CURVE_SERVERKEY, srv, 40);
        zmq_setsockopt(w->sock, ZMQ_CURVE_PUBLICKEY, pub, 40);
        zmq_setsockopt(w->sock, ZMQ_CURVE_SECRETKEY, sec, 40);
        memset(sec, 0, sizeof sec);
    }
    if (zmq_connect(w->sock, cfg->connect)) return vp_error("'%s': cannot connect: %s", cfg->connect, zmq_strerror(errno));
    char credit[24];
    int k = snprintf(credit, sizeof credit, "%ld", cfg->credit);
    /* may time out while the broker is not up yet: our heartbeats then reach it as an unknown peer,
     * it answers DISCONNECT, and we send READY again */
    vp_fo_send(w->sock, NULL, VP_FO_READY, credit, (size_t)k, cfg->name, strlen(cfg->name));
    return 0;
}

static void reconnect(struct wstate *w, const char *why)
{
    vp_warn("%s; dropping %d held case(s) and registering again", why, w->njobs);
    drop_all(w, 1);
    int linger = (int)w->cfg->heartbeat_ms; /* a result already queued (a late one) may still go out */
    zmq_setsockopt(w->sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(w->sock);
    if (open_socket(w)) vp_die(VP_ERR_RUNTIME, "cannot reconnect");
}

static int start_child(struct wstate *w, struct slot *s)
{
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC)) return -1;
    if (pipe2(out, O_CLOEXEC)) { close(in[0]); close(in[1]); return -1; }
    pid_t pid = fork();
    if (pid < 0) { close(in[0]); close(in[1]); close(out[0]); close(out[1]); return -1; }
    if (pid == 0) {
        setpgid(0, 0); /* its own process group: a pipeline is stopped as a whole */
        signal(SIGPIPE, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        dup2(in[0], 0);
        dup2(out[1], 1);
        execvp(w->cfg->argv[0], w->cfg->argv);
        fprintf(stderr, "%s: error: cannot run '%s': %s\n", vp_progname, w->cfg->argv[0], strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid);
    close(in[0]);
    close(out[1]);
    fcntl(in[1], F_SETPIPE_SZ, PIPE_BYTES); /* best effort: a smaller pipe only costs wake-ups */
    fcntl(out[0], F_SETPIPE_SZ, PIPE_BYTES);
    fcntl(in[1], F_SETFL, O_NONBLOCK);
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    s->pid = pid;
    s->to_child = in[1];
    s->from_child = out[0];
    s->eof = 0;
    w->started++;
    vp_debug("started '%s' (pid %d)", w->cfg->argv[0], (int)pid);
    return 0;
}

static void send_failed(struct wstate *w, uint64_t seq, const char *why)
{
    char sq[24];
    int k = snprintf(sq, sizeof sq, "%llu", (unsigned long long)seq);
    vp_warn("case #%s: %s", sq, why);
    w->failed++;
    vp_fo_send(w->sock, NULL, VP_FO_FAILED, sq, (size_t)k, why, strlen(why));
}

/* The slot's child wrote a whole frame (s->out[0..len)): check its id and send it as the result. */
static void send_result(struct wstate *w, struct slot *s, size_t len)
{
    struct job *j = &w->jobs[s->job];
    const unsigned char *inid, *outid;
    size_t inlen, outlen;
    if (vp_fo_frame_id(zmq_msg_data(&j->in), zmq_msg_size(&j->in), &inid, &inlen) ||
        vp_fo_frame_id(s->out, len, &outid, &outlen) || inlen != outlen || memcmp(inid, outid, inlen)) {
        char why[300];
        snprintf(why, sizeof why, "'%s' changed the case id", w->cfg->argv[0]);
        send_failed(w, j->seq, why);
        return;
    }
    char sq[24];
    int k = snprintf(sq, sizeof sq, "%llu", (unsigned long long)j->seq);
    s->hint = len;
    unsigned char *data = s->out; /* handed to ZeroMQ: the next result gets a new buffer */
    s->out = NULL;
    s->outcap = 0;
    if (vp_fo_send_owned(w->sock, VP_FO_RESULT, sq, (size_t)k, data, len))
        vp_warn("case #%s: result could not be sent (%s); the broker will hand it out again", sq, zmq_strerror(errno));
    else {
        w->done++;
        vp_debug("case #%s done (%zu bytes)", sq, len);
    }
}

/* Why a child's exit status st fails a case, in why[300]. */
static void exit_reason(struct wstate *w, int st, char *why)
{
    snprintf(why, 300, "'%s' %s %d", w->cfg->argv[0], WIFEXITED(st) ? "exited with status" : "killed by signal",
             WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
}

/* Move bytes between one slot's child and its buffers, and finish its case when its result is whole. */
static void pump_slot(struct wstate *w, struct slot *s)
{
    const int fresh = w->cfg->fresh;
    struct job *j = s->job >= 0 ? &w->jobs[s->job] : NULL;
    /* a long-running filter that exited (even with its stdout still open, in a pipeline) is gone;
     * checked before reading so that all it wrote is read below */
    if (!fresh && s->pid > 0 && !s->exited && waitpid(s->pid, &s->status, WNOHANG) == s->pid) s->exited = 1;
    if (j && s->to_child >= 0 && !s->exited) {
        const unsigned char *d = zmq_msg_data(&j->in);
        size_t n = zmq_msg_size(&j->in);
        while (s->inpos < n) {
            ssize_t k = write(s->to_child, d + s->inpos, n - s->inpos);
            if (k > 0) s->inpos += (size_t)k;
            else if (k < 0 && (errno == EAGAIN || errno == EINTR)) break;
            else { close_fd(&s->to_child); break; } /* the child is gone: its exit tells why */
        }
        if (fresh && s->inpos == n) close_fd(&s->to_child);
    }
    while (s->from_child >= 0 && !s->eof) {
        if (s->outcap - s->outlen < 65536) {
            size_t want = s->outcap ? 2 * s->outcap : (s->hint + 65536 > (1u << 20) ? s->hint + 65536 : (1u << 20));
            s->out = vp_realloc(s->out, want);
            s->outcap = want;
        }
        ssize_t n = read(s->from_child, s->out + s->outlen, s->outcap - s->outlen);
        if (n > 0) s->outlen += (size_t)n;
        else if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
        else s->eof = 1;
        if (!fresh && j && n > 0) { /* grow straight to the size the frame's headers announce */
            size_t need;
            int k = vp_fo_scan_frame(&s->scan, s->out, s->outlen, &need);
            if (k == 1) break;
            if (k == 0 && need > w->cfg->max_frame + 4096) break; /* refused below */
            if (k == 0 && need > s->outcap) { s->out = vp_realloc(s->out, need + 65536); s->outcap = need + 65536; }
        }
    }
    char why[300];
    if (!fresh) {
        if (j) {
            size_t need;
            int k = s->outlen ? vp_fo_scan_frame(&s->scan, s->out, s->outlen, &need) : 0;
            if (k == 0 && s->outlen && need > w->cfg->max_frame + 4096) k = -1;
            if (k == 1 && s->scan.pos == s->outlen) { send_result(w, s, s->outlen); slot_clear(w, s); return; }
            if (k == 1 || k < 0) {
                snprintf(why, sizeof why, "'%s' did not write exactly one frame for the case; restarted", w->cfg->argv[0]);
                reap(s, 1, 0);
                send_failed(w, j->seq, why);
                slot_clear(w, s);
                return;
            }
        } else if (s->outlen) {
            vp_warn("'%s' wrote output without a case; restarted", w->cfg->argv[0]);
            reap(s, 1, 0);
            s->outlen = 0;
            return;
        }
        if (s->eof || s->exited) { /* died: fail its case, the next case starts a new process */
            int st = reap(s, 0, 200);
            exit_reason(w, st, why);
            if (j) { send_failed(w, j->seq, why); slot_clear(w, s); }
            else vp_warn("%s while idle", why);
        }
        return;
    }
    if (!s->eof) return;
    int st;
    if (waitpid(s->pid, &st, WNOHANG) != s->pid) return; /* closed its stdout, not exited yet */
    s->exited = 1;
    s->status = st;
    reap(s, 0, 0);
    const unsigned char *id;
    size_t idl;
    if (!WIFEXITED(st) || WEXITSTATUS(st)) exit_reason(w, st, why);
    else if (vp_fo_frame_id(s->out, s->outlen, &id, &idl))
        snprintf(why, sizeof why, "'%s' did not write exactly one frame", w->cfg->argv[0]);
    else if (j) { send_result(w, s, s->outlen); slot_clear(w, s); return; }
    if (j) send_failed(w, j->seq, why);
    slot_clear(w, s);
}

/* Pump every slot, then give waiting cases to idle slots (starting a process where none runs). */
static void pump(struct wstate *w)
{
    for (long i = 0; i < w->cfg->jobs; i++) pump_slot(w, &w->slots[i]);
    for (long i = 0; i < w->cfg->jobs; i++) {
        struct slot *s = &w->slots[i];
        if (s->job >= 0) continue;
        int ji = -1;
        for (long k = 0; k < w->cfg->credit && ji < 0; k++) if (w->jobs[k].used && w->jobs[k].slot < 0) ji = (int)k;
        if (ji < 0) break;
        if (s->pid && (s->exited || s->eof)) reap(s, 0, 200);
        if (!s->pid && start_child(w, s)) {
            send_failed(w, w->jobs[ji].seq, "cannot start the filter process");
            job_release(w, ji);
            i--;
            continue;
        }
        s->job = ji;
        w->jobs[ji].slot = (int)i;
        pump_slot(w, s);
    }
}

/* 1 = keep going, 0 = DONE */
static int on_message(struct wstate *w, vp_fo_msg *m)
{
    if (vp_fo_is(m, 1, VP_FO_CASE)) {
        int64_t seq = vp_fo_num(m, 2);
        size_t n;
        const void *d = vp_fo_data(m, 3, &n);
        if (seq < 0 || !d || w->njobs >= w->cfg->credit) { vp_warn("a CASE beyond the credit or malformed: ignored"); return 1; }
        int ji = 0;
        while (w->jobs[ji].used) ji++;
        struct job *j = &w->jobs[ji];
        j->used = 1;
        j->seq = (uint64_t)seq;
        j->slot = -1;
        zmq_msg_init(&j->in);
        zmq_msg_move(&j->in, &m->part[3]);
        w->njobs++;
        vp_debug("case #%lld received (%zu bytes)", (long long)seq, n);
    } else if (vp_fo_is(m, 1, VP_FO_CANCEL)) {
        int64_t seq = vp_fo_num(m, 2);
        for (long i = 0; i < w->cfg->credit; i++) {
            struct job *j = &w->jobs[i];
            if (!j->used || (int64_t)j->seq != seq) continue;
            vp_debug("case #%lld cancelled by the broker", (long long)seq);
            if (j->slot >= 0) { struct slot *s = &w->slots[j->slot]; reap(s, 1, 0); slot_clear(w, s); }
            else job_release(w, (int)i);
            break;
        }
    } else if (vp_fo_is(m, 1, VP_FO_DISCONNECT)) {
        reconnect(w, "the broker does not know this worker");
    } else if (vp_fo_is(m, 1, VP_FO_DONE)) {
        return 0;
    }
    return 1;
}

/* End of the stream: idle filters see the end of their input and exit by themselves. */
static void finish_children(struct wstate *w)
{
    for (long i = 0; i < w->cfg->jobs; i++) close_fd(&w->slots[i].to_child);
    for (long i = 0; i < w->cfg->jobs; i++) {
        struct slot *s = &w->slots[i];
        if (!s->pid) continue;
        int st = reap(s, s->job >= 0, 2000);
        if (s->job < 0 && (!WIFEXITED(st) || WEXITSTATUS(st))) {
            char why[300];
            exit_reason(w, st, why);
            vp_warn("at the end of the stream %s", why);
        }
    }
}

int vp_fo_worker_run(const struct vp_fo_worker_cfg *cfg)
{
    struct wstate w = {0};
    w.cfg = cfg;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    if (!cfg->insecure && !vp_fo_have_curve(1)) return VP_ERR_RUNTIME;
    if (!cfg->insecure) vp_debug("CURVE available (libsodium)");
    w.ctx = zmq_ctx_new();
    w.jobs = vp_calloc((size_t)cfg->credit, sizeof *w.jobs);
    w.slots = vp_calloc((size_t)cfg->jobs, sizeof *w.slots);
    for (long i = 0; i < cfg->jobs; i++) {
        w.slots[i].job = -1;
        w.slots[i].to_child = w.slots[i].from_child = -1;
    }
    int rc = 0, clean = 0;
    if (open_socket(&w)) { rc = VP_ERR_RUNTIME; goto out; }
    int64_t last_recv = now_ms(), next_hb = now_ms() + cfg->heartbeat_ms;
    for (;;) {
        if (stop_signal) { rc = VP_ERR_INTR; break; }
        zmq_pollitem_t it[1 + 2 * 1024];
        int n = 0, exiting = 0;
        it[n++] = (zmq_pollitem_t){w.sock, 0, ZMQ_POLLIN, 0};
        for (long i = 0; i < cfg->jobs; i++) {
            struct slot *s = &w.slots[i];
            if (s->job >= 0 && s->to_child >= 0 && s->inpos < zmq_msg_size(&w.jobs[s->job].in))
                it[n++] = (zmq_pollitem_t){NULL, s->to_child, ZMQ_POLLOUT, 0};
            if (s->from_child >= 0 && !s->eof) it[n++] = (zmq_pollitem_t){NULL, s->from_child, ZMQ_POLLIN, 0};
            exiting |= s->pid > 0 && s->eof; /* --fresh: stdout closed, waiting for the exit status */
        }
        int64_t t = now_ms();
        long wait = exiting ? 1 : (long)(next_hb > t ? next_hb - t : 0);
        if (zmq_poll(it, n, wait) < 0 && errno != EINTR) { rc = vp_error("poll failed: %s", zmq_strerror(errno)) ? VP_ERR_RUNTIME : 0; break; }
        vp_fo_msg m;
        int k, go = 1;
        while (go && (k = vp_fo_recv(w.sock, 0, &m)) > 0) {
            last_recv = now_ms();
            if (k == 1) go = on_message(&w, &m);
            vp_fo_msg_close(&m);
        }
        if (!go) { vp_debug("the broker says the stream is over"); clean = 1; break; }
        pump(&w);
        t = now_ms();
        if (t >= next_hb) { vp_fo_send(w.sock, NULL, VP_FO_HEARTBEAT, NULL, 0, NULL, 0); next_hb = t + cfg->heartbeat_ms; }
        if (t - last_recv > cfg->timeout_ms) { reconnect(&w, "the broker is silent past the timeout"); last_recv = now_ms(); }
    }
out:
    if (clean) finish_children(&w);
    drop_all(&w, 0);
    if (w.sock) zmq_close(w.sock);
    zmq_ctx_term(w.ctx);
    for (long i = 0; i < cfg->jobs; i++) free(w.slots[i].out);
    free(w.jobs);
    free(w.slots);
    vp_info("%ld case(s) done, %ld failed, %ld filter process(es) started", w.done, w.failed, w.started);
    return rc;
}
