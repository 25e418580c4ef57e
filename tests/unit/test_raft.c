/*
 * test_raft.c — the Raft glue without a network: the entry codec, the
 * encrypted channel's handshake and frames, and the FSM adapter over a real
 * ledger (apply at an index, skip what is applied, snapshot and restore).
 */
#include <criterion/criterion.h>
#include <sodium.h>

#include "helpers.h"
#include "lib/err.h"
#include "raft/entry.h"
#include "raft/fsm.h"
#include "raft/secure.h"

static void encode_cmd(struct ledger_cmd *c, struct mpk_w *w) {
  mpk_w_init(w);
  ledger_cmd_encode(c, w);
}

Test(entry, round_trip_and_padding) {
  struct gm_slice in[3] = {{(const uint8_t *)"a", 1}, {(const uint8_t *)"bcdef", 5},
                           {(const uint8_t *)"0123456789", 10}};
  struct entry_hdr h = {.count = 3, .origin = 7, .token = 42};
  size_t n = entry_size(3, 16);
  cr_assert_eq(n % 8, 0, "libraft wants entry lengths that are multiples of 8");
  uint8_t buf[128];
  entry_encode(buf, &h, in, 3);
  struct entry_hdr o;
  struct gm_slice out[3];
  cr_assert_eq(entry_decode(buf, n, &o, out, 3), 0);
  cr_assert_eq(o.count, 3);
  cr_assert_eq(o.origin, 7);
  cr_assert_eq(o.token, 42);
  for (int i = 0; i < 3; i++) {
    cr_assert_eq(out[i].len, in[i].len);
    cr_assert_eq(memcmp(out[i].ptr, in[i].ptr, in[i].len), 0);
  }
}

Test(entry, malformed_entries_are_refused) {
  struct gm_slice in[1] = {{(const uint8_t *)"abc", 3}};
  struct entry_hdr h = {.count = 1, .origin = 1, .token = 1};
  uint8_t buf[64];
  size_t n = entry_size(1, 3);
  entry_encode(buf, &h, in, 1);
  struct entry_hdr o;
  for (size_t cut = 0; cut < n; cut++)
    cr_assert_eq(entry_decode(buf, cut, &o, NULL, 0), GM_EDECODE, "cut at %zu", cut);
  uint8_t bad[64];
  memcpy(bad, buf, n);
  bad[0] ^= 1; /* magic */
  cr_assert_eq(entry_decode(bad, n, &o, NULL, 0), GM_EDECODE);
  memcpy(bad, buf, n);
  bad[n - 1] = 1; /* padding must be zero */
  cr_assert_eq(entry_decode(bad, n, &o, NULL, 0), GM_EDECODE);
  memcpy(bad, buf, n);
  bad[24] = 200; /* a command longer than the entry */
  cr_assert_eq(entry_decode(bad, n, &o, NULL, 0), GM_EDECODE);
  memcpy(bad, buf, n);
  bad[4] = 0; /* no commands */
  cr_assert_eq(entry_decode(bad, n, &o, NULL, 0), GM_EDECODE);
}

Test(entry, pads_are_zeros_of_any_length) {
  uint8_t buf[256];
  memset(buf, 0, sizeof buf);
  struct entry_hdr h = {.count = 0, .origin = 3, .token = 0}, o;
  entry_encode(buf, &h, NULL, 0);
  cr_assert_eq(entry_decode(buf, 24, &o, NULL, 0), 0, "a bare pad header");
  cr_assert_eq(entry_decode(buf, sizeof buf, &o, NULL, 0), 0);
  cr_assert_eq(o.count, 0);
  cr_assert_eq(o.origin, 3);
  buf[200] = 1;
  cr_assert_eq(entry_decode(buf, sizeof buf, &o, NULL, 0), GM_EDECODE, "a pad holds zeros only");
  buf[200] = 0;
  cr_assert_eq(entry_decode(buf, sizeof buf - 4, &o, NULL, 0), GM_EDECODE, "length of 8s");
}

/* Two ends of a channel, with keys ka (client) and kb (server). */
static void pair(const uint8_t ka[32], const uint8_t kb[32], struct sec_chan *a, struct sec_chan *b,
                 int *rc_a, int *rc_b) {
  struct sec_hs ha, hb;
  uint8_t hello_a[SEC_HELLO_LEN], hello_b[SEC_HELLO_LEN], hdr_a[SEC_HEADER_LEN],
      hdr_b[SEC_HEADER_LEN];
  sec_hs_init(&ha, true);
  sec_hs_init(&hb, false);
  sec_hs_hello(&ha, hello_a);
  sec_hs_hello(&hb, hello_b);
  cr_assert_eq(sec_hs_finish(&hb, hello_a, kb, b, hdr_b), 0);
  cr_assert_eq(sec_hs_finish(&ha, hello_b, ka, a, hdr_a), 0);
  *rc_a = sec_chan_rx_start(a, hdr_b);
  *rc_b = sec_chan_rx_start(b, hdr_a);
}

