/* fanout_worker.c - see fanout_worker.h */
#include "fanout_worker.h"
#include "fanout_proto.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct job {                 /* one case: waiting, or running in a child */
    uint64_t seq;
    unsigned char *in; size_t inlen, inpos;
    unsigned char *out; size_t outlen, outcap;
    pid_t pid;               /* 0 = waiting */
    int to_child, from_child; /* -1 when closed */
    int cancelled;
};

struct wstate {
    const struct vp_fo_worker_cfg *cfg;
    void *ctx, *sock;
    struct job *jobs; int njobs;  /* held cases, at most credit */
    long done, failed;
};

static volatile sig_atomic_t stop_signal;
static void on_signal(int sig) { stop_signal = sig; }

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void job_free(struct job *j)
{
    if (j->to_child >= 0) close(j->to_child);
    if (j->from_child >= 0) close(j->from_child);
    if (j->pid > 0) { kill(j->pid, SIGKILL); waitpid(j->pid, NULL, 0); }
    free(j->in);
    free(j->out);
}

static void drop_job(struct wstate *w, int i)
{
    job_free(&w->jobs[i]);
    w->jobs[i] = w->jobs[--w->njobs];
}

static void drop_all(struct wstate *w)
{
    while (w->njobs) drop_job(w, w->njobs - 1);
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
    drop_all(w);
    int linger = 0;
    zmq_setsockopt(w->sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(w->sock);
    if (open_socket(w)) vp_die(VP_ERR_RUNTIME, "cannot reconnect");
}

static int start_child(struct wstate *w, struct job *j)
{
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC)) return -1;
    if (pipe2(out, O_CLOEXEC)) { close(in[0]); close(in[1]); return -1; }
    pid_t pid = fork();
    if (pid < 0) { close(in[0]); close(in[1]); close(out[0]); close(out[1]); return -1; }
    if (pid == 0) {
        signal(SIGPIPE, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        dup2(in[0], 0);
        dup2(out[1], 1);
        execvp(w->cfg->argv[0], w->cfg->argv);
        fprintf(stderr, "%s: error: cannot run '%s': %s\n", vp_progname, w->cfg->argv[0], strerror(errno));
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    fcntl(in[1], F_SETFL, O_NONBLOCK);
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    j->pid = pid;
    j->to_child = in[1];
    j->from_child = out[0];
    return 0;
}

/* The id of the one frame in buf, or -1 if buf is not exactly one msgpack map with a str "id". */
static int frame_id(const unsigned char *buf, size_t len, char *id, size_t idcap)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    int rc = -1;
    if (msgpack_unpack_next(&u, (const char *)buf, len, &off) == MSGPACK_UNPACK_SUCCESS && off == len &&
        u.data.type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < u.data.via.map.size; i++) {
            msgpack_object_kv *kv = &u.data.via.map.ptr[i];
            if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == 2 && !memcmp(kv->key.via.str.ptr, "id", 2) &&
                kv->val.type == MSGPACK_OBJECT_STR && kv->val.via.str.size < idcap) {
                memcpy(id, kv->val.via.str.ptr, kv->val.via.str.size);
                id[kv->val.via.str.size] = 0;
                rc = 0;
            }
        }
    }
    msgpack_unpacked_destroy(&u);
    return rc;
}

