/* gzstream.c - see gzstream.h */
#include "gzstream.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <isa-l/igzip_lib.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct vp_gzin {
    char *path;
    unsigned char *map;
    size_t len;      /* file size */
    size_t member;   /* offset of the current member's start */
    int done;        /* the last member has ended */
    struct inflate_state st;
};

static void start_member(vp_gzin *g, size_t off)
{
    isal_inflate_init(&g->st);
    g->st.crc_flag = ISAL_GZIP; /* parse the gzip header, verify CRC-32 at the member's end */
    g->member = off;
    g->st.next_in = g->map + off;
    size_t left = g->len - off;
    g->st.avail_in = left > UINT32_MAX ? UINT32_MAX : (uint32_t)left;
}

vp_gzin *vp_gzin_open(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { vp_error("'%s': cannot open: %s", path, strerror(errno)); return NULL; }
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size < 18) {
        vp_error("'%s': not a gzip file", path);
        close(fd);
        return NULL;
    }
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) { vp_error("'%s': cannot map: %s", path, strerror(errno)); return NULL; }
    madvise(m, (size_t)st.st_size, MADV_SEQUENTIAL);
    vp_gzin *g = vp_calloc(1, sizeof *g);
    g->path = vp_strdup(path);
    g->map = m;
    g->len = (size_t)st.st_size;
    if (g->map[0] != 0x1f || g->map[1] != 0x8b) { vp_error("'%s': not a gzip file", path); vp_gzin_close(&g); return NULL; }
    start_member(g, 0);
    return g;
}

uint64_t vp_gzin_compressed_size(const vp_gzin *g) { return g->len; }

long long vp_gzin_read(vp_gzin *g, void *buf, size_t n)
{
    unsigned char *out = buf;
    size_t produced = 0;
    while (produced < n && !g->done) {
        if (g->st.avail_in == 0) { /* refill past 4 GiB of input */
            size_t used = (size_t)(g->st.next_in - g->map);
            size_t left = g->len - used;
            g->st.avail_in = left > UINT32_MAX ? UINT32_MAX : (uint32_t)left;
        }
        size_t want = n - produced > UINT32_MAX ? UINT32_MAX : n - produced;
        g->st.next_out = out + produced;
        g->st.avail_out = (uint32_t)want;
        uint32_t in_before = g->st.avail_in;
        int rc = isal_inflate(&g->st);
        size_t got = want - g->st.avail_out;
        produced += got;
        if (rc < 0) {
            vp_error("'%s': corrupt gzip data (%s)", g->path,
                     rc == ISAL_INCORRECT_CHECKSUM ? "CRC-32 mismatch" : rc == ISAL_INVALID_WRAPPER ? "bad gzip header" : "bad deflate data");
            return -1;
        }
        if (g->st.block_state == ISAL_BLOCK_FINISH) {
            size_t next = (size_t)(g->st.next_in - g->map);
            /* another member follows? (trailing bytes that are not gzip are ignored, as gzip does) */
            if (g->len - next >= 18 && g->map[next] == 0x1f && g->map[next + 1] == 0x8b) start_member(g, next);
            else g->done = 1;
            continue;
        }
        if (!got && g->st.avail_in == in_before && (size_t)(g->st.next_in - g->map) >= g->len) {
            vp_error("'%s': corrupt gzip data (truncated file)", g->path);
            return -1;
        }
    }
    return (long long)produced;
}

int vp_gzin_skip(vp_gzin *g, uint64_t n)
{
    unsigned char tmp[65536];
    while (n) {
        size_t k = n < sizeof tmp ? (size_t)n : sizeof tmp;
        long long r = vp_gzin_read(g, tmp, k);
        if (r < 0) return -2;
        if ((size_t)r < k) { vp_error("'%s': truncated: the data ends early", g->path); return -2; }
        n -= k;
    }
    return 0;
}

/* ---- pipelined copy: a decoder thread fills buffers, the caller's thread writes them ---- */

#define NBUF 3
#define BUFBYTES ((size_t)4 << 20)

struct pipeline {
    vp_gzin *g;
    uint64_t left;
    unsigned char *buf[NBUF];
    size_t fill[NBUF];
    int full[NBUF];
    int error, stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

static void *decoder(void *p)
{
    struct pipeline *pl = p;
    for (int i = 0; pl->left; i = (i + 1) % NBUF) {
        pthread_mutex_lock(&pl->mu);
        while (pl->full[i] && !pl->stop) pthread_cond_wait(&pl->cv, &pl->mu);
        int stop = pl->stop;
        pthread_mutex_unlock(&pl->mu);
        if (stop) break;
        size_t k = pl->left < BUFBYTES ? (size_t)pl->left : BUFBYTES;
        long long r = vp_gzin_read(pl->g, pl->buf[i], k);
        pthread_mutex_lock(&pl->mu);
        if (r < (long long)k) {
            if (r >= 0) vp_error("'%s': truncated: the voxel data ends early", pl->g->path);
            pl->error = 1;
        } else {
            pl->fill[i] = k;
            pl->full[i] = 1;
            pl->left -= k;
        }
        pthread_cond_broadcast(&pl->cv);
        int err = pl->error;
        pthread_mutex_unlock(&pl->mu);
        if (err) break;
    }
    return NULL;
}

int vp_gzin_copy(vp_gzin *g, vp_out *out, uint64_t n)
{
    struct pipeline pl = {.g = g, .left = n};
    pthread_mutex_init(&pl.mu, NULL);
    pthread_cond_init(&pl.cv, NULL);
    for (int i = 0; i < NBUF; i++) pl.buf[i] = vp_malloc(BUFBYTES);
    pthread_t tid;
    int threaded = pthread_create(&tid, NULL, decoder, &pl) == 0;
    if (!threaded) decoder(&pl);
    int rc = 0;
    uint64_t written = 0;
    for (int i = 0; written < n; i = (i + 1) % NBUF) {
        pthread_mutex_lock(&pl.mu);
        while (!pl.full[i] && !pl.error) pthread_cond_wait(&pl.cv, &pl.mu);
        int err = pl.error && !pl.full[i];
        pthread_mutex_unlock(&pl.mu);
        if (err) { rc = -2; break; }
        if (vp_out_write(out, pl.buf[i], pl.fill[i])) { rc = -1; break; }
        written += pl.fill[i];
        pthread_mutex_lock(&pl.mu);
        pl.full[i] = 0;
        pthread_cond_broadcast(&pl.cv);
        pthread_mutex_unlock(&pl.mu);
    }
    pthread_mutex_lock(&pl.mu);
    pl.stop = 1;
    pthread_cond_broadcast(&pl.cv);
    pthread_mutex_unlock(&pl.mu);
    if (threaded) pthread_join(tid, NULL);
    for (int i = 0; i < NBUF; i++) free(pl.buf[i]);
    pthread_mutex_destroy(&pl.mu);
    pthread_cond_destroy(&pl.cv);
    if (rc) return rc;
    /* read on to the end of this member so its CRC-32 is checked */
    unsigned char tmp[4096];
    size_t member = g->member;
    while (!g->done && g->member == member) {
        long long r = vp_gzin_read(g, tmp, sizeof tmp);
        if (r < 0) return -2;
        if (r == 0) break;
    }
    return 0;
}

void vp_gzin_close(vp_gzin **pg)
{
    vp_gzin *g = *pg;
    if (!g) return;
    if (g->map) munmap(g->map, g->len);
    free(g->path);
    free(g);
    *pg = NULL;
}
