// nn_cuda_graph.cu - CUDA graphs for a forward pass repeated on batches of one shape (the device
// sliding window's patch batches; see vp_cuda_graph_run in nn_cuda_int.h). Selected with
// VP_CUDA_GRAPHS=1 (default off: a GPU measurement, tests/gpu/check_graphs.sh, decides).
//
// Memory: the captured forward allocates its activations and temporaries as it does eagerly, from
// the stream-ordered allocator; inside a capture cudaMallocAsync/cudaFreeAsync become graph memory
// nodes (CUDA 11.4+), so the graph owns them, every allocation is freed inside the graph and a
// replay allocates nothing from the program's point of view. This keeps the forward code -- the
// kernels, the cuDNN calls and their order -- exactly the eager one (bit-identical results)
// instead of a second, arena-based forward. What must not happen inside a capture: the shared
// scratch growing (its old block would be freed by the graph): the first batch of a shape runs
// eagerly first, which grows it; a capture that still changes it is discarded. Plain cudaMalloc,
// synchronisation or a cuDNN call that refuses capture fail the capture (ThreadLocal mode: other
// threads, such as the prefetch reader pinning host memory, are not affected), which is then
// ended, discarded, and the batch run eagerly, with a -v note: never an error.
// Ownership: the holder owns its graph, executable graph and fixed input/output buffers
// (cudaMalloc, outside any capture); vp_cuda_graph_free releases them.
// Test hooks (tests/gpu/emu/infer_graphs.sh): VP_CUDA_GRAPHS_TEST=stale skips the copy of the input
// into the graph's buffer (a control that must change the result), =nowarm captures the first
// batch (the scratch grows inside the capture: the fallback path). VP_CUDA_GRAPHS_TIME=1 times
// every batch with events (synchronously) and -v prints the means at the end.
#include "nn_cuda_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { G_OFF = 0, G_WAIT, G_READY, G_FAILED };

struct vp_cuda_graph {
    vp_cuda_ctx *c;
    int layout, state;
    const char *what;
    int64_t seen[5]; // the shape of the last eager batch (a capture needs a second batch of it)
    int64_t shape[5];
    vp_tensor *x, *y; // the graph's input and output buffers
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    long replays, eager, timed_replays, timed_eager;
    int timing;
    double ms_replay, ms_eager;
    cudaEvent_t ev[2];
};

static int env_is(const char *name, const char *v)
{
    const char *e = getenv(name);
    return e && !strcmp(e, v);
}

int vp_cuda_graphs_wanted(void) { return env_is("VP_CUDA_GRAPHS", "1") || env_is("VP_CUDA_GRAPHS", "on"); }

vp_cuda_graph *vp_cuda_graph_new(vp_cuda_ctx *c, int l, const char *what)
{
    vp_cuda_graph *g = (vp_cuda_graph *)vp_calloc(1, sizeof *g);
    g->c = c, g->layout = l, g->what = what;
    g->state = vp_cuda_graphs_wanted() ? G_WAIT : G_OFF;
    if (env_is("VP_CUDA_GRAPHS_TIME", "1")) {
        if (cudaEventCreateWithFlags(&g->ev[0], cudaEventDefault) == cudaSuccess &&
            cudaEventCreateWithFlags(&g->ev[1], cudaEventDefault) == cudaSuccess)
            g->timing = 1;
        else cudaGetLastError();
    }
    return g;
}

static void drop(vp_cuda_graph *g)
{
    if (g->exec) cudaGraphExecDestroy(g->exec);
    if (g->graph) cudaGraphDestroy(g->graph);
    g->exec = NULL, g->graph = NULL;
    vp_cuda_tensor_free(&g->x);
    vp_cuda_tensor_free(&g->y);
}

