/*
 * secure.c — handshake and frames of the cluster channel (see secure.h).
 */
#include "secure.h"

#include <string.h>

#include "../lib/buf.h"
#include "../lib/err.h"

static const uint8_t hello_magic[4] = {'G', 'M', 'C', '1'};
#define SEC_VERSION 1

void sec_hs_init(struct sec_hs *h, bool client) {
  h->client = client;
  crypto_kx_keypair(h->pk, h->sk);
}

void sec_hs_hello(const struct sec_hs *h, uint8_t out[SEC_HELLO_LEN]) {
  memcpy(out, hello_magic, 4);
  out[4] = SEC_VERSION;
  out[5] = out[6] = out[7] = 0;
  memcpy(out + 8, h->pk, 32);
}

/* BLAKE2b-256 keyed by the cluster key over kx || client pk || server pk. */
static void derive(uint8_t out[32], const uint8_t kx[32], const uint8_t cpk[32],
                   const uint8_t spk[32], const uint8_t cluster_key[32]) {
  crypto_generichash_state st;
  crypto_generichash_init(&st, cluster_key, 32, 32);
  crypto_generichash_update(&st, kx, 32);
  crypto_generichash_update(&st, cpk, 32);
  crypto_generichash_update(&st, spk, 32);
  crypto_generichash_final(&st, out, 32);
}

int sec_hs_finish(struct sec_hs *h, const uint8_t peer_hello[SEC_HELLO_LEN],
                  const uint8_t cluster_key[32], struct sec_chan *ch,
                  uint8_t header_out[SEC_HEADER_LEN]) {
  if (memcmp(peer_hello, hello_magic, 4) != 0 || peer_hello[4] != SEC_VERSION)
    return GM_EDECODE;
  const uint8_t *ppk = peer_hello + 8;
  uint8_t rx[32], tx[32];
  int rc = h->client ? crypto_kx_client_session_keys(rx, tx, h->pk, h->sk, ppk)
                     : crypto_kx_server_session_keys(rx, tx, h->pk, h->sk, ppk);
  sodium_memzero(h->sk, sizeof h->sk);
  if (rc != 0)
    return GM_EDECODE; /* a low-order peer key */
  const uint8_t *cpk = h->client ? h->pk : ppk, *spk = h->client ? ppk : h->pk;
  uint8_t tx_key[32];
  derive(tx_key, tx, cpk, spk, cluster_key);
  derive(ch->rx_key, rx, cpk, spk, cluster_key);
  crypto_secretstream_xchacha20poly1305_init_push(&ch->tx, header_out, tx_key);
  ch->rx_ready = false;
  sodium_memzero(tx_key, sizeof tx_key);
  sodium_memzero(rx, sizeof rx);
  sodium_memzero(tx, sizeof tx);
  return 0;
}

int sec_chan_rx_start(struct sec_chan *ch, const uint8_t header[SEC_HEADER_LEN]) {
  int rc = crypto_secretstream_xchacha20poly1305_init_pull(&ch->rx, header, ch->rx_key);
  sodium_memzero(ch->rx_key, sizeof ch->rx_key);
  ch->rx_ready = rc == 0;
  return rc == 0 ? 0 : GM_EAUTH;
}

void sec_seal(struct sec_chan *ch, const uint8_t *m, size_t n, uint8_t *out) {
  size_t clen = n + crypto_secretstream_xchacha20poly1305_ABYTES;
  gm_le32_put(out, (uint32_t)clen);
  crypto_secretstream_xchacha20poly1305_push(&ch->tx, out + 4, NULL, m, n, NULL, 0,
                                             crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
}

size_t sec_frame_len(const uint8_t *p, size_t n, bool *bad) {
  *bad = false;
  if (n < 4)
    return 0;
  size_t clen = (size_t)p[0] | (size_t)p[1] << 8 | (size_t)p[2] << 16 | (size_t)p[3] << 24;
  if (clen < crypto_secretstream_xchacha20poly1305_ABYTES ||
      clen > SEC_FRAME_MAX + crypto_secretstream_xchacha20poly1305_ABYTES) {
    *bad = true;
    return 0;
  }
  return n >= 4 + clen ? 4 + clen : 0;
}

int sec_open(struct sec_chan *ch, const uint8_t *frame, size_t len, uint8_t *m, size_t *mlen) {
  unsigned long long ml = 0;
  unsigned char tag = 0;
  if (!ch->rx_ready || len < SEC_OVERHEAD)
    return GM_EAUTH;
  if (crypto_secretstream_xchacha20poly1305_pull(&ch->rx, m, &ml, &tag, frame + 4, len - 4, NULL,
                                                 0) != 0 ||
      tag != crypto_secretstream_xchacha20poly1305_TAG_MESSAGE)
    return GM_EAUTH;
  *mlen = (size_t)ml;
  return 0;
}

void sec_chan_wipe(struct sec_chan *ch) { sodium_memzero(ch, sizeof *ch); }
