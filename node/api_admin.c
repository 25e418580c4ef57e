/*
 * api_admin.c — audit queries, method toggles, overrides, key rotation, JWKS,
 * incidents, health, metrics and cluster status.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/buf.h"
#include "../lib/codec.h"
#include "../lib/err.h"
#include "../methods/keys.h"
#include "api.h"
#include "cluster.h"
#include "gossip.h"
#include "provisional.h"

#define AUDIT_LIMIT_DEFAULT 100
#define AUDIT_LIMIT_MAX 1000

static int audit_push(void *arg, const struct ledger_audit *a) {
  json_t *arr = arg;
  json_array_append_new(arr, json_pack("{s:I, s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}",
                                       "seq", (json_int_t)a->seq, "time_ms",
                                       (json_int_t)a->time_ms, "gate", a->gate, "method",
                                       a->method, "ticket_id", a->ticket_id, "action", a->action,
                                       "result", a->result, "reason", a->reason, "device",
                                       a->device, "ip", a->ip));
  return 0;
}

static int query_u64(struct api_req *ar, const char *key, uint64_t max, uint64_t *out) {
  char v[32];
  if (api_query(ar, key, v, sizeof v) != 0)
    return 0;
  char *end;
  unsigned long long x = strtoull(v, &end, 10);
  if (v[0] == 0 || v[0] == '-' || *end || x > max) {
    api_problem(ar, 400, "invalid_field", "%s must be an integer from 0 to %" PRIu64, key, max);
    return -1;
  }
  *out = x;
  return 0;
}

/* Scans the audit log with fn collecting into a JSON array, replied as {key: [...]}. */
static void reply_audit_scan(struct api_req *ar, const struct ledger_audit_filter *f,
                             int (*fn)(void *arg, const struct ledger_audit *a), const char *key) {
  json_t *arr = json_array();
  struct ledger_rd *rd;
  int rc = ledger_rd_begin(ar->node->ledger, &rd);
  if (rc == 0) {
    rc = ledger_audit_scan(rd, f, fn, arr);
    ledger_rd_end(rd);
  }
  if (rc != 0) {
    json_decref(arr);
    api_error(ar, rc, NULL);
  } else {
    api_reply_json(ar, 200, json_pack("{s:o}", key, arr));
  }
}

void api_audits(struct api_req *ar) {
  char ticket[LEDGER_ID_MAX + 1], method[LEDGER_METHOD_MAX + 1], gate[LEDGER_GATE_MAX + 1];
  struct ledger_audit_filter f = {.limit = AUDIT_LIMIT_DEFAULT};
  uint64_t since = 0, limit = AUDIT_LIMIT_DEFAULT;
  if (api_query(ar, "ticket", ticket, sizeof ticket) == 0)
    f.ticket_id = ticket;
  if (api_query(ar, "method", method, sizeof method) == 0)
    f.method = method;
  if (api_query(ar, "gate", gate, sizeof gate) == 0)
    f.gate = gate;
  if (query_u64(ar, "since_ms", INT64_MAX, &since) != 0 ||
      query_u64(ar, "limit", AUDIT_LIMIT_MAX, &limit) != 0)
    return api_done(ar);
  f.since_ms = (int64_t)since;
  f.limit = (uint32_t)limit;
  reply_audit_scan(ar, &f, audit_push, "events");
  api_done(ar);
}

static bool fraud_reason(const char *r) {
  static const char *const kinds[] = {"already_used", "replayed", "bad_signature", "superseded",
                                      "revoked"};
  for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
    if (strcmp(r, kinds[i]) == 0)
      return true;
  return false;
}

static int incident_push(void *arg, const struct ledger_audit *a) {
  json_t *arr = arg;
  if (strcmp(a->action, "verify") != 0 || !fraud_reason(a->reason))
    return 0;
  json_array_append_new(arr, json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:s, s:s}", "kind",
                                       "fraud_attempt", "time_ms", (json_int_t)a->time_ms,
                                       "reason", a->reason, "ticket_id", a->ticket_id, "gate",
                                       a->gate, "method", a->method, "device", a->device, "ip",
                                       a->ip));
  return json_array_size(arr) >= AUDIT_LIMIT_MAX;
}

