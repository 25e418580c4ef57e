/*
 * test_ledger.c — the state machine: apply, first-wins redeem, dedup, the
 * nested-transaction rollback of a failing command, snapshot/restore/hash,
 * the command codec's refusal of malformed bytes, and grouped applies (one
 * transaction for many batches; what a read, a flush, a close or a storage
 * failure does to it).
 */
#include <criterion/criterion.h>

#include "helpers.h"
#include "lib/err.h"
#include "lib/mpk.h"

static char *dir;
static struct ledger *l;

static void setup(void) {
  dir = th_tmpdir();
  l = th_ledger(dir);
  cr_assert_not_null(l);
  cr_assert_eq(th_event(l, "e1", LEDGER_POLICY_STRICT), 0);
}

static void teardown(void) {
  ledger_close(l);
  th_rmdir(dir);
}

TestSuite(ledger, .init = setup, .fini = teardown);

Test(ledger, ticket_create_and_read) {
  cr_assert_eq(th_ticket(l, "e1", "t1"), 0);
  struct ledger_rd *rd;
  cr_assert_eq(ledger_rd_begin(l, &rd), 0);
  struct ledger_ticket t;
  cr_assert_eq(ledger_ticket_get(rd, "t1", &t), 0);
  cr_assert_str_eq(t.holder, "alice");
  cr_assert_eq(t.version, 1);
  cr_assert_eq(t.status, LEDGER_TICKET_CREATED);
  cr_assert_eq(ledger_ticket_get(rd, "nope", &t), GM_ENOTFOUND);
  ledger_rd_end(rd);
}

Test(ledger, ticket_for_unknown_event_is_refused) {
  cr_assert_eq(th_ticket(l, "no-such-event", "t1"), GM_EINVAL);
}

Test(ledger, duplicate_ticket_id_conflicts) {
  cr_assert_eq(th_ticket(l, "e1", "t1"), 0);
  struct ledger_cmd c;
  struct ledger_result r;
  struct ledger_ticket_spec s = {.id = "t1", .event_id = "e1", .holder = "bob"};
  th_cmd(&c, LEDGER_OP_TICKET_CREATE, "other-rid", 3000);
  c.u.tickets.v = &s;
  c.u.tickets.n = 1;
  cr_assert_eq(ledger_apply_cmd(l, &c, &r), 0);
  cr_assert_eq(r.rc, GM_EEXIST);
}

Test(ledger, redeem_first_wins_with_first_use) {
  cr_assert_eq(th_ticket(l, "e1", "t1"), 0);
  struct ledger_result r;
  cr_assert_eq(th_redeem(l, "r1", "t1", "north", 1, 0, &r), 0);
  cr_assert_eq(r.rc, 0);
  cr_assert_eq(r.reason, LEDGER_REASON_NONE);
  cr_assert_eq(th_redeem(l, "r2", "t1", "south", 1, 0, &r), 0);
  cr_assert_eq(r.reason, LEDGER_REASON_ALREADY_USED);
  cr_assert(r.has_first_use);
  cr_assert_str_eq(r.first_use.gate, "north");
  cr_assert_eq(r.first_use.used_ms, 5000);
}

Test(ledger, redeem_retry_with_same_rid_returns_first_result) {
  cr_assert_eq(th_ticket(l, "e1", "t1"), 0);
  struct ledger_result r;
  cr_assert_eq(th_redeem(l, "r1", "t1", "north", 1, 0, &r), 0);
  cr_assert_eq(r.reason, LEDGER_REASON_NONE);
  cr_assert_eq(th_redeem(l, "r1", "t1", "north", 1, 0, &r), 0);
  cr_assert(r.duplicate);
  cr_assert_eq(r.reason, LEDGER_REASON_NONE, "a retry must not turn into already_used");
}

static int count_audit(void *arg, const struct ledger_audit *a) {
  (void)a;
  (*(int *)arg)++;
  return 0;
}

static int audit_rows(struct ledger *g) {
  struct ledger_rd *rd;
  int n = 0;
  struct ledger_audit_filter f;
  memset(&f, 0, sizeof f);
  f.limit = LEDGER_AUDIT_SCAN_MAX; /* a limit of 0 lists nothing */
  cr_assert_eq(ledger_rd_begin(g, &rd), 0);
  cr_assert_eq(ledger_audit_scan(rd, &f, count_audit, &n), 0);
  ledger_rd_end(rd);
  return n;
}

/* An audit batch carries a request id of its own (node/commit.c), so one
 * sent again (an answer lost, a batch kept over a restart) writes nothing. */
Test(ledger, an_audit_batch_sent_twice_is_written_once) {
  struct ledger_audit a[2];
  memset(a, 0, sizeof a);
  for (int i = 0; i < 2; i++) {
    a[i].time_ms = 5000 + i;
    strcpy(a[i].gate, "north");
    strcpy(a[i].method, "qr");
    snprintf(a[i].ticket_id, sizeof a[i].ticket_id, "t%d", i);
    strcpy(a[i].action, "verify");
    strcpy(a[i].result, "denied");
    strcpy(a[i].reason, "already_used");
  }
  struct ledger_cmd c;
  struct ledger_result r;
  th_cmd(&c, LEDGER_OP_AUDIT_BATCH, "audit-0123456789abcdef01234567", 5001);
  c.u.audit.v = a;
  c.u.audit.n = 2;
  int rows = audit_rows(l);
  cr_assert_eq(ledger_apply_cmd(l, &c, &r), 0);
  cr_assert_eq(r.rc, 0);
  cr_assert(!r.duplicate);
  cr_assert_eq(audit_rows(l), rows + 2);
  cr_assert_eq(ledger_apply_cmd(l, &c, &r), 0);
  cr_assert(r.duplicate, "the second time it is found by its request id");
  cr_assert_eq(audit_rows(l), rows + 2, "and writes nothing");
  strcpy(c.rid, "audit-another");
  cr_assert_eq(ledger_apply_cmd(l, &c, &r), 0);
  cr_assert_eq(audit_rows(l), rows + 4, "another batch is written");
}

