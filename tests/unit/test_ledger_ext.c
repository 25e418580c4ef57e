/*
 * test_ledger_ext.c — the ledger commands behind the nfc, biometric and
 * geofence methods and the background jobs: enrolment and erasure, erasure
 * receipts, zones, credential expiry, the NFC read counter, and a snapshot
 * that carries all of their tables.
 */
#include <criterion/criterion.h>

#include "helpers.h"
#include "lib/err.h"

static char *dir;
static struct ledger *l;

static void setup(void) {
  dir = th_tmpdir();
  l = th_ledger(dir);
  cr_assert_not_null(l);
  cr_assert_eq(th_event(l, "e1", LEDGER_POLICY_STRICT), 0);
  cr_assert_eq(th_ticket(l, "e1", "t1"), 0);
  cr_assert_eq(th_ticket(l, "e1", "t2"), 0);
}

static void teardown(void) {
  ledger_close(l);
  th_rmdir(dir);
}

TestSuite(ledger_ext, .init = setup, .fini = teardown);

static int apply(struct ledger_cmd *c, struct ledger_result *r) {
  int rc = ledger_apply_cmd(l, c, r);
  return rc ? rc : r->rc;
}

/* A BIO_ENROLL of `ticket` whose "ciphertext" is 64 bytes of `fill`. */
static int enrol(const char *rid, const char *ticket, uint8_t fill) {
  struct ledger_cmd c;
  struct ledger_result r;
  th_cmd(&c, LEDGER_OP_BIO_ENROLL, rid, 3000);
  strcpy(c.u.bio.ticket_id, ticket);
  c.u.bio.ticket_version = 1;
  c.u.bio.dim = 10;
  memset(c.u.bio.wrapped, fill ^ 0x55, sizeof c.u.bio.wrapped);
  c.u.bio.ct_len = 24 + 40 + 16;
  c.u.bio.ct = malloc(c.u.bio.ct_len);
  memset(c.u.bio.ct, fill, c.u.bio.ct_len);
  int rc = apply(&c, &r);
  ledger_cmd_free(&c);
  return rc;
}

static int erase(const char *rid, const char *ticket) {
  struct ledger_cmd c;
  struct ledger_result r;
  th_cmd(&c, LEDGER_OP_BIO_ERASE, rid, 4000);
  strcpy(c.u.erase.ticket_id, ticket);
  strcpy(c.u.erase.reason, "request");
  return apply(&c, &r);
}

static int receipt(const char *rid, const char *gate, long long ts, const char *ticket,
                   struct ledger_result *r) {
  struct ledger_cmd c;
  th_cmd(&c, LEDGER_OP_BIO_RECEIPT, rid, ts);
  strcpy(c.gate, gate);
  char ids[2][LEDGER_ID_MAX + 1];
  strcpy(ids[0], ticket);
  strcpy(ids[1], "no-such-ticket");
  c.u.receipts.v = ids;
  c.u.receipts.n = 2;
  return apply(&c, r);
}

static int log_count(void *arg, uint64_t gen, const char *ticket_id) {
  (*(int *)arg)++;
  return 0;
}

/* The receipt time of gate "north". */
static int rcpt_ts(void *arg, const struct ledger_bio_receipt *rc) {
  if (strcmp(rc->gate, "north") == 0)
    *(int64_t *)arg = rc->erased_ms;
  return 0;
}

Test(ledger_ext, erase_destroys_the_key_and_ciphertext_once) {
  cr_assert_eq(enrol("b1", "t1", 0xAB), 0);
  cr_assert_eq(enrol("b2", "no-such-ticket", 0xAB), GM_ENOTFOUND);
  struct ledger_rd *rd;
  struct ledger_bio *b = malloc(sizeof *b);
  cr_assert_eq(ledger_rd_begin(l, &rd), 0);
  cr_assert_eq(ledger_bio_get(rd, "t1", b), 0);
  cr_assert_eq(b->ct_len, 80);
  cr_assert_eq(b->ct[5], 0xAB);
  cr_assert_eq(b->wrapped[0], 0xAB ^ 0x55);
  uint64_t g1 = ledger_bio_gen(rd);
  ledger_rd_end(rd);

  cr_assert_eq(erase("x1", "t1"), 0);
  cr_assert_eq(erase("x2", "t1"), GM_ESTATE, "erased twice");
  cr_assert_eq(erase("x3", "t2"), GM_ENOTFOUND, "never enrolled");
  cr_assert_eq(ledger_rd_begin(l, &rd), 0);
  cr_assert_eq(ledger_bio_get(rd, "t1", b), 0);
  cr_assert_eq(b->ct_len, 0);
  cr_assert_eq(b->erased_ms, 4000);
  cr_assert_str_eq(b->erase_reason, "request");
  uint8_t zero[LEDGER_BIO_WRAPPED_LEN] = {0};
  cr_assert_arr_eq(b->wrapped, zero, sizeof zero, "the wrapped data key is destroyed");
  cr_assert_gt(ledger_bio_gen(rd), g1);
  int entries = 0;
  cr_assert_eq(ledger_bio_log_each(rd, 0, log_count, &entries), 0);
  cr_assert_eq(entries, 2, "the change log has the enrolment and the erasure");
  entries = 0;
  cr_assert_eq(ledger_bio_log_each(rd, g1, log_count, &entries), 0);
  cr_assert_eq(entries, 1, "after g1: only the erasure");
  ledger_rd_end(rd);
  free(b);
}

