/*
 * apply.c — ledger_apply_batch: every mutation of the ledger happens here.
 *
 * One batch = one LMDB write transaction = one fsync (group commit).
 *
 * Failure contract of every apply_* function: a command refused for what it
 * says (no such ticket, a duplicate id, a state that forbids it: GM_EINVAL,
 * GM_EEXIST, GM_ESTATE, GM_ENOTFOUND) has written nothing — all checks come
 * before the first write — so it reports its error and the batch goes on.
 * A storage failure (map full, I/O, corrupt record) aborts the whole batch:
 * nothing of it commits and every command in it reports that error. (LMDB's
 * nested transactions would give per-command rollback, but each allocates a
 * 2 MiB dirty-page list; at thousands of commands per batch that cost more
 * than the commands.)
 *
 * Apply reads nothing but the command and the state: the clock is the
 * command's ts_ms, ids and keys are in the command.
 *
 * Dedup: a command whose rid was applied before returns the stored result and
 * changes nothing — the retry of a request whose reply was lost.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "../lib/assert.h"
#include "../lib/err.h"
#include "ledger_int.h"
#include "record.h"

static void be64(uint8_t out[8], uint64_t v) {
  for (int i = 7; i >= 0; i--) {
    out[i] = (uint8_t)v;
    v >>= 8;
  }
}

/* Every record the ledger writes is encoded in l->w first: one that could
 * not be encoded whole (out of memory) fails the batch. */
static int put_rec(struct ledger *l, MDB_txn *txn, int table, const void *key, size_t klen) {
  if (l->w.failed)
    return GM_ENOMEM;
  return ledger__put(txn, l->dbi[table], key, klen, l->w.sb.data, l->w.sb.size);
}

static int ticket_put(struct ledger *l, MDB_txn *txn, const struct ledger_ticket *t) {
  mpk_w_reset(&l->w);
  ledger__ticket_enc(&l->w, t);
  return put_rec(l, txn, LEDGER_T_TICKETS, t->id, strlen(t->id));
}

/* The ticket a cursor of the tickets' table was placed on (ticket_at),
 * rewritten where it is: no second descent of the tree. */
static int ticket_put_at(struct ledger *l, MDB_cursor *cur, const struct ledger_ticket *t) {
  mpk_w_reset(&l->w);
  ledger__ticket_enc(&l->w, t);
  if (l->w.failed)
    return GM_ENOMEM;
  MDB_val k = {strlen(t->id), (void *)t->id}, v = {l->w.sb.size, l->w.sb.data};
  return ledger__mdb_err(mdb_cursor_put(cur, &k, &v, MDB_CURRENT));
}

static int ticket_at(MDB_cursor *cur, const char *id, struct ledger_ticket *t) {
  MDB_val k = {strlen(id), (void *)id}, v;
  int rc = ledger__mdb_err(mdb_cursor_get(cur, &k, &v, MDB_SET_KEY));
  return rc != 0 ? rc : ledger__ticket_dec(v.mv_data, v.mv_size, t);
}

/* Audit keys are a big-endian sequence: l->audit_seq is read once per batch
 * (apply_batch) and each entry is appended at the end of the table. */
static int audit_append(struct ledger *l, MDB_txn *txn, const struct ledger_audit *a) {
  uint8_t key[8];
  be64(key, ++l->audit_seq);
  mpk_w_reset(&l->w);
  ledger__audit_encode(&l->w, a);
  MDB_val k = {sizeof key, key}, v = {l->w.sb.size, l->w.sb.data};
  if (l->w.failed)
    return GM_ENOMEM;
  return ledger__mdb_err(mdb_put(txn, l->dbi[LEDGER_T_AUDIT], &k, &v, MDB_APPEND));
}

static void audit_fill(struct ledger_audit *a, const struct ledger_cmd *c, const char *method,
                       const char *ticket, const char *action, const char *result,
                       const char *reason) {
  memset(a, 0, sizeof *a);
  a->time_ms = c->ts_ms;
  gm_strlcpy(a->gate, sizeof a->gate, c->gate, strlen(c->gate));
  gm_strlcpy(a->method, sizeof a->method, method, strlen(method));
  gm_strlcpy(a->ticket_id, sizeof a->ticket_id, ticket, strlen(ticket));
  gm_strlcpy(a->action, sizeof a->action, action, strlen(action));
  gm_strlcpy(a->result, sizeof a->result, result, strlen(result));
  gm_strlcpy(a->reason, sizeof a->reason, reason, strlen(reason));
}

static int apply_event(struct ledger *l, MDB_txn *txn, const struct ledger_cmd *c) {
  const struct ledger_event *e = &c->u.event;
  if (e->id[0] == 0 || e->ends_ms < e->starts_ms)
    return GM_EINVAL;
  MDB_val v;
  int rc = ledger__get(txn, l->dbi[LEDGER_T_EVENTS], e->id, strlen(e->id), &v);
  if (rc == 0)
    return GM_EEXIST;
  if (rc != GM_ENOTFOUND)
    return rc;
  mpk_w_reset(&l->w);
  ledger__event_enc(&l->w, e);
  return put_rec(l, txn, LEDGER_T_EVENTS, e->id, strlen(e->id));
}

static int spec_cmp(const void *a, const void *b) {
  return strcmp((*(const struct ledger_ticket_spec *const *)a)->id,
                (*(const struct ledger_ticket_spec *const *)b)->id);
}

/* First pass of a ticket batch: every event exists, no id exists already,
 * no id repeats inside the batch. Only then does anything get written. */
static int tickets_check(struct ledger *l, MDB_txn *txn, const struct ledger_cmd *c) {
  const struct ledger_ticket_spec **sorted = malloc(c->u.tickets.n * sizeof *sorted);
  if (sorted == NULL)
    return GM_ENOMEM;
  int rc = 0;
  const char *last_event = NULL;
  for (uint32_t i = 0; i < c->u.tickets.n && rc == 0; i++) {
    const struct ledger_ticket_spec *s = &c->u.tickets.v[i];
    sorted[i] = s;
    MDB_val v;
    if (last_event == NULL || strcmp(last_event, s->event_id) != 0) {
      rc = ledger__get(txn, l->dbi[LEDGER_T_EVENTS], s->event_id, strlen(s->event_id), &v);
      if (rc == GM_ENOTFOUND)
        rc = GM_EINVAL;
      last_event = s->event_id;
      if (rc != 0)
        break;
    }
    rc = ledger__get(txn, l->dbi[LEDGER_T_TICKETS], s->id, strlen(s->id), &v);
    rc = rc == 0 ? GM_EEXIST : rc == GM_ENOTFOUND ? 0 : rc;
  }
  if (rc == 0) {
    qsort(sorted, c->u.tickets.n, sizeof *sorted, spec_cmp);
    for (uint32_t i = 1; i < c->u.tickets.n; i++)
      if (strcmp(sorted[i - 1]->id, sorted[i]->id) == 0) {
        rc = GM_EEXIST;
        break;
      }
  }
  free(sorted);
  return rc;
}

