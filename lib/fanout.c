/* fanout.c - see fanout.h. One thread runs the event loop below; fanout_reader.c reads the input. */
#include "fanout.h"
#include "fanout_proto.h"
#include "fanout_reader.h"
#include "endpoint.h"
#include "frame.h"
#include "util.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { ST_OPEN = 0, ST_DONE = 1, ST_GIVEN_UP = 2 };

struct fcase {           /* a case read and not yet written (or given up) */
    char *id;
    zmq_msg_t data;      /* the case frame: each CASE sent shares it (zmq_msg_copy, no byte copy) */
    size_t len;
    zmq_msg_t res;       /* result waiting for its turn (--ordered), as received */
    int has_data, has_res;
    int holder;          /* worker index, -1 when queued */
    int failures;
    int64_t sent_ms;
};

struct worker {
    unsigned char rid[256]; size_t rlen;
    char name[128];
    int alive, credit, inflight;
    int64_t last_seen, joined_ms;
    long done, failed;
    double busy_s;
};

struct broker {
    const struct vp_fanout_cfg *cfg;
    void *ctx, *sock;
    vp_fo_reader *rd;
    vp_out *out;
    struct fcase **cases; unsigned char *state; uint64_t ncases, cap; /* by sequence number */
    uint64_t *queue; size_t qhead, qlen, qcap;                         /* sequence numbers to send */
    struct worker *w; int nw;
    uint64_t next_emit, open_cases;
    int asked, input_end, input_rc;
    long retries, given_up, duplicates, written;
    int error;
    int64_t t0;
};

static volatile sig_atomic_t signals_seen;
static void on_signal(int sig) { (void)sig; signals_seen++; }

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void queue_push(struct broker *b, uint64_t seq, int front)
{
    if (b->qlen == b->qcap) {
        size_t nc = b->qcap ? 2 * b->qcap : 64;
        uint64_t *q = vp_malloc(nc * sizeof *q);
        for (size_t i = 0; i < b->qlen; i++) q[i] = b->queue[(b->qhead + i) % b->qcap];
        free(b->queue);
        b->queue = q; b->qcap = nc; b->qhead = 0;
    }
    if (front) { b->qhead = (b->qhead + b->qcap - 1) % b->qcap; b->queue[b->qhead] = seq; }
    else b->queue[(b->qhead + b->qlen) % b->qcap] = seq;
    b->qlen++;
}

static uint64_t queue_pop(struct broker *b)
{
    uint64_t s = b->queue[b->qhead];
    b->qhead = (b->qhead + 1) % b->qcap;
    b->qlen--;
    return s;
}

static void free_case(struct broker *b, uint64_t seq)
{
    struct fcase *c = b->cases[seq];
    if (!c) return;
    if (c->has_data) zmq_msg_close(&c->data);
    if (c->has_res) zmq_msg_close(&c->res);
    free(c->id); free(c);
    b->cases[seq] = NULL;
    b->open_cases--;
}

static int write_result(struct broker *b, const void *d, size_t n)
{
    if (b->error) return -1;
    if (vp_out_write(b->out, d, n) || vp_out_end_frame(b->out)) { b->error = 1; return -1; }
    b->written++;
    return 0;
}

/* --ordered: write every result whose predecessors are all written or given up. */
static void emit_ready(struct broker *b)
{
    while (b->next_emit < b->ncases && b->state[b->next_emit] != ST_OPEN) {
        struct fcase *c = b->cases[b->next_emit];
        if (c && c->has_res) write_result(b, zmq_msg_data(&c->res), zmq_msg_size(&c->res));
        free_case(b, b->next_emit);
        b->next_emit++;
    }
}

static void give_up_or_requeue(struct broker *b, uint64_t seq, const char *why)
{
    struct fcase *c = b->cases[seq];
    c->holder = -1;
    if (++c->failures >= b->cfg->max_attempts) {
        vp_error("case '%s': failed on %d workers (last: %s); given up", c->id, c->failures, why);
        b->state[seq] = ST_GIVEN_UP;
        b->given_up++;
        if (!b->cfg->ordered) free_case(b, seq);
        else emit_ready(b);
        return;
    }
    vp_warn("case '%s': %s; handed to another worker (attempt %d)", c->id, why, c->failures + 1);
    b->retries++;
    queue_push(b, seq, 1);
}

