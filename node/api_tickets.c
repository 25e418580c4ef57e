/*
 * api_tickets.c — events and tickets: create (one or a batch), read,
 * transfer, revoke. Reads come from the local ledger; writes are commands.
 */
#include <sodium.h>
#include <string.h>

#include "../lib/buf.h"
#include "../lib/err.h"
#include "api.h"

static void new_id(char *out, const char *prefix) {
  uint8_t rnd[8];
  randombytes_buf(rnd, sizeof rnd);
  size_t p = strlen(prefix);
  memcpy(out, prefix, p);
  gm_hex(out + p, rnd, sizeof rnd);
}

json_t *api_event_json(const struct ledger_event *e) {
  json_t *tiers = json_object();
  for (uint32_t i = 0; i < e->n_tier_policy; i++)
    json_object_set_new(tiers, e->tier_policy[i].tier,
                        json_string(ledger_policy_str(e->tier_policy[i].policy)));
  json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:s, s:I, s:o, s:I}", "id", e->id, "name",
                        e->name, "starts_ms", (json_int_t)e->starts_ms, "ends_ms",
                        (json_int_t)e->ends_ms, "offline_policy", ledger_policy_str(e->policy),
                        "offline_budget", (json_int_t)e->offline_budget, "tier_policies", tiers,
                        "created_ms", (json_int_t)e->created_ms);
  if (j && e->revoke_unscanned_after_ms)
    json_object_set_new(j, "revoke_unscanned_after_ms",
                        json_integer(e->revoke_unscanned_after_ms));
  if (j && e->bio_retention_ms)
    json_object_set_new(j, "biometric_retention_ms", json_integer(e->bio_retention_ms));
  return j;
}

json_t *api_ticket_json(const struct ledger_ticket *t) {
  json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "id", t->id, "event_id",
                        t->event_id, "holder", t->holder, "tier", t->tier, "status",
                        ledger_status_str(t->status), "version", (json_int_t)t->version,
                        "created_ms", (json_int_t)t->created_ms);
  if (j && t->status == LEDGER_TICKET_USED) {
    json_object_set_new(j, "used_ms", json_integer(t->used_ms));
    json_object_set_new(j, "used_gate", json_string(t->used_gate));
    json_object_set_new(j, "used_method", json_string(t->used_method));
  }
  return j;
}

/* Replies with the current state of a ticket, or the given error. */
static void reply_ticket(struct api_req *ar, int status, const char *id) {
  struct ledger_rd *rd;
  struct ledger_ticket t;
  int rc = ledger_rd_begin(ar->node->ledger, &rd);
  if (rc == 0) {
    rc = ledger_ticket_get(rd, id, &t);
    ledger_rd_end(rd);
  }
  if (rc != 0)
    api_error(ar, rc, rc == GM_ENOTFOUND ? "no such ticket" : NULL);
  else
    api_reply_json(ar, status, api_ticket_json(&t));
}

static bool is_owner(struct api_req *ar, const struct ledger_ticket *t) {
  return strcmp(ar->who.username, t->holder) == 0;
}

/* Loads the path's ticket and checks the caller may act on it: owners and
 * callers of at least `role`. Replies and returns -1 otherwise. Attendees
 * asking for someone else's ticket get 404, not 403: they learn nothing. */
int api_load_ticket(struct api_req *ar, int role, struct ledger_ticket *t) {
  struct ledger_rd *rd;
  int rc = ledger_rd_begin(ar->node->ledger, &rd);
  if (rc == 0) {
    rc = ledger_ticket_get(rd, ar->params[0], t);
    ledger_rd_end(rd);
  }
  if (rc == 0 && ar->who.role < role && !is_owner(ar, t)) {
    if (ar->who.role == LEDGER_ROLE_ATTENDEE)
      rc = GM_ENOTFOUND;
    else {
      api_problem(ar, 403, "forbidden", "only the holder or an %s may do this",
                  ledger_role_str(role));
      return -1;
    }
  }
  if (rc != 0) {
    api_error(ar, rc, rc == GM_ENOTFOUND ? "no such ticket" : NULL);
    return -1;
  }
  return 0;
}

