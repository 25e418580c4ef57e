/*
 * jws.h — JWS compact serialization with EdDSA (Ed25519), RFC 7515 / RFC 8037.
 *
 * Used for bearer tokens (JWT) and for signed passes. Only "alg":"EdDSA" is
 * accepted: no "none", no algorithm confusion. Parsing and verification are
 * separate so the caller can look the key up by the header's kid in between.
 *
 * Ownership: gm_jws_parse fills a struct gm_jws that owns its payload json_t;
 * release it with gm_jws_free. signing_input points into the caller's string.
 */
#ifndef GM_JWS_H
#define GM_JWS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define GM_JWS_MAX 4096
#define GM_KID_MAX 32

struct gm_jws {
  char kid[GM_KID_MAX + 1];
  char typ[16];
  json_t *payload; /* a JSON object */
  const char *signing_input;
  size_t signing_input_len;
  uint8_t sig[64];
};

/* Signs payload (a JSON object) with sk (libsodium 64-byte Ed25519 secret key).
 * Writes a NUL-terminated compact JWS into out; returns its length or GM_E*. */
long gm_jws_sign(char *out, size_t cap, const char *kid, const char *typ,
                 const json_t *payload, const uint8_t sk[64]);

/* Parses without verifying. GM_EDECODE on anything malformed. */
int gm_jws_parse(const char *s, size_t n, struct gm_jws *out);
/* 0 when the signature verifies with pk, GM_ESIG otherwise. */
int gm_jws_verify(const struct gm_jws *jws, const uint8_t pk[32]);
void gm_jws_free(struct gm_jws *jws);

#endif
