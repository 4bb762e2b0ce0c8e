/* trainer_ckpt.h - what the trainers write beside the model: the training-state file (optimizer
 * state, parameters, counters, generator state, history) as safetensors, the loss/Dice history,
 * and the curve plot as a self-contained SVG. Every file is written atomically: a temporary file
 * beside the target, fsync, rename, fsync of the directory; an interrupted write leaves the old file.
 *
 * Ownership: vp_thist owns its arrays (vp_thist_free); the writers copy nothing they keep.
 */
#ifndef VP_TRAINER_CKPT_H
#define VP_TRAINER_CKPT_H

#include <stddef.h>
#include <stdint.h>

/* Write path as safetensors: n one-dimensional F32 tensors (names[i], data[i], len[i] floats) in
 * the order given, and nmeta string pairs as __metadata__. 0, or -1 after vp_error() naming path
 * (nothing is left at path or beside it then). */
int vp_tst_write(const char *path, int n, const char *const *names, const float *const *data, const int64_t *len,
                 int nmeta, const char *const *keys, const char *const *values);

/* Write a whole text buffer to path atomically. 0, or -1 after vp_error(). */
int vp_atomic_write_text(const char *path, const char *text, size_t len);

/* Training history: one entry per finished epoch, mean loss and mean validation Dice (NaN when
 * the epoch was not validated). */
typedef struct vp_thist {
    int n, cap;
    double *loss, *dice;
} vp_thist;

void vp_thist_add(vp_thist *h, double loss, double dice);
/* Set the Dice of the last entry. */
void vp_thist_set_dice(vp_thist *h, double dice);
void vp_thist_free(vp_thist *h);
/* As JSON "[[loss, dice|null], ...]" (a new string), and back (0, or -1 when malformed). */
char *vp_thist_to_json(const vp_thist *h);
int vp_thist_from_json(vp_thist *h, const char *s);

/* The curves as an SVG document (a new string): loss per epoch (left axis) and mean validation
 * Dice (right axis, 0..1); title names the run. */
char *vp_thist_svg(const vp_thist *h, const char *title);

/* s with JSON string escapes applied (a new string, without the quotes). */
char *vp_json_escape(const char *s);

#endif
