/* test_prov.c — provisional admissions in gossip: the store, the index by
 * credential, digests and what a peer is missing, pruning, the codec. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "gossip/prov.h"
#include "lib/buf.h"
#include "lib/err.h"

static const uint8_t HK[16] = {1, 2, 3};

static struct prov_rec rec(uint64_t origin, uint64_t seq, const char *cred) {
  struct prov_rec r;
  memset(&r, 0, sizeof r);
  r.origin = origin;
  r.seq = seq;
  r.epoch = 3;
  r.time_ms = 1000 + (int64_t)seq;
  strcpy(r.method, "qr");
  strcpy(r.gate, "north-3");
  r.key_len = (uint8_t)strlen(cred);
  memcpy(r.key, cred, r.key_len);
  return r;
}

Test(prov, add_lookup_and_duplicates) {
  struct prov *p = prov_create(100, HK);
  struct prov_rec a = rec(7, 1, "qr:abc"), b = rec(9, 1, "qr:abc"), c = rec(7, 2, "pass:x");
  cr_assert_eq(prov_add(p, &a), 1);
  cr_assert_eq(prov_add(p, &a), 0, "the same record twice is one record");
  cr_assert_eq(prov_add(p, &b), 1, "another gate's admission of the same credential is kept too");
  cr_assert_eq(prov_add(p, &c), 1);
  cr_assert_eq(prov_count(p), 3);
  const struct prov_rec *f = prov_lookup(p, (const uint8_t *)"qr:abc", 6);
  cr_assert(f != NULL && f->origin == 7, "the first heard is the one found");
  cr_assert_null(prov_lookup(p, (const uint8_t *)"qr:abd", 6));
  cr_assert_eq(prov_next_seq(p, 7), 3);
  cr_assert_eq(prov_next_seq(p, 42), 1);
  struct prov_rec bad = rec(0, 1, "x");
  cr_assert_eq(prov_add(p, &bad), GM_EINVAL);
  bad = rec(1, 0, "x");
  cr_assert_eq(prov_add(p, &bad), GM_EINVAL);
  prov_destroy(p);
}

Test(prov, out_of_order_records_and_the_contiguous_mark) {
  struct prov *p = prov_create(100, HK);
  struct prov_rec r3 = rec(5, 3, "c3"), r1 = rec(5, 1, "c1"), r2 = rec(5, 2, "c2");
  cr_assert_eq(prov_add(p, &r3), 1);
  cr_assert_eq(prov_contiguous(p, 5), 0);
  cr_assert_eq(prov_add(p, &r1), 1);
  cr_assert_eq(prov_contiguous(p, 5), 1);
  cr_assert_eq(prov_add(p, &r2), 1);
  cr_assert_eq(prov_contiguous(p, 5), 3);
  prov_destroy(p);
}

Test(prov, the_store_is_bounded) {
  struct prov *p = prov_create(10, HK);
  char k[16];
  for (int i = 1; i <= 10; i++) {
    snprintf(k, sizeof k, "k%d", i);
    struct prov_rec r = rec(1, (uint64_t)i, k);
    cr_assert_eq(prov_add(p, &r), 1);
  }
  struct prov_rec r = rec(1, 11, "k11");
  cr_assert_eq(prov_add(p, &r), GM_EFULL);
  prov_prune(p, 1, 5);
  cr_assert_eq(prov_count(p), 5);
  cr_assert_eq(prov_add(p, &r), 1, "room again once pruned");
  struct prov_rec old = rec(1, 3, "k3");
  cr_assert_eq(prov_add(p, &old), 0, "a pruned record is not taken back");
  cr_assert_null(prov_lookup(p, (const uint8_t *)"k3", 2));
  cr_assert_not_null(prov_lookup(p, (const uint8_t *)"k7", 2));
  prov_destroy(p);
}

struct xfer {
  struct prov *to;
  int n;
};
static void deliver(void *arg, const struct prov_rec *r) {
  struct xfer *x = arg;
  cr_assert_geq(prov_add(x->to, r), 0);
  x->n++;
}

Test(prov, digests_bring_two_stores_to_the_same_records) {
  struct prov *a = prov_create(1000, HK), *b = prov_create(1000, HK);
  char k[16];
  /* a has origin 1's 1..50 and origin 2's 1..10; b has origin 1's 30..60
   * (a gap below 30) and origin 3's 1..5 */
  for (int i = 1; i <= 50; i++) {
    snprintf(k, sizeof k, "o1-%d", i);
    struct prov_rec r = rec(1, (uint64_t)i, k);
    prov_add(a, &r);
  }
  for (int i = 1; i <= 10; i++) {
    snprintf(k, sizeof k, "o2-%d", i);
    struct prov_rec r = rec(2, (uint64_t)i, k);
    prov_add(a, &r);
  }
  for (int i = 30; i <= 60; i++) {
    snprintf(k, sizeof k, "o1-%d", i);
    struct prov_rec r = rec(1, (uint64_t)i, k);
    prov_add(b, &r);
  }
  for (int i = 1; i <= 5; i++) {
    snprintf(k, sizeof k, "o3-%d", i);
    struct prov_rec r = rec(3, (uint64_t)i, k);
    prov_add(b, &r);
  }
  uint8_t d[4096];
  /* rounds of: b sends its digest, a answers at most 20 records; and back */
  for (int round = 0; round < 10; round++) {
    int dl = prov_digest(b, d, sizeof d);
    struct xfer x = {b, 0};
    cr_assert_geq(prov_missing(a, d, (size_t)dl, 20, deliver, &x), 0);
    dl = prov_digest(a, d, sizeof d);
    struct xfer y = {a, 0};
    cr_assert_geq(prov_missing(b, d, (size_t)dl, 20, deliver, &y), 0);
  }
  cr_assert_eq(prov_count(a), 75);
  cr_assert_eq(prov_count(b), 75);
  for (uint64_t o = 1; o <= 3; o++)
    cr_assert_eq(prov_contiguous(a, o), prov_contiguous(b, o));
  cr_assert_eq(prov_contiguous(a, 1), 60);
  /* in step now: nothing more to send either way */
  int dl = prov_digest(b, d, sizeof d);
  struct xfer z = {b, 0};
  cr_assert_eq(prov_missing(a, d, (size_t)dl, 100, deliver, &z), 0);
  prov_destroy(a);
  prov_destroy(b);
}

