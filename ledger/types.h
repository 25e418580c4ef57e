/*
 * types.h — the ledger's data model: the records it stores and their limits.
 *
 * Every text field has a named maximum; input longer than that is rejected at
 * the edge (HTTP) and again by the codecs, never truncated. Records are stored
 * as msgpack maps (record.c) so fields can be added without a migration.
 */
#ifndef GM_LEDGER_TYPES_H
#define GM_LEDGER_TYPES_H

#include <stdbool.h>
#include <stdint.h>

#define LEDGER_ID_MAX 64
#define LEDGER_NAME_MAX 200
#define LEDGER_HOLDER_MAX 128
#define LEDGER_TIER_MAX 32
#define LEDGER_GATE_MAX 64
#define LEDGER_REASON_MAX 200
#define LEDGER_METHOD_MAX 16
#define LEDGER_RID_MAX 64
#define LEDGER_SECRET_MAX 128
#define LEDGER_PWHASH_MAX 128
#define LEDGER_SEALED_MAX 128
#define LEDGER_DEVICE_MAX 64
#define LEDGER_IP_MAX 48
#define LEDGER_ACTION_MAX 16
/* Tiers of an event whose offline policy differs from the event's. */
#define LEDGER_TIER_POLICIES_MAX 8
#define LEDGER_INCIDENT_KIND_MAX 16
/* Biometric templates: floats per template, and the sealed forms. */
#define LEDGER_BIO_DIM_MAX 1024
#define LEDGER_BIO_WRAPPED_LEN (24 + 32 + 16) /* nonce | data key | tag */
#define LEDGER_BIO_CT_MAX (24 + 4 * LEDGER_BIO_DIM_MAX + 16)
/* Ticket ids in one erasure-receipt or credential-expiry command. */
#define LEDGER_LIST_MAX 1024
/* Geofence zones: vertices of a polygon. */
#define LEDGER_ZONE_POINTS_MAX 64
/* Tickets in one create command; a larger import is split by the caller. */
#define LEDGER_BATCH_TICKETS_MAX 10000
#define LEDGER_AUDIT_BATCH_MAX 4096
/* A retry with the same request id within this window returns the first
 * result; older dedup entries are pruned as commands advance time. */
#define LEDGER_DEDUP_TTL_MS (24LL * 3600 * 1000)
/* Dedup entries pruned per applied command at most, so pruning never makes one
 * apply unboundedly slow; it still outpaces insertion (one per command). */
#define LEDGER_DEDUP_PRUNE_MAX 4

enum ledger_ticket_status {
  LEDGER_TICKET_CREATED = 0,
  LEDGER_TICKET_TRANSFERRED = 1,
  LEDGER_TICKET_USED = 2,
  LEDGER_TICKET_REVOKED = 3,
};

enum ledger_policy { LEDGER_POLICY_STRICT = 0, LEDGER_POLICY_AVAILABLE = 1 };

enum ledger_role {
  LEDGER_ROLE_ATTENDEE = 0,
  LEDGER_ROLE_STAFF = 1,
  LEDGER_ROLE_ORGANIZER = 2,
  LEDGER_ROLE_ADMIN = 3,
};

/* Verdict reasons, API.md "reason codes". NONE means admitted. */
#define LEDGER_REASON_TABLE(X)                  \
  X(NONE, "")                                   \
  X(ALREADY_USED, "already_used")               \
  X(EXPIRED, "expired")                         \
  X(NOT_YET_VALID, "not_yet_valid")             \
  X(BAD_SIGNATURE, "bad_signature")             \
  X(UNKNOWN_CREDENTIAL, "unknown_credential")   \
  X(REVOKED, "revoked")                         \
  X(SUPERSEDED, "superseded")                   \
  X(REPLAYED, "replayed")                       \
  X(NO_MATCH, "no_match")                       \
  X(OUTSIDE_ZONE, "outside_zone")               \
  X(METHOD_DISABLED, "method_disabled")         \
  X(NO_QUORUM, "no_quorum")                     \
  X(BUDGET_EXHAUSTED, "budget_exhausted")       \
  X(WRONG_EVENT, "wrong_event")                 \
  X(MALFORMED, "malformed")

