/*
 * codec.c — base45 written here (a few dozen lines; no packaged library), base64
 * through libsodium's constant-time codec.
 */
#include "codec.h"

#include <sodium.h>
#include <string.h>

#include "err.h"

static const char b45_alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";

static int b45_value(char c) {
  const char *p = c ? strchr(b45_alphabet, c) : NULL;
  return p ? (int)(p - b45_alphabet) : -1;
}

long gm_b45_encode(char *out, size_t cap, const uint8_t *in, size_t n) {
  size_t need = gm_b45_enc_len(n);
  if (cap < need + 1)
    return GM_ETOOBIG;
  size_t o = 0;
  for (size_t i = 0; i + 1 < n; i += 2) {
    unsigned v = (unsigned)in[i] * 256u + in[i + 1];
    out[o++] = b45_alphabet[v % 45];
    out[o++] = b45_alphabet[(v / 45) % 45];
    out[o++] = b45_alphabet[v / 2025];
  }
  if (n % 2) {
    unsigned v = in[n - 1];
    out[o++] = b45_alphabet[v % 45];
    out[o++] = b45_alphabet[v / 45];
  }
  out[o] = 0;
  return (long)o;
}

long gm_b45_decode(uint8_t *out, size_t cap, const char *in, size_t n) {
  if (n % 3 == 1)
    return GM_EDECODE;
  size_t need = n / 3 * 2 + (n % 3 == 2);
  if (cap < need)
    return GM_ETOOBIG;
  size_t o = 0;
  size_t i = 0;
  for (; i + 2 < n; i += 3) {
    int c = b45_value(in[i]), d = b45_value(in[i + 1]), e = b45_value(in[i + 2]);
    if (c < 0 || d < 0 || e < 0)
      return GM_EDECODE;
    unsigned v = (unsigned)c + (unsigned)d * 45u + (unsigned)e * 2025u;
    if (v > 0xffff)
      return GM_EDECODE;
    out[o++] = (uint8_t)(v >> 8);
    out[o++] = (uint8_t)v;
  }
  if (n - i == 2) {
    int c = b45_value(in[i]), d = b45_value(in[i + 1]);
    if (c < 0 || d < 0)
      return GM_EDECODE;
    unsigned v = (unsigned)c + (unsigned)d * 45u;
    if (v > 0xff)
      return GM_EDECODE;
    out[o++] = (uint8_t)v;
  }
  return (long)o;
}

static long b64_encode(char *out, size_t cap, const uint8_t *in, size_t n, int variant) {
  size_t need = sodium_base64_encoded_len(n, variant);
  if (cap < need)
    return GM_ETOOBIG;
  sodium_bin2base64(out, cap, in, n, variant);
  return (long)strlen(out);
}

static long b64_decode(uint8_t *out, size_t cap, const char *in, size_t n, int variant) {
  size_t len = 0;
  const char *end = NULL;
  if (sodium_base642bin(out, cap, in, n, NULL, &len, &end, variant) != 0 ||
      end != in + n)
    return n / 4 * 3 > cap ? GM_ETOOBIG : GM_EDECODE;
  return (long)len;
}

long gm_b64url_encode(char *out, size_t cap, const uint8_t *in, size_t n) {
  return b64_encode(out, cap, in, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}
long gm_b64url_decode(uint8_t *out, size_t cap, const char *in, size_t n) {
  return b64_decode(out, cap, in, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}
long gm_b64_encode(char *out, size_t cap, const uint8_t *in, size_t n) {
  return b64_encode(out, cap, in, n, sodium_base64_VARIANT_ORIGINAL);
}
long gm_b64_decode(uint8_t *out, size_t cap, const char *in, size_t n) {
  return b64_decode(out, cap, in, n, sodium_base64_VARIANT_ORIGINAL);
}
