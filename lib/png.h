/* png.h - small RGB raster images for report figures: filled rectangles, lines, a built-in 5x7
 * pixel font, and a PNG encoder (8-bit RGB, no interlace, zlib deflate) with no dependency beyond
 * zlib.
 *
 * Ownership: a vp_image owns its pixel buffer (vp_image_free releases it); vp_png_encode() returns
 * a buffer the caller frees with free(). Drawing clips to the image: any coordinates are safe.
 */
#ifndef VP_PNG_H
#define VP_PNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct vp_rgb {
    uint8_t r, g, b;
} vp_rgb;

typedef struct vp_image {
    int w, h;
    uint8_t *px; /* w * h * 3 bytes, rows top to bottom */
} vp_image;

/* A w x h image (1..65535 each) filled with bg. Exits VP_ERR_RUNTIME when out of memory. */
void vp_image_init(vp_image *im, int w, int h, vp_rgb bg);
void vp_image_free(vp_image *im);

/* Fill the rectangle [x, x+w) x [y, y+h) (clipped; nothing for w or h <= 0). */
void vp_image_fill(vp_image *im, int x, int y, int w, int h, vp_rgb c);
/* The one-pixel outline of the same rectangle. */
void vp_image_frame(vp_image *im, int x, int y, int w, int h, vp_rgb c);
/* Horizontal and vertical lines through both end points (inclusive). */
void vp_image_hline(vp_image *im, int x0, int x1, int y, vp_rgb c);
void vp_image_vline(vp_image *im, int x, int y0, int y1, vp_rgb c);

/* Text in the built-in 5x7 font, top-left corner at (x, y), each glyph advancing 6 pixels.
 * Digits, A-Z (lower case drawn as upper case) and . - + _ : / < > % ( ) and space; anything else
 * draws as '?'. Returns the width drawn (6 * strlen(s)). */
int vp_image_text(vp_image *im, int x, int y, const char *s, vp_rgb c);
#define VP_FONT_ADVANCE 6
#define VP_FONT_HEIGHT 7

/* Encode im as a PNG (colour type 2, bit depth 8, filter 'up' on every row, zlib level 9). The
 * bytes depend only on the pixels and the zlib version. Returns 0 and sets *out and *len, or -1
 * (printed) on failure. */
int vp_png_encode(const vp_image *im, uint8_t **out, size_t *len);

#endif