struct event_state {
  struct ledger_event e;
};

static void event_committed(struct api_req *ar, const struct ledger_result *res) {
  struct event_state *st = ar->state;
  if (res->rc == GM_EEXIST)
    api_problem(ar, 409, "conflict", "event %s exists", st->e.id);
  else if (res->rc != 0)
    api_error(ar, res->rc, NULL);
  else {
    struct ledger_rd *rd;
    int rc = ledger_rd_begin(ar->node->ledger, &rd);
    if (rc == 0) {
      rc = ledger_event_get(rd, res->id, &st->e);
      ledger_rd_end(rd);
    }
    if (rc == 0)
      api_reply_json(ar, 201, api_event_json(&st->e));
    else
      api_error(ar, rc, NULL);
  }
  free(st);
  api_done(ar);
}

void api_events_create(struct api_req *ar) {
  const char *id = NULL, *name, *policy = "strict";
  json_int_t starts, ends, budget = ar->node->cfg.offline_budget, revoke_after = 0,
                           retention = 0;
  json_t *tiers = NULL;
  if (api_unpack(ar, "{s?s, s:s, s:I, s:I, s?s, s?I, s?o, s?I, s?I}", "id", &id, "name", &name,
                 "starts_ms", &starts, "ends_ms", &ends, "offline_policy", &policy,
                 "offline_budget", &budget, "tier_policies", &tiers,
                 "revoke_unscanned_after_ms", &revoke_after, "biometric_retention_ms",
                 &retention) != 0)
    return api_done(ar);
  if (revoke_after < 0 || retention < 0) {
    api_problem(ar, 400, "invalid_field",
                "revoke_unscanned_after_ms and biometric_retention_ms must not be negative");
    return api_done(ar);
  }
  if (tiers != NULL && (!json_is_object(tiers) || json_object_size(tiers) > LEDGER_TIER_POLICIES_MAX)) {
    api_problem(ar, 400, "invalid_field", "tier_policies must be an object of at most %d tiers",
                LEDGER_TIER_POLICIES_MAX);
    return api_done(ar);
  }
  if (id && !api_valid_id(id)) {
    api_problem(ar, 400, "invalid_field", "id must be 1 to %d of letters, digits and ._:@-",
                LEDGER_ID_MAX);
    return api_done(ar);
  }
  if (api_check_len(ar, "name", name, LEDGER_NAME_MAX, true) != 0)
    return api_done(ar);
  int pol = ledger_policy_parse(policy);
  if (pol < 0 || starts < 0 || ends <= starts || budget < 0 || budget > UINT32_MAX) {
    api_problem(ar, 400, "invalid_field",
                pol < 0 ? "offline_policy must be strict or available"
                : budget < 0 || budget > UINT32_MAX ? "offline_budget must be 0 to 4294967295"
                                                    : "need 0 <= starts_ms < ends_ms");
    return api_done(ar);
  }
  struct event_state *st = calloc(1, sizeof *st);
  struct ledger_cmd c = {0};
  node_cmd_init(ar->node, &c, LEDGER_OP_EVENT_CREATE, ar->rid, ar->who.user_id);
  if (id)
    strcpy(c.u.event.id, id);
  else
    new_id(c.u.event.id, "e-");
  strcpy(c.u.event.name, name);
  c.u.event.starts_ms = starts;
  c.u.event.ends_ms = ends;
  c.u.event.policy = pol;
  c.u.event.offline_budget = (uint32_t)budget;
  c.u.event.revoke_unscanned_after_ms = revoke_after;
  c.u.event.bio_retention_ms = retention;
  if (tiers != NULL) {
    const char *tier;
    json_t *v;
    json_object_foreach(tiers, tier, v) {
      int tp = json_is_string(v) ? ledger_policy_parse(json_string_value(v)) : -1;
      if (tp < 0 || strlen(tier) > LEDGER_TIER_MAX) {
        api_problem(ar, 400, "invalid_field",
                    "tier_policies: each tier (at most %d characters) maps to strict or available",
                    LEDGER_TIER_MAX);
        free(st);
        return api_done(ar);
      }
      uint32_t k = c.u.event.n_tier_policy++;
      strcpy(c.u.event.tier_policy[k].tier, tier);
      c.u.event.tier_policy[k].policy = tp;
    }
  }
  st->e = c.u.event;
  ar->state = st;
  api_commit(ar, &c, event_committed);
}

