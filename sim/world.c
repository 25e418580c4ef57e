/*
 * world.c — building and running one simulated festival (see sim.h).
 */
#include "sim/sim.h"

#include <ftw.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/assert.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/mpk.h"
#include "methods/keys.h"
#include "methods/qr.h"
#include "sim/gate.h"

static struct world *clock_world;
static int64_t sim_clock(void) { return clock_world ? SIM_BASE_MS + clock_world->s.now : 0; }

static void seeded(void *arg, void *out, size_t n) {
  uint8_t *p = out;
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t)sim_rand(arg);
}

/* A setup command on the first gate's ledger; copy_ledgers gives the
 * others a copy once the setup is done. */
static int apply_setup(struct world *w, const struct ledger_cmd *c) {
  struct mpk_w mw;
  mpk_w_init(&mw);
  ledger_cmd_encode(c, &mw);
  struct gm_slice sl = {(const uint8_t *)mw.sb.data, mw.sb.size};
  struct ledger_result res;
  int rc = ledger_apply_batch(w->g[0]->ledger, &sl, 1, &res);
  if (rc == 0 && res.rc != 0)
    rc = res.rc;
  mpk_w_free(&mw);
  return rc;
}

/* Every other gate gets the first one's ledger as a gate that joins gets
 * it: a snapshot, restored; on two threads (unless the run keeps to one
 * core), since the ledgers are separate. */
struct copying {
  struct world *w;
  const struct gm_buf *snap;
  unsigned from;
  int rc;
};

static void copy_some(void *arg) {
  struct copying *cp = arg;
  for (unsigned i = cp->from; i < cp->w->cfg.gates && cp->rc == 0; i += 2)
    cp->rc = ledger_restore(cp->w->g[i]->ledger, cp->snap->ptr, cp->snap->len);
}

static int copy_ledgers(struct world *w) {
  struct gm_buf snap;
  gm_buf_init(&snap);
  int rc = ledger_snapshot(w->g[0]->ledger, &snap);
  if (rc == 0) {
    struct copying a = {w, &snap, 1, 0}, b = {w, &snap, 2, 0};
    lane_split(w->cfg.one_core, copy_some, &a, &b);
    rc = a.rc != 0 ? a.rc : b.rc;
  }
  gm_buf_free(&snap);
  return rc;
}

/* The methods' environment of the organizer's office before the festival
 * (an hour before it starts; randomness from the seed). */
static void office_env(struct world *w, struct method_env *env) {
  memset(env, 0, sizeof *env);
  env->now_ms = SIM_BASE_MS - 3600000;
  env->cfg = &w->mcfg;
  env->seal_key = w->seal_key;
  env->random = seeded;
  env->random_arg = &w->s.rng;
}

static void cmd_init(struct ledger_cmd *c, int op, const char *rid) {
  memset(c, 0, sizeof *c);
  c->op = op;
  snprintf(c->rid, sizeof c->rid, "%s", rid);
  c->ts_ms = SIM_BASE_MS - 3600000;
  strcpy(c->gate, "office");
  strcpy(c->actor, "organizer");
}

/* What the organizer pushes before the festival, on the first gate's
 * ledger, starts with the event and a signing key (world_run then decides
 * which tickets move, pushes the tickets while the payloads are signed, and
 * copies the ledger to every other gate). */
static int setup_event(struct world *w) {
  struct ledger_cmd c;
  cmd_init(&c, LEDGER_OP_EVENT_CREATE, "setup-event");
  strcpy(c.u.event.id, "fest");
  snprintf(c.u.event.name, sizeof c.u.event.name, "%s", w->cfg.name);
  c.u.event.starts_ms = SIM_BASE_MS - 3600000;
  c.u.event.ends_ms = SIM_BASE_MS + w->cfg.duration_ms + 86400000LL;
  c.u.event.policy = w->cfg.policy;
  c.u.event.offline_budget = w->cfg.budget;
  int rc = apply_setup(w, &c);
  if (rc != 0)
    return rc;
  /* The signing key, from the seed: same seed, same payloads. */
  struct method_env env;
  office_env(w, &env);
  if ((rc = ledger_rd_begin(w->g[0]->ledger, &env.rd)) != 0)
    return rc;
  rc = keys_new_cmd(&env, &c);
  ledger_rd_end(env.rd);
  if (rc != 0)
    return rc;
  snprintf(c.rid, sizeof c.rid, "setup-key");
  c.ts_ms = env.now_ms;
  strcpy(c.gate, "office");
  if ((rc = apply_setup(w, &c)) != 0)
    return rc;
  if ((rc = ledger_rd_begin(w->g[0]->ledger, &env.rd)) != 0)
    return rc;
  rc = keys_signing(&env, &w->kid, w->sk);
  ledger_rd_end(env.rd);
  return rc;
}

