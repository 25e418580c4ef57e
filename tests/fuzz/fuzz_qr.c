/* fuzz_qr.c — QR payload text: base45 and the binary token layout. */
#include <string.h>

#include "lib/codec.h"
#include "methods/qr.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
  uint8_t bin[QR_BIN_MAX];
  struct qr_token t;
  qr_parse_text((const char *)d, n, bin, &t);
  qr_decode(d, n, &t);
  uint8_t out[1024];
  gm_b45_decode(out, sizeof out, (const char *)d, n);
  return 0;
}
