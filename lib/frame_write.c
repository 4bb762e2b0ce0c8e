/* frame_write.c - writing frames: the frame up to its volumes, volume headers, payloads (split into
 * bins above the msgpack bin limit) and the end of the stream; see frame.h. */
#include "frame_int.h"
#include "util.h"

#include <stdlib.h>

uint64_t vp_frame_bin_limit = 0xffffffffu;
uint64_t vp_frame_chunk_bytes = VP_CHUNK_BYTES;

/* ---- writing ---- */

static int out_cb(void *data, const char *buf, size_t len)
{
    return vp_out_write((vp_out *)data, buf, len);
}

int vp_case_write_vol_head(vp_out *out, const char *name, const vp_vol *v, struct vp_payload_writer *pw)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, out_cb);
    uint64_t nbytes;
    if (vp_vol_nbytes(v->dims, v->dtype, &nbytes)) return vp_error("volume '%s' too large to write", name);
    int nd = v->has_channels || v->dims[3] > 1 ? 4 : 3;
    vp_pack_cstr(&pk, name);
    msgpack_pack_map(&pk, 4);
    vp_pack_cstr(&pk, "dims");
    msgpack_pack_array(&pk, (size_t)nd);
    for (int i = 0; i < nd; i++) msgpack_pack_uint64(&pk, v->dims[i]);
    vp_pack_cstr(&pk, "dtype");
    vp_pack_cstr(&pk, vp_dtype_name(v->dtype));
    vp_pack_cstr(&pk, "affine");
    msgpack_pack_array(&pk, 16);
    for (int i = 0; i < 16; i++) msgpack_pack_double(&pk, v->affine[i]);
    vp_pack_cstr(&pk, "data");
    pw->out = out;
    pw->left = nbytes;
    pw->chunk_left = 0;
    pw->chunked = nbytes > vp_frame_bin_limit;
    if (!pw->chunked) return msgpack_pack_bin(&pk, (size_t)nbytes);
    uint64_t cb = vp_frame_chunk_bytes;
    return msgpack_pack_array(&pk, (size_t)((nbytes + cb - 1) / cb));
}

int vp_payload_write(struct vp_payload_writer *pw, const void *buf, size_t n)
{
    const unsigned char *p = buf;
    if (n > pw->left) return vp_error("'%s': payload longer than its volume (program bug)", vp_out_name(pw->out));
    if (!pw->chunked) {
        pw->left -= n;
        return vp_out_write(pw->out, p, n);
    }
    while (n) {
        if (!pw->chunk_left) {
            msgpack_packer pk;
            msgpack_packer_init(&pk, pw->out, out_cb);
            pw->chunk_left = pw->left < vp_frame_chunk_bytes ? pw->left : vp_frame_chunk_bytes;
            if (msgpack_pack_bin(&pk, (size_t)pw->chunk_left)) return -1;
        }
        size_t k = n < pw->chunk_left ? n : (size_t)pw->chunk_left;
        if (vp_out_write(pw->out, p, k)) return -1;
        p += k;
        n -= k;
        pw->chunk_left -= k;
        pw->left -= k;
    }
    return 0;
}

int vp_case_write_head(vp_out *out, const vp_case *c, int nstream)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, out_cb);
    int rc = msgpack_pack_map(&pk, (size_t)(4 + c->nextra));
    vp_pack_cstr(&pk, "voxpipe");
    msgpack_pack_uint32(&pk, VP_FORMAT_MAJOR);
    vp_pack_cstr(&pk, "id");
    vp_pack_cstr(&pk, c->id);
    vp_pack_cstr(&pk, "meta");
    msgpack_pack_map(&pk, (size_t)c->nmeta);
    for (int i = 0; i < c->nmeta; i++) {
        vp_pack_cstr(&pk, c->meta[i].key);
        rc |= vp_out_write(out, c->meta[i].raw, c->meta[i].len);
    }
    for (int i = 0; i < c->nextra; i++) { /* before "vols", which stays last */
        vp_pack_cstr(&pk, c->extra[i].key);
        rc |= vp_out_write(out, c->extra[i].raw, c->extra[i].len);
    }
    vp_pack_cstr(&pk, "vols");
    rc |= msgpack_pack_map(&pk, (size_t)(c->nvols + nstream));
    for (int i = 0; i < c->nvols && !rc; i++) {
        struct vp_payload_writer pw;
        rc |= vp_case_write_vol_head(out, c->vol_names[i], c->vols[i], &pw);
        if (!rc) rc |= vp_payload_write(&pw, c->vols[i]->data, (size_t)pw.left);
    }
    return rc ? -1 : 0;
}

int vp_case_write(vp_out *out, const vp_case *c)
{
    if (vp_case_write_head(out, c, 0)) return -1;
    return vp_out_end_frame(out);
}

int vp_stream_finish(vp_out **out)
{
    if (!*out) return 0;
    if (vp_out_is_msg(*out)) {
        static const unsigned char eos[] = {0x82, 0xa7, 'v', 'o', 'x', 'p', 'i', 'p', 'e', 0x01, 0xa3, 'e', 'o', 's', 0xc3};
        if (vp_out_write(*out, eos, sizeof eos) || vp_out_end_frame(*out)) { vp_out_close(out, 0); return -1; }
    }
    return vp_out_close(out, 1);
}
