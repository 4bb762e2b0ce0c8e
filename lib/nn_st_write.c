/* nn_st_write.c - safetensors writer (see nn_st_write.h). */
#include "nn_st_write.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct sbuf {
    char *s;
    size_t n, cap;
} sbuf;

static void put(sbuf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        char *t = vp_malloc(b->cap);
        if (b->s) memcpy(t, b->s, b->n);
        free(b->s);
        b->s = t;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

static void puts_(sbuf *b, const char *s) { put(b, s, strlen(s)); }

/* A JSON string literal. */
static void put_str(sbuf *b, const char *s)
{
    puts_(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char e[8];
        if (*p == '"' || *p == '\\') e[0] = '\\', e[1] = (char)*p, e[2] = 0;
        else if (*p < 0x20) snprintf(e, sizeof e, "\\u%04x", *p);
        else e[0] = (char)*p, e[1] = 0;
        puts_(b, e);
    }
    puts_(b, "\"");
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t k = write(fd, c, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        c += k, n -= (size_t)k;
    }
    return 0;
}

int vp_st_write(const char *path, const vp_st_entry *t, int n, int n_meta, const char *const *keys, const char *const *values)
{
    sbuf h = {0};
    uint64_t off = 0;
    char num[64];
    puts_(&h, "{");
    for (int i = 0; i < n; i++) {
        if (!t[i].name || !*t[i].name || !strcmp(t[i].name, "__metadata__")) {
            free(h.s);
            return vp_error("%s: tensor %d has an empty or reserved name", path, i);
        }
        for (int k = 0; k < i; k++)
            if (!strcmp(t[k].name, t[i].name)) {
                free(h.s);
                return vp_error("%s: tensor name %s appears twice", path, t[i].name);
            }
        uint64_t ne = 1;
        if (i) puts_(&h, ",");
        put_str(&h, t[i].name);
        puts_(&h, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < t[i].ndim; d++) {
            snprintf(num, sizeof num, "%s%lld", d ? "," : "", (long long)t[i].shape[d]);
            puts_(&h, num);
            ne *= (uint64_t)t[i].shape[d];
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off, (unsigned long long)(off + 4 * ne));
        puts_(&h, num);
        off += 4 * ne;
    }
    if (n_meta > 0) {
        puts_(&h, n ? ",\"__metadata__\":{" : "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++) {
            if (i) puts_(&h, ",");
            put_str(&h, keys[i]);
            puts_(&h, ":");
            put_str(&h, values[i] ? values[i] : "");
        }
        puts_(&h, "}");
    }
    puts_(&h, "}");
    while ((8 + h.n) % 8) puts_(&h, " ");

    char *tmp = NULL;
    if (asprintf(&tmp, "%s.tmp.XXXXXX", path) < 0) vp_die(VP_ERR_RUNTIME, "out of memory");
    int fd = mkstemp(tmp);
    if (fd < 0) {
        vp_error("%s: cannot create a temporary file: %s", path, strerror(errno));
        free(tmp), free(h.s);
        return -1;
    }
    unsigned char len[8];
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)((uint64_t)h.n >> (8 * i));
    int bad = write_all(fd, len, 8) || write_all(fd, h.s, h.n);
    for (int i = 0; i < n && !bad; i++) {
        uint64_t ne = 1;
        for (int d = 0; d < t[i].ndim; d++) ne *= (uint64_t)t[i].shape[d];
        bad = write_all(fd, t[i].data, ne * 4); /* little-endian hosts only (x86-64, aarch64) */
    }
    if (!bad) bad = fsync(fd);
    int err = errno;
    if (close(fd) && !bad) bad = 1, err = errno;
    if (!bad && rename(tmp, path)) bad = 1, err = errno;
    free(h.s);
    if (bad) {
        unlink(tmp);
        free(tmp);
        return vp_error("%s: write failed: %s", path, strerror(err));
    }
    free(tmp);
    char *dcopy = vp_strdup(path);
    int dfd = open(dirname(dcopy), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) fsync(dfd), close(dfd);
    free(dcopy);
    return 0;
}