Test(secure, same_key_talks_both_ways) {
  cr_assert(sodium_init() >= 0);
  uint8_t k[32] = {1, 2, 3};
  struct sec_chan a, b;
  int ra, rb;
  pair(k, k, &a, &b, &ra, &rb);
  cr_assert_eq(ra, 0);
  cr_assert_eq(rb, 0);
  uint8_t f[64 + SEC_OVERHEAD], m[64];
  size_t ml;
  bool bad;
  sec_seal(&a, (const uint8_t *)"ping", 4, f);
  cr_assert_eq(sec_frame_len(f, 4 + SEC_OVERHEAD, &bad), 4 + SEC_OVERHEAD);
  cr_assert_eq(sec_open(&b, f, 4 + SEC_OVERHEAD, m, &ml), 0);
  cr_assert_eq(ml, 4);
  cr_assert_eq(memcmp(m, "ping", 4), 0);
  sec_seal(&b, (const uint8_t *)"pong!", 5, f);
  cr_assert_eq(sec_open(&a, f, 5 + SEC_OVERHEAD, m, &ml), 0);
  cr_assert_eq(memcmp(m, "pong!", 5), 0);
}

Test(secure, wrong_key_forged_replayed_and_cut_frames_fail) {
  cr_assert(sodium_init() >= 0);
  uint8_t k1[32] = {1}, k2[32] = {2};
  struct sec_chan a, b;
  int ra, rb;
  uint8_t f[64 + SEC_OVERHEAD], g[64 + SEC_OVERHEAD], m[64];
  size_t ml;
  bool bad;
  /* Another cluster key: the first frame does not open. */
  pair(k1, k2, &a, &b, &ra, &rb);
  sec_seal(&a, (const uint8_t *)"join me", 7, f);
  cr_assert_eq(sec_open(&b, f, 7 + SEC_OVERHEAD, m, &ml), GM_EAUTH);
  /* Same key: a flipped bit, a replay and a reordering all fail. */
  pair(k1, k1, &a, &b, &ra, &rb);
  sec_seal(&a, (const uint8_t *)"first", 5, f);
  sec_seal(&a, (const uint8_t *)"second", 6, g);
  uint8_t flip[64 + SEC_OVERHEAD];
  memcpy(flip, f, 5 + SEC_OVERHEAD);
  flip[10] ^= 0x40;
  cr_assert_eq(sec_open(&b, flip, 5 + SEC_OVERHEAD, m, &ml), GM_EAUTH);
  pair(k1, k1, &a, &b, &ra, &rb);
  sec_seal(&a, (const uint8_t *)"first", 5, f);
  sec_seal(&a, (const uint8_t *)"second", 6, g);
  cr_assert_eq(sec_open(&b, g, 6 + SEC_OVERHEAD, m, &ml), GM_EAUTH, "out of order");
  pair(k1, k1, &a, &b, &ra, &rb);
  sec_seal(&a, (const uint8_t *)"first", 5, f);
  cr_assert_eq(sec_open(&b, f, 5 + SEC_OVERHEAD, m, &ml), 0);
  cr_assert_eq(sec_open(&b, f, 5 + SEC_OVERHEAD, m, &ml), GM_EAUTH, "replayed");
  /* Lengths: too short to tell, impossible, and not yet complete. */
  cr_assert_eq(sec_frame_len(f, 3, &bad), 0);
  cr_assert(!bad);
  uint8_t huge[4] = {0xff, 0xff, 0xff, 0x7f};
  sec_frame_len(huge, 4, &bad);
  cr_assert(bad);
  cr_assert_eq(sec_frame_len(f, 5 + SEC_OVERHEAD - 1, &bad), 0);
  cr_assert(!bad);
  /* Not a HELLO at all. */
  struct sec_hs h;
  struct sec_chan c;
  uint8_t junk[SEC_HELLO_LEN] = "GET / HTTP/1.1\r\n", hdr[SEC_HEADER_LEN];
  sec_hs_init(&h, false);
  cr_assert_eq(sec_hs_finish(&h, junk, k1, &c, hdr), GM_EDECODE);
}

/* The FSM over a real ledger, driven the way libraft drives it. */
static char *dir, *dir2;
static struct ledger *l, *l2;
static struct raft fake; /* only last_applied is read */
static struct gm_fsm f;
static uint64_t got_token, got_index;
static size_t got_n;

static void on_applied(void *arg, uint64_t index, uint64_t token, const struct ledger_result *res,
                       size_t n) {
  (void)arg, (void)res;
  got_index = index, got_token = token, got_n = n;
}

static void setup(void) {
  cr_assert(sodium_init() >= 0);
  dir = th_tmpdir();
  dir2 = th_tmpdir();
  l = th_ledger(dir);
  l2 = th_ledger(dir2);
  memset(&fake, 0, sizeof fake);
  cr_assert_eq(gm_fsm_init(&f, l, 1), 0);
  f.raft = &fake;
  f.on_applied = on_applied;
}

static void teardown(void) {
  gm_fsm_close(&f);
  ledger_close(l);
  ledger_close(l2);
  th_rmdir(dir);
  th_rmdir(dir2);
}

