// tests/gpu/emu/test_emu_kernels.cc - lib/cuda's kernels (nn_cuda_kernels.cu, nn_cuda_kernels_grad.cu,
// run on the CPU by tests/gpu/emulate.sh) against the reference ops of nn_backend.h / nn_grad.h, in
// NCDHW and NDHWC: norm + activation, group norm backward (dx, dgamma, dbeta), bias gradient,
// upsampling and its adjoint, softmax, argmax, bias, and the layout/type conversions. Pass: max abs
// 1e-4 (sums over many elements: 1e-3); argmax identical. Exit 0 or 1.
#include "emu.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <vector>
extern "C" {
#include "nn_backend.h"
#include "nn_grad.h"
}
emu_dim blockIdx, blockDim, gridDim;
thread_local emu_dim threadIdx;
std::barrier<> *emu_bar;
static std::vector<char> scratch;
void *vp_cuda_scratch(vp_cuda_ctx *, size_t bytes) { if (scratch.size() < bytes) scratch.resize(bytes); return scratch.data(); }
void *vp_cuda_tmp(vp_cuda_ctx *, size_t bytes, const char *) { return malloc(bytes ? bytes : 4); }
int vp_cuda_h2d(vp_cuda_ctx *, void *d, const void *s, size_t b) { memcpy(d, s, b); return 0; }
int vp_cuda_d2h(vp_cuda_ctx *, void *d, const void *s, size_t b) { memcpy(d, s, b); return 0; }

static uint64_t rng = 88172645463325252ULL;
static float ur() { rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17; return (float)((rng >> 40) * (1.0 / 16777216.0)) * 2 - 1; }
static vp_tensor *rnd5(int64_t n, int64_t c, int64_t d, int64_t h, int64_t w, float s, float off = 0)
{ int64_t sh[5] = {n, c, d, h, w}; vp_tensor *t = vp_tensor_new(5, sh); for (int64_t i = 0; i < vp_tensor_numel(t); i++) t->data[i] = ur() * s + off; return t; }
static vp_tensor *like(const vp_tensor *t) { return vp_tensor_zeros(t->ndim, t->shape); }
static vp_cuda_ctx ctx;
static int fails;
// NCDHW <-> NDHWC with the conversion kernel itself
static std::vector<float> to_l(const vp_tensor *t, int l)
{ std::vector<float> o(vp_tensor_numel(t)); int64_t S = t->shape[2]*t->shape[3]*t->shape[4];
  if (l) vp_k_convert(&ctx, t->data, VP_DT_F32, o.data(), VP_DT_F32, t->shape[0], t->shape[1], S); else memcpy(o.data(), t->data, o.size()*4); return o; }
static void from_l(const std::vector<float> &v, vp_tensor *t, int l)
{ int64_t S = t->shape[2]*t->shape[3]*t->shape[4];
  if (l) vp_k_convert(&ctx, v.data(), VP_DT_F32, t->data, VP_DT_F32, t->shape[0], S, t->shape[1]); else memcpy(t->data, v.data(), v.size()*4); }
static void cmp(const char *what, int l, const vp_tensor *got, const vp_tensor *want, double tol = 1e-4)
{ double m = 0; for (int64_t i = 0; i < vp_tensor_numel(want); i++) { double d = fabs(got->data[i] - want->data[i]); if (!(d <= m)) m = d; }
  printf("%-4s %-28s %s maxabs %.2e\n", m <= tol ? "ok" : "FAIL", what, l ? "NDHWC" : "NCDHW", m); if (!(m <= tol)) fails++; }

