/* fuzz_common.h - shared helpers of the fuzz targets in tests/fuzz (libFuzzer entry points).
 *
 * Ownership: fz_file() returns a path in a static buffer, valid until the next call; the file it
 * names is rewritten on every call and removed at exit.
 *
 * The library reads files (and pipes), not memory, so each input is written to a per-process scratch
 * file under $TMPDIR (default /tmp) and handed to the entry point by name. A fuzz target must never
 * make the library exit: vp_die() on bad input data is itself a finding (libFuzzer reports "fuzz
 * target exited").
 */
#ifndef VP_FUZZ_COMMON_H
#define VP_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

static char fz_paths[4][512];
static int fz_npaths;

static void fz_cleanup(void)
{
    for (int i = 0; i < fz_npaths; i++) unlink(fz_paths[i]);
}

/* Write data to scratch file number slot (0..3) with the given suffix; return its path. */
static inline const char *fz_file(int slot, const char *suffix, const uint8_t *data, size_t size)
{
    static int init;
    if (!init) {
        atexit(fz_cleanup);
        init = 1;
    }
    const char *t = getenv("TMPDIR");
    snprintf(fz_paths[slot], sizeof fz_paths[slot], "%s/vpfuzz-%d-%d%s", t && *t ? t : "/tmp", (int)getpid(), slot, suffix);
    if (slot >= fz_npaths) fz_npaths = slot + 1;
    FILE *f = fopen(fz_paths[slot], "wb");
    if (!f) { perror(fz_paths[slot]); abort(); }
    if (size && fwrite(data, 1, size, f) != size) { perror(fz_paths[slot]); abort(); }
    fclose(f);
    return fz_paths[slot];
}

/* Name the program in messages; warnings and info are dropped (errors still print: run libFuzzer
 * with -close_fd_mask=2 to hide them, sanitizer reports still show). */
static inline void fz_init(const char *prog)
{
    vp_set_progname(prog);
    vp_verbosity = 0;
}

#endif
