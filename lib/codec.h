/*
 * codec.h — text encodings of binary data: base45 (RFC 9285) for QR payloads,
 * whose alphabet is exactly the QR alphanumeric mode set (so a QR code holds
 * ~1.45x more than with base64), and base64url without padding for JWS/JWK.
 *
 * All functions write into caller buffers and return the written length, or a
 * negative GM_E* code: GM_ETOOBIG when out is too small, GM_EDECODE on input
 * that is not valid in the encoding (bad character, bad length, value > 65535).
 */
#ifndef GM_CODEC_H
#define GM_CODEC_H

#include <stddef.h>
#include <stdint.h>

/* Encoded length of n bytes (without terminator). */
static inline size_t gm_b45_enc_len(size_t n) { return n / 2 * 3 + (n % 2) * 2; }

/* Writes a NUL-terminated string; cap must be >= gm_b45_enc_len(n) + 1. */
long gm_b45_encode(char *out, size_t cap, const uint8_t *in, size_t n);
long gm_b45_decode(uint8_t *out, size_t cap, const char *in, size_t n);

/* base64url, no padding; encode writes a NUL-terminated string. */
long gm_b64url_encode(char *out, size_t cap, const uint8_t *in, size_t n);
long gm_b64url_decode(uint8_t *out, size_t cap, const char *in, size_t n);
/* Standard base64 with padding (PNG bodies in JSON). */
long gm_b64_encode(char *out, size_t cap, const uint8_t *in, size_t n);
long gm_b64_decode(uint8_t *out, size_t cap, const char *in, size_t n);

#endif
