/* gzstream.h - streaming gzip decompression of a file (ISA-L's igzip), for .nii.gz voxels that go
 * from the file to the output stream without ever being whole in memory.
 *
 * libdeflate (nifti_read.c) is the fastest whole-buffer decoder; igzip is as fast or faster and can stop
 * and resume anywhere, so vol-read can decode the next piece on one core while the previous piece
 * is written out on the other. Multi-member files (several gzip members back to back, as vol-write
 * writes them) are read as one stream; every member's CRC-32 is checked when it ends.
 *
 * Ownership: vp_gzin_open() returns a handle (the file is memory-mapped) that the caller closes
 * with vp_gzin_close(), which sets the pointer to NULL.
 */
#ifndef VP_GZSTREAM_H
#define VP_GZSTREAM_H

#include <stddef.h>
#include <stdint.h>

#include "endpoint.h"

typedef struct vp_gzin vp_gzin;

/* NULL after a message when the file cannot be opened or is not gzip. */
vp_gzin *vp_gzin_open(const char *path);
/* Decompress up to n bytes into buf: returns the count (less than n only at the end of the data),
 * or -1 after "prog: error: 'path': corrupt gzip data ..." */
long long vp_gzin_read(vp_gzin *g, void *buf, size_t n);
/* Decompress and discard n bytes; -2 (bad data, printed) on error or if the data ends first. */
int vp_gzin_skip(vp_gzin *g, uint64_t n);
/* Decompress exactly n bytes into out, decoding on a second thread while writing: 0 ok, -2 bad or
 * truncated data, -1 output error (both printed). Then reads on to the end of the current gzip
 * member so its CRC is verified. */
int vp_gzin_copy(vp_gzin *g, vp_out *out, uint64_t n);
/* Compressed file size (for sanity bounds on declared sizes). */
uint64_t vp_gzin_compressed_size(const vp_gzin *g);
void vp_gzin_close(vp_gzin **g);

#endif