void api_events_get(struct api_req *ar) {
  struct ledger_rd *rd;
  struct ledger_event e;
  int rc = ledger_rd_begin(ar->node->ledger, &rd);
  if (rc == 0) {
    rc = ledger_event_get(rd, ar->params[0], &e);
    ledger_rd_end(rd);
  }
  if (rc != 0)
    api_error(ar, rc, rc == GM_ENOTFOUND ? "no such event" : NULL);
  else
    api_reply_json(ar, 200, api_event_json(&e));
  api_done(ar);
}

/* Validates one ticket object into spec; replies 400 naming index on error. */
static int ticket_spec(struct api_req *ar, json_t *obj, int index,
                       struct ledger_ticket_spec *s) {
  const char *event_id, *holder, *tier = "", *id = NULL;
  json_error_t err;
  char where[32] = "";
  if (index >= 0)
    snprintf(where, sizeof where, "tickets[%d]: ", index);
  if (!json_is_object(obj)) {
    api_problem(ar, 400, "invalid_field", "%sa ticket must be an object", where);
    return -1;
  }
  if (json_unpack_ex(obj, &err, JSON_STRICT, "{s:s, s:s, s?s, s?s}", "event_id", &event_id,
                     "holder", &holder, "tier", &tier, "id", &id) != 0) {
    api_problem(ar,
                400, json_error_code(&err) == json_error_end_of_input_expected
                         ? "unknown_field" : "invalid_field",
                "%s%s", where, err.text);
    return -1;
  }
  if (!api_valid_id(event_id) || (id && !api_valid_id(id))) {
    api_problem(ar, 400, "invalid_field", "%sids must be 1 to %d of letters, digits and ._:@-",
                where, LEDGER_ID_MAX);
    return -1;
  }
  if (strlen(holder) == 0 || strlen(holder) > LEDGER_HOLDER_MAX ||
      strlen(tier) > LEDGER_TIER_MAX) {
    api_problem(ar, 400, "invalid_field", "%sholder must be 1 to %d, tier 0 to %d characters",
                where, LEDGER_HOLDER_MAX, LEDGER_TIER_MAX);
    return -1;
  }
  memset(s, 0, sizeof *s);
  if (id)
    strcpy(s->id, id);
  else
    new_id(s->id, "t-");
  strcpy(s->event_id, event_id);
  strcpy(s->holder, holder);
  strcpy(s->tier, tier);
  return 0;
}

struct tickets_state {
  struct ledger_ticket_spec *v;
  uint32_t n;
  bool batch;
};

static void tickets_committed(struct api_req *ar, const struct ledger_result *res) {
  struct tickets_state *st = ar->state;
  if (res->rc == GM_EEXIST)
    api_problem(ar, 409, "conflict", "a ticket id already exists");
  else if (res->rc == GM_EINVAL)
    api_problem(ar, 400, "invalid_field", "event_id names no event");
  else if (res->rc != 0)
    api_error(ar, res->rc, NULL);
  else if (!st->batch)
    reply_ticket(ar, 201, res->id); /* a retried request's id is the first one's */
  else {
    json_t *ids = json_array();
    for (uint32_t i = 0; i < st->n; i++)
      json_array_append_new(ids, json_string(st->v[i].id));
    api_reply_json(ar, 201, json_pack("{s:I, s:o}", "created", (json_int_t)st->n, "ids", ids));
  }
  free(st->v);
  free(st);
  api_done(ar);
}

static void submit_tickets(struct api_req *ar, struct tickets_state *st) {
  struct ledger_cmd c = {0};
  node_cmd_init(ar->node, &c, LEDGER_OP_TICKET_CREATE, ar->rid, ar->who.user_id);
  c.u.tickets.v = st->v;
  c.u.tickets.n = st->n;
  ar->state = st;
  api_commit(ar, &c, tickets_committed);
}