/* A supervisor's override that resets the ticket's use. */
static void reset_use(const char *ticket, int64_t ts_ms, const char *reason) {
  struct ledger_cmd c;
  struct ledger_result r;
  th_cmd(&c, LEDGER_OP_OVERRIDE, "ov", ts_ms);
  strcpy(c.u.override.ticket_id, ticket);
  c.u.override.action = LEDGER_OVERRIDE_RESET;
  strcpy(c.u.override.reason, reason);
  cr_assert_eq(ledger_apply_cmd(l, &c, &r), 0);
  cr_assert_eq(r.rc, 0);
}

/* A strict redeem that admits is remembered by its ticket, not by the
 * dedup table; a refused one by the dedup table, and the ticket says so.
 * Every repeat gets its first answer and writes nothing, also after an
 * override reset the use and after the ticket was revoked. */
Test(ledger, a_strict_redeem_is_remembered_by_its_ticket) {
  cr_assert_eq(th_ticket(l, "e1", "t1"), 0);
  cr_assert_eq(th_ticket(l, "e1", "t2"), 0);
  struct ledger_result r;
  cr_assert_eq(th_redeem(l, "r1", "t1", "north", 1, 0, &r), 0);
  cr_assert_eq(r.reason, LEDGER_REASON_NONE);
  struct ledger_rd *rd;
  struct ledger_ticket t;
  cr_assert_eq(ledger_rd_begin(l, &rd), 0);
  cr_assert_eq(ledger_dedup_get(rd, "r1", &r), GM_ENOTFOUND, "an admission skips the dedup table");
  cr_assert_eq(ledger_redeem_get(rd, "t1", "r1", &r), 0);
  cr_assert_eq(r.reason, LEDGER_REASON_NONE);
  cr_assert_eq(r.decided_ms, 5000);
  cr_assert_str_eq(r.id, "t1");
  cr_assert_eq(ledger_redeem_get(rd, "t2", "r1", &r), GM_ENOTFOUND, "another ticket's request");
  cr_assert_eq(ledger_ticket_get(rd, "t1", &t), 0);
  cr_assert(!t.rids_kept);
  ledger_rd_end(rd);
  int rows = audit_rows(l);

  cr_assert_eq(th_redeem(l, "r1", "t1", "north", 1, 0, &r), 0);
  cr_assert(r.duplicate);
  cr_assert_eq(r.reason, LEDGER_REASON_NONE);
  cr_assert_eq(r.decided_ms, 5000);
  cr_assert_eq(audit_rows(l), rows, "a repeat writes nothing");

  /* A refusal: in the dedup table, and the ticket knows. */
  cr_assert_eq(th_redeem(l, "r2", "t1", "south", 1, 0, &r), 0);
  cr_assert_eq(r.reason, LEDGER_REASON_ALREADY_USED);
  cr_assert_eq(ledger_rd_begin(l, &rd), 0);
  cr_assert_eq(ledger_dedup_get(rd, "r2", &r), 0);
  cr_assert_eq(r.reason, LEDGER_REASON_ALREADY_USED);
  cr_assert_eq(ledger_ticket_get(rd, "t1", &t), 0);
  cr_assert(t.rids_kept);
  ledger_rd_end(rd);
  rows = audit_rows(l);

  /* The ticket is revoked: each repeat still gets its first answer. */
  struct ledger_cmd c;
  th_cmd(&c, LEDGER_OP_TICKET_REVOKE, "rv", 6000);
  strcpy(c.u.revoke.ticket_id, "t1");
  cr_assert_eq(ledger_apply_cmd(l, &c, &r), 0);
  cr_assert_eq(r.rc, 0);
  rows = audit_rows(l);
  cr_assert_eq(th_redeem(l, "r2", "t1", "south", 1, 0, &r), 0);
  cr_assert(r.duplicate);
  cr_assert_eq(r.reason, LEDGER_REASON_ALREADY_USED);
  cr_assert_eq(th_redeem(l, "r1", "t1", "north", 1, 0, &r), 0);
  cr_assert(r.duplicate);
  cr_assert_eq(r.reason, LEDGER_REASON_NONE);
  cr_assert_eq(audit_rows(l), rows);

  /* An override resets t2's use: the use's request keeps its answer, and
   * does not admit the ticket again. */
  cr_assert_eq(th_redeem(l, "r3", "t2", "north", 1, 0, &r), 0);
  cr_assert_eq(r.reason, LEDGER_REASON_NONE);
  reset_use("t2", 7000, "left by mistake");
  cr_assert_eq(th_redeem(l, "r3", "t2", "north", 1, 0, &r), 0);
  cr_assert(r.duplicate);
  cr_assert_eq(r.reason, LEDGER_REASON_NONE);
  cr_assert_eq(r.decided_ms, 5000);
  cr_assert_eq(ledger_rd_begin(l, &rd), 0);
  cr_assert_eq(ledger_ticket_get(rd, "t2", &t), 0);
  cr_assert_eq(t.status, LEDGER_TICKET_CREATED, "the repeat admitted nobody");
  cr_assert_eq(ledger_redeem_get(rd, "t2", "r3", &r), 0);
  ledger_rd_end(rd);
  cr_assert_eq(th_redeem(l, "r4", "t2", "north", 1, 0, &r), 0);
  cr_assert_eq(r.reason, LEDGER_REASON_NONE, "a new request admits the reset ticket");
  cr_assert(!r.duplicate);
}

