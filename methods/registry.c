/*
 * registry.c — the table of methods and their enabled flags.
 */
#include <sodium.h>
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

bool method__sig_ok(const struct method_env *env, const uint8_t sig[64], const uint8_t *msg,
                    size_t len, const uint8_t pk[32]) {
  int known = env->sigs != NULL ? env->sigs->known(env->sigs->arg, sig, msg, len, pk) : -1;
  if (known >= 0)
    return known == 1;
  return crypto_sign_verify_detached(sig, msg, len, pk) == 0;
}

int method__einval(struct method_env *env, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(env->err, sizeof env->err, fmt, ap);
  va_end(ap);
  return GM_EINVAL;
}

struct ledger_cred *method__cred_issue(struct method_env *env, const struct ledger_ticket *t,
                                       const char *method, const char *id,
                                       struct method_issue *out) {
  memset(&out->cmd, 0, sizeof out->cmd);
  out->cmd.op = LEDGER_OP_CRED_ISSUE;
  out->cmd.ts_ms = env->now_ms;
  struct ledger_cred *c = &out->cmd.u.cred;
  snprintf(c->method, sizeof c->method, "%s", method);
  snprintf(c->id, sizeof c->id, "%s", id);
  memcpy(c->ticket_id, t->id, sizeof c->ticket_id);
  c->ticket_version = t->version;
  return c;
}

int method__cred_claim(struct method_env *env, const char *method, const char *id,
                       size_t secret_len, struct ledger_cred *cred, struct method_claim *out) {
  int rc = strlen(id) <= LEDGER_ID_MAX ? ledger_cred_get(env->rd, method, id, cred) : GM_ENOTFOUND;
  if (rc == GM_ENOTFOUND || (rc == 0 && cred->secret_len != secret_len)) {
    out->reason = LEDGER_REASON_UNKNOWN_CREDENTIAL;
    return 0;
  }
  if (rc != 0)
    return rc;
  memcpy(out->ticket_id, cred->ticket_id, sizeof out->ticket_id);
  memcpy(out->cred_id, cred->id, sizeof out->cred_id);
  out->ticket_version = cred->ticket_version;
  return 0;
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