static json_t *use_json(const struct ledger_use *u, uint64_t origin, uint64_t pseq) {
  json_t *o = json_pack("{s:s, s:s, s:I, s:b}", "gate", u->gate, "method", u->method, "used_ms",
                        (json_int_t)u->used_ms, "provisional", pseq != 0);
  if (pseq != 0) {
    json_object_set_new(o, "origin_node", json_integer((json_int_t)origin));
    json_object_set_new(o, "origin_seq", json_integer((json_int_t)pseq));
  }
  return o;
}

static int double_entry_push(void *arg, const struct ledger_incident *x) {
  json_t *arr = arg;
  json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:o, s:o}", "kind", x->kind, "ticket_id",
                        x->ticket_id, "seq", (json_int_t)x->seq, "partition_epoch",
                        (json_int_t)x->epoch, "second",
                        use_json(&x->second, x->origin, x->pseq), "first",
                        x->first.gate[0] || x->first.used_ms
                            ? use_json(&x->first, x->first_origin, x->first_pseq)
                            : json_null());
  json_array_append_new(arr, o);
  return json_array_size(arr) >= AUDIT_LIMIT_MAX;
}

/* Double entries (and admissions on stale state) that reconciliation found,
 * from the ledger, then fraud attempts refused at the gates, from the audit. */
void api_incidents(struct api_req *ar) {
  json_t *arr = json_array();
  struct ledger_rd *rd;
  int rc = ledger_rd_begin(ar->node->ledger, &rd);
  if (rc == 0) {
    rc = ledger_incident_each(rd, double_entry_push, arr);
    struct ledger_audit_filter f = {.limit = UINT32_MAX};
    if (rc == 0 && json_array_size(arr) < AUDIT_LIMIT_MAX)
      rc = ledger_audit_scan(rd, &f, incident_push, arr);
    ledger_rd_end(rd);
  }
  if (rc != 0) {
    json_decref(arr);
    api_error(ar, rc, NULL);
  } else {
    api_reply_json(ar, 200, json_pack("{s:o}", "incidents", arr));
  }
  api_done(ar);
}

struct toggle_state {
  char method[LEDGER_METHOD_MAX + 1];
  bool enabled;
};

static void toggle_committed(struct api_req *ar, const struct ledger_result *res) {
  struct toggle_state *st = ar->state;
  if (res->rc != 0)
    api_error(ar, res->rc, NULL);
  else
    api_reply_json(ar, 200, json_pack("{s:s, s:b}", "name", st->method, "enabled", st->enabled));
  free(st);
  api_done(ar);
}

void api_toggle(struct api_req *ar) {
  int enabled;
  if (api_unpack(ar, "{s:b}", "enabled", &enabled) != 0)
    return api_done(ar);
  if (method_find(ar->params[0]) == NULL) {
    api_problem(ar, 404, "not_found", "no method %s", ar->params[0]);
    return api_done(ar);
  }
  struct toggle_state *st = calloc(1, sizeof *st);
  strcpy(st->method, method_find(ar->params[0])->name);
  st->enabled = enabled;
  struct ledger_cmd c = {0};
  node_cmd_init(ar->node, &c, LEDGER_OP_METHOD_TOGGLE, ar->rid, ar->who.user_id);
  strcpy(c.u.toggle.method, st->method);
  c.u.toggle.enabled = enabled;
  ar->state = st;
  api_commit(ar, &c, toggle_committed);
}

static void override_committed(struct api_req *ar, const struct ledger_result *res) {
  if (res->rc == GM_ESTATE)
    api_problem(ar, 409, "conflict",
                res->has_first_use ? "the ticket was already admitted at %s"
                                   : "the ticket is revoked%s",
                res->has_first_use ? res->first_use.gate : "");
  else if (res->rc != 0)
    api_error(ar, res->rc, res->rc == GM_ENOTFOUND ? "no such ticket" : NULL);
  else {
    struct ledger_rd *rd;
    struct ledger_ticket t;
    int rc = ledger_rd_begin(ar->node->ledger, &rd);
    if (rc == 0) {
      rc = ledger_ticket_get(rd, ar->params[0], &t);
      ledger_rd_end(rd);
    }
    if (rc == 0)
      api_reply_json(ar, 200, api_ticket_json(&t));
    else
      api_error(ar, rc, NULL);
  }
  api_done(ar);
}

