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
  mpk_map(w, 7 + (e->n_tier_policy > 0) + (e->revoke_unscanned_after_ms != 0) +
                 (e->bio_retention_ms != 0));
  mpk_kv_str(w, "id", e->id);
  mpk_kv_str(w, "name", e->name);
  mpk_kv_i64(w, "s", e->starts_ms);
  mpk_kv_i64(w, "e", e->ends_ms);
  mpk_kv_u64(w, "p", (uint64_t)e->policy);
  mpk_kv_u64(w, "b", e->offline_budget);
  mpk_kv_i64(w, "c", e->created_ms);
  if (e->n_tier_policy > 0) {
    mpk_str(w, "tp");
    mpk_map(w, e->n_tier_policy);
    for (uint32_t i = 0; i < e->n_tier_policy; i++) {
      mpk_str(w, e->tier_policy[i].tier);
      mpk_u64(w, (uint64_t)e->tier_policy[i].policy);
    }
  }
  if (e->revoke_unscanned_after_ms != 0)
    mpk_kv_i64(w, "ru", e->revoke_unscanned_after_ms);
  if (e->bio_retention_ms != 0)
    mpk_kv_i64(w, "br", e->bio_retention_ms);
}

/* The hot records (events, tickets, credentials) decode in place with the
 * mpk_rd reader: no object tree, no allocation, one pass over the bytes.
 * Unknown keys are skipped; every known key must be present once. */
#define REC_BEGIN(rec)                                                  \
  struct mpk_rd r = {p, (const uint8_t *)p + n};                        \
  uint32_t entries;                                                     \
  uint32_t seen = 0;                                                    \
  memset(rec, 0, sizeof *rec);                                          \
  if (mpk_rd_map(&r, &entries) != 0)                                    \
    return GM_ECORRUPT;                                                 \
  for (uint32_t i_ = 0; i_ < entries; i_++) {                           \
    const char *key_;                                                   \
    uint32_t keylen_;                                                   \
    int rc_ = 0;                                                        \
    if (mpk_rd_str(&r, &key_, &keylen_) != 0)                           \
      return GM_ECORRUPT;
#define REC_FIELD(idx, name, read)                                      \
    else if (keylen_ == sizeof(name) - 1 && memcmp(key_, name, keylen_) == 0) { \
      rc_ = (read);                                                     \
      seen |= 1u << (idx);                                              \
    }
/* A field that older records lack. */
#define REC_OPT(name, read)                                             \
    else if (keylen_ == sizeof(name) - 1 && memcmp(key_, name, keylen_) == 0) { \
      rc_ = (read);                                                     \
    }
#define REC_END(nfields)                                                \
    else rc_ = mpk_rd_skip(&r);                                         \
    if (rc_ != 0)                                                       \
      return GM_ECORRUPT;                                               \
  }                                                                     \
  if (r.p != r.end || seen != (1u << (nfields)) - 1)                    \
    return GM_ECORRUPT;

static int read_tier_policy(struct mpk_rd *r, struct ledger_event *e) {
  uint32_t n;
  if (mpk_rd_map(r, &n) != 0 || n == 0 || n > LEDGER_TIER_POLICIES_MAX)
    return GM_ECORRUPT;
  for (uint32_t i = 0; i < n; i++) {
    uint32_t pol;
    if (mpk_rd_strcpy(r, e->tier_policy[i].tier, sizeof e->tier_policy[i].tier) != 0 ||
        mpk_rd_u32(r, &pol) != 0 || pol > LEDGER_POLICY_AVAILABLE)
      return GM_ECORRUPT;
    e->tier_policy[i].policy = (int)pol;
  }
  e->n_tier_policy = n;
  return 0;
}

int ledger__event_dec(const void *p, size_t n, struct ledger_event *e) {
  uint32_t pol = 0;
  REC_BEGIN(e)
    if (0) {}
    REC_FIELD(0, "id", mpk_rd_strcpy(&r, e->id, sizeof e->id))
    REC_FIELD(1, "name", mpk_rd_strcpy(&r, e->name, sizeof e->name))
    REC_FIELD(2, "s", mpk_rd_i64(&r, &e->starts_ms))
    REC_FIELD(3, "e", mpk_rd_i64(&r, &e->ends_ms))
    REC_FIELD(4, "p", mpk_rd_u32(&r, &pol))
    REC_FIELD(5, "b", mpk_rd_u32(&r, &e->offline_budget))
    REC_FIELD(6, "c", mpk_rd_i64(&r, &e->created_ms))
    REC_OPT("tp", read_tier_policy(&r, e))
    REC_OPT("ru", mpk_rd_i64(&r, &e->revoke_unscanned_after_ms))
    REC_OPT("br", mpk_rd_i64(&r, &e->bio_retention_ms))
  REC_END(7)
  e->policy = (int)pol;
  return 0;
}