/* One entry holding an event and a ticket, proposed by `origin`. */
static struct raft_buffer entry_of(uint64_t origin, uint64_t token, const char *ticket) {
  struct ledger_cmd ev, tk;
  struct ledger_ticket_spec s = {0};
  th_cmd(&ev, LEDGER_OP_EVENT_CREATE, "ev", 1000);
  strcpy(ev.u.event.id, "e1");
  strcpy(ev.u.event.name, "Fest");
  ev.u.event.ends_ms = 1000000;
  th_cmd(&tk, LEDGER_OP_TICKET_CREATE, ticket, 2000);
  strcpy(s.id, ticket);
  strcpy(s.event_id, "e1");
  strcpy(s.holder, "h");
  tk.u.tickets.v = &s;
  tk.u.tickets.n = 1;
  struct mpk_w w1, w2;
  encode_cmd(&ev, &w1);
  encode_cmd(&tk, &w2);
  struct gm_slice sl[2] = {{(const uint8_t *)w1.sb.data, w1.sb.size},
                           {(const uint8_t *)w2.sb.data, w2.sb.size}};
  struct entry_hdr h = {.count = 2, .origin = origin, .token = token};
  size_t n = entry_size(2, sl[0].len + sl[1].len);
  struct raft_buffer b = {.base = raft_malloc(n), .len = n};
  entry_encode(b.base, &h, sl, 2);
  mpk_w_free(&w1);
  mpk_w_free(&w2);
  return b;
}

static void apply_at(uint64_t index, struct raft_buffer *b) {
  void *result = NULL;
  fake.last_applied = index - 1;
  cr_assert_eq(f.fsm.apply(&f.fsm, b, &result), 0);
  fake.last_applied = index;
}

Test(fsm, applies_at_the_raft_index_once, .init = setup, .fini = teardown) {
  struct raft_buffer b = entry_of(1, 77, "t1");
  apply_at(5, &b);
  cr_assert_eq(ledger_applied_seq(l), 5);
  cr_assert_eq(got_token, 77, "results go back to the proposer");
  cr_assert_eq(got_index, 5);
  cr_assert_eq(got_n, 2);
  /* A restart replays index 5: skipped, nothing applies twice. */
  got_token = 0;
  apply_at(5, &b);
  cr_assert_eq(f.skipped_entries, 1);
  cr_assert_eq(got_token, 0);
  /* Another gate's entry: applied, but no results handed out here. */
  struct raft_buffer b2 = entry_of(2, 78, "t2");
  apply_at(6, &b2);
  cr_assert_eq(ledger_applied_seq(l), 6);
  cr_assert_eq(got_token, 0);
  raft_free(b.base);
  raft_free(b2.base);
}

Test(fsm, snapshot_restores_elsewhere_and_is_skipped_when_behind, .init = setup, .fini = teardown) {
  struct raft_buffer b = entry_of(1, 1, "t1");
  apply_at(9, &b);
  raft_free(b.base);
  struct raft_buffer *bufs;
  unsigned n;
  cr_assert_eq(f.fsm.snapshot(&f.fsm, &bufs, &n), 0);
  cr_assert_eq(f.fsm.snapshot_async(&f.fsm, &bufs, &n), 0);
  cr_assert_eq(n, 1);
  /* Copy it as libraft would ship it to another gate. */
  struct raft_buffer copy = {.base = raft_malloc(bufs[0].len), .len = bufs[0].len};
  memcpy(copy.base, bufs[0].base, bufs[0].len);
  struct raft_buffer again = {.base = raft_malloc(bufs[0].len), .len = bufs[0].len};
  memcpy(again.base, bufs[0].base, bufs[0].len);
  cr_assert_eq(f.fsm.snapshot_finalize(&f.fsm, &bufs, &n), 0);

  struct gm_fsm f2;
  cr_assert_eq(gm_fsm_init(&f2, l2, 2), 0);
  f2.raft = &fake;
  cr_assert_eq(f2.fsm.restore(&f2.fsm, &copy), 0);
  cr_assert_eq(ledger_applied_seq(l2), 9);
  uint8_t h1[32], h2[32];
  cr_assert_eq(ledger_hash(l, h1), 0);
  cr_assert_eq(ledger_hash(l2, h2), 0);
  cr_assert_eq(memcmp(h1, h2, 32), 0, "the restored replica equals the original");
  /* A gate whose ledger is already past the snapshot keeps its ledger. */
  struct raft_buffer b3 = entry_of(2, 5, "t3");
  void *result;
  fake.last_applied = 9;
  cr_assert_eq(f2.fsm.apply(&f2.fsm, &b3, &result), 0);
  raft_free(b3.base);
  cr_assert_eq(ledger_applied_seq(l2), 10);
  cr_assert_eq(f2.fsm.restore(&f2.fsm, &again), 0);
  cr_assert_eq(ledger_applied_seq(l2), 10, "not rolled back to the older snapshot");
  /* Garbage is refused and changes nothing. */
  struct raft_buffer junk = {.base = raft_malloc(32), .len = 32};
  memset(junk.base, 'x', 32);
  cr_assert_neq(f2.fsm.restore(&f2.fsm, &junk), 0);
  cr_assert_eq(ledger_applied_seq(l2), 10);
  gm_fsm_close(&f2);
}