static void worker_dead(struct broker *b, int wi, const char *why)
{
    struct worker *w = &b->w[wi];
    if (!w->alive) return;
    w->alive = 0;
    vp_warn("worker %s: %s; %d case(s) taken back", w->name, why, w->inflight);
    for (uint64_t s = b->next_emit; s < b->ncases; s++) {
        struct fcase *c = b->cases[s];
        if (c && b->state[s] == ST_OPEN && c->holder == wi) {
            char r[200];
            snprintf(r, sizeof r, "worker %s %s", w->name, why);
            give_up_or_requeue(b, s, r);
        }
    }
    w->inflight = 0;
}

static int find_worker(struct broker *b, const zmq_msg_t *id)
{
    size_t n = zmq_msg_size((zmq_msg_t *)id);
    for (int i = 0; i < b->nw; i++)
        if (b->w[i].alive && b->w[i].rlen == n && !memcmp(b->w[i].rid, zmq_msg_data((zmq_msg_t *)id), n)) return i;
    return -1;
}

static int send_to(struct broker *b, int wi, const char *cmd, const void *a1, size_t n1, const void *a2, size_t n2)
{
    zmq_msg_t route;
    zmq_msg_init_size(&route, b->w[wi].rlen);
    memcpy(zmq_msg_data(&route), b->w[wi].rid, b->w[wi].rlen);
    int rc = vp_fo_send(b->sock, &route, cmd, a1, n1, a2, n2);
    zmq_msg_close(&route);
    if (rc) worker_dead(b, wi, errno == EHOSTUNREACH ? "disconnected" : "cannot be sent to");
    return rc;
}

/* Send CASE seq to worker wi; the frame is shared with ZeroMQ, not copied. */
static int send_case(struct broker *b, int wi, const char *seq, size_t n, zmq_msg_t *frame)
{
    zmq_msg_t route;
    zmq_msg_init_size(&route, b->w[wi].rlen);
    memcpy(zmq_msg_data(&route), b->w[wi].rid, b->w[wi].rlen);
    int rc = vp_fo_send_shared(b->sock, &route, VP_FO_CASE, seq, n, frame);
    zmq_msg_close(&route);
    if (rc) worker_dead(b, wi, errno == EHOSTUNREACH ? "disconnected" : "cannot be sent to");
    return rc;
}

/* The name of the (lost) worker that had routing id id, for the log. */
static const char *peer_name(struct broker *b, const zmq_msg_t *id)
{
    size_t n = zmq_msg_size((zmq_msg_t *)id);
    for (int i = b->nw - 1; i >= 0; i--)
        if (b->w[i].rlen == n && !memcmp(b->w[i].rid, zmq_msg_data((zmq_msg_t *)id), n)) return b->w[i].name;
    return "(unknown)";
}

static void on_result(struct broker *b, int wi, vp_fo_msg *m, int ok)
{
    struct worker *w = wi >= 0 ? &b->w[wi] : NULL;
    const char *wname = w ? w->name : peer_name(b, &m->id);
    int64_t seq = vp_fo_num(m, 2);
    if (seq < 0 || (uint64_t)seq >= b->ncases) { vp_warn("worker %s: %s for an unknown case ignored", wname, ok ? "result" : "failure"); return; }
    struct fcase *c = b->cases[seq];
    if (b->state[seq] != ST_OPEN) {
        if (ok) { b->duplicates++; vp_info("case #%lld: late duplicate result from worker %s dropped", (long long)seq, wname); }
        return;
    }
    int held = w && c->holder == wi;
    if (held) { w->inflight--; w->busy_s += (double)(now_ms() - c->sent_ms) / 1000; }
    if (!ok) {
        if (!held) return; /* a failure of an attempt we already took back */
        size_t n;
        const char *why = vp_fo_data(m, 3, &n);
        char r[400];
        snprintf(r, sizeof r, "worker %s: %.*s", wname, (int)(n < 300 ? n : 300), why ? why : "failed");
        w->failed++;
        give_up_or_requeue(b, (uint64_t)seq, r);
        return;
    }
    size_t n;
    const void *d = vp_fo_data(m, 3, &n);
    if (c->holder >= 0 && !held) { /* another worker holds it now: take it back from that one */
        struct worker *o = &b->w[c->holder];
        o->inflight--;
        char s[24];
        int k = snprintf(s, sizeof s, "%lld", (long long)seq);
        if (o->alive) send_to(b, c->holder, VP_FO_CANCEL, s, (size_t)k, NULL, 0);
    }
    if (w) w->done++;
    vp_debug("case #%lld '%s': result from worker %s", (long long)seq, c->id, wname);
    b->state[seq] = ST_DONE;
    c->holder = -1;
    if (b->cfg->ordered) {
        zmq_msg_init(&c->res);
        zmq_msg_move(&c->res, &m->part[3]); /* kept as received, no copy */
        c->has_res = 1;
        zmq_msg_close(&c->data); c->has_data = 0;
        emit_ready(b);
    } else {
        write_result(b, d, n);
        free_case(b, (uint64_t)seq);
    }
}

