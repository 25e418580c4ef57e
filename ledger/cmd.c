/*
 * cmd.c — msgpack codec of ledger commands (see cmd.h).
 *
 * Decode is the ledger's front door for bytes that came over the network
 * (forwarded commands, Raft entries), so it trusts nothing: unknown op, missing
 * or mistyped field, over-long string, over-long array — all GM_EDECODE, with
 * nothing allocated on the failure path.
 */
#include "cmd.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/assert.h"
#include "../lib/err.h"

const char *ledger_op_str(int op) {
  switch (op) {
#define LEDGER__OP_STR(name, v, s) \
  case v:                          \
    return s;
    LEDGER_OP_TABLE(LEDGER__OP_STR)
#undef LEDGER__OP_STR
  }
  return "unknown";
}

static void enc_audit(struct mpk_w *w, const struct ledger_audit *a) {
  mpk_map(w, 9);
  mpk_kv_i64(w, "t", a->time_ms);
  mpk_kv_str(w, "g", a->gate);
  mpk_kv_str(w, "m", a->method);
  mpk_kv_str(w, "k", a->ticket_id);
  mpk_kv_str(w, "a", a->action);
  mpk_kv_str(w, "r", a->result);
  mpk_kv_str(w, "why", a->reason);
  mpk_kv_str(w, "d", a->device);
  mpk_kv_str(w, "ip", a->ip);
}

int ledger__audit_decode(const msgpack_object *o, struct ledger_audit *a) {
  memset(a, 0, sizeof *a);
  if (mpk_get_i64(o, "t", &a->time_ms) || mpk_get_str(o, "g", a->gate, sizeof a->gate) ||
      mpk_get_str(o, "m", a->method, sizeof a->method) ||
      mpk_get_str(o, "k", a->ticket_id, sizeof a->ticket_id) ||
      mpk_get_str(o, "a", a->action, sizeof a->action) ||
      mpk_get_str(o, "r", a->result, sizeof a->result) ||
      mpk_get_str(o, "why", a->reason, sizeof a->reason) ||
      mpk_get_str(o, "d", a->device, sizeof a->device) ||
      mpk_get_str(o, "ip", a->ip, sizeof a->ip))
    return GM_EDECODE;
  return 0;
}

void ledger__audit_encode(struct mpk_w *w, const struct ledger_audit *a) { enc_audit(w, a); }

static void enc_list(struct mpk_w *w, const char *key, const struct ledger_id_list *l) {
  mpk_str(w, key);
  mpk_arr(w, l->n);
  for (uint32_t i = 0; i < l->n; i++)
    mpk_str(w, l->v[i]);
}

