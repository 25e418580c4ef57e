/*
 * api_methods.c — the verification endpoints: list a ticket's methods,
 * generate a credential, verify one (per ticket, or credential-first at
 * POST /verify, which is what a scanner calls).
 *
 * Verify path: local checks on a read snapshot (method.h, service.h); a
 * denial is answered at once and audited in the next commit; a pass becomes
 * a REDEEM command whose committed, fsynced result is the verdict.
 */
#include <stdio.h>
#include <string.h>

#include "../lib/buf.h"
#include "../lib/err.h"
#include "../methods/service.h"
#include "api.h"
#include "provisional.h"

void api_methods_list(struct api_req *ar) {
  struct ledger_ticket t;
  if (api_load_ticket(ar, LEDGER_ROLE_STAFF, &t) != 0)
    return api_done(ar);
  struct method_env env;
  int rc = node_env_begin(ar->node, &env);
  if (rc != 0) {
    api_error(ar, rc, NULL);
    return api_done(ar);
  }
  json_t *arr = json_array();
  for (size_t i = 0; i < method_count(); i++) {
    const char *name = method_at(i)->name;
    json_array_append_new(arr, json_pack("{s:s, s:b}", "name", name, "enabled",
                                         method_enabled(&env, name)));
  }
  node_env_end(&env);
  api_reply_json(ar, 200, json_pack("{s:o}", "methods", arr));
  api_done(ar);
}

struct gen_state {
  json_t *response;
};

static void gen_committed(struct api_req *ar, const struct ledger_result *res) {
  struct gen_state *st = ar->state;
  if (res->rc == GM_ESTATE)
    api_problem(ar, 409, "conflict", "the ticket changed meanwhile; generate again");
  else if (res->rc == GM_EEXIST)
    api_problem(ar, 409, "conflict", "the credential is bound to another ticket");
  else if (res->rc != 0)
    api_error(ar, res->rc, NULL);
  else {
    json_object_set_new(st->response, "method", json_string(ar->params[1]));
    json_object_set_new(st->response, "ticket_id", json_string(ar->params[0]));
    api_reply_json(ar, 200, st->response);
    st->response = NULL;
  }
  json_decref(st->response);
  free(st);
  api_done(ar);
}

void api_methods_generate(struct api_req *ar) {
  struct ledger_ticket t;
  if (api_load_ticket(ar, LEDGER_ROLE_ORGANIZER, &t) != 0)
    return api_done(ar);
  const struct method *m = method_find(ar->params[1]);
  if (m == NULL) {
    api_problem(ar, 404, "not_found", "no method %s", ar->params[1]);
    return api_done(ar);
  }
  if (t.status == LEDGER_TICKET_USED || t.status == LEDGER_TICKET_REVOKED) {
    api_problem(ar, 409, "conflict", "the ticket is %s", ledger_status_str(t.status));
    return api_done(ar);
  }
  struct method_env env;
  int rc = node_env_begin(ar->node, &env);
  if (rc != 0) {
    api_error(ar, rc, NULL);
    return api_done(ar);
  }
  if (!method_enabled(&env, m->name)) {
    node_env_end(&env);
    api_problem(ar, 403, "method_disabled", "method %s is disabled", m->name);
    return api_done(ar);
  }
  struct method_issue is;
  memset(&is, 0, sizeof is);
  rc = m->generate(&env, &t, ar->body, &is);
  node_env_end(&env);
  if (rc != 0) {
    ledger_cmd_free(&is.cmd);
    api_error(ar, rc, rc == GM_EINVAL ? env.err : NULL);
    return api_done(ar);
  }
  struct gen_state *st = calloc(1, sizeof *st);
  st->response = is.response;
  ar->state = st;
  struct ledger_cmd *c = &is.cmd;
  node_cmd_init(ar->node, c, c->op, ar->rid, ar->who.user_id);
  api_commit(ar, c, gen_committed); /* encodes c at once */
  ledger_cmd_free(c);
}

struct verify_state {
  char method[LEDGER_METHOD_MAX + 1];
  char gate[LEDGER_GATE_MAX + 1];
  char ticket_id[LEDGER_ID_MAX + 1];
  bool has_score;
  double score;
};

/* Verdicts are the hot reply: written straight into a buffer (strings
 * escaped) rather than built as a jansson tree and dumped. */
