/*
 * admit.c — the admission policy (see admit.h).
 */
#include "gossip/admit.h"

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
