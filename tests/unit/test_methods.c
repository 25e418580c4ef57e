/*
 * test_methods.c — qr and pass in process: issue, scan from PNG and PGM,
 * holder-key mode, expiry, forged and truncated payloads, pass codes and
 * replay, key rotation, and the shared service checks.
 */
#include <criterion/criterion.h>
#include <sodium.h>

#include "helpers.h"
#include "lib/codec.h"
#include "lib/err.h"
#include "lib/jws.h"
#include "methods/keys.h"
#include "methods/pass.h"
#include "methods/qr.h"
#include "methods/qr_image.h"
#include "methods/service.h"

static char *dir;
static struct ledger *l;
static struct method_config cfg;
static uint8_t seal[32];
static const int64_t T0 = 1700000000000LL;

static void rnd(void *arg, void *out, size_t n) { randombytes_buf(out, n); }

static void env_open(struct method_env *env, int64_t now) {
  memset(env, 0, sizeof *env);
  cr_assert_eq(ledger_rd_begin(l, &env->rd), 0);
  env->now_ms = now;
  env->cfg = &cfg;
  env->seal_key = seal;
  env->random = rnd;
}

static void commit(struct ledger_cmd *c, const char *rid) {
  struct ledger_result r;
  snprintf(c->rid, sizeof c->rid, "%s", rid);
  strcpy(c->gate, "g1");
  cr_assert_eq(ledger_apply_cmd(l, c, &r), 0);
  cr_assert_eq(r.rc, 0, "%s: %s", rid, gm_err_msg(r.rc));
}

static void add_key(int64_t now, const char *rid) {
  struct method_env env;
  struct ledger_cmd c;
  env_open(&env, now);
  cr_assert_eq(keys_new_cmd(&env, &c), 0);
  ledger_rd_end(env.rd);
  commit(&c, rid);
}

static void setup(void) {
  cr_assert_eq(sodium_init() >= 0, 1);
  randombytes_buf(seal, sizeof seal);
  method_config_default(&cfg);
  dir = th_tmpdir();
  l = th_ledger(dir);
  struct ledger_cmd c;
  struct ledger_result r;
  th_cmd(&c, LEDGER_OP_EVENT_CREATE, "ev", T0);
  strcpy(c.u.event.id, "e1");
  strcpy(c.u.event.name, "Fest");
  c.u.event.starts_ms = T0;
  c.u.event.ends_ms = T0 + 86400000LL;
  cr_assert_eq(ledger_apply_cmd(l, &c, &r), 0);
  cr_assert_eq(th_ticket(l, "e1", "t1"), 0);
  add_key(T0, "k1");
}

static void teardown(void) {
  ledger_close(l);
  th_rmdir(dir);
}

TestSuite(methods, .init = setup, .fini = teardown);

static json_t *generate(const char *method, const char *ticket, json_t *params, int64_t now) {
  struct method_env env;
  env_open(&env, now);
  struct ledger_ticket t;
  cr_assert_eq(ledger_ticket_get(env.rd, ticket, &t), 0);
  struct method_issue is;
  memset(&is, 0, sizeof is);
  int rc = method_find(method)->generate(&env, &t, params, &is);
  ledger_rd_end(env.rd);
  cr_assert_eq(rc, 0, "generate: %s %s", gm_err_msg(rc), env.err);
  commit(&is.cmd, "gen");
  json_decref(params);
  return is.response;
}

static int verify(const char *method, json_t *presented, int64_t now, struct verify_outcome *o) {
  struct method_env env;
  env_open(&env, now);
  int rc = verify_service_check(&env, method, presented, NULL, o);
  ledger_rd_end(env.rd);
  json_decref(presented);
  return rc;
}

static int verify_payload(const char *payload, int64_t now) {
  struct verify_outcome o;
  int rc = verify("qr", json_pack("{s:s}", "payload", payload), now, &o);
  cr_assert_eq(rc, 0);
  return o.claim.reason;
}