void api_tickets_create(struct api_req *ar) {
  if (ar->body == NULL) {
    api_problem(ar, 400, "bad_json", "a JSON object body is required");
    return api_done(ar);
  }
  struct tickets_state *st = calloc(1, sizeof *st);
  st->v = calloc(1, sizeof *st->v);
  st->n = 1;
  if (ticket_spec(ar, ar->body, -1, &st->v[0]) != 0) {
    free(st->v);
    free(st);
    return api_done(ar);
  }
  submit_tickets(ar, st);
}

void api_tickets_batch(struct api_req *ar) {
  json_t *arr;
  if (api_unpack(ar, "{s:o}", "tickets", &arr) != 0)
    return api_done(ar);
  if (!json_is_array(arr) || json_array_size(arr) == 0) {
    api_problem(ar, 400, "invalid_field", "tickets must be a non-empty array");
    return api_done(ar);
  }
  if (json_array_size(arr) > LEDGER_BATCH_TICKETS_MAX) {
    api_problem(ar, 413, "payload_too_large", "at most %d tickets per batch",
                LEDGER_BATCH_TICKETS_MAX);
    return api_done(ar);
  }
  struct tickets_state *st = calloc(1, sizeof *st);
  st->n = (uint32_t)json_array_size(arr);
  st->v = calloc(st->n, sizeof *st->v);
  st->batch = true;
  for (uint32_t i = 0; i < st->n; i++)
    if (ticket_spec(ar, json_array_get(arr, i), (int)i, &st->v[i]) != 0) {
      free(st->v);
      free(st);
      return api_done(ar);
    }
  submit_tickets(ar, st);
}

void api_tickets_get(struct api_req *ar) {
  struct ledger_ticket t;
  if (api_load_ticket(ar, LEDGER_ROLE_STAFF, &t) == 0)
    api_reply_json(ar, 200, api_ticket_json(&t));
  api_done(ar);
}

static void changed_committed(struct api_req *ar, const struct ledger_result *res) {
  if (res->rc == GM_ESTATE)
    api_problem(ar, 409, "conflict", "the ticket is used or revoked");
  else if (res->rc != 0)
    api_error(ar, res->rc, NULL);
  else
    reply_ticket(ar, 200, ar->params[0]);
  api_done(ar);
}

void api_tickets_transfer(struct api_req *ar) {
  const char *to;
  if (api_unpack(ar, "{s:s}", "to_holder", &to) != 0 ||
      api_check_len(ar, "to_holder", to, LEDGER_HOLDER_MAX, true) != 0)
    return api_done(ar);
  struct ledger_ticket t;
  if (api_load_ticket(ar, LEDGER_ROLE_ORGANIZER, &t) != 0)
    return api_done(ar);
  struct ledger_cmd c = {0};
  node_cmd_init(ar->node, &c, LEDGER_OP_TICKET_TRANSFER, ar->rid, ar->who.user_id);
  strcpy(c.u.transfer.ticket_id, t.id);
  strcpy(c.u.transfer.to_holder, to);
  api_commit(ar, &c, changed_committed);
}

void api_tickets_revoke(struct api_req *ar) {
  const char *reason = "";
  if ((ar->body && api_unpack(ar, "{s?s}", "reason", &reason) != 0) ||
      api_check_len(ar, "reason", reason, LEDGER_REASON_MAX, false) != 0)
    return api_done(ar);
  struct ledger_ticket t;
  if (api_load_ticket(ar, LEDGER_ROLE_ORGANIZER, &t) != 0)
    return api_done(ar);
  struct ledger_cmd c = {0};
  node_cmd_init(ar->node, &c, LEDGER_OP_TICKET_REVOKE, ar->rid, ar->who.user_id);
  strcpy(c.u.revoke.ticket_id, t.id);
  strcpy(c.u.revoke.reason, reason);
  api_commit(ar, &c, changed_committed);
}
