/*
 * record.c — msgpack codecs of the records the ledger stores. Short keys keep
 * a ticket near 100 bytes on disk.
 */
#include "record.h"

#include <string.h>

#include "../lib/err.h"

#define TRY(expr)          \
  do {                     \
    if ((expr) != 0)       \
      goto fail;           \
  } while (0)

static int open_doc(struct mpk_doc *d, const void *p, size_t n) {
  return mpk_doc_parse(d, p, n) == 0 ? 0 : GM_ECORRUPT;
}

void ledger__event_enc(struct mpk_w *w, const struct ledger_event *e) {
  mpk_map(w, 7);
  mpk_kv_str(w, "id", e->id);
  mpk_kv_str(w, "name", e->name);
  mpk_kv_i64(w, "s", e->starts_ms);
  mpk_kv_i64(w, "e", e->ends_ms);
  mpk_kv_u64(w, "p", (uint64_t)e->policy);
  mpk_kv_u64(w, "b", e->offline_budget);
  mpk_kv_i64(w, "c", e->created_ms);
}

int ledger__event_dec(const void *p, size_t n, struct ledger_event *e) {
  struct mpk_doc d;
  uint32_t pol;
  memset(e, 0, sizeof *e);
  if (open_doc(&d, p, n))
    return GM_ECORRUPT;
  TRY(mpk_get_str(d.root, "id", e->id, sizeof e->id));
  TRY(mpk_get_str(d.root, "name", e->name, sizeof e->name));
  TRY(mpk_get_i64(d.root, "s", &e->starts_ms));
  TRY(mpk_get_i64(d.root, "e", &e->ends_ms));
  TRY(mpk_get_u32(d.root, "p", &pol));
  e->policy = (int)pol;
  TRY(mpk_get_u32(d.root, "b", &e->offline_budget));
  TRY(mpk_get_i64(d.root, "c", &e->created_ms));
  mpk_doc_free(&d);
  return 0;
fail:
  mpk_doc_free(&d);
  return GM_ECORRUPT;
}

void ledger__ticket_enc(struct mpk_w *w, const struct ledger_ticket *t) {
  mpk_map(w, 11);
  mpk_kv_str(w, "id", t->id);
  mpk_kv_str(w, "ev", t->event_id);
  mpk_kv_str(w, "h", t->holder);
  mpk_kv_str(w, "tier", t->tier);
  mpk_kv_u64(w, "st", (uint64_t)t->status);
  mpk_kv_u64(w, "v", t->version);
  mpk_kv_i64(w, "c", t->created_ms);
  mpk_kv_i64(w, "u", t->used_ms);
  mpk_kv_str(w, "ug", t->used_gate);
  mpk_kv_str(w, "um", t->used_method);
  mpk_kv_str(w, "uc", t->used_cred);
}

int ledger__ticket_dec(const void *p, size_t n, struct ledger_ticket *t) {
  struct mpk_doc d;
  uint32_t st;
  memset(t, 0, sizeof *t);
  if (open_doc(&d, p, n))
    return GM_ECORRUPT;
  TRY(mpk_get_str(d.root, "id", t->id, sizeof t->id));
  TRY(mpk_get_str(d.root, "ev", t->event_id, sizeof t->event_id));
  TRY(mpk_get_str(d.root, "h", t->holder, sizeof t->holder));
  TRY(mpk_get_str(d.root, "tier", t->tier, sizeof t->tier));
  TRY(mpk_get_u32(d.root, "st", &st));
  t->status = (int)st;
  TRY(mpk_get_u32(d.root, "v", &t->version));
  TRY(mpk_get_i64(d.root, "c", &t->created_ms));
  TRY(mpk_get_i64(d.root, "u", &t->used_ms));
  TRY(mpk_get_str(d.root, "ug", t->used_gate, sizeof t->used_gate));
  TRY(mpk_get_str(d.root, "um", t->used_method, sizeof t->used_method));
  TRY(mpk_get_str(d.root, "uc", t->used_cred, sizeof t->used_cred));
  mpk_doc_free(&d);
  return 0;
fail:
  mpk_doc_free(&d);
  return GM_ECORRUPT;
}

void ledger__cred_enc(struct mpk_w *w, const struct ledger_cred *c) {
  mpk_map(w, 10);
  mpk_kv_str(w, "m", c->method);
  mpk_kv_str(w, "id", c->id);
  mpk_kv_str(w, "k", c->ticket_id);
  mpk_kv_u64(w, "v", c->ticket_version);
  mpk_kv_i64(w, "g", c->generated_ms);
  mpk_kv_i64(w, "x", c->expires_ms);
  mpk_kv_i64(w, "u", c->used_ms);
  mpk_kv_str(w, "ug", c->used_gate);
  mpk_kv_bin(w, "s", c->secret, c->secret_len);
  mpk_kv_u64(w, "n", c->last_nonce);
}

