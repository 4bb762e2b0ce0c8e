/* fanout_proto.c - see fanout_proto.h */
#include "fanout_proto.h"
#include "util.h"

#include <dirent.h>
#include <limits.h>
#include <malloc.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int vp_fo_recv(void *sock, int router, vp_fo_msg *m)
{
    int flags = ZMQ_DONTWAIT, more = 0, bad = 0;
    size_t ml = sizeof more;
    memset(m, 0, sizeof *m);
    if (router) {
        zmq_msg_init(&m->id);
        if (zmq_msg_recv(&m->id, sock, flags) < 0) { int e = errno; zmq_msg_close(&m->id); errno = e; return e == EAGAIN ? 0 : -1; }
        m->has_id = 1;
        flags = 0; /* the rest of a multipart message is already here */
    }
    for (;;) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, sock, flags) < 0) {
            int e = errno;
            zmq_msg_close(&part);
            vp_fo_msg_close(m);
            errno = e;
            return e == EAGAIN && !router && m->n == 0 ? 0 : -1;
        }
        flags = 0;
        if (m->n < VP_FO_MAXPARTS && !bad) m->part[m->n++] = part;
        else { bad = 1; zmq_msg_close(&part); }
        zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &ml);
        if (!more) break;
    }
    if (bad || m->n < 2 || !vp_fo_is(m, 0, VP_FO_PROTO)) {
        for (int i = 0; i < m->n; i++) zmq_msg_close(&m->part[i]);
        m->n = 0;
        return 2;
    }
    return 1;
}

void vp_fo_msg_close(vp_fo_msg *m)
{
    for (int i = 0; i < m->n; i++) zmq_msg_close(&m->part[i]);
    if (m->has_id) zmq_msg_close(&m->id);
    m->n = 0;
    m->has_id = 0;
}

const void *vp_fo_data(vp_fo_msg *m, int i, size_t *len)
{
    if (i >= m->n) { *len = 0; return NULL; }
    *len = zmq_msg_size(&m->part[i]);
    return zmq_msg_data(&m->part[i]);
}

int vp_fo_is(vp_fo_msg *m, int i, const char *s)
{
    size_t n;
    const void *d = vp_fo_data(m, i, &n);
    return d && n == strlen(s) && !memcmp(d, s, n);
}

int64_t vp_fo_num(vp_fo_msg *m, int i)
{
    size_t n;
    const char *d = vp_fo_data(m, i, &n);
    if (!d || !n || n > 18) return -1;
    int64_t v = 0;
    for (size_t k = 0; k < n; k++) {
        if (d[k] < '0' || d[k] > '9') return -1;
        v = v * 10 + (d[k] - '0');
    }
    return v;
}

static int send_part(void *sock, const void *d, size_t n, int more, int flags)
{
    int rc;
    do rc = zmq_send(sock, d, n, (more ? ZMQ_SNDMORE : 0) | flags); while (rc < 0 && errno == EINTR);
    return rc < 0 ? -1 : 0;
}

int vp_fo_send(void *sock, const zmq_msg_t *route, const char *cmd, const void *a1, size_t n1,
               const void *a2, size_t n2)
{
    /* the broker never blocks on one worker (a full queue reads as a lost worker); a worker's
     * socket has a send timeout instead. Only the first part can fail: the rest follow it. */
    int fl = route ? ZMQ_DONTWAIT : 0;
    if (route && send_part(sock, zmq_msg_data((zmq_msg_t *)route), zmq_msg_size((zmq_msg_t *)route), 1, fl)) return -1;
    if (send_part(sock, VP_FO_PROTO, 4, 1, route ? 0 : fl)) return -1;
    if (send_part(sock, cmd, strlen(cmd), a1 != NULL, 0)) return -1;
    if (a1 && send_part(sock, a1, n1, a2 != NULL, 0)) return -1;
    if (a2 && send_part(sock, a2, n2, 0, 0)) return -1;
    return 0;
}

static void free_data(void *data, void *hint) { (void)hint; free(data); }

void vp_fo_msg_from_buffer(zmq_msg_t *m, void *data, size_t n)
{
    if (zmq_msg_init_data(m, data, n, free_data, NULL)) vp_die(VP_ERR_RUNTIME, "out of memory");
}

int vp_fo_send_shared(void *sock, const zmq_msg_t *route, const char *cmd, const void *a1, size_t n1,
                      zmq_msg_t *data)
{
    int fl = route ? ZMQ_DONTWAIT : 0;
    if (route && send_part(sock, zmq_msg_data((zmq_msg_t *)route), zmq_msg_size((zmq_msg_t *)route), 1, fl)) return -1;
    if (send_part(sock, VP_FO_PROTO, 4, 1, route ? 0 : fl) || send_part(sock, cmd, strlen(cmd), 1, 0) ||
        send_part(sock, a1, n1, 1, 0))
        return -1;
    zmq_msg_t copy;
    zmq_msg_init(&copy);
    zmq_msg_copy(&copy, data);
    int rc;
    do rc = zmq_msg_send(&copy, sock, 0); while (rc < 0 && errno == EINTR);
    if (rc < 0) { int e = errno; zmq_msg_close(&copy); errno = e; return -1; }
    return 0;
}