void ledger__ticket_enc(struct mpk_w *w, const struct ledger_ticket *t) {
  mpk_map(w, 12 + (t->used_rid_hash != 0) + 2 * (t->used_pseq != 0) + t->denied +
                 t->rids_kept);
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
  mpk_kv_u64(w, "n", t->last_nonce);
  if (t->used_rid_hash != 0)
    mpk_kv_u64(w, "rh", t->used_rid_hash);
  if (t->used_pseq != 0) {
    mpk_kv_u64(w, "po", t->used_origin);
    mpk_kv_u64(w, "ps", t->used_pseq);
  }
  if (t->denied)
    mpk_kv_bool(w, "dl", true);
  if (t->rids_kept)
    mpk_kv_bool(w, "rk", true);
}

static int rd_u64(struct mpk_rd *r, uint64_t *v) {
  int64_t x;
  int rc = mpk_rd_i64(r, &x);
  *v = (uint64_t)x;
  return rc;
}

int ledger__ticket_dec(const void *p, size_t n, struct ledger_ticket *t) {
  uint32_t st = 0;
  int64_t nonce = 0;
  REC_BEGIN(t)
    if (0) {}
    REC_FIELD(0, "id", mpk_rd_strcpy(&r, t->id, sizeof t->id))
    REC_FIELD(1, "ev", mpk_rd_strcpy(&r, t->event_id, sizeof t->event_id))
    REC_FIELD(2, "h", mpk_rd_strcpy(&r, t->holder, sizeof t->holder))
    REC_FIELD(3, "tier", mpk_rd_strcpy(&r, t->tier, sizeof t->tier))
    REC_FIELD(4, "st", mpk_rd_u32(&r, &st))
    REC_FIELD(5, "v", mpk_rd_u32(&r, &t->version))
    REC_FIELD(6, "c", mpk_rd_i64(&r, &t->created_ms))
    REC_FIELD(7, "u", mpk_rd_i64(&r, &t->used_ms))
    REC_FIELD(8, "ug", mpk_rd_strcpy(&r, t->used_gate, sizeof t->used_gate))
    REC_FIELD(9, "um", mpk_rd_strcpy(&r, t->used_method, sizeof t->used_method))
    REC_FIELD(10, "uc", mpk_rd_strcpy(&r, t->used_cred, sizeof t->used_cred))
    REC_FIELD(11, "n", mpk_rd_i64(&r, &nonce))
    REC_OPT("rh", rd_u64(&r, &t->used_rid_hash))
    REC_OPT("po", rd_u64(&r, &t->used_origin))
    REC_OPT("ps", rd_u64(&r, &t->used_pseq))
    REC_OPT("dl", mpk_rd_bool(&r, &t->denied))
    REC_OPT("rk", mpk_rd_bool(&r, &t->rids_kept))
  REC_END(12)
  t->status = (int)st;
  t->last_nonce = (uint64_t)nonce;
  return 0;
}

void ledger__cred_enc(struct mpk_w *w, const struct ledger_cred *c) {
  mpk_map(w, 7 + (c->last_ctr != 0));
  mpk_kv_str(w, "m", c->method);
  mpk_kv_str(w, "id", c->id);
  mpk_kv_str(w, "k", c->ticket_id);
  mpk_kv_u64(w, "v", c->ticket_version);
  mpk_kv_i64(w, "g", c->generated_ms);
  mpk_kv_i64(w, "x", c->expires_ms);
  mpk_kv_bin(w, "s", c->secret, c->secret_len);
  if (c->last_ctr != 0)
    mpk_kv_u64(w, "lc", c->last_ctr);
}

