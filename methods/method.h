/*
 * method.h — one verification method behind one vtable.
 *
 * A method turns a ticket into a credential (generate) and a presented
 * credential back into a claim on a ticket (verify). Both are pure functions of
 * their inputs: the ledger snapshot, the time and the random source all come
 * in through struct method_env, so the simulator runs the same code.
 *
 * generate returns a CRED_ISSUE command for the caller to commit and a JSON
 * object of fields for the client; verify returns a claim that the caller
 * turns into a REDEEM command (service.h) or a denial. Neither writes.
 *
 * Error contract: GM_EINVAL (with env->err set) when the request itself is
 * malformed (a missing field, a wrong type) — an HTTP 400; any problem with
 * the credential is a verdict reason in the claim, never an error.
 */
#ifndef GM_METHOD_H
#define GM_METHOD_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct bio_index;

#include "../ledger/cmd.h"
#include "../ledger/ledger.h"

#define METHOD_ERR_MAX 160

struct method_config {
  int64_t qr_ttl_ms;           /* validity of an issuer-signed QR */
  int64_t holder_window_ms;    /* freshness of a holder-signed QR display */
  int64_t clock_skew_ms;       /* tolerated gate/issuer clock difference */
  uint32_t pass_period_s;      /* rotating pass code time step */
  int64_t key_validity_ms;     /* lifetime of a signing key from its creation */
  bool enabled_qr;             /* config defaults; the admin toggle overrides */
  bool enabled_pass;
  bool enabled_nfc;
  bool enabled_biometric;
  bool enabled_geofence;
  bool nfc_require_record;     /* a tap without the signed record is refused */
  uint32_t bio_dim;            /* floats per biometric template */
  double bio_threshold;        /* cosine similarity to accept a match */
  double bio_margin;           /* 1:N: best minus second best at least this */
  int64_t geo_freshness_ms;    /* age of a geofence entry report accepted */
  uint32_t geo_max_accuracy_m; /* default accuracy limit of a zone */
};

void method_config_default(struct method_config *c);

/* Ed25519 signatures checked before a request came, by whoever can spare
 * the time (the simulator's second core does). A pure cache: it answers
 * only for the very key, message and signature it checked. */
struct method_sigs {
  /* 1: that signature is good, 0: it is not, -1: not checked here */
  int (*known)(void *arg, const uint8_t sig[64], const uint8_t *msg, size_t len,
               const uint8_t pk[32]);
  void *arg;
};

struct method_env {
  struct ledger_rd *rd;
  int64_t now_ms;
  const struct method_config *cfg;
  const uint8_t *seal_key; /* 32 bytes; unseals signing keys */
  const uint8_t *nfc_key;  /* 32 bytes; NTAG 424 SUN keys (NULL: no SUN) */
  const uint8_t *bio_key;  /* 32 bytes; wraps biometric data keys (NULL: none) */
  struct bio_index *bio;   /* decrypted templates for 1:N (NULL: read the ledger) */
  const char *ticket_hint; /* the ticket the request names, if any (set by the service) */
  const char *gate;        /* the gate verifying, if known (geofence zones per gate) */
  void (*random)(void *arg, void *out, size_t n);
  void *random_arg;
  char err[METHOD_ERR_MAX]; /* what was wrong with a GM_EINVAL request */
  void *owner;              /* the caller's, untouched by methods */
  const struct method_sigs *sigs; /* NULL: every signature is checked on the spot */
};

struct method_issue {
  struct ledger_cmd cmd; /* CRED_ISSUE; cmd.op == 0 when nothing to commit */
  json_t *response;      /* owned by the caller after a successful generate */
};

struct method_claim {
  int reason; /* LEDGER_REASON_NONE when the credential checks out */
  char ticket_id[LEDGER_ID_MAX + 1];
  char cred_id[LEDGER_ID_MAX + 1];
  uint32_t ticket_version;
  uint64_t nonce;
  bool has_score; /* biometric: the similarity that decided */
  double score;
};

struct method {
  const char *name;
  int (*generate)(struct method_env *env, const struct ledger_ticket *t, const json_t *params,
                  struct method_issue *out);
  int (*verify)(struct method_env *env, const json_t *presented, struct method_claim *out);
};

/* The registry: every method this build knows, in a stable order. */
const struct method *method_find(const char *name);
size_t method_count(void);
const struct method *method_at(size_t i);
/* Config default merged with the ledger's toggle. */
bool method_enabled(struct method_env *env, const char *name);

/* Shared helpers for method implementations. */
int method__einval(struct method_env *env, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Whether sig is pk's Ed25519 signature of msg[0..len): env->sigs answers
 * when it checked exactly these, libsodium otherwise. */
bool method__sig_ok(const struct method_env *env, const uint8_t sig[64], const uint8_t *msg,
                    size_t len, const uint8_t pk[32]);
/* A string field of obj; GM_EINVAL naming the field if missing or not a string. */
int method__str(struct method_env *env, const json_t *obj, const char *key, const char **out);
/* Starts what a generate commits: the CRED_ISSUE of `method`'s credential
 * `id` for ticket t, as of env->now_ms; the caller fills in the rest of the
 * returned credential (secret, expiry). id fits in LEDGER_ID_MAX. */
struct ledger_cred *method__cred_issue(struct method_env *env, const struct ledger_ticket *t,
                                       const char *method, const char *id,
                                       struct method_issue *out);
/* Finds `method`'s credential `id`, which must hold a secret of secret_len
 * bytes, and names its ticket, version and id in out. Returns 0 with *cred
 * filled; 0 with out->reason UNKNOWN_CREDENTIAL when there is no such
 * credential; or a storage error. */
int method__cred_claim(struct method_env *env, const char *method, const char *id,
                       size_t secret_len, struct ledger_cred *cred, struct method_claim *out);

extern const struct method method_qr;
extern const struct method method_pass;
extern const struct method method_nfc;
extern const struct method method_biometric;
extern const struct method method_geofence;

#endif