int ledger__cred_dec(const void *p, size_t n, struct ledger_cred *c) {
  struct mpk_doc d;
  memset(c, 0, sizeof *c);
  if (open_doc(&d, p, n))
    return GM_ECORRUPT;
  TRY(mpk_get_str(d.root, "m", c->method, sizeof c->method));
  TRY(mpk_get_str(d.root, "id", c->id, sizeof c->id));
  TRY(mpk_get_str(d.root, "k", c->ticket_id, sizeof c->ticket_id));
  TRY(mpk_get_u32(d.root, "v", &c->ticket_version));
  TRY(mpk_get_i64(d.root, "g", &c->generated_ms));
  TRY(mpk_get_i64(d.root, "x", &c->expires_ms));
  TRY(mpk_get_i64(d.root, "u", &c->used_ms));
  TRY(mpk_get_str(d.root, "ug", c->used_gate, sizeof c->used_gate));
  TRY(mpk_get_bin(d.root, "s", c->secret, sizeof c->secret, &c->secret_len));
  int64_t nonce;
  TRY(mpk_get_i64(d.root, "n", &nonce));
  c->last_nonce = (uint64_t)nonce;
  mpk_doc_free(&d);
  return 0;
fail:
  mpk_doc_free(&d);
  return GM_ECORRUPT;
}

void ledger__user_enc(struct mpk_w *w, const struct ledger_user *u) {
  mpk_map(w, 5);
  mpk_kv_str(w, "id", u->id);
  mpk_kv_str(w, "n", u->username);
  mpk_kv_u64(w, "r", (uint64_t)u->role);
  mpk_kv_str(w, "pw", u->pwhash);
  mpk_kv_i64(w, "c", u->created_ms);
}

int ledger__user_dec(const void *p, size_t n, struct ledger_user *u) {
  struct mpk_doc d;
  uint32_t role;
  memset(u, 0, sizeof *u);
  if (open_doc(&d, p, n))
    return GM_ECORRUPT;
  TRY(mpk_get_str(d.root, "id", u->id, sizeof u->id));
  TRY(mpk_get_str(d.root, "n", u->username, sizeof u->username));
  TRY(mpk_get_u32(d.root, "r", &role));
  u->role = (int)role;
  TRY(mpk_get_str(d.root, "pw", u->pwhash, sizeof u->pwhash));
  TRY(mpk_get_i64(d.root, "c", &u->created_ms));
  mpk_doc_free(&d);
  return 0;
fail:
  mpk_doc_free(&d);
  return GM_ECORRUPT;
}

void ledger__key_enc(struct mpk_w *w, const struct ledger_key *k) {
  mpk_map(w, 5);
  mpk_kv_u64(w, "kid", k->kid);
  mpk_kv_bin(w, "pk", k->pk, sizeof k->pk);
  mpk_kv_bin(w, "s", k->sealed_sk, k->sealed_len);
  mpk_kv_i64(w, "nbf", k->not_before_ms);
  mpk_kv_i64(w, "naf", k->not_after_ms);
}

int ledger__key_dec(const void *p, size_t n, struct ledger_key *k) {
  struct mpk_doc d;
  size_t pklen;
  memset(k, 0, sizeof *k);
  if (open_doc(&d, p, n))
    return GM_ECORRUPT;
  TRY(mpk_get_u32(d.root, "kid", &k->kid));
  TRY(mpk_get_bin(d.root, "pk", k->pk, sizeof k->pk, &pklen));
  TRY(mpk_get_bin(d.root, "s", k->sealed_sk, sizeof k->sealed_sk, &k->sealed_len));
  TRY(mpk_get_i64(d.root, "nbf", &k->not_before_ms));
  TRY(mpk_get_i64(d.root, "naf", &k->not_after_ms));
  mpk_doc_free(&d);
  return pklen == sizeof k->pk ? 0 : GM_ECORRUPT;
fail:
  mpk_doc_free(&d);
  return GM_ECORRUPT;
}

void ledger__result_enc(struct mpk_w *w, const struct ledger_result *r) {
  mpk_map(w, 10);
  mpk_kv_i64(w, "rc", r->rc);
  mpk_kv_str(w, "id", r->id);
  mpk_kv_u64(w, "why", (uint64_t)r->reason);
  mpk_kv_i64(w, "t", r->decided_ms);
  mpk_kv_bool(w, "fu", r->has_first_use);
  mpk_kv_str(w, "fg", r->first_use.gate);
  mpk_kv_str(w, "fm", r->first_use.method);
  mpk_kv_i64(w, "ft", r->first_use.used_ms);
  mpk_kv_u64(w, "n", r->count);
  mpk_kv_u64(w, "v", r->version);
}

int ledger__result_dec(const void *p, size_t n, struct ledger_result *r) {
  struct mpk_doc d;
  int64_t rc;
  uint32_t why;
  memset(r, 0, sizeof *r);
  if (open_doc(&d, p, n))
    return GM_ECORRUPT;
  TRY(mpk_get_i64(d.root, "rc", &rc));
  r->rc = (int)rc;
  TRY(mpk_get_u32(d.root, "why", &why));
  r->reason = (int)why;
  TRY(mpk_get_i64(d.root, "t", &r->decided_ms));
  TRY(mpk_get_bool(d.root, "fu", &r->has_first_use));
  TRY(mpk_get_str(d.root, "fg", r->first_use.gate, sizeof r->first_use.gate));
  TRY(mpk_get_str(d.root, "fm", r->first_use.method, sizeof r->first_use.method));
  TRY(mpk_get_i64(d.root, "ft", &r->first_use.used_ms));
  TRY(mpk_get_u32(d.root, "n", &r->count));
  TRY(mpk_get_u32(d.root, "v", &r->version));
  TRY(mpk_get_str(d.root, "id", r->id, sizeof r->id));
  mpk_doc_free(&d);
  return 0;
fail:
  mpk_doc_free(&d);
  return GM_ECORRUPT;
}
