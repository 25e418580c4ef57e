/*
 * registry.c — the table of methods and their enabled flags.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../lib/err.h"
#include "method.h"

static const struct method *const methods[] = {&method_qr, &method_pass, &method_nfc,
                                               &method_biometric, &method_geofence};

void method_config_default(struct method_config *c) {
  memset(c, 0, sizeof *c);
  c->qr_ttl_ms = 60 * 1000;
  c->holder_window_ms = 30 * 1000;
  c->clock_skew_ms = 5 * 1000;
  c->pass_period_s = 15;
  c->key_validity_ms = 90LL * 24 * 3600 * 1000;
  c->enabled_qr = true;
  c->enabled_pass = true;
  c->enabled_nfc = true;
  c->enabled_biometric = true;
  c->enabled_geofence = true;
  c->bio_dim = 128;
  c->bio_threshold = 0.80;
  c->bio_margin = 0.05;
  c->geo_freshness_ms = 30 * 1000;
  c->geo_max_accuracy_m = 50;
}

const struct method *method_find(const char *name) {
  for (size_t i = 0; i < sizeof methods / sizeof *methods; i++)
    if (strcmp(methods[i]->name, name) == 0)
      return methods[i];
  return NULL;
}

size_t method_count(void) { return sizeof methods / sizeof *methods; }

const struct method *method_at(size_t i) {
  return i < method_count() ? methods[i] : NULL;
}

bool method_enabled(struct method_env *env, const char *name) {
  int flag = ledger_method_flag(env->rd, name);
  if (flag == 0 || flag == 1)
    return flag == 1;
  if (strcmp(name, "qr") == 0)
    return env->cfg->enabled_qr;
  if (strcmp(name, "pass") == 0)
    return env->cfg->enabled_pass;
  if (strcmp(name, "nfc") == 0)
    return env->cfg->enabled_nfc;
  if (strcmp(name, "biometric") == 0)
    return env->cfg->enabled_biometric;
  if (strcmp(name, "geofence") == 0)
    return env->cfg->enabled_geofence;
  return false;
}

int method__einval(struct method_env *env, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(env->err, sizeof env->err, fmt, ap);
  va_end(ap);
  return GM_EINVAL;
}

int method__str(struct method_env *env, const json_t *obj, const char *key, const char **out) {
  const json_t *v = json_object_get(obj, key);
  if (v == NULL)
    return method__einval(env, "%s is required", key);
  if (!json_is_string(v))
    return method__einval(env, "%s must be a string", key);
  *out = json_string_value(v);
  return 0;
}