static void reply_verdict(struct api_req *ar, const struct verify_state *st, int reason,
                          int64_t decided_ms, const struct ledger_use *first_use,
                          bool provisional) {
  struct node_metrics *m = &ar->node->metrics;
  if (reason == LEDGER_REASON_NONE)
    m->verify_admitted++;
  else
    m->verify_denied++;
  if (reason >= 0 && reason < LEDGER_REASON__COUNT)
    m->reasons[reason]++;
  /* Worst case, every string escaped 6x: under 2 KiB. */
  char mem[4096];
  struct gm_buf b;
  gm_buf_init_fixed(&b, mem, sizeof mem);
  gm_buf_append_str(&b, reason == LEDGER_REASON_NONE ? "{\"admitted\":true,\"method\":"
                                                    : "{\"admitted\":false,\"method\":");
  api_json_str(&b, st->method);
  gm_buf_append_str(&b, provisional ? ",\"provisional\":true,\"gate\":"
                               : ",\"provisional\":false,\"gate\":");
  api_json_str(&b, st->gate);
  gm_buf_append_str(&b, ",\"decided_ms\":");
  gm_buf_append_i64(&b, decided_ms);
  if (reason != LEDGER_REASON_NONE) {
    gm_buf_append_str(&b, ",\"reason\":");
    api_json_str(&b, ledger_reason_str(reason));
  }
  if (st->ticket_id[0]) {
    gm_buf_append_str(&b, ",\"ticket_id\":");
    api_json_str(&b, st->ticket_id);
  }
  if (st->has_score) {
    char num[32];
    snprintf(num, sizeof num, ",\"score\":%.6f", st->score);
    gm_buf_append_str(&b, num);
  }
  if (first_use) {
    gm_buf_append_str(&b, ",\"first_use\":{\"gate\":");
    api_json_str(&b, first_use->gate);
    gm_buf_append_str(&b, ",\"method\":");
    api_json_str(&b, first_use->method);
    gm_buf_append_str(&b, ",\"used_ms\":");
    gm_buf_append_i64(&b, first_use->used_ms);
    gm_buf_append(&b, "}", 1);
  }
  if (gm_buf_append(&b, "}", 1) != 0)
    return api_reply_json(ar, 500, NULL);
  api_reply_text(ar, 200, "application/json", (const char *)b.ptr, b.len);
}

/* A refusal no ledger command records: audited in the next commit. */
static void audit_denied(struct api_req *ar, const struct verify_state *st, int reason,
                         int64_t at_ms) {
  struct ledger_audit a;
  memset(&a, 0, sizeof a);
  a.time_ms = at_ms;
  strcpy(a.gate, st->gate);
  strcpy(a.method, st->method);
  strcpy(a.ticket_id, st->ticket_id);
  strcpy(a.action, "verify");
  strcpy(a.result, "denied");
  strcpy(a.reason, ledger_reason_str(reason));
  strcpy(a.device, ar->device);
  strcpy(a.ip, ar->ip);
  commit_audit(&ar->node->commit, &a);
}

static void verify_done(struct api_req *ar, const struct ledger_result *res, bool provisional) {
  struct verify_state *st = ar->state;
  if (res->rc == GM_ENOQUORUM) {
    /* Strict policy and no leader within the request timeout: a verdict,
     * not an error — the scanner shows "not admitted". */
    int64_t now = node_now_ms();
    audit_denied(ar, st, LEDGER_REASON_NO_QUORUM, now);
    reply_verdict(ar, st, LEDGER_REASON_NO_QUORUM, now, NULL, false);
  } else if (res->rc == GM_ELIMIT || res->rc == GM_ESHUTDOWN) {
    api_error(ar, res->rc, "the gate is overloaded or stopping: not recorded, do not admit; retry");
  } else if (res->rc != 0) {
    api_error(ar, res->rc, "the admission could not be recorded; do not admit");
  } else {
    reply_verdict(ar, st, res->reason, res->decided_ms,
                  res->has_first_use ? &res->first_use : NULL, provisional);
  }
  free(st);
  api_done(ar);
}

static void verify_committed(struct api_req *ar, const struct ledger_result *res) {
  verify_done(ar, res, false);
}

/* Token bucket per client address, in a fixed table: a flood from many
 * addresses evicts buckets instead of growing memory. */
static bool rate_ok(struct node *n, const char *ip) {
  uint32_t rate = n->cfg.verify_rate_per_s;
  if (rate == 0)
    return true;
  uint64_t tag = 1469598103934665603ULL;
  for (const char *p = ip; *p; p++)
    tag = (tag ^ (uint8_t)*p) * 1099511628211ULL;
  tag |= 1;
  struct rate_slot *s = &n->rate[tag % RATE_SLOTS];
  int64_t now = node_now_ms();
  if (s->tag != tag) {
    s->tag = tag;
    s->tokens = rate;
    s->last_ms = now;
  }
  s->tokens += (double)(now - s->last_ms) * rate / 1000.0;
  if (s->tokens > rate)
    s->tokens = rate;
  s->last_ms = now;
  if (s->tokens < 1)
    return false;
  s->tokens -= 1;
  return true;
}

/* The verdict a retried verify (same idempotency key) got the first time. */
static void reply_first(struct api_req *ar, const char *method, const char *gate,
                        const struct ledger_result *first) {
  struct verify_state st = {0};
  strncpy(st.method, method, LEDGER_METHOD_MAX);
  strcpy(st.gate, gate);
  memcpy(st.ticket_id, first->id, sizeof st.ticket_id);
  if (first->rc != 0)
    api_error(ar, first->rc, NULL);
  else
    reply_verdict(ar, &st, first->reason, first->decided_ms,
                  first->has_first_use ? &first->first_use : NULL, false);
  api_done(ar);
}

