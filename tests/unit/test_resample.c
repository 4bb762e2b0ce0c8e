/* Unit tests: resampling grids and maps, agreement of the separable and per-voxel paths, exactness
 * properties (identity grids, constants, linear ramps), label rules at ties, thread determinism,
 * the meta 'resample' record, and reorient. Peer comparisons are in tests/shell/resample.bats. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "frame.h"
#include "reorient.h"
#include "resample.h"
#include "volume.h"

static void rotmat(double r[9], double a, double b, double c)
{
    double ca = cos(a), sa = sin(a), cb = cos(b), sb = sin(b), cc = cos(c), sc = sin(c);
    double rz[9] = {ca, -sa, 0, sa, ca, 0, 0, 0, 1}, ry[9] = {cb, 0, sb, 0, 1, 0, -sb, 0, cb};
    double rx[9] = {1, 0, 0, 0, cc, -sc, 0, sc, cc}, t[9];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            t[i * 3 + j] = 0;
            for (int k = 0; k < 3; k++) t[i * 3 + j] += rz[i * 3 + k] * ry[k * 3 + j];
        }
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            r[i * 3 + j] = 0;
            for (int k = 0; k < 3; k++) r[i * 3 + j] += t[i * 3 + k] * rx[k * 3 + j];
        }
}

/* affine with rotation (a, b, c), spacing sp, origin o */
static void make_affine(double A[16], double a, double b, double c, const double sp[3], const double o[3])
{
    double r[9];
    rotmat(r, a, b, c);
    memset(A, 0, 16 * sizeof *A);
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 3; j++) A[i * 4 + j] = r[i * 3 + j] * sp[j];
        A[i * 4 + 3] = o[i];
    }
    A[15] = 1;
}

static vp_vol *random_vol(enum vp_dtype t, uint64_t nx, uint64_t ny, uint64_t nz, uint64_t nc, const double A[16], unsigned seed)
{
    uint64_t d[4] = {nx, ny, nz, nc};
    vp_vol *v = vp_vol_new(d, t, A);
    v->has_channels = nc > 1;
    for (uint64_t i = 0; i < vp_vol_nvox(v); i++) {
        seed = seed * 1103515245u + 12345u;
        int x = (int)((seed >> 16) % 2000) - 1000;
        switch (t) {
        case VP_U8: ((uint8_t *)v->data)[i] = (uint8_t)((seed >> 16) % 7); break;
        case VP_I16: ((int16_t *)v->data)[i] = (int16_t)x; break;
        case VP_F32: ((float *)v->data)[i] = (float)x / 7.0f; break;
        default: break;
        }
    }
    return v;
}

static void world(const double A[16], double i, double j, double k, double w[3])
{
    for (int r = 0; r < 3; r++) w[r] = A[r * 4] * i + A[r * 4 + 1] * j + A[r * 4 + 2] * k + A[r * 4 + 3];
}

Test(grid, spacing_keeps_first_voxel_direction_and_extent)
{
    double A[16], sp[3] = {0.8, 1.1, 2.5}, o[3] = {-12.5, 30.25, 7};
    make_affine(A, 0.3, -0.2, 0.1, sp, o);
    uint64_t d[4] = {51, 40, 17, 1};
    vp_vol *v = vp_vol_new(d, VP_I16, A);
    double want[3] = {1.3, 0.7, 3.1};
    struct vp_grid g;
    cr_assert_eq(vp_grid_for_spacing(v, want, &g, "t"), 0);
    for (int r = 0; r < 3; r++) cr_assert_eq(g.affine[r * 4 + 3], A[r * 4 + 3], "voxel 0 stays");
    for (int a = 0; a < 3; a++) {
        double n = 0, dotp = 0, na = 0;
        for (int r = 0; r < 3; r++) {
            n += g.affine[r * 4 + a] * g.affine[r * 4 + a];
            na += A[r * 4 + a] * A[r * 4 + a];
            dotp += g.affine[r * 4 + a] * A[r * 4 + a];
        }
        cr_assert_float_eq(sqrt(n), want[a], 1e-12, "axis %d spacing", a);
        cr_assert_float_eq(dotp / sqrt(n * na), 1.0, 1e-12, "axis %d direction", a);
        /* the last output voxel lies within half an output voxel of the last input voxel */
        double extent_in = (double)(d[a] - 1) * sp[a], extent_out = (double)(g.dims[a] - 1) * want[a];
        cr_assert_leq(fabs(extent_out - extent_in), want[a] / 2 + 1e-9, "axis %d", a);
    }
    vp_vol_free(&v);
}