Test(methods, qr_payload_verifies_and_expires) {
  json_t *g = generate("qr", "t1", NULL, T0 + 1000);
  const char *p = json_string_value(json_object_get(g, "payload"));
  cr_assert_not_null(p);
  cr_assert_eq(verify_payload(p, T0 + 2000), LEDGER_REASON_NONE);
  cr_assert_eq(verify_payload(p, T0 + 1000 + cfg.qr_ttl_ms + 1000), LEDGER_REASON_EXPIRED);
  cr_assert_eq(verify_payload(p, T0 - 60000), LEDGER_REASON_NOT_YET_VALID);
  json_decref(g);
}

Test(methods, qr_truncated_and_bitflipped_payloads_are_refused) {
  json_t *g = generate("qr", "t1", NULL, T0);
  const char *p = json_string_value(json_object_get(g, "payload"));
  size_t n = strlen(p);
  char buf[QR_TEXT_MAX + 1];
  for (size_t cut = 0; cut < n; cut++) {
    memcpy(buf, p, cut);
    buf[cut] = 0;
    int r = verify_payload(buf, T0);
    cr_assert(r == LEDGER_REASON_MALFORMED || r == LEDGER_REASON_BAD_SIGNATURE,
              "cut at %zu gave %s", cut, ledger_reason_str(r));
  }
  /* Flip each character to another base45 character: never admitted. */
  for (size_t i = 0; i < n; i++) {
    strcpy(buf, p);
    buf[i] = buf[i] == 'A' ? 'B' : 'A';
    int r = verify_payload(buf, T0 + 1000);
    cr_assert_neq(r, LEDGER_REASON_NONE, "flip at %zu admitted", i);
  }
  json_decref(g);
}

/* A signature cache (method_sigs) as the simulator's lane thread fills it:
 * its answer is taken when it has one, and libsodium decides otherwise. */
static int memo_answer, memo_asked;
static int memo_known(void *arg, const uint8_t sig[64], const uint8_t *msg, size_t len,
                      const uint8_t pk[32]) {
  (void)arg, (void)sig, (void)msg, (void)len, (void)pk;
  memo_asked++;
  return memo_answer;
}

static int verify_payload_memo(const char *payload, int64_t now, int answer) {
  struct method_sigs sigs = {memo_known, NULL};
  struct method_env env;
  struct verify_outcome o;
  memo_answer = answer;
  memo_asked = 0;
  env_open(&env, now);
  env.sigs = &sigs;
  json_t *presented = json_pack("{s:s}", "payload", payload);
  cr_assert_eq(verify_service_check(&env, "qr", presented, NULL, &o), 0);
  ledger_rd_end(env.rd);
  json_decref(presented);
  cr_assert_eq(memo_asked, 1, "the cache is asked once per signature");
  return o.claim.reason;
}

Test(methods, qr_takes_a_cached_signature_check_and_checks_itself_without_one) {
  json_t *g = generate("qr", "t1", NULL, T0 + 1000);
  const char *p = json_string_value(json_object_get(g, "payload"));
  cr_assert_eq(verify_payload_memo(p, T0 + 2000, -1), LEDGER_REASON_NONE);
  cr_assert_eq(verify_payload_memo(p, T0 + 2000, 1), LEDGER_REASON_NONE);
  /* The cache's "bad" stands, even for a good signature... */
  cr_assert_eq(verify_payload_memo(p, T0 + 2000, 0), LEDGER_REASON_BAD_SIGNATURE);
  /* ...and the times are still the method's to check. */
  cr_assert_eq(verify_payload_memo(p, T0 + 1000 + cfg.qr_ttl_ms + 1000, 1),
               LEDGER_REASON_EXPIRED);
  json_decref(g);
  uint8_t pk[32], sk[64];
  crypto_sign_keypair(pk, sk);
  char text[QR_TEXT_MAX];
  cr_assert_eq(qr_issue(text, sizeof text, 1, sk, T0 / 1000, T0 / 1000 + 60, 1, "t1", NULL), 0);
  cr_assert_eq(verify_payload_memo(text, T0 + 1000, -1), LEDGER_REASON_BAD_SIGNATURE);
}

