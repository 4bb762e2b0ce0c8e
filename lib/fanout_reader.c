/* fanout_reader.c - see fanout_reader.h */
#include "fanout_reader.h"
#include "endpoint.h"
#include "frame.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct vp_fo_reader {
    vp_in *in;
    vp_in *loop_in;   /* the encoder: a case written to loop_out comes back as one message here */
    vp_out *loop_out;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int asked, stop, done, rc, busy;
    vp_fo_item *head, *tail;
    int pfd[2];
};

/* Encode c as one frame through the in-process ZeroMQ loop (same context as every endpoint). */
static int encode(vp_fo_reader *r, const vp_case *c, vp_fo_item *it)
{
    if (vp_case_write(r->loop_out, c) || vp_in_begin_frame(r->loop_in) != 1) return -1;
    uint64_t n = vp_in_remaining(r->loop_in);
    it->data = vp_malloc(n ? (size_t)n : 1);
    it->len = (size_t)n;
    if (vp_in_read(r->loop_in, it->data, it->len) || vp_in_end_frame(r->loop_in)) return -1;
    return 0;
}

static void *reader_main(void *arg)
{
    vp_fo_reader *r = arg;
    int rc = 0;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        while (!r->asked && !r->stop) pthread_cond_wait(&r->cv, &r->mu);
        int stop = r->stop;
        r->busy = !stop;
        pthread_mutex_unlock(&r->mu);
        if (stop) break;
        vp_case *c;
        int k = vp_case_read(r->in, &c);
        if (k <= 0) { rc = k < 0 ? -k : 0; break; }
        vp_fo_item *it = vp_calloc(1, sizeof *it);
        it->id = vp_strdup(c->id);
        if (encode(r, c, it)) {
            vp_error("case '%s': cannot encode the frame", c->id);
            free(it->id); free(it->data); free(it);
            vp_case_free(&c);
            rc = VP_ERR_RUNTIME;
            break;
        }
        vp_case_free(&c);
        pthread_mutex_lock(&r->mu);
        if (r->tail) r->tail->next = it; else r->head = it;
        r->tail = it;
        r->asked--;
        r->busy = 0;
        pthread_mutex_unlock(&r->mu);
        ssize_t w = write(r->pfd[1], "c", 1);
        (void)w;
    }
    pthread_mutex_lock(&r->mu);
    r->done = 1;
    r->busy = 0;
    r->rc = rc;
    pthread_mutex_unlock(&r->mu);
    ssize_t w = write(r->pfd[1], "e", 1);
    (void)w;
    return NULL;
}

vp_fo_reader *vp_fo_reader_open(const char *in_spec)
{
    static int serial;
    vp_fo_reader *r = vp_calloc(1, sizeof *r);
    char loop[96];
    snprintf(loop, sizeof loop, "inproc://vp-fanout-encode-%d-%d", (int)getpid(), serial++);
    char bind[100];
    snprintf(bind, sizeof bind, "@%s", loop);
    char conn[100];
    snprintf(conn, sizeof conn, ">%s", loop);
    if (!(r->in = vp_in_open(in_spec))) { free(r); return NULL; }
    if (!(r->loop_in = vp_in_open(bind)) || !(r->loop_out = vp_out_open(conn, 0)) || pipe2(r->pfd, O_CLOEXEC | O_NONBLOCK)) {
        vp_error("cannot set up the frame encoder");
        if (r->loop_out) vp_out_close(&r->loop_out, 0);
        if (r->loop_in) vp_in_close(&r->loop_in);
        vp_in_close(&r->in);
        free(r);
        return NULL;
    }
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    if (pthread_create(&r->th, NULL, reader_main, r)) vp_die(VP_ERR_RUNTIME, "cannot start the reader thread");
    return r;
}

int vp_fo_reader_fd(const vp_fo_reader *r) { return r->pfd[0]; }

void vp_fo_reader_ask(vp_fo_reader *r, int n)
{
    pthread_mutex_lock(&r->mu);
    r->asked += n;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

vp_fo_item *vp_fo_reader_take(vp_fo_reader *r, int *end, int *rc)
{
    char buf[64];
    while (read(r->pfd[0], buf, sizeof buf) > 0) {}
    pthread_mutex_lock(&r->mu);
    vp_fo_item *it = r->head;
    if (it) {
        r->head = it->next;
        if (!r->head) r->tail = NULL;
        it->next = NULL;
    }
    *end = !it && r->done;
    *rc = r->rc;
    pthread_mutex_unlock(&r->mu);
    return it;
}

void vp_fo_reader_close(vp_fo_reader **pr)
{
    vp_fo_reader *r = *pr;
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    r->stop = 1;
    int stuck = r->busy && !r->done;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    *pr = NULL;
    if (stuck) { pthread_detach(r->th); return; } /* blocked reading: the process exits soon */
    pthread_join(r->th, NULL);
    for (vp_fo_item *it = r->head, *nx; it; it = nx) { nx = it->next; free(it->id); free(it->data); free(it); }
    vp_out_close(&r->loop_out, 0);
    vp_in_close(&r->loop_in);
    vp_in_close(&r->in);
    close(r->pfd[0]);
    close(r->pfd[1]);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}
