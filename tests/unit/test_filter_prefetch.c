/* Unit tests: vp_filter_run_prefetch (filter_prefetch.h) against vp_filter_run on the same cases:
 * the same output file byte for byte, at most one case prepared ahead (and one actually is: the
 * reading overlaps the run), and the same exit code with no output file when case 2 is truncated,
 * when prep fails (the reader then reads no further) or when run fails. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "endpoint.h"
#include "filter.h"
#include "filter_prefetch.h"
#include "frame.h"
#include "util.h"
#include "volume.h"

static char tmpdir[256];

static void mk_tmp(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/vp-test-prefetch-XXXXXX");
    cr_assert(mkdtemp(tmpdir));
}

static void rm_tmp(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(prefetch, .init = mk_tmp, .fini = rm_tmp);

static void path(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", tmpdir, name);
}

/* n cases "c1".."cn" (or id "bad" for case bad_at), each a 6x5x4 u8 volume of case-dependent bytes */
static void write_cases(const char *file, int n, int bad_at)
{
    vp_out *o = vp_out_open(file, 0);
    cr_assert(o);
    for (int k = 1; k <= n; k++) {
        char id[16];
        snprintf(id, sizeof id, k == bad_at ? "bad" : "c%d", k);
        vp_case *c = vp_case_new(id);
        uint64_t dims[4] = {6, 5, 4, 1};
        double aff[16] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
        vp_vol *v = vp_vol_new(dims, VP_U8, aff);
        for (uint64_t i = 0; i < vp_vol_nvox(v); i++) ((uint8_t *)v->data)[i] = (uint8_t)(i * 7 + k * 31);
        vp_case_add_vol(c, "image", v);
        cr_assert_eq(vp_case_write(o, c), 0);
        vp_case_free(&c);
    }
    cr_assert_eq(vp_stream_finish(&o), 0);
}

static char *slurp(const char *file, size_t *n)
{
    FILE *f = fopen(file, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)sz + 1);
    *n = fread(b, 1, (size_t)sz, f);
    fclose(f);
    return b;
}

/* the counters the callbacks keep (prep runs on the reader thread) */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int prepared, run_started, max_ahead, fail_run_at;

struct job {
    vp_vol *inv; /* 255 - image */
};

static void job_free(void *vj)
{
    struct job *j = vj;
    if (!j) return;
    vp_vol_free(&j->inv);
    free(j);
}

static int prep(vp_case *c, void *ctx, void **out)
{
    (void)ctx;
    if (!strcmp(c->id, "bad")) return vp_error("case 'bad': refused by prep"), VP_ERR_DATA;
    vp_vol *v = vp_case_vol(c, "image");
    struct job *j = calloc(1, sizeof *j);
    j->inv = vp_vol_new(v->dims, VP_U8, v->affine);
    for (uint64_t i = 0; i < vp_vol_nvox(v); i++) ((uint8_t *)j->inv->data)[i] = (uint8_t)(255 - ((uint8_t *)v->data)[i]);
    *out = j;
    pthread_mutex_lock(&mu);
    prepared++;
    pthread_mutex_unlock(&mu);
    return 0;
}

static int run(vp_case *c, void *ctx, void *vj)
{
    (void)ctx;
    struct job *j = vj;
    pthread_mutex_lock(&mu);
    const int k = ++run_started;
    pthread_mutex_unlock(&mu);
    if (k == fail_run_at) return vp_error("case '%s': refused by run", c->id), VP_ERR_RUNTIME;
    usleep(30000); /* the reader gets ahead meanwhile, if it can */
    pthread_mutex_lock(&mu);
    if (prepared - k > max_ahead) max_ahead = prepared - k;
    pthread_mutex_unlock(&mu);
    vp_case_add_vol(c, "inv", j->inv);
    j->inv = NULL;
    return 0;
}

static int step(vp_case *c, void *ctx)
{
    void *j = NULL;
    int rc = prep(c, ctx, &j);
    if (!rc) rc = run(c, ctx, j);
    job_free(j);
    return rc;
}

static void reset(void)
{
    prepared = run_started = max_ahead = fail_run_at = 0;
}

Test(prefetch, same_bytes_as_the_sequential_loop_and_one_case_ahead)
{
    char in[300], a[300], b[300];
    path(in, sizeof in, "in.vxp"), path(a, sizeof a, "seq.vxp"), path(b, sizeof b, "pre.vxp");
    write_cases(in, 4, 0);
    reset();
    cr_assert_eq(vp_filter_run("test", in, a, step, NULL), 0);
    cr_assert_eq(max_ahead, 0, "the sequential loop prepares nothing ahead");
    reset();
    cr_assert_eq(vp_filter_run_prefetch("test", in, b, prep, run, job_free, NULL), 0);
    cr_assert_eq(prepared, 4);
    cr_assert_eq(run_started, 4);
    cr_assert_eq(max_ahead, 1, "one case prepared ahead while the current one runs (not more, not less): %d", max_ahead);
    size_t na, nb;
    char *da = slurp(a, &na), *db = slurp(b, &nb);
    cr_assert(da && db);
    cr_assert_gt(na, 4 * 120u);
    cr_assert_eq(na, nb);
    cr_assert_eq(memcmp(da, db, na), 0, "the outputs differ");
    free(da), free(db);
}