enum ledger_reason {
#define LEDGER__REASON_ENUM(name, str) LEDGER_REASON_##name,
  LEDGER_REASON_TABLE(LEDGER__REASON_ENUM)
#undef LEDGER__REASON_ENUM
  LEDGER_REASON__COUNT
};

const char *ledger_reason_str(int reason);
const char *ledger_status_str(int status);
const char *ledger_role_str(int role);
int ledger_role_parse(const char *s);     /* -1 if unknown */
const char *ledger_policy_str(int policy);
int ledger_policy_parse(const char *s);   /* -1 if unknown */

struct ledger_event {
  char id[LEDGER_ID_MAX + 1];
  char name[LEDGER_NAME_MAX + 1];
  int64_t starts_ms;
  int64_t ends_ms;
  int policy;              /* offline policy of tiers not listed below */
  uint32_t offline_budget; /* provisional admissions per gate and partition epoch */
  int64_t created_ms;
  struct {
    char tier[LEDGER_TIER_MAX + 1];
    int policy;
  } tier_policy[LEDGER_TIER_POLICIES_MAX];
  uint32_t n_tier_policy;
  /* Opt-in: tickets still unused this long after the end are revoked by the
   * cluster's background job (0: never). */
  int64_t revoke_unscanned_after_ms;
  /* Biometric templates of the event's tickets are erased this long after
   * its end (0: the node's configured default). */
  int64_t bio_retention_ms;
};

/* The offline policy that applies to a ticket of this tier. */
int ledger_event_policy(const struct ledger_event *e, const char *tier);

struct ledger_ticket {
  char id[LEDGER_ID_MAX + 1];
  char event_id[LEDGER_ID_MAX + 1];
  char holder[LEDGER_HOLDER_MAX + 1];
  char tier[LEDGER_TIER_MAX + 1];
  int status;
  uint32_t version;
  int64_t created_ms;
  int64_t used_ms;
  char used_gate[LEDGER_GATE_MAX + 1];
  char used_method[LEDGER_METHOD_MAX + 1];
  char used_cred[LEDGER_ID_MAX + 1];
  uint64_t last_nonce; /* highest pass step presented; a step at or below is a replay */
  /* Which admission used it: a hash of its request id, and for a
   * provisional one its origin gate's node id and sequence number, so that
   * the same admission arriving again (a replay, or the strict attempt that
   * timed out and its provisional twin) is recognised and not an incident. */
  uint64_t used_rid_hash;
  uint64_t used_origin;
  uint64_t used_pseq;
  bool denied; /* deny-listed after a double entry: every later scan is refused */
  /* A redeem that admitted is remembered by the ticket (used_rid_hash), not
   * in the dedup table; true once a refused redeem of this ticket, or a use
   * an override reset, was written to the dedup table, where a later redeem
   * of the ticket then looks for its request id. */
  bool rids_kept;
};

/* One issued credential: a QR binding, a pass, an NFC tag, ... */
struct ledger_cred {
  char method[LEDGER_METHOD_MAX + 1];
  char id[LEDGER_ID_MAX + 1];
  char ticket_id[LEDGER_ID_MAX + 1];
  uint32_t ticket_version;
  int64_t generated_ms;
  int64_t expires_ms;
  /* A credential's use is not repeated here: the ticket it admitted records
   * it (used_ms, used_gate, and used_method + used_cred naming this record),
   * so a redeem rewrites one record, not two. Likewise the last pass step
   * seen (ledger_ticket.last_nonce). */
  uint8_t secret[LEDGER_SECRET_MAX];
  size_t secret_len;
  /* NFC tags with SUN messages (NTAG 424 DNA): the highest read counter
   * presented so far, plus one (0: none yet). A counter at or below it is a
   * cloned or replayed tap, wherever it is seen. */
  uint64_t last_ctr;
};

/* A biometric enrolment: the template sealed with a per-ticket data key
 * (XChaCha20-Poly1305), the data key wrapped by the cluster's biometric key.
 * The plaintext never enters a command, the log or the ledger. Erasure
 * deletes both; the record stays as a tombstone (erased_ms > 0). */
