/*
 * api_bio.c — biometric enrolment status and erasure, geofence zones.
 *
 *   GET    /tickets/{id}/methods/biometric   enrolled or erased, and every
 *                                            gate's erasure receipt
 *   DELETE /tickets/{id}/methods/biometric   erase (holder or organizer)
 *   POST   /events/{id}/zones                add or replace an entry zone
 *   GET    /events/{id}/zones
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/err.h"
#include "../methods/geofence.h"
#include "api.h"

static int receipt_json(void *arg, const struct ledger_bio_receipt *r) {
  json_array_append_new(arg, json_pack("{s:s, s:I}", "gate", r->gate, "erased_ms",
                                       (json_int_t)r->erased_ms));
  return 0;
}

static json_t *bio_status(struct ledger_rd *rd, const char *ticket_id, int *rc) {
  struct ledger_bio *b = malloc(sizeof *b);
  if (b == NULL) {
    *rc = GM_ENOMEM;
    return NULL;
  }
  json_t *o = NULL;
  *rc = ledger_bio_get(rd, ticket_id, b);
  if (*rc == 0) {
    json_t *rcpts = json_array();
    ledger_bio_receipt_each(rd, ticket_id, receipt_json, rcpts);
    o = json_pack("{s:s, s:b, s:I, s:I, s:o}", "ticket_id", ticket_id, "enrolled",
                  b->ct_len > 0, "enrolled_ms", (json_int_t)b->enrolled_ms, "dim",
                  (json_int_t)b->dim, "receipts", rcpts);
    if (o && b->ct_len == 0) {
      json_object_set_new(o, "erased_ms", json_integer(b->erased_ms));
      json_object_set_new(o, "erase_reason", json_string(b->erase_reason));
    }
  }
  sodium_memzero(b, sizeof *b);
  free(b);
  return o;
}

void api_bio_get(struct api_req *ar) {
  struct ledger_ticket t;
  if (api_load_ticket(ar, LEDGER_ROLE_STAFF, &t) != 0)
    return api_done(ar);
  struct ledger_rd *rd;
  int rc = ledger_rd_begin(ar->node->ledger, &rd);
  json_t *o = NULL;
  if (rc == 0) {
    o = bio_status(rd, t.id, &rc);
    ledger_rd_end(rd);
  }
  if (rc != 0)
    api_error(ar, rc, rc == GM_ENOTFOUND ? "no biometric template was enrolled" : NULL);
  else
    api_reply_json(ar, 200, o);
  api_done(ar);
}

static void erase_committed(struct api_req *ar, const struct ledger_result *res) {
  if (res->rc == GM_ENOTFOUND)
    api_problem(ar, 404, "not_found", "no biometric template was enrolled");
  else if (res->rc == GM_ESTATE)
    api_problem(ar, 409, "conflict", "the template was erased already");
  else if (res->rc != 0)
    api_error(ar, res->rc, NULL);
  else
    api_reply_json(ar, 200,
                   json_pack("{s:s, s:b, s:I}", "ticket_id", ar->params[0], "erased", 1,
                             "erased_ms", (json_int_t)res->decided_ms));
  api_done(ar);
}

void api_bio_erase(struct api_req *ar) {
  struct ledger_ticket t;
  if (api_load_ticket(ar, LEDGER_ROLE_ORGANIZER, &t) != 0)
    return api_done(ar);
  struct ledger_cmd c = {0};
  node_cmd_init(ar->node, &c, LEDGER_OP_BIO_ERASE, ar->rid, ar->who.user_id);
  strcpy(c.u.erase.ticket_id, t.id);
  strcpy(c.u.erase.reason, "request");
  api_commit(ar, &c, erase_committed);
}

static void zone_committed(struct api_req *ar, const struct ledger_result *res) {
  json_t *z = ar->state;
  if (res->rc == GM_ENOTFOUND)
    api_problem(ar, 404, "not_found", "no such event");
  else if (res->rc != 0)
    api_error(ar, res->rc, NULL);
  else {
    api_reply_json(ar, 201, z);
    z = NULL;
  }
  json_decref(z);
  api_done(ar);
}

void api_zones_set(struct api_req *ar) {
  struct method_env env;
  int rc = node_env_begin(ar->node, &env);
  if (rc != 0) {
    api_error(ar, rc, NULL);
    return api_done(ar);
  }
  struct ledger_event e;
  rc = ledger_event_get(env.rd, ar->params[0], &e);
  struct ledger_cmd c = {0};
  if (rc == 0)
    rc = geo_zone_parse(&env, ar->body, e.id, &c.u.zone);
  node_env_end(&env);
  if (rc != 0) {
    api_error(ar, rc, rc == GM_EINVAL ? env.err : rc == GM_ENOTFOUND ? "no such event" : NULL);
    return api_done(ar);
  }
  struct ledger_zone z = c.u.zone;
  node_cmd_init(ar->node, &c, LEDGER_OP_ZONE_SET, ar->rid, ar->who.user_id);
  c.u.zone = z;
  ar->state = geo_zone_json(&z);
  api_commit(ar, &c, zone_committed);
}

static int zone_json(void *arg, const struct ledger_zone *z) {
  json_array_append_new(arg, geo_zone_json(z));
  return 0;
}

void api_zones_get(struct api_req *ar) {
  struct ledger_rd *rd;
  json_t *arr = json_array();
  struct ledger_event e;
  int rc = ledger_rd_begin(ar->node->ledger, &rd);
  if (rc == 0) {
    rc = ledger_event_get(rd, ar->params[0], &e);
    if (rc == 0)
      rc = ledger_zone_each(rd, e.id, zone_json, arr);
    ledger_rd_end(rd);
  }
  if (rc != 0) {
    json_decref(arr);
    api_error(ar, rc, rc == GM_ENOTFOUND ? "no such event" : NULL);
  } else {
    api_reply_json(ar, 200, json_pack("{s:s, s:o}", "event_id", e.id, "zones", arr));
  }
  api_done(ar);
}
