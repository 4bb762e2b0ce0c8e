/* util.h - errors, exit codes, checked allocation, logging.
 *
 * Ownership: nothing here owns memory the caller passed in; vp_malloc()/vp_strdup() return memory
 * the caller frees with free().
 *
 * Every diagnostic goes to stderr as "program: error: what failed: why". vp_die() and friends exit
 * with one of the documented codes in enum vp_exit (README.md "Exit codes" mirrors this table).
 */
#ifndef VP_UTIL_H
#define VP_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>

enum vp_exit {
    VP_OK = 0,          /* success */
    VP_ERR_RUNTIME = 1, /* I/O or system failure: missing input, unwritable output, out of memory */
    VP_ERR_USAGE = 2,   /* bad command line */
    VP_ERR_DATA = 3,    /* input data invalid: corrupt frame, bad header, inconsistent sizes */
    VP_ERR_DEVICE = 4,  /* requested device (GPU) unavailable */
    VP_ERR_INTR = 130,  /* interrupted by SIGINT/SIGTERM */
};

#define VP_VERSION "0.1.0"

extern const char *vp_progname;
extern int vp_verbosity; /* 0 = -q, 1 = default, 2+ = -v */

void vp_set_progname(const char *argv0);

/* Print "prog: error: <fmt>" and exit with code. Registered cleanup hooks run first. */
_Noreturn void vp_die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print "prog: error: <fmt>" and return -1 (git's error() idiom). */
int vp_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* While buf is set (per thread), vp_error() appends its messages to buf (n bytes, NUL-terminated,
 * truncated) instead of printing them: for a try whose failure is handled (a CUDA graph capture that
 * falls back to the eager path). NULL prints again. */
void vp_error_divert(char *buf, size_t n);
void vp_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void vp_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));  /* shown unless -q */
void vp_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2))); /* shown with -v */

/* Cleanup hook run by vp_die() and on SIGINT/SIGTERM (e.g. remove a temp file). At most 16. */
void vp_atexit_cleanup(void (*fn)(void *), void *arg);
void vp_cancel_cleanup(void (*fn)(void *), void *arg);
void vp_install_signal_handlers(void);

/* Checked allocation: exit VP_ERR_RUNTIME with a message on failure. */
void *vp_malloc(size_t n);
void *vp_calloc(size_t n, size_t size);
void *vp_realloc(void *p, size_t n);
char *vp_strdup(const char *s);

/* a*b into *out; returns 0 on success, -1 on overflow. */
static inline int vp_mul_overflow(uint64_t a, uint64_t b, uint64_t *out)
{
    return __builtin_mul_overflow(a, b, out) ? -1 : 0;
}

#endif
