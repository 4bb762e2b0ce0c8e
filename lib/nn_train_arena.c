/* nn_train_arena.c - the activation arena of the training step (see nn_train_arena.h). */
#include "nn_train_arena.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn_cuda.h"
#include "nn_cuda_train.h"
#include "util.h"

static int same_shape(const vp_tensor *t, const int64_t s[5])
{
    return t->ndim == 5 && !memcmp(t->shape, s, 5 * sizeof *s);
}

static void release(vp_tpool *a, vp_tensor **t)
{
    a->bytes -= vp_tensor_numel(*t) * (int64_t)sizeof(float);
    if ((*t)->device > 0) vp_cuda_tensor_free(t);
    else vp_tensor_free(t);
}

vp_tensor *vp_tpool_get(vp_tpool *a, const int64_t shape[5])
{
    for (int i = 0; i < a->n; i++)
        if (!a->s[i].busy && same_shape(a->s[i].t, shape)) {
            a->s[i].busy = a->s[i].used = 1;
            a->reuses++;
            return a->s[i].t;
        }
    vp_tensor *t = a->device > 0 ? (a->layout == VP_CUDA_NDHWC ? vp_cuda_tensor_new_cl(a->device - 1, shape)
                                                                : vp_cuda_tensor_new(a->device - 1, 5, shape))
                                 : vp_tensor_new(5, shape);
    if (!t) return NULL;
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 64;
        vp_tpool_slot *s = vp_calloc((size_t)a->cap, sizeof *s);
        if (a->n) memcpy(s, a->s, (size_t)a->n * sizeof *s);
        free(a->s);
        a->s = s;
    }
    a->s[a->n++] = (vp_tpool_slot){t, 1, 1};
    a->allocs++;
    a->bytes += vp_tensor_numel(t) * (int64_t)sizeof(float);
    return t;
}

vp_tensor *vp_tpool_zeros(vp_tpool *a, const int64_t shape[5])
{
    vp_tensor *t = vp_tpool_get(a, shape);
    if (!t) return NULL;
    if (t->device > 0) {
        if (vp_cuda_zero(a->be, t->data, vp_tensor_numel(t))) {
            vp_tpool_put(a, &t);
            return NULL;
        }
    } else {
        memset(t->data, 0, (size_t)vp_tensor_numel(t) * sizeof(float));
    }
    return t;
}

void vp_tpool_put(vp_tpool *a, vp_tensor **t)
{
    if (!t || !*t) return;
    for (int i = a->n - 1; i >= 0; i--)
        if (a->s[i].t == *t) {
            a->s[i].busy = 0;
            *t = NULL;
            return;
        }
    if ((*t)->device > 0) vp_cuda_tensor_free(t);
    else vp_tensor_free(t);
}

void vp_tpool_detach(vp_tpool *a, vp_tensor *t)
{
    for (int i = 0; i < a->n; i++)
        if (a->s[i].t == t) {
            a->bytes -= vp_tensor_numel(t) * (int64_t)sizeof(float);
            memmove(&a->s[i], &a->s[i + 1], (size_t)(a->n - i - 1) * sizeof *a->s);
            a->n--;
            return;
        }
}

void vp_tpool_trim(vp_tpool *a)
{
    int k = 0;
    for (int i = 0; i < a->n; i++) {
        if (!a->s[i].busy && !a->s[i].used) {
            release(a, &a->s[i].t);
            continue;
        }
        a->s[i].used = 0;
        a->s[k++] = a->s[i];
    }
    a->n = k;
}

void vp_tpool_free(vp_tpool *a)
{
    for (int i = 0; i < a->n; i++) release(a, &a->s[i].t);
    free(a->s);
    a->s = NULL;
    a->n = a->cap = 0;
}

int vp_tpool_set_device(vp_tpool *a, const vp_nn_backend *be, int layout)
{
    vp_tpool_free(a);
    a->be = NULL, a->device = 0, a->layout = 0;
    if (!be) return 0;
    int ord = 0;
    if (!be->name || strncmp(be->name, "cuda", 4) || (be->name[4] == ':' && sscanf(be->name + 5, "%d", &ord) != 1))
        return vp_error("training arena: '%s' is not a CUDA backend", be->name ? be->name : "(none)");
    a->be = be, a->device = ord + 1, a->layout = layout;
    return 0;
}