/* What becomes of an attendee's ticket: kept, transferred before the
 * festival, or resold during it (the new holder's payload is issued ahead,
 * for the version the transfer will make); or kept and shown as a dynamic
 * pass rather than a QR code. */
enum { KEPT = 0, MOVED, RESOLD, PASS };

/* The tickets, in batches, then the transfers of those that moved to a new
 * holder before the festival. */
static int setup_tickets(struct world *w, const uint8_t *moved) {
  uint32_t n = w->cfg.attendees;
  struct ledger_cmd c;
  struct ledger_ticket_spec *specs = calloc(LEDGER_BATCH_TICKETS_MAX, sizeof *specs);
  if (specs == NULL)
    return GM_ENOMEM;
  int rc = 0;
  for (uint32_t at = 0; at < n && rc == 0; at += LEDGER_BATCH_TICKETS_MAX) {
    uint32_t k = n - at < LEDGER_BATCH_TICKETS_MAX ? n - at : LEDGER_BATCH_TICKETS_MAX;
    for (uint32_t i = 0; i < k; i++) {
      memset(&specs[i], 0, sizeof specs[i]);
      snprintf(specs[i].id, sizeof specs[i].id, "t%" PRIu32, at + i);
      strcpy(specs[i].event_id, "fest");
      snprintf(specs[i].holder, sizeof specs[i].holder, "h%" PRIu32, at + i);
    }
    char rid[32];
    snprintf(rid, sizeof rid, "setup-tickets-%" PRIu32, at);
    cmd_init(&c, LEDGER_OP_TICKET_CREATE, rid);
    c.u.tickets.v = specs;
    c.u.tickets.n = k;
    rc = apply_setup(w, &c);
  }
  free(specs);
  for (uint32_t a = 0; a < n && rc == 0; a++) {
    if (moved[a] != MOVED)
      continue;
    char rid[32];
    snprintf(rid, sizeof rid, "setup-transfer-%" PRIu32, a);
    cmd_init(&c, LEDGER_OP_TICKET_TRANSFER, rid);
    snprintf(c.u.transfer.ticket_id, sizeof c.u.transfer.ticket_id, "t%" PRIu32, a);
    snprintf(c.u.transfer.to_holder, sizeof c.u.transfer.to_holder, "n%" PRIu32, a);
    rc = apply_setup(w, &c);
  }
  return rc;
}

static char *issue(struct world *w, uint32_t attendee, uint32_t version) {
  char tid[16], text[QR_TEXT_MAX];
  snprintf(tid, sizeof tid, "t%" PRIu32, attendee);
  uint32_t issued = (uint32_t)((SIM_BASE_MS - 3600000) / 1000);
  uint32_t expires = (uint32_t)((SIM_BASE_MS + w->cfg.duration_ms + w->cfg.settle_ms) / 1000 + 86400);
  if (qr_issue(text, sizeof text, w->kid, w->sk, issued, expires, version, tid, NULL) != 0)
    return NULL;
  return strdup(text);
}

/* The tickets on the first gate's ledger and every attendee's payload (and
 * the stale one of a moved ticket), at once: this thread pushes the tickets
 * while a second one signs payloads, then both sign what is left, taking
 * attendees in runs from a shared counter (with one core, one after the
 * other). Issue is a function of the attendee alone, so who signs which
 * changes nothing in the run. */
#define ISSUE_RUN 256