static int apply_tickets(struct ledger *l, MDB_txn *txn, const struct ledger_cmd *c,
                         struct ledger_result *res) {
  int rc = tickets_check(l, txn, c);
  if (rc != 0)
    return rc;
  for (uint32_t i = 0; i < c->u.tickets.n; i++) {
    const struct ledger_ticket_spec *s = &c->u.tickets.v[i];
    struct ledger_ticket t;
    memset(&t, 0, sizeof t);
    memcpy(t.id, s->id, sizeof t.id);
    memcpy(t.event_id, s->event_id, sizeof t.event_id);
    memcpy(t.holder, s->holder, sizeof t.holder);
    memcpy(t.tier, s->tier, sizeof t.tier);
    t.status = LEDGER_TICKET_CREATED;
    t.version = 1;
    t.created_ms = c->ts_ms;
    if ((rc = ticket_put(l, txn, &t)) != 0)
      return rc;
  }
  res->count = c->u.tickets.n;
  res->version = 1;
  return 0;
}

static int apply_transfer(struct ledger *l, MDB_txn *txn, const struct ledger_cmd *c,
                          struct ledger_result *res) {
  struct ledger_ticket t;
  int rc = ledger__ticket_read(txn, l, c->u.transfer.ticket_id, &t);
  if (rc != 0)
    return rc;
  if (t.status == LEDGER_TICKET_USED || t.status == LEDGER_TICKET_REVOKED)
    return GM_ESTATE;
  memcpy(t.holder, c->u.transfer.to_holder, sizeof t.holder);
  t.version++;
  t.status = LEDGER_TICKET_TRANSFERRED;
  res->version = t.version;
  struct ledger_audit a;
  audit_fill(&a, c, "", t.id, "transfer", "ok", "");
  if ((rc = ticket_put(l, txn, &t)) != 0)
    return rc;
  return audit_append(l, txn, &a);
}

static int apply_revoke(struct ledger *l, MDB_txn *txn, const struct ledger_cmd *c,
                        struct ledger_result *res) {
  struct ledger_ticket t;
  int rc = ledger__ticket_read(txn, l, c->u.revoke.ticket_id, &t);
  if (rc != 0)
    return rc;
  if (t.status == LEDGER_TICKET_REVOKED)
    return GM_ESTATE;
  t.status = LEDGER_TICKET_REVOKED;
  res->version = t.version;
  if ((rc = ticket_put(l, txn, &t)) != 0)
    return rc;
  struct ledger_audit a;
  audit_fill(&a, c, "", t.id, "revoke", "ok", c->u.revoke.reason);
  return audit_append(l, txn, &a);
}

static int apply_cred(struct ledger *l, MDB_txn *txn, const struct ledger_cmd *c,
                      struct ledger_result *res) {
  const struct ledger_cred *in = &c->u.cred;
  struct ledger_ticket t;
  int rc = ledger__ticket_read(txn, l, in->ticket_id, &t);
  if (rc != 0)
    return rc;
  if (t.status == LEDGER_TICKET_REVOKED || in->ticket_version != t.version)
    return GM_ESTATE;
  char key[LEDGER_METHOD_MAX + LEDGER_ID_MAX + 2];
  size_t kl = ledger__cred_key(key, in->method, in->id);
  MDB_val v;
  rc = ledger__get(txn, l->dbi[LEDGER_T_CREDS], key, kl, &v);
  if (rc == 0) {
    /* Re-issuing a credential of the same ticket (a fresh QR) refreshes it;
     * an id bound to another ticket (a wristband UID) is a conflict. */
    struct ledger_cred old;
    if ((rc = ledger__cred_dec(v.mv_data, v.mv_size, &old)) != 0)
      return rc;
    if (strcmp(old.ticket_id, in->ticket_id) != 0)
      return GM_EEXIST;
  } else if (rc != GM_ENOTFOUND) {
    return rc;
  }
  mpk_w_reset(&l->w);
  ledger__cred_enc(&l->w, in);
  if ((rc = put_rec(l, txn, LEDGER_T_CREDS, key, kl)) != 0)
    return rc;
  res->version = t.version;
  struct ledger_audit a;
  audit_fill(&a, c, in->method, t.id, "generate", "ok", "");
  return audit_append(l, txn, &a);
}

/* Whether `method` is enabled (no flag: enabled), memoized for the batch. */
static int method_enabled(struct ledger *l, MDB_txn *txn, const char *method, bool *out) {
  for (size_t i = 0; i < l->n_flags; i++)
    if (strcmp(l->flags[i].method, method) == 0) {
      *out = l->flags[i].enabled;
      return 0;
    }
  MDB_val v;
  int rc = ledger__get(txn, l->dbi[LEDGER_T_FLAGS], method, strlen(method), &v);
  if (rc != 0 && rc != GM_ENOTFOUND)
    return rc;
  *out = !(rc == 0 && v.mv_size == 1 && ((const uint8_t *)v.mv_data)[0] == 0);
  if (l->n_flags < sizeof l->flags / sizeof l->flags[0]) {
    gm_strlcpy(l->flags[l->n_flags].method, sizeof l->flags[0].method, method, strlen(method));
    l->flags[l->n_flags++].enabled = *out;
  }
  return 0;
}

/* The single-use decision. First wins: the first REDEEM of a ticket to apply
 * marks it used; every later one gets already_used with the first use. The
 * checks repeat what the gate checked before proposing, because state may
 * have changed in between (a transfer, a revoke, another gate's redeem).
 * A pass step (nonce) at or below the last one the ticket saw is a replay; a
 * fresh step is remembered even when the ticket turns out used. The steps of
 * a pass come from the clock, so they only grow, whichever of the ticket's
 * passes shows them. */
/* 63 bits of BLAKE2b of a request id, never 0 (0 = none known). */
static uint64_t rid_hash(const char *rid) {
  if (rid[0] == 0)
    return 0;
  uint8_t h[8];
  crypto_generichash(h, sizeof h, (const uint8_t *)rid, strlen(rid), NULL, 0);
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = v << 8 | h[i];
  return (v >> 1) | 1;
}

static void incident_key(uint8_t key[16], uint64_t origin, uint64_t pseq) {
  be64(key, origin);
  be64(key + 8, pseq);
}

/* A provisional admission reaching the ledger. It was acknowledged: a person
 * walked in. So it is always recorded, as the ticket's use when the ticket
 * was free, otherwise as an incident (and the ticket deny-listed). t is the
 * ticket cur is placed on; it is rewritten through cur (writes to other
 * tables leave that cursor where it is). */
