/* fuzz_pass.c — rotating pass codes. */
#include "methods/pass.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
  struct pass_code pc;
  pass_code_parse((const char *)d, n, &pc);
  return 0;
}