Test(prov, codec_and_malformed_input) {
  struct prov_rec r = rec(77, 9, "geofence:t1"), back;
  uint8_t buf[PROV_REC_WIRE_MAX];
  int n = prov_rec_encode(&r, buf, sizeof buf);
  cr_assert_eq(n, 35 + 11 + 2 + 7);
  cr_assert_eq(prov_rec_decode(buf, (size_t)n, &back), n);
  cr_assert(back.origin == 77 && back.seq == 9 && back.epoch == 3 && back.time_ms == 1009 &&
            strcmp(back.method, "qr") == 0 && strcmp(back.gate, "north-3") == 0 && back.key_len == 11 && memcmp(back.key, "geofence:t1", 11) == 0);
  for (int cut = 0; cut < n; cut++)
    cr_assert_eq(prov_rec_decode(buf, (size_t)cut, &back), GM_EDECODE);
  buf[32] = 0; /* an empty key */
  cr_assert_eq(prov_rec_decode(buf, (size_t)n, &back), GM_EDECODE);
  buf[32] = PROV_KEY_MAX + 1;
  cr_assert_eq(prov_rec_decode(buf, sizeof buf, &back), GM_EDECODE);
  struct prov *p = prov_create(10, HK);
  uint8_t d[3] = {1, 0, 0}; /* says one origin, carries none */
  cr_assert_eq(prov_missing(p, d, sizeof d, 10, deliver, NULL), GM_EDECODE);
  cr_assert_eq(prov_missing(p, d, 1, 10, deliver, NULL), GM_EDECODE);
  uint8_t big[2] = {0xff, 0xff};
  cr_assert_eq(prov_missing(p, big, sizeof big, 10, deliver, NULL), GM_EDECODE);
  prov_destroy(p);
}

static int news;
static void count_new(void *arg, const struct prov_rec *r) {
  (void)arg;
  (void)r;
  news++;
}

