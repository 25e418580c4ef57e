/*
 * secure.h — the encrypted, authenticated channel between gates (cluster
 * port), as pure functions over bytes; node/cluster.c moves the bytes.
 *
 * Handshake (fresh X25519 key pairs on both sides for every connection):
 *   client -> server  HELLO  = "GMC1" | version u8 | 3 zero bytes | client pk (32)
 *   server -> client  HELLO  = "GMC1" | version u8 | 3 zero bytes | server pk (32)
 *                     then the server's stream header (24)
 *   client -> server  the client's stream header (24)
 * Each direction's key is BLAKE2b-256 keyed with the cluster key over the
 * X25519 session key (crypto_kx) and both public keys. Without the cluster
 * key a peer derives different keys, so its first frame fails to open. Each
 * direction is a crypto_secretstream (XChaCha20-Poly1305): frames that are
 * forged, altered, reordered, replayed or cut fail to open, and the
 * connection is dropped.
 *
 * Frame on the wire: ciphertext length u32 (little endian) | ciphertext.
 */
#ifndef GM_RAFT_SECURE_H
#define GM_RAFT_SECURE_H

#include <sodium.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SEC_HELLO_LEN 40
#define SEC_HEADER_LEN crypto_secretstream_xchacha20poly1305_HEADERBYTES
#define SEC_OVERHEAD (4 + crypto_secretstream_xchacha20poly1305_ABYTES)
/* Largest plaintext in one frame; longer messages are split by the caller. */
#define SEC_FRAME_MAX ((size_t)64 << 10)

struct sec_hs {
  bool client;
  uint8_t pk[crypto_kx_PUBLICKEYBYTES];
  uint8_t sk[crypto_kx_SECRETKEYBYTES];
};

struct sec_chan {
  crypto_secretstream_xchacha20poly1305_state tx;
  crypto_secretstream_xchacha20poly1305_state rx;
  uint8_t rx_key[32];
  bool rx_ready;
};

void sec_hs_init(struct sec_hs *h, bool client);
void sec_hs_hello(const struct sec_hs *h, uint8_t out[SEC_HELLO_LEN]);
/* With the peer's HELLO: derives both keys, starts the sending stream and
 * writes its header (to send). GM_EDECODE for a HELLO that is not one. */
int sec_hs_finish(struct sec_hs *h, const uint8_t peer_hello[SEC_HELLO_LEN],
                  const uint8_t cluster_key[32], struct sec_chan *ch,
                  uint8_t header_out[SEC_HEADER_LEN]);
/* With the peer's stream header: starts the receiving stream. */
int sec_chan_rx_start(struct sec_chan *ch, const uint8_t header[SEC_HEADER_LEN]);
/* Seals m[0..n) (n <= SEC_FRAME_MAX) into out (n + SEC_OVERHEAD bytes). */
void sec_seal(struct sec_chan *ch, const uint8_t *m, size_t n, uint8_t *out);
/* Length of the frame starting at p (0: need more than n bytes to tell);
 * GM_EDECODE through *bad when the length is impossible. */
size_t sec_frame_len(const uint8_t *p, size_t n, bool *bad);
/* Opens one whole frame (as sized by sec_frame_len) into m; *mlen gets the
 * plaintext length. GM_EAUTH when it does not authenticate. */
int sec_open(struct sec_chan *ch, const uint8_t *frame, size_t len, uint8_t *m, size_t *mlen);
void sec_chan_wipe(struct sec_chan *ch);

#endif