Test(ledger, redeem_checks_version_revocation_and_nonce) {
  cr_assert_eq(th_ticket(l, "e1", "t1"), 0);
  cr_assert_eq(th_ticket(l, "e1", "t2"), 0);
  struct ledger_result r;
  cr_assert_eq(th_redeem(l, "r1", "t1", "g", 2, 0, &r), 0);
  cr_assert_eq(r.reason, LEDGER_REASON_SUPERSEDED);
  cr_assert_eq(th_redeem(l, "r2", "missing", "g", 1, 0, &r), 0);
  cr_assert_eq(r.reason, LEDGER_REASON_UNKNOWN_CREDENTIAL);

  struct ledger_cmd c;
  th_cmd(&c, LEDGER_OP_TICKET_REVOKE, "rv", 4000);
  strcpy(c.u.revoke.ticket_id, "t2");
  strcpy(c.u.revoke.reason, "chargeback");
  cr_assert_eq(ledger_apply_cmd(l, &c, &r), 0);
  cr_assert_eq(r.rc, 0);
  cr_assert_eq(th_redeem(l, "r3", "t2", "g", 1, 0, &r), 0);
  cr_assert_eq(r.reason, LEDGER_REASON_REVOKED);

  /* Steps (nonces) are checked against the ticket's last one. */
  th_cmd(&c, LEDGER_OP_CRED_ISSUE, "cred", 4500);
  strcpy(c.u.cred.method, "qr");
  strcpy(c.u.cred.id, "t1");
  strcpy(c.u.cred.ticket_id, "t1");
  c.u.cred.ticket_version = 1;
  cr_assert_eq(ledger_apply_cmd(l, &c, &r), 0);
  cr_assert_eq(r.rc, 0);
  cr_assert_eq(th_redeem(l, "r3b", "t2", "g", 1, 5, &r), 0);
  cr_assert_eq(r.reason, LEDGER_REASON_REVOKED);
  cr_assert_eq(th_redeem(l, "r4", "t1", "g", 1, 100, &r), 0);
  cr_assert_eq(r.reason, LEDGER_REASON_NONE);
  cr_assert_eq(th_redeem(l, "r5", "t1", "g", 1, 100, &r), 0);
  cr_assert_eq(r.reason, LEDGER_REASON_REPLAYED);
  cr_assert_eq(th_redeem(l, "r6", "t1", "g", 1, 99, &r), 0);
  cr_assert_eq(r.reason, LEDGER_REASON_REPLAYED);
  cr_assert_eq(th_redeem(l, "r7", "t1", "g", 1, 101, &r), 0);
  cr_assert_eq(r.reason, LEDGER_REASON_ALREADY_USED);
  /* A fresh step shown after the first use is remembered too. */
  cr_assert_eq(th_redeem(l, "r8", "t1", "g", 1, 101, &r), 0);
  cr_assert_eq(r.reason, LEDGER_REASON_REPLAYED);
  /* An override that resets the admission does not reopen old steps. */
  reset_use("t1", 6000, "scanner fault");
  cr_assert_eq(th_redeem(l, "r9", "t1", "g", 1, 101, &r), 0);
  cr_assert_eq(r.reason, LEDGER_REASON_REPLAYED);
  cr_assert_eq(th_redeem(l, "r10", "t1", "g", 1, 102, &r), 0);
  cr_assert_eq(r.reason, LEDGER_REASON_NONE);
}

Test(ledger, transfer_bumps_version_and_supersedes) {
  cr_assert_eq(th_ticket(l, "e1", "t1"), 0);
  struct ledger_cmd c;
  struct ledger_result r;
  th_cmd(&c, LEDGER_OP_TICKET_TRANSFER, "tr", 4000);
  strcpy(c.u.transfer.ticket_id, "t1");
  strcpy(c.u.transfer.to_holder, "bob");
  cr_assert_eq(ledger_apply_cmd(l, &c, &r), 0);
  cr_assert_eq(r.rc, 0);
  cr_assert_eq(r.version, 2);
  cr_assert_eq(th_redeem(l, "r1", "t1", "g", 1, 0, &r), 0);
  cr_assert_eq(r.reason, LEDGER_REASON_SUPERSEDED);
  cr_assert_eq(th_redeem(l, "r2", "t1", "g", 2, 0, &r), 0);
  cr_assert_eq(r.reason, LEDGER_REASON_NONE);
}

Test(ledger, disabled_method_is_refused_at_apply) {
  cr_assert_eq(th_ticket(l, "e1", "t1"), 0);
  struct ledger_cmd c;
  struct ledger_result r;
  th_cmd(&c, LEDGER_OP_METHOD_TOGGLE, "tg", 4000);
  strcpy(c.u.toggle.method, "qr");
  c.u.toggle.enabled = false;
  cr_assert_eq(ledger_apply_cmd(l, &c, &r), 0);
  cr_assert_eq(th_redeem(l, "r1", "t1", "g", 1, 0, &r), 0);
  cr_assert_eq(r.reason, LEDGER_REASON_METHOD_DISABLED);
}

