/* nn_grad_cuda.c - the nn_grad.h backward-op table over the CUDA backward ops of nn_cuda.h, the loss
 * scaler's defaults, and the "built without CUDA" answers of nn_cuda_train.h and nn_cuda_loss.h
 * (see there). */
#include "nn_cuda_train.h"
#include "nn_cuda_loss.h"

#include <string.h>

#include "nn_cuda.h"
#include "util.h"

vp_loss_scaler vp_loss_scaler_default(int enabled)
{
    vp_loss_scaler s = {enabled, enabled ? 65536.0f : 1.0f, 2.0f, 0.5f, 2000, 0};
    return s;
}

#ifdef VP_HAVE_CUDA
static const vp_nn_backend *gbe; /* the backend the table runs on (the last one asked for) */

static int c_conv_bd(const vp_tensor *dy, const vp_tensor *w, const vp_conv3d_params *p, vp_tensor *dx)
{
    return vp_cuda_conv3d_bwd_data(gbe, dy, w, p, dx);
}
static int c_conv_bw(const vp_tensor *x, const vp_tensor *dy, const vp_conv3d_params *p, vp_tensor *dw, vp_tensor *db)
{
    return vp_cuda_conv3d_bwd_weight(gbe, x, dy, p, dw, db);
}
static int c_convt_bd(const vp_tensor *dy, const vp_tensor *w, const vp_conv3d_params *p, vp_tensor *dx)
{
    return vp_cuda_conv_transpose3d_bwd_data(gbe, dy, w, p, dx);
}
static int c_convt_bw(const vp_tensor *x, const vp_tensor *dy, const vp_conv3d_params *p, vp_tensor *dw, vp_tensor *db)
{
    return vp_cuda_conv_transpose3d_bwd_weight(gbe, x, dy, p, dw, db);
}
static int c_norm(const vp_tensor *x, const vp_tensor *dy, int groups, float eps, const vp_tensor *gamma, vp_tensor *dx,
                  vp_tensor *dgamma, vp_tensor *dbeta)
{
    return vp_cuda_group_norm_bwd(gbe, x, dy, groups, eps, gamma, dx, dgamma, dbeta);
}
static int c_relu(const vp_tensor *y, const vp_tensor *dy, vp_tensor *dx) { return vp_cuda_relu_bwd(gbe, y, dy, dx); }
static int c_leaky(const vp_tensor *y, const vp_tensor *dy, float slope, vp_tensor *dx)
{
    return vp_cuda_leaky_relu_bwd(gbe, y, dy, slope, dx);
}
static int c_up(const vp_tensor *dy, vp_tensor *dx) { return vp_cuda_upsample_trilinear2x_bwd(gbe, dy, dx); }

static const vp_nn_grad cuda_grad = {
    .name = "cuda",
    .conv3d_bwd_data = c_conv_bd,
    .conv3d_bwd_weight = c_conv_bw,
    .conv_transpose3d_bwd_data = c_convt_bd,
    .conv_transpose3d_bwd_weight = c_convt_bw,
    .group_norm_bwd = c_norm,
    .relu_bwd = c_relu,
    .leaky_relu_bwd = c_leaky,
    .upsample_trilinear2x_bwd = c_up,
};

const vp_nn_grad *vp_nn_grad_cuda(const vp_nn_backend *be)
{
    if (!be || !be->name || strncmp(be->name, "cuda", 4)) return NULL;
    gbe = be;
    return &cuda_grad;
}
#else
const vp_nn_grad *vp_nn_grad_cuda(const vp_nn_backend *be)
{
    (void)be;
    return NULL;
}

vp_cuda_opt *vp_cuda_opt_new(const vp_nn_backend *be, const vp_optim_cfg *cfg, vp_optim *host, const float *params, int64_t n)
{
    (void)be, (void)cfg, (void)host, (void)params, (void)n;
    return vp_error("cuda training: built without CUDA"), NULL;
}
void vp_cuda_opt_free(vp_cuda_opt **o) { *o = NULL; }
float *vp_cuda_opt_dev_grads(vp_cuda_opt *o) { return (void)o, NULL; }
int vp_cuda_opt_upload_grads(vp_cuda_opt *o, const float *g) { return (void)o, (void)g, vp_error("built without CUDA"); }
int vp_cuda_opt_step(vp_cuda_opt *o, float lr, vp_loss_scaler *sc, float *params, double *gn, int *skipped)
{
    (void)o, (void)lr, (void)sc, (void)params, (void)gn, (void)skipped;
    return vp_error("built without CUDA");
}
int vp_cuda_opt_download(vp_cuda_opt *o, float *params) { return (void)o, (void)params, vp_error("built without CUDA"); }
int vp_cuda_opt_download_grads(vp_cuda_opt *o, float *g) { return (void)o, (void)g, vp_error("built without CUDA"); }
float *vp_cuda_opt_dev_params(vp_cuda_opt *o) { return (void)o, NULL; }
int vp_cuda_zero(const vp_nn_backend *be, float *p, int64_t n) { return (void)be, (void)p, (void)n, vp_error("built without CUDA"); }
int vp_cuda_split_channels(const vp_nn_backend *be, const vp_tensor *dy, vp_tensor *const *dxs, int n)
{
    return (void)be, (void)dy, (void)dxs, (void)n, vp_error("built without CUDA");
}
int32_t *vp_cuda_targets_upload(const vp_nn_backend *be, const int32_t *host, int64_t n)
{
    return (void)be, (void)host, (void)n, vp_error("cuda loss: built without CUDA"), NULL;
}
void vp_cuda_targets_free(const vp_nn_backend *be, int32_t **t) { (void)be, *t = NULL; }
int vp_cuda_loss_eval(const vp_nn_backend *be, const vp_loss_cfg *lc, const vp_tensor *z, const int32_t *target,
                      double weight, double *loss, vp_tensor *dz)
{
    return (void)be, (void)lc, (void)z, (void)target, (void)weight, (void)loss, (void)dz, vp_error("cuda loss: built without CUDA");
}
#endif
