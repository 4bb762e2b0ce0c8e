/* nn_tensor.c - see nn_tensor.h */
#include "nn_tensor.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int64_t vp_tensor_numel(const vp_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

static void set_shape(vp_tensor *t, int ndim, const int64_t *shape)
{
    if (ndim < 0 || ndim > VP_NN_MAXDIM) vp_die(VP_ERR_RUNTIME, "tensor: %d dimensions (at most %d)", ndim, VP_NN_MAXDIM);
    t->ndim = ndim;
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        if (shape[i] < 0) vp_die(VP_ERR_RUNTIME, "tensor: negative dimension %lld", (long long)shape[i]);
        t->shape[i] = shape[i];
        t->stride[i] = s;
        uint64_t ns;
        if (vp_mul_overflow((uint64_t)s, (uint64_t)(shape[i] ? shape[i] : 1), &ns) || ns > (uint64_t)INT64_MAX / 8)
            vp_die(VP_ERR_RUNTIME, "tensor: size overflows");
        s = (int64_t)ns;
    }
    for (int i = ndim; i < VP_NN_MAXDIM; i++) t->shape[i] = 1, t->stride[i] = 1;
}

static vp_tensor *tensor_alloc(int ndim, const int64_t *shape, int zero)
{
    vp_tensor *t = vp_calloc(1, sizeof *t);
    set_shape(t, ndim, shape);
    size_t bytes = (size_t)vp_tensor_numel(t) * sizeof(float);
    if (!bytes) bytes = sizeof(float);
    /* 64-byte alignment so vector loads of row starts never split cache lines needlessly */
    if (posix_memalign((void **)&t->data, 64, (bytes + 63) & ~(size_t)63))
        vp_die(VP_ERR_RUNTIME, "tensor: out of memory (%zu bytes)", bytes);
    if (zero) memset(t->data, 0, bytes);
    t->owns = 1;
    return t;
}

vp_tensor *vp_tensor_new(int ndim, const int64_t *shape) { return tensor_alloc(ndim, shape, 0); }
vp_tensor *vp_tensor_zeros(int ndim, const int64_t *shape) { return tensor_alloc(ndim, shape, 1); }

vp_tensor *vp_tensor_new5(int64_t n, int64_t c, int64_t d, int64_t h, int64_t w)
{
    int64_t s[5] = {n, c, d, h, w};
    return vp_tensor_new(5, s);
}

vp_tensor vp_tensor_view(float *data, int ndim, const int64_t *shape)
{
    vp_tensor t = {0};
    set_shape(&t, ndim, shape);
    t.data = data;
    return t;
}

void vp_tensor_free(vp_tensor **t)
{
    if (!t || !*t) return;
    if ((*t)->owns) free((*t)->data);
    free(*t);
    *t = NULL;
}

int vp_tensor_is_contiguous(const vp_tensor *t)
{
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != s) return 0;
        s *= t->shape[i];
    }
    return 1;
}

int vp_tensor_same_shape(const vp_tensor *a, const vp_tensor *b)
{
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

const char *vp_tensor_shape_str(const vp_tensor *t, char *buf, size_t n)
{
    size_t k = 0;
    if (n) buf[0] = 0;
    k += (size_t)snprintf(buf + k, k < n ? n - k : 0, "(");
    for (int i = 0; i < t->ndim; i++)
        k += (size_t)snprintf(buf + (k < n ? k : n), k < n ? n - k : 0, "%s%lld", i ? "," : "", (long long)t->shape[i]);
    snprintf(buf + (k < n ? k : n), k < n ? n - k : 0, ")");
    return buf;
}

/* ---- arena */

struct block {
    struct block *next;
    size_t size, used;
    unsigned char *mem;
};

struct vp_arena {
    struct block *head; /* current block first */
    size_t block_bytes, used, peak;
};

vp_arena *vp_arena_new(size_t block_bytes)
{
    vp_arena *a = vp_calloc(1, sizeof *a);
    a->block_bytes = block_bytes ? block_bytes : (size_t)64 << 20;
    return a;
}

static void *arena_alloc(vp_arena *a, size_t bytes)
{
    bytes = (bytes + 63) & ~(size_t)63;
    struct block *b = a->head;
    if (!b || b->size - b->used < bytes) {
        b = vp_calloc(1, sizeof *b);
        b->size = bytes > a->block_bytes ? bytes : a->block_bytes;
        if (posix_memalign((void **)&b->mem, 64, b->size))
            vp_die(VP_ERR_RUNTIME, "arena: out of memory (%zu bytes)", b->size);
        b->next = a->head;
        a->head = b;
    }
    void *p = b->mem + b->used;
    b->used += bytes;
    a->used += bytes;
    if (a->used > a->peak) a->peak = a->used;
    return p;
}

vp_tensor *vp_arena_tensor(vp_arena *a, int ndim, const int64_t *shape)
{
    vp_tensor *t = arena_alloc(a, sizeof *t);
    memset(t, 0, sizeof *t);
    set_shape(t, ndim, shape);
    t->data = arena_alloc(a, (size_t)vp_tensor_numel(t) * sizeof(float) + 1);
    return t;
}

void vp_arena_reset(vp_arena *a)
{
    struct block *keep = NULL;
    for (struct block *b = a->head; b; b = b->next)
        if (!keep || b->size > keep->size) keep = b;
    for (struct block *b = a->head, *nx; b; b = nx) {
        nx = b->next;
        if (b != keep) free(b->mem), free(b);
    }
    if (keep) keep->used = 0, keep->next = NULL;
    a->head = keep;
    a->used = 0;
}

size_t vp_arena_used(const vp_arena *a) { return a->used; }
size_t vp_arena_peak(const vp_arena *a) { return a->peak; }

void vp_arena_free(vp_arena **a)
{
    if (!a || !*a) return;
    vp_arena_reset(*a);
    if ((*a)->head) free((*a)->head->mem), free((*a)->head);
    free(*a);
    *a = NULL;
}
