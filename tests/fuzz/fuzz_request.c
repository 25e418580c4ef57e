/* fuzz_request.c — a request body as the verify endpoints take it: JSON
 * parse, then presented_data through the verification service of every
 * method against a ledger holding a ticket and a key. */
#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/ledger.h"
#include "methods/keys.h"
#include "methods/service.h"

static struct ledger *l;
static struct method_config cfg;
static uint8_t seal[32];

static void rnd(void *arg, void *out, size_t n) { memset(out, 7, n); }

static void setup(void) {
  char tmpl[] = "/tmp/gmfuzz.XXXXXX";
  struct ledger_options o = {.map_size = 64u << 20, .no_sync = true};
  if (sodium_init() < 0 || mkdtemp(tmpl) == NULL || ledger_open(&l, tmpl, &o) != 0)
    abort();
  method_config_default(&cfg);
  struct ledger_cmd c = {.op = LEDGER_OP_EVENT_CREATE, .ts_ms = 1000};
  struct ledger_result r;
  strcpy(c.u.event.id, "e1");
  c.u.event.ends_ms = 4102444800000LL;
  ledger_apply_cmd(l, &c, &r);
  struct ledger_ticket_spec s = {.id = "t1", .event_id = "e1", .holder = "a"};
  memset(&c, 0, sizeof c);
  c.op = LEDGER_OP_TICKET_CREATE;
  c.u.tickets.v = &s;
  c.u.tickets.n = 1;
  ledger_apply_cmd(l, &c, &r);
  struct method_env env = {.now_ms = 1000, .cfg = &cfg, .seal_key = seal, .random = rnd};
  ledger_rd_begin(l, &env.rd);
  keys_new_cmd(&env, &c);
  ledger_rd_end(env.rd);
  ledger_apply_cmd(l, &c, &r);
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
  if (l == NULL)
    setup();
  json_error_t err;
  json_t *body = json_loadb((const char *)d, n, JSON_REJECT_DUPLICATES, &err);
  if (body == NULL)
    return 0;
  json_t *pd = NULL;
  const char *method = NULL, *gate = NULL;
  if (json_unpack_ex(body, &err, JSON_STRICT, "{s:s, s:o, s?s}", "method", &method,
                     "presented_data", &pd, "gate", &gate) == 0) {
    struct method_env env = {.now_ms = 2000, .cfg = &cfg, .seal_key = seal, .random = rnd};
    if (ledger_rd_begin(l, &env.rd) == 0) {
      struct verify_outcome out;
      verify_service_check(&env, method, pd, NULL, &out);
      verify_service_check(&env, "qr", pd, "t1", &out);
      verify_service_check(&env, "pass", pd, NULL, &out);
      ledger_rd_end(env.rd);
    }
  }
  json_decref(body);
  return 0;
}