void api_override(struct api_req *ar) {
  const char *action, *reason;
  if (api_unpack(ar, "{s:s, s:s}", "action", &action, "reason", &reason) != 0 ||
      api_check_len(ar, "reason", reason, LEDGER_REASON_MAX, true) != 0)
    return api_done(ar);
  /* Overrides are for supervisors: the organizer role and above. */
  if (api_require(ar, LEDGER_ROLE_ORGANIZER) != 0)
    return api_done(ar);
  int act = !strcmp(action, "admit") ? LEDGER_OVERRIDE_ADMIT
            : !strcmp(action, "reset") ? LEDGER_OVERRIDE_RESET
                                       : -1;
  if (act < 0) {
    api_problem(ar, 400, "invalid_field", "action must be admit or reset");
    return api_done(ar);
  }
  struct ledger_cmd c = {0};
  node_cmd_init(ar->node, &c, LEDGER_OP_OVERRIDE, ar->rid, ar->who.user_id);
  strcpy(c.u.override.ticket_id, ar->params[0]);
  c.u.override.action = act;
  strcpy(c.u.override.reason, reason);
  api_commit(ar, &c, override_committed);
}

struct rotate_state {
  uint32_t kid;
};

static void rotate_committed(struct api_req *ar, const struct ledger_result *res) {
  struct rotate_state *st = ar->state;
  char kid[16];
  keys_kid_str(kid, st->kid);
  if (res->rc == GM_EEXIST)
    api_problem(ar, 409, "conflict", "another rotation won; retry");
  else if (res->rc != 0)
    api_error(ar, res->rc, NULL);
  else
    api_reply_json(ar, 200, json_pack("{s:s}", "kid", kid));
  free(st);
  api_done(ar);
}

void api_keys_rotate(struct api_req *ar) {
  struct method_env env;
  struct ledger_cmd c = {0};
  int rc = node_env_begin(ar->node, &env);
  if (rc == 0) {
    rc = keys_new_cmd(&env, &c);
    node_env_end(&env);
  }
  if (rc != 0) {
    api_error(ar, rc, NULL);
    return api_done(ar);
  }
  node_cmd_init(ar->node, &c, LEDGER_OP_KEY_ADD, ar->rid, ar->who.user_id);
  struct rotate_state *st = calloc(1, sizeof *st);
  st->kid = c.u.key.kid;
  ar->state = st;
  api_commit(ar, &c, rotate_committed);
}

struct jwks_ctx {
  json_t *arr;
  int64_t now;
};

static int jwk_push(void *arg, const struct ledger_key *k) {
  struct jwks_ctx *jc = arg;
  if (jc->now >= k->not_after_ms)
    return 0;
  char x[64], kid[16];
  gm_b64url_encode(x, sizeof x, k->pk, sizeof k->pk);
  keys_kid_str(kid, k->kid);
  json_array_append_new(jc->arr, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "kty",
                                           "OKP", "crv", "Ed25519", "x", x, "kid", kid, "use",
                                           "sig", "alg", "EdDSA", "nbf",
                                           (json_int_t)(k->not_before_ms / 1000), "exp",
                                           (json_int_t)(k->not_after_ms / 1000)));
  return 0;
}

void api_jwks(struct api_req *ar) {
  struct jwks_ctx jc = {json_array(), node_now_ms()};
  struct ledger_rd *rd;
  int rc = ledger_rd_begin(ar->node->ledger, &rd);
  if (rc == 0) {
    rc = ledger_key_each(rd, jwk_push, &jc);
    ledger_rd_end(rd);
  }
  if (rc != 0) {
    json_decref(jc.arr);
    api_error(ar, rc, NULL);
  } else {
    api_reply_json(ar, 200, json_pack("{s:o}", "keys", jc.arr));
  }
  api_done(ar);
}

void api_healthz(struct api_req *ar) {
  if (ar->node->stopping)
    api_problem(ar, 503, "shutting_down", "the gate is shutting down");
  else
    api_reply_json(ar, 200, json_pack("{s:s}", "status", "ok"));
  api_done(ar);
}