/* the exit code of both loops on `in`, and that neither leaves an output file */
static void both(const char *in, int want, int fail_at, int want_prepared)
{
    char a[300], b[300];
    path(a, sizeof a, "seq.vxp"), path(b, sizeof b, "pre.vxp");
    reset();
    fail_run_at = fail_at;
    int ra = vp_filter_run("test", in, a, step, NULL);
    reset();
    fail_run_at = fail_at;
    int rb = vp_filter_run_prefetch("test", in, b, prep, run, job_free, NULL);
    cr_assert_eq(ra, want, "sequential: exit %d, expected %d", ra, want);
    cr_assert_eq(rb, ra, "prefetch: exit %d, sequential %d", rb, ra);
    cr_assert(access(a, F_OK) != 0 && access(b, F_OK) != 0, "an output file was left");
    if (want_prepared >= 0) cr_assert_eq(prepared, want_prepared, "prepared %d cases, expected %d", prepared, want_prepared);
}

Test(prefetch, truncated_case_2_gives_the_same_exit_code)
{
    char in[300], one[300], t[300];
    path(in, sizeof in, "in.vxp"), path(one, sizeof one, "one.vxp"), path(t, sizeof t, "trunc.vxp");
    write_cases(in, 3, 0);
    write_cases(one, 1, 0);
    size_t n, n1;
    char *d = slurp(in, &n), *d1 = slurp(one, &n1);
    FILE *f = fopen(t, "wb");
    fwrite(d, 1, n1 + (n - n1) / 4, f); /* case 1 whole, case 2 cut in its middle */
    fclose(f);
    free(d), free(d1);
    both(t, VP_ERR_DATA, 0, 1);
    cr_assert_eq(run_started, 1, "case 1 ran (its output is written before the error)");
}

Test(prefetch, prep_error_stops_reading_with_the_same_exit_code)
{
    char in[300];
    path(in, sizeof in, "in.vxp");
    write_cases(in, 5, 3);
    both(in, VP_ERR_DATA, 0, 2); /* case 3 refused: cases 4, 5 are never read */
    cr_assert_eq(run_started, 2);
}

Test(prefetch, run_error_with_the_same_exit_code)
{
    char in[300];
    path(in, sizeof in, "in.vxp");
    write_cases(in, 5, 0);
    both(in, VP_ERR_RUNTIME, 2, -1);
    cr_assert_leq(prepared, 3, "at most one case ahead of the failing case 2: %d prepared", prepared);
}

/* What nn_infer_cuda's ledger of staged inputs relies on (nn_infer_cuda.h, "Staged inputs"): when
 * the reader prepares case k+1, case k-1's job has been freed, so at most one other job (the case
 * running) is alive: a case's device memory budget is shared with one case, never two. */
static int live_jobs, max_live_at_prep;

static void job_free_counted(void *vj)
{
    if (!vj) return;
    job_free(vj);
    pthread_mutex_lock(&mu);
    live_jobs--;
    pthread_mutex_unlock(&mu);
}

static int prep_counted(vp_case *c, void *ctx, void **out)
{
    pthread_mutex_lock(&mu);
    if (live_jobs > max_live_at_prep) max_live_at_prep = live_jobs;
    pthread_mutex_unlock(&mu);
    const int rc = prep(c, ctx, out);
    if (!rc) {
        pthread_mutex_lock(&mu);
        live_jobs++;
        pthread_mutex_unlock(&mu);
    }
    return rc;
}

Test(prefetch, at_most_one_other_job_alive_when_a_case_is_prepared)
{
    char in[300], b[300];
    path(in, sizeof in, "in.vxp"), path(b, sizeof b, "pre.vxp");
    write_cases(in, 5, 0);
    reset();
    live_jobs = max_live_at_prep = 0;
    cr_assert_eq(vp_filter_run_prefetch("test", in, b, prep_counted, run, job_free_counted, NULL), 0);
    cr_assert_eq(prepared, 5);
    cr_assert_eq(max_ahead, 1, "the reader did run ahead (%d), so the count below means something", max_ahead);
    cr_assert_eq(max_live_at_prep, 1, "jobs alive when a case was prepared: at most %d, want 1 (the case running)", max_live_at_prep);
    cr_assert_eq(live_jobs, 0, "every job freed");
}