Test(ledger_ext, receipts_are_per_gate_and_the_first_stands) {
  cr_assert_eq(enrol("b1", "t1", 1), 0);
  struct ledger_result r;
  cr_assert_eq(receipt("c1", "north", 5000, "t1", &r), 0);
  cr_assert_eq(r.count, 1, "the unknown ticket is skipped");
  cr_assert_eq(receipt("c2", "north", 6000, "t1", &r), 0);
  cr_assert_eq(r.count, 0, "a second receipt of the same gate changes nothing");
  cr_assert_eq(receipt("c3", "south", 7000, "t1", &r), 0);
  cr_assert_eq(r.count, 1);
  cr_assert_eq(receipt("c4", "", 8000, "t1", &r), GM_EINVAL, "a receipt names its gate");
  struct ledger_rd *rd;
  cr_assert_eq(ledger_rd_begin(l, &rd), 0);
  cr_assert(ledger_bio_receipt_has(rd, "t1", "north"));
  cr_assert(ledger_bio_receipt_has(rd, "t1", "south"));
  cr_assert_not(ledger_bio_receipt_has(rd, "t1", "east"));
  cr_assert_not(ledger_bio_receipt_has(rd, "t2", "north"));
  int64_t ts = 0;
  cr_assert_eq(ledger_bio_receipt_each(rd, "t1", rcpt_ts, &ts), 0);
  cr_assert_eq(ts, 5000, "the first receipt's time stands");
  ledger_rd_end(rd);
}

static int first_zone(void *arg, const struct ledger_zone *z) {
  *(struct ledger_zone *)arg = *z;
  return 0;
}

static int zone(const char *rid, const char *event, const char *id, int32_t lat) {
  struct ledger_cmd c;
  struct ledger_result r;
  th_cmd(&c, LEDGER_OP_ZONE_SET, rid, 3000);
  strcpy(c.u.zone.event_id, event);
  strcpy(c.u.zone.id, id);
  c.u.zone.kind = LEDGER_ZONE_CIRCLE;
  c.u.zone.lat_e7[0] = lat;
  c.u.zone.lon_e7[0] = -1799999999;
  c.u.zone.n_points = 1;
  c.u.zone.radius_m = 40;
  c.u.zone.max_accuracy_m = 25;
  return apply(&c, &r);
}

Test(ledger_ext, zones_replace_by_id_and_need_their_event) {
  cr_assert_eq(zone("z1", "e1", "gate-a", 525200000), 0);
  cr_assert_eq(zone("z2", "e1", "gate-a", -165000000), 0);
  cr_assert_eq(zone("z3", "nope", "gate-a", 0), GM_ENOTFOUND);
  struct ledger_rd *rd;
  struct ledger_zone z = {0};
  cr_assert_eq(ledger_rd_begin(l, &rd), 0);
  cr_assert_eq(ledger_zone_each(rd, "e1", first_zone, &z), 0);
  cr_assert_str_eq(z.id, "gate-a");
  cr_assert_eq(z.lat_e7[0], -165000000, "the later ZONE_SET replaced the zone");
  cr_assert_eq(z.lon_e7[0], -1799999999);
  cr_assert_eq(z.radius_m, 40);
  cr_assert_eq(z.max_accuracy_m, 25);
  ledger_rd_end(rd);
}

static int issue(const char *rid, const char *method, const char *id, const char *ticket,
                 long long expires) {
  struct ledger_cmd c;
  struct ledger_result r;
  th_cmd(&c, LEDGER_OP_CRED_ISSUE, rid, 2500);
  strcpy(c.u.cred.method, method);
  strcpy(c.u.cred.id, id);
  strcpy(c.u.cred.ticket_id, ticket);
  c.u.cred.ticket_version = 1;
  c.u.cred.expires_ms = expires;
  return apply(&c, &r);
}

