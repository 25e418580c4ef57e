/*
 * pass.c — the `pass` method (dynamic cryptographic pass, see pass.h).
 */
#include "pass.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "../lib/buf.h"
#include "../lib/codec.h"
#include "../lib/err.h"
#include "../lib/jws.h"
#include "keys.h"
#include "method.h"

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

int pass_code_parse(const char *s, size_t n, struct pass_code *out) {
  memset(out, 0, sizeof *out);
  if (n < PASS_ID_HEX + 1 + 1 + 1 + 2 * PASS_MAC_LEN || n > PASS_CODE_MAX)
    return GM_EDECODE;
  for (size_t i = 0; i < PASS_ID_HEX; i++)
    if (hexval(s[i]) < 0)
      return GM_EDECODE;
  if (s[PASS_ID_HEX] != '.')
    return GM_EDECODE;
  memcpy(out->pass_id, s, PASS_ID_HEX);
  size_t i = PASS_ID_HEX + 1;
  size_t digits = 0;
  while (i < n && s[i] >= '0' && s[i] <= '9') {
    if (++digits > 15) /* steps of 1 s reach 10^15 in 30 million years */
      return GM_EDECODE;
    out->step = out->step * 10 + (uint64_t)(s[i] - '0');
    i++;
  }
  if (digits == 0 || i >= n || s[i] != '.' || n - i - 1 != 2 * PASS_MAC_LEN)
    return GM_EDECODE;
  i++;
  for (size_t j = 0; j < PASS_MAC_LEN; j++) {
    int hi = hexval(s[i + 2 * j]), lo = hexval(s[i + 2 * j + 1]);
    if (hi < 0 || lo < 0)
      return GM_EDECODE;
    out->mac[j] = (uint8_t)(hi << 4 | lo);
  }
  return out->step == 0 ? GM_EDECODE : 0;
}

/* HMAC-SHA256 through OpenSSL when it can: its SHA-256 uses the CPU's SHA
 * extensions where present (2.4x libsodium's portable code on the machine
 * the benchmarks ran on), and the MAC is a third of a pass verification.
 * One context per thread, re-keyed per call. libsodium computes the same
 * function if OpenSSL cannot be set up. */
static __thread EVP_MAC_CTX *tl_hmac;
static __thread bool tl_hmac_failed;

static EVP_MAC_CTX *hmac_ctx(void) {
  if (tl_hmac || tl_hmac_failed)
    return tl_hmac;
  EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
  EVP_MAC_CTX *ctx = m ? EVP_MAC_CTX_new(m) : NULL;
  EVP_MAC_free(m); /* the context keeps its own reference */
  OSSL_PARAM params[2] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
      OSSL_PARAM_construct_end()};
  if (ctx == NULL || EVP_MAC_CTX_set_params(ctx, params) != 1) {
    EVP_MAC_CTX_free(ctx);
    tl_hmac_failed = true;
    return NULL;
  }
  tl_hmac = ctx;
  return ctx;
}

void pass_code_mac(const uint8_t secret[PASS_SECRET_LEN], const char *pass_id, uint64_t step,
                   uint8_t mac[PASS_MAC_LEN]) {
  uint8_t full[crypto_auth_hmacsha256_BYTES];
  uint8_t be[8];
  for (int i = 7; i >= 0; i--) {
    be[i] = (uint8_t)step;
    step >>= 8;
  }
  EVP_MAC_CTX *ctx = hmac_ctx();
  size_t outl;
  if (ctx && EVP_MAC_init(ctx, secret, PASS_SECRET_LEN, NULL) == 1 &&
      EVP_MAC_update(ctx, (const uint8_t *)"gm-pass-v1", 10) == 1 &&
      EVP_MAC_update(ctx, (const uint8_t *)pass_id, PASS_ID_HEX) == 1 &&
      EVP_MAC_update(ctx, be, sizeof be) == 1 &&
      EVP_MAC_final(ctx, full, &outl, sizeof full) == 1 && outl == sizeof full) {
    memcpy(mac, full, PASS_MAC_LEN);
    return;
  }
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, secret, PASS_SECRET_LEN);
  crypto_auth_hmacsha256_update(&st, (const uint8_t *)"gm-pass-v1", 10);
  crypto_auth_hmacsha256_update(&st, (const uint8_t *)pass_id, PASS_ID_HEX);
  crypto_auth_hmacsha256_update(&st, be, sizeof be);
  crypto_auth_hmacsha256_final(&st, full);
  memcpy(mac, full, PASS_MAC_LEN);
}