/* The child of job i exited with status st: answer the broker. */
static void finish_job(struct wstate *w, int i, int st)
{
    struct job *j = &w->jobs[i];
    j->pid = 0;
    char seq[24], why[300] = "", inid[1100], outid[1100];
    int k = snprintf(seq, sizeof seq, "%llu", (unsigned long long)j->seq);
    if (j->cancelled) { drop_job(w, i); return; }
    if (!WIFEXITED(st) || WEXITSTATUS(st))
        snprintf(why, sizeof why, "'%s' %s %d", w->cfg->argv[0], WIFEXITED(st) ? "exited with status" : "killed by signal",
                 WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    else if (frame_id(j->in, j->inlen, inid, sizeof inid) || frame_id(j->out, j->outlen, outid, sizeof outid))
        snprintf(why, sizeof why, "'%s' did not write exactly one frame", w->cfg->argv[0]);
    else if (strcmp(inid, outid))
        snprintf(why, sizeof why, "'%s' changed the case id", w->cfg->argv[0]);
    if (*why) {
        vp_warn("case #%s: %s", seq, why);
        w->failed++;
        vp_fo_send(w->sock, NULL, VP_FO_FAILED, seq, (size_t)k, why, strlen(why));
    } else if (vp_fo_send(w->sock, NULL, VP_FO_RESULT, seq, (size_t)k, j->out, j->outlen)) {
        vp_warn("case #%s: result could not be sent (%s); the broker will hand it out again", seq, zmq_strerror(errno));
    } else {
        w->done++;
    }
    drop_job(w, i);
}

/* Move bytes between the children and their buffers; reap children that are done. */
static void pump(struct wstate *w)
{
    for (int i = 0; i < w->njobs; i++) {
        struct job *j = &w->jobs[i];
        if (!j->pid) continue;
        while (j->to_child >= 0 && j->inpos < j->inlen) {
            ssize_t n = write(j->to_child, j->in + j->inpos, j->inlen - j->inpos);
            if (n > 0) j->inpos += (size_t)n;
            else { if (n < 0 && (errno == EAGAIN || errno == EINTR)) break; j->inpos = j->inlen; }
        }
        if (j->to_child >= 0 && j->inpos == j->inlen) { close(j->to_child); j->to_child = -1; }
        while (j->from_child >= 0) {
            if (j->outcap - j->outlen < 65536) {
                j->outcap = j->outcap ? 2 * j->outcap : 1 << 20;
                j->out = vp_realloc(j->out, j->outcap);
            }
            ssize_t n = read(j->from_child, j->out + j->outlen, j->outcap - j->outlen);
            if (n > 0) j->outlen += (size_t)n;
            else if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
            else { close(j->from_child); j->from_child = -1; }
        }
        int st;
        if (j->from_child < 0 && waitpid(j->pid, &st, WNOHANG) == j->pid) { finish_job(w, i, st); i--; }
    }
    int running = 0;
    for (int i = 0; i < w->njobs; i++) running += w->jobs[i].pid > 0;
    for (int i = 0; i < w->njobs && running < w->cfg->jobs; i++) {
        struct job *j = &w->jobs[i];
        if (j->pid || j->cancelled) continue;
        if (start_child(w, j)) {
            char seq[24], why[] = "cannot start the filter process";
            int k = snprintf(seq, sizeof seq, "%llu", (unsigned long long)j->seq);
            vp_fo_send(w->sock, NULL, VP_FO_FAILED, seq, (size_t)k, why, strlen(why));
            drop_job(w, i--);
            continue;
        }
        running++;
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
        struct job *j = &w->jobs[w->njobs++];
        memset(j, 0, sizeof *j);
        j->seq = (uint64_t)seq;
        j->in = vp_malloc(n ? n : 1);
        memcpy(j->in, d, n);
        j->inlen = n;
        j->to_child = j->from_child = -1;
        vp_debug("case #%lld received (%zu bytes)", (long long)seq, n);
    } else if (vp_fo_is(m, 1, VP_FO_CANCEL)) {
        int64_t seq = vp_fo_num(m, 2);
        for (int i = 0; i < w->njobs; i++)
            if ((int64_t)w->jobs[i].seq == seq) {
                if (w->jobs[i].pid > 0) { kill(w->jobs[i].pid, SIGKILL); w->jobs[i].cancelled = 1; }
                else drop_job(w, i);
                break;
            }
    } else if (vp_fo_is(m, 1, VP_FO_DISCONNECT)) {
        reconnect(w, "the broker does not know this worker");
    } else if (vp_fo_is(m, 1, VP_FO_DONE)) {
        return 0;
    }
    return 1;
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
    int rc = 0;
    if (open_socket(&w)) { rc = VP_ERR_RUNTIME; goto out; }
    int64_t last_recv = now_ms(), next_hb = now_ms() + cfg->heartbeat_ms;
    for (;;) {
        if (stop_signal) { rc = VP_ERR_INTR; break; }
        zmq_pollitem_t it[1 + 2 * 1024];
        int n = 0;
        it[n++] = (zmq_pollitem_t){w.sock, 0, ZMQ_POLLIN, 0};
        for (int i = 0; i < w.njobs; i++) {
            if (w.jobs[i].to_child >= 0) it[n++] = (zmq_pollitem_t){NULL, w.jobs[i].to_child, ZMQ_POLLOUT, 0};
            if (w.jobs[i].from_child >= 0) it[n++] = (zmq_pollitem_t){NULL, w.jobs[i].from_child, ZMQ_POLLIN, 0};
        }
        int anyexit = 0;
        for (int i = 0; i < w.njobs; i++) anyexit |= w.jobs[i].pid > 0 && w.jobs[i].from_child < 0;
        if (zmq_poll(it, n, anyexit ? 5 : 100) < 0 && errno != EINTR) { rc = vp_error("poll failed: %s", zmq_strerror(errno)) ? VP_ERR_RUNTIME : 0; break; }
        vp_fo_msg m;
        int k, go = 1;
        while (go && (k = vp_fo_recv(w.sock, 0, &m)) > 0) {
            last_recv = now_ms();
            if (k == 1) go = on_message(&w, &m);
            vp_fo_msg_close(&m);
        }
        if (!go) { vp_debug("the broker says the stream is over"); break; }
        pump(&w);
        int64_t t = now_ms();
        if (t >= next_hb) { vp_fo_send(w.sock, NULL, VP_FO_HEARTBEAT, NULL, 0, NULL, 0); next_hb = t + cfg->heartbeat_ms; }
        if (t - last_recv > cfg->timeout_ms) { reconnect(&w, "the broker is silent past the timeout"); last_recv = now_ms(); }
    }
out:
    drop_all(&w);
    if (w.sock) zmq_close(w.sock);
    zmq_ctx_term(w.ctx);
    free(w.jobs);
    vp_info("%ld case(s) done, %ld failed", w.done, w.failed);
    return rc;
}
