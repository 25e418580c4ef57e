/* fuzz_record.c — the in-place reader behind tickets, credentials and events
 * (what a damaged ledger page or a hostile snapshot would feed it). */
#include "ledger/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
  struct ledger_ticket t;
  struct ledger_cred c;
  struct ledger_event e;
  ledger__ticket_dec(d, n, &t);
  ledger__cred_dec(d, n, &c);
  ledger__event_dec(d, n, &e);
  struct mpk_rd r = {d, d + n};
  mpk_rd_skip(&r);
  return 0;
}
