/*
 * test_reconcile.c — provisional admissions reaching the ledger: recorded as
 * the ticket's use when it was free, as a double-entry incident (with the
 * ticket deny-listed) when it was not, and idempotent under every replay.
 * Also the event's per-tier offline policy.
 */
#include <criterion/criterion.h>

#include "gossip/admit.h"
#include "helpers.h"
#include "lib/err.h"
#include "lib/mpk.h"

static char *dir;
static struct ledger *l;

static void setup(void) {
  dir = th_tmpdir();
  l = th_ledger(dir);
  cr_assert_not_null(l);
  cr_assert_eq(th_event(l, "e1", LEDGER_POLICY_AVAILABLE), 0);
  cr_assert_eq(th_ticket(l, "e1", "t1"), 0);
}

static void teardown(void) {
  ledger_close(l);
  th_rmdir(dir);
}

TestSuite(reconcile, .init = setup, .fini = teardown);

static int prov_redeem(const char *rid, const char *srid, const char *gate, uint64_t origin,
                       uint64_t seq, int64_t ts, struct ledger_result *r) {
  struct ledger_cmd c;
  th_cmd(&c, LEDGER_OP_REDEEM, rid, ts);
  strcpy(c.gate, gate);
  strcpy(c.u.redeem.ticket_id, "t1");
  strcpy(c.u.redeem.method, "qr");
  strcpy(c.u.redeem.cred_id, "t1");
  c.u.redeem.ticket_version = 1;
  c.u.redeem.p_origin = origin;
  c.u.redeem.p_seq = seq;
  c.u.redeem.p_epoch = 3;
  strcpy(c.u.redeem.srid, srid);
  /* Through the codec, as a replica would get it. */
  struct mpk_w w;
  mpk_w_init(&w);
  ledger_cmd_encode(&c, &w);
  int rc = ledger_apply(l, w.sb.data, w.sb.size, r);
  mpk_w_free(&w);
  return rc;
}

static uint64_t incidents(void) {
  struct ledger_rd *rd;
  uint64_t n = 0;
  cr_assert_eq(ledger_rd_begin(l, &rd), 0);
  cr_assert_eq(ledger_incident_count(rd, &n), 0);
  ledger_rd_end(rd);
  return n;
}

static struct ledger_ticket ticket(void) {
  struct ledger_rd *rd;
  struct ledger_ticket t;
  cr_assert_eq(ledger_rd_begin(l, &rd), 0);
  cr_assert_eq(ledger_ticket_get(rd, "t1", &t), 0);
  ledger_rd_end(rd);
  return t;
}

Test(reconcile, provisional_on_a_free_ticket_is_its_use) {
  struct ledger_result r;
  cr_assert_eq(prov_redeem("p1", "", "south", 7, 1, 4000, &r), 0);
  cr_assert_eq(r.rc, 0);
  cr_assert_eq(r.reason, LEDGER_REASON_NONE);
  struct ledger_ticket t = ticket();
  cr_assert_eq(t.status, LEDGER_TICKET_USED);
  cr_assert_str_eq(t.used_gate, "south");
  cr_assert_eq(t.used_ms, 4000);
  cr_assert_eq(t.used_origin, 7);
  cr_assert_eq(t.used_pseq, 1);
  cr_assert(!t.denied);
  cr_assert_eq(incidents(), 0);
  /* A strict redeem afterwards is a plain already_used. */
  cr_assert_eq(th_redeem(l, "s1", "t1", "north", 1, 0, &r), 0);
  cr_assert_eq(r.reason, LEDGER_REASON_ALREADY_USED);
  cr_assert_str_eq(r.first_use.gate, "south");
  cr_assert_eq(incidents(), 0);
}