void vp_fo_malloc_tune(void)
{
    mallopt(M_ARENA_MAX, 1);                   /* threads share the main heap: no 64 MiB sub-heaps */
    mallopt(M_MMAP_THRESHOLD, 1 << 30);        /* up to 1 GiB from the heap, reused after free */
    mallopt(M_TRIM_THRESHOLD, INT_MAX);          /* and not given back to the kernel each time */
}

int vp_fo_send_owned(void *sock, const char *cmd, const void *a1, size_t n1, void *data, size_t n)
{
    zmq_msg_t msg;
    if (zmq_msg_init_data(&msg, data, n, free_data, NULL)) { free(data); return -1; }
    int rc = send_part(sock, VP_FO_PROTO, 4, 1, 0) || send_part(sock, cmd, strlen(cmd), 1, 0) ||
             send_part(sock, a1, n1, 1, 0) ? -1 : 0;
    if (!rc) {
        do rc = zmq_msg_send(&msg, sock, 0); while (rc < 0 && errno == EINTR);
        rc = rc < 0 ? -1 : 0;
    }
    if (rc) { int e = errno; zmq_msg_close(&msg); errno = e; }
    return rc;
}

/* ---- keys ---- */

static int valid_z85_key(const char *s)
{
    uint8_t bin[32];
    return strlen(s) == 40 && zmq_z85_decode(bin, s) != NULL;
}

/* Read up to 4 KiB of a small text file. */
static char *slurp(const char *path, int secret)
{
    FILE *f = fopen(path, "r");
    if (!f) { vp_error("'%s': cannot open key: %s", path, strerror(errno)); return NULL; }
    struct stat st;
    if (secret && fstat(fileno(f), &st) == 0 && (st.st_mode & 077)) {
        vp_error("'%s': secret key is readable by group or others (mode %03o); chmod 600 it", path, (unsigned)(st.st_mode & 0777));
        fclose(f);
        return NULL;
    }
    char *buf = vp_calloc(1, 4097);
    size_t n = fread(buf, 1, 4096, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

/* Copy the 40 characters after "tag" (or the first word when tag is NULL) into out. */
static int find_key(const char *text, const char *tag, char out[41])
{
    const char *p = text;
    if (tag) {
        p = strstr(text, tag);
        if (!p) return -1;
        p += strlen(tag);
    }
    p += strspn(p, " \t\r\n");
    size_t n = strcspn(p, " \t\r\n");
    if (n != 40) return -1;
    memcpy(out, p, 40);
    out[40] = 0;
    return valid_z85_key(out) ? 0 : -1;
}

int vp_fo_key_load_public(const char *path, char z85[41])
{
    char *t = slurp(path, 0);
    if (!t) return -1;
    int rc = find_key(t, NULL, z85);
    free(t);
    if (rc) return vp_error("'%s': not a public key (one Z85 key of 40 characters)", path);
    return 0;
}

int vp_fo_key_load_secret(const char *path, char secret[41], char pub[41])
{
    char *t = slurp(path, 1);
    if (!t) return -1;
    int rc = find_key(t, "secret:", secret);
    char derived[41];
    if (!rc) rc = zmq_curve_public(derived, secret);
    free(t);
    if (rc) return vp_error("'%s': not a secret key file (a 'secret: Z85' line)", path);
    memcpy(pub, derived, 41);
    return 0;
}

/* ---- allow-list ---- */

struct vp_fo_allow {
    char (*keys)[41];
    int n, cap;
};

static void allow_add(vp_fo_allow *a, const char *k)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 16;
        a->keys = vp_realloc(a->keys, (size_t)a->cap * sizeof *a->keys);
    }
    memcpy(a->keys[a->n++], k, 41);
}

vp_fo_allow *vp_fo_allow_load(const char *path)
{
    vp_fo_allow *a = vp_calloc(1, sizeof *a);
    struct stat st;
    if (stat(path, &st)) { vp_error("'%s': cannot read allow-list: %s", path, strerror(errno)); free(a); return NULL; }
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            size_t n = strlen(e->d_name);
            if (n < 5 || strcmp(e->d_name + n - 4, ".pub")) continue;
            char file[4096], k[41];
            snprintf(file, sizeof file, "%s/%s", path, e->d_name);
            if (vp_fo_key_load_public(file, k)) { closedir(d); vp_fo_allow_free(&a); return NULL; }
            allow_add(a, k);
        }
        if (d) closedir(d);
    } else {
        char *t = slurp(path, 0);
        if (!t) { free(a); return NULL; }
        int line = 0;
        for (char *s = strtok(t, "\n"); s; s = strtok(NULL, "\n")) {
            line++;
            s += strspn(s, " \t\r");
            if (!*s || (*s == '#' && (!s[1] || s[1] == ' ' || s[1] == '\r'))) continue;
            char k[41];
            if (find_key(s, NULL, k)) {
                vp_error("'%s': line %d: not a Z85 public key", path, line);
                free(t); vp_fo_allow_free(&a);
                return NULL;
            }
            allow_add(a, k);
        }
        free(t);
    }
    if (!a->n) { vp_error("'%s': the allow-list holds no public key", path); vp_fo_allow_free(&a); return NULL; }
    return a;
}

