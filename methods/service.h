/*
 * service.h — the verification service: routes a presented credential to its
 * method, applies the checks every method shares (method enabled, ticket
 * exists, belongs to the path's ticket, not revoked, current version, not
 * used, event not over) and, when all pass, builds the REDEEM command that
 * makes the single-use decision in the ledger.
 *
 * The checks here read a possibly stale snapshot; they turn away what is
 * certainly bad without a commit. The ledger repeats the state checks at apply
 * time, which is where the decision is made.
 */
#ifndef GM_SERVICE_H
#define GM_SERVICE_H

#include "method.h"

struct verify_outcome {
  struct method_claim claim;
  bool propose;           /* commit `redeem` for the final verdict */
  struct ledger_cmd redeem;
  bool has_first_use;
  struct ledger_use first_use;
};

/* GM_ENOTFOUND for an unknown method name, GM_EINVAL (env->err) for a
 * malformed presented_data; otherwise 0 with the outcome. */
int verify_service_check(struct method_env *env, const char *method, const json_t *presented,
                         const char *ticket_hint, struct verify_outcome *out);

#endif
