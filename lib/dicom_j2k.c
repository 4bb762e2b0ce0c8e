/* dicom_j2k.c - JPEG 2000 frames of DICOM files decoded with OpenJPEG (DCMTK's free build has no
 * JPEG 2000 codec). The codestream is read from memory; J2K and JP2 wrappings are both accepted.
 *
 * Ownership: the caller owns the codestream and the output buffer; OpenJPEG objects are freed here.
 */
#include "dicom.h"

#include <openjpeg.h>
#include <stdio.h>
#include <string.h>

struct mem {
    const unsigned char *p;
    size_t n, off;
};

static OPJ_SIZE_T mem_read(void *buf, OPJ_SIZE_T n, void *ud)
{
    struct mem *m = ud;
    if (m->off >= m->n) return (OPJ_SIZE_T)-1;
    if (n > m->n - m->off) n = m->n - m->off;
    memcpy(buf, m->p + m->off, n);
    m->off += n;
    return n;
}

static OPJ_OFF_T mem_skip(OPJ_OFF_T n, void *ud)
{
    struct mem *m = ud;
    if (n < 0) {
        if ((size_t)-n > m->off) n = -(OPJ_OFF_T)m->off;
    } else if ((size_t)n > m->n - m->off) {
        n = (OPJ_OFF_T)(m->n - m->off);
    }
    m->off += n;
    return n;
}

static OPJ_BOOL mem_seek(OPJ_OFF_T n, void *ud)
{
    struct mem *m = ud;
    if (n < 0 || (size_t)n > m->n) return OPJ_FALSE;
    m->off = (size_t)n;
    return OPJ_TRUE;
}

static void quiet(const char *msg, void *ud) { (void)msg; (void)ud; }

int vp_dcm_decode_j2k(const unsigned char *cs, size_t n, int rows, int cols, int bits_alloc, void *out,
                      char why[256])
{
    static const unsigned char jp2_sig[] = {0, 0, 0, 0x0c, 'j', 'P', ' ', ' '};
    int jp2 = n >= 8 && !memcmp(cs, jp2_sig, 8);
    opj_codec_t *codec = opj_create_decompress(jp2 ? OPJ_CODEC_JP2 : OPJ_CODEC_J2K);
    opj_dparameters_t par;
    opj_set_default_decoder_parameters(&par);
    opj_set_error_handler(codec, quiet, NULL);
    opj_set_warning_handler(codec, quiet, NULL);
    opj_set_info_handler(codec, quiet, NULL);
    struct mem m = {cs, n, 0};
    opj_stream_t *st = opj_stream_create(1 << 16, OPJ_TRUE);
    opj_stream_set_user_data(st, &m, NULL);
    opj_stream_set_user_data_length(st, n);
    opj_stream_set_read_function(st, mem_read);
    opj_stream_set_skip_function(st, mem_skip);
    opj_stream_set_seek_function(st, mem_seek);
    opj_image_t *img = NULL;
    int rc = -1;
    if (!opj_setup_decoder(codec, &par) || !opj_read_header(st, codec, &img) || !opj_decode(codec, st, img) ||
        !opj_end_decompress(codec, st)) {
        snprintf(why, 256, "JPEG 2000 codestream cannot be decoded (corrupt or truncated)");
        goto done;
    }
    if (img->numcomps != 1) {
        snprintf(why, 256, "JPEG 2000 image has %u components; only grey-scale is supported", img->numcomps);
        goto done;
    }
    const opj_image_comp_t *c = &img->comps[0];
    if ((int)c->w != cols || (int)c->h != rows || !c->data) {
        snprintf(why, 256, "JPEG 2000 image is %ux%u but Rows x Columns is %dx%d", c->h, c->w, rows, cols);
        goto done;
    }
    if ((int)c->prec > bits_alloc) {
        snprintf(why, 256, "JPEG 2000 precision %u exceeds BitsAllocated %d", c->prec, bits_alloc);
        goto done;
    }
    size_t nv = (size_t)rows * cols;
    if (bits_alloc == 8)
        for (size_t i = 0; i < nv; i++) ((uint8_t *)out)[i] = (uint8_t)c->data[i];
    else
        for (size_t i = 0; i < nv; i++) ((uint16_t *)out)[i] = (uint16_t)c->data[i];
    rc = 0;
done:
    if (img) opj_image_destroy(img);
    opj_stream_destroy(st);
    opj_destroy_codec(codec);
    return rc;
}