void ledger_cmd_encode(const struct ledger_cmd *c, struct mpk_w *w) {
  uint32_t body;
  switch (c->op) {
  case LEDGER_OP_EVENT_CREATE:
    body = 6 + (c->u.event.n_tier_policy > 0) + (c->u.event.revoke_unscanned_after_ms != 0) +
           (c->u.event.bio_retention_ms != 0);
    break;
  case LEDGER_OP_TICKET_CREATE: body = 1; break;
  case LEDGER_OP_TICKET_TRANSFER: body = 2; break;
  case LEDGER_OP_TICKET_REVOKE: body = 2; break;
  case LEDGER_OP_CRED_ISSUE: body = 6; break;
  case LEDGER_OP_REDEEM: body = 7 + (c->u.redeem.p_seq > 0); break;
  case LEDGER_OP_METHOD_TOGGLE: body = 2; break;
  case LEDGER_OP_USER_ADD: body = 4; break;
  case LEDGER_OP_KEY_ADD: body = 5; break;
  case LEDGER_OP_AUDIT_BATCH: body = 1; break;
  case LEDGER_OP_OVERRIDE: body = 3; break;
  case LEDGER_OP_BIO_ENROLL: body = 5; break;
  case LEDGER_OP_BIO_ERASE: body = 2; break;
  case LEDGER_OP_BIO_RECEIPT: body = 1; break;
  case LEDGER_OP_ZONE_SET: body = 8; break;
  case LEDGER_OP_CRED_EXPIRE: body = 2; break;
  default: GM_UNREACHABLE(); return;
  }
  mpk_map(w, 5 + body);
  mpk_kv_u64(w, "op", (uint64_t)c->op);
  mpk_kv_str(w, "rid", c->rid);
  mpk_kv_i64(w, "ts", c->ts_ms);
  mpk_kv_str(w, "gate", c->gate);
  mpk_kv_str(w, "actor", c->actor);
  switch (c->op) {
  case LEDGER_OP_EVENT_CREATE:
    mpk_kv_str(w, "id", c->u.event.id);
    mpk_kv_str(w, "name", c->u.event.name);
    mpk_kv_i64(w, "starts", c->u.event.starts_ms);
    mpk_kv_i64(w, "ends", c->u.event.ends_ms);
    mpk_kv_u64(w, "policy", (uint64_t)c->u.event.policy);
    mpk_kv_u64(w, "budget", c->u.event.offline_budget);
    if (c->u.event.n_tier_policy > 0) {
      mpk_str(w, "tiers");
      mpk_map(w, c->u.event.n_tier_policy);
      for (uint32_t i = 0; i < c->u.event.n_tier_policy; i++) {
        mpk_str(w, c->u.event.tier_policy[i].tier);
        mpk_u64(w, (uint64_t)c->u.event.tier_policy[i].policy);
      }
    }
    if (c->u.event.revoke_unscanned_after_ms != 0)
      mpk_kv_i64(w, "ru", c->u.event.revoke_unscanned_after_ms);
    if (c->u.event.bio_retention_ms != 0)
      mpk_kv_i64(w, "br", c->u.event.bio_retention_ms);
    break;
  case LEDGER_OP_TICKET_CREATE:
    mpk_str(w, "tickets");
    mpk_arr(w, c->u.tickets.n);
    for (uint32_t i = 0; i < c->u.tickets.n; i++) {
      const struct ledger_ticket_spec *t = &c->u.tickets.v[i];
      mpk_map(w, 4);
      mpk_kv_str(w, "id", t->id);
      mpk_kv_str(w, "ev", t->event_id);
      mpk_kv_str(w, "h", t->holder);
      mpk_kv_str(w, "tier", t->tier);
    }
    break;
  case LEDGER_OP_TICKET_TRANSFER:
    mpk_kv_str(w, "ticket", c->u.transfer.ticket_id);
    mpk_kv_str(w, "to", c->u.transfer.to_holder);
    break;
  case LEDGER_OP_TICKET_REVOKE:
    mpk_kv_str(w, "ticket", c->u.revoke.ticket_id);
    mpk_kv_str(w, "reason", c->u.revoke.reason);
    break;
  case LEDGER_OP_CRED_ISSUE:
    mpk_kv_str(w, "method", c->u.cred.method);
    mpk_kv_str(w, "id", c->u.cred.id);
    mpk_kv_str(w, "ticket", c->u.cred.ticket_id);
    mpk_kv_u64(w, "ver", c->u.cred.ticket_version);
    mpk_kv_i64(w, "exp", c->u.cred.expires_ms);
    mpk_kv_bin(w, "secret", c->u.cred.secret, c->u.cred.secret_len);
    break;
  case LEDGER_OP_REDEEM:
    mpk_kv_str(w, "ticket", c->u.redeem.ticket_id);
    mpk_kv_str(w, "method", c->u.redeem.method);
    mpk_kv_str(w, "cred", c->u.redeem.cred_id);
    mpk_kv_u64(w, "ver", c->u.redeem.ticket_version);
    mpk_kv_u64(w, "nonce", c->u.redeem.nonce);
    mpk_kv_str(w, "dev", c->u.redeem.device);
    mpk_kv_str(w, "ip", c->u.redeem.ip);
    if (c->u.redeem.p_seq > 0) {
      mpk_str(w, "prov");
      mpk_map(w, 4);
      mpk_kv_u64(w, "o", c->u.redeem.p_origin);
      mpk_kv_u64(w, "s", c->u.redeem.p_seq);
      mpk_kv_u64(w, "e", c->u.redeem.p_epoch);
      mpk_kv_str(w, "srid", c->u.redeem.srid);
    }
    break;
  case LEDGER_OP_METHOD_TOGGLE:
    mpk_kv_str(w, "method", c->u.toggle.method);
    mpk_kv_bool(w, "enabled", c->u.toggle.enabled);
    break;
  case LEDGER_OP_USER_ADD:
    mpk_kv_str(w, "id", c->u.user.id);
    mpk_kv_str(w, "username", c->u.user.username);
    mpk_kv_u64(w, "role", (uint64_t)c->u.user.role);
    mpk_kv_str(w, "pwhash", c->u.user.pwhash);
    break;
  case LEDGER_OP_KEY_ADD:
    mpk_kv_u64(w, "kid", c->u.key.kid);
    mpk_kv_bin(w, "pk", c->u.key.pk, sizeof c->u.key.pk);
    mpk_kv_bin(w, "sealed", c->u.key.sealed_sk, c->u.key.sealed_len);
    mpk_kv_i64(w, "nbf", c->u.key.not_before_ms);
    mpk_kv_i64(w, "naf", c->u.key.not_after_ms);
    break;
  case LEDGER_OP_AUDIT_BATCH:
    mpk_str(w, "entries");
    mpk_arr(w, c->u.audit.n);
    for (uint32_t i = 0; i < c->u.audit.n; i++)
      enc_audit(w, &c->u.audit.v[i]);
    break;
  case LEDGER_OP_OVERRIDE:
    mpk_kv_str(w, "ticket", c->u.override.ticket_id);
    mpk_kv_u64(w, "action", (uint64_t)c->u.override.action);
    mpk_kv_str(w, "reason", c->u.override.reason);
    break;
  case LEDGER_OP_BIO_ENROLL:
    mpk_kv_str(w, "ticket", c->u.bio.ticket_id);
    mpk_kv_u64(w, "ver", c->u.bio.ticket_version);
    mpk_kv_u64(w, "dim", c->u.bio.dim);
    mpk_kv_bin(w, "wk", c->u.bio.wrapped, sizeof c->u.bio.wrapped);
    mpk_kv_bin(w, "ct", c->u.bio.ct, c->u.bio.ct_len);
    break;
  case LEDGER_OP_BIO_ERASE:
    mpk_kv_str(w, "ticket", c->u.erase.ticket_id);
    mpk_kv_str(w, "reason", c->u.erase.reason);
    break;
  case LEDGER_OP_BIO_RECEIPT:
    enc_list(w, "tickets", &c->u.receipts);
    break;
  case LEDGER_OP_ZONE_SET: {
    const struct ledger_zone *z = &c->u.zone;
    mpk_kv_str(w, "ev", z->event_id);
    mpk_kv_str(w, "id", z->id);
    mpk_kv_str(w, "zg", z->gate);
    mpk_kv_u64(w, "kind", (uint64_t)z->kind);
    mpk_str(w, "lat");
    mpk_arr(w, z->n_points);
    for (uint32_t i = 0; i < z->n_points; i++)
      mpk_i64(w, z->lat_e7[i]);
    mpk_str(w, "lon");
    mpk_arr(w, z->n_points);
    for (uint32_t i = 0; i < z->n_points; i++)
      mpk_i64(w, z->lon_e7[i]);
    mpk_kv_u64(w, "r", z->radius_m);
    mpk_kv_u64(w, "acc", z->max_accuracy_m);
    break;
  }
  case LEDGER_OP_CRED_EXPIRE:
    mpk_kv_str(w, "method", c->u.expire.method);
    enc_list(w, "ids", &c->u.expire.ids);
    break;
  }
}

