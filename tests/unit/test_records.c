/*
 * test_records.c — the in-place msgpack reader and the record codecs built on
 * it: round trips, unknown fields skipped, missing or repeated-type-wrong
 * fields refused, every truncation refused, hostile sizes refused.
 */
#include <criterion/criterion.h>

#include "ledger/record.h"
#include "lib/err.h"
#include "lib/mpk.h"

/* The writer's bytes are msgpack-c's, value for value: every size class
 * edge of integers, strings, bins, maps and arrays. */
Test(records, writer_matches_msgpack_c_byte_for_byte) {
  static const int64_t ints[] = {0, 1, 31, 32, 127, 128, 255, 256, 65535, 65536,
                                 4294967295LL, 4294967296LL, INT64_MAX, -1, -31, -32,
                                 -33, -127, -128, -129, -32767, -32768, -32769,
                                 -2147483647LL, -2147483648LL, -2147483649LL, INT64_MIN};
  static const size_t lens[] = {0, 1, 15, 16, 31, 32, 255, 256, 65535, 65536, 70000};
  static char blob[70000];
  memset(blob, 'q', sizeof blob);
  struct mpk_w w;
  mpk_w_init(&w);
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
    mpk_i64(&w, ints[i]);
    msgpack_pack_int64(&pk, ints[i]);
    if (ints[i] >= 0) {
      mpk_u64(&w, (uint64_t)ints[i]);
      msgpack_pack_uint64(&pk, (uint64_t)ints[i]);
    }
  }
  mpk_u64(&w, UINT64_MAX);
  msgpack_pack_uint64(&pk, UINT64_MAX);
  for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    mpk_strn(&w, blob, lens[i]);
    msgpack_pack_str(&pk, lens[i]);
    msgpack_pack_str_body(&pk, blob, lens[i]);
    mpk_bin(&w, blob, lens[i]);
    msgpack_pack_bin(&pk, lens[i]);
    msgpack_pack_bin_body(&pk, blob, lens[i]);
    mpk_map(&w, (uint32_t)lens[i]);
    msgpack_pack_map(&pk, lens[i]);
    mpk_arr(&w, (uint32_t)lens[i]);
    msgpack_pack_array(&pk, lens[i]);
  }
  mpk_kv_bool(&w, "t", true);
  msgpack_pack_str(&pk, 1);
  msgpack_pack_str_body(&pk, "t", 1);
  msgpack_pack_true(&pk);
  mpk_bool(&w, false);
  msgpack_pack_false(&pk);
  cr_assert(!w.failed);
  cr_assert_eq(w.sb.size, sb.size);
  cr_assert(memcmp(w.sb.data, sb.data, sb.size) == 0);
  /* A reset drops the bytes and keeps the allocation. */
  char *before = w.sb.data;
  mpk_w_reset(&w);
  mpk_str(&w, "x");
  cr_assert_eq(w.sb.size, 2);
  cr_assert_eq(w.sb.data, before);
  /* A value the buffer cannot grow to hold (its bytes are never read)
   * fails the writer: later writes are dropped until a reset. */
  mpk_strn(&w, "x", (size_t)1 << 40);
  cr_assert(w.failed);
  size_t at = w.sb.size;
  mpk_u64(&w, 1);
  cr_assert_eq(w.sb.size, at);
  mpk_w_reset(&w);
  cr_assert(!w.failed);
  mpk_u64(&w, 1);
  cr_assert_eq(w.sb.size, 1);
  msgpack_sbuffer_destroy(&sb);
  mpk_w_free(&w);
}

Test(records, ticket_cred_event_round_trip) {
  struct mpk_w w;
  mpk_w_init(&w);
  struct ledger_ticket t = {.id = "t1", .event_id = "e1", .holder = "Zoë \"Z\"", .tier = "vip",
                            .status = LEDGER_TICKET_USED, .version = 7, .created_ms = -5,
                            .used_ms = 1700000000123LL, .used_gate = "north", .used_method = "qr",
                            .used_cred = "c9", .last_nonce = 113333333333ULL};
  ledger__ticket_enc(&w, &t);
  struct ledger_ticket t2;
  cr_assert_eq(ledger__ticket_dec(w.sb.data, w.sb.size, &t2), 0);
  cr_assert_eq(memcmp(&t, &t2, sizeof t), 0);
  mpk_w_reset(&w);
  struct ledger_cred c = {.method = "pass", .id = "p1", .ticket_id = "t1", .ticket_version = 2,
                          .generated_ms = 1, .expires_ms = 2, .secret = {1, 2, 3},
                          .secret_len = 3};
  ledger__cred_enc(&w, &c);
  struct ledger_cred c2;
  cr_assert_eq(ledger__cred_dec(w.sb.data, w.sb.size, &c2), 0);
  cr_assert_eq(memcmp(&c, &c2, sizeof c), 0);
  mpk_w_reset(&w);
  struct ledger_event e = {.id = "e1", .name = "Fest", .starts_ms = 0, .ends_ms = INT64_MAX,
                           .policy = LEDGER_POLICY_AVAILABLE, .offline_budget = UINT32_MAX};
  ledger__event_enc(&w, &e);
  struct ledger_event e2;
  cr_assert_eq(ledger__event_dec(w.sb.data, w.sb.size, &e2), 0);
  cr_assert_eq(memcmp(&e, &e2, sizeof e), 0);
  /* Every truncation is refused. */
  for (size_t n = 0; n < w.sb.size; n++)
    cr_assert_eq(ledger__event_dec(w.sb.data, n, &e2), GM_ECORRUPT, "cut at %zu", n);
  mpk_w_free(&w);
}

