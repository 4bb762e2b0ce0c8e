/* vol-cat - concatenate voxpipe streams (with one input: a pass-through filter). */
#include "cli.h"
#include "endpoint.h"
#include "frame.h"
#include "util.h"

#include <stdlib.h>

static const char *out_spec = "-";
static struct vp_strlist inputs;

static const struct vp_opt opts[] = {
    {'i', "in", "ENDPOINT", VP_OPT_LIST, &inputs, "input stream (repeatable, read in order; default -)", 0, 0, NULL},
    {'o', "out", "ENDPOINT", VP_OPT_STR, &out_spec, "where to write the stream: -, FILE, @tcp://ADDR:PORT, >tcp://HOST:PORT", 0, 0, NULL},
    {0, NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
};

static const struct vp_cmd cmd = {
    "vol-cat", "concatenate voxpipe streams; with one input, pass frames through",
    "[options] [-i INPUT]...",
    "Each INPUT is -, a stream file, or a ZeroMQ endpoint (@bind or >connect); the default is -.\n"
    "Frames are copied unchanged except that meta.provenance gains a vol-cat entry.",
    opts, 0, 0,
};

int main(int argc, char **argv)
{
    vp_cli_parse(&cmd, argc, argv);
    vp_out *out = vp_out_open(out_spec, 0);
    if (!out) return VP_ERR_RUNTIME;
    int ninputs = inputs.n;
    for (int i = 0; i < (ninputs ? ninputs : 1); i++) {
        vp_in *in = vp_in_open(ninputs ? inputs.v[i] : "-");
        if (!in) { vp_out_close(&out, 0); return VP_ERR_RUNTIME; }
        vp_case *c;
        vp_sreader *sr;
        int r;
        /* streaming: payloads go from input to output piece by piece (spliced by the kernel
         * between pipes and files), so memory stays a few MiB whatever the frame size */
        while ((r = vp_case_begin(in, &c, &sr)) > 0) {
            vp_case_add_provenance(c, cmd.name);
            int w = vp_case_write_head(out, c, vp_sreader_pending(sr));
            const char *name;
            const vp_vol *hdr;
            while (!w && (r = vp_sreader_next(sr, &name, &hdr)) > 0) {
                struct vp_payload_writer pw;
                w = vp_case_write_vol_head(out, name, hdr, &pw);
                if (!w && (r = vp_sreader_copy(sr, &pw)) < 0) break;
            }
            if (r < 0) { vp_sreader_abort(&sr); vp_case_free(&c); vp_in_close(&in); vp_out_close(&out, 0); return -r; }
            if (!w) w = vp_out_end_frame(out);
            r = vp_sreader_end(&sr);
            vp_case_free(&c);
            if (w) { vp_in_close(&in); vp_out_close(&out, 0); return VP_ERR_RUNTIME; }
            if (r < 0) { vp_in_close(&in); vp_out_close(&out, 0); return -r; }
        }
        vp_in_close(&in);
        if (r < 0) { vp_out_close(&out, 0); return -r; }
    }
    return vp_stream_finish(&out) ? VP_ERR_RUNTIME : 0;
}
