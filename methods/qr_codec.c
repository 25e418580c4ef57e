/*
 * qr_codec.c — byte layout of QR payloads (see qr.h).
 */
#include <sodium.h>
#include <string.h>

#include "../lib/codec.h"
#include "../lib/buf.h"
#include "../lib/err.h"
#include "qr.h"

/* Parses a form 1 or 2 token occupying exactly p[0..n). */
static int decode_signed(const uint8_t *p, size_t n, struct qr_token *t) {
  size_t fixed = 1 + 16;
  if (n < fixed + 1 + 64 || (p[0] != QR_FORM_TICKET && p[0] != QR_FORM_HOLDER_CRED))
    return GM_EDECODE;
  t->form = p[0];
  t->kid = gm_be32_get(p + 1);
  t->issued_s = gm_be32_get(p + 5);
  t->expires_s = gm_be32_get(p + 9);
  t->version = gm_be32_get(p + 13);
  size_t off = fixed;
  if (t->form == QR_FORM_HOLDER_CRED) {
    if (n < off + 32 + 1 + 64)
      return GM_EDECODE;
    memcpy(t->holder_pk, p + off, 32);
    off += 32;
  }
  size_t idlen = p[off++];
  if (idlen == 0 || idlen > LEDGER_ID_MAX || n != off + idlen + 64)
    return GM_EDECODE;
  if (memchr(p + off, 0, idlen) != NULL)
    return GM_EDECODE;
  memcpy(t->ticket_id, p + off, idlen);
  t->ticket_id[idlen] = 0;
  off += idlen;
  t->signed_ptr = p;
  t->signed_len = off;
  memcpy(t->sig, p + off, 64);
  return 0;
}

int qr_decode(const uint8_t *p, size_t n, struct qr_token *out) {
  memset(out, 0, sizeof *out);
  if (n == 0 || n > QR_BIN_MAX)
    return GM_EDECODE;
  if (p[0] != QR_FORM_HOLDER_SHOW)
    return decode_signed(p, n, out);
  if (n < 3)
    return GM_EDECODE;
  size_t inner = (size_t)p[1] << 8 | p[2];
  if (n != 3 + inner + 4 + 64)
    return GM_EDECODE;
  int rc = decode_signed(p + 3, inner, out);
  if (rc != 0 || out->form != QR_FORM_HOLDER_CRED)
    return GM_EDECODE;
  out->form = QR_FORM_HOLDER_SHOW;
  out->shown_s = gm_be32_get(p + 3 + inner);
  out->show_ptr = p;
  out->show_len = 3 + inner + 4;
  memcpy(out->holder_sig, p + out->show_len, 64);
  return 0;
}

int qr_parse_text(const char *text, size_t len, uint8_t *bin, struct qr_token *out) {
  if (len == 0 || len > QR_TEXT_MAX)
    return GM_EDECODE;
  long n = gm_b45_decode(bin, QR_BIN_MAX, text, len);
  if (n < 0)
    return GM_EDECODE;
  return qr_decode(bin, (size_t)n, out);
}

int qr_issue(char *out, size_t cap, uint32_t kid, const uint8_t sk[64], uint32_t issued_s,
             uint32_t expires_s, uint32_t version, const char *ticket_id,
             const uint8_t *holder_pk) {
  uint8_t b[QR_BIN_MAX];
  size_t idlen = strlen(ticket_id);
  if (idlen == 0 || idlen > LEDGER_ID_MAX)
    return GM_EINVAL;
  b[0] = holder_pk ? QR_FORM_HOLDER_CRED : QR_FORM_TICKET;
  gm_be32_put(b + 1, kid);
  gm_be32_put(b + 5, issued_s);
  gm_be32_put(b + 9, expires_s);
  gm_be32_put(b + 13, version);
  size_t off = 17;
  if (holder_pk) {
    memcpy(b + off, holder_pk, 32);
    off += 32;
  }
  b[off++] = (uint8_t)idlen;
  memcpy(b + off, ticket_id, idlen);
  off += idlen;
  crypto_sign_detached(b + off, NULL, b, off, sk);
  off += 64;
  return gm_b45_encode(out, cap, b, off) < 0 ? GM_ETOOBIG : 0;
}

int qr_holder_show(char *out, size_t cap, const char *credential, const uint8_t holder_sk[64],
                   uint32_t shown_s) {
  uint8_t inner[QR_BIN_MAX];
  struct qr_token t;
  int rc = qr_parse_text(credential, strlen(credential), inner, &t);
  if (rc != 0 || t.form != QR_FORM_HOLDER_CRED)
    return GM_EINVAL;
  size_t n = t.signed_len + 64;
  uint8_t b[QR_BIN_MAX];
  if (3 + n + 4 + 64 > sizeof b)
    return GM_ETOOBIG;
  b[0] = QR_FORM_HOLDER_SHOW;
  b[1] = (uint8_t)(n >> 8);
  b[2] = (uint8_t)n;
  memcpy(b + 3, inner, n);
  gm_be32_put(b + 3 + n, shown_s);
  size_t signed_len = 3 + n + 4;
  crypto_sign_detached(b + signed_len, NULL, b, signed_len, holder_sk);
  return gm_b45_encode(out, cap, b, signed_len + 64) < 0 ? GM_ETOOBIG : 0;
}