Test(methods, qr_forged_with_another_key_is_bad_signature) {
  uint8_t pk[32], sk[64];
  crypto_sign_keypair(pk, sk);
  char text[QR_TEXT_MAX];
  cr_assert_eq(qr_issue(text, sizeof text, 1, sk, T0 / 1000, T0 / 1000 + 60, 1, "t1", NULL), 0);
  cr_assert_eq(verify_payload(text, T0 + 1000), LEDGER_REASON_BAD_SIGNATURE);
  cr_assert_eq(qr_issue(text, sizeof text, 77, sk, T0 / 1000, T0 / 1000 + 60, 1, "t1", NULL), 0);
  cr_assert_eq(verify_payload(text, T0 + 1000), LEDGER_REASON_BAD_SIGNATURE);
}

Test(methods, qr_scans_from_png_and_pgm) {
  json_t *g = generate("qr", "t1", NULL, T0);
  const char *p = json_string_value(json_object_get(g, "payload"));
  const char *png64 = json_string_value(json_object_get(g, "png_base64"));
  cr_assert_not_null(png64);
  cr_assert(strstr(json_string_value(json_object_get(g, "svg")), "<svg") != NULL);
  size_t cap = strlen(png64);
  uint8_t *png = malloc(cap);
  long n = gm_b64_decode(png, cap, png64, strlen(png64));
  cr_assert_gt(n, 0);
  char text[QR_TEXT_MAX + 1];
  cr_assert_eq(qr_scan_image(png, (size_t)n, text, sizeof text), 0);
  cr_assert_str_eq(text, p);
  free(png);

  uint8_t *px;
  uint32_t side;
  cr_assert_eq(qr_render_gray(p, &px, &side), 0);
  struct gm_buf pgm;
  gm_buf_init(&pgm);
  gm_buf_printf(&pgm, "P5\n# camera\n%u %u\n255\n", side, side);
  gm_buf_append(&pgm, px, (size_t)side * side);
  cr_assert_eq(qr_scan_image(pgm.ptr, pgm.len, text, sizeof text), 0);
  cr_assert_str_eq(text, p);
  /* A blank picture holds no code; a truncated one is not an image. */
  memset(pgm.ptr + pgm.len - (size_t)side * side, 255, (size_t)side * side);
  cr_assert_eq(qr_scan_image(pgm.ptr, pgm.len, text, sizeof text), GM_ENOTFOUND);
  cr_assert_eq(qr_scan_image(pgm.ptr, pgm.len - 10, text, sizeof text), GM_EDECODE);
  cr_assert_eq(qr_scan_image((const uint8_t *)"hello", 5, text, sizeof text), GM_EDECODE);
  gm_buf_free(&pgm);
  free(px);
  json_decref(g);
}

Test(methods, qr_holder_key_mode) {
  uint8_t hpk[32], hsk[64];
  crypto_sign_keypair(hpk, hsk);
  char hk[64];
  gm_b64url_encode(hk, sizeof hk, hpk, 32);
  json_t *g = generate("qr", "t1", json_pack("{s:s}", "holder_key", hk), T0);
  const char *cred = json_string_value(json_object_get(g, "credential"));
  cr_assert_not_null(cred);
  /* The credential alone does not open the gate. */
  cr_assert_eq(verify_payload(cred, T0 + 1000), LEDGER_REASON_BAD_SIGNATURE);
  char show[QR_TEXT_MAX];
  int64_t later = T0 + 3600 * 1000;
  cr_assert_eq(qr_holder_show(show, sizeof show, cred, hsk, (uint32_t)(later / 1000)), 0);
  cr_assert_eq(verify_payload(show, later + 2000), LEDGER_REASON_NONE);
  /* A screenshot replayed after the window is expired. */
  cr_assert_eq(verify_payload(show, later + cfg.holder_window_ms + 2000), LEDGER_REASON_EXPIRED);
  /* Signed by some other phone: bad signature. */
  uint8_t opk[32], osk[64];
  crypto_sign_keypair(opk, osk);
  cr_assert_eq(qr_holder_show(show, sizeof show, cred, osk, (uint32_t)(later / 1000)), 0);
  cr_assert_eq(verify_payload(show, later + 1000), LEDGER_REASON_BAD_SIGNATURE);
  json_decref(g);
}

