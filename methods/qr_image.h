/*
 * qr_image.h — QR codes as pictures: render (libqrencode, libpng) and scan
 * (libpng or a PGM reader, then zbar).
 *
 * Renders append to a caller buffer. qr_scan_image reads a PNG or a binary
 * PGM (P5) of at most QR_IMAGE_PIXELS_MAX pixels and returns the text of the
 * first QR code in it: GM_EDECODE for bytes that are no such image,
 * GM_ENOTFOUND for an image with no readable QR code, GM_ETOOBIG for a
 * larger image or a text longer than cap-1.
 */
#ifndef GM_QR_IMAGE_H
#define GM_QR_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "../lib/buf.h"

#define QR_IMAGE_PIXELS_MAX (4096u * 4096u)
#define QR_IMAGE_MODULE_PX 6
#define QR_IMAGE_QUIET_MODULES 4

int qr_render_svg(const char *text, struct gm_buf *out);
int qr_render_png(const char *text, struct gm_buf *out);
/* Raw 8-bit grayscale raster of the code (used by tests to make PGM files). */
int qr_render_gray(const char *text, uint8_t **pixels, uint32_t *width);
int qr_scan_image(const uint8_t *img, size_t n, char *out, size_t cap);
/* Parses a binary PGM into an 8-bit gray raster pointing into img (maxval 255)
 */
int qr_pgm_parse(const uint8_t *img, size_t n, const uint8_t **pixels, uint32_t *w,
                 uint32_t *h);

#endif