static int apply_provisional(struct ledger *l, MDB_txn *txn, MDB_cursor *cur,
                             const struct ledger_cmd *c, struct ledger_ticket *t,
                             struct ledger_result *res) {
  const char *method = c->u.redeem.method;
  uint64_t h = rid_hash(c->rid), hs = rid_hash(c->u.redeem.srid);
  uint64_t origin = c->u.redeem.p_origin, pseq = c->u.redeem.p_seq;
  res->reason = LEDGER_REASON_NONE;
  res->version = t->version;
  /* This same admission, recorded before (a replay, or its strict attempt
   * that committed after the gate had stopped waiting for it). */
  if (t->status == LEDGER_TICKET_USED &&
      ((h != 0 && t->used_rid_hash == h) || (hs != 0 && t->used_rid_hash == hs) ||
       (t->used_origin == origin && t->used_pseq == pseq)))
    return 0;
  uint8_t key[16];
  incident_key(key, origin, pseq);
  MDB_val v;
  int rc = ledger__get(txn, l->dbi[LEDGER_T_INCIDENTS], key, sizeof key, &v);
  if (rc == 0)
    return 0; /* its incident is recorded already */
  if (rc != GM_ENOTFOUND)
    return rc;
  const char *kind = NULL;
  if (t->status == LEDGER_TICKET_USED)
    kind = "double_entry";
  else if (t->status == LEDGER_TICKET_REVOKED)
    kind = "revoked";
  else if (c->u.redeem.ticket_version != t->version)
    kind = "superseded";
  else if (c->u.redeem.nonce > 0 && c->u.redeem.nonce <= t->last_nonce)
    kind = "replayed";
  if (c->u.redeem.nonce > t->last_nonce)
    t->last_nonce = c->u.redeem.nonce;
  struct ledger_audit a;
  if (kind == NULL) {
    t->status = LEDGER_TICKET_USED;
    t->used_ms = c->ts_ms;
    memcpy(t->used_gate, c->gate, sizeof t->used_gate);
    memcpy(t->used_method, method, sizeof t->used_method);
    memcpy(t->used_cred, c->u.redeem.cred_id, sizeof t->used_cred);
    t->used_rid_hash = h;
    t->used_origin = origin;
    t->used_pseq = pseq;
    if ((rc = ticket_put_at(l, cur, t)) != 0)
      return rc;
    audit_fill(&a, c, method, t->id, "verify", "admitted", "provisional");
  } else {
    struct ledger_incident x;
    memset(&x, 0, sizeof x);
    x.origin = origin;
    x.pseq = pseq;
    x.epoch = c->u.redeem.p_epoch;
    strcpy(x.kind, kind);
    memcpy(x.ticket_id, t->id, sizeof x.ticket_id);
    if (t->status == LEDGER_TICKET_USED) {
      ledger__use_of(t, &x.first);
      x.first_origin = t->used_origin;
      x.first_pseq = t->used_pseq;
      res->has_first_use = true;
      res->first_use = x.first;
    }
    memcpy(x.second.gate, c->gate, sizeof x.second.gate);
    memcpy(x.second.method, method, sizeof x.second.method);
    memcpy(x.second.cred_id, c->u.redeem.cred_id, sizeof x.second.cred_id);
    x.second.used_ms = c->ts_ms;
    MDB_stat st;
    if ((rc = ledger__mdb_err(mdb_stat(txn, l->dbi[LEDGER_T_INCIDENTS], &st))) != 0)
      return rc;
    x.seq = st.ms_entries + 1;
    mpk_w_reset(&l->w);
    ledger__incident_enc(&l->w, &x);
    if ((rc = put_rec(l, txn, LEDGER_T_INCIDENTS, key, sizeof key)) != 0)
      return rc;
    t->denied = true;
    if ((rc = ticket_put_at(l, cur, t)) != 0)
      return rc;
    audit_fill(&a, c, method, t->id, "incident", kind, "provisional admission conflicts");
  }
  gm_strlcpy(a.device, sizeof a.device, c->u.redeem.device, strlen(c->u.redeem.device));
  gm_strlcpy(a.ip, sizeof a.ip, c->u.redeem.ip, strlen(c->u.redeem.ip));
  return audit_append(l, txn, &a);
}

/* A strict redeem (not a provisional admission) keeps its request id with
 * its ticket rather than in the dedup table: when it admits, the ticket's
 * used_rid_hash names it; when it is refused, its result goes to the dedup
 * table and the ticket says so (rids_kept). A repeat is then found by the
 * ticket read the redeem makes anyway, and the common case, a fresh
 * admission, neither looks up nor writes a request id of its own. */
static bool strict_redeem(const struct ledger_cmd *c) {
  return c->op == LEDGER_OP_REDEEM && c->u.redeem.p_seq == 0;
}

/* The dedup key of an admission whose use an override reset: a zero byte
 * (no request id has one) and its request id's hash. */
static void reset_key(uint8_t key[LEDGER_RESET_KEY], uint64_t h) {
  key[0] = 0;
  be64(key + 1, h);
}

/* The ticket's use was a strict redeem's, named by its request id's hash. */
static bool strict_use(const struct ledger_ticket *t) {
  return t->used_rid_hash != 0 && t->used_pseq == 0 && strcmp(t->used_method, "override") != 0;
}

void ledger__admitted_result(const struct ledger_ticket *t, struct ledger_result *res) {
  memset(res, 0, sizeof *res);
  res->decided_ms = t->used_ms;
  memcpy(res->id, t->id, sizeof res->id);
  res->version = t->version;
}

/* ledger__redeem_seen with the request id's hash h already made. */
static int redeem_seen(struct ledger *l, MDB_txn *txn, const char *rid, uint64_t h,
                       const struct ledger_ticket *t, struct ledger_result *res) {
  if (h == 0)
    return GM_ENOTFOUND;
  if (t != NULL && strict_use(t) && t->used_rid_hash == h) {
    ledger__admitted_result(t, res);
    return 0;
  }
  if (t != NULL && !t->rids_kept)
    return GM_ENOTFOUND;
  MDB_val v;
  int rc = ledger__get(txn, l->dbi[LEDGER_T_DEDUP], rid, strlen(rid), &v);
  if (rc == GM_ENOTFOUND && t != NULL) {
    uint8_t key[LEDGER_RESET_KEY];
    reset_key(key, h);
    rc = ledger__get(txn, l->dbi[LEDGER_T_DEDUP], key, sizeof key, &v);
  }
  if (rc != 0)
    return rc;
  rc = ledger__result_dec(v.mv_data, v.mv_size, res);
  if (rc != 0)
    res->rc = rc;
  return 0;
}

int ledger__redeem_seen(struct ledger *l, MDB_txn *txn, const char *rid,
                        const struct ledger_ticket *t, struct ledger_result *res) {
  return redeem_seen(l, txn, rid, rid_hash(rid), t, res);
}

static int dedup_put(struct ledger *l, MDB_txn *txn, const void *key, size_t klen, int64_t ts_ms,
                     const struct ledger_result *res);
static int dedup_record(struct ledger *l, MDB_txn *txn, const struct ledger_cmd *c,
                        const struct ledger_result *res);

/* cur: a cursor of the tickets' table, which the redeem places on its
 * ticket and rewrites it through. */
