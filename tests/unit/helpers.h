/*
 * helpers.h — shared fixtures for the unit tests: temporary data dirs and
 * command builders.
 */
#ifndef GM_TEST_HELPERS_H
#define GM_TEST_HELPERS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/ledger.h"
#include "lib/buf.h"
#include "lib/mpk.h"

static inline char *th_tmpdir(void) {
  char tmpl[] = "/tmp/gmtest.XXXXXX";
  char *d = mkdtemp(tmpl);
  return d ? strdup(d) : NULL;
}

static inline void th_rmdir(char *d) {
  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
  if (system(cmd) != 0) {
  }
  free(d);
}

static inline struct ledger *th_ledger(const char *dir) {
  struct ledger *l = NULL;
  struct ledger_options o = {.map_size = 64u << 20, .no_sync = true};
  if (ledger_open(&l, dir, &o) != 0)
    return NULL;
  return l;
}

static inline void th_cmd(struct ledger_cmd *c, int op, const char *rid, long long ts) {
  memset(c, 0, sizeof *c);
  c->op = op;
  gm_strlcpy(c->rid, sizeof c->rid, rid, strlen(rid));
  c->ts_ms = ts;
  strcpy(c->gate, "g1");
  strcpy(c->actor, "u-test");
}

static inline int th_event(struct ledger *l, const char *id, int policy) {
  struct ledger_cmd c;
  struct ledger_result r;
  char rid[64];
  snprintf(rid, sizeof rid, "ev-%s", id);
  th_cmd(&c, LEDGER_OP_EVENT_CREATE, rid, 1000);
  strcpy(c.u.event.id, id);
  strcpy(c.u.event.name, "Fest");
  c.u.event.starts_ms = 0;
  c.u.event.ends_ms = 1000000000;
  c.u.event.policy = policy;
  int rc = ledger_apply_cmd(l, &c, &r);
  return rc ? rc : r.rc;
}

/* A ticket for holder alice, created by a command (request id tk-<id>)
 * at ts. */
static inline int th_ticket_at(struct ledger *l, const char *event, const char *id,
                               long long ts) {
  struct ledger_cmd c;
  struct ledger_result r;
  struct ledger_ticket_spec s;
  memset(&s, 0, sizeof s);
  strcpy(s.id, id);
  strcpy(s.event_id, event);
  strcpy(s.holder, "alice");
  char rid[80];
  snprintf(rid, sizeof rid, "tk-%s", id);
  th_cmd(&c, LEDGER_OP_TICKET_CREATE, rid, ts);
  c.u.tickets.v = &s;
  c.u.tickets.n = 1;
  int rc = ledger_apply_cmd(l, &c, &r);
  return rc ? rc : r.rc;
}

static inline int th_ticket(struct ledger *l, const char *event, const char *id) {
  return th_ticket_at(l, event, id, 2000);
}

/* Encodes c and applies it alone as the batch at seq (ledger_apply_batch_at). */
static inline int th_apply_at(struct ledger *l, uint64_t seq, const struct ledger_cmd *c,
                              struct ledger_result *r) {
  struct mpk_w w;
  mpk_w_init(&w);
  ledger_cmd_encode(c, &w);
  struct gm_slice s = {(const uint8_t *)w.sb.data, w.sb.size};
  int rc = ledger_apply_batch_at(l, seq, &s, 1, r);
  mpk_w_free(&w);
  return rc;
}

static inline int th_redeem(struct ledger *l, const char *rid, const char *ticket,
                            const char *gate, uint32_t version, uint64_t nonce,
                            struct ledger_result *r) {
  struct ledger_cmd c;
  th_cmd(&c, LEDGER_OP_REDEEM, rid, 5000);
  strcpy(c.gate, gate);
  strcpy(c.u.redeem.ticket_id, ticket);
  strcpy(c.u.redeem.method, "qr");
  strcpy(c.u.redeem.cred_id, ticket);
  c.u.redeem.ticket_version = version;
  c.u.redeem.nonce = nonce;
  return ledger_apply_cmd(l, &c, r);
}

#endif
