/*
 * jws.c — compact JWS with Ed25519 only (see jws.h).
 */
#include "jws.h"

#include <sodium.h>
#include <string.h>

#include "buf.h"
#include "codec.h"
#include "err.h"

long gm_jws_sign(char *out, size_t cap, const char *kid, const char *typ,
                 const json_t *payload, const uint8_t sk[64]) {
  json_t *hdr = json_pack("{s:s, s:s, s:s}", "alg", "EdDSA", "kid", kid, "typ", typ);
  char *h = hdr ? json_dumps(hdr, JSON_COMPACT) : NULL;
  char *p = json_dumps(payload, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(hdr);
  long rc = GM_ENOMEM;
  if (h == NULL || p == NULL)
    goto out;
  long n1 = gm_b64url_encode(out, cap, (const uint8_t *)h, strlen(h));
  if (n1 < 0 || (size_t)n1 + 2 >= cap) {
    rc = GM_ETOOBIG;
    goto out;
  }
  out[n1] = '.';
  long n2 = gm_b64url_encode(out + n1 + 1, cap - (size_t)n1 - 1, (const uint8_t *)p,
                             strlen(p));
  if (n2 < 0) {
    rc = GM_ETOOBIG;
    goto out;
  }
  size_t si = (size_t)n1 + 1 + (size_t)n2;
  uint8_t sig[64];
  crypto_sign_detached(sig, NULL, (const uint8_t *)out, si, sk);
  if (si + 2 >= cap) {
    rc = GM_ETOOBIG;
    goto out;
  }
  out[si] = '.';
  long n3 = gm_b64url_encode(out + si + 1, cap - si - 1, sig, sizeof sig);
  if (n3 < 0) {
    rc = GM_ETOOBIG;
    goto out;
  }
  rc = (long)(si + 1 + (size_t)n3);
out:
  free(h);
  free(p);
  return rc;
}

static json_t *decode_json_part(const char *s, size_t n) {
  uint8_t buf[GM_JWS_MAX];
  long len = gm_b64url_decode(buf, sizeof buf, s, n);
  if (len < 0)
    return NULL;
  json_error_t err;
  json_t *j = json_loadb((const char *)buf, (size_t)len, JSON_REJECT_DUPLICATES, &err);
  if (j != NULL && !json_is_object(j)) {
    json_decref(j);
    return NULL;
  }
  return j;
}

int gm_jws_parse(const char *s, size_t n, struct gm_jws *out) {
  memset(out, 0, sizeof *out);
  if (n == 0 || n > GM_JWS_MAX)
    return GM_EDECODE;
  const char *d1 = memchr(s, '.', n);
  if (d1 == NULL)
    return GM_EDECODE;
  const char *d2 = memchr(d1 + 1, '.', n - (size_t)(d1 + 1 - s));
  if (d2 == NULL || memchr(d2 + 1, '.', n - (size_t)(d2 + 1 - s)) != NULL)
    return GM_EDECODE;

  json_t *hdr = decode_json_part(s, (size_t)(d1 - s));
  if (hdr == NULL)
    return GM_EDECODE;
  const char *alg = json_string_value(json_object_get(hdr, "alg"));
  const char *kid = json_string_value(json_object_get(hdr, "kid"));
  const char *typ = json_string_value(json_object_get(hdr, "typ"));
  int rc = GM_EDECODE;
  if (alg == NULL || strcmp(alg, "EdDSA") != 0 || kid == NULL ||
      gm_strlcpy(out->kid, sizeof out->kid, kid, strlen(kid)) != 0)
    goto fail_hdr;
  if (typ != NULL && gm_strlcpy(out->typ, sizeof out->typ, typ, strlen(typ)) != 0)
    goto fail_hdr;
  out->payload = decode_json_part(d1 + 1, (size_t)(d2 - d1 - 1));
  if (out->payload == NULL)
    goto fail_hdr;
  if (gm_b64url_decode(out->sig, sizeof out->sig, d2 + 1, n - (size_t)(d2 + 1 - s)) != 64)
    goto fail_payload;
  out->signing_input = s;
  out->signing_input_len = (size_t)(d2 - s);
  json_decref(hdr);
  return 0;

fail_payload:
  json_decref(out->payload);
  out->payload = NULL;
fail_hdr:
  json_decref(hdr);
  return rc;
}

int gm_jws_verify(const struct gm_jws *jws, const uint8_t pk[32]) {
  if (crypto_sign_verify_detached(jws->sig, (const uint8_t *)jws->signing_input,
                                  jws->signing_input_len, pk) != 0)
    return GM_ESIG;
  return 0;
}

void gm_jws_free(struct gm_jws *jws) {
  json_decref(jws->payload);
  jws->payload = NULL;
}