static void histogram(struct gm_buf *b, const char *name, const uint64_t *h, double sum_s) {
  gm_buf_printf(b, "# TYPE %s histogram\n", name);
  uint64_t cum = 0;
  for (size_t i = 0; i <= NODE_LAT_BUCKETS; i++) {
    cum += h[i];
    if (i < NODE_LAT_BUCKETS)
      gm_buf_printf(b, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name, node_lat_bounds_ms[i] / 1e3,
                    cum);
    else
      gm_buf_printf(b, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, cum);
  }
  gm_buf_printf(b, "%s_sum %.6f\n%s_count %" PRIu64 "\n", name, sum_s, name, cum);
}

void api_metrics(struct api_req *ar) {
  struct node *n = ar->node;
  struct gm_buf b;
  gm_buf_init(&b);
  const struct node_metrics *m = &n->metrics;
  const struct commit_stats *cs = &n->commit.stats;
  gm_buf_printf(&b, "# TYPE gate_http_requests_total counter\n");
  for (int c = 1; c <= 5; c++)
    gm_buf_printf(&b, "gate_http_requests_total{class=\"%dxx\"} %" PRIu64 "\n", c,
                  m->http_status[c]);
  gm_buf_printf(&b, "# TYPE gate_verify_total counter\n");
  gm_buf_printf(&b, "gate_verify_total{result=\"admitted\"} %" PRIu64 "\n", m->verify_admitted);
  gm_buf_printf(&b, "gate_verify_total{result=\"denied\"} %" PRIu64 "\n", m->verify_denied);
  histogram(&b, "gate_verify_duration_seconds", m->verify_lat, m->verify_lat_sum_s);
  histogram(&b, "gate_loop_busy_seconds", m->loop_busy, m->loop_busy_sum_s);
  if (n->cluster != NULL) {
    histogram(&b, "gate_raft_queue_seconds", m->raft_queue, m->raft_queue_sum_s);
    histogram(&b, "gate_raft_commit_seconds", m->raft_commit, m->raft_commit_sum_s);
  }
  gm_buf_printf(&b, "# TYPE gate_verify_denied_total counter\n");
  for (int r = 1; r < LEDGER_REASON__COUNT; r++)
    gm_buf_printf(&b, "gate_verify_denied_total{reason=\"%s\"} %" PRIu64 "\n",
                  ledger_reason_str(r), m->reasons[r]);
  gm_buf_printf(&b,
                "# TYPE gate_commit_batches_total counter\ngate_commit_batches_total %" PRIu64
                "\n# TYPE gate_commit_commands_total counter\ngate_commit_commands_total %" PRIu64
                "\n# TYPE gate_commit_failed_batches_total counter\n"
                "gate_commit_failed_batches_total %" PRIu64
                "\n# TYPE gate_commit_batch_max gauge\ngate_commit_batch_max %" PRIu64
                "\n# TYPE gate_commit_queue gauge\ngate_commit_queue %zu\n"
                "# TYPE gate_commit_apply_seconds_total counter\n"
                "gate_commit_apply_seconds_total %.6f\n"
                "# TYPE gate_commit_wait_seconds_total counter\n"
                "gate_commit_wait_seconds_total %.6f\n",
                cs->batches, cs->commands, cs->failed_batches, cs->batch_max,
                n->commit.n_pending, (double)cs->apply_us / 1e6, (double)cs->wait_us / 1e6);
  gm_buf_printf(&b,
                "# TYPE gate_auth_cache_hits_total counter\ngate_auth_cache_hits_total %" PRIu64
                "\n# TYPE gate_auth_cache_misses_total counter\ngate_auth_cache_misses_total %" PRIu64
                "\n",
                m->auth_cache_hits, m->auth_cache_misses);
  uint64_t tickets = 0, incidents = 0;
  struct ledger_rd *rd;
  if (ledger_rd_begin(n->ledger, &rd) == 0) {
    ledger_ticket_count(rd, &tickets);
    ledger_incident_count(rd, &incidents);
    ledger_rd_end(rd);
  }
  gm_buf_printf(&b, "# TYPE gate_tickets gauge\ngate_tickets %" PRIu64 "\n", tickets);
  gm_buf_printf(&b,
                "# HELP gate_incidents Double entries in the ledger (found by reconciliation)\n"
                "# TYPE gate_incidents gauge\ngate_incidents %" PRIu64 "\n",
                incidents);
  char cm[2048];
  cluster_metrics(n, cm, sizeof cm);
  gm_buf_printf(&b, "%s", cm);
  gossip_metrics(n, cm, sizeof cm);
  gm_buf_printf(&b, "%s", cm);
  provisional_metrics(n, cm, sizeof cm);
  gm_buf_printf(&b, "%s", cm);
  jobs_metrics(n, &b);
  api_reply_text(ar, 200, "text/plain; version=0.0.4", (const char *)b.ptr, b.len);
  gm_buf_free(&b);
  api_done(ar);
}