int main()
{
    // manual check of the permutation itself
    { vp_tensor *x = rnd5(2, 3, 2, 3, 4, 1); auto v = to_l(x, 1); int64_t S = 24; int bad = 0;
      for (int n = 0; n < 2; n++) for (int c = 0; c < 3; c++) for (int s = 0; s < S; s++) bad += v[(n*S + s)*3 + c] != x->data[(n*3 + c)*S + s];
      printf("%-4s permutation NCDHW->NDHWC\n", bad ? "FAIL" : "ok"); fails += bad != 0; }
    for (int l = 0; l < 2; l++) {
        // norm + act
        struct { int N, C, G, D, H, W, aff, act; float off; } nc[] = {{2, 16, 8, 5, 6, 7, 1, 0, 0}, {1, 8, 2, 9, 9, 9, 0, 0, 100}, {1, 4, 1, 30, 30, 30, 1, 0, 0}, {2, 6, 6, 4, 5, 6, 1, 1, 0}, {2, 6, 3, 4, 5, 6, 1, 2, 0}};
        for (auto &q : nc) {
            vp_tensor *x = rnd5(q.N, q.C, q.D, q.H, q.W, 2, q.off), *want = like(x), *got = like(x);
            int64_t c1 = q.C; vp_tensor *g = vp_tensor_new(1, &c1), *b = vp_tensor_new(1, &c1);
            for (int i = 0; i < q.C; i++) g->data[i] = ur(), b->data[i] = ur();
            vp_nn_ref_group_norm(x, q.G, 1e-5f, q.aff ? g : NULL, q.aff ? b : NULL, want);
            if (q.act == 1) vp_nn_ref_relu(want, want);
            if (q.act == 2) vp_nn_ref_leaky_relu(want, 0.01f, want);
            auto xl = to_l(x, l); std::vector<float> yl(xl.size());
            vp_k_norm(&ctx, xl.data(), yl.data(), q.N, q.C, (int64_t)q.D*q.H*q.W, l, q.G, 1e-5f, q.aff ? g->data : NULL, q.aff ? b->data : NULL, q.act, 0.01f);
            from_l(yl, got, l); cmp("norm_act", l, got, want);
            // backward
            vp_tensor *dy = rnd5(q.N, q.C, q.D, q.H, q.W, 1), *dxw = like(x), *dxg = like(x), *dgw = vp_tensor_zeros(1, &c1), *dbw = vp_tensor_zeros(1, &c1);
            std::vector<float> dgg(q.C), dbg(q.C);
            vp_nn_ref_group_norm_bwd(x, dy, q.G, 1e-5f, q.aff ? g : NULL, dxw, q.aff ? dgw : NULL, q.aff ? dbw : NULL);
            int64_t S = (int64_t)q.D*q.H*q.W, NC = q.N*q.C, ng = q.N*q.G;
            std::vector<double> mean(ng), rstd(ng), A(NC), B(NC), ma(ng), mb(ng);
            std::vector<float> part(std::max<int64_t>(ng * vp_k_norm_chunks(q.C/q.G*S), 2*NC*vp_k_norm_chunks(S)));
            auto dyl = to_l(dy, l); std::vector<float> dxl(xl.size());
            vp_k_norm_stats(&ctx, xl.data(), q.N, q.C, S, l, q.G, 1e-5f, mean.data(), rstd.data(), part.data());
            vp_k_chan_sums(&ctx, xl.data(), dyl.data(), q.N, q.C, S, l, q.G, mean.data(), rstd.data(), A.data(), B.data(), part.data());
            vp_k_norm_backward(&ctx, xl.data(), dyl.data(), dxl.data(), q.N, q.C, S, l, q.G, mean.data(), rstd.data(), q.aff ? g->data : NULL, A.data(), B.data(), ma.data(), mb.data(), dgg.data(), dbg.data());
            from_l(dxl, dxg, l); cmp("group_norm_bwd dx", l, dxg, dxw);
            if (q.aff) { vp_tensor vg = vp_tensor_view(dgg.data(), 1, &c1), vb = vp_tensor_view(dbg.data(), 1, &c1); cmp("group_norm_bwd dgamma", l, &vg, dgw, 1e-3); cmp("group_norm_bwd dbeta", l, &vb, dbw, 1e-3); }
            // bias grad = dbeta without affine: sum dy
            std::vector<float> db(q.C); vp_k_chan_sums(&ctx, NULL, dyl.data(), q.N, q.C, S, l, q.C, NULL, NULL, A.data(), NULL, part.data()); vp_k_sum_n(&ctx, A.data(), q.N, q.C, db.data());
            vp_tensor dbt = vp_tensor_view(db.data(), 1, &c1), *dbref = vp_tensor_zeros(1, &c1);
            for (int n = 0; n < q.N; n++) for (int c = 0; c < q.C; c++) { double s = 0; for (int64_t v = 0; v < S; v++) s += dy->data[(n*q.C + c)*S + v]; dbref->data[c] += s; }
            cmp("bias grad", l, &dbt, dbref, 1e-3);
        }
        // upsample fwd/bwd, softmax, argmax, bias
        vp_tensor *x = rnd5(2, 5, 3, 4, 6, 3), *up = vp_tensor_new5(2, 5, 6, 8, 12), *upg = vp_tensor_new5(2, 5, 6, 8, 12);
        vp_nn_ref_upsample_trilinear2x(x, up);
        auto xl = to_l(x, l); std::vector<float> ul(vp_tensor_numel(up));
        vp_k_upsample2x(&ctx, xl.data(), ul.data(), 2, 5, 3, 4, 6, l); from_l(ul, upg, l); cmp("upsample2x", l, upg, up);
        vp_tensor *dyu = rnd5(2, 5, 6, 8, 12, 1), *dxr = like(x), *dxg2 = like(x);
        vp_nn_ref_upsample_trilinear2x_bwd(dyu, dxr);
        auto dyul = to_l(dyu, l); std::vector<float> dxl2(xl.size());
        vp_k_upsample2x_bwd(&ctx, dyul.data(), dxl2.data(), 2, 5, 3, 4, 6, l); from_l(dxl2, dxg2, l); cmp("upsample2x_bwd", l, dxg2, dxr);
        vp_tensor *sm = like(x), *smg = like(x); vp_nn_ref_softmax_c(x, sm);
        std::vector<float> sl(xl.size()); vp_k_softmax(&ctx, xl.data(), sl.data(), 2, 5, 72, l); from_l(sl, smg, l); cmp("softmax", l, smg, sm);
        std::vector<int32_t> a(144), ag(144); vp_nn_ref_argmax_c(x, a.data()); vp_k_argmax(&ctx, xl.data(), ag.data(), 2, 5, 72, l);
        int bad = 0; for (int i = 0; i < 144; i++) bad += a[i] != ag[i]; printf("%-4s argmax %s\n", bad ? "FAIL" : "ok", l ? "NDHWC" : "NCDHW"); fails += bad;
        int64_t c5 = 5; vp_tensor *bb = vp_tensor_new(1, &c5); for (int i = 0; i < 5; i++) bb->data[i] = ur();
        vp_tensor *xb = like(x), *xbg = like(x); for (int64_t i = 0; i < vp_tensor_numel(x); i++) xb->data[i] = x->data[i] + bb->data[i / 72 % 5];
        std::vector<float> bl = xl; vp_k_bias(&ctx, bl.data(), bb->data, 2, 5, 72, l); from_l(bl, xbg, l); cmp("bias", l, xbg, xb);
    }
    // weights (K, C, R) -> (K, R, C) and back, with f16 on the way
    { vp_tensor *w = rnd5(4, 3, 3, 3, 3, 1); std::vector<__half> h(vp_tensor_numel(w)); std::vector<float> back(h.size());
      vp_k_convert(&ctx, w->data, VP_DT_F32, h.data(), VP_DT_F16, 4, 3, 27); vp_k_convert(&ctx, h.data(), VP_DT_F16, back.data(), VP_DT_F32, 4, 27, 3);
      double m = 0; for (size_t i = 0; i < h.size(); i++) m = fmax(m, fabs(back[i] - w->data[i]));
      // the middle: (k, r, c) must hold w[k][c][r]
      int bad = 0; for (int k = 0; k < 4; k++) for (int c = 0; c < 3; c++) for (int r = 0; r < 27; r++) bad += fabs(__half2float(h[(k*27 + r)*3 + c]) - w->data[(k*3 + c)*27 + r]) > 1e-3;
      printf("%-4s weight permute+f16 round trip maxabs %.2e, %d misplaced\n", m < 1e-3 && !bad ? "ok" : "FAIL", m, bad); fails += !(m < 1e-3) || bad; }
    // activations NDHWC (N, S, C) -> NCDHW (N, C, S) and back, in f16 on the way: the calls of
    // nn_cuda_conv.cu's fallback when cuDNN has no NDHWC algorithm (operands in, result out)
    { vp_tensor *x = rnd5(2, 5, 3, 4, 2, 1); const int64_t N = 2, C = 5, S = 24; auto cl = to_l(x, 1);
      std::vector<__half> h(cl.size()); std::vector<float> back(cl.size()), f32(cl.size());
      vp_k_convert(&ctx, cl.data(), VP_DT_F32, f32.data(), VP_DT_F32, N, S, C); // operand in: exact
      vp_k_convert(&ctx, cl.data(), VP_DT_F32, h.data(), VP_DT_F16, N, S, C);
      vp_k_convert(&ctx, h.data(), VP_DT_F16, back.data(), VP_DT_F32, N, C, S); // result out
      int bad = 0; double m = 0;
      for (size_t i = 0; i < cl.size(); i++) bad += f32[i] != x->data[i], m = fmax(m, fabs(__half2float(h[i]) - x->data[i]));
      for (size_t i = 0; i < cl.size(); i++) m = fmax(m, fabs(back[i] - cl[i]));
      printf("%-4s activation NDHWC->NCDHW (conv fallback) %d misplaced, f16 round trip maxabs %.2e\n", !bad && m < 1e-3 ? "ok" : "FAIL", bad, m);
      fails += bad != 0 || !(m < 1e-3); vp_tensor_free(&x); }
    // plain conversions (B or Cn 1: the elementwise k_cast) against the rounding intrinsics
    { const int64_t n = 1000; std::vector<float> x(n), back(n); std::vector<__nv_bfloat16> b(n); std::vector<__half> h(n);
      for (auto &v : x) v = ur() * 100;
      vp_k_convert(&ctx, x.data(), VP_DT_F32, b.data(), VP_DT_BF16, 1, 1, n);
      vp_k_convert(&ctx, x.data(), VP_DT_F32, h.data(), VP_DT_F16, 10, n / 10, 1);
      int bad = 0;
      for (int64_t i = 0; i < n; i++) bad += __bfloat162float(b[i]) != __bfloat162float(__float2bfloat16_rn(x[i])) || __half2float(h[i]) != __half2float(__float2half_rn(x[i]));
      vp_k_convert(&ctx, b.data(), VP_DT_BF16, back.data(), VP_DT_F32, 1, n, 1);
      for (int64_t i = 0; i < n; i++) bad += back[i] != __bfloat162float(b[i]);
      printf("%-4s plain f32<->bf16/f16 conversions: %d wrong\n", bad ? "FAIL" : "ok", bad); fails += bad != 0; }
    printf("emulated kernels: %d failures\n", fails);
    return fails != 0;
}
