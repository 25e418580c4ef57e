/*
 * qr_image.c — QR codes to and from pictures (see qr_image.h).
 */
#include <png.h>
#include <qrencode.h>
#include <stdlib.h>
#include <string.h>
#include <zbar.h>

#include "../lib/err.h"
#include "qr_image.h"

static QRcode *encode(const char *text) {
  /* Mode hint 8-bit with case sensitivity: libqrencode still picks the
   * alphanumeric mode for runs of base45 characters. */
  return QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
}

int qr_render_svg(const char *text, struct gm_buf *out) {
  QRcode *q = encode(text);
  if (q == NULL)
    return GM_ETOOBIG;
  int side = q->width + 2 * QR_IMAGE_QUIET_MODULES;
  int rc = gm_buf_printf(out,
                         "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" "
                         "shape-rendering=\"crispEdges\"><rect width=\"%d\" height=\"%d\" "
                         "fill=\"#fff\"/><path fill=\"#000\" d=\"",
                         side, side, side, side);
  for (int y = 0; y < q->width && rc == 0; y++)
    for (int x = 0; x < q->width && rc == 0; x++)
      if (q->data[y * q->width + x] & 1)
        rc = gm_buf_printf(out, "M%d %dh1v1h-1z", x + QR_IMAGE_QUIET_MODULES,
                           y + QR_IMAGE_QUIET_MODULES);
  if (rc == 0)
    rc = gm_buf_append_str(out, "\"/></svg>");
  if (rc == 0)
    rc = gm_buf_append(out, "", 1); /* NUL for callers that want a C string */
  if (rc == 0)
    out->len--;
  QRcode_free(q);
  return rc;
}

int qr_render_gray(const char *text, uint8_t **pixels, uint32_t *width) {
  QRcode *q = encode(text);
  if (q == NULL)
    return GM_ETOOBIG;
  uint32_t mod = QR_IMAGE_MODULE_PX;
  uint32_t side = ((uint32_t)q->width + 2 * QR_IMAGE_QUIET_MODULES) * mod;
  uint8_t *px = malloc((size_t)side * side);
  if (px == NULL) {
    QRcode_free(q);
    return GM_ENOMEM;
  }
  memset(px, 255, (size_t)side * side);
  for (int y = 0; y < q->width; y++)
    for (int x = 0; x < q->width; x++)
      if (q->data[y * q->width + x] & 1)
        for (uint32_t dy = 0; dy < mod; dy++)
          memset(px + ((size_t)(y + QR_IMAGE_QUIET_MODULES) * mod + dy) * side +
                     (size_t)(x + QR_IMAGE_QUIET_MODULES) * mod,
                 0, mod);
  QRcode_free(q);
  *pixels = px;
  *width = side;
  return 0;
}

int qr_render_png(const char *text, struct gm_buf *out) {
  uint8_t *px;
  uint32_t side;
  int rc = qr_render_gray(text, &px, &side);
  if (rc != 0)
    return rc;
  png_image img;
  memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  img.width = side;
  img.height = side;
  img.format = PNG_FORMAT_GRAY;
  png_alloc_size_t size = 0;
  if (!png_image_write_to_memory(&img, NULL, &size, 0, px, 0, NULL)) {
    rc = GM_EIO;
    goto out;
  }
  if ((rc = gm_buf_reserve(out, size)) != 0)
    goto out;
  if (!png_image_write_to_memory(&img, out->ptr + out->len, &size, 0, px, 0, NULL)) {
    rc = GM_EIO;
    goto out;
  }
  out->len += size;
out:
  png_image_free(&img);
  free(px);
  return rc;
}

static int skip_ws(const uint8_t *p, size_t n, size_t *off) {
  while (*off < n) {
    if (p[*off] == '#') {
      while (*off < n && p[*off] != '\n')
        (*off)++;
    } else if (p[*off] == ' ' || p[*off] == '\t' || p[*off] == '\r' || p[*off] == '\n') {
      (*off)++;
    } else {
      return 0;
    }
  }
  return GM_EDECODE;
}

