/* fuzz_image.c — photo decoding for QR scans: PGM header parser, libpng,
 * and zbar on whatever raster comes out. */
#include "methods/qr_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
  char out[1024];
  const uint8_t *px;
  uint32_t w, h;
  qr_pgm_parse(d, n, &px, &w, &h);
  if (n < 200000)
    qr_scan_image(d, n, out, sizeof out);
  return 0;
}