static void verify_common(struct api_req *ar, const char *method, json_t *presented,
                          const char *gate, const char *hint) {
  struct node *n = ar->node;
  if (!rate_ok(n, ar->ip)) {
    api_problem(ar, 429, "rate_limited", "too many verifications from %s", ar->ip);
    return api_done(ar);
  }
  if (gate == NULL)
    gate = n->cfg.gate;
  if (api_check_len(ar, "gate", gate, LEDGER_GATE_MAX, true) != 0)
    return api_done(ar);
  struct method_env env;
  int rc = node_env_begin(n, &env);
  if (rc != 0) {
    api_error(ar, rc, NULL);
    return api_done(ar);
  }
  env.gate = gate;
  if (strcmp(method, "biometric") == 0)
    node_bio_sync(n, env.rd); /* the index sees what this snapshot sees */
  struct ledger_result first;
  if (ar->has_idem_key && ledger_dedup_get(env.rd, ar->rid, &first) == 0) {
    /* A retry of a verify whose reply was lost: the first verdict stands,
     * even though the ticket now reads as used. */
    node_env_end(&env);
    return reply_first(ar, method, gate, &first);
  }
  struct verify_outcome out;
  rc = verify_service_check(&env, method, presented, hint, &out);
  /* A retry of a verify that admitted: its ticket, not the dedup table,
   * remembers the request. */
  if (rc == 0 && !out.propose && ar->has_idem_key && out.claim.ticket_id[0] != 0 &&
      ledger_redeem_get(env.rd, out.claim.ticket_id, ar->rid, &first) == 0) {
    node_env_end(&env);
    return reply_first(ar, method, gate, &first);
  }
  /* In a cluster the event's offline policy for the ticket's tier decides
   * what happens when no leader answers. */
  struct pv_policy pol;
  bool available_path = false;
  if (rc == 0 && out.propose && n->pv != NULL) {
    struct ledger_ticket t;
    struct ledger_event ev;
    memset(&pol, 0, sizeof pol);
    if (ledger_ticket_get(env.rd, out.claim.ticket_id, &t) == 0 &&
        ledger_event_get(env.rd, t.event_id, &ev) == 0) {
      pol.policy = ledger_event_policy(&ev, t.tier);
      pol.budget = ev.offline_budget;
      memcpy(pol.event_id, ev.id, sizeof pol.event_id);
      available_path = true;
    }
  }
  node_env_end(&env);
  if (rc == GM_ENOTFOUND) {
    api_problem(ar, 404, "not_found", "no method %s", method);
    return api_done(ar);
  }
  if (rc != 0) {
    api_error(ar, rc, rc == GM_EINVAL ? env.err : NULL);
    return api_done(ar);
  }
  struct verify_state *st = calloc(1, sizeof *st);
  strncpy(st->method, method, LEDGER_METHOD_MAX);
  strcpy(st->gate, gate);
  memcpy(st->ticket_id, out.claim.ticket_id, sizeof st->ticket_id);
  st->has_score = out.claim.has_score;
  st->score = out.claim.score;
  if (!out.propose && out.claim.reason == LEDGER_REASON_NO_MATCH && hint == NULL &&
      strcmp(method, "biometric") == 0 && json_object_get(presented, "ticket_id") == NULL)
    st->ticket_id[0] = 0; /* a face that matched nobody well enough names no one */
  if (!out.propose) {
    audit_denied(ar, st, out.claim.reason, env.now_ms);
    reply_verdict(ar, st, out.claim.reason, env.now_ms,
                  out.has_first_use ? &out.first_use : NULL, false);
    free(st);
    return api_done(ar);
  }
  struct ledger_cmd *c = &out.redeem;
  node_cmd_init(n, c, LEDGER_OP_REDEEM, ar->rid, ar->who.user_id);
  c->ts_ms = env.now_ms;
  strcpy(c->gate, gate);
  strcpy(c->u.redeem.device, ar->device);
  strcpy(c->u.redeem.ip, ar->ip);
  ar->state = st;
  if (available_path)
    provisional_verify(n, ar, c, &pol, verify_done);
  else
    api_commit(ar, c, verify_committed);
}

void api_methods_verify(struct api_req *ar) {
  json_t *presented;
  const char *gate = NULL;
  if (api_unpack(ar, "{s:o, s?s}", "presented_data", &presented, "gate", &gate) != 0)
    return api_done(ar);
  verify_common(ar, ar->params[1], presented, gate, ar->params[0]);
}

void api_verify(struct api_req *ar) {
  json_t *presented;
  const char *method, *gate = NULL;
  if (api_unpack(ar, "{s:s, s:o, s?s}", "method", &method, "presented_data", &presented, "gate",
                 &gate) != 0)
    return api_done(ar);
  if (strlen(method) > LEDGER_METHOD_MAX) {
    api_problem(ar, 404, "not_found", "no such method");
    return api_done(ar);
  }
  verify_common(ar, method, presented, gate, NULL);
}