Test(grid, map_inverts_the_input_affine)
{
    double sp[3] = {1.2, 0.9, 2.0}, o[3] = {5, -7, 11}, A[16], B[16];
    make_affine(A, 0.4, 0.2, -0.3, sp, o);
    A[1] += 0.3; /* shear: the cofactor path */
    double sp2[3] = {2.1, 1.7, 1.3}, o2[3] = {-3, 4, 1};
    make_affine(B, -0.1, 0.5, 0.2, sp2, o2);
    struct vp_grid g = {{20, 30, 10}, {0}};
    memcpy(g.affine, B, sizeof B);
    double m[3][4];
    cr_assert_eq(vp_grid_map(A, &g, m), 0, "oblique: not separable");
    for (int i = 0; i < 20; i += 7) {
        double c[3], wa[3], wb[3];
        for (int a = 0; a < 3; a++) c[a] = m[a][0] * i + m[a][1] * (2 * i) + m[a][2] * (i / 2) + m[a][3];
        world(A, c[0], c[1], c[2], wa);
        world(B, i, 2 * i, i / 2, wb);
        for (int r = 0; r < 3; r++) cr_assert_float_eq(wa[r], wb[r], 1e-9);
    }
    memcpy(g.affine, A, sizeof A);
    cr_assert_eq(vp_grid_map(A, &g, m), 1, "same grid: separable");
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++) cr_assert_float_eq(m[i][j], i == j ? 1.0 : 0.0, 1e-12);
}

/* the per-voxel (general) path and the separable path give the same values: a grid whose axes are
 * a permutation of an aligned grid's is not diagonal and takes the general path */
Test(paths, separable_equals_general)
{
    double A[16], sp[3] = {1, 1.5, 2}, o[3] = {0, 0, 0};
    make_affine(A, 0, 0, 0, sp, o);
    vp_vol *v = random_vol(VP_F32, 23, 19, 11, 1, A, 7);
    for (int order = 1; order <= 3; order += 2)
        for (int mode = 0; mode < 3; mode++) {
            struct vp_grid g = {{31, 12, 9}, {0}}, gp;
            double sg[3] = {0.7, 2.2, 2.9};
            make_affine(g.affine, 0, 0, 0, sg, o);
            g.affine[3] = -1.3, g.affine[7] = 2.1, g.affine[11] = -0.4;
            gp = g; /* output axes x and y swapped */
            gp.dims[0] = g.dims[1], gp.dims[1] = g.dims[0];
            for (int r = 0; r < 3; r++) gp.affine[r * 4] = g.affine[r * 4 + 1], gp.affine[r * 4 + 1] = g.affine[r * 4];
            struct vp_resample_opts opt;
            vp_resample_opts_default(&opt);
            opt.order = order;
            opt.mode = (enum vp_extend)mode;
            opt.cval = -3;
            opt.antialias = 1;
            vp_vol *a = vp_resample(v, &g, &opt, "t"), *b = vp_resample(v, &gp, &opt, "t");
            cr_assert(a && b);
            double worst = 0;
            for (uint64_t k = 0; k < 9; k++)
                for (uint64_t j = 0; j < 12; j++)
                    for (uint64_t i = 0; i < 31; i++) {
                        float x = ((float *)a->data)[(k * 12 + j) * 31 + i], y = ((float *)b->data)[(k * 31 + i) * 12 + j];
                        double d = fabs((double)x - y) / (fabs(y) + 1);
                        if (d > worst) worst = d;
                    }
            cr_assert_leq(worst, 1e-6, "order %d mode %d: %g", order, mode, worst);
            vp_vol_free(&a);
            vp_vol_free(&b);
        }
    vp_vol_free(&v);
}