static int dec_list(const msgpack_object *m, const char *key, struct ledger_id_list *l) {
  const msgpack_object *a = mpk_get(m, key);
  if (a == NULL || a->type != MSGPACK_OBJECT_ARRAY || a->via.array.size == 0 ||
      a->via.array.size > LEDGER_LIST_MAX)
    return GM_EDECODE;
  l->v = calloc(a->via.array.size, sizeof *l->v);
  if (l->v == NULL)
    return GM_ENOMEM;
  l->n = a->via.array.size;
  for (uint32_t i = 0; i < l->n; i++)
    if (mpk_obj_str(&a->via.array.ptr[i], l->v[i], sizeof l->v[i]) != 0 || l->v[i][0] == 0)
      return GM_EDECODE;
  return 0;
}

/* Coordinates of a zone: n int32 values in 1e-7 degrees within range. */
static int dec_coords(const msgpack_object *m, const char *key, int32_t *out, uint32_t *n,
                      int64_t limit) {
  const msgpack_object *a = mpk_get(m, key);
  if (a == NULL || a->type != MSGPACK_OBJECT_ARRAY || a->via.array.size == 0 ||
      a->via.array.size > LEDGER_ZONE_POINTS_MAX)
    return GM_EDECODE;
  for (uint32_t i = 0; i < a->via.array.size; i++) {
    const msgpack_object *o = &a->via.array.ptr[i];
    int64_t v;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= (uint64_t)limit)
      v = (int64_t)o->via.u64;
    else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER && o->via.i64 >= -limit)
      v = o->via.i64;
    else
      return GM_EDECODE;
    out[i] = (int32_t)v;
  }
  *n = a->via.array.size;
  return 0;
}