struct ledger_bio {
  char ticket_id[LEDGER_ID_MAX + 1];
  char event_id[LEDGER_ID_MAX + 1];
  uint32_t ticket_version; /* a transfer leaves the template behind */
  uint32_t dim;
  int64_t enrolled_ms;
  uint8_t wrapped[LEDGER_BIO_WRAPPED_LEN];
  uint8_t ct[LEDGER_BIO_CT_MAX];
  size_t ct_len;          /* 0 once erased */
  int64_t erased_ms;      /* 0 while enrolled */
  char erase_reason[LEDGER_ACTION_MAX + 1]; /* request, retention */
  uint64_t gen;           /* the bio change that wrote this record */
};

/* A gate's receipt for the erasure of a ticket's template: its replica no
 * longer holds the data key and its in-memory copy was wiped. */
struct ledger_bio_receipt {
  char ticket_id[LEDGER_ID_MAX + 1];
  char gate[LEDGER_GATE_MAX + 1];
  int64_t erased_ms;
};

enum ledger_zone_kind { LEDGER_ZONE_CIRCLE = 0, LEDGER_ZONE_POLYGON = 1 };

/* A geofence entry zone of an event, optionally tied to one gate.
 * Coordinates in 1e-7 degrees (about 1 cm), so the ledger holds integers. */
struct ledger_zone {
  char event_id[LEDGER_ID_MAX + 1];
  char id[LEDGER_ID_MAX + 1];
  char gate[LEDGER_GATE_MAX + 1]; /* "" = any gate of the event */
  int kind;
  int32_t lat_e7[LEDGER_ZONE_POINTS_MAX]; /* circle: the centre in [0] */
  int32_t lon_e7[LEDGER_ZONE_POINTS_MAX];
  uint32_t n_points;
  uint32_t radius_m; /* circle */
  uint32_t max_accuracy_m; /* a fix less accurate than this is refused */
};

/* The first admission of a ticket (kept in the ticket record: a used ticket
 * is the used set's entry). */
struct ledger_use {
  char gate[LEDGER_GATE_MAX + 1];
  char method[LEDGER_METHOD_MAX + 1];
  char cred_id[LEDGER_ID_MAX + 1];
  int64_t used_ms;
};

/* A double entry (or an admission made on stale state) found when a
 * provisional admission reached the ledger. Keyed by the provisional
 * admission (origin, pseq), so applying it again records nothing new. */
struct ledger_incident {
  uint64_t origin; /* node id of the gate that admitted provisionally */
  uint64_t pseq;
  uint64_t epoch;  /* its partition epoch */
  char kind[LEDGER_INCIDENT_KIND_MAX + 1]; /* double_entry, revoked, superseded, ... */
  char ticket_id[LEDGER_ID_MAX + 1];
  struct ledger_use first;   /* the admission the ledger had already */
  uint64_t first_origin;     /* non-zero when that one was provisional too */
  uint64_t first_pseq;
  struct ledger_use second;  /* the provisional admission */
  uint64_t seq;              /* order of detection in the ledger */
};

struct ledger_user {
  char id[LEDGER_ID_MAX + 1];
  char username[LEDGER_ID_MAX + 1];
  int role;
  char pwhash[LEDGER_PWHASH_MAX + 1];
  int64_t created_ms;
};

/* A signing key. The private key is sealed (secretbox under a key derived from
 * the cluster key) before it ever enters a command, so neither the log nor the
 * LMDB file holds it in the clear. */
struct ledger_key {
  uint32_t kid;
  uint8_t pk[32];
  uint8_t sealed_sk[LEDGER_SEALED_MAX];
  size_t sealed_len;
  int64_t not_before_ms;
  int64_t not_after_ms;
};

struct ledger_audit {
  uint64_t seq;
  int64_t time_ms;
  char gate[LEDGER_GATE_MAX + 1];
  char method[LEDGER_METHOD_MAX + 1];
  char ticket_id[LEDGER_ID_MAX + 1];
  char action[LEDGER_ACTION_MAX + 1]; /* generate, verify, transfer, ... */
  char result[LEDGER_ACTION_MAX + 1]; /* ok, admitted, denied, failed */
  char reason[LEDGER_REASON_MAX + 1];
  char device[LEDGER_DEVICE_MAX + 1];
  char ip[LEDGER_IP_MAX + 1];
};

#endif
