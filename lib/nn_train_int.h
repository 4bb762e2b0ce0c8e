/* nn_train_int.h - what nn_train.c (the model-independent part of vp_trainable: parameter
 * registry, flat buffers, loss dispatch, save/load) shares with the architectures
 * (nn_train_segresnet.c, nn_train_unet.c). Private to the engine; trainers use nn_train.h.
 *
 * Ownership: the vp_trainable owns params (names included), the flat buffers, impl and the arena
 * (nn_train_arena.h) that every activation and gradient buffer of a step is drawn from; impl's
 * tape lends the activations its forward saved (given back to the arena by ops->release).
 */
#ifndef VP_NN_TRAIN_INT_H
#define VP_NN_TRAIN_INT_H

#include "nn_grad.h"
#include "nn_train.h"
#include "nn_train_arena.h"

#define VP_TR_MAXOUT VP_UNET_MAXSTAGE
#define VP_TR_MAXMETA 24

typedef struct vp_train_ops {
    const char *arch;
    /* Forward x, keeping what backward needs; out[0..*nout) are new logits tensors, highest
     * resolution first (the deep-supervision outputs only when all_outputs). */
    int (*forward)(vp_trainable *m, const vp_nn_backend *be, const vp_tensor *x, int all_outputs, vp_tensor **out,
                   int *nout);
    /* Backward from dout[i] (NULL: no gradient through output i), writing every parameter
     * gradient into the flat gradient buffer; then the saved activations are released. */
    int (*backward)(vp_trainable *m, const vp_nn_grad *gr, vp_tensor *const *dout, int nout);
    void (*release)(vp_trainable *m);   /* drop the saved activations */
    void (*free_impl)(vp_trainable *m); /* release + the architecture's own struct */
    /* The architecture's __metadata__ pairs into keys/values (at most VP_TR_MAXMETA, strings of
     * up to 255 bytes); the count. */
    int (*meta)(const vp_trainable *m, char keys[][64], char values[][256]);
} vp_train_ops;

struct vp_trainable {
    const vp_train_ops *ops;
    void *impl;
    int in_ch, classes, div[3];
    int np, cap;
    vp_param *params;
    int64_t *off;
    float *P, *G;
    int64_t n;
    vp_tpool pool;  /* forward activations, backward and loss gradients of the step */
    /* Bound to a CUDA device (vp_trainable_bind_device): dev[i] are device views of parameter i's
     * weights and gradient (in the optimizer's buffers dP / dG), the pool allocates device
     * tensors, hpool holds the host copies of the logits the loss needs. NULL dbe: host. */
    const vp_nn_backend *dbe;
    vp_param *dev;
    float *dP, *dG;
    vp_tpool hpool;
};

/* A new model shell for ops (impl set by the caller). */
vp_trainable *vp_tr_new(const vp_train_ops *ops);
/* Register a parameter (name copied); returns its index. Only before vp_tr_finalize. */
int vp_tr_add(vp_trainable *m, const char *name, int ndim, const int64_t *shape);
/* Allocate the flat buffers (zeroed) and point every parameter's w / g at its slice. */
void vp_tr_finalize(vp_trainable *m);
/* Parameter i's weights / gradient as forward and backward use them: the device views when the
 * model is bound to a device, else the host ones. */
static inline vp_tensor *vp_tr_w(vp_trainable *m, int i) { return m->dev ? &m->dev[i].w : &m->params[i].w; }
static inline vp_tensor *vp_tr_g(vp_trainable *m, int i) { return m->dev ? &m->dev[i].g : &m->params[i].g; }
/* The tensor, or NULL for index -1 (an absent bias). */
static inline vp_tensor *vp_tr_wn(vp_trainable *m, int i) { return i < 0 ? NULL : vp_tr_w(m, i); }
static inline vp_tensor *vp_tr_gn(vp_trainable *m, int i) { return i < 0 ? NULL : vp_tr_g(m, i); }

/* The backward pass's own element operations, on the host or on the bound device: dst += src, and
 * the concat backward (vp_nn_concat_bwd). 0 or -1 after vp_error(). */
int vp_tr_accumulate(vp_trainable *m, vp_tensor *dst, const vp_tensor *src);
int vp_tr_concat_bwd(vp_trainable *m, const vp_tensor *dy, vp_tensor *const *dxs, int n);

/* Seeded initialisation (splitmix64 + Box-Muller; not torch's bytes): uniform in [-b, b], normal
 * with standard deviation sd, or a constant. */
typedef struct vp_rng {
    uint64_t s;
} vp_rng;
void vp_tr_init_uniform(vp_trainable *m, int i, double b, vp_rng *r);
void vp_tr_init_normal(vp_trainable *m, int i, double sd, vp_rng *r);
void vp_tr_init_const(vp_trainable *m, int i, float v);
/* fan_in as torch computes it: shape[1] * kernel volume. */
double vp_tr_fan_in(const vp_trainable *m, int i);

/* A list of tensors a forward pass took from the arena ar (given back together by vp_tape_clear). */
typedef struct vp_tape {
    vp_tensor **t;
    int n, cap;
    vp_tpool *ar;
} vp_tape;
vp_tensor *vp_tape_new(vp_tape *tp, const int64_t shape[5]);
void vp_tape_clear(vp_tape *tp);

#endif
