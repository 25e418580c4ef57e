/*
 * admit.h — the admission policy: what a gate does with a credential that
 * passed its method's checks, given whether a leader can be reached.
 *
 *   - Heard of already: a provisional admission of the same credential has
 *     reached this gate by gossip and is not in the ledger yet: refused
 *     (already_used), whatever the policy.
 *   - Leader reachable: the strict path (propose, verdict after commit).
 *   - No leader within the budget:
 *       strict policy     -> no_quorum;
 *       available policy  -> a provisional admission, while this gate's risk
 *                            budget for the event in this partition epoch
 *                            lasts and its store has room; budget_exhausted
 *                            after that.
 *
 * The budget counts provisional admissions per (event, partition epoch); a
 * new epoch (this gate lost its leader again) starts every count afresh.
 * Deterministic: no clock, no I/O; the simulator runs the same code.
 */
#ifndef GM_GOSSIP_ADMIT_H
#define GM_GOSSIP_ADMIT_H

#include <stdbool.h>
#include <stdint.h>

#include "gossip/prov.h"
#include "ledger/ledger.h"

enum admit_action { ADMIT_STRICT = 0, ADMIT_PROVISIONAL = 1, ADMIT_DENY = 2 };

struct admit_input {
  int policy;                  /* LEDGER_POLICY_* for the ticket's tier */
  bool leader_reachable;
  const struct prov_rec *heard; /* prov_lookup of the credential, or NULL */
  uint32_t budget;             /* the event's offline budget */
  uint32_t used;               /* provisional admissions of it this epoch */
  bool store_full;
};

struct admit_decision {
  int action;
  int reason; /* LEDGER_REASON_* when action is ADMIT_DENY */
};

void admit_decide(const struct admit_input *in, struct admit_decision *out);

/* The request id of provisional admission (origin, seq): the same at every
 * gate, so the ledger's dedup recognises it whoever proposes it. */
void admit_prov_rid(char out[LEDGER_RID_MAX + 1], uint64_t origin, uint64_t seq);
/* The provisional twin of a strict redeem: its own request id, the strict
 * attempt's as srid, and the tag (origin, seq, epoch). */
void admit_provisional_cmd(const struct ledger_cmd *strict, uint64_t origin, uint64_t seq,
                           uint64_t epoch, struct ledger_cmd *out);
/* The gossip record of a provisional redeem command. */
void admit_prov_record(const struct ledger_cmd *c, struct prov_rec *r);
/* Whether the ledger holds the admission: as an applied command or as an
 * incident. */
bool admit_in_ledger(struct ledger_rd *rd, const struct prov_rec *r);
/* Prunes from the store what the ledger holds, origin by origin from the
 * oldest record up (origin `self` is skipped: its owner prunes its own). */
void admit_prune_settled(struct prov *p, uint64_t self, struct ledger_rd *rd);

/* Counts of provisional admissions per event in the current epoch, for at
 * most ADMIT_EVENTS_MAX events (a gate past that refuses to admit
 * provisionally for any other: budget_exhausted). */
#define ADMIT_EVENTS_MAX 64

struct admit_budget {
  uint64_t epoch;
  struct {
    char event_id[LEDGER_ID_MAX + 1];
    uint32_t used;
  } ev[ADMIT_EVENTS_MAX];
  uint32_t n;
};

void admit_budget_init(struct admit_budget *b, uint64_t epoch);
/* Starts a new epoch: every count back to 0. */
void admit_budget_epoch(struct admit_budget *b, uint64_t epoch);
uint32_t admit_budget_used(const struct admit_budget *b, const char *event_id);
/* Counts one admission for the event; false when the table is full. */
bool admit_budget_take(struct admit_budget *b, const char *event_id);

#endif
