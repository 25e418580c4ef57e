/*
 * keys.c — signing keys: creation (as a command), unsealing, lookup.
 */
#include "keys.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/assert.h"
#include "../lib/err.h"

void keys_seal_key_derive(const uint8_t cluster_key[32], uint8_t seal_key[32]) {
  crypto_kdf_derive_from_key(seal_key, 32, 1, "gm-seal_", cluster_key);
}

void keys_kid_str(char out[16], uint32_t kid) { snprintf(out, 16, "k%u", kid); }

int keys_kid_parse(const char *s, uint32_t *kid) {
  if (s[0] != 'k' || s[1] < '1' || s[1] > '9')
    return GM_EDECODE;
  char *end;
  unsigned long v = strtoul(s + 1, &end, 10);
  if (*end != 0 || v > UINT32_MAX)
    return GM_EDECODE;
  *kid = (uint32_t)v;
  return 0;
}

int keys_new_cmd(struct method_env *env, struct ledger_cmd *out) {
  struct ledger_key cur;
  uint32_t kid = 1;
  int rc = ledger_key_current(env->rd, &cur);
  if (rc == 0)
    kid = cur.kid + 1;
  else if (rc != GM_ENOTFOUND)
    return rc;
  memset(out, 0, sizeof *out);
  out->op = LEDGER_OP_KEY_ADD;
  out->ts_ms = env->now_ms;
  struct ledger_key *k = &out->u.key;
  k->kid = kid;
  uint8_t seed[32], sk[64];
  env->random(env->random_arg, seed, sizeof seed);
  crypto_sign_seed_keypair(k->pk, sk, seed);
  uint8_t *nonce = k->sealed_sk;
  env->random(env->random_arg, nonce, crypto_secretbox_NONCEBYTES);
  crypto_secretbox_easy(k->sealed_sk + crypto_secretbox_NONCEBYTES, seed, sizeof seed, nonce,
                        env->seal_key);
  k->sealed_len = KEYS_SEALED_LEN;
  k->not_before_ms = env->now_ms;
  k->not_after_ms = env->now_ms + env->cfg->key_validity_ms;
  sodium_memzero(seed, sizeof seed);
  sodium_memzero(sk, sizeof sk);
  return 0;
}

int keys_signing(struct method_env *env, uint32_t *kid, uint8_t sk[64]) {
  struct ledger_key k;
  int rc = ledger_key_current(env->rd, &k);
  if (rc != 0)
    return rc;
  if (env->now_ms >= k.not_after_ms)
    return GM_EEXPIRED;
  if (k.sealed_len != KEYS_SEALED_LEN)
    return GM_ECORRUPT;
  uint8_t seed[32], pk[32];
  if (crypto_secretbox_open_easy(seed, k.sealed_sk + crypto_secretbox_NONCEBYTES,
                                 KEYS_SEALED_LEN - crypto_secretbox_NONCEBYTES, k.sealed_sk,
                                 env->seal_key) != 0)
    return GM_ECRYPTO;
  crypto_sign_seed_keypair(pk, sk, seed);
  sodium_memzero(seed, sizeof seed);
  GM_ASSERT(memcmp(pk, k.pk, 32) == 0);
  *kid = k.kid;
  return 0;
}

int keys_public(struct method_env *env, uint32_t kid, uint8_t pk[32]) {
  struct ledger_key k;
  int rc = ledger_key_get(env->rd, kid, &k);
  if (rc != 0)
    return rc;
  if (env->now_ms < k.not_before_ms - env->cfg->clock_skew_ms)
    return GM_ENOTYET;
  if (env->now_ms >= k.not_after_ms)
    return GM_EEXPIRED;
  memcpy(pk, k.pk, 32);
  return 0;
}