struct preparing {
  struct world *w;
  const uint8_t *moved;
  atomic_uint_fast32_t *next;
  bool tickets; /* this side pushes the tickets first */
  int rc;
};

static void prepare_some(void *arg) {
  struct preparing *p = arg;
  struct world *w = p->w;
  if (p->tickets)
    p->rc = setup_tickets(w, p->moved);
  for (;;) {
    uint32_t from = (uint32_t)atomic_fetch_add(p->next, ISSUE_RUN);
    if (from >= w->cfg.attendees)
      break;
    uint32_t to = w->cfg.attendees - from < ISSUE_RUN ? w->cfg.attendees : from + ISSUE_RUN;
    for (uint32_t a = from; a < to; a++) {
      if (p->moved[a] == MOVED || p->moved[a] == RESOLD)
        w->stale[a] = issue(w, a, 1);
      if (p->moved[a] != PASS)
        w->payload[a] = issue(w, a, p->moved[a] == KEPT ? 1 : 2);
    }
  }
}

static int prepare(struct world *w, const uint8_t *moved) {
  atomic_uint_fast32_t next = 0;
  struct preparing here = {w, moved, &next, true, 0}, there = {w, moved, &next, false, 0};
  lane_split(w->cfg.one_core, prepare_some, &here, &there);
  return here.rc;
}

/* The dynamic passes, generated by the pass method on the first gate's
 * ledger as an organizer's generate would, one credential per holder. */
static int setup_passes(struct world *w) {
  if (w->cfg.pass <= 0)
    return 0;
  if ((w->passes = calloc(w->cfg.attendees, sizeof *w->passes)) == NULL)
    return GM_ENOMEM;
  const struct method *m = method_find("pass");
  struct method_env env;
  office_env(w, &env);
  int rc = m != NULL ? 0 : GM_ENOTFOUND;
  for (uint32_t a = 0; a < w->cfg.attendees && rc == 0; a++) {
    if (w->fate[a] != PASS)
      continue;
    char tid[16];
    snprintf(tid, sizeof tid, "t%" PRIu32, a);
    struct ledger_ticket t;
    struct method_issue out;
    memset(&out, 0, sizeof out);
    if ((rc = ledger_rd_begin(w->g[0]->ledger, &env.rd)) != 0)
      break;
    rc = ledger_ticket_get(env.rd, tid, &t);
    if (rc == 0)
      rc = m->generate(&env, &t, NULL, &out);
    ledger_rd_end(env.rd);
    json_decref(out.response);
    if (rc != 0)
      break;
    memcpy(w->passes[a].id, out.cmd.u.cred.id, PASS_ID_HEX);
    memcpy(w->passes[a].secret, out.cmd.u.cred.secret, PASS_SECRET_LEN);
    snprintf(out.cmd.rid, sizeof out.cmd.rid, "setup-pass-%" PRIu32, a);
    strcpy(out.cmd.gate, "office");
    strcpy(out.cmd.actor, "organizer");
    rc = apply_setup(w, &out.cmd);
  }
  return rc;
}

/* --------------------------------------------------------------- events */

struct arrival {
  struct world *w;
  uint32_t attendee;
  unsigned gate;
  uint8_t kind; /* 0 holder, 1 screenshot at another gate, 2 stale payload */
  size_t k;     /* its place in the arrivals' order (w->pre), SIZE_MAX before */
  int64_t shot_ms; /* a screenshot of a pass: when the holder showed it */
};

/* Signatures checked ahead. The lane thread, when it has nothing to apply,
 * checks the organizer's signature on the payloads of the arrivals to come,
 * in the order they come: the same libsodium call on the same key, message
 * and signature as the gate's QR method would make. The method asks (its
 * env->sigs) before it checks, and takes an answer only for the arrival it
 * is verifying, and only when key, signature and message (its BLAKE2b) are
 * the ones checked; anything else, and any arrival not reached yet, it
 * checks itself. So a run is the same whether the lane got there first or
 * not, and the gate still parses the payload, finds the key in its ledger
 * and checks the times. */
