/* filter_prefetch.h - vp_filter_run (filter.h) with the next case read ahead: a reader thread reads
 * case k+1 from the input and runs the step's CPU part on it (preprocessing, staging into pinned
 * memory) while the main thread runs case k's main part (a GPU's compute) and writes it. The output
 * is that of vp_filter_run with step = prep then run: the same frames, in the same order, with the
 * same provenance; at most one case is held ahead (read and prepared, waiting for the main thread).
 * An error reading or preparing case k+1 is reported after case k is written (its message is
 * printed by the reader thread as it happens, the exit code is the same as vp_filter_run's), so
 * the cases before it are never lost; on the first error the output is discarded as vp_filter_run
 * does (a file output is never left half written).
 *
 * Ownership: prep returns a job (or NULL) that the loop hands to run with the same case; run owns
 * neither: the loop calls job_free(job) after run (also for a job never run, when the loop stops
 * early), then frees the case. prep runs on the reader thread, so it must not touch what run
 * touches (each case has its own job); run, provenance and writing stay on the main thread.
 */
#ifndef VP_FILTER_PREFETCH_H
#define VP_FILTER_PREFETCH_H

#include "frame.h"

/* The CPU part of one case, on the reader thread: 0 and *job, or an exit code after vp_error()
 * (a negative value -code is taken as code). */
typedef int (*vp_prep_fn)(vp_case *c, void *ctx, void **job);
/* The rest of one case, on the main thread, with prep's job: 0 or an exit code, as vp_step_fn. */
typedef int (*vp_run_fn)(vp_case *c, void *ctx, void *job);
/* Release a job (NULL-safe). */
typedef void (*vp_job_free_fn)(void *job);

/* Run the loop from in_spec to out_spec with one case read ahead; returns the program's exit code
 * (vp_filter_run's for the same cases). */
int vp_filter_run_prefetch(const char *program, const char *in_spec, const char *out_spec, vp_prep_fn prep, vp_run_fn run,
                           vp_job_free_fn job_free, void *ctx);

#endif