static void leave_done(void *arg, int rc, const char *msg) {
  struct api_req *ar = arg;
  if (!api_alive(ar)) {
    api_done(ar);
    return;
  }
  if (rc != 0)
    api_error(ar, rc, msg);
  else
    api_reply_json(ar, 200, json_pack("{s:s}", "result", msg));
  api_done(ar);
}

/* POST /cluster/leave {node_id}: the leader removes that member. */
void api_cluster_leave(struct api_req *ar) {
  struct node *n = ar->node;
  json_int_t id = 0;
  if (api_unpack(ar, "{s:I}", "node_id", &id) != 0)
    return api_done(ar);
  if (id <= 0 || id > 0xffffffffLL) {
    api_problem(ar, 400, "invalid_field", "node_id must be a positive integer");
    return api_done(ar);
  }
  if (n->cluster == NULL) {
    api_problem(ar, 409, "conflict", "this gate runs alone; there is no cluster to leave");
    return api_done(ar);
  }
  int rc = cluster_leave(n, (uint64_t)id, leave_done, ar);
  if (rc != 0) {
    api_error(ar, rc, "cannot reach the leader");
    api_done(ar);
  }
}

/* GET /cluster/ledger-hash: this replica's applied index and the BLAKE2b of
 * its whole ledger, to check that gates agree (a full scan: for operators
 * and tests, not for monitoring loops). */
void api_ledger_hash(struct api_req *ar) {
  uint8_t h[32];
  uint64_t applied = ledger_applied_seq(ar->node->ledger);
  int rc = ledger_hash(ar->node->ledger, h);
  if (rc != 0) {
    api_error(ar, rc, NULL);
    return api_done(ar);
  }
  char hex[65];
  gm_hex(hex, h, sizeof h);
  api_reply_json(ar, 200, json_pack("{s:I, s:s}", "applied_index", (json_int_t)applied, "hash", hex));
  api_done(ar);
}

/* GET /cluster/join-token: what `gated --join ... --join-token` needs. */
void api_cluster_token(struct api_req *ar) {
  char tok[96];
  cluster_join_token(ar->node->cluster_key, tok, sizeof tok);
  api_reply_json(ar, 200, json_pack("{s:s}", "token", tok));
  api_done(ar);
}

void api_cluster_status(struct api_req *ar) {
  struct node *n = ar->node;
  if (n->cluster != NULL) {
    json_t *o = cluster_status(n);
    json_object_set_new(o, "mode", json_string("cluster"));
    json_object_set_new(o, "gossip", gossip_status(n));
    json_object_set_new(o, "partition_mode", json_boolean(provisional_partition_mode(n)));
    json_object_set_new(o, "provisional", provisional_status(n));
    json_object_set_new(o, "gate", json_string(n->cfg.gate));
    json_object_set_new(o, "jobs", jobs_status(n));
    api_reply_json(ar, 200, o);
    api_done(ar);
    return;
  }
  char id[16];
  snprintf(id, sizeof id, "%u", n->cfg.node_id);
  json_t *self = json_pack("{s:I, s:s, s:s, s:s, s:I, s:I}", "node_id", (json_int_t)n->cfg.node_id,
                           "gate", n->cfg.gate, "http", n->cfg.http_listen, "role", "voter",
                           "applied_index", (json_int_t)n->commit.stats.applied, "lag",
                           (json_int_t)0);
  json_t *members = json_array();
  json_array_append_new(members, self);
  /* A single gate is its own leader: it commits locally (group commit). */
  api_reply_json(ar, 200,
                 json_pack("{s:I, s:s, s:I, s:I, s:I, s:o, s:b, s:s, s:o}", "node_id",
                           (json_int_t)n->cfg.node_id, "role", "leader", "leader",
                           (json_int_t)n->cfg.node_id, "term", (json_int_t)1, "applied_index",
                           (json_int_t)n->commit.stats.applied, "members", members,
                           "partition_mode", 0, "mode", "single", "jobs", jobs_status(n)));
  api_done(ar);
}
