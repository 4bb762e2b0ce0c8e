/* endpoint.c - see endpoint.h */
#include "endpoint.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#define BUFSZ (256 * 1024)

struct vp_in {
    char *name;
    int fd;       /* -1 for ZeroMQ */
    int is_file;  /* regular file: size known */
    uint64_t file_left; /* bytes not yet read() from the file */
    unsigned char *buf;
    size_t pos, len; /* buffered bytes [pos, len) */
    void *sock;
    zmq_msg_t msg;
    int have_msg;
    const char *err;
    char errbuf[128];
};

struct vp_out {
    char *name;
    int fd;
    char *tmp;    /* temp path for atomic file output */
    char *target;
    unsigned char *buf;
    size_t len, cap;
    void *sock;
    int failed; /* sticky: after the first write error every write fails quietly */
};

static void *zctx;
static int nsockets;

/* Close a socket; with the last one, terminate the context, which blocks until every queued
 * outgoing frame has been delivered (linger -1): a writer that exits right after its last send
 * still loses nothing. */
static void zmq_close_counted(void *s)
{
    zmq_close(s);
    if (--nsockets == 0 && zctx) {
        while (zmq_ctx_term(zctx) && errno == EINTR) {}
        zctx = NULL;
    }
}

int vp_zmq_hwm(void)
{
    const char *s = getenv("VOXPIPE_HWM");
    int v = s ? atoi(s) : 0;
    return v > 0 ? v : 4;
}

static int is_zmq_spec(const char *spec, int *bind, const char **addr)
{
    const char *s = spec;
    int b = -1;
    if (*s == '@') { b = 1; s++; }
    else if (*s == '>') { b = 0; s++; }
    if (strncmp(s, "tcp://", 6) && strncmp(s, "ipc://", 6) && strncmp(s, "inproc://", 9)) return 0;
    *bind = b;
    *addr = s;
    return 1;
}

static void *zmq_open(const char *spec, int type, int default_bind)
{
    int bind;
    const char *addr;
    is_zmq_spec(spec, &bind, &addr);
    if (bind < 0) bind = default_bind;
    if (!zctx && !(zctx = zmq_ctx_new())) { vp_error("zeromq: cannot create context: %s", zmq_strerror(errno)); return NULL; }
    void *s = zmq_socket(zctx, type);
    if (!s) { vp_error("'%s': cannot create socket: %s", spec, zmq_strerror(errno)); return NULL; }
    int hwm = vp_zmq_hwm(), linger = -1;
    zmq_setsockopt(s, type == ZMQ_PUSH ? ZMQ_SNDHWM : ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger); /* deliver every queued frame on close */
    nsockets++;
    int rc = bind ? zmq_bind(s, addr) : zmq_connect(s, addr);
    if (rc) {
        vp_error("'%s': cannot %s: %s", spec, bind ? "bind" : "connect", zmq_strerror(errno));
        zmq_close_counted(s);
        return NULL;
    }
    return s;
}

