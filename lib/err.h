/*
 * err.h — the one error table of the gate mesh.
 *
 * Every function that can fail returns int: 0 on success, or one of the negative
 * GM_E* codes below. The table is an X-macro so the enum, the stable snake_case
 * name (used in logs and problem+json bodies) and the human message never drift
 * apart. Codes are negative and never reuse errno values, so a caller can tell
 * ours from a raw errno that leaked through.
 */
#ifndef GM_ERR_H
#define GM_ERR_H

#define GM_ERR_TABLE(X)                                                        \
  X(NOMEM, -1000, "out_of_memory", "out of memory")                           \
  X(INVAL, -1001, "invalid_argument", "invalid argument")                     \
  X(IO, -1002, "io_error", "input/output error")                              \
  X(NOTFOUND, -1003, "not_found", "not found")                                \
  X(EXIST, -1004, "conflict", "already exists")                               \
  X(CORRUPT, -1005, "corrupt", "stored data is corrupt")                      \
  X(TOOBIG, -1006, "payload_too_large", "too large")                          \
  X(FULL, -1007, "storage_full", "storage is full")                           \
  X(DECODE, -1008, "malformed", "malformed input")                            \
  X(SIG, -1009, "bad_signature", "signature does not verify")                 \
  X(EXPIRED, -1010, "expired", "expired")                                     \
  X(NOTYET, -1011, "not_yet_valid", "not yet valid")                          \
  X(STATE, -1012, "conflict", "not allowed in the current state")             \
  X(AUTH, -1013, "unauthorized", "authentication required or failed")         \
  X(FORBIDDEN, -1014, "forbidden", "not allowed for this role")               \
  X(DISABLED, -1015, "method_disabled", "method is disabled")                 \
  X(LIMIT, -1016, "rate_limited", "a limit was reached")                      \
  X(CRYPTO, -1017, "crypto_error", "cryptographic operation failed")          \
  X(CONFIG, -1018, "bad_config", "invalid configuration")                     \
  X(SHUTDOWN, -1019, "shutting_down", "shutting down")                        \
  X(UNSUPPORTED, -1020, "unsupported", "not supported")                       \
  X(NOQUORUM, -1021, "no_quorum", "no leader reachable in time")               \
  X(NOTLEADER, -1022, "not_leader", "this node is not the leader")

enum gm_err {
  GM_OK = 0,
#define GM__ERR_ENUM(name, value, code, msg) GM_E##name = (value),
  GM_ERR_TABLE(GM__ERR_ENUM)
#undef GM__ERR_ENUM
};

/* Stable snake_case code of rc ("ok" for 0, "unknown_error" for anything not
 * in the table). Returns a static string. */
const char *gm_err_code(int rc);

/* Human message of rc; static string. */
const char *gm_err_msg(int rc);

#endif
