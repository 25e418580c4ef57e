/* fuzz_snapshot.c — snapshot streams fed to restore (what a new gate would
 * receive from a peer). */
#include <stdlib.h>

#include "ledger/ledger.h"

static struct ledger *l;

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
  if (l == NULL) {
    char tmpl[] = "/tmp/gmfuzz.XXXXXX";
    struct ledger_options o = {.map_size = 64u << 20, .no_sync = true};
    if (mkdtemp(tmpl) == NULL || ledger_open(&l, tmpl, &o) != 0)
      abort();
  }
  ledger_restore(l, d, n);
  return 0;
}
