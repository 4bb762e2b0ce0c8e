/* filter.h - the loop every case-by-case filter runs: read each case from the input endpoint,
 * transform it, append the program's provenance entry, write it; end the stream cleanly, or on the
 * first error discard the output (a file output is never left half written).
 *
 * Ownership: the step function may change the case in place (add, replace or take volumes and meta);
 * the loop frees it after writing.
 */
#ifndef VP_FILTER_H
#define VP_FILTER_H

#include "frame.h"

/* Transform one case. Return 0, or an exit code (VP_ERR_DATA ...) after printing the error; a
 * negative value -code is taken as code. */
typedef int (*vp_step_fn)(vp_case *c, void *ctx);

/* Run the loop from in_spec to out_spec; returns the program's exit code. */
int vp_filter_run(const char *program, const char *in_spec, const char *out_spec, vp_step_fn step, void *ctx);

#endif
