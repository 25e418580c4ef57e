/*
 * wire.h — one gossip datagram, sealed and opened, as pure functions over
 * bytes; the node moves the bytes over UDP.
 *
 * On the wire (every integer little endian):
 *   "GMG1" | sender node id u64 | boot epoch u64 | counter u64 | ciphertext
 * The 24 bytes after the magic are also the XChaCha20-Poly1305 nonce, and
 * the 28-byte header is authenticated with the body. The key is derived from
 * the cluster key (BLAKE2b, its own context), so the cluster port's keys and
 * this one never coincide.
 *
 * A sender never repeats (epoch, counter): the epoch is fixed at start and
 * larger than any the gate used before (the node persists it), the counter
 * counts its packets. A receiver keeps, per sender, the newest epoch and a
 * window over the newest counters (struct gw_replay), so a packet replayed,
 * or sent again from an older run of that gate, is dropped. A packet whose
 * tag does not verify (forged, altered, cut, sealed with another key) opens
 * to nothing.
 */
#ifndef GM_GOSSIP_WIRE_H
#define GM_GOSSIP_WIRE_H

#include <sodium.h>
#include <stddef.h>
#include <stdint.h>

#define GW_HDR_LEN 28
#define GW_OVERHEAD (GW_HDR_LEN + crypto_aead_xchacha20poly1305_ietf_ABYTES)
/* A datagram stays under a common path MTU (1500) less IPv6 and UDP headers. */
#define GW_PACKET_MAX 1400
#define GW_BODY_MAX (GW_PACKET_MAX - GW_OVERHEAD)
/* Counters this far behind the newest one seen from a sender are too old. */
#define GW_REPLAY_WINDOW 64

struct gw_key {
  uint8_t k[crypto_aead_xchacha20poly1305_ietf_KEYBYTES];
};

struct gw_hdr {
  uint64_t from;
  uint64_t epoch;
  uint64_t counter;
};

struct gw_replay {
  uint64_t epoch;
  uint64_t top;    /* newest counter accepted in this epoch */
  uint64_t seen;   /* bit i: counter top - i was accepted */
  int used;        /* 0 until the first packet from this sender */
};

void gw_key_derive(struct gw_key *k, const uint8_t cluster_key[32]);
void gw_key_wipe(struct gw_key *k);

/* Seals body[0..n) (n <= GW_BODY_MAX) into out, which must hold
 * n + GW_OVERHEAD bytes; returns that length, or GM_ETOOBIG. */
int gw_seal(const struct gw_key *k, const struct gw_hdr *h, const uint8_t *body, size_t n,
            uint8_t *out, size_t cap);

/* Reads the header without verifying it (to find the sender's replay
 * state); GM_EDECODE for anything that cannot be a packet. */
int gw_peek(const uint8_t *pkt, size_t n, struct gw_hdr *h);

/* Verifies and decrypts into body (room for GW_BODY_MAX bytes); returns the
 * body's length, GM_EDECODE for a malformed packet, GM_ECRYPTO for one that
 * does not verify. The replay check is separate: see gw_replay_accept. */
int gw_open(const struct gw_key *k, const uint8_t *pkt, size_t n, struct gw_hdr *h,
            uint8_t *body);

/* After gw_open succeeded: 0 and the counter is recorded, or GM_ESTATE when
 * (epoch, counter) was seen before or is too old to tell. */
int gw_replay_accept(struct gw_replay *r, uint64_t epoch, uint64_t counter);

#endif