Test(reconcile, provisional_after_a_strict_use_is_a_double_entry) {
  struct ledger_result r;
  cr_assert_eq(th_redeem(l, "s1", "t1", "north", 1, 0, &r), 0);
  cr_assert_eq(r.reason, LEDGER_REASON_NONE);
  cr_assert_eq(prov_redeem("p1", "", "south", 7, 1, 6000, &r), 0);
  cr_assert_eq(r.rc, 0);
  cr_assert_eq(r.reason, LEDGER_REASON_NONE, "an acknowledged admission stays admitted");
  cr_assert(r.has_first_use);
  cr_assert_str_eq(r.first_use.gate, "north");
  cr_assert_eq(incidents(), 1);
  struct ledger_rd *rd;
  struct ledger_incident x;
  cr_assert_eq(ledger_rd_begin(l, &rd), 0);
  cr_assert_eq(ledger_incident_get(rd, 7, 1, &x), 0);
  ledger_rd_end(rd);
  cr_assert_str_eq(x.kind, "double_entry");
  cr_assert_str_eq(x.ticket_id, "t1");
  cr_assert_str_eq(x.first.gate, "north");
  cr_assert_eq(x.first.used_ms, 5000);
  cr_assert_eq(x.first_pseq, 0, "the first was strict");
  cr_assert_str_eq(x.second.gate, "south");
  cr_assert_eq(x.second.used_ms, 6000);
  cr_assert_eq(x.epoch, 3);
  cr_assert_eq(x.seq, 1);
  /* Deny-listed: the ticket keeps its first use, and every later scan is
   * refused as revoked. */
  struct ledger_ticket t = ticket();
  cr_assert(t.denied);
  cr_assert_str_eq(t.used_gate, "north");
  cr_assert_eq(th_redeem(l, "s2", "t1", "west", 1, 0, &r), 0);
  cr_assert_eq(r.reason, LEDGER_REASON_REVOKED);
}

Test(reconcile, two_provisionals_from_two_sides) {
  struct ledger_result r;
  cr_assert_eq(prov_redeem("p-a", "", "north", 1, 4, 5000, &r), 0);
  cr_assert_eq(prov_redeem("p-b", "", "south", 2, 9, 5100, &r), 0);
  cr_assert_eq(incidents(), 1);
  struct ledger_rd *rd;
  struct ledger_incident x;
  cr_assert_eq(ledger_rd_begin(l, &rd), 0);
  cr_assert_eq(ledger_incident_get(rd, 2, 9, &x), 0);
  cr_assert_eq(ledger_incident_get(rd, 1, 4, &x), GM_ENOTFOUND);
  cr_assert_eq(ledger_incident_get(rd, 2, 9, &x), 0);
  ledger_rd_end(rd);
  cr_assert_eq(x.first_origin, 1);
  cr_assert_eq(x.first_pseq, 4);
}

Test(reconcile, replays_change_nothing) {
  struct ledger_result r;
  cr_assert_eq(th_redeem(l, "s1", "t1", "north", 1, 0, &r), 0);
  cr_assert_eq(prov_redeem("p1", "", "south", 7, 1, 6000, &r), 0);
  uint8_t h1[32], h2[32];
  cr_assert_eq(ledger_hash(l, h1), 0);
  /* The same rid (dedup), and the same admission under another rid (as a
   * gate that re-proposes after its dedup entry expired would send). */
  cr_assert_eq(prov_redeem("p1", "", "south", 7, 1, 6000, &r), 0);
  cr_assert(r.duplicate);
  cr_assert_eq(prov_redeem("p1-again", "", "south", 7, 1, 6000, &r), 0);
  cr_assert_eq(r.reason, LEDGER_REASON_NONE);
  cr_assert_eq(incidents(), 1);
  struct ledger_ticket t = ticket();
  cr_assert_str_eq(t.used_gate, "north");
  /* Only the dedup entry of "p1-again" differs. */
  cr_assert_eq(ledger_hash(l, h2), 0);
  cr_assert(memcmp(h1, h2, 32) != 0);
  cr_assert_eq(prov_redeem("p1-again", "", "south", 7, 1, 6000, &r), 0);
  uint8_t h3[32];
  cr_assert_eq(ledger_hash(l, h3), 0);
  cr_assert_eq(memcmp(h2, h3, 32), 0);
}

Test(reconcile, a_provisional_twin_of_a_committed_strict_attempt_is_no_incident) {
  /* The gate stopped waiting for its strict attempt "s1" and admitted
   * provisionally; s1 committed after all. */
  struct ledger_result r;
  cr_assert_eq(th_redeem(l, "s1", "t1", "south", 1, 0, &r), 0);
  cr_assert_eq(r.reason, LEDGER_REASON_NONE);
  cr_assert_eq(prov_redeem("p1", "s1", "south", 7, 1, 5000, &r), 0);
  cr_assert_eq(r.reason, LEDGER_REASON_NONE);
  cr_assert_eq(incidents(), 0);
  cr_assert(!ticket().denied);
  /* Without the link it would have been one. */
  cr_assert_eq(prov_redeem("p2", "other", "south", 7, 2, 5000, &r), 0);
  cr_assert_eq(incidents(), 1);
}

