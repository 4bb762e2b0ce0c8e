/* png.c - see png.h */
#include "png.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

void vp_image_init(vp_image *im, int w, int h, vp_rgb bg)
{
    if (w < 1 || h < 1 || w > 65535 || h > 65535) vp_die(VP_ERR_RUNTIME, "image size %dx%d out of range", w, h);
    im->w = w; im->h = h;
    im->px = vp_malloc((size_t)w * (size_t)h * 3);
    for (size_t i = 0; i < (size_t)w * (size_t)h; i++) {
        im->px[3 * i] = bg.r; im->px[3 * i + 1] = bg.g; im->px[3 * i + 2] = bg.b;
    }
}

void vp_image_free(vp_image *im)
{
    free(im->px);
    im->px = NULL;
    im->w = im->h = 0;
}

static void put(vp_image *im, int x, int y, vp_rgb c)
{
    if (x < 0 || y < 0 || x >= im->w || y >= im->h) return;
    uint8_t *p = im->px + 3 * ((size_t)y * (size_t)im->w + (size_t)x);
    p[0] = c.r; p[1] = c.g; p[2] = c.b;
}

void vp_image_fill(vp_image *im, int x, int y, int w, int h, vp_rgb c)
{
    int x0 = x < 0 ? 0 : x, y0 = y < 0 ? 0 : y;
    long x1 = (long)x + w, y1 = (long)y + h;
    if (x1 > im->w) x1 = im->w;
    if (y1 > im->h) y1 = im->h;
    for (int j = y0; j < y1; j++)
        for (int i = x0; i < x1; i++) put(im, i, j, c);
}

void vp_image_frame(vp_image *im, int x, int y, int w, int h, vp_rgb c)
{
    if (w <= 0 || h <= 0) return;
    vp_image_hline(im, x, x + w - 1, y, c);
    vp_image_hline(im, x, x + w - 1, y + h - 1, c);
    vp_image_vline(im, x, y, y + h - 1, c);
    vp_image_vline(im, x + w - 1, y, y + h - 1, c);
}

void vp_image_hline(vp_image *im, int x0, int x1, int y, vp_rgb c)
{
    if (x0 > x1) { int t = x0; x0 = x1; x1 = t; }
    vp_image_fill(im, x0, y, x1 - x0 + 1, 1, c);
}

void vp_image_vline(vp_image *im, int x, int y0, int y1, vp_rgb c)
{
    if (y0 > y1) { int t = y0; y0 = y1; y1 = t; }
    vp_image_fill(im, x, y0, 1, y1 - y0 + 1, c);
}

/* 5x7 glyphs, one byte per row (bit 4 = leftmost column), after the HD44780 character ROM */
static const struct { char ch; uint8_t row[7]; } font[] = {
    {'0', {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}}, {'1', {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'2', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}}, {'3', {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}},
    {'4', {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}}, {'5', {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}},
    {'6', {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}}, {'7', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}},
    {'8', {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}}, {'9', {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}},
    {'A', {0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11}}, {'B', {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E}},
    {'C', {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E}}, {'D', {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C}},
    {'E', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F}}, {'F', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10}},
    {'G', {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F}}, {'H', {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}},
    {'I', {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}}, {'J', {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C}},
    {'K', {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}}, {'L', {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F}},
    {'M', {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11}}, {'N', {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11}},
    {'O', {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}}, {'P', {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10}},
    {'Q', {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D}}, {'R', {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11}},
    {'S', {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E}}, {'T', {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}},
    {'U', {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}}, {'V', {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04}},
    {'W', {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A}}, {'X', {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11}},
    {'Y', {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04}}, {'Z', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F}},
    {'.', {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C}}, {'-', {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00}},
    {'+', {0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00}}, {'_', {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F}},
    {':', {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00}}, {'/', {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00}},
    {'<', {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02}}, {'>', {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08}},
    {'%', {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03}}, {'(', {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}},
    {')', {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08}}, {' ', {0, 0, 0, 0, 0, 0, 0}},
    {'?', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04}},
};

static const uint8_t *glyph(char ch)
{
    if (ch >= 'a' && ch <= 'z') ch = (char)(ch - 'a' + 'A');
    size_t n = sizeof font / sizeof font[0];
    for (size_t i = 0; i < n; i++)
        if (font[i].ch == ch) return font[i].row;
    return font[n - 1].row; /* '?' */
}

int vp_image_text(vp_image *im, int x, int y, const char *s, vp_rgb c)
{
    int x0 = x;
    for (; *s; s++, x += VP_FONT_ADVANCE) {
        const uint8_t *g = glyph(*s);
        for (int j = 0; j < VP_FONT_HEIGHT; j++)
            for (int i = 0; i < 5; i++)
                if (g[j] & (0x10 >> i)) put(im, x + i, y + j, c);
    }
    return x - x0;
}

static void be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

/* append one chunk (length, type, data, CRC of type + data) at *pos */
static void chunk(uint8_t *buf, size_t *pos, const char type[4], const uint8_t *data, size_t n)
{
    uint8_t *p = buf + *pos;
    be32(p, (uint32_t)n);
    memcpy(p + 4, type, 4);
    if (n) memcpy(p + 8, data, n);
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, p + 4, (uInt)(n + 4));
    be32(p + 8 + n, (uint32_t)crc);
    *pos += n + 12;
}

int vp_png_encode(const vp_image *im, uint8_t **out, size_t *len)
{
    size_t stride = (size_t)im->w * 3, rawlen = (stride + 1) * (size_t)im->h;
    uint8_t *raw = vp_malloc(rawlen);
    for (int y = 0; y < im->h; y++) { /* filter type 2 ('up'): each byte minus the one above */
        uint8_t *r = raw + (size_t)y * (stride + 1);
        const uint8_t *cur = im->px + (size_t)y * stride, *up = y ? cur - stride : NULL;
        r[0] = 2;
        for (size_t i = 0; i < stride; i++) r[1 + i] = (uint8_t)(cur[i] - (up ? up[i] : 0));
    }
    uLongf zlen = compressBound((uLong)rawlen);
    uint8_t *z = vp_malloc(zlen);
    int zr = compress2(z, &zlen, raw, (uLong)rawlen, 9);
    free(raw);
    if (zr != Z_OK) {
        free(z);
        return vp_error("PNG encoding: zlib compress2 failed (%d)", zr);
    }
    uint8_t *buf = vp_malloc(8 + 25 + 12 + zlen + 12), ihdr[13];
    memcpy(buf, "\x89PNG\r\n\x1a\n", 8);
    size_t pos = 8;
    be32(ihdr, (uint32_t)im->w);
    be32(ihdr + 4, (uint32_t)im->h);
    ihdr[8] = 8;  /* bit depth */
    ihdr[9] = 2;  /* colour type: RGB */
    ihdr[10] = 0; /* deflate */
    ihdr[11] = 0; /* adaptive filtering */
    ihdr[12] = 0; /* no interlace */
    chunk(buf, &pos, "IHDR", ihdr, 13);
    chunk(buf, &pos, "IDAT", z, zlen);
    chunk(buf, &pos, "IEND", NULL, 0);
    free(z);
    *out = buf;
    *len = pos;
    return 0;
}