Test(ledger, failing_command_rolls_back_alone_in_a_batch) {
  struct mpk_w w1, w2;
  mpk_w_init(&w1);
  mpk_w_init(&w2);
  struct ledger_cmd c;
  struct ledger_ticket_spec s[2] = {{.id = "a", .event_id = "e1"},
                                    {.id = "b", .event_id = "nope"}};
  th_cmd(&c, LEDGER_OP_TICKET_CREATE, "bad", 3000);
  c.u.tickets.v = s;
  c.u.tickets.n = 2;
  ledger_cmd_encode(&c, &w1);
  struct ledger_ticket_spec ok = {.id = "c", .event_id = "e1"};
  th_cmd(&c, LEDGER_OP_TICKET_CREATE, "good", 3000);
  c.u.tickets.v = &ok;
  c.u.tickets.n = 1;
  ledger_cmd_encode(&c, &w2);
  struct gm_slice cmds[3] = {{(uint8_t *)w1.sb.data, w1.sb.size},
                             {(uint8_t *)w2.sb.data, w2.sb.size},
                             {(const uint8_t *)"\x81\xa1x\x01", 4}};
  struct ledger_result res[3];
  cr_assert_eq(ledger_apply_batch(l, cmds, 3, res), 0);
  cr_assert_eq(res[0].rc, GM_EINVAL);
  cr_assert_eq(res[1].rc, 0);
  cr_assert_eq(res[2].rc, GM_EDECODE);
  struct ledger_rd *rd;
  struct ledger_ticket t;
  cr_assert_eq(ledger_rd_begin(l, &rd), 0);
  cr_assert_eq(ledger_ticket_get(rd, "a", &t), GM_ENOTFOUND, "half of a failed command leaked");
  cr_assert_eq(ledger_ticket_get(rd, "c", &t), 0);
  ledger_rd_end(rd);
  mpk_w_free(&w1);
  mpk_w_free(&w2);
}

Test(ledger, snapshot_restore_roundtrip_and_hash) {
  cr_assert_eq(th_ticket(l, "e1", "t1"), 0);
  struct ledger_result r;
  cr_assert_eq(th_redeem(l, "r1", "t1", "north", 1, 0, &r), 0);
  uint8_t h1[32], h2[32];
  cr_assert_eq(ledger_hash(l, h1), 0);
  struct gm_buf snap;
  gm_buf_init(&snap);
  cr_assert_eq(ledger_snapshot(l, &snap), 0);

  char *d2 = th_tmpdir();
  struct ledger *l2 = th_ledger(d2);
  cr_assert_eq(th_event(l2, "other", 0), 0);
  cr_assert_eq(ledger_restore(l2, snap.ptr, snap.len), 0);
  cr_assert_eq(ledger_hash(l2, h2), 0);
  cr_assert_arr_eq(h1, h2, 32);
  struct ledger_rd *rd;
  struct ledger_event e;
  cr_assert_eq(ledger_rd_begin(l2, &rd), 0);
  cr_assert_eq(ledger_event_get(rd, "other", &e), GM_ENOTFOUND, "restore must replace state");
  ledger_rd_end(rd);

  /* A truncated or corrupted stream is refused and leaves the state as it was. */
  cr_assert_eq(ledger_restore(l2, snap.ptr, snap.len - 3), GM_EDECODE);
  snap.ptr[20] ^= 0xff;
  cr_assert_neq(ledger_restore(l2, snap.ptr, snap.len), 0);
  cr_assert_eq(ledger_hash(l2, h2), 0);
  cr_assert_arr_eq(h1, h2, 32);
  ledger_close(l2);
  th_rmdir(d2);
  gm_buf_free(&snap);
}

/* A ticket created at ts: the command's result goes in the dedup table,
 * and its key in the table's time index at ts. */
static void ticket_at_time(const char *id, long long ts) {
  cr_assert_eq(th_ticket_at(l, "e1", id, ts), 0);
}

static bool dedup_holds(const char *rid) {
  struct ledger_rd *rd;
  struct ledger_result r;
  cr_assert_eq(ledger_rd_begin(l, &rd), 0);
  bool held = ledger_dedup_get(rd, rid, &r) == 0;
  ledger_rd_end(rd);
  return held;
}

/* A batch skips the dedup time index while it knows nothing there is old
 * enough to expire; what it knows must follow an entry written with an
 * older time than the others, and a restore. */
Test(ledger, dedup_entries_expire_in_any_order_written_and_after_a_restore) {
  const long long day = LEDGER_DEDUP_TTL_MS;
  ticket_at_time("a", 10000);
  ticket_at_time("b", 10000 + day - 1); /* the event's entry (at 1000) expires */
  cr_assert(!dedup_holds("ev-e1"));
  cr_assert(dedup_holds("tk-a"));
  ticket_at_time("c", 5000); /* older than every entry there */
  ticket_at_time("d", 5000 + day + 1);
  cr_assert(!dedup_holds("tk-c"), "written last, expired first");
  cr_assert(dedup_holds("tk-a"));

  struct gm_buf snap;
  gm_buf_init(&snap);
  cr_assert_eq(ledger_snapshot(l, &snap), 0);
  ticket_at_time("e", 10000 + day + 1);
  cr_assert(!dedup_holds("tk-a"));
  cr_assert_eq(ledger_restore(l, snap.ptr, snap.len), 0);
  cr_assert(dedup_holds("tk-a"), "the snapshot's entry is back");
  ticket_at_time("f", 10000 + day + 2);
  cr_assert(!dedup_holds("tk-a"), "and expires again");
  cr_assert(dedup_holds("tk-b"));
  gm_buf_free(&snap);
}