Test(reconcile, stale_state_is_an_incident_of_its_kind) {
  struct ledger_cmd c;
  struct ledger_result r;
  th_cmd(&c, LEDGER_OP_TICKET_REVOKE, "rv", 3000);
  strcpy(c.u.revoke.ticket_id, "t1");
  strcpy(c.u.revoke.reason, "chargeback");
  cr_assert_eq(ledger_apply_cmd(l, &c, &r), 0);
  cr_assert_eq(prov_redeem("p1", "", "south", 7, 1, 5000, &r), 0);
  cr_assert_eq(r.reason, LEDGER_REASON_NONE);
  struct ledger_rd *rd;
  struct ledger_incident x;
  cr_assert_eq(ledger_rd_begin(l, &rd), 0);
  cr_assert_eq(ledger_incident_get(rd, 7, 1, &x), 0);
  ledger_rd_end(rd);
  cr_assert_str_eq(x.kind, "revoked");
}

static int collect(void *arg, const struct ledger_incident *x) {
  (*(int *)arg)++;
  cr_assert_str_eq(x->ticket_id, "t1");
  return 0;
}

Test(reconcile, incidents_survive_snapshot_and_restore) {
  struct ledger_result r;
  cr_assert_eq(th_redeem(l, "s1", "t1", "north", 1, 0, &r), 0);
  cr_assert_eq(prov_redeem("p1", "", "south", 7, 1, 6000, &r), 0);
  cr_assert_eq(prov_redeem("p2", "", "west", 8, 1, 6100, &r), 0);
  struct gm_buf snap;
  gm_buf_init(&snap);
  cr_assert_eq(ledger_snapshot(l, &snap), 0);
  char *d2 = th_tmpdir();
  struct ledger *l2 = th_ledger(d2);
  cr_assert_eq(ledger_restore(l2, snap.ptr, snap.len), 0);
  uint8_t h1[32], h2[32];
  cr_assert_eq(ledger_hash(l, h1), 0);
  cr_assert_eq(ledger_hash(l2, h2), 0);
  cr_assert_eq(memcmp(h1, h2, 32), 0);
  struct ledger_rd *rd;
  int n = 0;
  cr_assert_eq(ledger_rd_begin(l2, &rd), 0);
  cr_assert_eq(ledger_incident_each(rd, collect, &n), 0);
  ledger_rd_end(rd);
  cr_assert_eq(n, 2);
  ledger_close(l2);
  th_rmdir(d2);
  gm_buf_free(&snap);
}

Test(reconcile, tier_policy_overrides_the_event) {
  struct ledger_cmd c;
  struct ledger_result r;
  th_cmd(&c, LEDGER_OP_EVENT_CREATE, "ev2", 1000);
  strcpy(c.u.event.id, "e2");
  strcpy(c.u.event.name, "Gala");
  c.u.event.ends_ms = 1000000;
  c.u.event.policy = LEDGER_POLICY_AVAILABLE;
  c.u.event.offline_budget = 50;
  strcpy(c.u.event.tier_policy[0].tier, "vip");
  c.u.event.tier_policy[0].policy = LEDGER_POLICY_STRICT;
  c.u.event.n_tier_policy = 1;
  struct mpk_w w;
  mpk_w_init(&w);
  ledger_cmd_encode(&c, &w);
  cr_assert_eq(ledger_apply(l, w.sb.data, w.sb.size, &r), 0);
  cr_assert_eq(r.rc, 0);
  mpk_w_free(&w);
  struct ledger_rd *rd;
  struct ledger_event e;
  cr_assert_eq(ledger_rd_begin(l, &rd), 0);
  cr_assert_eq(ledger_event_get(rd, "e2", &e), 0);
  ledger_rd_end(rd);
  cr_assert_eq(e.n_tier_policy, 1);
  cr_assert_eq(e.offline_budget, 50);
  cr_assert_eq(ledger_event_policy(&e, "vip"), LEDGER_POLICY_STRICT);
  cr_assert_eq(ledger_event_policy(&e, ""), LEDGER_POLICY_AVAILABLE);
  cr_assert_eq(ledger_event_policy(&e, "standard"), LEDGER_POLICY_AVAILABLE);
}