static void on_message(struct broker *b, vp_fo_msg *m)
{
    int wi = find_worker(b, &m->id);
    if (wi >= 0) b->w[wi].last_seen = now_ms();
    if (vp_fo_is(m, 1, VP_FO_READY)) {
        int64_t credit = vp_fo_num(m, 2);
        if (credit < 1 || credit > 1024) { vp_warn("READY with a bad credit ignored"); return; }
        if (wi < 0) {
            b->w = vp_realloc(b->w, (size_t)(b->nw + 1) * sizeof *b->w);
            wi = b->nw++;
            struct worker *w = &b->w[wi];
            memset(w, 0, sizeof *w);
            w->rlen = zmq_msg_size(&m->id) < sizeof w->rid ? zmq_msg_size(&m->id) : sizeof w->rid;
            memcpy(w->rid, zmq_msg_data(&m->id), w->rlen);
            size_t nl;
            const char *nm = vp_fo_data(m, 3, &nl);
            snprintf(w->name, sizeof w->name, "%.*s#%d", (int)(nm && nl < 100 ? nl : 0), nm ? nm : "", wi);
            w->alive = 1;
            w->last_seen = w->joined_ms = now_ms();
            vp_info("worker %s joined with credit %lld", w->name, (long long)credit);
        }
        b->w[wi].credit = (int)credit;
    } else if (wi < 0) {
        if (vp_fo_is(m, 1, VP_FO_RESULT)) on_result(b, -1, m, 1);
        zmq_msg_t *id = &m->id;
        vp_fo_send(b->sock, id, VP_FO_DISCONNECT, NULL, 0, NULL, 0); /* unknown: register again */
    } else if (vp_fo_is(m, 1, VP_FO_RESULT)) on_result(b, wi, m, 1);
    else if (vp_fo_is(m, 1, VP_FO_FAILED)) on_result(b, wi, m, 0);
    else if (!vp_fo_is(m, 1, VP_FO_HEARTBEAT)) vp_warn("worker %s: unknown command ignored", b->w[wi].name);
}

/* Hand queued cases to the live worker with the most free credit (ties: the first). */
static void dispatch(struct broker *b)
{
    while (b->qlen) {
        int best = -1, bestfree = 0;
        for (int i = 0; i < b->nw; i++) {
            int f = b->w[i].alive ? b->w[i].credit - b->w[i].inflight : 0;
            if (f > bestfree) { best = i; bestfree = f; }
        }
        if (best < 0) return;
        uint64_t seq = queue_pop(b);
        struct fcase *c = b->cases[seq];
        if (b->state[seq] != ST_OPEN || !c || c->holder >= 0) continue;
        char s[24];
        int k = snprintf(s, sizeof s, "%llu", (unsigned long long)seq);
        c->holder = best;
        c->sent_ms = now_ms();
        b->w[best].inflight++;
        if (send_case(b, best, s, (size_t)k, &c->data)) {
            if (b->state[seq] == ST_OPEN && c->holder == best) queue_push(b, seq, 1);
        }
    }
}

/* Ask the reader for as many cases as there is free credit (back-pressure to the source). */
static void refill(struct broker *b, int stopping)
{
    if (stopping || b->input_end) return;
    long free_credit = 0;
    for (int i = 0; i < b->nw; i++) if (b->w[i].alive) free_credit += b->w[i].credit - b->w[i].inflight;
    long want = free_credit - (long)b->qlen - b->asked;
    if (b->cfg->ordered) {
        long room = b->cfg->window - (long)(b->ncases - b->next_emit) - b->asked;
        if (want > room) want = room;
    }
    if (want > 0) { vp_fo_reader_ask(b->rd, (int)want); b->asked += (int)want; }
}

