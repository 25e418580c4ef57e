/*
 * qr.h — the compact signed payload inside a ticket QR code.
 *
 * Three forms, all base45 text so the QR code uses alphanumeric mode:
 *  1  ticket QR, issuer-signed:  01 kid issued_s expires_s version idlen id sig
 *  2  holder credential:         02 kid issued_s expires_s version holder_pk idlen id sig
 *     (long-lived, issued once to the holder app, binding its key to the ticket)
 *  3  holder display:            03 len(u16) <form 2> shown_s holder_sig
 *     (made by the holder app at display time, offline, over 03..shown_s)
 * Integers are big-endian u32; sig is Ed25519 by the cluster key kid over
 * every byte before it; holder_sig by holder_pk. A photo of a form-3 code
 * is only good for the freshness window.
 *
 * qr_decode parses bytes without checking signatures; it never reads outside
 * [p, p+n) and rejects trailing bytes. Pointers in struct qr_token point into
 * the caller's buffer.
 */
#ifndef GM_QR_H
#define GM_QR_H

#include <stddef.h>
#include <stdint.h>

#include "../ledger/types.h"

#define QR_BIN_MAX 400
#define QR_TEXT_MAX 640

enum { QR_FORM_TICKET = 1, QR_FORM_HOLDER_CRED = 2, QR_FORM_HOLDER_SHOW = 3 };

struct qr_token {
  int form;
  uint32_t kid;
  uint32_t issued_s;
  uint32_t expires_s;
  uint32_t version;
  char ticket_id[LEDGER_ID_MAX + 1];
  uint8_t holder_pk[32];
  uint8_t sig[64];
  const uint8_t *signed_ptr; /* the bytes sig covers */
  size_t signed_len;
  /* form 3 only */
  uint32_t shown_s;
  uint8_t holder_sig[64];
  const uint8_t *show_ptr; /* the bytes holder_sig covers */
  size_t show_len;
};

int qr_decode(const uint8_t *p, size_t n, struct qr_token *out);
/* base45 text to token; bin must hold QR_BIN_MAX bytes and outlive out. */
int qr_parse_text(const char *text, size_t len, uint8_t *bin, struct qr_token *out);

/* Writes a signed form 1 or 2 payload as base45 text into out (QR_TEXT_MAX).
 * holder_pk NULL gives form 1. */
int qr_issue(char *out, size_t cap, uint32_t kid, const uint8_t sk[64], uint32_t issued_s,
             uint32_t expires_s, uint32_t version, const char *ticket_id,
             const uint8_t *holder_pk);

/* What the holder app does at display time: wraps a form-2 credential (text)
 * into a form-3 payload signed with the holder's secret key. */
int qr_holder_show(char *out, size_t cap, const char *credential, const uint8_t holder_sk[64],
                   uint32_t shown_s);

#endif