static void precheck(struct world *w, struct precheck *p) {
  uint8_t bin[QR_BIN_MAX];
  struct qr_token t;
  if (p->payload == NULL || qr_parse_text(p->payload, strlen(p->payload), bin, &t) != 0 ||
      t.signed_len > UINT32_MAX) {
    atomic_store_explicit(&p->state, 3, memory_order_release);
    return;
  }
  p->len = (uint32_t)t.signed_len;
  memcpy(p->sig, t.sig, sizeof p->sig);
  crypto_generichash(p->hash, sizeof p->hash, t.signed_ptr, t.signed_len, NULL, 0);
  bool good = crypto_sign_verify_detached(t.sig, t.signed_ptr, t.signed_len, w->pk) == 0;
  atomic_store_explicit(&p->state, good ? 1 : 2, memory_order_release);
}

/* The lane thread's idle work: the next arrival not come yet. */
static bool precheck_next(void *arg) {
  struct world *w = arg;
  if (!atomic_load_explicit(&w->pre_ready, memory_order_acquire))
    return false;
  size_t k = atomic_load_explicit(&w->pre_next, memory_order_relaxed);
  size_t at = atomic_load_explicit(&w->pre_main, memory_order_relaxed);
  if (k < at)
    k = at; /* those came already */
  if (k >= w->n_pre)
    return false;
  precheck(w, &w->pre[k]);
  atomic_store_explicit(&w->pre_next, k + 1, memory_order_relaxed);
  return true;
}

static int precheck_known(void *arg, const uint8_t sig[64], const uint8_t *msg, size_t len,
                          const uint8_t pk[32]) {
  struct world *w = arg;
  if (w->pre_cur >= w->n_pre)
    return -1;
  const struct precheck *p = &w->pre[w->pre_cur];
  uint8_t st = atomic_load_explicit(&p->state, memory_order_acquire);
  if ((st != 1 && st != 2) || len != p->len || memcmp(pk, w->pk, sizeof w->pk) != 0 ||
      memcmp(sig, p->sig, sizeof p->sig) != 0)
    return -1;
  uint8_t h[sizeof p->hash];
  crypto_generichash(h, sizeof h, msg, len, NULL, 0);
  if (memcmp(h, p->hash, sizeof h) != 0)
    return -1;
  w->pre_used++;
  return st == 1;
}

/* Once every arrival is scheduled: their order, for the lane thread. */
static void precheck_start(struct world *w) {
  size_t n;
  const struct sim_event *ev = sched_later_order(&w->s, &n);
  if ((w->pre = calloc(n ? n : 1, sizeof *w->pre)) == NULL)
    return; /* the gates check every signature themselves */
  for (size_t k = 0; k < n; k++) {
    struct arrival *a = ev[k].arg;
    a->k = k;
    w->pre[k].payload = a->kind == 2 ? w->stale[a->attendee] : w->payload[a->attendee];
  }
  w->n_pre = n;
  crypto_sign_ed25519_sk_to_pk(w->pk, w->sk);
  w->sigs = (struct method_sigs){precheck_known, w};
  atomic_store_explicit(&w->pre_ready, true, memory_order_release);
}

static void on_arrival(void *arg, uint64_t unused) {
  (void)unused;
  struct arrival *a = arg;
  struct world *w = a->w;
  unsigned g = a->gate;
  for (unsigned k = 0; k < w->cfg.gates && !w->g[g]->up; k++)
    g = (g + 1) % w->cfg.gates; /* that gate is down: the next one */
  if (a->k < w->n_pre)
    atomic_store_explicit(&w->pre_main, a->k + 1, memory_order_relaxed);
  if (w->g[g]->up && w->fate[a->attendee] == PASS) {
    /* The holder's app shows the code of the current step; a screenshot
     * the code of the step it was taken in. */
    const struct sim_pass *ps = &w->passes[a->attendee];
    int64_t at = SIM_BASE_MS + (a->kind == 1 ? a->shot_ms : w->s.now);
    char code[PASS_CODE_MAX + 1];
    pass_code_make(code, ps->secret, ps->id, (uint64_t)(at / 1000) / w->mcfg.pass_period_s);
    gate_verify_pass(w->g[g], a->attendee, code, a->kind != 0);
  } else if (w->g[g]->up) {
    const char *p = a->kind == 2 ? w->stale[a->attendee] : w->payload[a->attendee];
    w->pre_cur = a->k;
    if (p != NULL)
      gate_verify(w->g[g], a->attendee, p, a->kind != 0);
    w->pre_cur = SIZE_MAX;
  }
  free(a);
}