Test(ledger, same_commands_same_hash) {
  char *d2 = th_tmpdir();
  struct ledger *l2 = th_ledger(d2);
  cr_assert_eq(th_event(l2, "e1", LEDGER_POLICY_STRICT), 0);
  struct ledger_result r;
  for (int i = 0; i < 2; i++) {
    struct ledger *x = i ? l2 : l;
    cr_assert_eq(th_ticket(x, "e1", "t1"), 0);
    cr_assert_eq(th_redeem(x, "r1", "t1", "north", 1, 7, &r), 0);
  }
  uint8_t h1[32], h2[32];
  cr_assert_eq(ledger_hash(l, h1), 0);
  cr_assert_eq(ledger_hash(l2, h2), 0);
  cr_assert_arr_eq(h1, h2, 32);
  bool same = false;
  cr_assert_eq(ledger_same(l, l2, &same), 0);
  cr_assert(same);
  ledger_close(l2);
  th_rmdir(d2);
}

/* ledger_same says what comparing hashes says. Against gate north's use of
 * t1, case 0 is the same; 1 has the same keys with other values (used at
 * south); 2 as many entries under another key (t2); 3 entries more, each
 * after the last of its table (a refused retry under another rid). */
Test(ledger, same_agrees_with_the_hash) {
  const char *gate[] = {"north", "south", "north", "north"};
  const char *ticket[] = {"t1", "t1", "t2", "t1"};
  struct ledger_result r;
  cr_assert_eq(th_ticket(l, "e1", "t1"), 0);
  cr_assert_eq(th_redeem(l, "r1", "t1", "north", 1, 7, &r), 0);
  uint8_t h1[32], h2[32];
  cr_assert_eq(ledger_hash(l, h1), 0);
  for (int k = 0; k < 4; k++) {
    char *d2 = th_tmpdir();
    struct ledger *l2 = th_ledger(d2);
    cr_assert_eq(th_event(l2, "e1", LEDGER_POLICY_STRICT), 0);
    cr_assert_eq(th_ticket(l2, "e1", ticket[k]), 0);
    cr_assert_eq(th_redeem(l2, "r1", ticket[k], gate[k], 1, 7, &r), 0);
    if (k == 3)
      cr_assert_eq(th_redeem(l2, "z9", "t1", "north", 1, 0, &r), 0);
    cr_assert_eq(ledger_hash(l2, h2), 0);
    bool same = k != 0, back = k != 0;
    cr_assert_eq(ledger_same(l, l2, &same), 0);
    cr_assert_eq(ledger_same(l2, l, &back), 0);
    cr_assert_eq(same, k == 0, "case %d", k);
    cr_assert_eq(back, same, "case %d", k);
    cr_assert_eq(same, memcmp(h1, h2, 32) == 0, "case %d", k);
    ledger_close(l2);
    th_rmdir(d2);
  }
}

/* A redeem written key by key (reversed when rev), with an unknown key
 * among them: `skip` leaves field `skip` out, `twice` writes one twice. */
static const char *const redeem_keys[] = {"op", "rid", "ts", "gate", "actor", "ticket", "method",
                                          "cred", "ver", "nonce", "dev", "ip", "prov"};

static void redeem_map(struct mpk_w *w, int skip, int twice, bool rev, bool prov, int64_t nonce) {
  int nf = prov ? 13 : 12;
  mpk_w_reset(w);
  mpk_map(w, (uint32_t)(nf - (skip >= 0) + (twice >= 0) + 1));
  for (int x = 0; x < nf; x++) {
    int i = rev ? nf - 1 - x : x;
    for (int k = 0; i != skip && k < 1 + (i == twice); k++) {
      mpk_str(w, redeem_keys[i]);
      if (i == 0)
        mpk_u64(w, LEDGER_OP_REDEEM);
      else if (i == 2)
        mpk_i64(w, 42);
      else if (i == 8)
        mpk_u64(w, 3);
      else if (i == 9)
        mpk_i64(w, nonce);
      else if (i == 12) {
        mpk_map(w, 4);
        mpk_kv_u64(w, "o", 5);
        mpk_kv_u64(w, "s", 6);
        mpk_kv_u64(w, "e", 2);
        mpk_kv_str(w, "srid", "strict-1");
      } else
        mpk_str(w, redeem_keys[i]);
    }
    if (x == 4) {
      mpk_str(w, "later");
      mpk_arr(w, 2);
      mpk_map(w, 0);
      mpk_bin(w, "x", 1);
    }
  }
}

/* A redeem's fields come in any order, an unknown key is skipped; a
 * missing or repeated one is refused, and so is a negative nonce. */