static int redeem(struct ledger *l, MDB_txn *txn, MDB_cursor *cur, const struct ledger_cmd *c,
                  struct ledger_result *res) {
  const char *tid = c->u.redeem.ticket_id;
  const char *method = c->u.redeem.method;
  struct ledger_ticket t;
  int reason = LEDGER_REASON_NONE;
  bool strict = strict_redeem(c);
  int rc = ticket_at(cur, tid, &t);
  if (rc != 0 && rc != GM_ENOTFOUND)
    return rc;
  bool have = rc == 0;
  uint64_t h = strict ? rid_hash(c->rid) : 0;
  if (h != 0) {
    struct ledger_result first;
    int src = redeem_seen(l, txn, c->rid, h, have ? &t : NULL, &first);
    if (src == 0) {
      *res = first;
      res->duplicate = true;
      return 0;
    }
    if (src != GM_ENOTFOUND)
      return src;
  }
  if (!have) {
    reason = LEDGER_REASON_UNKNOWN_CREDENTIAL;
    goto verdict;
  }
  if (!strict)
    return apply_provisional(l, txn, cur, c, &t, res);
  bool enabled;
  if ((rc = method_enabled(l, txn, method, &enabled)) != 0)
    return rc;
  if (t.denied) {
    reason = LEDGER_REASON_REVOKED;
    goto verdict;
  }
  if (!enabled) {
    reason = LEDGER_REASON_METHOD_DISABLED;
    goto verdict;
  }
  if (t.status == LEDGER_TICKET_REVOKED) {
    reason = LEDGER_REASON_REVOKED;
    goto verdict;
  }
  if (c->u.redeem.ticket_version != t.version) {
    reason = LEDGER_REASON_SUPERSEDED;
    goto verdict;
  }
  /* Everything a redeem decides and changes is on the ticket, so it reads
   * and rewrites one record. */
  /* An NFC tag's read counter belongs to the tag (its credential record),
   * not the ticket: remembered there, cluster-wide, even when the tap is
   * refused as already used. */
  bool tag_ctr = c->u.redeem.nonce > 0 && strcmp(method, "nfc") == 0;
  if (tag_ctr) {
    char key[LEDGER_METHOD_MAX + LEDGER_ID_MAX + 2];
    size_t kl = ledger__cred_key(key, method, c->u.redeem.cred_id);
    MDB_val v;
    struct ledger_cred cr;
    if ((rc = ledger__get(txn, l->dbi[LEDGER_T_CREDS], key, kl, &v)) != 0 ||
        (rc = ledger__cred_dec(v.mv_data, v.mv_size, &cr)) != 0) {
      if (rc != GM_ENOTFOUND)
        return rc;
      reason = LEDGER_REASON_UNKNOWN_CREDENTIAL;
      goto verdict;
    }
    if (c->u.redeem.nonce <= cr.last_ctr) {
      reason = LEDGER_REASON_REPLAYED;
      goto verdict;
    }
    cr.last_ctr = c->u.redeem.nonce;
    mpk_w_reset(&l->w);
    ledger__cred_enc(&l->w, &cr);
    if ((rc = put_rec(l, txn, LEDGER_T_CREDS, key, kl)) != 0)
      return rc;
  } else if (c->u.redeem.nonce > 0) {
    if (c->u.redeem.nonce <= t.last_nonce) {
      reason = LEDGER_REASON_REPLAYED;
      goto verdict;
    }
    t.last_nonce = c->u.redeem.nonce;
  }
  bool used = t.status == LEDGER_TICKET_USED;
  if (used) {
    reason = LEDGER_REASON_ALREADY_USED;
    res->has_first_use = true;
    ledger__use_of(&t, &res->first_use);
    if (c->u.redeem.nonce > 0 && !tag_ctr && (rc = ticket_put_at(l, cur, &t)) != 0)
      return rc;
  } else {
    t.status = LEDGER_TICKET_USED;
    t.used_ms = c->ts_ms;
    memcpy(t.used_gate, c->gate, sizeof t.used_gate);
    memcpy(t.used_method, method, sizeof t.used_method);
    memcpy(t.used_cred, c->u.redeem.cred_id, sizeof t.used_cred);
    t.used_rid_hash = h;
    if ((rc = ticket_put_at(l, cur, &t)) != 0)
      return rc;
  }

verdict:
  res->reason = reason;
  res->version = t.version;
  if (reason != LEDGER_REASON_NONE && c->rid[0]) {
    /* A refusal is remembered under its request id, and the ticket says
     * that one of its requests is there. */
    if (have && !t.rids_kept) {
      t.rids_kept = true;
      if ((rc = ticket_put_at(l, cur, &t)) != 0)
        return rc;
    }
    if ((rc = dedup_record(l, txn, c, res)) != 0)
      return rc;
  }
  struct ledger_audit a;
  audit_fill(&a, c, method, tid, "verify", reason == LEDGER_REASON_NONE ? "admitted" : "denied",
             ledger_reason_str(reason));
  gm_strlcpy(a.device, sizeof a.device, c->u.redeem.device, strlen(c->u.redeem.device));
  gm_strlcpy(a.ip, sizeof a.ip, c->u.redeem.ip, strlen(c->u.redeem.ip));
  return audit_append(l, txn, &a);
}

static int apply_redeem(struct ledger *l, MDB_txn *txn, const struct ledger_cmd *c,
                        struct ledger_result *res) {
  MDB_cursor *cur;
  int rc = ledger__mdb_err(mdb_cursor_open(txn, l->dbi[LEDGER_T_TICKETS], &cur));
  if (rc != 0)
    return rc;
  rc = redeem(l, txn, cur, c, res);
  mdb_cursor_close(cur);
  return rc;
}

static int apply_toggle(struct ledger *l, MDB_txn *txn, const struct ledger_cmd *c) {
  uint8_t on = c->u.toggle.enabled ? 1 : 0;
  const char *m = c->u.toggle.method;
  int rc = ledger__put(txn, l->dbi[LEDGER_T_FLAGS], m, strlen(m), &on, 1);
  if (rc != 0)
    return rc;
  l->n_flags = 0;
  struct ledger_audit a;
  audit_fill(&a, c, m, "", "toggle", on ? "enabled" : "disabled", "");
  return audit_append(l, txn, &a);
}

static int apply_user(struct ledger *l, MDB_txn *txn, const struct ledger_cmd *c) {
  const struct ledger_user *u = &c->u.user;
  if (u->id[0] == 0 || u->username[0] == 0)
    return GM_EINVAL;
  MDB_val v;
  int rc = ledger__get(txn, l->dbi[LEDGER_T_USERNAMES], u->username, strlen(u->username), &v);
  if (rc == 0)
    return GM_EEXIST;
  if (rc != GM_ENOTFOUND)
    return rc;
  rc = ledger__get(txn, l->dbi[LEDGER_T_USERS], u->id, strlen(u->id), &v);
  if (rc == 0)
    return GM_EEXIST;
  mpk_w_reset(&l->w);
  ledger__user_enc(&l->w, u);
  if ((rc = put_rec(l, txn, LEDGER_T_USERS, u->id, strlen(u->id))) != 0)
    return rc;
  return ledger__put(txn, l->dbi[LEDGER_T_USERNAMES], u->username, strlen(u->username), u->id,
                     strlen(u->id));
}