static void schedule_arrival(struct world *w, int64_t at, uint32_t attendee, unsigned gate,
                             uint8_t kind, int64_t shot_ms) {
  struct arrival *a = malloc(sizeof *a);
  *a = (struct arrival){w, attendee, gate, kind, SIZE_MAX, shot_ms};
  sched_later(&w->s, at, on_arrival, a, 0);
}

/* An organizer resells a ticket (arg: attendee << 8 | gate). */
static void on_resale(void *arg, uint64_t what) {
  struct world *w = arg;
  unsigned g = (unsigned)(what & 0xff) % w->cfg.gates;
  for (unsigned k = 0; k < w->cfg.gates && !w->g[g]->up; k++)
    g = (g + 1) % w->cfg.gates; /* that gate is down: the next one */
  if (w->g[g]->up)
    gate_transfer(w->g[g], (uint32_t)(what >> 8));
}

static void on_phase(void *arg, uint64_t i) {
  struct world *w = arg;
  const struct sim_phase *p = &w->cfg.phases[i];
  if (p->kind == PH_PARTITION) {
    memcpy(w->comp, p->comp, sizeof w->comp);
  } else if (p->kind == PH_HEAL) {
    memset(w->comp, 0, sizeof w->comp);
    w->last_heal_ms = w->s.now;
    w->converged_ms = -1;
  } else if (p->kind == PH_CRASH) {
    gate_crash(w->g[p->gate - 1]);
  }
}

static void on_restart(void *arg, uint64_t gate) {
  struct world *w = arg;
  gate_restart(w->g[gate]);
}

static void on_final_heal(void *arg, uint64_t unused) {
  (void)unused;
  struct world *w = arg;
  memset(w->comp, 0, sizeof w->comp);
  for (unsigned i = 0; i < w->cfg.gates; i++)
    gate_restart(w->g[i]);
  if (w->last_heal_ms < 0) { /* the scenario never healed: this is the heal */
    w->last_heal_ms = w->s.now;
    w->converged_ms = -1;
  }
}

/* Converged: every live gate applied the same entries and has no backlog. */
static void on_watch(void *arg, uint64_t unused) {
  (void)unused;
  struct world *w = arg;
  if (w->stopping)
    return;
  sched_in(&w->s, 100, on_watch, w, 0);
  if (w->last_heal_ms < 0 || w->converged_ms >= 0)
    return;
  uint64_t applied = 0;
  for (unsigned i = 0; i < w->cfg.gates; i++) {
    struct gate *g = w->g[i];
    if (!g->up || g->raft == NULL)
      return;
    for (size_t k = 0; k < g->n_own; k++)
      if (!g->own[k].settled)
        return;
    if (gate_settle(g) != 0)
      return;
    uint64_t a = ledger_applied_seq(g->ledger);
    if (i > 0 && a != applied)
      return;
    applied = a;
  }
  w->converged_ms = w->s.now - w->last_heal_ms;
}

/* ------------------------------------------------------------------ run */

static int lane_apply(void *arg, unsigned gate, uint64_t index, const void *p, size_t n) {
  struct world *w = arg;
  return gm_fsm_apply_at(&w->g[gate]->fsm, index, p, n);
}

static int lane_flush(void *arg, unsigned gate) {
  struct world *w = arg;
  return ledger_flush(w->g[gate]->ledger);
}

int world_settle(struct world *w) {
  int rc = 0;
  for (unsigned i = 0; i < w->cfg.gates; i++) {
    int grc = gate_settle(w->g[i]);
    rc = rc != 0 ? rc : grc;
  }
  return rc;
}