Test(methods, key_rotation_keeps_old_credentials_valid) {
  json_t *g = generate("qr", "t1", json_pack("{s:i}", "ttl_s", 3600), T0);
  const char *p = json_string_value(json_object_get(g, "payload"));
  add_key(T0 + 1000, "k2");
  struct method_env env;
  env_open(&env, T0 + 2000);
  uint32_t kid;
  uint8_t sk[64];
  cr_assert_eq(keys_signing(&env, &kid, sk), 0);
  cr_assert_eq(kid, 2);
  ledger_rd_end(env.rd);
  cr_assert_eq(verify_payload(p, T0 + 2000), LEDGER_REASON_NONE);
  /* After the old key's not_after, its credentials stop verifying. */
  cr_assert_eq(verify_payload(p, T0 + cfg.key_validity_ms + 1), LEDGER_REASON_EXPIRED);
  json_decref(g);
}

Test(methods, key_does_not_unseal_with_wrong_cluster_key) {
  struct method_env env;
  env_open(&env, T0);
  uint8_t other[32] = {1};
  env.seal_key = other;
  uint32_t kid;
  uint8_t sk[64];
  cr_assert_eq(keys_signing(&env, &kid, sk), GM_ECRYPTO);
  ledger_rd_end(env.rd);
}

Test(methods, pass_code_verifies_once_then_replayed) {
  json_t *g = generate("pass", "t1", NULL, T0);
  const char *jws = json_string_value(json_object_get(g, "payload"));
  const char *pid = json_string_value(json_object_get(g, "pass_id"));
  const char *sec = json_string_value(json_object_get(g, "secret"));
  struct gm_jws parsed;
  cr_assert_eq(gm_jws_parse(jws, strlen(jws), &parsed), 0);
  cr_assert_str_eq(parsed.kid, "k1");
  cr_assert_str_eq(json_string_value(json_object_get(parsed.payload, "pid")), pid);
  gm_jws_free(&parsed);

  uint8_t secret[32];
  cr_assert_eq(gm_b64url_decode(secret, sizeof secret, sec, strlen(sec)), 32);
  uint64_t step = (uint64_t)(T0 / 1000) / cfg.pass_period_s;
  char code[PASS_CODE_MAX + 1];
  pass_code_make(code, secret, pid, step);
  struct verify_outcome o;
  cr_assert_eq(verify("pass", json_pack("{s:s}", "code", code), T0, &o), 0);
  cr_assert_eq(o.claim.reason, LEDGER_REASON_NONE);
  cr_assert(o.propose);
  cr_assert_eq(o.redeem.u.redeem.nonce, step);
  struct ledger_cmd c = o.redeem;
  struct ledger_result r;
  strcpy(c.rid, "redeem-1");
  cr_assert_eq(ledger_apply_cmd(l, &c, &r), 0);
  cr_assert_eq(r.reason, LEDGER_REASON_NONE);
  cr_assert_eq(verify("pass", json_pack("{s:s}", "code", code), T0, &o), 0);
  cr_assert_eq(o.claim.reason, LEDGER_REASON_REPLAYED);
  /* Outside ±1 step. */
  pass_code_make(code, secret, pid, step + 5);
  cr_assert_eq(verify("pass", json_pack("{s:s}", "code", code), T0, &o), 0);
  cr_assert_eq(o.claim.reason, LEDGER_REASON_NOT_YET_VALID);
  pass_code_make(code, secret, pid, step - 2);
  cr_assert_eq(verify("pass", json_pack("{s:s}", "code", code), T0, &o), 0);
  cr_assert_eq(o.claim.reason, LEDGER_REASON_EXPIRED);
  /* A wrong MAC. */
  pass_code_make(code, secret, pid, step + 1);
  char *last = &code[strlen(code) - 1];
  *last = *last == '0' ? '1' : '0'; /* still hex, so it parses: only the MAC is wrong */
  cr_assert_eq(verify("pass", json_pack("{s:s}", "code", code), T0, &o), 0);
  cr_assert_eq(o.claim.reason, LEDGER_REASON_BAD_SIGNATURE);
  json_decref(g);
}

