/* util.c - see util.h */
#include "util.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *vp_progname = "voxpipe";
int vp_verbosity = 1;

struct cleanup { void (*fn)(void *); void *arg; };
static struct cleanup cleanups[16];
static volatile sig_atomic_t ncleanups;

void vp_set_progname(const char *argv0)
{
    const char *s = argv0 ? strrchr(argv0, '/') : NULL;
    vp_progname = s ? s + 1 : (argv0 ? argv0 : "voxpipe");
}

static void run_cleanups(void)
{
    while (ncleanups > 0) {
        struct cleanup c = cleanups[--ncleanups];
        c.fn(c.arg);
    }
}

void vp_atexit_cleanup(void (*fn)(void *), void *arg)
{
    if (ncleanups < (int)(sizeof cleanups / sizeof cleanups[0]))
        cleanups[ncleanups++] = (struct cleanup){fn, arg};
}

void vp_cancel_cleanup(void (*fn)(void *), void *arg)
{
    for (int i = ncleanups - 1; i >= 0; i--)
        if (cleanups[i].fn == fn && cleanups[i].arg == arg) {
            memmove(&cleanups[i], &cleanups[i + 1], (size_t)(ncleanups - i - 1) * sizeof cleanups[0]);
            ncleanups--;
            return;
        }
}

static void on_signal(int sig)
{
    run_cleanups(); /* cleanups are unlink()-style, async-signal-safe */
    signal(sig, SIG_DFL);
    raise(sig);
}

void vp_install_signal_handlers(void)
{
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN); /* a closed downstream shows up as EPIPE with a message */
}

static void vmsg(const char *kind, const char *fmt, va_list ap)
{
    char buf[2048];
    int n = snprintf(buf, sizeof buf, "%s: %s%s", vp_progname, kind, kind[0] ? ": " : "");
    if (n < 0 || (size_t)n >= sizeof buf) n = 0;
    vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
    size_t len = strlen(buf);
    if (len + 1 < sizeof buf) buf[len++] = '\n';
    ssize_t w = write(2, buf, len); /* one write: lines from parallel filters do not interleave */
    (void)w;
}

_Noreturn void vp_die(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg("error", fmt, ap);
    va_end(ap);
    run_cleanups();
    exit(code);
}

static _Thread_local char *divert_buf;
static _Thread_local size_t divert_n;

void vp_error_divert(char *buf, size_t n)
{
    divert_buf = n ? buf : NULL, divert_n = n;
    if (divert_buf) divert_buf[0] = 0;
}

int vp_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (divert_buf) { /* appended, "; "-separated */
        size_t len = strlen(divert_buf);
        if (len && len + 2 < divert_n) strcpy(divert_buf + len, "; "), len += 2;
        if (len + 1 < divert_n) vsnprintf(divert_buf + len, divert_n - len, fmt, ap);
        va_end(ap);
        return -1;
    }
    vmsg("error", fmt, ap);
    va_end(ap);
    return -1;
}

void vp_warn(const char *fmt, ...)
{
    if (vp_verbosity < 1) return;
    va_list ap;
    va_start(ap, fmt);
    vmsg("warning", fmt, ap);
    va_end(ap);
}

void vp_info(const char *fmt, ...)
{
    if (vp_verbosity < 1) return;
    va_list ap;
    va_start(ap, fmt);
    vmsg("", fmt, ap);
    va_end(ap);
}

void vp_debug(const char *fmt, ...)
{
    if (vp_verbosity < 2) return;
    va_list ap;
    va_start(ap, fmt);
    vmsg("", fmt, ap);
    va_end(ap);
}

void *vp_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) vp_die(VP_ERR_RUNTIME, "out of memory allocating %zu bytes", n);
    return p;
}

void *vp_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) vp_die(VP_ERR_RUNTIME, "out of memory allocating %zu x %zu bytes", n, size);
    return p;
}

void *vp_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) vp_die(VP_ERR_RUNTIME, "out of memory allocating %zu bytes", n);
    return q;
}

char *vp_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = vp_malloc(n);
    memcpy(d, s, n);
    return d;
}