Test(reconcile, malformed_provisional_fields_are_refused) {
  struct ledger_cmd c;
  th_cmd(&c, LEDGER_OP_REDEEM, "rid", 1);
  strcpy(c.u.redeem.ticket_id, "t1");
  c.u.redeem.p_origin = 1;
  c.u.redeem.p_seq = 2;
  struct mpk_w w;
  mpk_w_init(&w);
  ledger_cmd_encode(&c, &w);
  struct ledger_cmd d;
  cr_assert_eq(ledger_cmd_decode(w.sb.data, w.sb.size, &d), 0);
  cr_assert_eq(d.u.redeem.p_seq, 2);
  for (size_t n = 0; n < w.sb.size; n++)
    cr_assert_eq(ledger_cmd_decode(w.sb.data, n, &d), GM_EDECODE);
  mpk_w_free(&w);
}

/* What the gossip store asks before it drops a record: does the ledger hold
 * it? A provisional redeem's dedup entry answers until it expires (a day
 * later); from then on the ticket or the incident does, and the ledger
 * keeps the newest time it let expire (its dedup floor) so that a record
 * newer than that is answered by the dedup table alone. */
static struct prov_rec record(uint64_t origin, uint64_t seq, int64_t ts) {
  struct ledger_cmd strict, c;
  th_cmd(&strict, LEDGER_OP_REDEEM, "s", ts);
  strcpy(strict.gate, "south");
  strcpy(strict.u.redeem.ticket_id, "t1");
  strcpy(strict.u.redeem.method, "qr");
  strict.u.redeem.ticket_version = 1;
  admit_provisional_cmd(&strict, origin, seq, 3, &c);
  struct prov_rec r;
  admit_prov_record(&c, &r);
  return r;
}

static bool held(const struct prov_rec *r) {
  struct ledger_rd *rd;
  cr_assert_eq(ledger_rd_begin(l, &rd), 0);
  bool in = admit_in_ledger(rd, r);
  ledger_rd_end(rd);
  return in;
}

static int64_t floor_of(struct ledger *x) {
  struct ledger_rd *rd;
  cr_assert_eq(ledger_rd_begin(x, &rd), 0);
  int64_t f = ledger_dedup_floor(rd);
  ledger_rd_end(rd);
  return f;
}

Test(reconcile, the_dedup_floor_keeps_settled_records_known_after_expiry) {
  cr_assert_eq(floor_of(l), 0, "a new ledger: nothing expired");
  struct prov_rec p = record(7, 1, 5000), q = record(8, 1, 6000), old = record(9, 1, 4000);
  char rid[LEDGER_RID_MAX + 1];
  admit_prov_rid(rid, 7, 1);
  struct ledger_result r;
  cr_assert_eq(prov_redeem(rid, "", "south", 7, 1, 5000, &r), 0);
  cr_assert_eq(r.reason, LEDGER_REASON_NONE);
  cr_assert(held(&p));
  cr_assert(!held(&q), "never applied");
  /* A day and more later, p's dedup entry expires. */
  struct ledger_cmd c;
  struct ledger_ticket_spec t2;
  memset(&t2, 0, sizeof t2);
  strcpy(t2.id, "t2");
  strcpy(t2.event_id, "e1");
  strcpy(t2.holder, "h");
  th_cmd(&c, LEDGER_OP_TICKET_CREATE, "later", 5000 + LEDGER_DEDUP_TTL_MS + 1000);
  c.u.tickets.v = &t2;
  c.u.tickets.n = 1;
  cr_assert_eq(ledger_apply_cmd(l, &c, &r), 0);
  cr_assert_eq(r.rc, 0);
  struct ledger_rd *rd;
  cr_assert_eq(ledger_rd_begin(l, &rd), 0);
  cr_assert_eq(ledger_dedup_get(rd, rid, &r), GM_ENOTFOUND, "expired");
  ledger_rd_end(rd);
  cr_assert_eq(floor_of(l), 5000, "the newest time expired");
  cr_assert(held(&p), "the ticket's use still names it");
  cr_assert(!held(&q));
  cr_assert(!held(&old), "older than the floor, not applied: the ticket says so");
  /* The floor goes with a snapshot and survives a reopen. */
  struct gm_buf snap;
  gm_buf_init(&snap);
  cr_assert_eq(ledger_snapshot(l, &snap), 0);
  char *d2 = th_tmpdir();
  struct ledger *l2 = th_ledger(d2);
  cr_assert_eq(ledger_restore(l2, snap.ptr, snap.len), 0);
  gm_buf_free(&snap);
  cr_assert_eq(floor_of(l2), 5000);
  ledger_close(l2);
  l2 = th_ledger(d2);
  cr_assert_eq(floor_of(l2), 5000, "reopened");
  ledger_close(l2);
  th_rmdir(d2);
}
