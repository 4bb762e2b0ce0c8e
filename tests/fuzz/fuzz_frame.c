/* fuzz_frame.c - libFuzzer target for the stream reader (lib/frame_read.c, frame_decode.c, lib/mpread.c, lib/endpoint.c
 * reading). Each input is read as a stream three ways: whole cases from a file (vp_case_read: known
 * remaining size), whole cases from a pipe on stdin (unknown size: the progressive-growth path), and
 * streamed volume by volume (vp_case_begin / vp_sreader_*, as streaming filters do); every case read
 * is also written back out (vp_case_write to a discarded file output) and its meta parsed. */
#include <fcntl.h>
#include <signal.h>

#include "fuzz_common.h"
#include "frame.h"

static void touch_case(vp_case *c, vp_out *o)
{
    for (int i = 0; i < c->nmeta; i++) {
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        (void)vp_case_meta_parse(c, c->meta[i].key, &u);
        msgpack_unpacked_destroy(&u);
    }
    vp_case_add_provenance(c, "fuzz");
    if (o) (void)vp_case_write(o, c);
}

static void read_whole(const char *spec, const char *outpath)
{
    vp_in *in = vp_in_open(spec);
    if (!in) return;
    vp_out *o = outpath ? vp_out_open(outpath, 0) : NULL;
    vp_case *c;
    for (int n = 0; n < 64 && vp_case_read(in, &c) > 0; n++) {
        touch_case(c, o);
        vp_case_free(&c);
    }
    if (o) vp_out_close(&o, 0);
    vp_in_close(&in);
}

static void read_streaming(const char *spec)
{
    vp_in *in = vp_in_open(spec);
    if (!in) return;
    vp_case *head;
    vp_sreader *sr;
    int r;
    for (int n = 0; n < 64 && (r = vp_case_begin(in, &head, &sr)) > 0; n++) {
        const char *name;
        const vp_vol *hdr;
        int k = 0, bad = 0;
        while (sr && (r = vp_sreader_next(sr, &name, &hdr)) > 0) {
            if (k++ & 1) { /* every other volume taken whole, the others read in pieces */
                vp_vol *v = vp_sreader_take(sr, &r);
                if (!v) { bad = 1; break; }
                vp_vol_free(&v);
            } else {
                unsigned char buf[4096];
                while (vp_sreader_left(sr)) {
                    uint64_t m = vp_sreader_left(sr) < sizeof buf ? vp_sreader_left(sr) : sizeof buf;
                    if (vp_sreader_read(sr, buf, (size_t)m)) { bad = 1; break; }
                }
                if (bad) break;
            }
        }
        if (r < 0) bad = 1;
        if (sr) { if (bad) vp_sreader_abort(&sr); else if (vp_sreader_end(&sr)) bad = 1; }
        vp_case_free(&head);
        if (bad) break;
    }
    vp_in_close(&in);
}

/* the same bytes through a pipe on fd 0 (inputs up to the pipe buffer size, written before reading) */
static void read_pipe(const uint8_t *data, size_t size)
{
    int p[2];
    if (size > 60000 || pipe(p)) return;
    int saved = dup(0);
    if (size && write(p[1], data, size) != (ssize_t)size) abort();
    close(p[1]);
    dup2(p[0], 0);
    close(p[0]);
    read_whole("-", NULL);
    dup2(saved, 0);
    close(saved);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    if (!init) { fz_init("fuzz_frame"); signal(SIGPIPE, SIG_IGN); init = 1; }
    const char *path = fz_file(0, ".vxp", data, size);
    char outpath[600];
    snprintf(outpath, sizeof outpath, "%s.out", path);
    read_whole(path, outpath);
    read_streaming(path);
    read_pipe(data, size);
    return 0;
}
