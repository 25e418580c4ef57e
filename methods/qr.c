/*
 * qr.c — the `qr` method (phone-to-phone scanning).
 *
 * generate: an issuer-signed payload valid for cfg->qr_ttl_ms, returned as
 * text, SVG and PNG; or, given the holder app's public key, a long-lived
 * credential binding that key to the ticket (holder-key mode, see qr.h).
 * verify: payload text or a photo of the code; signature, key validity,
 * freshness; the ticket-state checks (version, revocation, use) are the
 * service's, shared by all methods.
 */
#include <sodium.h>
#include <string.h>

#include "../lib/buf.h"
#include "../lib/codec.h"
#include "../lib/err.h"
#include "keys.h"
#include "method.h"
#include "qr.h"
#include "qr_image.h"

static int64_t ceil_s(int64_t ms) { return (ms + 999) / 1000; }

static int qr_generate(struct method_env *env, const struct ledger_ticket *t,
                       const json_t *params, struct method_issue *out) {
  const json_t *hk = params ? json_object_get(params, "holder_key") : NULL;
  const json_t *ttl = params ? json_object_get(params, "ttl_s") : NULL;
  if (params) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)params, k, v) {
      if (strcmp(k, "holder_key") != 0 && strcmp(k, "ttl_s") != 0)
        return method__einval(env, "unknown field %s", k);
    }
  }
  uint8_t holder_pk[32];
  if (hk != NULL) {
    if (!json_is_string(hk) ||
        gm_b64url_decode(holder_pk, sizeof holder_pk, json_string_value(hk),
                         json_string_length(hk)) != 32)
      return method__einval(env, "holder_key must be a base64url Ed25519 public key");
  }
  int64_t ttl_ms = env->cfg->qr_ttl_ms;
  if (ttl != NULL) {
    if (!json_is_integer(ttl) || json_integer_value(ttl) < 5 ||
        json_integer_value(ttl) > 86400)
      return method__einval(env, "ttl_s must be an integer from 5 to 86400");
    ttl_ms = json_integer_value(ttl) * 1000;
  }
  struct ledger_event ev;
  int rc = ledger_event_get(env->rd, t->event_id, &ev);
  if (rc != 0)
    return rc;
  /* A holder credential lives until the event ends: the app makes fresh
   * displays from it offline. */
  int64_t expires_ms = hk ? ev.ends_ms : env->now_ms + ttl_ms;
  if (expires_ms <= env->now_ms)
    return method__einval(env, "the event has ended");
  uint32_t kid;
  uint8_t sk[64];
  if ((rc = keys_signing(env, &kid, sk)) != 0)
    return rc;
  char text[QR_TEXT_MAX];
  rc = qr_issue(text, sizeof text, kid, sk, (uint32_t)(env->now_ms / 1000),
                (uint32_t)ceil_s(expires_ms), t->version, t->id, hk ? holder_pk : NULL);
  sodium_memzero(sk, sizeof sk);
  if (rc != 0)
    return rc;

  struct ledger_cred *c = method__cred_issue(env, t, "qr", t->id, out);
  c->expires_ms = ceil_s(expires_ms) * 1000;
  if (hk) {
    memcpy(c->secret, holder_pk, 32);
    c->secret_len = 32;
  }
  char kids[16];
  keys_kid_str(kids, kid);
  if (hk) {
    out->response = json_pack("{s:s, s:s, s:I, s:s, s:I}", "credential", text, "mode", "holder",
                              "expires_ms", (json_int_t)c->expires_ms, "kid", kids,
                              "window_s", (json_int_t)(env->cfg->holder_window_ms / 1000));
    return out->response ? 0 : GM_ENOMEM;
  }
  struct gm_buf svg, png;
  gm_buf_init(&svg);
  gm_buf_init(&png);
  rc = qr_render_svg(text, &svg);
  if (rc == 0)
    rc = qr_render_png(text, &png);
  char *b64 = NULL;
  if (rc == 0) {
    size_t cap = png.len / 3 * 4 + 8;
    b64 = malloc(cap);
    if (b64 == NULL || gm_b64_encode(b64, cap, png.ptr, png.len) < 0)
      rc = GM_ENOMEM;
  }
  if (rc == 0) {
    out->response = json_pack("{s:s, s:I, s:s, s:s%, s:s}", "payload", text, "expires_ms",
                              (json_int_t)c->expires_ms, "kid", kids, "svg",
                              (const char *)svg.ptr, svg.len, "png_base64", b64);
    if (out->response == NULL)
      rc = GM_ENOMEM;
  }
  free(b64);
  gm_buf_free(&svg);
  gm_buf_free(&png);
  return rc;
}