#define GET(expr)          \
  do {                     \
    if ((expr) != 0)       \
      goto fail;           \
  } while (0)

static int decode_body(const msgpack_object *m, struct ledger_cmd *c) {
  uint32_t v32;
  switch (c->op) {
  case LEDGER_OP_EVENT_CREATE: {
    struct ledger_event *e = &c->u.event;
    GET(mpk_get_str(m, "id", e->id, sizeof e->id));
    GET(mpk_get_str(m, "name", e->name, sizeof e->name));
    GET(mpk_get_i64(m, "starts", &e->starts_ms));
    GET(mpk_get_i64(m, "ends", &e->ends_ms));
    GET(mpk_get_u32(m, "policy", &v32));
    if (v32 > LEDGER_POLICY_AVAILABLE)
      goto fail;
    e->policy = (int)v32;
    GET(mpk_get_u32(m, "budget", &e->offline_budget));
    e->created_ms = c->ts_ms;
    const msgpack_object *tp = mpk_get(m, "tiers");
    if (tp != NULL) {
      if (tp->type != MSGPACK_OBJECT_MAP || tp->via.map.size == 0 ||
          tp->via.map.size > LEDGER_TIER_POLICIES_MAX)
        goto fail;
      for (uint32_t i = 0; i < tp->via.map.size; i++) {
        const msgpack_object_kv *kv = &tp->via.map.ptr[i];
        if (mpk_obj_str(&kv->key, e->tier_policy[i].tier, sizeof e->tier_policy[i].tier) != 0 ||
            kv->val.type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
            kv->val.via.u64 > LEDGER_POLICY_AVAILABLE)
          goto fail;
        e->tier_policy[i].policy = (int)kv->val.via.u64;
      }
      e->n_tier_policy = tp->via.map.size;
    }
    GET(mpk_opt_i64(m, "ru", &e->revoke_unscanned_after_ms));
    GET(mpk_opt_i64(m, "br", &e->bio_retention_ms));
    if (e->revoke_unscanned_after_ms < 0 || e->bio_retention_ms < 0)
      goto fail;
    return 0;
  }
  case LEDGER_OP_TICKET_CREATE: {
    const msgpack_object *a = mpk_get(m, "tickets");
    if (a == NULL || a->type != MSGPACK_OBJECT_ARRAY || a->via.array.size == 0 ||
        a->via.array.size > LEDGER_BATCH_TICKETS_MAX)
      goto fail;
    c->u.tickets.v = calloc(a->via.array.size, sizeof *c->u.tickets.v);
    if (c->u.tickets.v == NULL)
      return GM_ENOMEM;
    c->u.tickets.n = a->via.array.size;
    for (uint32_t i = 0; i < a->via.array.size; i++) {
      const msgpack_object *t = &a->via.array.ptr[i];
      struct ledger_ticket_spec *s = &c->u.tickets.v[i];
      GET(mpk_get_str(t, "id", s->id, sizeof s->id));
      GET(mpk_get_str(t, "ev", s->event_id, sizeof s->event_id));
      GET(mpk_get_str(t, "h", s->holder, sizeof s->holder));
      GET(mpk_get_str(t, "tier", s->tier, sizeof s->tier));
      if (s->id[0] == 0)
        goto fail;
    }
    return 0;
  }
  case LEDGER_OP_TICKET_TRANSFER:
    GET(mpk_get_str(m, "ticket", c->u.transfer.ticket_id, sizeof c->u.transfer.ticket_id));
    GET(mpk_get_str(m, "to", c->u.transfer.to_holder, sizeof c->u.transfer.to_holder));
    return 0;
  case LEDGER_OP_TICKET_REVOKE:
    GET(mpk_get_str(m, "ticket", c->u.revoke.ticket_id, sizeof c->u.revoke.ticket_id));
    GET(mpk_get_str(m, "reason", c->u.revoke.reason, sizeof c->u.revoke.reason));
    return 0;
  case LEDGER_OP_CRED_ISSUE: {
    struct ledger_cred *cr = &c->u.cred;
    GET(mpk_get_str(m, "method", cr->method, sizeof cr->method));
    GET(mpk_get_str(m, "id", cr->id, sizeof cr->id));
    GET(mpk_get_str(m, "ticket", cr->ticket_id, sizeof cr->ticket_id));
    GET(mpk_get_u32(m, "ver", &cr->ticket_version));
    GET(mpk_get_i64(m, "exp", &cr->expires_ms));
    GET(mpk_get_bin(m, "secret", cr->secret, sizeof cr->secret, &cr->secret_len));
    cr->generated_ms = c->ts_ms;
    return 0;
  }
  case LEDGER_OP_REDEEM:
    GM_UNREACHABLE(); /* decoded in the one pass */
    goto fail;
  case LEDGER_OP_METHOD_TOGGLE:
    GET(mpk_get_str(m, "method", c->u.toggle.method, sizeof c->u.toggle.method));
    GET(mpk_get_bool(m, "enabled", &c->u.toggle.enabled));
    return 0;
  case LEDGER_OP_USER_ADD:
    GET(mpk_get_str(m, "id", c->u.user.id, sizeof c->u.user.id));
    GET(mpk_get_str(m, "username", c->u.user.username, sizeof c->u.user.username));
    GET(mpk_get_u32(m, "role", &v32));
    if (v32 > LEDGER_ROLE_ADMIN)
      goto fail;
    c->u.user.role = (int)v32;
    GET(mpk_get_str(m, "pwhash", c->u.user.pwhash, sizeof c->u.user.pwhash));
    c->u.user.created_ms = c->ts_ms;
    return 0;
  case LEDGER_OP_KEY_ADD: {
    size_t pklen;
    GET(mpk_get_u32(m, "kid", &c->u.key.kid));
    GET(mpk_get_bin(m, "pk", c->u.key.pk, sizeof c->u.key.pk, &pklen));
    if (pklen != sizeof c->u.key.pk)
      goto fail;
    GET(mpk_get_bin(m, "sealed", c->u.key.sealed_sk, sizeof c->u.key.sealed_sk,
                    &c->u.key.sealed_len));
    GET(mpk_get_i64(m, "nbf", &c->u.key.not_before_ms));
    GET(mpk_get_i64(m, "naf", &c->u.key.not_after_ms));
    return 0;
  }
  case LEDGER_OP_AUDIT_BATCH: {
    const msgpack_object *a = mpk_get(m, "entries");
    if (a == NULL || a->type != MSGPACK_OBJECT_ARRAY || a->via.array.size == 0 ||
        a->via.array.size > LEDGER_AUDIT_BATCH_MAX)
      goto fail;
    c->u.audit.v = calloc(a->via.array.size, sizeof *c->u.audit.v);
    if (c->u.audit.v == NULL)
      return GM_ENOMEM;
    c->u.audit.n = a->via.array.size;
    for (uint32_t i = 0; i < a->via.array.size; i++)
      GET(ledger__audit_decode(&a->via.array.ptr[i], &c->u.audit.v[i]));
    return 0;
  }
  case LEDGER_OP_OVERRIDE:
    GET(mpk_get_str(m, "ticket", c->u.override.ticket_id, sizeof c->u.override.ticket_id));
    GET(mpk_get_u32(m, "action", &v32));
    if (v32 > LEDGER_OVERRIDE_RESET)
      goto fail;
    c->u.override.action = (int)v32;
    GET(mpk_get_str(m, "reason", c->u.override.reason, sizeof c->u.override.reason));
    return 0;
  case LEDGER_OP_BIO_ENROLL: {
    size_t wl;
    GET(mpk_get_str(m, "ticket", c->u.bio.ticket_id, sizeof c->u.bio.ticket_id));
    GET(mpk_get_u32(m, "ver", &c->u.bio.ticket_version));
    GET(mpk_get_u32(m, "dim", &c->u.bio.dim));
    GET(mpk_get_bin(m, "wk", c->u.bio.wrapped, sizeof c->u.bio.wrapped, &wl));
    const msgpack_object *ct = mpk_get(m, "ct");
    if (wl != sizeof c->u.bio.wrapped || c->u.bio.dim == 0 ||
        c->u.bio.dim > LEDGER_BIO_DIM_MAX || ct == NULL || ct->type != MSGPACK_OBJECT_BIN ||
        ct->via.bin.size != 24 + 4 * (size_t)c->u.bio.dim + 16)
      goto fail;
    c->u.bio.ct = malloc(ct->via.bin.size);
    if (c->u.bio.ct == NULL)
      return GM_ENOMEM;
    memcpy(c->u.bio.ct, ct->via.bin.ptr, ct->via.bin.size);
    c->u.bio.ct_len = ct->via.bin.size;
    return 0;
  }
  case LEDGER_OP_BIO_ERASE:
    GET(mpk_get_str(m, "ticket", c->u.erase.ticket_id, sizeof c->u.erase.ticket_id));
    GET(mpk_get_str(m, "reason", c->u.erase.reason, sizeof c->u.erase.reason));
    return 0;
  case LEDGER_OP_BIO_RECEIPT: {
    int rc = dec_list(m, "tickets", &c->u.receipts);
    return rc == GM_ENOMEM ? rc : rc != 0 ? GM_EDECODE : 0;
  }
  case LEDGER_OP_ZONE_SET: {
    struct ledger_zone *z = &c->u.zone;
    uint32_t nlon;
    GET(mpk_get_str(m, "ev", z->event_id, sizeof z->event_id));
    GET(mpk_get_str(m, "id", z->id, sizeof z->id));
    GET(mpk_get_str(m, "zg", z->gate, sizeof z->gate));
    GET(mpk_get_u32(m, "kind", &v32));
    if (v32 > LEDGER_ZONE_POLYGON)
      goto fail;
    z->kind = (int)v32;
    GET(dec_coords(m, "lat", z->lat_e7, &z->n_points, 900000000));
    GET(dec_coords(m, "lon", z->lon_e7, &nlon, 1800000000));
    GET(mpk_get_u32(m, "r", &z->radius_m));
    GET(mpk_get_u32(m, "acc", &z->max_accuracy_m));
    if (nlon != z->n_points || z->id[0] == 0 ||
        (z->kind == LEDGER_ZONE_CIRCLE && (z->n_points != 1 || z->radius_m == 0)) ||
        (z->kind == LEDGER_ZONE_POLYGON && z->n_points < 3))
      goto fail;
    return 0;
  }
  case LEDGER_OP_CRED_EXPIRE: {
    GET(mpk_get_str(m, "method", c->u.expire.method, sizeof c->u.expire.method));
    int rc = dec_list(m, "ids", &c->u.expire.ids);
    return rc == GM_ENOMEM ? rc : rc != 0 ? GM_EDECODE : 0;
  }
  }
fail:
  return GM_EDECODE;
}

