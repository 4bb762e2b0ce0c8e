/* nn_loss.c - MONAI DiceCELoss and nnU-Net DC_and_CE_loss with gradients (see nn_loss.h).
 *
 * Both are CE + soft Dice on p = softmax(logits) and the one-hot target g:
 *   CE   = -mean over voxels and batch of log p[target]           dCE/dz = (p - g) / (N V)
 *   Dice per (n, c) (or per c summed over the batch with batch_dice), over classes c >= c0:
 *     I = sum p g, P = sum p, G = sum g
 *     MONAI:  f = 1 - (2 I + smooth_nr) / (P + G + smooth_dr), loss = mean f
 *     nnU-Net: dc = (2 I + smooth) / max(P + G + smooth, 1e-8), loss = -mean dc
 *     d/dp of the ratio r = (2 I + a) / (P + G + b):  (2 g (P + G + b) - (2 I + a)) / (P + G + b)^2
 *   and the softmax chain rule dz_c = p_c (dp_c - sum_k p_k dp_k).
 * Parallel over fixed chunks of LCHUNK voxels of one batch element; the chunks' partial sums are
 * added in chunk order, so the value and the gradient do not depend on the thread count.
 */
#include "nn_loss.h"
#include "parallel.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

vp_loss_cfg vp_loss_cfg_default(vp_loss_kind kind)
{
    vp_loss_cfg c = {.kind = kind};
    if (kind == VP_LOSS_DICECE) {
        c.include_background = 1;
        c.smooth_nr = c.smooth_dr = 1e-5f;
    } else {
        c.include_background = 0;
        c.batch_dice = 1; /* nnU-Net 3d_fullres plans: batch_dice true */
        c.smooth_nr = c.smooth_dr = 1e-5f;
        c.deep_supervision = 1;
    }
    return c;
}

void vp_loss_ds_weights(int n, double *w)
{
    double s = 0;
    for (int i = 0; i < n; i++) w[i] = 1.0 / (double)(1LL << i);
    if (n > 1) w[n - 1] = 0;
    for (int i = 0; i < n; i++) s += w[i];
    for (int i = 0; i < n; i++) w[i] /= s;
}

void vp_loss_downsample_target(const int32_t *in, int64_t n, const int64_t id[3], const int64_t od[3], int32_t *out)
{
    int64_t *src[3];
    for (int a = 0; a < 3; a++) {
        src[a] = vp_malloc((size_t)od[a] * sizeof(int64_t));
        float scale = (float)id[a] / (float)od[a];
        for (int64_t o = 0; o < od[a]; o++) {
            int64_t s = (int64_t)floorf(((float)o + 0.5f) * scale);
            src[a][o] = s < id[a] - 1 ? s : id[a] - 1;
        }
    }
    for (int64_t b = 0; b < n; b++)
        for (int64_t d = 0; d < od[0]; d++)
            for (int64_t h = 0; h < od[1]; h++)
                for (int64_t w = 0; w < od[2]; w++)
                    out[((b * od[0] + d) * od[1] + h) * od[2] + w] = in[((b * id[0] + src[0][d]) * id[1] + src[1][h]) * id[2] + src[2][w]];
    for (int a = 0; a < 3; a++) free(src[a]);
}

#define LCHUNK 16384

struct loss_job {
    const vp_tensor *z;
    const int32_t *t;
    double *p;    /* softmax (N, C, V) */
    double *part; /* per chunk: ce, then I, P, G (C each) */
    const double *coef;
    float *dz;
    double weight;
    int64_t C, V, nch;
    int batch_dice;
};

/* Softmax of one chunk's voxels, its CE and Dice sums. */
static void fwd_range(void *ctx, uint64_t begin, uint64_t end, int worker)
{
    const struct loss_job *j = ctx;
    const int64_t C = j->C, V = j->V;
    for (uint64_t it = begin; it < end; it++) {
        const int64_t n = (int64_t)it / j->nch, v0 = (int64_t)it % j->nch * LCHUNK, v1 = v0 + LCHUNK < V ? v0 + LCHUNK : V;
        double *part = j->part + (int64_t)it * (1 + 3 * C), *I = part + 1, *P = I + C, *G = P + C;
        memset(part, 0, (size_t)(1 + 3 * C) * sizeof *part);
        for (int64_t v = v0; v < v1; v++) {
            const float *zp = j->z->data + n * C * V + v;
            double *pp = j->p + n * C * V + v, mx = -INFINITY, s = 0;
            for (int64_t c = 0; c < C; c++) mx = zp[c * V] > mx ? zp[c * V] : mx;
            for (int64_t c = 0; c < C; c++) s += (pp[c * V] = exp((double)zp[c * V] - mx));
            for (int64_t c = 0; c < C; c++) pp[c * V] /= s;
            const int t = j->t[n * V + v];
            part[0] -= (double)zp[t * V] - mx - log(s);
            for (int64_t c = 0; c < C; c++) P[c] += pp[c * V];
            I[t] += pp[t * V];
            G[t] += 1;
        }
    }
}

