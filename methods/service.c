/*
 * service.c — shared admission checks and the REDEEM proposal (see service.h).
 */
#include "service.h"

#include <string.h>

#include "../lib/err.h"

static int ticket_checks(struct method_env *env, const char *method, const char *hint,
                         struct verify_outcome *out) {
  struct method_claim *c = &out->claim;
  struct ledger_ticket t;
  int rc = ledger_ticket_get(env->rd, c->ticket_id, &t);
  if (rc == GM_ENOTFOUND)
    return LEDGER_REASON_UNKNOWN_CREDENTIAL;
  if (rc != 0)
    return rc;
  if (hint && strcmp(hint, c->ticket_id) != 0)
    return LEDGER_REASON_NO_MATCH;
  if (t.status == LEDGER_TICKET_REVOKED || t.denied)
    return LEDGER_REASON_REVOKED;
  if (c->ticket_version != t.version)
    return LEDGER_REASON_SUPERSEDED;
  /* A used ticket's record holds its first use. The pass step is compared
   * only then, to tell a replay from a second presentation; for an unused
   * ticket the ledger checks it when the redeem applies. */
  if (t.status == LEDGER_TICKET_USED) {
    if (c->nonce > 0 && c->nonce <= t.last_nonce)
      return LEDGER_REASON_REPLAYED;
    struct ledger_use *u = &out->first_use;
    memset(u, 0, sizeof *u);
    memcpy(u->gate, t.used_gate, sizeof u->gate);
    memcpy(u->method, t.used_method, sizeof u->method);
    memcpy(u->cred_id, t.used_cred, sizeof u->cred_id);
    u->used_ms = t.used_ms;
    out->has_first_use = true;
    return LEDGER_REASON_ALREADY_USED;
  }
  struct ledger_event ev;
  rc = ledger_event_get(env->rd, t.event_id, &ev);
  if (rc != 0)
    return rc;
  if (env->now_ms > ev.ends_ms)
    return LEDGER_REASON_EXPIRED;
  return LEDGER_REASON_NONE;
}

int verify_service_check(struct method_env *env, const char *method, const json_t *presented,
                         const char *ticket_hint, struct verify_outcome *out) {
  memset(out, 0, sizeof *out);
  const struct method *m = method_find(method);
  if (m == NULL)
    return GM_ENOTFOUND;
  if (!json_is_object(presented))
    return method__einval(env, "presented_data must be an object");
  if (!method_enabled(env, method)) {
    out->claim.reason = LEDGER_REASON_METHOD_DISABLED;
    return 0;
  }
  env->ticket_hint = ticket_hint;
  int rc = m->verify(env, presented, &out->claim);
  if (rc != 0)
    return rc;
  if (out->claim.reason != LEDGER_REASON_NONE)
    return 0;
  int r = ticket_checks(env, m->name, ticket_hint, out);
  if (r < 0)
    return r;
  out->claim.reason = r;
  if (r != LEDGER_REASON_NONE)
    return 0;
  out->propose = true;
  struct ledger_cmd *cmd = &out->redeem;
  memset(cmd, 0, sizeof *cmd);
  cmd->op = LEDGER_OP_REDEEM;
  cmd->ts_ms = env->now_ms;
  memcpy(cmd->u.redeem.ticket_id, out->claim.ticket_id, sizeof cmd->u.redeem.ticket_id);
  strcpy(cmd->u.redeem.method, m->name);
  memcpy(cmd->u.redeem.cred_id, out->claim.cred_id, sizeof cmd->u.redeem.cred_id);
  cmd->u.redeem.ticket_version = out->claim.ticket_version;
  cmd->u.redeem.nonce = out->claim.nonce;
  return 0;
}
