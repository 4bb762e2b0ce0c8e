/* Unit tests (no GPU needed): the CUDA backend's names and errors as a machine without a GPU, or a
 * build without CUDA, sees them: "cuda:N:MATH" parsing, VP_CUDA_MATH, the messages on stderr (and
 * nothing on stdout), vp_cuda_exit_code. On a machine with a GPU the tests that expect "no device"
 * skip themselves; tests/gpu/check.sh covers that side. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn_backend.h"
#include "nn_cuda.h"
#include "util.h"

static char errbuf[8192];
static FILE *errfile;
static int saved_err = -1;

/* run f with stderr captured into errbuf */
#define CAPTURE(stmt)                                       \
    do {                                                    \
        fflush(stderr);                                     \
        errfile = tmpfile();                                \
        cr_assert(errfile);                                 \
        saved_err = dup(2);                                 \
        dup2(fileno(errfile), 2);                           \
        stmt;                                               \
        fflush(stderr);                                     \
        dup2(saved_err, 2);                                 \
        close(saved_err);                                   \
        rewind(errfile);                                    \
        size_t n_ = fread(errbuf, 1, sizeof errbuf - 1, errfile); \
        errbuf[n_] = 0;                                     \
        fclose(errfile);                                    \
    } while (0)

static int have_gpu(void) { return vp_cuda_built() && vp_cuda_device_count() > 0; }

Test(cuda_names, bad_math_is_refused_naming_it)
{
    const vp_nn_backend *be = (const vp_nn_backend *)1;
    CAPTURE(be = vp_nn_backend_get("cuda:0:fp8"));
    cr_assert_null(be);
    if (vp_cuda_built()) cr_assert(strstr(errbuf, "math 'fp8'"), "got: %s", errbuf);
    else cr_assert(strstr(errbuf, "built without CUDA"), "got: %s", errbuf);
}

Test(cuda_names, bad_ordinal_is_refused)
{
    const vp_nn_backend *be = (const vp_nn_backend *)1;
    CAPTURE(be = vp_nn_backend_get("cuda:x"));
    cr_assert_null(be);
    cr_assert(strstr(errbuf, vp_cuda_built() ? "expected cuda, cuda:N or cuda:N:MATH" : "built without CUDA"), "got: %s", errbuf);
}

Test(cuda_names, not_cuda_is_unknown_without_message)
{
    cr_assert_null(vp_nn_backend_get("cudax"));
    cr_assert_null(vp_nn_backend_get("metal"));
    cr_assert_not_null(vp_nn_backend_get("cpu"));
}

Test(cuda_names, env_math_is_checked)
{
    const vp_nn_backend *be = (const vp_nn_backend *)1;
    setenv("VP_CUDA_MATH", "f8", 1);
    CAPTURE(be = vp_nn_backend_get("cuda:0"));
    unsetenv("VP_CUDA_MATH");
    cr_assert_null(be);
    cr_assert(strstr(errbuf, vp_cuda_built() ? "VP_CUDA_MATH=f8" : "built without CUDA"), "got: %s", errbuf);
}

Test(cuda_names, no_device_says_so_exit_4_nothing_on_stdout)
{
    if (have_gpu()) cr_skip_test("a GPU is present (tests/gpu/check.sh covers it)");
    fflush(stdout);
    FILE *out = tmpfile();
    int saved_out = dup(1);
    dup2(fileno(out), 1);
    const vp_nn_backend *be = (const vp_nn_backend *)1;
    vp_tensor *t = (vp_tensor *)1;
    int64_t s[5] = {1, 2, 3, 4, 5};
    CAPTURE(be = vp_nn_backend_get("cuda:0:f16"); t = vp_cuda_tensor_new(0, 5, s));
    fflush(stdout);
    dup2(saved_out, 1);
    close(saved_out);
    cr_assert_null(be);
    cr_assert_null(t);
    cr_assert(strstr(errbuf, vp_cuda_built() ? "no CUDA device" : "built without CUDA"), "got: %s", errbuf);
    cr_assert_eq(ftell(out), 0, "something was printed on stdout");
    fclose(out);
    cr_assert_eq(vp_cuda_exit_code(1), VP_ERR_DEVICE);
    cr_assert_eq(vp_cuda_peak_bytes(0, 0), 0);
}

Test(cuda_names, exit_code_is_the_fallback_before_any_failure)
{
    /* a fresh process (criterion forks per test): nothing failed yet */
    cr_assert_eq(vp_cuda_exit_code(7), vp_cuda_built() ? 7 : VP_ERR_DEVICE);
}
