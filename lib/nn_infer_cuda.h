/* nn_infer_cuda.h - whole-volume SegResNet inference on a CUDA device, as infer-ressegnet runs it
 * with --backend cuda[:N[:MATH]]: the device-resident network (nn_cuda.h, vp_cuda_segresnet_*) as
 * the predictor of the device sliding window (vp_cuda_sliding_window): the preprocessed case is
 * uploaded once, windows are cut, predicted and aggregated on the device (f32 or f16 band), the
 * argmax is taken on the device, and only the labels (and, when asked, the averaged logits) come
 * back. When the case does not fit in the device's memory (the whole image and labels on the device
 * plus an estimate of the network's activations exceed what is free, or the budget of
 * VP_CUDA_MEM_LIMIT_MIB), the tiled path runs instead: the case stays on the host and slabs of
 * roi[0] rows are uploaded as the windows need them, the labels come back band by band; the
 * labels are the same. Only when a batch of windows itself does not fit does a case fail (out of
 * device memory). Compiled in every build: without CUDA the functions report "built without CUDA" (the
 * stub's messages) and the caller exits VP_ERR_DEVICE.
 *
 * Staged inputs (infer-ressegnet --prefetch, with lib/filter_prefetch.c): a reader thread stages
 * case k+1 (vp_infer_cuda_stage) while the main thread runs case k (vp_infer_cuda_run_staged):
 * the input goes into pinned host memory and, when case k and case k+1 both fit the device memory
 * budget, its upload starts at once on the device's copy stream (nn_cuda.h, vp_cuda_ahead_*), so
 * it overlaps case k's compute; case k+1's kernels wait for the copy's event on the compute stream.
 * The copy is issued by the reader thread (after vp_cuda_use_device: it selects the handle's
 * device, so its pinned memory and events create no context on GPU 0), not by the main thread
 * between window batches: it starts as soon as the case is staged whatever the windows' sizes,
 * needs no hook in the sliding window's loop, and the main thread's order of work is unchanged.
 * The budget is vp_cuda_mem_available() when the model was put on the device; a case's need is
 * the sliding window's estimate for the whole volume (image and labels (C+1) x D*H*W x 4 bytes
 * plus the network's reserve for one batch, as its choice of the tiled path). The handle keeps a
 * ledger of the needs of the staged cases not yet freed (at most two: the one running and the
 * one ahead); a case is uploaded ahead only when the ledger plus its need fits the budget,
 * otherwise (and when pinned or device memory cannot be had) it is uploaded when it runs, as
 * without --prefetch (it may then take the tiled path), and -v says why. The labels are the same
 * either way: the device input is the same bytes as the host one.
 *
 * Ownership: vp_infer_cuda_open returns a handle owning the model's device weights;
 * vp_infer_cuda_free releases it (NULL-safe, sets *ic to NULL). vp_infer_cuda_run frees every
 * device buffer it allocated before returning, on success and on failure (out of device memory
 * included), so a failed case leaves the device as it found it. The caller owns x and lab.
 */
#ifndef VP_NN_INFER_CUDA_H
#define VP_NN_INFER_CUDA_H

#include "nn_cuda.h"
#include "nn_safetensors.h"
#include "nn_sliding.h"
#include "volume.h"

typedef struct vp_infer_cuda vp_infer_cuda;

/* 1 when be is a CUDA backend (its name is "cuda..."), 0 for the CPU ones. */
int vp_infer_cuda_is_cuda(const vp_nn_backend *be);

/* The activation layout for be's math: NDHWC (channels last, what the tensor cores want) for
 * tf32, f16 and bf16, NCDHW for f32; the environment variable VP_CUDA_LAYOUT=ncdhw|ndhwc
 * overrides (tests compare both). */
int vp_infer_cuda_layout(const vp_nn_backend *be);