Test(ledger, cmd_decode_redeem_fields) {
  struct mpk_w w;
  mpk_w_init(&w);
  struct ledger_cmd c;
  for (int rev = 0; rev < 2; rev++) {
    redeem_map(&w, -1, -1, rev, true, 9);
    cr_assert_eq(ledger_cmd_decode(w.sb.data, w.sb.size, &c), 0);
    cr_assert_eq(c.op, LEDGER_OP_REDEEM);
    cr_assert_str_eq(c.rid, "rid");
    cr_assert_eq(c.ts_ms, 42);
    cr_assert_str_eq(c.gate, "gate");
    cr_assert_str_eq(c.actor, "actor");
    cr_assert_str_eq(c.u.redeem.ticket_id, "ticket");
    cr_assert_str_eq(c.u.redeem.method, "method");
    cr_assert_str_eq(c.u.redeem.cred_id, "cred");
    cr_assert_eq(c.u.redeem.ticket_version, 3);
    cr_assert_eq(c.u.redeem.nonce, 9);
    cr_assert_str_eq(c.u.redeem.device, "dev");
    cr_assert_str_eq(c.u.redeem.ip, "ip");
    cr_assert_eq(c.u.redeem.p_origin, 5);
    cr_assert_eq(c.u.redeem.p_seq, 6);
    cr_assert_eq(c.u.redeem.p_epoch, 2);
    cr_assert_str_eq(c.u.redeem.srid, "strict-1");
  }
  redeem_map(&w, 12, -1, false, true, 9); /* no prov: a strict redeem */
  cr_assert_eq(ledger_cmd_decode(w.sb.data, w.sb.size, &c), 0);
  cr_assert_eq(c.u.redeem.p_seq, 0);
  for (int f = 0; f < 12; f++) {
    redeem_map(&w, f, -1, false, true, 9);
    cr_assert_eq(ledger_cmd_decode(w.sb.data, w.sb.size, &c), GM_EDECODE, "without %s",
                 redeem_keys[f]);
  }
  for (int f = 0; f < 13; f++) {
    redeem_map(&w, -1, f, f % 2, true, 9);
    cr_assert_eq(ledger_cmd_decode(w.sb.data, w.sb.size, &c), GM_EDECODE, "%s twice",
                 redeem_keys[f]);
  }
  redeem_map(&w, -1, -1, false, true, -1);
  cr_assert_eq(ledger_cmd_decode(w.sb.data, w.sb.size, &c), GM_EDECODE);
  mpk_w_free(&w);
}

Test(ledger, cmd_decode_rejects_garbage) {
  struct ledger_cmd c;
  const char *junk[] = {"", "\xc1", "\x90", "\x81\xa2op\x63", "\x81\xa2op\x06"};
  for (size_t i = 0; i < sizeof junk / sizeof *junk; i++)
    cr_assert_eq(ledger_cmd_decode(junk[i], strlen(junk[i]) + (i == 0 ? 0 : 0), &c), GM_EDECODE);
  /* Every truncation of a valid command is refused. */
  struct mpk_w w;
  mpk_w_init(&w);
  th_cmd(&c, LEDGER_OP_REDEEM, "rid", 1);
  strcpy(c.u.redeem.ticket_id, "t");
  ledger_cmd_encode(&c, &w);
  struct ledger_cmd d;
  cr_assert_eq(ledger_cmd_decode(w.sb.data, w.sb.size, &d), 0);
  cr_assert_str_eq(d.u.redeem.ticket_id, "t");
  for (size_t n = 0; n < w.sb.size; n++)
    cr_assert_eq(ledger_cmd_decode(w.sb.data, n, &d), GM_EDECODE);
  mpk_w_free(&w);
}

Test(ledger, hostile_container_sizes_are_refused_before_allocation) {
  /* 8 bytes declaring a 0xdddddddd-entry array: msgpack-c alone would try to
   * allocate ~128 GiB for it. */
  static const uint8_t hostile[] = {0xdd, 0xdd, 0xdd, 0xdd, 0xdd, 0x8a, 0x01, 0x00};
  struct ledger_cmd c;
  cr_assert_eq(ledger_cmd_decode(hostile, sizeof hostile, &c), GM_EDECODE);
  static const uint8_t map32[] = {0xdf, 0x7f, 0xff, 0xff, 0xff, 0x01};
  cr_assert_eq(mpk_validate(map32, sizeof map32), GM_EDECODE);
  static const uint8_t str32[] = {0x81, 0xdb, 0xff, 0xff, 0xff, 0xf0, 'a'};
  cr_assert_eq(mpk_validate(str32, sizeof str32), GM_EDECODE);
  static const uint8_t ok[] = {0x82, 0xa1, 'a', 0x01, 0xa1, 'b', 0x92, 0xc0, 0xcd, 0x01, 0x02};
  cr_assert_eq(mpk_validate(ok, sizeof ok), 0);
  cr_assert_eq(mpk_validate(ok, sizeof ok - 1), GM_EDECODE);
  static const uint8_t never_used[] = {0xc1};
  cr_assert_eq(mpk_validate(never_used, 1), GM_EDECODE);
}

/* ----------------------------------------------------------------------
 * Grouped applies: batches share one transaction until something reads.
 */

#include <sys/wait.h>
#include <unistd.h>

/* The applied_seq another process reads from dir: what is committed. */
static uint64_t committed_seq(const char *d) {
  int fd[2];
  cr_assert_eq(pipe(fd), 0);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    struct ledger *r;
    struct ledger_options o = {.map_size = 64u << 20, .read_only = true};
    uint64_t s = UINT64_MAX;
    if (ledger_open(&r, d, &o) == 0)
      s = ledger_applied_seq(r);
    _exit(write(fd[1], &s, sizeof s) == sizeof s ? 0 : 1);
  }
  uint64_t s = 0;
  cr_assert_eq(read(fd[0], &s, sizeof s), (ssize_t)sizeof s);
  int st;
  waitpid(pid, &st, 0);
  close(fd[0]);
  close(fd[1]);
  return s;
}

/* One batch of n redeems of t1 at seq (the first may admit, the rest are
 * refused: every one is a command the transaction holds). */
static int redeems_at(struct ledger *g, uint64_t seq, size_t n) {
  struct mpk_w w[100];
  struct gm_slice sl[100];
  struct ledger_result res[100];
  cr_assert_leq(n, 100);
  for (size_t i = 0; i < n; i++) {
    struct ledger_cmd c;
    char rid[48];
    snprintf(rid, sizeof rid, "r-%llu-%zu", (unsigned long long)seq, i);
    th_cmd(&c, LEDGER_OP_REDEEM, rid, 5000 + (long long)seq);
    strcpy(c.u.redeem.ticket_id, "t1");
    strcpy(c.u.redeem.method, "qr");
    strcpy(c.u.redeem.cred_id, "t1");
    c.u.redeem.ticket_version = 1;
    mpk_w_init(&w[i]);
    ledger_cmd_encode(&c, &w[i]);
    sl[i] = (struct gm_slice){(const uint8_t *)w[i].sb.data, w[i].sb.size};
  }
  int rc = ledger_apply_batch_at(g, seq, sl, n, res);
  for (size_t i = 0; i < n; i++)
    mpk_w_free(&w[i]);
  return rc;
}