Test(exactness, identity_grid_and_polynomials)
{
    double A[16], sp[3] = {0.9, 1.1, 1.7}, o[3] = {3, -2, 8};
    make_affine(A, 0.2, 0.1, -0.3, sp, o);
    uint64_t d[4] = {24, 20, 16, 1};
    vp_vol *c = vp_vol_new(d, VP_F32, A), *ramp = vp_vol_new(d, VP_F32, A);
    for (uint64_t k = 0; k < 16; k++)
        for (uint64_t j = 0; j < 20; j++)
            for (uint64_t i = 0; i < 24; i++) {
                ((float *)c->data)[(k * 20 + j) * 24 + i] = 42.5f;
                ((float *)ramp->data)[(k * 20 + j) * 24 + i] = (float)(3.0 * i - 2.0 * j + 0.5 * k);
            }
    struct vp_resample_opts opt;
    vp_resample_opts_default(&opt);
    for (int order = 1; order <= 3; order += 2) {
        opt.order = order;
        struct vp_grid g = {{24, 20, 16}, {0}};
        memcpy(g.affine, A, sizeof A);
        vp_vol *r = vp_resample(ramp, &g, &opt, "t");
        for (uint64_t i = 0; i < vp_vol_nvox(r); i++)
            cr_assert_float_eq(((float *)r->data)[i], ((float *)ramp->data)[i], 1e-4, "identity grid, order %d", order);
        vp_vol_free(&r);
        /* an oblique grid inside the volume: constants stay, linear ramps are reproduced */
        double sg[3] = {0.8, 0.8, 0.8}, og[3];
        world(A, 11, 9, 7, og);
        make_affine(g.affine, 0.5, -0.2, 0.3, sg, og);
        g.dims[0] = 4, g.dims[1] = 3, g.dims[2] = 3;
        double m[3][4];
        cr_assert_eq(vp_grid_map(A, &g, m), 0);
        vp_vol *rc = vp_resample(c, &g, &opt, "t"), *rr = vp_resample(ramp, &g, &opt, "t");
        double worst = 0;
        for (uint64_t k = 0; k < 3; k++)
            for (uint64_t j = 0; j < 3; j++)
                for (uint64_t i = 0; i < 4; i++) {
                    double ci[3];
                    for (int a = 0; a < 3; a++) ci[a] = m[a][0] * i + m[a][1] * j + m[a][2] * k + m[a][3];
                    for (int a = 0; a < 3; a++) cr_assert(ci[a] > 5 && ci[a] < (double)d[a] - 6, "inside: %g", ci[a]);
                    uint64_t q = (k * 3 + j) * 4 + i;
                    cr_assert_float_eq(((float *)rc->data)[q], 42.5, 1e-4, "order %d constant", order);
                    double e = fabs(((float *)rr->data)[q] - (3.0 * ci[0] - 2.0 * ci[1] + 0.5 * ci[2]));
                    if (e > worst) worst = e;
                }
        /* linear reproduces a ramp exactly; the cubic B-spline up to the boundary term of the
         * prefilter (edge padding is not linear), which decays as 0.268^d: below 1e-3 at d > 5 */
        cr_assert_leq(worst, order == 1 ? 1e-4 : 1e-3, "order %d ramp: %g", order, worst);
        vp_vol_free(&rc);
        vp_vol_free(&rr);
    }
    vp_vol_free(&c);
    vp_vol_free(&ramp);
}

