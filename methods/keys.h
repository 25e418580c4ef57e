/*
 * keys.h — the cluster's Ed25519 signing keys, kept in the ledger.
 *
 * A key's private half is the 32-byte seed, sealed with crypto_secretbox under
 * the seal key (derived from the cluster key), so it is never in the clear in
 * a command, the Raft log, a snapshot or the LMDB file. The newest key signs;
 * every key verifies between its not_before and not_after, so rotation never
 * invalidates credentials already handed out.
 */
#ifndef GM_KEYS_H
#define GM_KEYS_H

#include <stdint.h>

#include "method.h"

#define KEYS_SEALED_LEN (24 + 32 + 16)

/* Builds a KEY_ADD command for a fresh key with kid = newest + 1 (1 if none).
 * The caller fills rid/gate/actor and commits it. */
int keys_new_cmd(struct method_env *env, struct ledger_cmd *out);

/* The current signing key, unsealed: kid and the 64-byte libsodium secret key.
 * GM_ENOTFOUND when there is none, GM_EEXPIRED when the newest is past its
 * validity, GM_ECRYPTO when it does not unseal (wrong cluster key). The caller
 * should sodium_memzero sk after use. */
int keys_signing(struct method_env *env, uint32_t *kid, uint8_t sk[64]);

/* The public key of kid if it is valid at env->now_ms; GM_ENOTFOUND for an
 * unknown kid, GM_EEXPIRED / GM_ENOTYET outside its window. */
int keys_public(struct method_env *env, uint32_t kid, uint8_t pk[32]);

/* The seal key (what keys_signing unseals with) from the 32-byte cluster key. */
void keys_seal_key_derive(const uint8_t cluster_key[32], uint8_t seal_key[32]);

/* "k<kid>" form used in JWS headers and JWKS. */
void keys_kid_str(char out[16], uint32_t kid);
int keys_kid_parse(const char *s, uint32_t *kid);

#endif