int ledger__cred_dec(const void *p, size_t n, struct ledger_cred *c) {
  REC_BEGIN(c)
    if (0) {}
    REC_FIELD(0, "m", mpk_rd_strcpy(&r, c->method, sizeof c->method))
    REC_FIELD(1, "id", mpk_rd_strcpy(&r, c->id, sizeof c->id))
    REC_FIELD(2, "k", mpk_rd_strcpy(&r, c->ticket_id, sizeof c->ticket_id))
    REC_FIELD(3, "v", mpk_rd_u32(&r, &c->ticket_version))
    REC_FIELD(4, "g", mpk_rd_i64(&r, &c->generated_ms))
    REC_FIELD(5, "x", mpk_rd_i64(&r, &c->expires_ms))
    REC_FIELD(6, "s", mpk_rd_bincpy(&r, c->secret, sizeof c->secret, &c->secret_len))
    REC_OPT("lc", rd_u64(&r, &c->last_ctr))
  REC_END(7)
  return 0;
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
  size_t pklen = 0;
  REC_BEGIN(k)
    if (0) {}
    REC_FIELD(0, "kid", mpk_rd_u32(&r, &k->kid))
    REC_FIELD(1, "pk", mpk_rd_bincpy(&r, k->pk, sizeof k->pk, &pklen))
    REC_FIELD(2, "s", mpk_rd_bincpy(&r, k->sealed_sk, sizeof k->sealed_sk, &k->sealed_len))
    REC_FIELD(3, "nbf", mpk_rd_i64(&r, &k->not_before_ms))
    REC_FIELD(4, "naf", mpk_rd_i64(&r, &k->not_after_ms))
  REC_END(5)
  return pklen == sizeof k->pk ? 0 : GM_ECORRUPT;
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

void ledger_result_encode(struct mpk_w *w, const struct ledger_result *r) {
  ledger__result_enc(w, r);
}

int ledger_result_decode(const void *p, size_t n, struct ledger_result *r) {
  return ledger__result_dec(p, n, r);
}

static void use_enc(struct mpk_w *w, const char *k, const struct ledger_use *u, uint64_t origin,
                    uint64_t pseq) {
  mpk_str(w, k);
  mpk_map(w, 6);
  mpk_kv_str(w, "g", u->gate);
  mpk_kv_str(w, "m", u->method);
  mpk_kv_str(w, "c", u->cred_id);
  mpk_kv_i64(w, "t", u->used_ms);
  mpk_kv_u64(w, "o", origin);
  mpk_kv_u64(w, "s", pseq);
}

void ledger__incident_enc(struct mpk_w *w, const struct ledger_incident *x) {
  mpk_map(w, 8);
  mpk_kv_u64(w, "n", x->seq);
  mpk_kv_u64(w, "o", x->origin);
  mpk_kv_u64(w, "s", x->pseq);
  mpk_kv_u64(w, "e", x->epoch);
  mpk_kv_str(w, "k", x->kind);
  mpk_kv_str(w, "t", x->ticket_id);
  use_enc(w, "a", &x->first, x->first_origin, x->first_pseq);
  use_enc(w, "b", &x->second, x->origin, x->pseq);
}

static int use_dec(const msgpack_object *m, struct ledger_use *u, uint64_t *origin,
                   uint64_t *pseq) {
  if (m == NULL || mpk_get_str(m, "g", u->gate, sizeof u->gate) != 0 ||
      mpk_get_str(m, "m", u->method, sizeof u->method) != 0 ||
      mpk_get_str(m, "c", u->cred_id, sizeof u->cred_id) != 0 ||
      mpk_get_i64(m, "t", &u->used_ms) != 0 || mpk_get_u64(m, "o", origin) != 0 ||
      mpk_get_u64(m, "s", pseq) != 0)
    return GM_ECORRUPT;
  return 0;
}

int ledger__incident_dec(const void *p, size_t n, struct ledger_incident *x) {
  struct mpk_doc d;
  uint64_t o2, s2;
  memset(x, 0, sizeof *x);
  if (open_doc(&d, p, n))
    return GM_ECORRUPT;
  TRY(mpk_get_u64(d.root, "n", &x->seq));
  TRY(mpk_get_u64(d.root, "o", &x->origin));
  TRY(mpk_get_u64(d.root, "s", &x->pseq));
  TRY(mpk_get_u64(d.root, "e", &x->epoch));
  TRY(mpk_get_str(d.root, "k", x->kind, sizeof x->kind));
  TRY(mpk_get_str(d.root, "t", x->ticket_id, sizeof x->ticket_id));
  TRY(use_dec(mpk_get(d.root, "a"), &x->first, &x->first_origin, &x->first_pseq));
  TRY(use_dec(mpk_get(d.root, "b"), &x->second, &o2, &s2));
  mpk_doc_free(&d);
  return 0;
fail:
  mpk_doc_free(&d);
  return GM_ECORRUPT;
}

void ledger__bio_enc(struct mpk_w *w, const struct ledger_bio *b) {
  mpk_map(w, 10);
  mpk_kv_str(w, "k", b->ticket_id);
  mpk_kv_str(w, "ev", b->event_id);
  mpk_kv_u64(w, "v", b->ticket_version);
  mpk_kv_u64(w, "d", b->dim);
  mpk_kv_i64(w, "t", b->enrolled_ms);
  mpk_kv_bin(w, "wk", b->wrapped, b->ct_len ? sizeof b->wrapped : 0);
  mpk_kv_bin(w, "ct", b->ct, b->ct_len);
  mpk_kv_i64(w, "x", b->erased_ms);
  mpk_kv_str(w, "xr", b->erase_reason);
  mpk_kv_u64(w, "g", b->gen);
}

int ledger__bio_dec(const void *p, size_t n, struct ledger_bio *b) {
  size_t wl = 0;
  REC_BEGIN(b)
    if (0) {}
    REC_FIELD(0, "k", mpk_rd_strcpy(&r, b->ticket_id, sizeof b->ticket_id))
    REC_FIELD(1, "ev", mpk_rd_strcpy(&r, b->event_id, sizeof b->event_id))
    REC_FIELD(2, "d", mpk_rd_u32(&r, &b->dim))
    REC_FIELD(3, "t", mpk_rd_i64(&r, &b->enrolled_ms))
    REC_FIELD(4, "wk", mpk_rd_bincpy(&r, b->wrapped, sizeof b->wrapped, &wl))
    REC_FIELD(5, "ct", mpk_rd_bincpy(&r, b->ct, sizeof b->ct, &b->ct_len))
    REC_FIELD(6, "x", mpk_rd_i64(&r, &b->erased_ms))
    REC_FIELD(7, "xr", mpk_rd_strcpy(&r, b->erase_reason, sizeof b->erase_reason))
    REC_FIELD(8, "g", rd_u64(&r, &b->gen))
    REC_FIELD(9, "v", mpk_rd_u32(&r, &b->ticket_version))
  REC_END(10)
  if (b->dim == 0 || b->dim > LEDGER_BIO_DIM_MAX ||
      (b->ct_len != 0 && (wl != sizeof b->wrapped || b->ct_len != 24 + 4 * (size_t)b->dim + 16)))
    return GM_ECORRUPT;
  return 0;
}

void ledger__zone_enc(struct mpk_w *w, const struct ledger_zone *z) {
  mpk_map(w, 8);
  mpk_kv_str(w, "ev", z->event_id);
  mpk_kv_str(w, "id", z->id);
  mpk_kv_str(w, "g", z->gate);
  mpk_kv_u64(w, "k", (uint64_t)z->kind);
  mpk_kv_bin(w, "la", z->lat_e7, 4 * (size_t)z->n_points);
  mpk_kv_bin(w, "lo", z->lon_e7, 4 * (size_t)z->n_points);
  mpk_kv_u64(w, "r", z->radius_m);
  mpk_kv_u64(w, "a", z->max_accuracy_m);
}

int ledger__zone_dec(const void *p, size_t n, struct ledger_zone *z) {
  uint32_t kind = 0;
  size_t la = 0, lo = 0;
  REC_BEGIN(z)
    if (0) {}
    REC_FIELD(0, "ev", mpk_rd_strcpy(&r, z->event_id, sizeof z->event_id))
    REC_FIELD(1, "id", mpk_rd_strcpy(&r, z->id, sizeof z->id))
    REC_FIELD(2, "g", mpk_rd_strcpy(&r, z->gate, sizeof z->gate))
    REC_FIELD(3, "k", mpk_rd_u32(&r, &kind))
    REC_FIELD(4, "la", mpk_rd_bincpy(&r, (uint8_t *)z->lat_e7, sizeof z->lat_e7, &la))
    REC_FIELD(5, "lo", mpk_rd_bincpy(&r, (uint8_t *)z->lon_e7, sizeof z->lon_e7, &lo))
    REC_FIELD(6, "r", mpk_rd_u32(&r, &z->radius_m))
    REC_FIELD(7, "a", mpk_rd_u32(&r, &z->max_accuracy_m))
  REC_END(8)
  if (kind > LEDGER_ZONE_POLYGON || la != lo || la % 4 != 0 || la == 0)
    return GM_ECORRUPT;
  z->kind = (int)kind;
  z->n_points = (uint32_t)(la / 4);
  return 0;
}
