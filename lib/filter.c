/* filter.c - see filter.h */
#include "filter.h"
#include "endpoint.h"
#include "util.h"

int vp_filter_run(const char *program, const char *in_spec, const char *out_spec, vp_step_fn step, void *ctx)
{
    vp_in *in = vp_in_open(in_spec);
    if (!in) return VP_ERR_RUNTIME;
    vp_out *out = vp_out_open(out_spec, 0);
    if (!out) { vp_in_close(&in); return VP_ERR_RUNTIME; }
    vp_case *c;
    int r, rc = 0;
    while ((r = vp_case_read(in, &c)) > 0) {
        int e = step(c, ctx);
        if (e) rc = e < 0 ? -e : e;
        else {
            vp_case_add_provenance(c, program);
            if (vp_case_write(out, c)) rc = VP_ERR_RUNTIME;
        }
        vp_case_free(&c);
        if (rc) break;
    }
    vp_in_close(&in);
    if (!rc && r < 0) rc = -r;
    if (rc) { vp_out_close(&out, 0); return rc; }
    return vp_stream_finish(&out) ? VP_ERR_RUNTIME : 0;
}