/* One redeem of t1 (refused after the first) as the batch at seq. */
static int redeem_at(struct ledger *g, uint64_t seq) { return redeems_at(g, seq, 1); }

/* True when a read of g sees t1 used. */
static bool t1_used(struct ledger *g) {
  struct ledger_rd *rd;
  struct ledger_ticket t;
  if (ledger_rd_begin(g, &rd) != 0)
    return false;
  bool used = ledger_ticket_get(rd, "t1", &t) == 0 && t.status == LEDGER_TICKET_USED;
  ledger_rd_end(rd);
  return used;
}

static struct ledger *open_grouped(const char *d, size_t map) {
  struct ledger *g = NULL;
  struct ledger_options o = {.map_size = map, .no_sync = true, .group = true};
  cr_assert_eq(ledger_open(&g, d, &o), 0);
  return g;
}

/* A grouped ledger in d holding event e1 and its ticket t1: two batches of
 * one command each, not committed yet. */
static struct ledger *grouped_with_t1(const char *d) {
  struct ledger *g = open_grouped(d, 64u << 20);
  cr_assert_eq(th_event(g, "e1", LEDGER_POLICY_STRICT), 0);
  cr_assert_eq(th_ticket(g, "e1", "t1"), 0);
  return g;
}

Test(ledger_group, batches_commit_together_on_a_read_a_flush_or_close) {
  char *d = th_tmpdir();
  struct ledger *g = grouped_with_t1(d);
  for (uint64_t s = 1; s <= 3; s++)
    cr_assert_eq(redeem_at(g, s), 0);
  cr_assert_eq(ledger_applied_seq(g), 3, "the handle knows what it applied");
  cr_assert_eq(committed_seq(d), 0, "nothing committed yet");
  /* A seq already applied is refused, and the open transaction goes on. */
  cr_assert_eq(redeem_at(g, 3), GM_EINVAL);
  cr_assert_eq(redeem_at(g, 4), 0);
  cr_assert(t1_used(g), "a read sees every batch");
  cr_assert_eq(committed_seq(d), 4, "the read committed them");
  cr_assert_eq(redeem_at(g, 5), 0);
  cr_assert_eq(committed_seq(d), 4);
  cr_assert_eq(ledger_flush(g), 0);
  cr_assert_eq(committed_seq(d), 5);
  cr_assert_eq(redeem_at(g, 6), 0);
  ledger_close(g);
  cr_assert_eq(committed_seq(d), 6, "close commits");
  th_rmdir(d);
}

Test(ledger_group, a_long_group_commits_by_itself) {
  char *d = th_tmpdir();
  struct ledger *g = grouped_with_t1(d);
  /* The event and the ticket were two batches of the group. */
  for (uint64_t s = 1; s <= LEDGER_GROUP_MAX - 2; s++)
    cr_assert_eq(redeem_at(g, s), 0);
  cr_assert_eq(committed_seq(d), LEDGER_GROUP_MAX - 2);
  cr_assert_eq(redeem_at(g, LEDGER_GROUP_MAX - 1), 0);
  cr_assert_eq(committed_seq(d), LEDGER_GROUP_MAX - 2);
  ledger_close(g);
  th_rmdir(d);
}

Test(ledger_group, large_batches_commit_once_they_carried_the_group_s_commands) {
  char *d = th_tmpdir();
  struct ledger *g = grouped_with_t1(d);
  /* Two commands, then ten batches of 100: 1,002 held, fewer than the
   * group's commands, in 12 batches. */
  cr_assert_eq(LEDGER_GROUP_MAX, 1024);
  for (uint64_t s = 1; s <= 10; s++)
    cr_assert_eq(redeems_at(g, s, 100), 0);
  cr_assert_eq(committed_seq(d), 0, "1,002 commands: the group stays open");
  cr_assert_eq(redeems_at(g, 11, 100), 0);
  cr_assert_eq(committed_seq(d), 11, "1,102 commands in 13 batches: committed");
  cr_assert_eq(redeems_at(g, 12, 100), 0);
  cr_assert_eq(committed_seq(d), 11, "a new group");
  cr_assert_eq(ledger_flush(g), 0);
  cr_assert_eq(committed_seq(d), 12);
  ledger_close(g);
  th_rmdir(d);
}

