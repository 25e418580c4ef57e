/* fuzz_cmd.c — ledger command decoding, and apply of whatever decodes: the
 * bytes a forwarded command or a Raft entry could carry. */
#include <stdlib.h>
#include <string.h>

#include "ledger/ledger.h"

static struct ledger *l;

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
  struct ledger_cmd c;
  if (ledger_cmd_decode(d, n, &c) == 0)
    ledger_cmd_free(&c);
  if (l == NULL) {
    char tmpl[] = "/tmp/gmfuzz.XXXXXX";
    struct ledger_options o = {.map_size = 64u << 20, .no_sync = true};
    if (mkdtemp(tmpl) == NULL || ledger_open(&l, tmpl, &o) != 0)
      abort();
  }
  struct ledger_result r;
  ledger_apply(l, d, n, &r);
  return 0;
}