int world_run(struct world *w, const struct sim_cfg *cfg, uint64_t seed) {
  memset(w, 0, sizeof *w);
  w->cfg = *cfg;
  w->seed = seed;
  w->last_heal_ms = -1;
  w->converged_ms = -1;
  sched_init(&w->s, seed);
  clock_world = w;
  gm_log_set_clock(sim_clock);
  gm_log_set_level(GM_LOG_ERROR);
  method_config_default(&w->mcfg);
  w->mcfg.enabled_qr = true;
  w->mcfg.enabled_pass = true;
  seeded(&w->s.rng, w->seal_key, sizeof w->seal_key);
  const char *base = cfg->dir                         ? cfg->dir
                     : access("/dev/shm", W_OK) == 0 ? "/dev/shm"
                                                     : "/tmp";
  snprintf(w->root, sizeof w->root, "%s/gatesim.XXXXXX", base);
  if (mkdtemp(w->root) == NULL)
    return GM_ECONFIG; /* the directory (--dir) cannot hold the ledgers */
  w->disk = simio_disk_create();
  w->pre_cur = SIZE_MAX;
  int rc = lane_create(&w->lane, cfg->gates, !cfg->one_core, lane_apply, lane_flush,
                       precheck_next, w) != 0
               ? GM_ENOMEM
               : 0;
  for (unsigned i = 0; i < cfg->gates && rc == 0; i++)
    rc = gate_create(w, i, &w->g[i]);
  if (rc == 0)
    rc = setup_event(w);
  if (rc != 0)
    return rc;
  /* Attendees: a payload each; transferred tickets also leave a stale one
   * with the previous holder. */
  w->payload = calloc(cfg->attendees, sizeof *w->payload);
  w->stale = calloc(cfg->attendees, sizeof *w->stale);
  uint8_t *moved = calloc(cfg->attendees + 1, sizeof *moved);
  GM_ASSERT(w->payload != NULL && w->stale != NULL && moved != NULL);
  for (uint32_t a = 0; a < cfg->attendees; a++)
    moved[a] = cfg->transfer > 0 && sim_unit(&w->s.rng) < cfg->transfer ? MOVED : KEPT;
  for (uint32_t a = 0; a < cfg->attendees && cfg->resale > 0; a++)
    if (moved[a] == KEPT && sim_unit(&w->s.rng) < cfg->resale)
      moved[a] = RESOLD;
  for (uint32_t a = 0; a < cfg->attendees && cfg->pass > 0; a++)
    if (moved[a] == KEPT && sim_unit(&w->s.rng) < cfg->pass)
      moved[a] = PASS;
  w->fate = moved;
  if ((rc = prepare(w, moved)) != 0 || (rc = setup_passes(w)) != 0 ||
      (rc = copy_ledgers(w)) != 0)
    return rc;
  struct raft_configuration conf;
  raft_configuration_init(&conf);
  for (unsigned i = 0; i < cfg->gates; i++)
    raft_configuration_add(&conf, w->g[i]->id, w->g[i]->io.address,
                           i < cfg->voters ? RAFT_VOTER : RAFT_STANDBY);
  for (unsigned i = 0; i < cfg->gates && rc == 0; i++)
    rc = gate_start(w->g[i], true, &conf);
  raft_configuration_close(&conf);
  if (rc != 0)
    return rc;
  /* The day: arrivals peak in the middle of the window (a triangle). */
  int64_t span = cfg->close_ms - cfg->open_ms;
  int64_t last = 0;
  for (uint32_t a = 0; a < cfg->attendees; a++) {
    double u = (sim_unit(&w->s.rng) + sim_unit(&w->s.rng)) / 2;
    int64_t at = cfg->open_ms + (int64_t)(u * (double)span);
    unsigned gate = (unsigned)sim_below(&w->s.rng, cfg->gates);
    schedule_arrival(w, at, a, gate, 0, 0);
    if (cfg->fraud > 0 && sim_unit(&w->s.rng) < cfg->fraud) {
      unsigned other = (gate + 1 + (unsigned)sim_below(&w->s.rng, cfg->gates - 1)) % cfg->gates;
      int64_t t2 = at + (int64_t)sim_below(&w->s.rng, 120000);
      schedule_arrival(w, t2, a, other, 1, at);
      last = t2 > last ? t2 : last;
    }
    if (moved[a] == MOVED) {
      int64_t t3 = cfg->open_ms + (int64_t)sim_below(&w->s.rng, (uint64_t)span);
      schedule_arrival(w, t3, a, (unsigned)sim_below(&w->s.rng, cfg->gates), 2, 0);
    } else if (moved[a] == RESOLD) {
      /* Sold on (at an organizer's desk at some gate) a 40th to a 4th of
       * the arrival window before the buyer comes; the seller then tries
       * the old code within a 4th of the window, before the gates close. */
      int64_t lead = span / 40 + (int64_t)sim_below(&w->s.rng, (uint64_t)(span / 4 - span / 40) + 1);
      int64_t tx = at - lead;
      tx = tx < 1000 ? 1000 : tx;
      sched_at(&w->s, tx, on_resale, w, (uint64_t)a << 8 | sim_below(&w->s.rng, cfg->gates));
      int64_t t3 = tx + (int64_t)sim_below(&w->s.rng, (uint64_t)(span / 4) + 1);
      t3 = t3 > cfg->close_ms ? cfg->close_ms : t3; /* before the gates close */
      schedule_arrival(w, t3, a, (unsigned)sim_below(&w->s.rng, cfg->gates), 2, 0);
      last = t3 > last ? t3 : last;
    }
    last = at > last ? at : last;
  }
  precheck_start(w);
  int64_t phases_end = 0;
  for (unsigned i = 0; i < cfg->n_phases; i++) {
    const struct sim_phase *p = &cfg->phases[i];
    sched_at(&w->s, p->at_ms, on_phase, w, i);
    int64_t e = p->at_ms;
    if (p->kind == PH_CRASH) {
      sched_at(&w->s, p->at_ms + p->down_ms, on_restart, w, p->gate - 1);
      e += p->down_ms;
    }
    phases_end = e > phases_end ? e : phases_end;
  }
  int64_t end = cfg->duration_ms;
  int64_t heal_at = (last > phases_end ? last : phases_end) + 1000;
  if (heal_at + cfg->settle_ms > end)
    end = heal_at + cfg->settle_ms;
  sched_at(&w->s, heal_at, on_final_heal, w, 0);
  sched_at(&w->s, 100, on_watch, w, 0);
  sched_run_until(&w->s, end);
  w->end_ms = end;
  return 0;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  remove(path);
  return 0;
}