static int apply_key(struct ledger *l, MDB_txn *txn, const struct ledger_cmd *c) {
  const struct ledger_key *k = &c->u.key;
  uint8_t key[4] = {(uint8_t)(k->kid >> 24), (uint8_t)(k->kid >> 16), (uint8_t)(k->kid >> 8),
                    (uint8_t)k->kid};
  MDB_cursor *cur;
  int rc = ledger__mdb_err(mdb_cursor_open(txn, l->dbi[LEDGER_T_KEYS], &cur));
  if (rc != 0)
    return rc;
  MDB_val ck, cv;
  int mrc = mdb_cursor_get(cur, &ck, &cv, MDB_LAST);
  mdb_cursor_close(cur);
  /* kids only grow: a key added out of order would silently become or stop
   * being the signing key depending on apply order. */
  if (mrc == 0 && memcmp(ck.mv_data, key, 4) >= 0)
    return GM_EEXIST;
  if (k->not_after_ms <= k->not_before_ms)
    return GM_EINVAL;
  mpk_w_reset(&l->w);
  ledger__key_enc(&l->w, k);
  if ((rc = put_rec(l, txn, LEDGER_T_KEYS, key, 4)) != 0)
    return rc;
  struct ledger_audit a;
  audit_fill(&a, c, "", "", "key_add", "ok", "");
  return audit_append(l, txn, &a);
}

static int apply_audit(struct ledger *l, MDB_txn *txn, const struct ledger_cmd *c) {
  for (uint32_t i = 0; i < c->u.audit.n; i++) {
    int rc = audit_append(l, txn, &c->u.audit.v[i]);
    if (rc != 0)
      return rc;
  }
  return 0;
}

static int apply_override(struct ledger *l, MDB_txn *txn, const struct ledger_cmd *c,
                          struct ledger_result *res) {
  const char *tid = c->u.override.ticket_id;
  struct ledger_ticket t;
  int rc = ledger__ticket_read(txn, l, tid, &t);
  if (rc != 0)
    return rc;
  if (t.status == LEDGER_TICKET_REVOKED)
    return GM_ESTATE;
  bool used = t.status == LEDGER_TICKET_USED;
  if (c->u.override.action == LEDGER_OVERRIDE_ADMIT) {
    if (used) {
      res->has_first_use = true;
      ledger__use_of(&t, &res->first_use);
      return GM_ESTATE;
    }
    t.status = LEDGER_TICKET_USED;
    t.used_ms = c->ts_ms;
    memcpy(t.used_gate, c->gate, sizeof t.used_gate);
    strcpy(t.used_method, "override");
    t.used_cred[0] = 0;
    t.used_rid_hash = rid_hash(c->rid);
    t.used_origin = t.used_pseq = 0;
  } else {
    /* The use's request id leaves the ticket; a strict redeem's goes to the
     * dedup table, so that a repeat of it still gets its first answer. */
    if (used && strict_use(&t)) {
      struct ledger_result first;
      ledger__admitted_result(&t, &first);
      uint8_t key[LEDGER_RESET_KEY];
      reset_key(key, t.used_rid_hash);
      if ((rc = dedup_put(l, txn, key, sizeof key, t.used_ms, &first)) != 0)
        return rc;
      t.rids_kept = true;
    }
    t.status = t.version > 1 ? LEDGER_TICKET_TRANSFERRED : LEDGER_TICKET_CREATED;
    t.used_rid_hash = t.used_origin = t.used_pseq = 0;
    t.denied = false; /* a supervisor's decision lifts the deny-list */
    t.used_ms = 0;
    t.used_gate[0] = 0;
    t.used_method[0] = 0;
    t.used_cred[0] = 0;
  }
  res->version = t.version;
  if ((rc = ticket_put(l, txn, &t)) != 0)
    return rc;
  struct ledger_audit a;
  audit_fill(&a, c, "override", tid,
             c->u.override.action == LEDGER_OVERRIDE_ADMIT ? "override_admit" : "override_reset",
             "ok", c->u.override.reason);
  gm_strlcpy(a.device, sizeof a.device, c->actor, strlen(c->actor));
  return audit_append(l, txn, &a);
}

/* Biometric changes are numbered (META "bio_gen") and logged gen -> ticket,
 * so a gate's in-memory index catches up by reading the log past the last
 * change it saw. */
static int bio_bump(struct ledger *l, MDB_txn *txn, const char *ticket, uint64_t *gen) {
  MDB_val v;
  uint64_t g = 0;
  int rc = ledger__get(txn, l->dbi[LEDGER_T_META], "bio_gen", 7, &v);
  if (rc == 0 && v.mv_size == 8)
    memcpy(&g, v.mv_data, 8);
  else if (rc != GM_ENOTFOUND && rc != 0)
    return rc;
  g++;
  if ((rc = ledger__put(txn, l->dbi[LEDGER_T_META], "bio_gen", 7, &g, 8)) != 0)
    return rc;
  uint8_t key[8];
  be64(key, g);
  *gen = g;
  return ledger__put(txn, l->dbi[LEDGER_T_BIO_LOG], key, 8, ticket, strlen(ticket));
}

static int bio_read(struct ledger *l, MDB_txn *txn, const char *ticket, struct ledger_bio *b) {
  MDB_val v;
  int rc = ledger__get(txn, l->dbi[LEDGER_T_BIO], ticket, strlen(ticket), &v);
  if (rc != 0)
    return rc;
  return ledger__bio_dec(v.mv_data, v.mv_size, b) != 0 ? GM_ECORRUPT : 0;
}

static int bio_write(struct ledger *l, MDB_txn *txn, const struct ledger_bio *b) {
  mpk_w_reset(&l->w);
  ledger__bio_enc(&l->w, b);
  return put_rec(l, txn, LEDGER_T_BIO, b->ticket_id, strlen(b->ticket_id));
}

static int apply_bio_enroll(struct ledger *l, MDB_txn *txn, const struct ledger_cmd *c,
                            struct ledger_result *res) {
  struct ledger_ticket t;
  int rc = ledger__ticket_read(txn, l, c->u.bio.ticket_id, &t);
  if (rc != 0)
    return rc;
  if (t.status == LEDGER_TICKET_REVOKED || t.status == LEDGER_TICKET_USED ||
      c->u.bio.ticket_version != t.version)
    return GM_ESTATE;
  if (c->u.bio.ct_len != 24 + 4 * (size_t)c->u.bio.dim + 16 || c->u.bio.ct_len > LEDGER_BIO_CT_MAX)
    return GM_EINVAL;
  struct ledger_bio *b = calloc(1, sizeof *b);
  if (b == NULL)
    return GM_ENOMEM;
  memcpy(b->ticket_id, t.id, sizeof b->ticket_id);
  memcpy(b->event_id, t.event_id, sizeof b->event_id);
  b->ticket_version = t.version;
  b->dim = c->u.bio.dim;
  b->enrolled_ms = c->ts_ms;
  memcpy(b->wrapped, c->u.bio.wrapped, sizeof b->wrapped);
  memcpy(b->ct, c->u.bio.ct, c->u.bio.ct_len);
  b->ct_len = c->u.bio.ct_len;
  rc = bio_bump(l, txn, t.id, &b->gen);
  if (rc == 0)
    rc = bio_write(l, txn, b);
  sodium_memzero(b, sizeof *b);
  free(b);
  if (rc != 0)
    return rc;
  res->version = t.version;
  struct ledger_audit a;
  audit_fill(&a, c, "biometric", t.id, "enroll", "ok", "");
  return audit_append(l, txn, &a);
}

