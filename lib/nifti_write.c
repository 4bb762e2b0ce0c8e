/* nifti_write.c - writing NIfTI files: the header from a volume (qform and sform from its affine)
 * and the voxels, gzip-compressed in parallel chunks for .nii.gz; see nifti.h. */
#include "nifti.h"
#include "util.h"

#include <libdeflate.h>
#include <nifti2_io.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void vp_nifti_wopts_default(struct vp_nifti_wopts *o)
{
    memset(o, 0, sizeof *o);
    o->version = 1;
    o->gzip = -1;
    o->level = 1;
    o->threads = 1;
    o->qform_code = o->sform_code = NIFTI_XFORM_SCANNER_ANAT;
}

struct zjob {
    const unsigned char *src;
    size_t len;
    unsigned char *dst;
    size_t dstlen;
    int level;
};

struct zpool {
    struct zjob *jobs;
    int njobs, next;
    pthread_mutex_t mu;
};

static void *zworker(void *arg)
{
    struct zpool *p = arg;
    struct libdeflate_compressor *c = NULL;
    int level = -1;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        int j = p->next < p->njobs ? p->next++ : -1;
        pthread_mutex_unlock(&p->mu);
        if (j < 0) break;
        struct zjob *job = &p->jobs[j];
        if (!c || level != job->level) {
            if (c) libdeflate_free_compressor(c);
            c = libdeflate_alloc_compressor(job->level);
            level = job->level;
        }
        size_t bound = libdeflate_gzip_compress_bound(c, job->len);
        job->dst = malloc(bound);
        job->dstlen = job->dst && c ? libdeflate_gzip_compress(c, job->src, job->len, job->dst, bound) : 0;
    }
    if (c) libdeflate_free_compressor(c);
    return NULL;
}

#define GZ_CHUNK ((size_t)32 << 20)

/* gzip of a header and the voxel data as consecutive gzip members (RFC 1952 allows several;
 * zlib, Python's gzip and nibabel read them as one stream), compressed in parallel. */
static int write_gz(vp_out *o, const void *hdr, size_t hlen, const void *data, size_t dlen, int level, int threads)
{
    size_t nchunks = (dlen + GZ_CHUNK - 1) / GZ_CHUNK;
    struct zjob *jobs = vp_calloc(nchunks + 1, sizeof *jobs);
    jobs[0] = (struct zjob){hdr, hlen, NULL, 0, level};
    for (size_t i = 0; i < nchunks; i++) {
        size_t off = i * GZ_CHUNK;
        jobs[i + 1] = (struct zjob){(const unsigned char *)data + off, dlen - off < GZ_CHUNK ? dlen - off : GZ_CHUNK, NULL, 0, level};
    }
    struct zpool pool = {jobs, (int)nchunks + 1, 0, PTHREAD_MUTEX_INITIALIZER};
    int nt = threads < 1 ? 1 : threads;
    if (nt > pool.njobs) nt = pool.njobs;
    pthread_t tid[64];
    if (nt > 64) nt = 64;
    int started = 0;
    for (int i = 1; i < nt; i++)
        if (!pthread_create(&tid[started], NULL, zworker, &pool)) started++;
    zworker(&pool);
    for (int i = 0; i < started; i++) pthread_join(tid[i], NULL);
    int rc = 0;
    for (int i = 0; i < pool.njobs; i++) {
        if (!rc && (!jobs[i].dst || !jobs[i].dstlen)) rc = vp_error("'%s': gzip compression failed", vp_out_name(o));
        if (!rc) rc = vp_out_write(o, jobs[i].dst, jobs[i].dstlen);
        free(jobs[i].dst);
    }
    free(jobs);
    return rc;
}

static int nifti_dt(enum vp_dtype t)
{
    switch (t) {
    case VP_U8: return DT_UINT8;
    case VP_I16: return DT_INT16;
    case VP_U16: return DT_UINT16;
    case VP_I32: return DT_INT32;
    default: return DT_FLOAT32;
    }
}

/* Set the fields NIfTI-1 and NIfTI-2 headers share by name (in other widths: T the float type, C the
 * xform-code type) in header h: the qform (qfac, quaternion q, offset qo), the spacing sp, the affine
 * aff as the sform, the codes and description of the options opt, no scaling, millimetres. */