Test(records, unknown_fields_are_skipped_missing_ones_refused) {
  struct mpk_w w;
  mpk_w_init(&w);
  /* An event written by a newer version, with an extra nested field. */
  mpk_map(&w, 8);
  mpk_kv_str(&w, "id", "e1");
  mpk_str(&w, "future");
  mpk_map(&w, 1);
  mpk_str(&w, "x");
  mpk_arr(&w, 2);
  mpk_i64(&w, -1);
  mpk_bin(&w, "ab", 2);
  mpk_kv_str(&w, "name", "n");
  mpk_kv_i64(&w, "s", 1);
  mpk_kv_i64(&w, "e", 2);
  mpk_kv_u64(&w, "p", 0);
  mpk_kv_u64(&w, "b", 3);
  mpk_kv_i64(&w, "c", 4);
  struct ledger_event e;
  cr_assert_eq(ledger__event_dec(w.sb.data, w.sb.size, &e), 0);
  cr_assert_eq(e.offline_budget, 3);
  mpk_w_reset(&w);
  mpk_map(&w, 2); /* most fields missing */
  mpk_kv_str(&w, "id", "e1");
  mpk_kv_str(&w, "name", "n");
  cr_assert_eq(ledger__event_dec(w.sb.data, w.sb.size, &e), GM_ECORRUPT);
  mpk_w_reset(&w);
  mpk_map(&w, 7); /* right keys, a wrong type */
  mpk_kv_i64(&w, "id", 5);
  mpk_kv_str(&w, "name", "n");
  mpk_kv_i64(&w, "s", 1);
  mpk_kv_i64(&w, "e", 2);
  mpk_kv_u64(&w, "p", 0);
  mpk_kv_u64(&w, "b", 3);
  mpk_kv_i64(&w, "c", 4);
  cr_assert_eq(ledger__event_dec(w.sb.data, w.sb.size, &e), GM_ECORRUPT);
  mpk_w_free(&w);
}

Test(records, reader_bounds_and_types) {
  struct mpk_rd r;
  uint32_t n;
  int64_t v;
  const char *s;
  uint32_t len;
  static const uint8_t map32[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0xa0, 0xc0};
  r = (struct mpk_rd){map32, map32 + sizeof map32};
  cr_assert_eq(mpk_rd_map(&r, &n), GM_EDECODE, "4 billion entries in 2 bytes");
  static const uint8_t str8[] = {0xd9, 0x10, 'a', 'b'};
  r = (struct mpk_rd){str8, str8 + sizeof str8};
  cr_assert_eq(mpk_rd_str(&r, &s, &len), GM_EDECODE);
  static const uint8_t i8[] = {0xd0, 0x80};
  r = (struct mpk_rd){i8, i8 + sizeof i8};
  cr_assert_eq(mpk_rd_i64(&r, &v), 0);
  cr_assert_eq(v, -128);
  static const uint8_t u64big[] = {0xcf, 0xff, 0, 0, 0, 0, 0, 0, 0};
  r = (struct mpk_rd){u64big, u64big + sizeof u64big};
  cr_assert_eq(mpk_rd_i64(&r, &v), GM_EDECODE, "beyond INT64_MAX");
  static const uint8_t nul[] = {0xa3, 'a', 0, 'b'};
  char dst[8];
  r = (struct mpk_rd){nul, nul + sizeof nul};
  cr_assert_eq(mpk_rd_strcpy(&r, dst, sizeof dst), GM_EDECODE, "embedded NUL");
  static const uint8_t deep[] = {0x91, 0x91, 0x91, 0x90};
  r = (struct mpk_rd){deep, deep + sizeof deep};
  cr_assert_eq(mpk_rd_skip(&r), 0);
  cr_assert(r.p == r.end);
}
