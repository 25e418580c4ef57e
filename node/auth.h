/*
 * auth.h — users, passwords and bearer tokens.
 *
 * Passwords: Argon2id (crypto_pwhash_str, interactive limits). Hashing and
 * checking take ~100 ms and 64 MiB by design, so they run on the threadpool,
 * never on the loop.
 * Tokens: JWT (JWS compact, EdDSA) signed by the cluster's current key, so any
 * gate verifies any gate's tokens and JWKS publishes what checks them. A
 * verified token is cached (keyed by a SipHash of the token under a per-process
 * key) until its expiry, so a scanner's request costs one signature check per
 * token lifetime, not per scan.
 */
#ifndef GM_NODE_AUTH_H
#define GM_NODE_AUTH_H

#include "node.h"

int auth_init(struct node *n);
void auth_cleanup(struct node *n);

/* Checks "header.payload.sig"; fills who. GM_EAUTH for anything wrong. */
int auth_token_check(struct node *n, const char *tok, size_t len, struct auth_who *who);
/* Issues a token for user; out must hold GM_JWS_MAX bytes. */
int auth_token_issue(struct node *n, const struct ledger_user *u, char *out, int64_t *exp_ms);

/* The request id of a write: derived from (principal, Idempotency-Key) when
 * the client sent one, so a retry maps to the same ledger dedup entry.
 * Without a key it is empty: no client could ever retry with an id it never
 * saw, so the ledger keeps no dedup entry for the command (two B-tree
 * inserts and a prune saved per scan). out holds LEDGER_RID_MAX+1. */
void auth_request_id(struct node *n, const char *principal, const char *idem_key, char *out);

/* Runs crypto_pwhash_str / _verify on the threadpool; cb runs on the loop with
 * rc 0 (hash written / password matches) or GM_EAUTH / GM_ENOMEM. */
typedef void (*auth_pw_cb)(void *arg, int rc, const char *hash);
int auth_password_hash(struct node *n, const char *password, auth_pw_cb cb, void *arg);
int auth_password_check(struct node *n, const char *password, const char *hash, auth_pw_cb cb,
                        void *arg);
/* Synchronous hash, for bootstrap before the loop runs. */
int auth_password_hash_sync(const char *password, char out[LEDGER_PWHASH_MAX + 1]);

#endif
