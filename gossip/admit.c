/*
 * admit.c — the admission policy (see admit.h).
 */
#include "gossip/admit.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

void admit_decide(const struct admit_input *in, struct admit_decision *out) {
  out->action = ADMIT_DENY;
  out->reason = LEDGER_REASON_NONE;
  if (in->heard != NULL) {
    out->reason = LEDGER_REASON_ALREADY_USED;
    return;
  }
  if (in->leader_reachable) {
    out->action = ADMIT_STRICT;
    return;
  }
  if (in->policy != LEDGER_POLICY_AVAILABLE) {
    out->reason = LEDGER_REASON_NO_QUORUM;
    return;
  }
  if (in->used >= in->budget || in->store_full) {
    out->reason = LEDGER_REASON_BUDGET_EXHAUSTED;
    return;
  }
  out->action = ADMIT_PROVISIONAL;
}

void admit_budget_init(struct admit_budget *b, uint64_t epoch) {
  memset(b, 0, sizeof *b);
  b->epoch = epoch;
}

void admit_budget_epoch(struct admit_budget *b, uint64_t epoch) {
  if (epoch != b->epoch)
    admit_budget_init(b, epoch);
}

uint32_t admit_budget_used(const struct admit_budget *b, const char *event_id) {
  for (uint32_t i = 0; i < b->n; i++)
    if (strcmp(b->ev[i].event_id, event_id) == 0)
      return b->ev[i].used;
  return 0;
}

bool admit_budget_take(struct admit_budget *b, const char *event_id) {
  for (uint32_t i = 0; i < b->n; i++)
    if (strcmp(b->ev[i].event_id, event_id) == 0) {
      b->ev[i].used++;
      return true;
    }
  if (b->n == ADMIT_EVENTS_MAX || strlen(event_id) > LEDGER_ID_MAX)
    return false;
  strcpy(b->ev[b->n].event_id, event_id);
  b->ev[b->n].used = 1;
  b->n++;
  return true;
}

void admit_prov_rid(char out[LEDGER_RID_MAX + 1], uint64_t origin, uint64_t seq) {
  snprintf(out, LEDGER_RID_MAX + 1, "p-%" PRIx64 "-%" PRIu64, origin, seq);
}

/* floor: ledger_dedup_floor. A provisional redeem, applied, leaves a dedup
 * entry under its request id, whatever it decided (an admission, a replay
 * of one, an incident), stamped with the record's time; only its expiry
 * removes it. So for a record newer than every expired entry, the dedup
 * table alone answers. */
static bool in_ledger(struct ledger_rd *rd, const struct prov_rec *r, int64_t floor) {
  char rid[LEDGER_RID_MAX + 1];
  admit_prov_rid(rid, r->origin, r->seq);
  struct ledger_result res;
  if (ledger_dedup_get(rd, rid, &res) == 0)
    return true;
  if (r->time_ms > floor)
    return false;
  struct ledger_incident x;
  if (ledger_incident_get(rd, r->origin, r->seq, &x) == 0)
    return true;
  /* Its dedup entry expired: the ticket's use names it. */
  char tid[LEDGER_ID_MAX + 1];
  struct ledger_ticket t;
  if (r->key_len > LEDGER_ID_MAX)
    return false;
  memcpy(tid, r->key, r->key_len);
  tid[r->key_len] = 0;
  return ledger_ticket_get(rd, tid, &t) == 0 && t.used_origin == r->origin &&
         t.used_pseq == r->seq;
}

bool admit_in_ledger(struct ledger_rd *rd, const struct prov_rec *r) {
  return in_ledger(rd, r, ledger_dedup_floor(rd));
}

void admit_prune_settled(struct prov *p, uint64_t self, struct ledger_rd *rd) {
  uint64_t ids[PROV_ORIGINS_MAX];
  size_t n = prov_origins(p, ids, PROV_ORIGINS_MAX);
  int64_t floor = ledger_dedup_floor(rd);
  for (size_t i = 0; i < n; i++) {
    if (ids[i] == self)
      continue;
    const struct prov_rec *r = prov_first(p, ids[i]);
    uint64_t upto = 0;
    while (r != NULL && in_ledger(rd, r, floor)) {
      upto = r->seq;
      r = prov_get(p, ids[i], upto + 1);
    }
    if (upto > 0)
      prov_prune(p, ids[i], upto);
  }
}

void admit_provisional_cmd(const struct ledger_cmd *strict, uint64_t origin, uint64_t seq,
                           uint64_t epoch, struct ledger_cmd *out) {
  *out = *strict;
  admit_prov_rid(out->rid, origin, seq);
  snprintf(out->u.redeem.srid, sizeof out->u.redeem.srid, "%s", strict->rid);
  out->u.redeem.p_origin = origin;
  out->u.redeem.p_seq = seq;
  out->u.redeem.p_epoch = epoch;
}

void admit_prov_record(const struct ledger_cmd *c, struct prov_rec *r) {
  memset(r, 0, sizeof *r);
  r->origin = c->u.redeem.p_origin;
  r->seq = c->u.redeem.p_seq;
  r->epoch = c->u.redeem.p_epoch;
  r->time_ms = c->ts_ms;
  size_t n = strlen(c->u.redeem.ticket_id);
  r->key_len = (uint8_t)(n < PROV_KEY_MAX ? n : PROV_KEY_MAX);
  memcpy(r->key, c->u.redeem.ticket_id, r->key_len);
  snprintf(r->method, sizeof r->method, "%s", c->u.redeem.method);
  snprintf(r->gate, sizeof r->gate, "%s", c->gate);
}