/* The one pass over a command's map: the header's fields into c, and
 * where a redeem's body values start (a redeem, every scan, is nearly every
 * command, so it decodes here without building an object tree). Unknown
 * keys are skipped; a key given twice is malformed. */
enum {
  F_OP, F_RID, F_TS, F_GATE, F_ACTOR, /* the header */
  F_TICKET, F_METHOD, F_CRED, F_VER, F_NONCE, F_DEV, F_IP, F_PROV, /* a redeem's */
  F__COUNT
};
static const char *const field_name[F__COUNT] = {
    "op", "rid", "ts", "gate", "actor", "ticket", "method", "cred", "ver", "nonce", "dev", "ip",
    "prov"};

static int field_of(const char *k, uint32_t kl) {
  for (int f = 0; f < F__COUNT; f++)
    if (strlen(field_name[f]) == kl && memcmp(field_name[f], k, kl) == 0)
      return f;
  return -1;
}

static int rd_u64(struct mpk_rd *r, uint64_t *v) {
  int64_t x;
  if (mpk_rd_i64(r, &x) != 0 || x < 0)
    return GM_EDECODE;
  *v = (uint64_t)x;
  return 0;
}

/* A provisional redeem's origin, sequence, epoch and strict rid. */
static int dec_prov(struct mpk_rd *r, struct ledger_cmd *c) {
  uint32_t n;
  unsigned seen = 0;
  if (mpk_rd_map(r, &n) != 0)
    return GM_EDECODE;
  for (uint32_t i = 0; i < n; i++) {
    const char *k;
    uint32_t kl;
    if (mpk_rd_str(r, &k, &kl) != 0)
      return GM_EDECODE;
    unsigned bit = kl == 1 && k[0] == 'o' ? 1 : kl == 1 && k[0] == 's' ? 2
                 : kl == 1 && k[0] == 'e' ? 4 : kl == 4 && !memcmp(k, "srid", 4) ? 8 : 0;
    int rc = bit == 1 ? rd_u64(r, &c->u.redeem.p_origin)
           : bit == 2 ? rd_u64(r, &c->u.redeem.p_seq)
           : bit == 4 ? rd_u64(r, &c->u.redeem.p_epoch)
           : bit == 8 ? mpk_rd_strcpy(r, c->u.redeem.srid, sizeof c->u.redeem.srid)
                      : mpk_rd_skip(r);
    if (rc != 0 || (seen & bit) != 0)
      return GM_EDECODE;
    seen |= bit;
  }
  return seen == 15 && c->u.redeem.p_seq != 0 ? 0 : GM_EDECODE;
}