static void take_input(struct broker *b)
{
    vp_fo_item *it;
    int end, rc;
    while ((it = vp_fo_reader_take(b->rd, &end, &rc))) {
        b->asked--;
        if (b->ncases == b->cap) {
            b->cap = b->cap ? 2 * b->cap : 256;
            b->cases = vp_realloc(b->cases, b->cap * sizeof *b->cases);
            b->state = vp_realloc(b->state, b->cap);
        }
        uint64_t seq = b->ncases++;
        struct fcase *c = vp_calloc(1, sizeof *c);
        c->id = it->id; c->len = it->len; c->holder = -1;
        vp_fo_msg_from_buffer(&c->data, it->data, it->len); /* owns it->data now */
        c->has_data = 1;
        free(it);
        b->cases[seq] = c;
        b->state[seq] = ST_OPEN;
        b->open_cases++;
        if (c->len > b->cfg->max_frame) {
            vp_error("case '%s': frame of %zu bytes is larger than --max-frame", c->id, c->len);
            c->failures = (int)b->cfg->max_attempts - 1;
            give_up_or_requeue(b, seq, "too large");
            continue;
        }
        queue_push(b, seq, 0);
    }
    if (end && !b->input_end) { b->input_end = 1; b->input_rc = rc; }
}

static void timers(struct broker *b, int64_t *next_hb)
{
    int64_t t = now_ms();
    for (int i = 0; i < b->nw; i++)
        if (b->w[i].alive && t - b->w[i].last_seen > b->cfg->timeout_ms) worker_dead(b, i, "silent past the timeout");
    if (b->cfg->case_timeout_ms > 0)
        for (uint64_t s = b->next_emit; s < b->ncases; s++) {
            struct fcase *c = b->cases[s];
            if (!c || b->state[s] != ST_OPEN || c->holder < 0 || t - c->sent_ms <= b->cfg->case_timeout_ms) continue;
            int wi = c->holder;
            char sq[24];
            int k = snprintf(sq, sizeof sq, "%llu", (unsigned long long)s);
            b->w[wi].inflight--;
            send_to(b, wi, VP_FO_CANCEL, sq, (size_t)k, NULL, 0);
            char r[200];
            snprintf(r, sizeof r, "no answer from worker %s within --case-timeout", b->w[wi].name);
            if (b->cases[s] && b->state[s] == ST_OPEN) give_up_or_requeue(b, s, r);
        }
    if (t >= *next_hb) {
        for (int i = 0; i < b->nw; i++) if (b->w[i].alive) send_to(b, i, VP_FO_HEARTBEAT, NULL, 0, NULL, 0);
        *next_hb = t + b->cfg->heartbeat_ms;
    }
}

static void summary(struct broker *b, int64_t t_end, long refused)
{
    double el = (double)(t_end - b->t0) / 1000;
    vp_info("summary: %llu cases read, %ld written, %ld retries, %ld given up, %ld late duplicates dropped, "
            "%ld peers refused, %.2f s, %.2f cases/s",
            (unsigned long long)b->ncases, b->written, b->retries, b->given_up, b->duplicates, refused, el,
            el > 0 ? (double)b->written / el : 0.0);
    for (int i = 0; i < b->nw; i++) {
        struct worker *w = &b->w[i];
        double up = (double)(t_end - w->joined_ms) / 1000;
        vp_info("  worker %-24s %5ld done %3ld failed  busy %.2f s  %.2f cases/s%s", w->name, w->done, w->failed,
                w->busy_s, up > 0 ? (double)w->done / up : 0.0, w->alive ? "" : "  (lost)");
    }
}

