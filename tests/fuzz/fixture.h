/* fixture.h — the ledger the method fuzz targets verify against: event "e1"
 * (ending in 2100), ticket "t1", a signing key, and what a target adds with
 * fixture_apply. Opened once per fuzzing process, in a temporary folder. */
#ifndef GM_FUZZ_FIXTURE_H
#define GM_FUZZ_FIXTURE_H

#include "ledger/ledger.h"
#include "methods/method.h"

struct fixture {
  struct ledger *ledger;
  struct method_config cfg;
  uint8_t seal_key[32];
  uint8_t nfc_key[32];
};

/* The process's fixture, opened on first use; aborts when it cannot be. */
struct fixture *fixture_get(void);
/* A method env over a read transaction of the fixture at now_ms. */
int fixture_env(struct method_env *env, int64_t now_ms);
/* Applies one command; aborts unless it applies and is accepted. */
void fixture_apply(struct ledger_cmd *c);

#endif