static int read_uint(const uint8_t *p, size_t n, size_t *off, uint32_t *v) {
  if (skip_ws(p, n, off) != 0 || p[*off] < '0' || p[*off] > '9')
    return GM_EDECODE;
  uint64_t x = 0;
  while (*off < n && p[*off] >= '0' && p[*off] <= '9') {
    x = x * 10 + (uint64_t)(p[*off] - '0');
    if (x > 1000000)
      return GM_EDECODE;
    (*off)++;
  }
  *v = (uint32_t)x;
  return 0;
}

int qr_pgm_parse(const uint8_t *img, size_t n, const uint8_t **pixels, uint32_t *w,
                 uint32_t *h) {
  if (n < 2 || img[0] != 'P' || img[1] != '5')
    return GM_EDECODE;
  size_t off = 2;
  uint32_t maxval;
  if (read_uint(img, n, &off, w) || read_uint(img, n, &off, h) ||
      read_uint(img, n, &off, &maxval))
    return GM_EDECODE;
  /* Exactly one whitespace byte separates the header from the raster. */
  if (off >= n || maxval == 0 || maxval > 255 || *w == 0 || *h == 0)
    return GM_EDECODE;
  off++;
  if ((uint64_t)*w * *h > QR_IMAGE_PIXELS_MAX)
    return GM_ETOOBIG;
  if (n - off < (size_t)*w * *h)
    return GM_EDECODE;
  *pixels = img + off;
  return 0;
}

static int scan_gray(const uint8_t *px, uint32_t w, uint32_t h, char *out, size_t cap) {
  zbar_image_scanner_t *scanner = zbar_image_scanner_create();
  if (scanner == NULL)
    return GM_ENOMEM;
  zbar_image_scanner_set_config(scanner, ZBAR_NONE, ZBAR_CFG_ENABLE, 0);
  zbar_image_scanner_set_config(scanner, ZBAR_QRCODE, ZBAR_CFG_ENABLE, 1);
  zbar_image_t *zi = zbar_image_create();
  int rc = GM_ENOMEM;
  if (zi == NULL)
    goto out_scanner;
  zbar_image_set_format(zi, zbar_fourcc('Y', '8', '0', '0'));
  zbar_image_set_size(zi, w, h);
  zbar_image_set_data(zi, px, (unsigned long)w * h, NULL);
  rc = GM_ENOTFOUND;
  if (zbar_scan_image(scanner, zi) > 0) {
    const zbar_symbol_t *sym = zbar_image_first_symbol(zi);
    for (; sym != NULL; sym = zbar_symbol_next(sym)) {
      if (zbar_symbol_get_type(sym) != ZBAR_QRCODE)
        continue;
      unsigned len = zbar_symbol_get_data_length(sym);
      if (len + 1 > cap) {
        rc = GM_ETOOBIG;
        break;
      }
      memcpy(out, zbar_symbol_get_data(sym), len);
      out[len] = 0;
      rc = 0;
      break;
    }
  }
  zbar_image_destroy(zi);
out_scanner:
  zbar_image_scanner_destroy(scanner);
  return rc;
}

int qr_scan_image(const uint8_t *img, size_t n, char *out, size_t cap) {
  const uint8_t *px;
  uint32_t w, h;
  if (n >= 2 && img[0] == 'P' && img[1] == '5') {
    int rc = qr_pgm_parse(img, n, &px, &w, &h);
    return rc != 0 ? rc : scan_gray(px, w, h, out, cap);
  }
  png_image pi;
  memset(&pi, 0, sizeof pi);
  pi.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&pi, img, n))
    return GM_EDECODE;
  if ((uint64_t)pi.width * pi.height > QR_IMAGE_PIXELS_MAX) {
    png_image_free(&pi);
    return GM_ETOOBIG;
  }
  pi.format = PNG_FORMAT_GRAY;
  uint8_t *buf = malloc(PNG_IMAGE_SIZE(pi));
  if (buf == NULL) {
    png_image_free(&pi);
    return GM_ENOMEM;
  }
  int rc;
  if (!png_image_finish_read(&pi, NULL, buf, 0, NULL)) {
    rc = GM_EDECODE;
  } else {
    rc = scan_gray(buf, pi.width, pi.height, out, cap);
  }
  png_image_free(&pi);
  free(buf);
  return rc;
}