vp_in *vp_in_open(const char *spec)
{
    vp_in *in = vp_calloc(1, sizeof *in);
    in->fd = -1;
    int bind;
    const char *addr;
    if (is_zmq_spec(spec, &bind, &addr)) {
        in->name = vp_strdup(spec);
        if (!(in->sock = zmq_open(spec, ZMQ_PULL, 1))) { free(in->name); free(in); return NULL; }
        return in;
    }
    if (!strcmp(spec, "-")) {
        in->fd = 0;
        in->name = vp_strdup("<stdin>");
    } else {
        in->fd = open(spec, O_RDONLY | O_CLOEXEC);
        if (in->fd < 0) { vp_error("'%s': cannot open: %s", spec, strerror(errno)); free(in); return NULL; }
        in->name = vp_strdup(spec);
    }
    struct stat st;
    if (fstat(in->fd, &st) == 0 && S_ISREG(st.st_mode)) {
        in->is_file = 1;
        off_t pos = lseek(in->fd, 0, SEEK_CUR);
        in->file_left = (uint64_t)st.st_size - (uint64_t)(pos > 0 ? pos : 0);
    } else if (fstat(in->fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        vp_error("'%s': is a directory", spec);
        close(in->fd); free(in->name); free(in);
        return NULL;
    }
    in->buf = vp_malloc(BUFSZ);
    return in;
}

int vp_in_is_msg(const vp_in *in) { return in->sock != NULL; }
const char *vp_in_name(const vp_in *in) { return in->name; }
const char *vp_in_errmsg(const vp_in *in) { return in->err ? in->err : "unexpected end of input"; }

static ssize_t read_some(vp_in *in, void *buf, size_t n)
{
    ssize_t r;
    do r = read(in->fd, buf, n); while (r < 0 && errno == EINTR);
    if (r < 0) {
        snprintf(in->errbuf, sizeof in->errbuf, "read failed: %s", strerror(errno));
        in->err = in->errbuf;
    } else if (in->is_file) in->file_left -= (uint64_t)r <= in->file_left ? (uint64_t)r : in->file_left;
    return r;
}

int vp_in_begin_frame(vp_in *in)
{
    in->err = NULL;
    if (in->sock) {
        if (in->have_msg) { zmq_msg_close(&in->msg); in->have_msg = 0; }
        zmq_msg_init(&in->msg);
        int rc;
        do rc = zmq_msg_recv(&in->msg, in->sock, 0); while (rc < 0 && errno == EINTR);
        if (rc < 0) {
            zmq_msg_close(&in->msg);
            return vp_error("'%s': receive failed: %s", in->name, zmq_strerror(errno));
        }
        in->have_msg = 1;
        in->pos = 0;
        in->len = zmq_msg_size(&in->msg);
        return 1;
    }
    if (in->pos < in->len) return 1;
    ssize_t r = read_some(in, in->buf, BUFSZ);
    if (r < 0) return vp_error("'%s': %s", in->name, in->err);
    in->pos = 0;
    in->len = (size_t)r;
    return r > 0;
}

int vp_in_read(vp_in *in, void *dst, size_t n)
{
    unsigned char *d = dst;
    if (in->sock) {
        if (n > in->len - in->pos) { in->err = "message ends early"; return -1; }
        memcpy(d, (unsigned char *)zmq_msg_data(&in->msg) + in->pos, n);
        in->pos += n;
        return 0;
    }
    size_t have = in->len - in->pos;
    if (have >= n) {
        memcpy(d, in->buf + in->pos, n);
        in->pos += n;
        return 0;
    }
    memcpy(d, in->buf + in->pos, have);
    d += have;
    n -= have;
    in->pos = in->len = 0;
    if (n >= BUFSZ / 2) { /* large payload: straight into the caller's buffer */
        while (n) {
            ssize_t r = read_some(in, d, n > (1u << 30) ? (1u << 30) : n);
            if (r <= 0) { if (!r) in->err = NULL; return -1; }
            d += r;
            n -= (size_t)r;
        }
        return 0;
    }
    while (n) {
        ssize_t r = read_some(in, in->buf, BUFSZ);
        if (r <= 0) { if (!r) in->err = NULL; return -1; }
        in->len = (size_t)r;
        size_t k = in->len < n ? in->len : n;
        memcpy(d, in->buf, k);
        in->pos = k;
        d += k;
        n -= k;
    }
    return 0;
}

uint64_t vp_in_remaining(const vp_in *in)
{
    if (in->sock) return in->len - in->pos;
    if (in->is_file) return in->file_left + (in->len - in->pos);
    return VP_UNKNOWN_SIZE;
}

int vp_in_end_frame(vp_in *in)
{
    if (in->sock && in->have_msg) {
        size_t left = in->len - in->pos;
        zmq_msg_close(&in->msg);
        in->have_msg = 0;
        in->pos = in->len = 0;
        if (left) return vp_error("'%s': %zu unexpected bytes after the frame in one message", in->name, left);
    }
    return 0;
}

void vp_in_close(vp_in **pin)
{
    vp_in *in = *pin;
    if (!in) return;
    if (in->have_msg) zmq_msg_close(&in->msg);
    if (in->sock) zmq_close_counted(in->sock);
    if (in->fd > 0) close(in->fd);
    free(in->buf);
    free(in->name);
    free(in);
    *pin = NULL;
}

/* ---- output ---- */

static void unlink_tmp(void *p) { unlink((const char *)p); }

vp_out *vp_out_open(const char *spec, int flags)
{
    struct stat st;
    vp_out *o = vp_calloc(1, sizeof *o);
    o->fd = -1;
    int bind;
    const char *addr;
    if (is_zmq_spec(spec, &bind, &addr)) {
        o->name = vp_strdup(spec);
        if (!(o->sock = zmq_open(spec, ZMQ_PUSH, 0))) { free(o->name); free(o); return NULL; }
        o->cap = BUFSZ;
        o->buf = vp_malloc(o->cap);
        return o;
    }
    if (!strcmp(spec, "-")) {
        if (!(flags & VP_OUT_ALLOW_TTY) && isatty(1)) {
            vp_error("refusing to write a binary stream to a terminal (redirect stdout or use -o FILE)");
            free(o);
            return NULL;
        }
        o->fd = 1;
        o->name = vp_strdup("<stdout>");
    } else if (stat(spec, &st) == 0 && !S_ISREG(st.st_mode)) {
        /* a device, FIFO or socket (/dev/null, a named pipe): write to it directly; a temporary
         * file renamed over it would replace the device node itself */
        if (S_ISDIR(st.st_mode)) { vp_error("'%s': is a directory", spec); free(o); return NULL; }
        o->fd = open(spec, O_WRONLY | O_CLOEXEC);
        if (o->fd < 0) { vp_error("'%s': cannot open: %s", spec, strerror(errno)); free(o); return NULL; }
        if (!(flags & VP_OUT_ALLOW_TTY) && isatty(o->fd)) {
            vp_error("refusing to write a binary stream to a terminal ('%s')", spec);
            close(o->fd);
            free(o);
            return NULL;
        }
        o->name = vp_strdup(spec);
    } else {
        size_t n = strlen(spec);
        o->tmp = vp_malloc(n + 32);
        const char *slash = strrchr(spec, '/');
        size_t dirlen = slash ? (size_t)(slash - spec) + 1 : 0;
        snprintf(o->tmp, n + 32, "%.*s.%s.tmp.XXXXXX", (int)dirlen, spec, spec + dirlen);
        o->fd = mkostemp(o->tmp, O_CLOEXEC);
        if (o->fd < 0) {
            vp_error("'%s': cannot create output: %s", spec, strerror(errno));
            free(o->tmp); free(o);
            return NULL;
        }
        fchmod(o->fd, 0644);
        vp_atexit_cleanup(unlink_tmp, o->tmp);
        o->target = vp_strdup(spec);
        o->name = vp_strdup(spec);
    }
    o->cap = BUFSZ;
    o->buf = vp_malloc(o->cap);
    return o;
}

int vp_out_is_msg(const vp_out *o) { return o->sock != NULL; }
const char *vp_out_name(const vp_out *o) { return o->name; }

static int write_all(vp_out *o, const void *buf, size_t n)
{
    const unsigned char *p = buf;
    while (n) {
        ssize_t w = write(o->fd, p, n > (1u << 30) ? (1u << 30) : n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            if (errno == EPIPE) return vp_error("'%s': downstream closed the pipe", o->name);
            return vp_error("'%s': write failed: %s", o->name, strerror(errno));
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int flush(vp_out *o)
{
    if (o->sock || !o->len) return 0;
    int rc = write_all(o, o->buf, o->len);
    o->len = 0;
    return rc;
}

static int out_write(vp_out *o, const void *buf, size_t n);

int vp_out_write(vp_out *o, const void *buf, size_t n)
{
    if (o->failed) return -1;
    if (out_write(o, buf, n)) { o->failed = 1; return -1; }
    return 0;
}

static int out_write(vp_out *o, const void *buf, size_t n)
{
    if (o->sock) { /* build the whole message; sent by vp_out_end_frame */
        if (n > o->cap - o->len) {
            size_t need = o->len + n, cap = o->cap;
            while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
            o->buf = vp_realloc(o->buf, cap);
            o->cap = cap;
        }
        memcpy(o->buf + o->len, buf, n);
        o->len += n;
        return 0;
    }
    if (n <= o->cap - o->len) {
        memcpy(o->buf + o->len, buf, n);
        o->len += n;
        return 0;
    }
    if (flush(o)) return -1;
    if (n >= o->cap / 2) return write_all(o, buf, n); /* payloads go straight out */
    memcpy(o->buf, buf, n);
    o->len = n;
    return 0;
}

static void free_msg_buf(void *data, void *hint) { (void)hint; free(data); }

int vp_out_end_frame(vp_out *o)
{
    if (o->failed) return -1;
    if (!o->sock) { if (flush(o)) { o->failed = 1; return -1; } return 0; }
    zmq_msg_t m;
    /* hand the buffer to ZeroMQ without a copy; a fresh one is allocated for the next frame */
    if (zmq_msg_init_data(&m, o->buf, o->len, free_msg_buf, NULL))
        return vp_error("'%s': cannot build message: %s", o->name, zmq_strerror(errno));
    o->buf = NULL;
    o->len = 0;
    int rc;
    do rc = zmq_msg_send(&m, o->sock, 0); while (rc < 0 && errno == EINTR);
    if (rc < 0) { zmq_msg_close(&m); return vp_error("'%s': send failed: %s", o->name, zmq_strerror(errno)); }
    o->cap = BUFSZ;
    o->buf = vp_malloc(o->cap);
    return 0;
}

int vp_out_close(vp_out **po, int commit)
{
    vp_out *o = *po;
    int rc = 0;
    if (!o) return 0;
    if (o->sock) {
        zmq_close_counted(o->sock); /* linger -1: queued frames are delivered */
    } else {
        if (commit) rc = o->failed ? -1 : flush(o);
        if (o->tmp) {
            if (close(o->fd) && !rc && commit) rc = vp_error("'%s': close failed: %s", o->name, strerror(errno));
            if (commit && !rc && rename(o->tmp, o->target)) rc = vp_error("'%s': cannot rename into place: %s", o->name, strerror(errno));
            if (!commit || rc) unlink(o->tmp);
            vp_cancel_cleanup(unlink_tmp, o->tmp);
        } else if (o->fd > 2) {
            close(o->fd); /* a device or FIFO opened directly */
        }
    }
    free(o->buf);
    free(o->tmp);
    free(o->target);
    free(o->name);
    free(o);
    *po = NULL;
    return rc;
}

/* ---- kernel-side copies ---- */

int vp_in_splice_to(vp_in *in, vp_out *o, uint64_t n)
{
    if (o->failed) return -1;
    size_t have = in->len - in->pos;
    size_t k = have < n ? have : (size_t)n;
    if (in->sock || o->sock) { /* messages live in memory: plain copies */
        unsigned char *tmp = vp_malloc(n ? (size_t)n : 1);
        int rc = vp_in_read(in, tmp, (size_t)n) ? -2 : vp_out_write(o, tmp, (size_t)n);
        free(tmp);
        return rc;
    }
    if (k) { /* what is already buffered */
        if (vp_out_write(o, in->buf + in->pos, k)) return -1;
        in->pos += k;
        n -= k;
    }
    if (!n) return 0;
    if (flush(o)) { o->failed = 1; return -1; }
    int use_splice = 1;
    while (n) {
        ssize_t r = -1;
        size_t want = n > (1u << 30) ? (1u << 30) : (size_t)n;
        if (use_splice) {
            r = splice(in->fd, NULL, o->fd, NULL, want, SPLICE_F_MOVE);
            if (r < 0 && (errno == EINVAL || errno == ENOSYS)) { use_splice = 0; continue; }
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) {
                if (errno == EPIPE) vp_error("'%s': downstream closed the pipe", o->name);
                else vp_error("'%s' -> '%s': splice failed: %s", in->name, o->name, strerror(errno));
                o->failed = 1;
                return -1;
            }
            if (r == 0) return -2;
            if (in->is_file) in->file_left -= (uint64_t)r <= in->file_left ? (uint64_t)r : in->file_left;
        } else {
            size_t chunk = want < BUFSZ ? want : BUFSZ;
            r = read_some(in, in->buf, chunk);
            if (r < 0) { vp_error("'%s': %s", in->name, in->err); return -1; }
            if (r == 0) return -2;
            if (write_all(o, in->buf, (size_t)r)) { o->failed = 1; return -1; }
        }
        n -= (uint64_t)r;
    }
    return 0;
}

int vp_out_copy_fd(vp_out *o, int fd, uint64_t off, uint64_t n)
{
    if (o->failed) return -1;
    if (o->sock) {
        unsigned char *tmp = vp_malloc(BUFSZ);
        int rc = 0;
        while (n && !rc) {
            size_t k = n < BUFSZ ? (size_t)n : BUFSZ;
            ssize_t r = pread(fd, tmp, k, (off_t)off);
            if (r <= 0) { rc = vp_error("'%s': read failed: %s", o->name, r ? strerror(errno) : "unexpected end of file"); break; }
            rc = vp_out_write(o, tmp, (size_t)r);
            off += (uint64_t)r;
            n -= (uint64_t)r;
        }
        free(tmp);
        return rc;
    }
    if (flush(o)) { o->failed = 1; return -1; }
    off_t pos = (off_t)off;
    int use_sendfile = 1;
    while (n) {
        size_t want = n > (1u << 30) ? (1u << 30) : (size_t)n;
        ssize_t r;
        if (use_sendfile) {
            r = sendfile(o->fd, fd, &pos, want);
            if (r < 0 && (errno == EINVAL || errno == ENOSYS)) { use_sendfile = 0; continue; }
            if (r < 0 && errno == EINTR) continue;
        } else {
            unsigned char tmp[65536];
            r = pread(fd, tmp, want < sizeof tmp ? want : sizeof tmp, pos);
            if (r > 0 && write_all(o, tmp, (size_t)r)) { o->failed = 1; return -1; }
            if (r > 0) pos += r;
        }
        if (r < 0) {
            o->failed = 1;
            if (errno == EPIPE) return vp_error("'%s': downstream closed the pipe", o->name);
            return vp_error("'%s': copy failed: %s", o->name, strerror(errno));
        }
        if (r == 0) { o->failed = 1; return vp_error("'%s': input file ended early", o->name); }
        n -= (uint64_t)r;
    }
    return 0;
}