#define SET_FIELDS(h, T, C, qfac, q, qo, sp, aff, opt) do { \
        (h)->pixdim[0] = (T)(qfac); \
        for (int i = 0; i < 3; i++) (h)->pixdim[i + 1] = (T)(sp)[i]; \
        (h)->quatern_b = (T)(q)[0]; (h)->quatern_c = (T)(q)[1]; (h)->quatern_d = (T)(q)[2]; \
        (h)->qoffset_x = (T)(qo)[0]; (h)->qoffset_y = (T)(qo)[1]; (h)->qoffset_z = (T)(qo)[2]; \
        for (int i = 0; i < 4; i++) { \
            (h)->srow_x[i] = (T)(aff)[i]; (h)->srow_y[i] = (T)(aff)[4 + i]; (h)->srow_z[i] = (T)(aff)[8 + i]; \
        } \
        (h)->qform_code = (C)(opt)->qform_code; \
        (h)->sform_code = (C)(opt)->sform_code; \
        (h)->scl_slope = 1; \
        (h)->scl_inter = 0; \
        (h)->xyzt_units = NIFTI_UNITS_MM; \
        memset((h)->descrip, 0, sizeof (h)->descrip); \
        snprintf((h)->descrip, sizeof (h)->descrip, "%s", (opt)->descrip ? (opt)->descrip : "voxpipe " VP_VERSION); \
    } while (0)

int vp_nifti_header(const vp_vol *v, const struct vp_nifti_wopts *opt, unsigned char hbuf[548], size_t *hlenp)
{
    struct vp_nifti_wopts dflt;
    if (!opt) { vp_nifti_wopts_default(&dflt); opt = &dflt; }
    nifti_set_debug_level(0);
    int nd = v->has_channels || v->dims[3] > 1 ? 4 : 3;
    int64_t d64[8] = {nd, (int64_t)v->dims[0], (int64_t)v->dims[1], (int64_t)v->dims[2], (int64_t)v->dims[3], 1, 1, 1};
    int dt = nifti_dt(v->dtype);

    /* qform from the affine, as nibabel's set_qform: nifticlib's polar decomposition */
    nifti_dmat44 R;
    memset(&R, 0, sizeof R);
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++) R.m[r][c] = v->affine[r * 4 + c];
    double q[3], qo[3], dx, dy, dz, qfac;
    nifti_dmat44_to_quatern(R, &q[0], &q[1], &q[2], &qo[0], &qo[1], &qo[2], &dx, &dy, &dz, &qfac);
    double sp[3];
    vp_vol_spacing(v, sp);

    size_t hlen;
    void *h = opt->version == 2 ? (void *)nifti_make_new_n2_header(d64, dt) : (void *)nifti_make_new_n1_header(d64, dt);
    if (!h) return vp_error("cannot build a NIfTI-%d header", opt->version == 2 ? 2 : 1);
    if (opt->version == 2) {
        nifti_2_header *h2 = h;
        SET_FIELDS(h2, double, int, qfac, q, qo, sp, v->affine, opt);
        h2->vox_offset = 544;
        hlen = sizeof *h2;
    } else {
        nifti_1_header *h1 = h;
        SET_FIELDS(h1, float, short, qfac, q, qo, sp, v->affine, opt);
        h1->vox_offset = 352;
        hlen = sizeof *h1;
    }
    memcpy(hbuf, h, hlen);
    free(h);
    memset(hbuf + hlen, 0, 4); /* extension flag: none */
    *hlenp = hlen + 4;
    return 0;
}

int vp_nifti_write(const char *path, const vp_vol *v, const struct vp_nifti_wopts *opt)
{
    struct vp_nifti_wopts dflt;
    if (!opt) { vp_nifti_wopts_default(&dflt); opt = &dflt; }
    unsigned char hbuf[548];
    size_t hlen;
    uint64_t nvox = vp_vol_nvox(v);
    if (vp_nifti_header(v, opt, hbuf, &hlen)) return -1;

    const void *data = v->data;
    float *tmp = NULL;
    size_t dlen = (size_t)(nvox * vp_dtype_size(v->dtype));
    if (v->dtype == VP_F16) {
        tmp = vp_malloc((size_t)nvox * 4);
        for (uint64_t i = 0; i < nvox; i++) tmp[i] = vp_half_to_float(((const uint16_t *)v->data)[i]);
        data = tmp;
        dlen = (size_t)nvox * 4;
    }
    size_t pl = strlen(path);
    int gz = opt->gzip >= 0 ? opt->gzip : (pl > 3 && !strcmp(path + pl - 3, ".gz"));
    vp_out *o = vp_out_open(path, VP_OUT_ALLOW_TTY);
    if (!o) { free(tmp); return -1; }
    int rc;
    if (gz) rc = write_gz(o, hbuf, hlen, data, dlen, opt->level, opt->threads);
    else rc = vp_out_write(o, hbuf, hlen) || vp_out_write(o, data, dlen) ? -1 : 0;
    free(tmp);
    if (vp_out_close(&o, rc == 0)) rc = -1;
    return rc;
}
