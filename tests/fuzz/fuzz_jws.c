/* fuzz_jws.c — JWS compact parsing (bearer tokens and signed passes). */
#include "lib/jws.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
  struct gm_jws j;
  if (gm_jws_parse((const char *)d, n, &j) == 0) {
    uint8_t pk[32] = {0};
    gm_jws_verify(&j, pk);
    gm_jws_free(&j);
  }
  return 0;
}
