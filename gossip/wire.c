/* wire.c — sealing, opening and replay windows for gossip datagrams. */
#include "gossip/wire.h"

#include <string.h>

#include "lib/buf.h"
#include "lib/err.h"

static const uint8_t MAGIC[4] = {'G', 'M', 'G', '1'};

void gw_key_derive(struct gw_key *k, const uint8_t cluster_key[32]) {
  /* subkey 1 of context "gmgossip": unrelated to every other use of the key */
  crypto_kdf_derive_from_key(k->k, sizeof k->k, 1, "gmgossip", cluster_key);
}

void gw_key_wipe(struct gw_key *k) { sodium_memzero(k->k, sizeof k->k); }

static void put_hdr(uint8_t *p, const struct gw_hdr *h) {
  memcpy(p, MAGIC, 4);
  gm_le64_put(p + 4, h->from);
  gm_le64_put(p + 12, h->epoch);
  gm_le64_put(p + 20, h->counter);
}

int gw_seal(const struct gw_key *k, const struct gw_hdr *h, const uint8_t *body, size_t n,
            uint8_t *out, size_t cap) {
  if (n > GW_BODY_MAX || cap < n + GW_OVERHEAD)
    return GM_ETOOBIG;
  put_hdr(out, h);
  unsigned long long clen = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(out + GW_HDR_LEN, &clen, body, n, out, GW_HDR_LEN,
                                             NULL, out + 4, k->k);
  return (int)(GW_HDR_LEN + clen);
}

int gw_peek(const uint8_t *pkt, size_t n, struct gw_hdr *h) {
  if (n < GW_OVERHEAD || n > GW_PACKET_MAX || memcmp(pkt, MAGIC, 4) != 0)
    return GM_EDECODE;
  h->from = gm_le64_get(pkt + 4);
  h->epoch = gm_le64_get(pkt + 12);
  h->counter = gm_le64_get(pkt + 20);
  return h->from == 0 ? GM_EDECODE : 0;
}

int gw_open(const struct gw_key *k, const uint8_t *pkt, size_t n, struct gw_hdr *h,
            uint8_t *body) {
  int rc = gw_peek(pkt, n, h);
  if (rc != 0)
    return rc;
  unsigned long long mlen = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(body, &mlen, NULL, pkt + GW_HDR_LEN,
                                                 n - GW_HDR_LEN, pkt, GW_HDR_LEN, pkt + 4,
                                                 k->k) != 0)
    return GM_ECRYPTO;
  return (int)mlen;
}

int gw_replay_accept(struct gw_replay *r, uint64_t epoch, uint64_t counter) {
  if (!r->used || epoch > r->epoch) { /* first packet, or the sender restarted */
    r->used = 1;
    r->epoch = epoch;
    r->top = counter;
    r->seen = 1;
    return 0;
  }
  if (epoch < r->epoch)
    return GM_ESTATE; /* from an earlier run of that gate */
  if (counter > r->top) {
    uint64_t shift = counter - r->top;
    r->seen = shift >= GW_REPLAY_WINDOW ? 0 : r->seen << shift;
    r->seen |= 1;
    r->top = counter;
    return 0;
  }
  uint64_t back = r->top - counter;
  if (back >= GW_REPLAY_WINDOW)
    return GM_ESTATE;
  uint64_t bit = (uint64_t)1 << back;
  if (r->seen & bit)
    return GM_ESTATE;
  r->seen |= bit;
  return 0;
}
