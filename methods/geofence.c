/*
 * geofence.c — the `geofence` method: zones, position reports (see
 * geofence.h).
 */
#include "geofence.h"

#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "../lib/codec.h"
#include "../lib/err.h"

#define EARTH_R 6371008.8 /* mean radius, metres */
#define RAD (M_PI / 180.0)

double geo_distance_m(double lat1, double lon1, double lat2, double lon2) {
  double dlat = (lat2 - lat1) * RAD, dlon = (lon2 - lon1) * RAD;
  double a = sin(dlat / 2) * sin(dlat / 2) +
             cos(lat1 * RAD) * cos(lat2 * RAD) * sin(dlon / 2) * sin(dlon / 2);
  return 2 * EARTH_R * asin(fmin(1.0, sqrt(a)));
}

static double wrap180(double d) {
  while (d > 180)
    d -= 360;
  while (d <= -180)
    d += 360;
  return d;
}

bool geo_in_polygon(double lat, double lon, const double *plat, const double *plon, size_t n) {
  double k = cos(lat * RAD);
  /* The local plane holds for zones a point could be in: a vertex a quarter
   * of the globe away means the point is far outside (and the wrapped
   * differences would otherwise close the polygon the wrong way round). */
  for (size_t i = 0; i < n; i++)
    if (fabs(wrap180(plon[i] - lon)) > 90 || fabs(plat[i] - lat) > 45)
      return false;
  bool in = false;
  for (size_t i = 0, j = n - 1; i < n; j = i++) {
    double xi = wrap180(plon[i] - lon) * k, yi = plat[i] - lat;
    double xj = wrap180(plon[j] - lon) * k, yj = plat[j] - lat;
    /* Edge (j, i) crosses the ray from the origin along +x? */
    if ((yi > 0) != (yj > 0)) {
      double x = xj + (0 - yj) * (xi - xj) / (yi - yj);
      if (x > 0)
        in = !in;
    }
  }
  return in;
}

bool geo_in_zone(const struct ledger_zone *z, double lat, double lon) {
  if (z->kind == LEDGER_ZONE_CIRCLE)
    return geo_distance_m(lat, lon, z->lat_e7[0] / 1e7, z->lon_e7[0] / 1e7) <= z->radius_m;
  double plat[LEDGER_ZONE_POINTS_MAX], plon[LEDGER_ZONE_POINTS_MAX];
  for (uint32_t i = 0; i < z->n_points; i++) {
    plat[i] = z->lat_e7[i] / 1e7;
    plon[i] = z->lon_e7[i] / 1e7;
  }
  return geo_in_polygon(lat, lon, plat, plon, z->n_points);
}

size_t geo_message(char out[GEO_MSG_MAX], const char *ticket_id, double lat, double lon,
                   double accuracy_m, int64_t timestamp_ms) {
  int n = snprintf(out, GEO_MSG_MAX, "gm-geo-v1|%s|%lld|%lld|%lld|%lld", ticket_id,
                   (long long)llround(lat * 1e7), (long long)llround(lon * 1e7),
                   (long long)ceil(accuracy_m), (long long)timestamp_ms);
  return n < 0 ? 0 : (size_t)n < GEO_MSG_MAX ? (size_t)n : GEO_MSG_MAX - 1;
}

json_t *geo_zone_json(const struct ledger_zone *z) {
  json_t *o = json_pack("{s:s, s:s, s:I}", "id", z->id, "gate", z->gate, "max_accuracy_m",
                        (json_int_t)z->max_accuracy_m);
  if (o == NULL)
    return NULL;
  if (z->kind == LEDGER_ZONE_CIRCLE) {
    json_object_set_new(o, "circle",
                        json_pack("{s:f, s:f, s:I}", "lat", z->lat_e7[0] / 1e7, "lon",
                                  z->lon_e7[0] / 1e7, "radius_m", (json_int_t)z->radius_m));
  } else {
    json_t *pts = json_array();
    for (uint32_t i = 0; i < z->n_points; i++)
      json_array_append_new(pts, json_pack("[f, f]", z->lat_e7[i] / 1e7, z->lon_e7[i] / 1e7));
    json_object_set_new(o, "polygon", pts);
  }
  return o;
}

static int coord(struct method_env *env, const json_t *v, double limit, const char *what,
                 int32_t *out) {
  if (!json_is_number(v))
    return method__einval(env, "%s must be a number", what);
  double d = json_number_value(v);
  if (!isfinite(d) || d < -limit || d > limit)
    return method__einval(env, "%s must be within [-%g, %g]", what, limit, limit);
  *out = (int32_t)llround(d * 1e7);
  return 0;
}