static int dec_redeem(const uint8_t *const at[F__COUNT], const uint8_t *end,
                      struct ledger_cmd *c) {
  struct mpk_rd r[F__COUNT];
  for (int f = F_TICKET; f < F__COUNT; f++)
    r[f] = (struct mpk_rd){at[f], end};
  int64_t nonce;
  if (at[F_PROV] != NULL && dec_prov(&r[F_PROV], c) != 0)
    return GM_EDECODE;
  if (mpk_rd_strcpy(&r[F_TICKET], c->u.redeem.ticket_id, sizeof c->u.redeem.ticket_id) != 0 ||
      mpk_rd_strcpy(&r[F_METHOD], c->u.redeem.method, sizeof c->u.redeem.method) != 0 ||
      mpk_rd_strcpy(&r[F_CRED], c->u.redeem.cred_id, sizeof c->u.redeem.cred_id) != 0 ||
      mpk_rd_u32(&r[F_VER], &c->u.redeem.ticket_version) != 0 ||
      mpk_rd_i64(&r[F_NONCE], &nonce) != 0 || nonce < 0 ||
      mpk_rd_strcpy(&r[F_DEV], c->u.redeem.device, sizeof c->u.redeem.device) != 0 ||
      mpk_rd_strcpy(&r[F_IP], c->u.redeem.ip, sizeof c->u.redeem.ip) != 0)
    return GM_EDECODE;
  c->u.redeem.nonce = (uint64_t)nonce;
  return 0;
}