/* Erasure destroys the data key (and the sealed template with it); the
 * record stays as a tombstone saying when and why. */
static int apply_bio_erase(struct ledger *l, MDB_txn *txn, const struct ledger_cmd *c,
                           struct ledger_result *res) {
  struct ledger_bio *b = calloc(1, sizeof *b);
  if (b == NULL)
    return GM_ENOMEM;
  int rc = bio_read(l, txn, c->u.erase.ticket_id, b);
  if (rc == 0 && b->ct_len == 0)
    rc = GM_ESTATE; /* erased already */
  if (rc == 0) {
    sodium_memzero(b->wrapped, sizeof b->wrapped);
    sodium_memzero(b->ct, sizeof b->ct);
    b->ct_len = 0;
    b->erased_ms = c->ts_ms;
    gm_strlcpy(b->erase_reason, sizeof b->erase_reason, c->u.erase.reason,
               strlen(c->u.erase.reason));
    rc = bio_bump(l, txn, b->ticket_id, &b->gen);
    if (rc == 0)
      rc = bio_write(l, txn, b);
  }
  free(b);
  if (rc != 0)
    return rc;
  l->erasures++;
  res->decided_ms = c->ts_ms;
  struct ledger_audit a;
  audit_fill(&a, c, "biometric", c->u.erase.ticket_id, "erase", "ok", c->u.erase.reason);
  return audit_append(l, txn, &a);
}

static int apply_bio_receipt(struct ledger *l, MDB_txn *txn, const struct ledger_cmd *c,
                             struct ledger_result *res) {
  if (c->gate[0] == 0)
    return GM_EINVAL;
  uint32_t n = 0;
  for (uint32_t i = 0; i < c->u.receipts.n; i++) {
    const char *tid = c->u.receipts.v[i];
    MDB_val v;
    int rc = ledger__get(txn, l->dbi[LEDGER_T_BIO], tid, strlen(tid), &v);
    if (rc == GM_ENOTFOUND)
      continue;
    if (rc != 0)
      return rc;
    char key[LEDGER_ID_MAX + LEDGER_GATE_MAX + 2];
    size_t kl = ledger__pair_key(key, tid, c->gate);
    rc = ledger__get(txn, l->dbi[LEDGER_T_BIO_RCPT], key, kl, &v);
    if (rc == 0)
      continue; /* the first receipt stands */
    if (rc != GM_ENOTFOUND)
      return rc;
    uint8_t ts[8];
    be64(ts, (uint64_t)c->ts_ms);
    if ((rc = ledger__put(txn, l->dbi[LEDGER_T_BIO_RCPT], key, kl, ts, 8)) != 0)
      return rc;
    n++;
  }
  res->count = n;
  return 0;
}

static int apply_zone(struct ledger *l, MDB_txn *txn, const struct ledger_cmd *c) {
  const struct ledger_zone *z = &c->u.zone;
  MDB_val v;
  int rc = ledger__get(txn, l->dbi[LEDGER_T_EVENTS], z->event_id, strlen(z->event_id), &v);
  if (rc != 0)
    return rc;
  char key[2 * LEDGER_ID_MAX + 2];
  size_t kl = ledger__pair_key(key, z->event_id, z->id);
  mpk_w_reset(&l->w);
  ledger__zone_enc(&l->w, z);
  if ((rc = put_rec(l, txn, LEDGER_T_ZONES, key, kl)) != 0)
    return rc;
  struct ledger_audit a;
  audit_fill(&a, c, "geofence", "", "zone_set", "ok", z->id);
  return audit_append(l, txn, &a);
}

/* Deletes the listed credentials of one method whose validity has passed,
 * unless one admitted its ticket (the ticket names it as its use). */
static int apply_expire(struct ledger *l, MDB_txn *txn, const struct ledger_cmd *c,
                        struct ledger_result *res) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < c->u.expire.ids.n; i++) {
    char key[LEDGER_METHOD_MAX + LEDGER_ID_MAX + 2];
    size_t kl = ledger__cred_key(key, c->u.expire.method, c->u.expire.ids.v[i]);
    MDB_val v;
    int rc = ledger__get(txn, l->dbi[LEDGER_T_CREDS], key, kl, &v);
    if (rc == GM_ENOTFOUND)
      continue;
    if (rc != 0)
      return rc;
    struct ledger_cred cr;
    if ((rc = ledger__cred_dec(v.mv_data, v.mv_size, &cr)) != 0)
      return rc;
    if (cr.expires_ms == 0 || cr.expires_ms > c->ts_ms)
      continue;
    struct ledger_ticket t;
    rc = ledger__ticket_read(txn, l, cr.ticket_id, &t);
    if (rc != 0 && rc != GM_ENOTFOUND)
      return rc;
    if (rc == 0 && t.status == LEDGER_TICKET_USED && strcmp(t.used_method, cr.method) == 0 &&
        strcmp(t.used_cred, cr.id) == 0)
      continue;
    if ((rc = ledger__del(txn, l->dbi[LEDGER_T_CREDS], key, kl)) != 0)
      return rc;
    struct ledger_audit a;
    audit_fill(&a, c, cr.method, cr.ticket_id, "expire", "ok", "credential expired");
    if ((rc = audit_append(l, txn, &a)) != 0)
      return rc;
    n++;
  }
  res->count = n;
  return 0;
}

static const char *subject_id(const struct ledger_cmd *c) {
  switch (c->op) {
  case LEDGER_OP_EVENT_CREATE: return c->u.event.id;
  case LEDGER_OP_TICKET_CREATE: return c->u.tickets.v[0].id;
  case LEDGER_OP_TICKET_TRANSFER: return c->u.transfer.ticket_id;
  case LEDGER_OP_TICKET_REVOKE: return c->u.revoke.ticket_id;
  case LEDGER_OP_CRED_ISSUE: return c->u.cred.id;
  case LEDGER_OP_REDEEM: return c->u.redeem.ticket_id;
  case LEDGER_OP_USER_ADD: return c->u.user.id;
  case LEDGER_OP_OVERRIDE: return c->u.override.ticket_id;
  case LEDGER_OP_BIO_ENROLL: return c->u.bio.ticket_id;
  case LEDGER_OP_BIO_ERASE: return c->u.erase.ticket_id;
  case LEDGER_OP_ZONE_SET: return c->u.zone.id;
  default: return "";
  }
}

