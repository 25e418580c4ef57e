/*
 * cmd.h — ledger commands and their msgpack codec.
 *
 * A command is the only way anything in the ledger changes. It carries
 * everything apply needs to be deterministic: the time (ts_ms, chosen by the
 * proposing gate), generated ids and keys, and a client request id (rid) by
 * which the ledger deduplicates retries. The wire form is a msgpack map with
 * an "op" key; decode validates every field against the limits of types.h.
 *
 * Ownership: ledger_cmd_decode may allocate the arrays of TICKET_CREATE,
 * AUDIT_BATCH, BIO_ENROLL, BIO_RECEIPT and CRED_EXPIRE; release them with
 * ledger_cmd_free (which also releases heap arrays a caller put there). Encode appends to a writer.
 */
#ifndef GM_LEDGER_CMD_H
#define GM_LEDGER_CMD_H

#include <stddef.h>
#include <stdint.h>

#include "../lib/mpk.h"
#include "types.h"

#define LEDGER_OP_TABLE(X)                \
  X(EVENT_CREATE, 1, "event_create")      \
  X(TICKET_CREATE, 2, "ticket_create")    \
  X(TICKET_TRANSFER, 3, "ticket_transfer") \
  X(TICKET_REVOKE, 4, "ticket_revoke")    \
  X(CRED_ISSUE, 5, "cred_issue")          \
  X(REDEEM, 6, "redeem")                  \
  X(METHOD_TOGGLE, 7, "method_toggle")    \
  X(USER_ADD, 8, "user_add")              \
  X(KEY_ADD, 9, "key_add")                \
  X(AUDIT_BATCH, 10, "audit_batch")       \
  X(OVERRIDE, 11, "override")            \
  X(BIO_ENROLL, 12, "bio_enroll")        \
  X(BIO_ERASE, 13, "bio_erase")          \
  X(BIO_RECEIPT, 14, "bio_receipt")      \
  X(ZONE_SET, 15, "zone_set")            \
  X(CRED_EXPIRE, 16, "cred_expire")

enum ledger_op {
#define LEDGER__OP_ENUM(name, v, s) LEDGER_OP_##name = v,
  LEDGER_OP_TABLE(LEDGER__OP_ENUM)
#undef LEDGER__OP_ENUM
  LEDGER_OP__LAST = LEDGER_OP_CRED_EXPIRE
};

/* A list of ids (tickets, credentials) carried by one command. */
struct ledger_id_list {
  char (*v)[LEDGER_ID_MAX + 1];
  uint32_t n;
};

const char *ledger_op_str(int op);

struct ledger_ticket_spec {
  char id[LEDGER_ID_MAX + 1];
  char event_id[LEDGER_ID_MAX + 1];
  char holder[LEDGER_HOLDER_MAX + 1];
  char tier[LEDGER_TIER_MAX + 1];
};

enum ledger_override_action { LEDGER_OVERRIDE_ADMIT = 0, LEDGER_OVERRIDE_RESET = 1 };

struct ledger_cmd {
  int op;
  char rid[LEDGER_RID_MAX + 1];
  int64_t ts_ms;
  char gate[LEDGER_GATE_MAX + 1];
  char actor[LEDGER_ID_MAX + 1];
  union {
    struct ledger_event event;
    struct {
      struct ledger_ticket_spec *v;
      uint32_t n;
    } tickets;
    struct {
      char ticket_id[LEDGER_ID_MAX + 1];
      char to_holder[LEDGER_HOLDER_MAX + 1];
    } transfer;
    struct {
      char ticket_id[LEDGER_ID_MAX + 1];
      char reason[LEDGER_REASON_MAX + 1];
    } revoke;
    struct ledger_cred cred; /* generated_ms = ts_ms */
    struct {
      char ticket_id[LEDGER_ID_MAX + 1];
      char method[LEDGER_METHOD_MAX + 1];
      char cred_id[LEDGER_ID_MAX + 1];
      uint32_t ticket_version;
      uint64_t nonce; /* pass time step; 0 when the method has none */
      char device[LEDGER_DEVICE_MAX + 1];
      char ip[LEDGER_IP_MAX + 1];
      /* A provisional admission (p_seq > 0): made by gate p_origin while it
       * could not reach a leader, already acknowledged; the ledger records it
       * whatever the ticket's state, as an incident when it conflicts.
       * srid is the request id of the strict attempt it followed, if any. */
      uint64_t p_origin;
      uint64_t p_seq;
      uint64_t p_epoch;
      char srid[LEDGER_RID_MAX + 1];
    } redeem;
    struct {
      char method[LEDGER_METHOD_MAX + 1];
      bool enabled;
    } toggle;
    struct ledger_user user;
    struct ledger_key key;
    struct {
      struct ledger_audit *v;
      uint32_t n;
    } audit;
    struct {
      char ticket_id[LEDGER_ID_MAX + 1];
      int action;
      char reason[LEDGER_REASON_MAX + 1];
    } override;
    /* BIO_ENROLL: ct is heap memory, released by ledger_cmd_free. */
    struct {
      char ticket_id[LEDGER_ID_MAX + 1];
      uint32_t ticket_version;
      uint32_t dim;
      uint8_t wrapped[LEDGER_BIO_WRAPPED_LEN];
      uint8_t *ct;
      size_t ct_len;
    } bio;
    struct {
      char ticket_id[LEDGER_ID_MAX + 1];
      char reason[LEDGER_ACTION_MAX + 1]; /* request, retention */
    } erase;
    struct ledger_id_list receipts; /* BIO_RECEIPT: tickets; the gate is c->gate */
    struct ledger_zone zone;
    struct {
      char method[LEDGER_METHOD_MAX + 1];
      struct ledger_id_list ids;
    } expire;
  } u;
};

void ledger_cmd_encode(const struct ledger_cmd *c, struct mpk_w *w);
int ledger_cmd_decode(const void *p, size_t n, struct ledger_cmd *out);
void ledger_cmd_free(struct ledger_cmd *c);

#endif