Test(ledger_group, a_storage_failure_loses_the_group_and_breaks_the_handle) {
  char *d = th_tmpdir();
  struct ledger *g = open_grouped(d, 1u << 20);
  cr_assert_eq(th_event(g, "e1", LEDGER_POLICY_STRICT), 0);
  cr_assert_eq(ledger_flush(g), 0);
  /* Batches of 50 tickets, one seq each, until the 1 MiB map is full. */
  struct ledger_ticket_spec specs[50];
  int rc = 0;
  uint64_t seq = 0;
  while (rc == 0 && seq < 1000) {
    seq++;
    memset(specs, 0, sizeof specs);
    for (int i = 0; i < 50; i++) {
      snprintf(specs[i].id, sizeof specs[i].id, "t%llu-%d", (unsigned long long)seq, i);
      strcpy(specs[i].event_id, "e1");
      strcpy(specs[i].holder, "a holder with a rather long name to fill pages");
    }
    struct ledger_cmd c;
    char rid[32];
    snprintf(rid, sizeof rid, "tk-%llu", (unsigned long long)seq);
    th_cmd(&c, LEDGER_OP_TICKET_CREATE, rid, 2000);
    c.u.tickets.v = specs;
    c.u.tickets.n = 50;
    struct ledger_result r;
    rc = th_apply_at(g, seq, &c, &r);
    if (rc == 0 && seq == 2)
      cr_assert_eq(ledger_flush(g), 0); /* seqs 1 and 2 committed */
  }
  cr_assert_eq(rc, GM_EFULL, "the map filled up (seq %llu)", (unsigned long long)seq);
  cr_assert_gt(seq, 3, "some batches were in the group when it failed");
  cr_assert_eq(ledger_applied_seq(g), 2, "back to what was committed");
  cr_assert_eq(redeem_at(g, seq + 1), GM_ESTATE, "the handle refuses writes");
  struct ledger_rd *rd;
  cr_assert_eq(ledger_rd_begin(g, &rd), GM_ESTATE, "and reads");
  cr_assert_eq(ledger_flush(g), GM_ESTATE);
  ledger_close(g);
  /* Reopened: the committed state, whole. */
  g = open_grouped(d, 1u << 20);
  cr_assert_eq(ledger_applied_seq(g), 2);
  cr_assert_eq(ledger_rd_begin(g, &rd), 0);
  uint64_t n = 0;
  cr_assert_eq(ledger_ticket_count(rd, &n), 0);
  cr_assert_eq(n, 100);
  ledger_rd_end(rd);
  ledger_close(g);
  th_rmdir(d);
}

/* A grouped ledger opened without LMDB's locks (no_lock), holding event e1
 * and ticket t1. */
static struct ledger *open_unlocked(const char *d) {
  struct ledger *g = NULL;
  struct ledger_options opt = {
      .map_size = 64u << 20, .no_sync = true, .group = true, .no_lock = true};
  cr_assert_eq(ledger_open(&g, d, &opt), 0);
  cr_assert_eq(th_event(g, "e1", LEDGER_POLICY_STRICT), 0);
  cr_assert_eq(th_ticket(g, "e1", "t1"), 0);
  return g;
}

/* Without LMDB's locks a read borrows the open group: it sees every
 * applied batch and commits nothing, so the group goes on after it. */
Test(ledger_group, without_locks_a_read_borrows_the_group) {
  char *d = th_tmpdir();
  struct ledger *g = open_unlocked(d);
  for (uint64_t s = 1; s <= 3; s++)
    cr_assert_eq(redeem_at(g, s), 0);
  cr_assert(t1_used(g), "the read sees the group's batches");
  cr_assert_eq(committed_seq(d), 0, "the read committed nothing");
  cr_assert_eq(redeem_at(g, 4), 0, "the group goes on");
  /* A parked borrowed read comes back on whatever is open then. */
  struct ledger_rd *rd;
  struct ledger_ticket t;
  cr_assert_eq(ledger_rd_begin(g, &rd), 0);
  ledger_rd_park(rd);
  cr_assert_eq(ledger_flush(g), 0);
  cr_assert_eq(committed_seq(d), 4);
  cr_assert_eq(ledger_rd_renew(rd), 0);
  cr_assert_eq(ledger_ticket_get(rd, "t1", &t), 0);
  cr_assert_eq(t.status, LEDGER_TICKET_USED);
  ledger_rd_end(rd);
  cr_assert_eq(redeem_at(g, 5), 0);
  ledger_close(g);
  cr_assert_eq(committed_seq(d), 5, "close commits");
  th_rmdir(d);
}

#include <pthread.h>
#include <stdatomic.h>

struct other_thread {
  struct ledger *g;
  atomic_int stage; /* 1: it applied; 2: it may end */
  int rc;
};

static void *apply_then_wait(void *arg) {
  struct other_thread *o = arg;
  for (uint64_t s = 1; s <= 3 && o->rc == 0; s++)
    o->rc = redeem_at(o->g, s);
  atomic_store(&o->stage, 1);
  while (atomic_load(&o->stage) != 2)
    usleep(1000);
  mpk_thread_end();
  return NULL;
}

/* Without LMDB's locks (no_lock) a group begun on one thread goes on and
 * commits on another while the first is still alive, and the next group
 * begins: with the locks the first thread would own the writer's mutex. */
Test(ledger_group, without_locks_a_group_moves_between_threads, .timeout = 20) {
  char *d = th_tmpdir();
  struct ledger *g = open_unlocked(d);
  cr_assert_eq(ledger_flush(g), 0);
  struct other_thread o = {.g = g};
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, apply_then_wait, &o), 0);
  while (atomic_load(&o.stage) != 1)
    usleep(1000);
  cr_assert_eq(o.rc, 0);
  cr_assert_eq(redeem_at(g, 4), 0, "the open group goes on here");
  cr_assert_eq(ledger_flush(g), 0, "and commits here");
  cr_assert_eq(redeem_at(g, 5), 0, "a new group begins");
  cr_assert(t1_used(g));
  atomic_store(&o.stage, 2);
  pthread_join(t, NULL);
  cr_assert_eq(ledger_applied_seq(g), 5);
  ledger_close(g);
  g = open_grouped(d, 64u << 20);
  cr_assert_eq(ledger_applied_seq(g), 5, "every batch was committed");
  ledger_close(g);
  th_rmdir(d);
}