Test(labels, ties_and_float_labels)
{
    double A[16] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
    uint64_t d[4] = {2, 1, 1, 1};
    vp_vol *v = vp_vol_new(d, VP_U8, A);
    ((uint8_t *)v->data)[0] = 5;
    ((uint8_t *)v->data)[1] = 3;
    struct vp_grid g = {{1, 1, 1}, {1, 0, 0, 0.5, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1}}; /* halfway */
    struct vp_resample_opts opt;
    vp_resample_opts_default(&opt);
    opt.is_label = 1;
    opt.label_mode = VP_LABEL_ONEHOT;
    vp_vol *r = vp_resample(v, &g, &opt, "t");
    uint8_t lo = ((uint8_t *)v->data)[1], hi = ((uint8_t *)v->data)[0];
    cr_assert_eq(((uint8_t *)r->data)[0], lo, "onehot: a tie goes to the smaller label");
    vp_vol_free(&r);
    opt.label_mode = VP_LABEL_NNUNET;
    r = vp_resample(v, &g, &opt, "t");
    cr_assert_eq(((uint8_t *)r->data)[0], hi, "nnunet: the largest label reaching 0.5");
    vp_vol_free(&r);
    opt.label_mode = VP_LABEL_NEAREST;
    r = vp_resample(v, &g, &opt, "t");
    cr_assert_eq(((uint8_t *)r->data)[0], lo, "nearest: floor(x + 0.5) rounds half up, to voxel 1");
    cr_assert_eq(r->dtype, VP_U8);
    vp_vol_free(&r);
    vp_vol *f = random_vol(VP_F32, 3, 3, 3, 1, A, 1);
    cr_assert_null(vp_resample(f, &g, &opt, "t"), "float labels are refused");
    vp_vol_free(&f);
    vp_vol_free(&v);
}

Test(threads, same_bytes_whatever_the_thread_count)
{
    double A[16], sp[3] = {1, 1, 2}, o[3] = {0, 0, 0}, B[16], sg[3] = {1.6, 0.8, 1.3};
    make_affine(A, 0, 0, 0, sp, o);
    make_affine(B, 0.3, 0.1, 0.2, sg, o);
    vp_vol *img = random_vol(VP_I16, 37, 29, 13, 2, A, 3), *lab = random_vol(VP_U8, 37, 29, 13, 1, A, 5);
    struct vp_grid gs = {{23, 36, 20}, {0}}, go = {{25, 30, 18}, {0}};
    make_affine(gs.affine, 0, 0, 0, sg, o);
    memcpy(go.affine, B, sizeof B);
    struct vp_resample_opts opt;
    vp_resample_opts_default(&opt);
    opt.antialias = 1;
    for (int order = 1; order <= 3; order += 2)
        for (int gi = 0; gi < 2; gi++)
            for (int isl = 0; isl < 2; isl++) {
                opt.order = order;
                opt.is_label = isl;
                opt.label_mode = order == 1 ? VP_LABEL_ONEHOT : VP_LABEL_NNUNET;
                const vp_vol *src = isl ? lab : img;
                vp_threads = 1;
                vp_vol *a = vp_resample(src, gi ? &go : &gs, &opt, "t");
                vp_threads = 5;
                vp_vol *b = vp_resample(src, gi ? &go : &gs, &opt, "t");
                cr_assert(a && b);
                cr_assert_eq(memcmp(a->data, b->data, vp_vol_nvox(a) * vp_dtype_size(a->dtype)), 0,
                             "order %d grid %d label %d", order, gi, isl);
                vp_vol_free(&a);
                vp_vol_free(&b);
            }
    vp_vol_free(&img);
    vp_vol_free(&lab);
}