int geo_zone_parse(struct method_env *env, const json_t *in, const char *event_id,
                   struct ledger_zone *z) {
  const char *id, *gate = "";
  json_t *circle = NULL, *poly = NULL;
  json_int_t acc = env->cfg->geo_max_accuracy_m;
  json_error_t jerr;
  memset(z, 0, sizeof *z);
  if (json_unpack_ex((json_t *)in, &jerr, JSON_STRICT, "{s:s, s?s, s?o, s?o, s?I}", "id", &id,
                     "gate", &gate, "circle", &circle, "polygon", &poly, "max_accuracy_m",
                     &acc) != 0)
    return method__einval(env, "a zone is {id, gate?, circle | polygon, max_accuracy_m?}: %s",
                          jerr.text);
  if (id[0] == 0 || strlen(id) > LEDGER_ID_MAX || strlen(gate) > LEDGER_GATE_MAX)
    return method__einval(env, "zone id must be 1 to %d characters, gate at most %d",
                          LEDGER_ID_MAX, LEDGER_GATE_MAX);
  if ((circle == NULL) == (poly == NULL))
    return method__einval(env, "a zone has exactly one of circle and polygon");
  if (acc < 1 || acc > 100000)
    return method__einval(env, "max_accuracy_m must be 1 to 100000");
  strcpy(z->event_id, event_id);
  strcpy(z->id, id);
  strcpy(z->gate, gate);
  z->max_accuracy_m = (uint32_t)acc;
  int rc;
  if (circle != NULL) {
    json_t *lat, *lon;
    json_int_t r;
    if (json_unpack_ex(circle, &jerr, JSON_STRICT, "{s:o, s:o, s:I}", "lat", &lat, "lon", &lon,
                       "radius_m", &r) != 0)
      return method__einval(env, "circle is {lat, lon, radius_m}: %s", jerr.text);
    if (r < 1 || r > 100000)
      return method__einval(env, "radius_m must be 1 to 100000");
    if ((rc = coord(env, lat, 90, "lat", &z->lat_e7[0])) != 0 ||
        (rc = coord(env, lon, 180, "lon", &z->lon_e7[0])) != 0)
      return rc;
    z->kind = LEDGER_ZONE_CIRCLE;
    z->n_points = 1;
    z->radius_m = (uint32_t)r;
    return 0;
  }
  if (!json_is_array(poly) || json_array_size(poly) < 3 ||
      json_array_size(poly) > LEDGER_ZONE_POINTS_MAX)
    return method__einval(env, "polygon is an array of 3 to %d [lat, lon] points",
                          LEDGER_ZONE_POINTS_MAX);
  for (size_t i = 0; i < json_array_size(poly); i++) {
    const json_t *p = json_array_get(poly, i);
    if (!json_is_array(p) || json_array_size(p) != 2)
      return method__einval(env, "polygon[%zu] must be [lat, lon]", i);
    if ((rc = coord(env, json_array_get(p, 0), 90, "lat", &z->lat_e7[i])) != 0 ||
        (rc = coord(env, json_array_get(p, 1), 180, "lon", &z->lon_e7[i])) != 0)
      return rc;
  }
  z->kind = LEDGER_ZONE_POLYGON;
  z->n_points = (uint32_t)json_array_size(poly);
  return 0;
}

struct zones_ctx {
  json_t *arr;
  const char *gate;
  double lat, lon;
  double accuracy;
  bool any, inside, accurate;
};

static bool zone_for_gate(const struct ledger_zone *z, const char *gate) {
  return z->gate[0] == 0 || gate == NULL || strcmp(z->gate, gate) == 0;
}

static int zone_list(void *arg, const struct ledger_zone *z) {
  struct zones_ctx *c = arg;
  if (zone_for_gate(z, c->gate))
    json_array_append_new(c->arr, geo_zone_json(z));
  return 0;
}

static int geo_generate(struct method_env *env, const struct ledger_ticket *t,
                        const json_t *params, struct method_issue *out) {
  const char *dk64 = NULL, *gate = NULL;
  json_error_t jerr;
  if (params != NULL && json_object_size(params) > 0 &&
      json_unpack_ex((json_t *)params, &jerr, JSON_STRICT, "{s?s, s?s}", "device_key", &dk64,
                     "gate", &gate) != 0)
    return method__einval(env, "geofence generate takes {device_key?, gate?}: %s", jerr.text);
  uint8_t pk[32], sk[64];
  char seed64[64] = "";
  if (dk64 != NULL) {
    if (gm_b64url_decode(pk, sizeof pk, dk64, strlen(dk64)) != 32)
      return method__einval(env, "device_key must be an Ed25519 public key in base64url");
  } else {
    uint8_t seed[32];
    env->random(env->random_arg, seed, sizeof seed);
    crypto_sign_seed_keypair(pk, sk, seed);
    gm_b64url_encode(seed64, sizeof seed64, seed, sizeof seed);
    sodium_memzero(seed, sizeof seed);
    sodium_memzero(sk, sizeof sk);
  }
  struct zones_ctx zc = {.arr = json_array(), .gate = gate};
  int rc = ledger_zone_each(env->rd, t->event_id, zone_list, &zc);
  if (rc != 0 || json_array_size(zc.arr) == 0) {
    json_decref(zc.arr);
    return rc != 0 ? rc
                   : method__einval(env, "event %s has no entry zone%s%s", t->event_id,
                                    gate ? " for gate " : "", gate ? gate : "");
  }
  char pk64[48];
  gm_b64url_encode(pk64, sizeof pk64, pk, sizeof pk);
  struct ledger_cred *c = method__cred_issue(env, t, "geofence", pk64, out);
  memcpy(c->secret, pk, sizeof pk);
  c->secret_len = sizeof pk;
  out->response = json_pack("{s:O, s:o, s:s, s:I}", "zone", json_array_get(zc.arr, 0), "zones",
                            zc.arr, "device_key", pk64, "freshness_ms",
                            (json_int_t)env->cfg->geo_freshness_ms);
  if (out->response && seed64[0])
    json_object_set_new(out->response, "device_secret_key", json_string(seed64));
  sodium_memzero(seed64, sizeof seed64);
  return out->response ? 0 : GM_ENOMEM;
}