Test(prov, push_and_digest_messages) {
  struct prov *a = prov_create(1000, HK), *b = prov_create(1000, HK);
  struct prov_rec rs[40];
  const struct prov_rec *ptr[40];
  for (int i = 0; i < 40; i++) {
    char cred[32];
    snprintf(cred, sizeof cred, "ticket-%d", i);
    rs[i] = rec(5, (uint64_t)i + 1, cred);
    ptr[i] = &rs[i];
    cr_assert_eq(prov_add(a, &rs[i]), 1);
  }
  /* A push fills one datagram body and says how many it took. */
  uint8_t pkt[1300], reply[1300];
  size_t taken, rlen;
  int n = prov_msg_push(ptr, 40, pkt, sizeof pkt, &taken);
  cr_assert_gt(n, 0);
  cr_assert(taken > 5 && taken < 40, "took %zu", taken);
  news = 0;
  cr_assert_eq(prov_msg_recv(b, pkt, (size_t)n, count_new, NULL, reply, sizeof reply, &rlen), 0);
  cr_assert_eq(news, (int)taken);
  cr_assert_eq(rlen, 0);
  /* The same push again adds nothing. */
  news = 0;
  cr_assert_eq(prov_msg_recv(b, pkt, (size_t)n, count_new, NULL, reply, sizeof reply, &rlen), 0);
  cr_assert_eq(news, 0);
  /* Anti-entropy: b's digest to a, a's answer to b, until b has all 40. */
  for (int round = 0; round < 10 && prov_contiguous(b, 5) < 40; round++) {
    int dl = prov_msg_digest(b, pkt, sizeof pkt);
    cr_assert_gt(dl, 0);
    cr_assert_eq(prov_msg_recv(a, pkt, (size_t)dl, NULL, NULL, reply, sizeof reply, &rlen), 0);
    cr_assert_gt(rlen, 0);
    cr_assert_eq(prov_msg_recv(b, reply, rlen, count_new, NULL, pkt, sizeof pkt, &taken), 0);
  }
  cr_assert_eq(prov_contiguous(b, 5), 40);
  cr_assert_eq(prov_count(b), 40);
  int dl = prov_msg_digest(b, pkt, sizeof pkt);
  cr_assert_eq(prov_msg_recv(a, pkt, (size_t)dl, NULL, NULL, reply, sizeof reply, &rlen), 0);
  cr_assert_eq(rlen, 0, "in step: nothing to answer");
  /* Any truncation or extension of a push is refused whole. */
  struct prov *c = prov_create(1000, HK);
  n = prov_msg_push(ptr, 3, pkt, sizeof pkt, &taken);
  cr_assert_eq(taken, 3);
  for (int cut = 0; cut < n; cut++)
    cr_assert_neq(prov_msg_recv(c, pkt, (size_t)cut, NULL, NULL, reply, sizeof reply, &rlen), 0);
  pkt[n] = 0;
  cr_assert_eq(prov_msg_recv(c, pkt, (size_t)n + 1, NULL, NULL, reply, sizeof reply, &rlen),
               GM_EDECODE);
  cr_assert_eq(prov_count(c), 0);
  pkt[0] = 0x4f;
  cr_assert_eq(prov_msg_recv(c, pkt, (size_t)n, NULL, NULL, reply, sizeof reply, &rlen),
               GM_EDECODE);
  prov_destroy(a);
  prov_destroy(b);
  prov_destroy(c);
}

Test(prov, index_stays_exact_through_pruning) {
  /* Against a model: after every prune, a credential is found exactly when a
   * held record has it, and what is found has that credential. */
  struct prov *p = prov_create(4000, HK);
  uint64_t seqs[6] = {0};
  uint32_t x = 12345;
  for (int i = 0; i < 3000; i++) {
    x = x * 1103515245u + 12345u;
    uint64_t o = 1 + (x >> 8) % 5;
    char cred[16];
    snprintf(cred, sizeof cred, "c%u", (x >> 12) % 300);
    struct prov_rec r = rec(o, ++seqs[o], cred);
    cr_assert_eq(prov_add(p, &r), 1);
  }
  for (int round = 0; round < 10; round++) {
    uint64_t o = 1 + (uint64_t)round % 5;
    prov_prune(p, o, seqs[o] * (uint64_t)(round + 1) / 10);
    for (int c = 0; c < 300; c++) {
      char cred[16];
      snprintf(cred, sizeof cred, "c%d", c);
      bool held = false;
      for (uint64_t oo = 1; oo <= 5 && !held; oo++)
        for (uint64_t s = 1; s <= seqs[oo] && !held; s++) {
          const struct prov_rec *r = prov_get(p, oo, s);
          held = r && r->key_len == strlen(cred) && memcmp(r->key, cred, r->key_len) == 0;
        }
      const struct prov_rec *f = prov_lookup(p, (const uint8_t *)cred, strlen(cred));
      cr_assert_eq(f != NULL, held, "round %d credential %s", round, cred);
      if (f)
        cr_assert(f->key_len == strlen(cred) && memcmp(f->key, cred, f->key_len) == 0);
    }
  }
  prov_destroy(p);
}