static int check_signed(struct method_env *env, const struct qr_token *t) {
  uint8_t pk[32];
  int rc = keys_public(env, t->kid, pk);
  if (rc == GM_ENOTFOUND)
    return LEDGER_REASON_BAD_SIGNATURE;
  if (rc == GM_EEXPIRED)
    return LEDGER_REASON_EXPIRED;
  if (rc == GM_ENOTYET)
    return LEDGER_REASON_NOT_YET_VALID;
  if (rc != 0)
    return LEDGER_REASON_BAD_SIGNATURE;
  if (!method__sig_ok(env, t->sig, t->signed_ptr, t->signed_len, pk))
    return LEDGER_REASON_BAD_SIGNATURE;
  int64_t now = env->now_ms, skew = env->cfg->clock_skew_ms;
  if ((int64_t)t->issued_s * 1000 > now + skew)
    return LEDGER_REASON_NOT_YET_VALID;
  if ((int64_t)t->expires_s * 1000 <= now)
    return LEDGER_REASON_EXPIRED;
  return LEDGER_REASON_NONE;
}

static int qr_verify(struct method_env *env, const json_t *presented, struct method_claim *out) {
  const json_t *payload = json_object_get(presented, "payload");
  const json_t *image = json_object_get(presented, "image_base64");
  if ((payload == NULL) == (image == NULL))
    return method__einval(env, "presented_data needs exactly one of payload, image_base64");
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)presented, k, v) {
    if (strcmp(k, "payload") != 0 && strcmp(k, "image_base64") != 0)
      return method__einval(env, "unknown field presented_data.%s", k);
  }
  char text[QR_TEXT_MAX + 1];
  size_t len;
  if (payload) {
    if (!json_is_string(payload))
      return method__einval(env, "payload must be a string");
    len = json_string_length(payload);
    if (len > QR_TEXT_MAX) {
      out->reason = LEDGER_REASON_MALFORMED;
      return 0;
    }
    memcpy(text, json_string_value(payload), len);
    text[len] = 0;
  } else {
    if (!json_is_string(image))
      return method__einval(env, "image_base64 must be a string");
    size_t cap = json_string_length(image) / 4 * 3 + 3;
    uint8_t *img = malloc(cap);
    if (img == NULL)
      return GM_ENOMEM;
    long n = gm_b64_decode(img, cap, json_string_value(image), json_string_length(image));
    if (n < 0) {
      free(img);
      return method__einval(env, "image_base64 is not base64");
    }
    int rc = qr_scan_image(img, (size_t)n, text, sizeof text);
    free(img);
    if (rc == GM_EDECODE)
      return method__einval(env, "image_base64 is not a PNG or PGM image");
    if (rc == GM_ETOOBIG)
      return method__einval(env, "image is too large");
    if (rc != 0) {
      out->reason = LEDGER_REASON_MALFORMED; /* an image with no QR code in it */
      return 0;
    }
    len = strlen(text);
  }
  uint8_t bin[QR_BIN_MAX];
  struct qr_token t;
  if (qr_parse_text(text, len, bin, &t) != 0) {
    out->reason = LEDGER_REASON_MALFORMED;
    return 0;
  }
  if (t.form == QR_FORM_HOLDER_CRED) {
    /* The long-lived credential itself is not an entry code: only a fresh
     * holder-signed display of it is. */
    out->reason = LEDGER_REASON_BAD_SIGNATURE;
    return 0;
  }
  memcpy(out->ticket_id, t.ticket_id, sizeof out->ticket_id);
  memcpy(out->cred_id, t.ticket_id, sizeof out->cred_id);
  out->ticket_version = t.version;
  out->reason = check_signed(env, &t);
  if (out->reason != LEDGER_REASON_NONE || t.form == QR_FORM_TICKET)
    return 0;
  if (!method__sig_ok(env, t.holder_sig, t.show_ptr, t.show_len, t.holder_pk)) {
    out->reason = LEDGER_REASON_BAD_SIGNATURE;
    return 0;
  }
  int64_t shown_ms = (int64_t)t.shown_s * 1000;
  if (shown_ms > env->now_ms + env->cfg->clock_skew_ms)
    out->reason = LEDGER_REASON_NOT_YET_VALID;
  else if (env->now_ms - shown_ms > env->cfg->holder_window_ms)
    out->reason = LEDGER_REASON_EXPIRED;
  return 0;
}

const struct method method_qr = {.name = "qr", .generate = qr_generate, .verify = qr_verify};