Test(meta, push_and_pop)
{
    vp_case *c = vp_case_new("m");
    struct vp_resample_entry e = {0}, e2 = {0}, back = {0};
    struct vp_grid g1 = {{3, 4, 5}, {2, 0, 0, 1, 0, 2, 0, 2, 0, 0, 2, 3, 0, 0, 0, 1}}, g2 = {{6, 8, 10}, {0}};
    g2.affine[0] = g2.affine[5] = g2.affine[10] = 1.0 / 3, g2.affine[15] = 1;
    vp_resample_entry_add(&e, "image", &g1, &g2);
    vp_resample_meta_push(c, &e);
    vp_resample_entry_add(&e2, "label", &g2, &g1);
    vp_resample_meta_push(c, &e2);
    cr_assert_eq(vp_resample_meta_pop(c, &back), 0);
    cr_assert_eq(back.n, 1);
    cr_assert_str_eq(back.names[0], "label");
    cr_assert_eq(memcmp(&back.from[0], &g2, sizeof g2), 0, "grids survive msgpack exactly");
    vp_resample_entry_free(&back);
    cr_assert_eq(vp_resample_meta_pop(c, &back), 0);
    cr_assert_str_eq(back.names[0], "image");
    cr_assert_eq(memcmp(&back.to[0], &g2, sizeof g2), 0);
    cr_assert_null(vp_case_meta(c, "resample"), "the key goes with the last record");
    vp_resample_entry_free(&back);
    cr_assert_eq(vp_resample_meta_pop(c, &back), -1, "nothing left");
    vp_resample_entry_free(&back);
    vp_resample_entry_free(&e);
    vp_resample_entry_free(&e2);
    vp_case_free(&c);
}

Test(reorient, voxels_keep_their_world_position)
{
    double A[16], sp[3] = {0.7, 1.3, 2.2}, o[3] = {10, -20, 30};
    make_affine(A, 0.1, 0.05, -0.08, sp, o); /* near RAS, slightly oblique */
    vp_vol *v = random_vol(VP_I16, 9, 7, 5, 2, A, 11);
    const char *codes[] = {"LPS", "PIR", "SAL", "RAS", "IRP"};
    for (int t = 0; t < 5; t++) {
        vp_vol *r = vp_reorient(v, codes[t], "t");
        char got[4];
        vp_affine_axcodes(r->affine, got);
        cr_assert_str_eq(got, codes[t]);
        int perm[3], flip[3];
        cr_assert_eq(vp_reorient_plan(v, codes[t], perm, flip), 0);
        for (uint64_t q = 0; q < vp_vol_nvox(r); q += 3) {
            uint64_t oi[3] = {q % r->dims[0], q / r->dims[0] % r->dims[1], q / (r->dims[0] * r->dims[1]) % r->dims[2]};
            uint64_t ch = q / (r->dims[0] * r->dims[1] * r->dims[2]), p[3];
            for (int j = 0; j < 3; j++) p[perm[j]] = flip[j] ? v->dims[perm[j]] - 1 - oi[j] : oi[j];
            uint64_t qi = ((ch * v->dims[2] + p[2]) * v->dims[1] + p[1]) * v->dims[0] + p[0];
            cr_assert_eq(((int16_t *)r->data)[q], ((int16_t *)v->data)[qi]);
            double wr[3], wv[3];
            world(r->affine, (double)oi[0], (double)oi[1], (double)oi[2], wr);
            world(v->affine, (double)p[0], (double)p[1], (double)p[2], wv);
            for (int a = 0; a < 3; a++) cr_assert_float_eq(wr[a], wv[a], 1e-9);
        }
        vp_vol *back = vp_reorient(r, "RAS", "t");
        cr_assert_eq(memcmp(back->data, v->data, vp_vol_nvox(v) * 2), 0, "round trip");
        for (int i = 0; i < 16; i++) cr_assert_float_eq(back->affine[i], v->affine[i], 1e-12);
        vp_vol_free(&back);
        vp_vol_free(&r);
    }
    cr_assert_neq(vp_axcode_valid("RAS"), -1);
    cr_assert_eq(vp_axcode_valid("RRS"), -1);
    cr_assert_eq(vp_axcode_valid("RA"), -1);
    vp_vol_free(&v);
}