static int setup_socket(struct broker *b, vp_fo_allow **allow, vp_fo_zap **zap)
{
    const struct vp_fanout_cfg *cfg = b->cfg;
    b->ctx = zmq_ctx_new();
    if (!cfg->insecure) {
        char sec[41], pub[41];
        if (!vp_fo_have_curve(1)) return -1;
        if (!cfg->key_file || !cfg->allow)
            return vp_error("CURVE needs --key (the broker's secret key) and --allow (worker public keys); or --insecure");
        if (vp_fo_key_load_secret(cfg->key_file, sec, pub)) return -1;
        if (!(*allow = vp_fo_allow_load(cfg->allow))) return -1;
        if (!(*zap = vp_fo_zap_start(b->ctx, *allow))) return -1;
        b->sock = zmq_socket(b->ctx, ZMQ_ROUTER);
        int one = 1;
        zmq_setsockopt(b->sock, ZMQ_CURVE_SERVER, &one, sizeof one);
        zmq_setsockopt(b->sock, ZMQ_CURVE_SECRETKEY, sec, 40);
        zmq_setsockopt(b->sock, ZMQ_ZAP_DOMAIN, "voxpipe", 7);
        memset(sec, 0, sizeof sec);
        vp_info("CURVE encryption on (libzmq %d.%d.%d with libsodium); server key %s; %d worker key(s) allowed",
                ZMQ_VERSION_MAJOR, ZMQ_VERSION_MINOR, ZMQ_VERSION_PATCH, pub, vp_fo_allow_count(*allow));
    } else {
        b->sock = zmq_socket(b->ctx, ZMQ_ROUTER);
        vp_warn("--insecure: plain TCP, no encryption, any peer that reaches '%s' may connect", cfg->bind);
    }
    int one = 1, linger = 2000;
    int64_t maxmsg = (int64_t)cfg->max_frame + 4096;
    zmq_setsockopt(b->sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    zmq_setsockopt(b->sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(b->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    const char *addr = cfg->bind[0] == '@' ? cfg->bind + 1 : cfg->bind;
    if (zmq_bind(b->sock, addr)) return vp_error("'%s': cannot bind: %s", cfg->bind, zmq_strerror(errno));
    return 0;
}

int vp_fanout_run(const struct vp_fanout_cfg *cfg)
{
    struct broker b = {0};
    b.cfg = cfg;
    b.t0 = now_ms();
    vp_fo_allow *allow = NULL;
    vp_fo_zap *zap = NULL;
    int rc = 0, aborted = 0, stopping = 0;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    if (setup_socket(&b, &allow, &zap)) { rc = VP_ERR_RUNTIME; goto out; }
    if (!(b.out = vp_out_open(cfg->out_spec, 0))) { rc = VP_ERR_RUNTIME; goto out; }
    if (!(b.rd = vp_fo_reader_open(cfg->in_spec))) { rc = VP_ERR_RUNTIME; goto out; }
    int64_t next_hb = now_ms() + cfg->heartbeat_ms;
    for (;;) {
        if (signals_seen >= 2) { aborted = 1; vp_error("second signal: aborting, output discarded"); break; }
        if (signals_seen && !stopping) {
            stopping = 1;
            vp_warn("interrupted: reading no more input; finishing the %llu case(s) already read", (unsigned long long)b.open_cases);
        }
        take_input(&b);
        refill(&b, stopping);
        dispatch(&b);
        if (b.error) break;
        if ((b.input_end || stopping) && b.open_cases == 0) break;
        if (stopping) {
            int alive = 0;
            for (int i = 0; i < b.nw; i++) alive += b.w[i].alive;
            if (!alive) { vp_warn("interrupted with no live worker: %llu case(s) left unfinished", (unsigned long long)b.open_cases); break; }
        }
        zmq_pollitem_t it[2] = {{b.sock, 0, ZMQ_POLLIN, 0}, {NULL, vp_fo_reader_fd(b.rd), ZMQ_POLLIN, 0}};
        long wait = cfg->heartbeat_ms < 200 ? cfg->heartbeat_ms : 200;
        if (zmq_poll(it, 2, wait) < 0 && errno != EINTR) { vp_error("poll failed: %s", zmq_strerror(errno)); b.error = 1; break; }
        vp_fo_msg m;
        int k;
        while ((k = vp_fo_recv(b.sock, 1, &m)) > 0) {
            if (k == 2) vp_warn("malformed message from a peer ignored");
            else on_message(&b, &m);
            vp_fo_msg_close(&m);
        }
        timers(&b, &next_hb);
    }
    for (int i = 0; i < b.nw; i++) if (b.w[i].alive) send_to(&b, i, VP_FO_DONE, NULL, 0, NULL, 0);
    if (b.input_end && b.input_rc) rc = b.input_rc;
    else if (b.error) rc = VP_ERR_RUNTIME;
    else if (aborted || stopping) rc = VP_ERR_INTR;
    else if (b.given_up) rc = VP_ERR_RUNTIME;
out:
    if (b.out) {
        int commit = !aborted && !b.error && !(b.input_end && b.input_rc);
        if (commit ? vp_stream_finish(&b.out) : vp_out_close(&b.out, 0)) { if (!rc) rc = VP_ERR_RUNTIME; }
    }
    vp_fo_reader_close(&b.rd);
    if (b.sock) zmq_close(b.sock);
    long refused = vp_fo_zap_stop(&zap);
    if (b.ctx) zmq_ctx_term(b.ctx);
    if (b.t0 && (b.nw || b.ncases)) summary(&b, now_ms(), refused);
    if (b.given_up) vp_error("%ld case(s) given up after %ld failed attempts each (see above)", b.given_up, cfg->max_attempts);
    for (uint64_t s = 0; s < b.ncases; s++) if (b.cases[s]) { b.open_cases++; free_case(&b, s); }
    free(b.cases); free(b.state); free(b.queue); free(b.w);
    vp_fo_allow_free(&allow);
    return rc;
}