void pass_code_make(char *out, const uint8_t secret[PASS_SECRET_LEN], const char *pass_id,
                    uint64_t step) {
  uint8_t mac[PASS_MAC_LEN];
  char hex[2 * PASS_MAC_LEN + 1];
  pass_code_mac(secret, pass_id, step, mac);
  gm_hex(hex, mac, sizeof mac);
  snprintf(out, PASS_CODE_MAX + 1, "%.32s.%llu.%s", pass_id, (unsigned long long)step, hex);
}

static int pass_generate(struct method_env *env, const struct ledger_ticket *t,
                         const json_t *params, struct method_issue *out) {
  if (params && json_object_size(params) > 0)
    return method__einval(env, "pass generate takes no parameters");
  uint8_t rnd[16], secret[PASS_SECRET_LEN];
  char pass_id[PASS_ID_HEX + 1];
  env->random(env->random_arg, rnd, sizeof rnd);
  env->random(env->random_arg, secret, sizeof secret);
  gm_hex(pass_id, rnd, sizeof rnd);
  struct ledger_event ev;
  int rc = ledger_event_get(env->rd, t->event_id, &ev);
  if (rc != 0)
    return rc;
  uint32_t kid;
  uint8_t sk[64];
  if ((rc = keys_signing(env, &kid, sk)) != 0)
    return rc;
  char kids[16], sec64[64];
  keys_kid_str(kids, kid);
  gm_b64url_encode(sec64, sizeof sec64, secret, sizeof secret);
  uint32_t period = env->cfg->pass_period_s;
  json_t *claims = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I}", "tid", t->id, "pid", pass_id,
                             "sec", sec64, "ver", (json_int_t)t->version, "per",
                             (json_int_t)period, "iat", (json_int_t)(env->now_ms / 1000), "exp",
                             (json_int_t)(ev.ends_ms / 1000));
  char jws[GM_JWS_MAX];
  long n = claims ? gm_jws_sign(jws, sizeof jws, kids, "gm-pass", claims, sk) : GM_ENOMEM;
  sodium_memzero(sk, sizeof sk);
  json_decref(claims);
  if (n < 0)
    return (int)n;

  struct ledger_cred *c = method__cred_issue(env, t, "pass", pass_id, out);
  c->expires_ms = ev.ends_ms;
  memcpy(c->secret, secret, sizeof secret);
  c->secret_len = sizeof secret;
  sodium_memzero(secret, sizeof secret);
  out->response = json_pack("{s:s, s:s, s:s, s:I, s:s, s:I}", "payload", jws, "pass_id", pass_id,
                            "secret", sec64, "period_s", (json_int_t)period, "kid", kids,
                            "expires_ms", (json_int_t)c->expires_ms);
  sodium_memzero(sec64, sizeof sec64);
  return out->response ? 0 : GM_ENOMEM;
}

static int pass_verify(struct method_env *env, const json_t *presented,
                       struct method_claim *out) {
  const char *code;
  int rc = method__str(env, presented, "code", &code);
  if (rc != 0)
    return rc;
  if (json_object_size(presented) != 1)
    return method__einval(env, "presented_data for pass takes only code");
  struct pass_code pc;
  if (pass_code_parse(code, strlen(code), &pc) != 0) {
    out->reason = LEDGER_REASON_MALFORMED;
    return 0;
  }
  struct ledger_cred cred;
  if ((rc = method__cred_claim(env, "pass", pc.pass_id, PASS_SECRET_LEN, &cred, out)) != 0 ||
      out->reason != LEDGER_REASON_NONE)
    return rc;
  out->nonce = pc.step;
  uint8_t mac[PASS_MAC_LEN];
  pass_code_mac(cred.secret, pc.pass_id, pc.step, mac);
  if (sodium_memcmp(mac, pc.mac, sizeof mac) != 0) {
    out->reason = LEDGER_REASON_BAD_SIGNATURE;
    return 0;
  }
  uint64_t now_step = (uint64_t)(env->now_ms / 1000) / env->cfg->pass_period_s;
  if (pc.step + 1 < now_step) {
    out->reason = LEDGER_REASON_EXPIRED;
    return 0;
  }
  if (pc.step > now_step + 1) {
    out->reason = LEDGER_REASON_NOT_YET_VALID;
    return 0;
  }
  if (cred.expires_ms && env->now_ms >= cred.expires_ms)
    out->reason = LEDGER_REASON_EXPIRED;
  /* Replay (a step at or below the last seen) is checked by the service for
   * a used ticket and by the ledger when the redeem applies. */
  return 0;
}

const struct method method_pass = {.name = "pass", .generate = pass_generate,
                                   .verify = pass_verify};