int ledger_cmd_decode(const void *p, size_t n, struct ledger_cmd *c) {
  memset(c, 0, sizeof *c);
  struct mpk_rd r = {p, (const uint8_t *)p + n};
  const uint8_t *at[F__COUNT] = {NULL};
  uint32_t entries, op = 0;
  if (mpk_rd_map(&r, &entries) != 0)
    return GM_EDECODE;
  for (uint32_t i = 0; i < entries; i++) {
    const char *k;
    uint32_t kl;
    if (mpk_rd_str(&r, &k, &kl) != 0)
      return GM_EDECODE;
    int f = field_of(k, kl), rc;
    if (f >= 0 && at[f] != NULL)
      return GM_EDECODE;
    if (f >= 0)
      at[f] = r.p;
    switch (f) {
    case F_OP: rc = mpk_rd_u32(&r, &op); break;
    case F_RID: rc = mpk_rd_strcpy(&r, c->rid, sizeof c->rid); break;
    case F_TS: rc = mpk_rd_i64(&r, &c->ts_ms); break;
    case F_GATE: rc = mpk_rd_strcpy(&r, c->gate, sizeof c->gate); break;
    case F_ACTOR: rc = mpk_rd_strcpy(&r, c->actor, sizeof c->actor); break;
    default: rc = mpk_rd_skip(&r); break;
    }
    if (rc != 0)
      return GM_EDECODE;
  }
  if (r.p != r.end)
    return GM_EDECODE;
  for (int f = F_OP; f <= F_ACTOR; f++)
    if (at[f] == NULL)
      return GM_EDECODE;
  if (op < LEDGER_OP_EVENT_CREATE || op > LEDGER_OP__LAST || c->ts_ms < 0)
    return GM_EDECODE;
  c->op = (int)op;
  if (c->op == LEDGER_OP_REDEEM) {
    for (int f = F_TICKET; f < F_PROV; f++)
      if (at[f] == NULL)
        return GM_EDECODE;
    return dec_redeem(at, r.end, c);
  }
  /* Any other command's body: through the object tree. */
  struct mpk_doc d;
  int rc = mpk_doc_parse(&d, p, n);
  if (rc != 0)
    return rc;
  rc = decode_body(d.root, c);
  if (rc != 0)
    ledger_cmd_free(c);
  mpk_doc_free(&d);
  return rc;
}

void ledger_cmd_free(struct ledger_cmd *c) {
  if (c->op == LEDGER_OP_TICKET_CREATE) {
    free(c->u.tickets.v);
    c->u.tickets.v = NULL;
    c->u.tickets.n = 0;
  } else if (c->op == LEDGER_OP_AUDIT_BATCH) {
    free(c->u.audit.v);
    c->u.audit.v = NULL;
    c->u.audit.n = 0;
  } else if (c->op == LEDGER_OP_BIO_ENROLL) {
    if (c->u.bio.ct != NULL)
      sodium_memzero(c->u.bio.ct, c->u.bio.ct_len);
    free(c->u.bio.ct);
    c->u.bio.ct = NULL;
    c->u.bio.ct_len = 0;
  } else if (c->op == LEDGER_OP_BIO_RECEIPT) {
    free(c->u.receipts.v);
    c->u.receipts.v = NULL;
    c->u.receipts.n = 0;
  } else if (c->op == LEDGER_OP_CRED_EXPIRE) {
    free(c->u.expire.ids.v);
    c->u.expire.ids.v = NULL;
    c->u.expire.ids.n = 0;
  }
}
