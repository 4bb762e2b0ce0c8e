/* volume.h - a 3D (optionally multi-channel) voxel volume with its voxel-to-RAS affine.
 *
 * Layout: x fastest, then y, z, channel (data[((c*nz + z)*ny + y)*nx + x]), little-endian.
 * The affine maps voxel indices (i, j, k, 1) to RAS+ millimetres, row-major 4x4.
 *
 * Ownership: a vp_vol owns `alloc` (freed by vp_vol_free); `data` points into it (it may start at an
 * offset, e.g. past a NIfTI header, so a file buffer becomes the volume without a copy).
 */
#ifndef VP_VOLUME_H
#define VP_VOLUME_H

#include <stddef.h>
#include <stdint.h>

enum vp_dtype { VP_U8, VP_I16, VP_U16, VP_I32, VP_F16, VP_F32, VP_NDTYPES };

/* Limits every reader enforces before allocating. */
#define VP_MAX_DIM ((uint64_t)1 << 20)      /* per axis */
#define VP_MAX_CHANNELS 4096
#define VP_MAX_VOL_BYTES ((uint64_t)1 << 40) /* 1 TiB: sanity bound, not a memory budget */

typedef struct vp_vol {
    uint64_t dims[4]; /* nx, ny, nz, nc (nc = 1 for a plain 3D volume) */
    int has_channels; /* dims were given with 4 entries */
    enum vp_dtype dtype;
    double affine[16];
    void *alloc;
    void *data;
} vp_vol;

const char *vp_dtype_name(enum vp_dtype t);
int vp_dtype_from_name(const char *s, size_t len); /* -1 if unknown */
size_t vp_dtype_size(enum vp_dtype t);

/* dims product x dtype size into *out; -1 on overflow or a dimension beyond the limits. */
int vp_vol_nbytes(const uint64_t dims[4], enum vp_dtype t, uint64_t *out);
uint64_t vp_vol_nvox(const vp_vol *v); /* nx*ny*nz*nc, known not to overflow once validated */

/* New volume with zeroed data (calloc). Dims must be validated by the caller. */
vp_vol *vp_vol_new(const uint64_t dims[4], enum vp_dtype t, const double affine[16]);
/* New volume taking over `alloc`; data = alloc + offset. */
vp_vol *vp_vol_wrap(const uint64_t dims[4], enum vp_dtype t, const double affine[16], void *alloc, size_t offset);
void vp_vol_free(vp_vol **v);

/* Voxel spacing (column norms of the affine's 3x3 part). */
void vp_vol_spacing(const vp_vol *v, double sp[3]);
/* Orientation code like "RAS", "LPS", "PIR": for each voxel axis the world direction it points to,
 * as nibabel's aff2axcodes does for non-degenerate affines. out must hold 4 chars. */
void vp_affine_axcodes(const double affine[16], char out[4]);

/* Value of voxel i as double (f16 converted). */
double vp_vol_get(const vp_vol *v, uint64_t i);

/* IEEE half <-> float. */
float vp_half_to_float(uint16_t h);
uint16_t vp_float_to_half(float f);

struct vp_vol_stats {
    double min, max, mean;
    uint64_t nan_count;
};
void vp_vol_stats(const vp_vol *v, struct vp_vol_stats *s);

#endif