static int zone_check(void *arg, const struct ledger_zone *z) {
  struct zones_ctx *c = arg;
  if (!zone_for_gate(z, c->gate))
    return 0;
  c->any = true;
  if (geo_in_zone(z, c->lat, c->lon)) {
    c->inside = true;
    if (c->accuracy <= z->max_accuracy_m) {
      c->accurate = true;
      return 1;
    }
  }
  return 0;
}

static int geo_verify(struct method_env *env, const json_t *presented, struct method_claim *out) {
  const char *dk64, *sig64 = NULL;
  json_t *jlat, *jlon, *jacc;
  json_int_t ts;
  json_error_t jerr;
  if (json_unpack_ex((json_t *)presented, &jerr, JSON_STRICT, "{s:s, s:o, s:o, s:o, s:I, s?s}",
                     "device_key", &dk64, "lat", &jlat, "lon", &jlon, "accuracy_m", &jacc,
                     "timestamp_ms", &ts, "signature", &sig64) != 0)
    return method__einval(env,
                          "presented_data for geofence is {device_key, lat, lon, accuracy_m, "
                          "timestamp_ms, signature}: %s",
                          jerr.text);
  if (!json_is_number(jlat) || !json_is_number(jlon) || !json_is_number(jacc))
    return method__einval(env, "lat, lon and accuracy_m must be numbers");
  double lat = json_number_value(jlat), lon = json_number_value(jlon),
         acc = json_number_value(jacc);
  if (!isfinite(lat) || lat < -90 || lat > 90)
    return method__einval(env, "lat must be within [-90, 90]");
  if (!isfinite(lon) || lon < -180 || lon > 180)
    return method__einval(env, "lon must be within [-180, 180]");
  if (!isfinite(acc) || acc < 0 || acc > 1e7)
    return method__einval(env, "accuracy_m must be a non-negative number of metres");
  if (ts < 0)
    return method__einval(env, "timestamp_ms must not be negative");
  if (sig64 == NULL) {
    out->reason = LEDGER_REASON_BAD_SIGNATURE; /* an unsigned webhook */
    return 0;
  }
  struct ledger_cred cred;
  int rc = method__cred_claim(env, "geofence", dk64, 32, &cred, out);
  if (rc != 0 || out->reason != LEDGER_REASON_NONE)
    return rc;
  uint8_t sig[64];
  char msg[GEO_MSG_MAX];
  size_t ml = geo_message(msg, cred.ticket_id, lat, lon, acc, ts);
  if (gm_b64url_decode(sig, sizeof sig, sig64, strlen(sig64)) != 64 ||
      crypto_sign_verify_detached(sig, (const uint8_t *)msg, ml, cred.secret) != 0) {
    out->reason = LEDGER_REASON_BAD_SIGNATURE;
    return 0;
  }
  if (env->now_ms - ts > env->cfg->geo_freshness_ms) {
    out->reason = LEDGER_REASON_EXPIRED; /* a stale report, or a replayed one */
    return 0;
  }
  if (ts - env->now_ms > env->cfg->clock_skew_ms) {
    out->reason = LEDGER_REASON_NOT_YET_VALID;
    return 0;
  }
  struct ledger_ticket t;
  if ((rc = ledger_ticket_get(env->rd, cred.ticket_id, &t)) != 0) {
    if (rc != GM_ENOTFOUND)
      return rc;
    out->reason = LEDGER_REASON_UNKNOWN_CREDENTIAL;
    return 0;
  }
  struct zones_ctx zc = {.gate = env->gate, .lat = lat, .lon = lon, .accuracy = acc};
  if ((rc = ledger_zone_each(env->rd, t.event_id, zone_check, &zc)) != 0)
    return rc;
  if (!zc.accurate)
    out->reason = LEDGER_REASON_OUTSIDE_ZONE; /* outside, or too vague to tell */
  return 0;
}

const struct method method_geofence = {.name = "geofence", .generate = geo_generate,
                                       .verify = geo_verify};