Test(prov, a_peer_behind_what_was_pruned_skips_ahead) {
  /* a holds origin 5's records 21..60 (1..20 are in its ledger and pruned);
   * b knows nothing. Without the skip mark b's contiguous mark would stay
   * at 0 and every answer would repeat the same first records. */
  struct prov *a = prov_create(1000, HK), *b = prov_create(1000, HK);
  for (uint64_t s = 1; s <= 60; s++) {
    char cred[16];
    snprintf(cred, sizeof cred, "k%u", (unsigned)s);
    struct prov_rec r = rec(5, s, cred);
    cr_assert_eq(prov_add(a, &r), 1);
  }
  prov_prune(a, 5, 20);
  uint8_t dig[1300], ans[1300];
  size_t alen, unused;
  for (int round = 0; round < 10 && prov_contiguous(b, 5) < 60; round++) {
    int dl = prov_msg_digest(b, dig, sizeof dig);
    cr_assert_eq(prov_msg_recv(a, dig, (size_t)dl, NULL, NULL, ans, sizeof ans, &alen), 0);
    cr_assert_gt(alen, 0);
    cr_assert_eq(ans[0], PROV_MSG_ANSWER);
    cr_assert_eq(prov_msg_recv(b, ans, alen, NULL, NULL, dig, sizeof dig, &unused), 0);
  }
  cr_assert_eq(prov_contiguous(b, 5), 60);
  cr_assert_eq(prov_count(b), 40, "b got every record a holds");
  cr_assert_not_null(prov_lookup(b, (const uint8_t *)"k60", 3));
  /* Marks are validated with the rest: a truncated answer changes nothing. */
  struct prov *c = prov_create(1000, HK);
  int dl = prov_msg_digest(c, dig, sizeof dig);
  cr_assert_eq(prov_msg_recv(a, dig, (size_t)dl, NULL, NULL, ans, sizeof ans, &alen), 0);
  for (size_t cut = 0; cut < alen; cut++)
    cr_assert_neq(prov_msg_recv(c, ans, cut, NULL, NULL, dig, sizeof dig, &unused), 0);
  cr_assert_eq(prov_contiguous(c, 5), 0);
  prov_destroy(a);
  prov_destroy(b);
  prov_destroy(c);
}

static void count_only(void *arg, const struct prov_rec *r) {
  uint64_t *per = arg;
  per[r->origin]++;
}

/* Origins are kept ascending by id whatever order they arrive in, and a
 * digest is read in one pass alongside them; a digest in another order (not
 * one this store would write) is answered the same. */
Test(prov, digests_read_in_order_or_out_of_order_alike) {
  struct prov *a = prov_create(1000, HK);
  const uint64_t ids[] = {7, 3, 9, 1, 5};
  char k[16];
  for (size_t i = 0; i < 5; i++)
    for (uint64_t s = 1; s <= 10; s++) {
      snprintf(k, sizeof k, "o%u-%u", (unsigned)ids[i], (unsigned)s);
      struct prov_rec r = rec(ids[i], s, k);
      cr_assert_eq(prov_add(a, &r), 1);
    }
  uint64_t got[8];
  cr_assert_eq(prov_origins(a, got, 8), 5);
  for (size_t i = 0; i < 5; i++)
    cr_assert_eq(got[i], 2 * i + 1);
  /* The peer holds 1..4 of origin 1, 1..10 of 5, 1..2 of 9, nothing of 3
   * or 7, and 1..6 of an origin 4 this store never heard of. */
  const uint64_t peer[][2] = {{1, 4}, {4, 6}, {5, 10}, {9, 2}};
  const uint64_t want[10] = {[1] = 6, [3] = 10, [5] = 0, [7] = 10, [9] = 8};
  uint8_t up[2 + 16 * 4], down[2 + 16 * 4];
  gm_le16_put(up, 4);
  gm_le16_put(down, 4);
  for (size_t i = 0; i < 4; i++) {
    gm_le64_put(up + 2 + 16 * i, peer[i][0]);
    gm_le64_put(up + 10 + 16 * i, peer[i][1]);
    gm_le64_put(down + 2 + 16 * (3 - i), peer[i][0]);
    gm_le64_put(down + 10 + 16 * (3 - i), peer[i][1]);
  }
  const uint8_t *digests[] = {up, down};
  for (int d = 0; d < 2; d++) {
    uint64_t per[10] = {0};
    cr_assert_eq(prov_missing(a, digests[d], sizeof up, 100, count_only, per), 34);
    for (int o = 0; o < 10; o++)
      cr_assert_eq(per[o], want[o], "digest %d, origin %d: %u", d, o, (unsigned)per[o]);
  }
  prov_destroy(a);
}