/* d(loss)/dz of one chunk's voxels. */
static void bwd_range(void *ctx, uint64_t begin, uint64_t end, int worker)
{
    const struct loss_job *j = ctx;
    const int64_t C = j->C, V = j->V, N = j->z->shape[0];
    double *dp = vp_malloc((size_t)C * sizeof *dp);
    for (uint64_t it = begin; it < end; it++) {
        const int64_t n = (int64_t)it / j->nch, v0 = (int64_t)it % j->nch * LCHUNK, v1 = v0 + LCHUNK < V ? v0 + LCHUNK : V;
        const int64_t q = j->batch_dice ? 0 : n;
        for (int64_t v = v0; v < v1; v++) {
            const double *pp = j->p + n * C * V + v;
            const int t = j->t[n * V + v];
            double sd = 0;
            for (int64_t c = 0; c < C; c++) {
                dp[c] = (c == t ? j->coef[2 * (q * C + c)] : 0.0) - j->coef[2 * (q * C + c) + 1]; /* Dice: a g - b */
                sd += pp[c * V] * dp[c];
            }
            float *o = j->dz + n * C * V + v;
            for (int64_t c = 0; c < C; c++) {
                double g = pp[c * V] * (dp[c] - sd);                         /* Dice through softmax */
                g += (pp[c * V] - (c == t ? 1.0 : 0.0)) / (double)(N * V);  /* CE */
                o[c * V] = (float)(j->weight * g);
            }
        }
    }
    free(dp);
}

int vp_loss_eval(const vp_loss_cfg *lc, const vp_tensor *z, const int32_t *target, double weight, double *loss,
                 vp_tensor *dz)
{
    if (vp_nn_check_act("loss", "logits", z)) return -1;
    if (dz && vp_nn_check_out("loss", dz, z->shape)) return -1;
    const int64_t N = z->shape[0], C = z->shape[1], V = z->shape[2] * z->shape[3] * z->shape[4];
    if (C < 2) return vp_error("loss: logits have %lld channel(s); softmax losses need at least 2 classes", (long long)C);
    for (int64_t i = 0; i < N * V; i++)
        if (target[i] < 0 || target[i] >= C) {
            int64_t n = i / V, v = i % V, w = v % z->shape[4], h = (v / z->shape[4]) % z->shape[3], d = v / (z->shape[3] * z->shape[4]);
            return vp_error("loss: target label %d at batch %lld voxel (%lld,%lld,%lld) is outside [0, %lld) (the model has %lld classes)",
                            target[i], (long long)n, (long long)d, (long long)h, (long long)w, (long long)C, (long long)C);
        }
    const int nn = lc->kind == VP_LOSS_NNUNET_DCCE;
    const int c0 = lc->include_background ? 0 : 1;
    const int64_t nb = lc->batch_dice ? 1 : N; /* Dice groups */
    struct loss_job j = {z, target, NULL, NULL, NULL, dz ? dz->data : NULL, weight, C, V, (V + LCHUNK - 1) / LCHUNK, lc->batch_dice};
    j.p = vp_malloc((size_t)(N * C * V) * sizeof *j.p);
    j.part = vp_malloc((size_t)(N * j.nch * (1 + 3 * C)) * sizeof *j.part);
    vp_parallel_for((uint64_t)(N * j.nch), 1, fwd_range, &j);
    double *I = vp_calloc((size_t)(3 * nb * C), sizeof *I), *P = I + nb * C, *G = P + nb * C;
    double ce = 0;
    for (int64_t it = 0; it < N * j.nch; it++) { /* chunk order: deterministic */
        const double *part = j.part + it * (1 + 3 * C);
        const int64_t q = lc->batch_dice ? 0 : it / j.nch;
        ce += part[0];
        for (int64_t c = 0; c < C; c++) I[q * C + c] += part[1 + c], P[q * C + c] += part[1 + C + c], G[q * C + c] += part[1 + 2 * C + c];
    }
    ce /= (double)(N * V);
    const double snr = lc->smooth_nr, sdr = lc->smooth_dr;
    const double cnt = (double)(nb * (C - c0));
    double dice = 0;
    double *coef = vp_calloc((size_t)(2 * nb * C), sizeof *coef); /* per group and class: dL/dp = a g - b */
    for (int64_t q = 0; q < nb; q++)
        for (int64_t c = c0; c < C; c++) {
            double num = 2 * I[q * C + c] + snr, den = P[q * C + c] + G[q * C + c] + sdr;
            if (nn && den < 1e-8) den = 1e-8;
            double r = num / den;
            dice += nn ? -r : 1 - r;
            /* d(-r)/dp = -(2 g den - num) / den^2, mean over the cnt terms */
            coef[2 * (q * C + c)] = -2.0 / den / cnt;
            coef[2 * (q * C + c) + 1] = -num / (den * den) / cnt;
        }
    dice /= cnt;
    *loss = ce + dice;
    if (dz) {
        j.coef = coef;
        vp_parallel_for((uint64_t)(N * j.nch), 1, bwd_range, &j);
    }
    free(coef);
    free(I);
    free(j.part);
    free(j.p);
    return 0;
}