int vp_fo_allow_count(const vp_fo_allow *a) { return a ? a->n : 0; }

void vp_fo_allow_free(vp_fo_allow **pa)
{
    if (!*pa) return;
    free((*pa)->keys);
    free(*pa);
    *pa = NULL;
}

/* ---- ZAP handler ---- */

struct vp_fo_zap {
    pthread_t th;
    void *sock;
    const vp_fo_allow *allow;
    atomic_int stop;
    atomic_long refused;
};

static void *zap_main(void *arg)
{
    vp_fo_zap *z = arg;
    while (!atomic_load(&z->stop)) {
        zmq_pollitem_t it = {z->sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 100) <= 0) continue;
        zmq_msg_t p[8];
        int n = 0, more = 1;
        size_t ml = sizeof more;
        while (more) {
            zmq_msg_t tmp;
            zmq_msg_init(&tmp);
            if (zmq_msg_recv(&tmp, z->sock, 0) < 0) { zmq_msg_close(&tmp); break; }
            if (n < 8) p[n++] = tmp; else zmq_msg_close(&tmp);
            zmq_getsockopt(z->sock, ZMQ_RCVMORE, &more, &ml);
        }
        /* request: version, request id, domain, address, identity, mechanism, credentials... */
        const char *status = "400", *text = "unknown key";
        char user[41] = "", addr[64] = "?";
        if (n >= 6) {
            size_t al = zmq_msg_size(&p[3]);
            snprintf(addr, sizeof addr, "%.*s", (int)(al < 63 ? al : 63), (const char *)zmq_msg_data(&p[3]));
        }
        if (n >= 7 && zmq_msg_size(&p[5]) == 5 && !memcmp(zmq_msg_data(&p[5]), "CURVE", 5) && zmq_msg_size(&p[6]) == 32) {
            zmq_z85_encode(user, zmq_msg_data(&p[6]), 32);
            for (int i = 0; i < z->allow->n; i++)
                if (!strcmp(user, z->allow->keys[i])) { status = "200"; text = "OK"; break; }
        } else {
            text = "CURVE required";
        }
        if (*status != '2') {
            atomic_fetch_add(&z->refused, 1);
            vp_warn("refused a peer from %s: %s%s%s", addr, text, *user ? " " : "", user);
        } else {
            vp_debug("admitted %s from %s", user, addr);
        }
        if (n >= 2) {
            zmq_send(z->sock, "1.0", 3, ZMQ_SNDMORE);
            zmq_send(z->sock, zmq_msg_data(&p[1]), zmq_msg_size(&p[1]), ZMQ_SNDMORE);
            zmq_send(z->sock, status, 3, ZMQ_SNDMORE);
            zmq_send(z->sock, text, strlen(text), ZMQ_SNDMORE);
            zmq_send(z->sock, user, *status == '2' ? 40 : 0, ZMQ_SNDMORE);
            zmq_send(z->sock, "", 0, 0);
        }
        for (int i = 0; i < n; i++) zmq_msg_close(&p[i]);
    }
    int linger = 0;
    zmq_setsockopt(z->sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(z->sock);
    return NULL;
}

vp_fo_zap *vp_fo_zap_start(void *ctx, const vp_fo_allow *allow)
{
    vp_fo_zap *z = vp_calloc(1, sizeof *z);
    z->allow = allow;
    z->sock = zmq_socket(ctx, ZMQ_REP);
    if (!z->sock || zmq_bind(z->sock, "inproc://zeromq.zap.01")) {
        vp_error("cannot start the ZAP handler: %s", zmq_strerror(errno));
        if (z->sock) zmq_close(z->sock);
        free(z);
        return NULL;
    }
    if (pthread_create(&z->th, NULL, zap_main, z)) {
        vp_error("cannot start the ZAP handler thread");
        zmq_close(z->sock);
        free(z);
        return NULL;
    }
    return z;
}

long vp_fo_zap_stop(vp_fo_zap **pz)
{
    vp_fo_zap *z = *pz;
    if (!z) return 0;
    atomic_store(&z->stop, 1);
    pthread_join(z->th, NULL);
    long r = atomic_load(&z->refused);
    free(z);
    *pz = NULL;
    return r;
}

int vp_fo_have_curve(int need)
{
    int yes = zmq_has("curve");
    if (!yes && need) vp_error("this libzmq has no CURVE support (built without libsodium); use --insecure on a trusted network only");
    return yes;
}