/* The SegResNet of st (checked by vp_segresnet_load, same messages) on be's device in the layout
 * above; windows go batch at a time through the network (sw_batch_size, 1..64) and are aggregated
 * in f16 when acc_f16 (half the band's memory; labels may differ where classes nearly tie), else
 * in f32 (the CPU's sums, operation for operation). NULL after vp_error(): a bad file, a batch
 * out of range, out of device memory for the weights. Models with upsample_mode deconv run with ConvTranspose3d on the device. */
vp_infer_cuda *vp_infer_cuda_open(const vp_nn_backend *be, const vp_safetensors *st, const char *where, int batch,
                                  int acc_f16);

/* Sliding-window inference (p: roi, overlap, importance map, padding as vp_sliding_window) of x
 * (1, C, nx, ny, nz; vp_vol_to_tensor's order) on the device. lab: a u8 or u16 volume of
 * nx x ny x nz (x fastest) that receives the argmax (the first maximum wins exact ties, as on
 * the CPU); emit, when not NULL: called with each final row's averaged logits (x = d, in order;
 * (K, ny, nz), z fastest; vp_sliding_window_rows' contract), one row of host memory at a time --
 * for --prob, whose softmax is taken on the host without the whole volume's f32 logits there.
 * 0, or -1 after vp_error() (out of device memory says so and names the buffer; vp_cuda_exit_code() then gives VP_ERR_DEVICE). */
int vp_infer_cuda_run(vp_infer_cuda *ic, const vp_tensor *x, const vp_sw_params *p, vp_vol *lab, vp_sw_emit_fn emit, void *ectx);

/* Device memory held at the peak since the last call (vp_cuda_peak_bytes of the handle's
 * device; the measurement restarts). */
size_t vp_infer_cuda_peak_bytes(const vp_infer_cuda *ic);

/* 1 when the last vp_infer_cuda_run took the tiled path (the case did not fit), else 0. */
int vp_infer_cuda_tiled(const vp_infer_cuda *ic);

/* A case's input staged for vp_infer_cuda_run_staged (see Staged inputs above). */
typedef struct vp_infer_cuda_input vp_infer_cuda_input;

/* On any thread (the reader's): take *x (a host tensor (1, C, nx, ny, nz) from vp_vol_to_tensor;
 * *x is set to NULL), select ic's device for the calling thread, copy it into pinned host memory
 * (without it: kept as it is, a -v note, no error) and, when it fits the budget with the case
 * running now, start its upload on the copy stream (-v says which, and why not). p: the window
 * parameters it will run with (the reserve of the estimate); label names the case in messages.
 * NULL after vp_error() (the device cannot be selected: vp_cuda_exit_code() gives VP_ERR_DEVICE);
 * *x is then freed. */
vp_infer_cuda_input *vp_infer_cuda_stage(vp_infer_cuda *ic, vp_tensor **x, const vp_sw_params *p, const char *label);

/* vp_infer_cuda_run on a staged input, on the main thread: with the input uploaded ahead, the
 * compute stream waits for its copy and the sliding window uses it in place; otherwise the host
 * input is uploaded now (or the tiled path runs). The input's host and device memory are
 * released before returning (its ledger entry stays until vp_infer_cuda_input_free). With
 * VP_CUDA_TRACE=1 the compute is traced as "compute LABEL" (vp_cuda_span_*). 0 or -1 after
 * vp_error(), as vp_infer_cuda_run. */
int vp_infer_cuda_run_staged(vp_infer_cuda *ic, vp_infer_cuda_input *in, const vp_sw_params *p, vp_vol *lab, vp_sw_emit_fn emit,
                             void *ectx);

/* Release a staged input (run or not; any thread) and its ledger entry. NULL-safe; sets *in to NULL.
 * The handle must outlive its inputs. */
void vp_infer_cuda_input_free(vp_infer_cuda_input **in);

/* 1 when the input was uploaded ahead on the copy stream (tests, -v). */
int vp_infer_cuda_input_ahead(const vp_infer_cuda_input *in);

void vp_infer_cuda_free(vp_infer_cuda **ic);

#endif