static int dispatch(struct ledger *l, MDB_txn *txn, const struct ledger_cmd *c,
                    struct ledger_result *res) {
  const char *id = subject_id(c);
  gm_strlcpy(res->id, sizeof res->id, id, strlen(id));
  switch (c->op) {
  case LEDGER_OP_EVENT_CREATE: return apply_event(l, txn, c);
  case LEDGER_OP_TICKET_CREATE: return apply_tickets(l, txn, c, res);
  case LEDGER_OP_TICKET_TRANSFER: return apply_transfer(l, txn, c, res);
  case LEDGER_OP_TICKET_REVOKE: return apply_revoke(l, txn, c, res);
  case LEDGER_OP_CRED_ISSUE: return apply_cred(l, txn, c, res);
  case LEDGER_OP_REDEEM: return apply_redeem(l, txn, c, res);
  case LEDGER_OP_METHOD_TOGGLE: return apply_toggle(l, txn, c);
  case LEDGER_OP_USER_ADD: return apply_user(l, txn, c);
  case LEDGER_OP_KEY_ADD: return apply_key(l, txn, c);
  case LEDGER_OP_AUDIT_BATCH: return apply_audit(l, txn, c);
  case LEDGER_OP_OVERRIDE: return apply_override(l, txn, c, res);
  case LEDGER_OP_BIO_ENROLL: return apply_bio_enroll(l, txn, c, res);
  case LEDGER_OP_BIO_ERASE: return apply_bio_erase(l, txn, c, res);
  case LEDGER_OP_BIO_RECEIPT: return apply_bio_receipt(l, txn, c, res);
  case LEDGER_OP_ZONE_SET: return apply_zone(l, txn, c);
  case LEDGER_OP_CRED_EXPIRE: return apply_expire(l, txn, c, res);
  }
  return GM_EINVAL;
}

/* The time of a key of the dedup time index (its first eight bytes). */
static uint64_t key_time(const MDB_val *k) {
  uint64_t ts = 0;
  for (int j = 0; j < 8; j++)
    ts = ts << 8 | ((const uint8_t *)k->mv_data)[j];
  return ts;
}

/* Deletes up to `max` dedup entries older than the TTL as of now_ms. Run once
 * per batch with max = LEDGER_DEDUP_PRUNE_MAX per command in it, which
 * outpaces insertion (one per command) without making any batch unbounded.
 * Deterministic: a batch is the same on every replay (and, in a cluster, is
 * one log entry). A batch whose limit is not past l->dedup_oldest does not
 * look: most batches, as entries expire a day after they were written. */
static int dedup_prune(struct ledger *l, MDB_txn *txn, int64_t now_ms, size_t max) {
  uint64_t limit_ts = (uint64_t)(now_ms > LEDGER_DEDUP_TTL_MS ? now_ms - LEDGER_DEDUP_TTL_MS : 0);
  if (l->dedup_known && l->dedup_oldest >= limit_ts)
    return 0; /* nothing in the index is old enough */
  MDB_cursor *cur;
  int rc = ledger__mdb_err(mdb_cursor_open(txn, l->dbi[LEDGER_T_DEDUP_TS], &cur));
  if (rc != 0)
    return rc;
  uint8_t limit[8];
  be64(limit, limit_ts);
  MDB_val k, v;
  bool expired = false;
  int64_t newest = INT64_MIN;
  /* Keys are in time order: what is left is no older than the first key
   * the loop stops at, or than the last one it deleted. */
  l->dedup_known = false;
  for (size_t i = 0; i < max; i++) {
    int mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    if (mrc == MDB_NOTFOUND) {
      l->dedup_known = true;
      l->dedup_oldest = UINT64_MAX;
      break;
    }
    if (mrc != 0 || k.mv_size < 8) {
      l->dedup_known = false;
      break;
    }
    uint64_t ts = key_time(&k);
    l->dedup_known = true;
    l->dedup_oldest = ts;
    if (memcmp(k.mv_data, limit, 8) >= 0)
      break;
    if ((int64_t)ts > newest)
      newest = (int64_t)ts;
    expired = true;
    MDB_val rid = {k.mv_size - 8, (uint8_t *)k.mv_data + 8};
    int drc = mdb_del(txn, l->dbi[LEDGER_T_DEDUP], &rid, NULL);
    if (drc != 0 && drc != MDB_NOTFOUND) {
      rc = ledger__mdb_err(drc);
      break;
    }
    if ((rc = ledger__mdb_err(mdb_cursor_del(cur, 0))) != 0)
      break;
  }
  mdb_cursor_close(cur);
  if (rc != 0)
    l->dedup_known = false;
  /* The floor moves up to the newest time expired (ledger_dedup_floor);
   * a ledger that does not know its floor goes on not knowing it. */
  const size_t fl = strlen(LEDGER_META_DEDUP_FLOOR);
  int64_t floor;
  if (rc == 0 && expired &&
      ledger__get(txn, l->dbi[LEDGER_T_META], LEDGER_META_DEDUP_FLOOR, fl, &v) == 0 &&
      v.mv_size == sizeof floor) {
    memcpy(&floor, v.mv_data, sizeof floor);
    if (newest > floor)
      rc = ledger__put(txn, l->dbi[LEDGER_T_META], LEDGER_META_DEDUP_FLOOR, fl, &newest,
                       sizeof newest);
  }
  return rc;
}

/* A result under its dedup key, and the key in the time index that expires
 * it after LEDGER_DEDUP_TTL_MS from ts_ms. */
static int dedup_put(struct ledger *l, MDB_txn *txn, const void *key, size_t klen, int64_t ts_ms,
                     const struct ledger_result *res) {
  mpk_w_reset(&l->w);
  ledger__result_enc(&l->w, res);
  int rc = put_rec(l, txn, LEDGER_T_DEDUP, key, klen);
  if (rc != 0)
    return rc;
  uint8_t tkey[8 + LEDGER_RID_MAX];
  be64(tkey, (uint64_t)ts_ms);
  if ((uint64_t)ts_ms < l->dedup_oldest)
    l->dedup_oldest = (uint64_t)ts_ms;
  memcpy(tkey + 8, key, klen);
  return ledger__put(txn, l->dbi[LEDGER_T_DEDUP_TS], tkey, 8 + klen, "", 0);
}

static int dedup_record(struct ledger *l, MDB_txn *txn, const struct ledger_cmd *c,
                        const struct ledger_result *res) {
  return dedup_put(l, txn, c->rid, strlen(c->rid), c->ts_ms, res);
}

static int audit_seq_load(struct ledger *l, MDB_txn *txn) {
  MDB_cursor *cur;
  int rc = ledger__mdb_err(mdb_cursor_open(txn, l->dbi[LEDGER_T_AUDIT], &cur));
  if (rc != 0)
    return rc;
  MDB_val k, v;
  l->audit_seq = 0;
  int mrc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
  if (mrc == 0 && k.mv_size == 8)
    for (int i = 0; i < 8; i++)
      l->audit_seq = l->audit_seq << 8 | ((const uint8_t *)k.mv_data)[i];
  else if (mrc != 0 && mrc != MDB_NOTFOUND)
    rc = ledger__mdb_err(mrc);
  mdb_cursor_close(cur);
  return rc;
}

