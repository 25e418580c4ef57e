/* fuzz_webhook.c — the geofence entry webhook: the input as the JSON
 * presented_data, through the verification service of a gate whose event has
 * a circle and a polygon zone (the polygon across the antimeridian) and one
 * registered device key. Reports that pass the type and range checks are
 * verified a second time signed by that device, so the fuzzer also reaches
 * freshness, accuracy and the zone geometry; a signed report must then come
 * out with a position verdict, never a signature one. The body is also
 * tried as a zone definition. */
#include <jansson.h>
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "lib/codec.h"
#include "methods/geofence.h"
#include "methods/service.h"

static uint8_t device_pk[32], device_sk[64];
static char device_key[48];

static void add_zone(const char *json) {
  struct method_env env;
  struct ledger_cmd c = {.op = LEDGER_OP_ZONE_SET, .ts_ms = 1000};
  json_t *z = json_loads(json, 0, NULL);
  if (z == NULL || fixture_env(&env, 1000) != 0 || geo_zone_parse(&env, z, "e1", &c.u.zone) != 0)
    abort();
  ledger_rd_end(env.rd);
  json_decref(z);
  fixture_apply(&c);
}

static void setup(void) {
  fixture_get();
  add_zone("{\"id\":\"main\",\"circle\":{\"lat\":52.52,\"lon\":13.405,\"radius_m\":150}}");
  add_zone("{\"id\":\"dateline\",\"polygon\":[[-16.5,179.9],[-16.5,-179.9],[-16.4,-179.9],"
           "[-16.4,179.9]]}");
  crypto_sign_seed_keypair(device_pk, device_sk, (const uint8_t *)"device-seed-0123456789abcdefghi");
  gm_b64url_encode(device_key, sizeof device_key, device_pk, sizeof device_pk);
  struct ledger_cmd c = {.op = LEDGER_OP_CRED_ISSUE, .ts_ms = 1000};
  strcpy(c.u.cred.method, "geofence");
  strcpy(c.u.cred.id, device_key);
  strcpy(c.u.cred.ticket_id, "t1");
  c.u.cred.ticket_version = 1;
  memcpy(c.u.cred.secret, device_pk, 32);
  c.u.cred.secret_len = 32;
  fixture_apply(&c);
}

static int verify(const json_t *pd, struct verify_outcome *out) {
  struct method_env env;
  if (fixture_env(&env, 1700000000000LL) != 0)
    abort();
  int rc = verify_service_check(&env, "geofence", pd, NULL, out);
  ledger_rd_end(env.rd);
  return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
  if (device_key[0] == 0)
    setup();
  json_error_t err;
  json_t *pd = json_loadb((const char *)d, n, JSON_REJECT_DUPLICATES, &err);
  if (pd == NULL)
    return 0;
  struct verify_outcome out;
  verify(pd, &out);
  /* Signed by the registered device, as its SDK would. */
  json_t *lat = json_object_get(pd, "lat"), *lon = json_object_get(pd, "lon"),
         *acc = json_object_get(pd, "accuracy_m"), *ts = json_object_get(pd, "timestamp_ms");
  if (json_is_number(lat) && json_is_number(lon) && json_is_number(acc) && json_is_integer(ts)) {
    double la = json_number_value(lat), lo = json_number_value(lon), ac = json_number_value(acc);
    json_int_t t = json_integer_value(ts);
    if (isfinite(la) && fabs(la) <= 90 && isfinite(lo) && fabs(lo) <= 180 && isfinite(ac) &&
        ac >= 0 && ac <= 1e7 && t >= 0) {
      char msg[GEO_MSG_MAX], sig64[100];
      uint8_t sig[64];
      size_t ml = geo_message(msg, "t1", la, lo, ac, t);
      crypto_sign_detached(sig, NULL, (const uint8_t *)msg, ml, device_sk);
      gm_b64url_encode(sig64, sizeof sig64, sig, sizeof sig);
      json_object_set_new(pd, "device_key", json_string(device_key));
      json_object_set_new(pd, "signature", json_string(sig64));
      int rc = verify(pd, &out);
      if (rc == 0 && out.claim.reason == LEDGER_REASON_BAD_SIGNATURE)
        abort();
    }
  }
  /* The same body as a zone (POST /events/{id}/zones): one that parses
   * must come back unchanged through its JSON form. */
  struct method_env env;
  struct ledger_zone z, again;
  if (fixture_env(&env, 1000) != 0)
    abort();
  if (geo_zone_parse(&env, pd, "e1", &z) == 0) {
    json_t *back = geo_zone_json(&z);
    if (back == NULL || geo_zone_parse(&env, back, "e1", &again) != 0 ||
        memcmp(&z, &again, sizeof z) != 0)
      abort();
    json_decref(back);
    geo_in_zone(&z, z.lat_e7[0] / 1e7, z.lon_e7[0] / 1e7);
  }
  ledger_rd_end(env.rd);
  json_decref(pd);
  return 0;
}
