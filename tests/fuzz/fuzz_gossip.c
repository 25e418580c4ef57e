/* fuzz_gossip.c — gossip datagrams from anyone: arbitrary bytes must never
 * open under the cluster's key, and a genuine packet opens exactly once
 * through the replay window. */
#include <string.h>

#include "gossip/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
  static const uint8_t ck[32] = {9};
  struct gw_key k;
  gw_key_derive(&k, ck);
  uint8_t body[GW_BODY_MAX];
  struct gw_hdr h;
  if (gw_open(&k, d, n, &h, body) >= 0)
    __builtin_trap(); /* nothing forged without the key may open */
  /* The input as a body: sealed, it opens to itself, once. */
  size_t m = n < GW_BODY_MAX ? n : GW_BODY_MAX;
  struct gw_hdr s = {.from = 2, .epoch = 77, .counter = m};
  uint8_t pkt[GW_PACKET_MAX];
  int len = gw_seal(&k, &s, d, m, pkt, sizeof pkt);
  if (len != (int)(m + GW_OVERHEAD))
    __builtin_trap();
  int got = gw_open(&k, pkt, (size_t)len, &h, body);
  if (got != (int)m || memcmp(body, d, m) != 0 || h.counter != m)
    __builtin_trap();
  struct gw_replay r = {0};
  if (gw_replay_accept(&r, h.epoch, h.counter) != 0 ||
      gw_replay_accept(&r, h.epoch, h.counter) == 0)
    __builtin_trap();
  gw_key_wipe(&k);
  return 0;
}
