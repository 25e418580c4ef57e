/* test_admit.c — the admission policy: strict and available, the budget per
 * event and partition epoch, refusal of what gossip reported. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "gossip/admit.h"

static struct admit_decision decide(int policy, bool reachable, bool heard, uint32_t budget,
                                    uint32_t used, bool full) {
  struct prov_rec r;
  memset(&r, 0, sizeof r);
  struct admit_input in = {.policy = policy,
                           .leader_reachable = reachable,
                           .heard = heard ? &r : NULL,
                           .budget = budget,
                           .used = used,
                           .store_full = full};
  struct admit_decision d;
  admit_decide(&in, &d);
  return d;
}

Test(admit, a_reachable_leader_means_the_strict_path) {
  for (int p = LEDGER_POLICY_STRICT; p <= LEDGER_POLICY_AVAILABLE; p++) {
    struct admit_decision d = decide(p, true, false, 0, 0, false);
    cr_assert_eq(d.action, ADMIT_STRICT);
  }
}

Test(admit, strict_without_a_leader_is_no_quorum) {
  struct admit_decision d = decide(LEDGER_POLICY_STRICT, false, false, 100, 0, false);
  cr_assert_eq(d.action, ADMIT_DENY);
  cr_assert_eq(d.reason, LEDGER_REASON_NO_QUORUM);
}

Test(admit, available_without_a_leader_admits_within_the_budget) {
  struct admit_decision d = decide(LEDGER_POLICY_AVAILABLE, false, false, 3, 2, false);
  cr_assert_eq(d.action, ADMIT_PROVISIONAL);
  d = decide(LEDGER_POLICY_AVAILABLE, false, false, 3, 3, false);
  cr_assert_eq(d.action, ADMIT_DENY);
  cr_assert_eq(d.reason, LEDGER_REASON_BUDGET_EXHAUSTED);
  d = decide(LEDGER_POLICY_AVAILABLE, false, false, 0, 0, false);
  cr_assert_eq(d.reason, LEDGER_REASON_BUDGET_EXHAUSTED, "a budget of 0 admits none");
  d = decide(LEDGER_POLICY_AVAILABLE, false, false, 3, 0, true);
  cr_assert_eq(d.reason, LEDGER_REASON_BUDGET_EXHAUSTED, "a full store admits none");
}

Test(admit, what_gossip_reported_is_refused_under_every_policy) {
  for (int p = LEDGER_POLICY_STRICT; p <= LEDGER_POLICY_AVAILABLE; p++)
    for (int reach = 0; reach <= 1; reach++) {
      struct admit_decision d = decide(p, reach, true, 10, 0, false);
      cr_assert_eq(d.action, ADMIT_DENY);
      cr_assert_eq(d.reason, LEDGER_REASON_ALREADY_USED);
    }
}

Test(admit, budgets_count_per_event_and_reset_per_epoch) {
  struct admit_budget b;
  admit_budget_init(&b, 1);
  cr_assert(admit_budget_take(&b, "fest"));
  cr_assert(admit_budget_take(&b, "fest"));
  cr_assert(admit_budget_take(&b, "gala"));
  cr_assert_eq(admit_budget_used(&b, "fest"), 2);
  cr_assert_eq(admit_budget_used(&b, "gala"), 1);
  cr_assert_eq(admit_budget_used(&b, "none"), 0);
  admit_budget_epoch(&b, 1); /* the same epoch: nothing changes */
  cr_assert_eq(admit_budget_used(&b, "fest"), 2);
  admit_budget_epoch(&b, 2);
  cr_assert_eq(admit_budget_used(&b, "fest"), 0);
  cr_assert_eq(b.epoch, 2);
  /* Bounded: past ADMIT_EVENTS_MAX events, another is refused. */
  char id[16];
  for (int i = 0; i < ADMIT_EVENTS_MAX; i++) {
    snprintf(id, sizeof id, "e%d", i);
    cr_assert(admit_budget_take(&b, id));
  }
  cr_assert(!admit_budget_take(&b, "one-too-many"));
  cr_assert(admit_budget_take(&b, "e3"), "a known event still counts");
  cr_assert_eq(admit_budget_used(&b, "e3"), 2);
}