static bool cred_exists(const char *method, const char *id) {
  struct ledger_rd *rd;
  struct ledger_cred cr;
  cr_assert_eq(ledger_rd_begin(l, &rd), 0);
  bool ok = ledger_cred_get(rd, method, id, &cr) == 0;
  ledger_rd_end(rd);
  return ok;
}

Test(ledger_ext, expiry_keeps_what_admitted_and_what_has_not_expired) {
  cr_assert_eq(issue("i1", "qr", "t1", "t1", 9000), 0);       /* admits t1, then expires */
  cr_assert_eq(issue("i2", "qr", "stale", "t2", 9000), 0);    /* expires unused */
  cr_assert_eq(issue("i3", "qr", "fresh", "t2", 90000), 0);   /* not expired yet */
  cr_assert_eq(issue("i4", "qr", "forever", "t2", 0), 0);     /* never expires */
  struct ledger_result r;
  cr_assert_eq(th_redeem(l, "r1", "t1", "north", 1, 0, &r), 0);
  cr_assert_eq(r.reason, LEDGER_REASON_NONE);

  struct ledger_cmd c;
  th_cmd(&c, LEDGER_OP_CRED_EXPIRE, "x1", 10000);
  strcpy(c.u.expire.method, "qr");
  char ids[5][LEDGER_ID_MAX + 1] = {"t1", "stale", "fresh", "forever", "unknown"};
  c.u.expire.ids.v = ids;
  c.u.expire.ids.n = 5;
  cr_assert_eq(apply(&c, &r), 0);
  cr_assert_eq(r.count, 1);
  cr_assert(cred_exists("qr", "t1"), "the credential that admitted stays (its audit trail)");
  cr_assert_not(cred_exists("qr", "stale"));
  cr_assert(cred_exists("qr", "fresh"));
  cr_assert(cred_exists("qr", "forever"));
  /* A replay of the job's command (same rid) returns the first result. */
  cr_assert_eq(apply(&c, &r), 0);
  cr_assert_eq(r.count, 1);
  cr_assert(r.duplicate);
}

static int tap(const char *rid, const char *uid, uint64_t ctr, struct ledger_result *r) {
  struct ledger_cmd c;
  th_cmd(&c, LEDGER_OP_REDEEM, rid, 5000);
  strcpy(c.u.redeem.ticket_id, "t1");
  strcpy(c.u.redeem.method, "nfc");
  strcpy(c.u.redeem.cred_id, uid);
  c.u.redeem.ticket_version = 1;
  c.u.redeem.nonce = ctr;
  return ledger_apply_cmd(l, &c, r);
}

Test(ledger_ext, nfc_counter_must_grow_even_across_refusals) {
  cr_assert_eq(issue("i1", "nfc", "04DE5F1EACC040", "t1", 0), 0);
  struct ledger_result r;
  cr_assert_eq(tap("r1", "04DE5F1EACC040", 6, &r), 0);
  cr_assert_eq(r.reason, LEDGER_REASON_NONE);
  cr_assert_eq(tap("r2", "04DE5F1EACC040", 6, &r), 0);
  cr_assert_eq(r.reason, LEDGER_REASON_REPLAYED, "the same counter is a cloned tap");
  cr_assert_eq(tap("r3", "04DE5F1EACC040", 9, &r), 0);
  cr_assert_eq(r.reason, LEDGER_REASON_ALREADY_USED, "a fresh counter on a used ticket");
  cr_assert_eq(tap("r4", "04DE5F1EACC040", 8, &r), 0);
  cr_assert_eq(r.reason, LEDGER_REASON_REPLAYED, "the refused tap's counter was remembered");
  cr_assert_eq(tap("r5", "04AAAAAAAAAAAA", 20, &r), 0);
  cr_assert_eq(r.reason, LEDGER_REASON_UNKNOWN_CREDENTIAL);
  struct ledger_rd *rd;
  struct ledger_cred cr;
  cr_assert_eq(ledger_rd_begin(l, &rd), 0);
  cr_assert_eq(ledger_cred_get(rd, "nfc", "04DE5F1EACC040", &cr), 0);
  cr_assert_eq(cr.last_ctr, 9);
  ledger_rd_end(rd);
}