Test(methods, pass_mac_is_hmac_sha256) {
  uint8_t secret[32], mac[PASS_MAC_LEN], full[32];
  const char *pid = "0123456789abcdef0123456789abcdef";
  for (int i = 0; i < 20; i++) {
    randombytes_buf(secret, sizeof secret);
    uint64_t step = 1000000u + (uint64_t)i * 7919u;
    pass_code_mac(secret, pid, step, mac);
    uint8_t msg[10 + 32 + 8];
    memcpy(msg, "gm-pass-v1", 10);
    memcpy(msg + 10, pid, 32);
    for (int b = 0; b < 8; b++)
      msg[42 + b] = (uint8_t)(step >> (56 - 8 * b));
    crypto_auth_hmacsha256(full, msg, sizeof msg, secret);
    cr_assert_arr_eq(mac, full, PASS_MAC_LEN);
  }
}

Test(methods, pass_code_parser_rejects_garbage) {
  struct pass_code pc;
  const char *bad[] = {"", "x", "0123456789abcdef0123456789abcdef.1.",
                       "0123456789abcdef0123456789abcdeX.1.0011223344556677",
                       "0123456789abcdef0123456789abcdef..0011223344556677",
                       "0123456789abcdef0123456789abcdef.0.0011223344556677",
                       "0123456789abcdef0123456789abcdef.1.001122334455667",
                       "0123456789abcdef0123456789abcdef.99999999999999999.0011223344556677"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    cr_assert_eq(pass_code_parse(bad[i], strlen(bad[i]), &pc), GM_EDECODE, "%s", bad[i]);
  const char *good = "0123456789abcdef0123456789abcdef.42.0011223344556677";
  cr_assert_eq(pass_code_parse(good, strlen(good), &pc), 0);
  cr_assert_eq(pc.step, 42);
}

Test(methods, malformed_presented_data_is_einval_not_a_verdict) {
  struct verify_outcome o;
  cr_assert_eq(verify("qr", json_pack("{}"), T0, &o), GM_EINVAL);
  cr_assert_eq(verify("qr", json_pack("{s:i}", "payload", 5), T0, &o), GM_EINVAL);
  cr_assert_eq(verify("qr", json_pack("{s:s,s:s}", "payload", "A", "x", "y"), T0, &o), GM_EINVAL);
  cr_assert_eq(verify("pass", json_pack("{s:b}", "code", 1), T0, &o), GM_EINVAL);
  cr_assert_eq(verify("nope", json_pack("{}"), T0, &o), GM_ENOTFOUND);
}

Test(methods, disabled_method_gives_method_disabled) {
  struct ledger_cmd c;
  memset(&c, 0, sizeof c);
  c.op = LEDGER_OP_METHOD_TOGGLE;
  c.ts_ms = T0;
  strcpy(c.u.toggle.method, "qr");
  commit(&c, "toggle");
  json_t *g = generate("qr", "t1", NULL, T0);
  cr_assert_eq(verify_payload(json_string_value(json_object_get(g, "payload")), T0),
               LEDGER_REASON_METHOD_DISABLED);
  json_decref(g);
}

Test(methods, base45_roundtrip_and_rejects) {
  uint8_t in[200], out[200];
  char txt[400];
  for (size_t n = 0; n < 50; n++) {
    randombytes_buf(in, n);
    long e = gm_b45_encode(txt, sizeof txt, in, n);
    cr_assert_eq((size_t)e, gm_b45_enc_len(n));
    cr_assert_eq(gm_b45_decode(out, sizeof out, txt, (size_t)e), (long)n);
    cr_assert_arr_eq(in, out, n);
  }
  /* RFC 9285 examples. */
  cr_assert_eq(gm_b45_encode(txt, sizeof txt, (const uint8_t *)"AB", 2), 3);
  cr_assert_str_eq(txt, "BB8");
  cr_assert_eq(gm_b45_encode(txt, sizeof txt, (const uint8_t *)"Hello!!", 7), 11);
  cr_assert_str_eq(txt, "%69 VD92EX0");
  cr_assert_eq(gm_b45_decode(out, sizeof out, "GGW", 3), GM_EDECODE); /* 65535 < value */
  cr_assert_eq(gm_b45_decode(out, sizeof out, "a", 1), GM_EDECODE);
  cr_assert_eq(gm_b45_decode(out, sizeof out, "aa", 2), GM_EDECODE);
}