/* The run's end: the ledgers' directory goes (a file still mapped stays
 * valid until it is unmapped) and the signing key is wiped. */
static void remove_root(struct world *w) {
  if (w->root[0] != 0)
    nftw(w->root, remove_one, 16, FTW_DEPTH | FTW_PHYS);
  sodium_memzero(w->sk, sizeof w->sk);
  clock_world = NULL;
}

void world_free(struct world *w) {
  /* Every gate stops; what is still in flight is delivered to no one, and
   * the queue runs dry (each queued event owns its argument). */
  w->stopping = true;
  for (unsigned i = 0; i < w->cfg.gates; i++)
    if (w->g[i])
      gate_crash(w->g[i]);
  while (sched_pending(&w->s) > 0)
    sched_run_until(&w->s, sched_next_at(&w->s));
  for (unsigned i = 0; i < w->cfg.gates; i++)
    gate_free(w->g[i]);
  lane_destroy(w->lane);
  free(w->pre); /* the lane thread read it */
  simio_disk_free(w->disk);
  for (uint32_t a = 0; w->payload && a < w->cfg.attendees; a++) {
    free(w->payload[a]);
    free(w->stale[a]);
  }
  free(w->payload);
  free(w->stale);
  free(w->fate);
  free(w->passes);
  for (size_t i = 0; i < w->n_cmds; i++)
    free(w->cmds[i]);
  free(w->cmds);
  free(w->cmd_len);
  free(w->v);
  sched_free(&w->s);
  remove_root(w);
}

void world_discard(struct world *w) {
  lane_destroy(w->lane);
  w->lane = NULL;
  remove_root(w);
}