Test(ledger_ext, snapshot_carries_templates_receipts_zones_and_the_change_counter) {
  cr_assert_eq(enrol("b1", "t1", 0x11), 0);
  cr_assert_eq(enrol("b2", "t2", 0x22), 0);
  cr_assert_eq(erase("x1", "t2"), 0);
  struct ledger_result r;
  cr_assert_eq(receipt("c1", "north", 5000, "t2", &r), 0);
  cr_assert_eq(zone("z1", "e1", "gate-a", 525200000), 0);
  uint8_t h1[32], h2[32];
  cr_assert_eq(ledger_hash(l, h1), 0);
  struct gm_buf snap;
  gm_buf_init(&snap);
  cr_assert_eq(ledger_snapshot(l, &snap), 0);

  char *d2 = th_tmpdir();
  struct ledger *l2 = th_ledger(d2);
  cr_assert_eq(ledger_restore(l2, snap.ptr, snap.len), 0);
  cr_assert_eq(ledger_hash(l2, h2), 0);
  cr_assert_arr_eq(h1, h2, 32);
  struct ledger_rd *a, *b;
  cr_assert_eq(ledger_rd_begin(l, &a), 0);
  cr_assert_eq(ledger_rd_begin(l2, &b), 0);
  cr_assert_eq(ledger_bio_gen(b), ledger_bio_gen(a));
  struct ledger_bio *x = malloc(sizeof *x), *y = malloc(sizeof *y);
  cr_assert_eq(ledger_bio_get(b, "t1", y), 0);
  cr_assert_eq(ledger_bio_get(a, "t1", x), 0);
  cr_assert_eq(y->ct_len, x->ct_len);
  cr_assert_arr_eq(y->ct, x->ct, x->ct_len);
  cr_assert_arr_eq(y->wrapped, x->wrapped, sizeof x->wrapped);
  cr_assert_eq(ledger_bio_get(b, "t2", y), 0);
  cr_assert_eq(y->ct_len, 0, "the erasure travels with the snapshot");
  cr_assert(ledger_bio_receipt_has(b, "t2", "north"));
  int ea = 0, eb = 0;
  cr_assert_eq(ledger_bio_log_each(a, 0, log_count, &ea), 0);
  cr_assert_eq(ledger_bio_log_each(b, 0, log_count, &eb), 0);
  cr_assert_eq(eb, ea, "a restored gate's index can sync from the same log");
  struct ledger_zone z = {0};
  cr_assert_eq(ledger_zone_each(b, "e1", first_zone, &z), 0);
  cr_assert_eq(z.lat_e7[0], 525200000);
  ledger_rd_end(a);
  ledger_rd_end(b);
  free(x);
  free(y);
  ledger_close(l2);
  th_rmdir(d2);
  gm_buf_free(&snap);
}

/* Whether the ledger's file holds 80 bytes of `fill` in a row (a sealed
 * template's ciphertext in enrol()). */
static bool file_holds(uint8_t fill) {
  char path[512];
  snprintf(path, sizeof path, "%s/data.mdb", dir);
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f);
  uint8_t run[80], *buf = malloc(1 << 20);
  memset(run, fill, sizeof run);
  bool hit = false;
  size_t n, keep = 0;
  while (!hit && (n = fread(buf + keep, 1, (1 << 20) - keep, f)) > 0) {
    n += keep;
    hit = memmem(buf, n, run, sizeof run) != NULL;
    keep = n < sizeof run ? n : sizeof run - 1;
    memmove(buf, buf + n - keep, keep);
  }
  fclose(f);
  free(buf);
  return hit;
}

Test(ledger_ext, compaction_drops_erased_bytes_and_keeps_the_rest) {
  cr_assert_eq(enrol("b1", "t1", 0xC3), 0);
  cr_assert_eq(enrol("b2", "t2", 0x3C), 0);
  cr_assert(file_holds(0xC3), "the sealed template is in the file");
  uint64_t before = ledger_erasures(l);
  cr_assert_eq(erase("x1", "t1"), 0);
  cr_assert_eq(ledger_erasures(l), before + 1, "an erasure is counted");
  cr_assert_eq(erase("x2", "t1"), GM_ESTATE);
  cr_assert_eq(ledger_erasures(l), before + 1, "a refused one is not");
  uint8_t h1[32], h2[32];
  cr_assert_eq(ledger_hash(l, h1), 0);
  cr_assert_eq(ledger_compact(l), 0);
  cr_assert_not(file_holds(0xC3), "no copy of the erased record is left in the file");
  cr_assert(file_holds(0x3C), "the live template is kept");
  cr_assert_eq(ledger_hash(l, h2), 0);
  cr_assert_arr_eq(h1, h2, 32, "the same ledger after compaction");
  /* The handle works on: a write and a read after the swap. */
  cr_assert_eq(erase("x3", "t2"), 0);
  struct ledger_rd *rd;
  struct ledger_bio *b = malloc(sizeof *b);
  cr_assert_eq(ledger_rd_begin(l, &rd), 0);
  cr_assert_eq(ledger_bio_get(rd, "t2", b), 0);
  cr_assert_eq(b->ct_len, 0);
  ledger_rd_end(rd);
  free(b);
}
