/* fixture.c — see fixture.h. */
#include "fixture.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "methods/keys.h"

static struct fixture fx;
static bool opened;

static void rnd(void *arg, void *out, size_t n) {
  (void)arg;
  memset(out, 7, n);
}

int fixture_env(struct method_env *env, int64_t now_ms) {
  memset(env, 0, sizeof *env);
  env->now_ms = now_ms;
  env->cfg = &fx.cfg;
  env->seal_key = fx.seal_key;
  env->nfc_key = fx.nfc_key;
  env->random = rnd;
  return ledger_rd_begin(fx.ledger, &env->rd);
}

void fixture_apply(struct ledger_cmd *c) {
  struct ledger_result r;
  if (ledger_apply_cmd(fx.ledger, c, &r) != 0 || r.rc != 0 || r.reason != LEDGER_REASON_NONE)
    abort();
}

struct fixture *fixture_get(void) {
  if (opened)
    return &fx;
  char tmpl[] = "/tmp/gmfuzz.XXXXXX";
  struct ledger_options o = {.map_size = 64u << 20, .no_sync = true};
  if (sodium_init() < 0 || mkdtemp(tmpl) == NULL || ledger_open(&fx.ledger, tmpl, &o) != 0)
    abort();
  opened = true;
  method_config_default(&fx.cfg);
  memset(fx.nfc_key, 0x4e, sizeof fx.nfc_key);
  struct ledger_cmd c = {.op = LEDGER_OP_EVENT_CREATE, .ts_ms = 1000};
  strcpy(c.u.event.id, "e1");
  c.u.event.ends_ms = 4102444800000LL;
  fixture_apply(&c);
  struct ledger_ticket_spec s = {.id = "t1", .event_id = "e1", .holder = "a"};
  memset(&c, 0, sizeof c);
  c.op = LEDGER_OP_TICKET_CREATE;
  c.u.tickets.v = &s;
  c.u.tickets.n = 1;
  fixture_apply(&c);
  struct method_env env;
  if (fixture_env(&env, 1000) != 0 || keys_new_cmd(&env, &c) != 0)
    abort();
  ledger_rd_end(env.rd);
  fixture_apply(&c);
  return &fx;
}
