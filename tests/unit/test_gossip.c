/* test_gossip.c — gossip datagrams: sealing, forgery, replay windows. */
#include <criterion/criterion.h>
#include <string.h>

#include "gossip/wire.h"
#include "lib/err.h"

static void keys(struct gw_key *a, struct gw_key *other) {
  uint8_t ck[32], ck2[32];
  memset(ck, 0x11, sizeof ck);
  memset(ck2, 0x11, sizeof ck2);
  ck2[31] ^= 1;
  gw_key_derive(a, ck);
  gw_key_derive(other, ck2);
}

Test(gossip_wire, seal_open_round_trip) {
  struct gw_key k, other;
  keys(&k, &other);
  struct gw_hdr h = {.from = 7, .epoch = 1795000000000, .counter = 42}, got;
  const char *msg = "ping from 7";
  uint8_t pkt[GW_PACKET_MAX], body[GW_BODY_MAX];
  int n = gw_seal(&k, &h, (const uint8_t *)msg, strlen(msg), pkt, sizeof pkt);
  cr_assert_eq(n, (int)(strlen(msg) + GW_OVERHEAD));
  int m = gw_open(&k, pkt, (size_t)n, &got, body);
  cr_assert_eq(m, (int)strlen(msg));
  cr_assert(memcmp(body, msg, strlen(msg)) == 0);
  cr_assert(got.from == 7 && got.epoch == h.epoch && got.counter == 42);
  /* an empty body is a valid packet too */
  n = gw_seal(&k, &h, NULL, 0, pkt, sizeof pkt);
  cr_assert_eq(gw_open(&k, pkt, (size_t)n, &got, body), 0);
}

Test(gossip_wire, forged_altered_and_foreign_packets_do_not_open) {
  struct gw_key k, other;
  keys(&k, &other);
  struct gw_hdr h = {.from = 3, .epoch = 9, .counter = 1}, got;
  uint8_t body[GW_BODY_MAX], msg[100], pkt[GW_PACKET_MAX];
  memset(msg, 'x', sizeof msg);
  int n = gw_seal(&k, &h, msg, sizeof msg, pkt, sizeof pkt);
  cr_assert_gt(n, 0);
  /* sealed with another cluster key */
  cr_assert_eq(gw_open(&other, pkt, (size_t)n, &got, body), GM_ECRYPTO);
  /* every single flipped bit, header or ciphertext, is caught */
  for (int i = 0; i < n; i++) {
    for (int b = 0; b < 8; b++) {
      pkt[i] ^= (uint8_t)(1 << b);
      int rc = gw_open(&k, pkt, (size_t)n, &got, body);
      cr_assert(rc == GM_ECRYPTO || rc == GM_EDECODE, "byte %d bit %d opened (%d)", i, b, rc);
      pkt[i] ^= (uint8_t)(1 << b);
    }
  }
  /* cut short, or shorter than any packet */
  cr_assert_eq(gw_open(&k, pkt, (size_t)n - 1, &got, body), GM_ECRYPTO);
  cr_assert_eq(gw_open(&k, pkt, GW_OVERHEAD - 1, &got, body), GM_EDECODE);
  /* a sender id of 0 is never valid */
  struct gw_hdr zero = {.from = 0, .epoch = 1, .counter = 1};
  n = gw_seal(&k, &zero, msg, 10, pkt, sizeof pkt);
  cr_assert_eq(gw_open(&k, pkt, (size_t)n, &got, body), GM_EDECODE);
  /* garbage of every length up to a packet */
  uint8_t junk[GW_PACKET_MAX + 10];
  for (size_t i = 0; i < sizeof junk; i++)
    junk[i] = (uint8_t)(i * 37 + 11);
  memcpy(junk, "GMG1", 4);
  for (size_t len = 0; len <= sizeof junk; len++) {
    int rc = gw_open(&k, junk, len, &got, body);
    cr_assert(rc == GM_EDECODE || rc == GM_ECRYPTO);
  }
}

Test(gossip_wire, bodies_over_the_limit_are_refused) {
  struct gw_key k, other;
  keys(&k, &other);
  struct gw_hdr h = {.from = 1, .epoch = 1, .counter = 1};
  static uint8_t big[GW_BODY_MAX + 1], pkt[GW_PACKET_MAX + 64];
  cr_assert_eq(gw_seal(&k, &h, big, GW_BODY_MAX + 1, pkt, sizeof pkt), GM_ETOOBIG);
  cr_assert_eq(gw_seal(&k, &h, big, GW_BODY_MAX, pkt, GW_PACKET_MAX), GW_PACKET_MAX);
  cr_assert_eq(gw_seal(&k, &h, big, 10, pkt, 10 + GW_OVERHEAD - 1), GM_ETOOBIG);
}

Test(gossip_wire, replay_window) {
  struct gw_replay r = {0};
  cr_assert_eq(gw_replay_accept(&r, 5, 100), 0);
  cr_assert_eq(gw_replay_accept(&r, 5, 100), GM_ESTATE); /* the same packet again */
  cr_assert_eq(gw_replay_accept(&r, 5, 101), 0);
  cr_assert_eq(gw_replay_accept(&r, 5, 99), 0);          /* late, inside the window */
  cr_assert_eq(gw_replay_accept(&r, 5, 99), GM_ESTATE);
  cr_assert_eq(gw_replay_accept(&r, 5, 200), 0);          /* a jump forward */
  cr_assert_eq(gw_replay_accept(&r, 5, 101), GM_ESTATE);  /* now too old to tell */
  cr_assert_eq(gw_replay_accept(&r, 5, 200 - GW_REPLAY_WINDOW + 1), 0);
  cr_assert_eq(gw_replay_accept(&r, 5, 200 - GW_REPLAY_WINDOW), GM_ESTATE);
  cr_assert_eq(gw_replay_accept(&r, 4, 1000), GM_ESTATE); /* an earlier run of the sender */
  cr_assert_eq(gw_replay_accept(&r, 6, 1), 0);            /* the sender restarted */
  cr_assert_eq(gw_replay_accept(&r, 5, 201), GM_ESTATE);
  cr_assert_eq(gw_replay_accept(&r, 6, 1), GM_ESTATE);
  /* every counter of a shuffled burst is accepted exactly once */
  struct gw_replay s = {0};
  int order[GW_REPLAY_WINDOW];
  for (int i = 0; i < GW_REPLAY_WINDOW; i++)
    order[i] = (i * 29) % GW_REPLAY_WINDOW;
  for (int pass = 0; pass < 2; pass++)
    for (int i = 0; i < GW_REPLAY_WINDOW; i++)
      cr_assert_eq(gw_replay_accept(&s, 1, 1000 + (uint64_t)order[i]), pass == 0 ? 0 : GM_ESTATE,
                   "pass %d counter %d", pass, order[i]);
}
