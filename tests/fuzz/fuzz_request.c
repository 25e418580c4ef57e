/* fuzz_request.c — a request body as the verify endpoints take it: JSON
 * parse, then presented_data through the verification service of every
 * method against a ledger holding a ticket and a key. */
#include <jansson.h>

#include "fixture.h"
#include "methods/service.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
  fixture_get();
  json_error_t err;
  json_t *body = json_loadb((const char *)d, n, JSON_REJECT_DUPLICATES, &err);
  if (body == NULL)
    return 0;
  json_t *pd = NULL;
  const char *method = NULL, *gate = NULL;
  if (json_unpack_ex(body, &err, JSON_STRICT, "{s:s, s:o, s?s}", "method", &method,
                     "presented_data", &pd, "gate", &gate) == 0) {
    struct method_env env;
    if (fixture_env(&env, 2000) == 0) {
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
