/*
 * auth.c — password hashing off the loop, token issue and check, token cache.
 */
#include "auth.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/buf.h"
#include "../lib/err.h"
#include "../lib/jws.h"
#include "../methods/keys.h"

int auth_init(struct node *n) {
  n->auth_cache = calloc(AUTH_CACHE_SLOTS, sizeof *n->auth_cache);
  if (n->auth_cache == NULL)
    return GM_ENOMEM;
  randombytes_buf(n->cache_key, sizeof n->cache_key);
  /* Made here, before the loop serves, not on a first login (it blocks ~0.1 s). */
  uint8_t r[16];
  char pw[33];
  randombytes_buf(r, sizeof r);
  gm_hex(pw, r, sizeof r);
  return auth_password_hash_sync(pw, n->dummy_pwhash);
}

void auth_cleanup(struct node *n) {
  free(n->auth_cache);
  n->auth_cache = NULL;
}

static uint64_t token_tag(struct node *n, const char *tok, size_t len) {
  uint8_t h[crypto_shorthash_BYTES];
  crypto_shorthash(h, (const uint8_t *)tok, len, n->cache_key);
  uint64_t t;
  memcpy(&t, h, sizeof t);
  return t | 1; /* 0 marks an empty slot */
}

static int claim_str(json_t *p, const char *k, char *out, size_t cap) {
  const char *s = json_string_value(json_object_get(p, k));
  return s && gm_strlcpy(out, cap, s, strlen(s)) == 0 ? 0 : GM_EAUTH;
}

int auth_token_check(struct node *n, const char *tok, size_t len, struct auth_who *who) {
  int64_t now = node_now_ms();
  uint64_t tag = token_tag(n, tok, len);
  struct auth_cache_slot *slot = &n->auth_cache[tag % AUTH_CACHE_SLOTS];
  if (slot->tag == tag && slot->who.exp_ms > now) {
    n->metrics.auth_cache_hits++;
    *who = slot->who;
    return 0;
  }
  n->metrics.auth_cache_misses++;
  struct gm_jws jws;
  if (gm_jws_parse(tok, len, &jws) != 0)
    return GM_EAUTH;
  int rc = GM_EAUTH;
  uint32_t kid;
  struct method_env env;
  if (strcmp(jws.typ, "JWT") != 0 || keys_kid_parse(jws.kid, &kid) != 0)
    goto out;
  if (node_env_begin(n, &env) != 0)
    goto out;
  uint8_t pk[32];
  int krc = keys_public(&env, kid, pk);
  node_env_end(&env);
  if (krc != 0 || gm_jws_verify(&jws, pk) != 0)
    goto out;
  json_t *exp = json_object_get(jws.payload, "exp");
  const char *role = json_string_value(json_object_get(jws.payload, "role"));
  if (!json_is_integer(exp) || role == NULL)
    goto out;
  who->exp_ms = json_integer_value(exp) * 1000;
  who->role = ledger_role_parse(role);
  if (who->exp_ms <= now || who->role < 0)
    goto out;
  if (claim_str(jws.payload, "sub", who->user_id, sizeof who->user_id) != 0 ||
      claim_str(jws.payload, "usr", who->username, sizeof who->username) != 0)
    goto out;
  slot->tag = tag;
  slot->who = *who;
  rc = 0;
out:
  gm_jws_free(&jws);
  return rc;
}

int auth_token_issue(struct node *n, const struct ledger_user *u, char *out, int64_t *exp_ms) {
  struct method_env env;
  int rc = node_env_begin(n, &env);
  if (rc != 0)
    return rc;
  uint32_t kid;
  uint8_t sk[64];
  rc = keys_signing(&env, &kid, sk);
  node_env_end(&env);
  if (rc != 0)
    return rc;
  int64_t now = node_now_ms();
  *exp_ms = (now + n->cfg.token_ttl_ms) / 1000 * 1000;
  char kids[16];
  keys_kid_str(kids, kid);
  json_t *claims = json_pack("{s:s, s:s, s:s, s:I, s:I}", "sub", u->id, "usr", u->username, "role",
                             ledger_role_str(u->role), "iat", (json_int_t)(now / 1000), "exp",
                             (json_int_t)(*exp_ms / 1000));
  long len = claims ? gm_jws_sign(out, GM_JWS_MAX, kids, "JWT", claims, sk) : GM_ENOMEM;
  sodium_memzero(sk, sizeof sk);
  json_decref(claims);
  return len < 0 ? (int)len : 0;
}

void auth_request_id(struct node *n, const char *principal, const char *idem_key, char *out) {
  out[0] = 0;
  if (idem_key == NULL || idem_key[0] == 0)
    return;
  uint8_t h[16];
  crypto_generichash_state st;
  crypto_generichash_init(&st, NULL, 0, sizeof h);
  crypto_generichash_update(&st, (const uint8_t *)principal, strlen(principal) + 1);
  crypto_generichash_update(&st, (const uint8_t *)idem_key, strlen(idem_key));
  crypto_generichash_final(&st, h, sizeof h);
  memcpy(out, "ik-", 3);
  gm_hex(out + 3, h, sizeof h);
}

struct pw_work {
  uv_work_t w;
  char password[256];
  char hash[LEDGER_PWHASH_MAX + 1];
  bool check;
  int rc;
  auth_pw_cb cb;
  void *arg;
};

int auth_password_hash_sync(const char *password, char out[LEDGER_PWHASH_MAX + 1]) {
  char h[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str(h, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                        crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
    return GM_ENOMEM;
  return gm_strlcpy(out, LEDGER_PWHASH_MAX + 1, h, strlen(h)) == 0 ? 0 : GM_ETOOBIG;
}

static void pw_run(uv_work_t *w) {
  struct pw_work *pw = w->data;
  if (pw->check)
    pw->rc = crypto_pwhash_str_verify(pw->hash, pw->password, strlen(pw->password)) == 0
                 ? 0
                 : GM_EAUTH;
  else
    pw->rc = auth_password_hash_sync(pw->password, pw->hash);
  sodium_memzero(pw->password, sizeof pw->password);
}

static void pw_done(uv_work_t *w, int status) {
  struct pw_work *pw = w->data;
  pw->cb(pw->arg, status == 0 ? pw->rc : GM_EIO, pw->hash);
  free(pw);
}

static int pw_submit(struct node *n, const char *password, const char *hash, bool check,
                     auth_pw_cb cb, void *arg) {
  struct pw_work *pw = calloc(1, sizeof *pw);
  if (pw == NULL)
    return GM_ENOMEM;
  if (gm_strlcpy(pw->password, sizeof pw->password, password, strlen(password)) != 0 ||
      (hash && gm_strlcpy(pw->hash, sizeof pw->hash, hash, strlen(hash)) != 0)) {
    free(pw);
    return GM_EINVAL;
  }
  pw->check = check;
  pw->cb = cb;
  pw->arg = arg;
  pw->w.data = pw;
  if (uv_queue_work(n->loop, &pw->w, pw_run, pw_done) != 0) {
    free(pw);
    return GM_EIO;
  }
  return 0;
}

int auth_password_hash(struct node *n, const char *password, auth_pw_cb cb, void *arg) {
  return pw_submit(n, password, NULL, false, cb, arg);
}

int auth_password_check(struct node *n, const char *password, const char *hash, auth_pw_cb cb,
                        void *arg) {
  return pw_submit(n, password, hash, true, cb, arg);
}