void vp_cuda_graph_free(vp_cuda_graph **gp)
{
    vp_cuda_graph *g = gp ? *gp : NULL;
    if (!g) return;
    if (g->state != G_OFF || g->timing)
        vp_debug("cuda graphs: %s: %ld batches replayed from a graph, %ld run eagerly%s", g->what, g->replays, g->eager,
                 g->state == G_FAILED ? " (the capture failed: eager)" : g->state == G_OFF ? " (graphs off)" : "");
    if (g->timing)
        vp_debug("cuda graphs: %s: time per batch: replayed %.3f ms (%ld), eager %.3f ms (%ld)", g->what,
                 g->timed_replays ? g->ms_replay / g->timed_replays : 0.0, g->timed_replays, g->timed_eager ? g->ms_eager / g->timed_eager : 0.0,
                 g->timed_eager);
    if (g->c) cudaStreamSynchronize(g->c->stream); // a replay in flight uses the buffers
    drop(g);
    if (g->timing) cudaEventDestroy(g->ev[0]), cudaEventDestroy(g->ev[1]);
    free(g);
    *gp = NULL;
}

static vp_tensor *buffer(const vp_cuda_graph *g, const int64_t s[5])
{
    return g->layout == VP_CUDA_NDHWC ? vp_cuda_tensor_new_cl(g->c->dev, s) : vp_cuda_tensor_new(g->c->dev, 5, s);
}

// capture fn on the holder's buffers into g->exec; 0, or -1 with `why` filled (nothing printed,
// the failure flag of vp_cuda_exit_code untouched, the holder left without a graph)
static int capture(vp_cuda_graph *g, vp_cuda_graph_fn fn, const void *ctx, const vp_tensor *x, const vp_tensor *y, char *why, size_t n)
{
    vp_cuda_ctx *c = g->c;
    void *const scratch = c->scratch;
    const size_t scratch_bytes = c->scratch_bytes;
    const int failed = vp_cuda_failed_swap(0);
    int rc = -1;
    cudaError_t e;
    vp_error_divert(why, n);
    memcpy(g->shape, x->shape, sizeof g->shape);
    int64_t ys[5];
    memcpy(ys, y->shape, sizeof ys);
    if (!(g->x = buffer(g, g->shape)) || !(g->y = buffer(g, ys))) goto out;
    if ((e = cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal)) != cudaSuccess) {
        vp_error("cudaStreamBeginCapture: %s", cudaGetErrorName(e));
        goto out;
    }
    if (fn(ctx, g->x, g->y) && !why[0]) vp_error("the forward pass failed inside the capture");
    // always ended, also after a failure (the capture is then invalidated and yields no graph)
    if ((e = cudaStreamEndCapture(c->stream, &g->graph)) != cudaSuccess || !g->graph) {
        if (!why[0]) vp_error("cudaStreamEndCapture: %s", cudaGetErrorName(e));
        goto out;
    }
    if (why[0]) goto out;
    if (c->scratch != scratch || c->scratch_bytes != scratch_bytes) {
        vp_error("the scratch area grew inside the capture (%zu -> %zu bytes)", scratch_bytes, c->scratch_bytes);
        goto out;
    }
    if ((e = cudaGraphInstantiate(&g->exec, g->graph, 0)) != cudaSuccess) {
        g->exec = NULL;
        vp_error("cudaGraphInstantiate: %s", cudaGetErrorName(e));
        goto out;
    }
    rc = 0;
out:
    if (rc) {
        if (c->scratch != scratch) c->scratch = scratch, c->scratch_bytes = scratch_bytes; // its free was only a node of the dropped graph
        drop(g);
        cudaGetLastError(); // capture errors are not sticky: clear them
    }
    vp_error_divert(NULL, 0);
    vp_cuda_failed_swap(failed);
    return rc;
}