static bool storage_failure(int rc) {
  return rc == GM_EFULL || rc == GM_EIO || rc == GM_ENOMEM || rc == GM_ECORRUPT;
}

/* Applies one command inside the batch transaction. Returns 0, or a storage
 * failure that must abort the batch. */
static int apply_one(struct ledger *l, MDB_txn *txn, struct gm_slice cmd,
                     struct ledger_result *res, int64_t *batch_ts) {
  memset(res, 0, sizeof *res);
  struct ledger_cmd c;
  int rc = ledger_cmd_decode(cmd.ptr, cmd.len, &c);
  if (rc != 0) {
    res->rc = rc;
    return rc == GM_ENOMEM ? rc : 0;
  }
  res->decided_ms = c.ts_ms;
  bool by_ticket = strict_redeem(&c);
  if (c.rid[0] && !by_ticket) {
    MDB_val v;
    rc = ledger__get(txn, l->dbi[LEDGER_T_DEDUP], c.rid, strlen(c.rid), &v);
    if (rc == 0) {
      rc = ledger__result_dec(v.mv_data, v.mv_size, res);
      res->duplicate = true;
      if (rc != 0)
        res->rc = rc;
      goto out;
    }
    if (rc != GM_ENOTFOUND)
      goto out;
  }
  rc = dispatch(l, txn, &c, res);
  if (res->duplicate)
    goto out; /* a strict redeem's repeat: res is its first result */
  res->rc = rc;
  if (storage_failure(rc))
    goto out;
  /* A refused command is remembered under its rid too, so a retry gets the
   * same answer rather than a different one after the state moved on (a
   * strict redeem's refusal was recorded by apply_redeem). */
  if (c.rid[0] && (!by_ticket || rc != 0) && (rc = dedup_record(l, txn, &c, res)) != 0)
    goto out;
  if (c.ts_ms > *batch_ts)
    *batch_ts = c.ts_ms;
out:
  ledger_cmd_free(&c);
  return storage_failure(rc) ? rc : 0;
}

/* Reads applied_seq from the last committed state. */
void ledger__seq_load(struct ledger *l) {
  MDB_txn *txn;
  l->applied_seq = 0;
  if (mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn) != 0)
    return;
  MDB_val v;
  if (ledger__get(txn, l->dbi[LEDGER_T_META], "applied_seq", 11, &v) == 0 && v.mv_size == 8)
    memcpy(&l->applied_seq, v.mv_data, 8);
  mdb_txn_abort(txn);
}

/* A grouped transaction that ends without its commit takes every batch it
 * held with it: the handle refuses everything from then on. */
static void held_lost(struct ledger *l) {
  l->broken = GM_ESTATE;
  l->held_cmds = 0;
  ledger__seq_load(l);
}

int ledger__settle(struct ledger *l) {
  if (l->held == NULL)
    return l->broken;
  MDB_txn *txn = l->held;
  l->held = NULL;
  l->held_cmds = 0;
  int rc = ledger__mdb_err(mdb_txn_commit(txn));
  if (rc != 0)
    held_lost(l);
  return rc;
}

int ledger_flush(struct ledger *l) { return ledger__settle(l); }

static int apply_batch(struct ledger *l, uint64_t seq, const struct gm_slice *cmds, size_t n,
                       struct ledger_result *results) {
  int rc = l->broken;
  if (rc == 0 && seq != 0 && seq <= l->applied_seq)
    rc = GM_EINVAL; /* nothing written: a held transaction goes on */
  MDB_txn *txn = l->held;
  bool joined = txn != NULL;
  if (rc == 0 && !joined) {
    rc = ledger__mdb_err(mdb_txn_begin(l->env, NULL, 0, &txn));
    /* Audit keys go on from the table's last one; within a transaction
     * l->audit_seq carries them from batch to batch. */
    if (rc == 0 && (rc = audit_seq_load(l, txn)) != 0)
      mdb_txn_abort(txn);
    if (rc == 0) {
      if (mdb_txn_id(txn) != l->dedup_txn + 1)
        l->dedup_known = false;
      l->dedup_txn = mdb_txn_id(txn);
    }
  }
  if (rc == 0) {
    l->held = NULL;
    if (seq != 0)
      rc = ledger__put(txn, l->dbi[LEDGER_T_META], "applied_seq", 11, &seq, 8);
    l->n_flags = 0;
    int64_t batch_ts = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
      rc = apply_one(l, txn, cmds[i], &results[i], &batch_ts);
    if (rc == 0 && batch_ts > 0)
      rc = dedup_prune(l, txn, batch_ts, n * LEDGER_DEDUP_PRUNE_MAX);
    if (rc == 0 && l->group && (l->held_cmds += (n > 0 ? n : 1)) < LEDGER_GROUP_MAX) {
      l->held = txn;
    } else if (rc == 0) {
      l->held_cmds = 0;
      rc = ledger__mdb_err(mdb_txn_commit(txn));
      if (rc != 0 && joined)
        held_lost(l);
    } else {
      mdb_txn_abort(txn);
      if (joined)
        held_lost(l);
    }
    if (rc == 0 && seq != 0)
      l->applied_seq = seq;
  }
  if (rc != 0)
    for (size_t i = 0; i < n; i++) {
      memset(&results[i], 0, sizeof results[i]);
      results[i].rc = rc;
    }
  return rc;
}

int ledger_apply_batch(struct ledger *l, const struct gm_slice *cmds, size_t n,
                       struct ledger_result *results) {
  return apply_batch(l, 0, cmds, n, results);
}

int ledger_apply_batch_at(struct ledger *l, uint64_t seq, const struct gm_slice *cmds, size_t n,
                          struct ledger_result *results) {
  GM_ASSERT(seq > 0);
  return apply_batch(l, seq, cmds, n, results);
}

uint64_t ledger_applied_seq(struct ledger *l) {
  /* Another process may write a ledger opened read-only. */
  if (l->env_flags & MDB_RDONLY)
    ledger__seq_load(l);
  return l->applied_seq;
}

uint64_t ledger_size_bytes(struct ledger *l) {
  MDB_envinfo info;
  MDB_stat st;
  if (mdb_env_info(l->env, &info) != 0 || mdb_env_stat(l->env, &st) != 0)
    return 0;
  return (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
}

int ledger_sync(struct ledger *l) {
  int rc = ledger__settle(l);
  return rc != 0 ? rc : ledger__mdb_err(mdb_env_sync(l->env, 1));
}

int ledger_apply(struct ledger *l, const void *cmd, size_t len, struct ledger_result *res) {
  struct gm_slice s = {cmd, len};
  return ledger_apply_batch(l, &s, 1, res);
}

int ledger_apply_cmd(struct ledger *l, const struct ledger_cmd *c, struct ledger_result *res) {
  struct mpk_w w;
  mpk_w_init(&w);
  ledger_cmd_encode(c, &w);
  int rc = ledger_apply(l, w.sb.data, w.sb.size, res);
  mpk_w_free(&w);
  return rc;
}
