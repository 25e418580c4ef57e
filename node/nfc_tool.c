/*
 * nfc_tool.c — the NFC reader/writer side of gatectl, on libnfc: find a tag
 * in the field, read its UID, write or read Type 2 tag (NTAG21x) pages.
 * Only gatectl links it (and libnfc); the gate itself never talks to a
 * reader — scanners call its API.
 */
#include "nfc_tool.h"

#include <nfc/nfc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/err.h"

struct nfctool {
  nfc_context *ctx;
  nfc_device *dev;
  nfc_target target;
};

int nfctool_open(const char *connstring, struct nfctool **out, char *err, size_t errlen) {
  struct nfctool *t = calloc(1, sizeof *t);
  if (t == NULL)
    return GM_ENOMEM;
  nfc_init(&t->ctx);
  if (t->ctx == NULL) {
    snprintf(err, errlen, "libnfc could not start (connstring '%s' not tried)", connstring);
    free(t);
    return GM_EIO;
  }
  t->dev = nfc_open(t->ctx, connstring);
  if (t->dev == NULL) {
    snprintf(err, errlen,
             "no NFC reader at connstring '%s' (is it plugged in, and is the connstring "
             "right? e.g. pn532_uart:/dev/ttyUSB0, acr122_usb)",
             connstring);
    nfc_exit(t->ctx);
    free(t);
    return GM_EIO;
  }
  if (nfc_initiator_init(t->dev) < 0 ||
      nfc_device_set_property_bool(t->dev, NP_EASY_FRAMING, true) < 0) {
    snprintf(err, errlen, "NFC reader at '%s' refused initiator mode: %s", connstring,
             nfc_strerror(t->dev));
    nfctool_close(t);
    return GM_EIO;
  }
  *out = t;
  return 0;
}

void nfctool_close(struct nfctool *t) {
  if (t == NULL)
    return;
  if (t->dev)
    nfc_close(t->dev);
  nfc_exit(t->ctx);
  free(t);
}

int nfctool_wait_tag(struct nfctool *t, uint8_t uid[10], size_t *uid_len, int timeout_ms) {
  const nfc_modulation nm = {.nmt = NMT_ISO14443A, .nbr = NBR_106};
  for (int waited = 0; timeout_ms < 0 || waited <= timeout_ms; waited += 100) {
    int r = nfc_initiator_select_passive_target(t->dev, nm, NULL, 0, &t->target);
    if (r > 0) {
      size_t n = t->target.nti.nai.szUidLen;
      if (n != 4 && n != 7 && n != 10)
        return GM_EDECODE;
      memcpy(uid, t->target.nti.nai.abtUid, n);
      *uid_len = n;
      return 0;
    }
    if (r < 0)
      return GM_EIO;
    usleep(100 * 1000);
  }
  return GM_ENOTFOUND; /* nothing in the field in time */
}

int nfctool_wait_removed(struct nfctool *t) {
  while (nfc_initiator_target_is_present(t->dev, &t->target) == 0)
    usleep(100 * 1000);
  return 0;
}

/* NTAG21x WRITE (0xA2): one 4-byte page. */
int nfctool_write_t2(struct nfctool *t, const uint8_t *mem, size_t n) {
  for (size_t off = 0; off < n; off += 4) {
    uint8_t cmd[6] = {0xA2, (uint8_t)(4 + off / 4), 0, 0, 0, 0};
    memcpy(cmd + 2, mem + off, n - off < 4 ? n - off : 4);
    uint8_t ack[4];
    if (nfc_initiator_transceive_bytes(t->dev, cmd, sizeof cmd, ack, sizeof ack, 500) < 0)
      return GM_EIO;
  }
  return 0;
}

/* NTAG21x READ (0x30): four pages at a time, from page 4. */
int nfctool_read_t2(struct nfctool *t, uint8_t *mem, size_t cap, size_t *n) {
  size_t at = 0;
  while (at + 16 <= cap) {
    uint8_t cmd[2] = {0x30, (uint8_t)(4 + at / 4)};
    int r = nfc_initiator_transceive_bytes(t->dev, cmd, sizeof cmd, mem + at, 16, 500);
    if (r < 16)
      break;
    at += 16;
    /* Stop after the terminator TLV shows up. */
    if (memchr(mem + at - 16, 0xFE, 16) != NULL)
      break;
  }
  *n = at;
  return at > 0 ? 0 : GM_EIO;
}