static int replay(vp_cuda_graph *g, const vp_tensor *x, vp_tensor *y)
{
    vp_cuda_ctx *c = g->c;
    const size_t xb = (size_t)vp_tensor_numel(x) * 4, yb = (size_t)vp_tensor_numel(y) * 4;
    if (!env_is("VP_CUDA_GRAPHS_TEST", "stale")) CUDA_CHECK(cudaMemcpyAsync(g->x->data, x->data, xb, cudaMemcpyDeviceToDevice, c->stream));
    CUDA_CHECK(cudaGraphLaunch(g->exec, c->stream));
    CUDA_CHECK(cudaMemcpyAsync(y->data, g->y->data, yb, cudaMemcpyDeviceToDevice, c->stream));
    return 0;
fail:
    return -1;
}

static int same(const int64_t a[5], const int64_t b[5]) { return !memcmp(a, b, 5 * sizeof(int64_t)); }

static int run(vp_cuda_graph *g, vp_cuda_graph_fn fn, const void *ctx, const vp_tensor *x, vp_tensor *y, int *replayed)
{
    char buf[96], why[512] = "";
    *replayed = 0;
    if (x->ndim != 5 || y->ndim != 5 || !vp_cu_is(x, g->layout) || !vp_cu_is(y, g->layout)) { // not the graph's buffers' layout
        g->eager++;
        return fn(ctx, x, y);
    }
    if (g->state == G_WAIT && (same(x->shape, g->seen) || env_is("VP_CUDA_GRAPHS_TEST", "nowarm"))) {
        if (capture(g, fn, ctx, x, y, why, sizeof why)) {
            g->state = G_FAILED;
            vp_debug("cuda graphs: %s: cannot capture the forward of a %s batch (%s): the eager path from now on", g->what,
                     vp_tensor_shape_str(x, buf, sizeof buf), why);
        } else {
            g->state = G_READY, *replayed = 2; // not timed: this batch includes the capture
            size_t nodes = 0;
            if (cudaGraphGetNodes(g->graph, NULL, &nodes) != cudaSuccess) cudaGetLastError();
            vp_debug("cuda graphs: %s: the forward of a %s batch captured (%zu nodes), replayed from now on", g->what,
                     vp_tensor_shape_str(x, buf, sizeof buf), nodes);
        }
    }
    if (g->state == G_READY && same(x->shape, g->shape)) {
        const int failed = vp_cuda_failed_swap(0);
        vp_error_divert(why, sizeof why);
        const int rc = replay(g, x, y);
        vp_error_divert(NULL, 0);
        vp_cuda_failed_swap(failed);
        if (!rc) {
            g->replays++;
            if (!*replayed) *replayed = 1;
            return 0;
        }
        cudaGetLastError();
        g->state = G_FAILED;
        drop(g);
        vp_debug("cuda graphs: %s: the replay failed (%s): the eager path from now on", g->what, why);
    }
    if (g->state == G_WAIT) memcpy(g->seen, x->shape, sizeof g->seen);
    g->eager++;
    return fn(ctx, x, y);
}

int vp_cuda_graph_run(vp_cuda_graph *g, vp_cuda_graph_fn fn, const void *ctx, const vp_tensor *x, vp_tensor *y)
{
    if (!g->timing) {
        int r;
        return g->state == G_OFF ? (g->eager++, fn(ctx, x, y)) : run(g, fn, ctx, x, y, &r);
    }
    int replayed = 0, rc;
    const int first = g->replays + g->eager == 0; // not timed: cuDNN's choice, the scratch growing
    float ms = 0;
    cudaEventRecord(g->ev[0], g->c->stream);
    rc = g->state == G_OFF ? (g->eager++, fn(ctx, x, y)) : run(g, fn, ctx, x, y, &replayed);
    cudaEventRecord(g->ev[1], g->c->stream);
    if (cudaEventSynchronize(g->ev[1]) == cudaSuccess && cudaEventElapsedTime(&ms, g->ev[0], g->ev[1]) == cudaSuccess) {
        if (first) {
        } else if (replayed == 1) g->ms_replay += ms, g->timed_replays++;
        else if (!replayed) g->ms_eager += ms, g->timed_eager++;
    } else cudaGetLastError();
    return rc;
}
