/*
 * gate.c — a gate in the simulator: the node's wiring of the deterministic
 * core (ledger, methods, admission policy, provisional store, SWIM, libraft
 * over simio) on the simulated clock and network. The production wiring is
 * node/; this one keeps the same decisions with simulated time and I/O.
 */
#include "sim/gate.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/assert.h"
#include "lib/err.h"
#include "lib/mpk.h"
#include "methods/service.h"
#include "raft/entry.h"

#define GATE_TICK_MS 50
#define PROPOSE_MS 5
#define BACKLOG_MS 200
#define PRUNE_MS 1000
#define DIGEST_MS 1000
#define PROPOSE_MAX 512

/* A verify (or a provisional record, or an organizer's transfer) waiting
 * for its commit. */
#define V_RECORD SIZE_MAX       /* a provisional record's proposal */
#define V_OFFICE (SIZE_MAX - 1) /* an organizer's command: a transfer */
#define OFFICE_RETRY_MS 1000

struct req {
  struct req *next;
  uint64_t id;
  size_t v;        /* verdict index, or V_RECORD, or V_OFFICE */
  uint64_t pseq;   /* the record, when v == V_RECORD */
  int policy;
  uint32_t budget;
  int64_t wait_until, give_up;
  struct ledger_cmd cmd;
};

/* A command in the leader's queue, and where its result goes. */
struct qitem {
  uint8_t *cmd;
  size_t len;
  unsigned from; /* gate index */
  uint64_t req;
};

struct pbatch {
  struct pbatch *next;
  uint64_t token;
  struct qitem *items;
  size_t n;
};

/* Messages between gates that are not Raft's. */
enum { M_FWD = 1, M_RESULT, M_GOSSIP };

struct msg {
  struct world *w;
  int type;
  unsigned from, to;
  uint64_t to_gen;
  uint64_t req;
  struct ledger_result res;
  uint8_t *bytes;
  size_t len;
};

static void on_tick(void *arg, uint64_t tag);
static int gate_catch_up(struct gate *g, enum sim_reader who);

/* Runs the gate's timer at `at`, unless it is due sooner already. */
static void arm_tick(struct gate *g, int64_t at) {
  if (g->tick_armed && g->tick_at <= at)
    return;
  g->tick_armed = true;
  g->tick_at = at;
  sched_at(&g->w->s, at, on_tick, g, ++g->tick_tag);
}

static void record_admission_cmd(struct world *w, const struct ledger_cmd *c) {
  struct mpk_w mw;
  mpk_w_init(&mw);
  ledger_cmd_encode(c, &mw);
  if (w->n_cmds == w->cap_cmds) {
    w->cap_cmds = w->cap_cmds ? w->cap_cmds * 2 : 1024;
    w->cmds = realloc(w->cmds, w->cap_cmds * sizeof *w->cmds);
    w->cmd_len = realloc(w->cmd_len, w->cap_cmds * sizeof *w->cmd_len);
  }
  w->cmds[w->n_cmds] = malloc(mw.sb.size);
  memcpy(w->cmds[w->n_cmds], mw.sb.data, mw.sb.size);
  w->cmd_len[w->n_cmds++] = mw.sb.size;
  mpk_w_free(&mw);
}

/* ------------------------------------------------------------- network */

int64_t world_delay(struct world *w, unsigned from, unsigned to) {
  if (from >= w->cfg.gates || to >= w->cfg.gates || w->comp[from] != w->comp[to])
    return -1;
  if (w->cfg.loss > 0 && sim_unit(&w->s.rng) < w->cfg.loss)
    return -1;
  int64_t j = w->cfg.jitter_ms > 0 ? (int64_t)sim_below(&w->s.rng, (uint64_t)w->cfg.jitter_ms + 1) : 0;
  return w->cfg.latency_ms + j;
}

static void msg_free(struct msg *m) {
  free(m->bytes);
  free(m);
}

static void gate_on_msg(struct gate *g, struct msg *m);

static void on_msg(void *arg, uint64_t unused) {
  (void)unused;
  struct msg *m = arg;
  struct world *w = m->w;
  /* The receiver may have crashed (or restarted) since it was sent. */
  struct gate *g = w->g[m->to];
  if (g->up && g->gen == m->to_gen && w->comp[m->from] == w->comp[m->to])
    gate_on_msg(g, m);
  else
    w->dropped++;
  msg_free(m);
}

static void send_msg(struct world *w, struct msg *m) {
  int64_t d = world_delay(w, m->from, m->to);
  if (d < 0 || !w->g[m->to]->up) {
    w->dropped++;
    msg_free(m);
    return;
  }
  m->to_gen = w->g[m->to]->gen;
  m->w = w;
  w->messages++;
  w->gossip_msgs += m->type == M_GOSSIP;
  if (m->type == M_GOSSIP && w->cfg.dup > 0 && sim_unit(&w->s.rng) < w->cfg.dup) {
    /* The network delivers it twice: replays must change nothing. */
    struct msg *c = malloc(sizeof *c);
    *c = *m;
    c->bytes = malloc(m->len);
    memcpy(c->bytes, m->bytes, m->len);
    sched_in(&w->s, d + 1 + (int64_t)sim_below(&w->s.rng, 20), on_msg, c, 0);
  }
  sched_in(&w->s, d, on_msg, m, 0);
}

static struct msg *msg_new(int type, unsigned from, unsigned to, const void *bytes, size_t len) {
  struct msg *m = calloc(1, sizeof *m);
  m->type = type;
  m->from = from;
  m->to = to;
  if (len > 0) {
    m->bytes = malloc(len);
    memcpy(m->bytes, bytes, len);
    m->len = len;
  }
  return m;
}

/* --------------------------------------------------------------- gossip */

static unsigned gate_of_addr(const char *addr) {
  return (unsigned)strtoul(addr + 1, NULL, 10) - 1; /* "g<id>" */
}

static void swim_send(void *arg, const char *addr, const uint8_t *body, size_t n) {
  struct gate *g = arg;
  unsigned to = gate_of_addr(addr);
  if (to >= g->w->cfg.gates)
    return;
  send_msg(g->w, msg_new(M_GOSSIP, g->idx, to, body, n));
}

static void swim_changed(void *arg, const struct swim_member *m) { (void)arg, (void)m; }

static void push_record(struct gate *g, const struct prov_rec *r) {
  const struct swim_member *ms;
  size_t count = swim_members(g->swim, &ms);
  uint8_t body[1300];
  size_t taken;
  int len = prov_msg_push(&r, 1, body, sizeof body, &taken);
  if (len < 0)
    return;
  for (size_t i = 0; i < count; i++)
    if (ms[i].state != SWIM_DEAD && ms[i].id != g->id)
      swim_send(g, ms[i].addr, body, (size_t)len);
}

static void send_digest(struct gate *g) {
  const struct swim_member *ms;
  size_t count = swim_members(g->swim, &ms);
  for (size_t k = 0; k < count; k++) {
    const struct swim_member *m = &ms[g->digest_turn++ % count];
    if (m->state == SWIM_ALIVE && m->id != g->id) {
      uint8_t body[1300];
      int len = prov_msg_digest(g->prov, body, sizeof body);
      if (len > 0)
        swim_send(g, m->addr, body, (size_t)len);
      return;
    }
  }
}

/* ------------------------------------------------------------- verdicts */

static size_t verdict_new(struct world *w, uint32_t attendee, unsigned gate, bool fraud,
                          const char *ticket) {
  if (w->n_v == w->cap_v) {
    w->cap_v = w->cap_v ? w->cap_v * 2 : 1024;
    w->v = realloc(w->v, w->cap_v * sizeof *w->v);
  }
  struct verdict *v = &w->v[w->n_v];
  memset(v, 0, sizeof *v);
  v->attendee = attendee;
  v->gate = gate;
  v->at_ms = w->s.now;
  v->decided_ms = -1; /* no answer (yet) */
  v->fraud = fraud;
  v->reason = -1;
  snprintf(v->ticket, sizeof v->ticket, "%s", ticket);
  return w->n_v++;
}

static void decide(struct gate *g, size_t vi, bool admitted, int reason, int64_t at) {
  struct verdict *v = &g->w->v[vi];
  v->admitted = admitted;
  v->reason = reason;
  v->decided_ms = at;
  v->comp = g->w->comp[g->idx];
  if (admitted)
    g->admitted++;
}

/* ------------------------------------------------------- partition mode */

static void enter_partition(struct gate *g) {
  if (g->partition_mode)
    return;
  g->partition_mode = true;
  g->epoch++;
  admit_budget_epoch(&g->budget, g->epoch);
}

static void leave_partition(struct gate *g) { g->partition_mode = false; }

/* The leader, as the node's cluster_summary reports it: libraft's view,
 * unless nothing came from a leader for CLUSTER_LEADER_CONTACT_MS (a
 * standby never clears libraft's stale leader). */
#define LEADER_CONTACT_MS 2500

static uint64_t leader_of(struct gate *g) {
  if (g->raft == NULL)
    return 0;
  raft_id id = 0;
  const char *addr = NULL;
  raft_leader(g->raft, &id, &addr);
  if (raft_state(g->raft) != RAFT_LEADER &&
      g->w->s.now - g->io.leader_contact_ms >= LEADER_CONTACT_MS)
    return 0;
  return id;
}

/* ---------------------------------------------------------- submission */

static struct req *req_find(struct gate *g, uint64_t id, bool unlink) {
  for (struct req **pp = &g->reqs; *pp; pp = &(*pp)->next)
    if ((*pp)->id == id) {
      struct req *r = *pp;
      if (unlink)
        *pp = r->next;
      return r;
    }
  return NULL;
}

static void on_propose(void *arg, uint64_t gen);

static void leader_enqueue(struct gate *l, uint8_t *cmd, size_t len, unsigned from, uint64_t req) {
  /* Commands arriving within one batching interval share an entry. */
  if (l->n_queue == 0)
    sched_in(&l->w->s, PROPOSE_MS, on_propose, l, l->gen);
  if (l->n_queue == l->cap_queue) {
    l->cap_queue = l->cap_queue ? l->cap_queue * 2 : 256;
    l->queue = realloc(l->queue, l->cap_queue * sizeof *l->queue);
  }
  l->queue[l->n_queue++] = (struct qitem){cmd, len, from, req};
}

/* Sends the command to the leader this gate knows (itself included). */
static void submit(struct gate *g, const struct ledger_cmd *c, uint64_t req) {
  uint64_t lid = leader_of(g);
  if (lid == 0)
    return; /* the request's deadline decides */
  struct mpk_w mw;
  mpk_w_init(&mw);
  ledger_cmd_encode(c, &mw);
  if (lid == g->id) {
    uint8_t *copy = malloc(mw.sb.size);
    memcpy(copy, mw.sb.data, mw.sb.size);
    leader_enqueue(g, copy, mw.sb.size, g->idx, req);
  } else {
    struct msg *m = msg_new(M_FWD, g->idx, (unsigned)(lid - 1), mw.sb.data, mw.sb.size);
    m->req = req;
    send_msg(g->w, m);
  }
  mpk_w_free(&mw);
}

static void pbatch_free(struct pbatch *b) {
  for (size_t i = 0; i < b->n; i++)
    free(b->items[i].cmd);
  free(b->items);
  free(b);
}

/* No longer the leader (or down): what it proposed and has not seen applied
 * gets no answer from here; the requesters' deadlines decide. */
static void drop_batches(struct gate *g) {
  while (g->batches) {
    struct pbatch *b = g->batches;
    g->batches = b->next;
    pbatch_free(b);
  }
}

static void on_lost_leadership(void *arg) { drop_batches(arg); }

static void on_result(struct gate *g, uint64_t reqid, const struct ledger_result *res);

static void on_applied(void *arg, uint64_t index, uint64_t token, const struct ledger_result *res,
                       size_t n) {
  (void)index;
  struct gate *g = arg;
  for (struct pbatch **pp = &g->batches; *pp; pp = &(*pp)->next)
    if ((*pp)->token == token && (*pp)->n == n) {
      struct pbatch *b = *pp;
      *pp = b->next;
      for (size_t i = 0; i < n; i++) {
        struct qitem *it = &b->items[i];
        if (it->from == g->idx) {
          on_result(g, it->req, &res[i]);
        } else {
          struct msg *m = msg_new(M_RESULT, g->idx, it->from, NULL, 0);
          m->req = it->req;
          m->res = res[i];
          send_msg(g->w, m);
        }
      }
      pbatch_free(b);
      return;
    }
}

static void propose(struct gate *g) {
  if (g->n_queue == 0)
    return;
  if (g->raft == NULL || raft_state(g->raft) != RAFT_LEADER) {
    /* No longer the leader: the requesters' deadlines take over. */
    for (size_t i = 0; i < g->n_queue; i++)
      free(g->queue[i].cmd);
    g->n_queue = 0;
    return;
  }
  size_t n = g->n_queue < ENTRY_CMDS_MAX ? g->n_queue : ENTRY_CMDS_MAX;
  size_t bytes = 0;
  struct gm_slice *sl = malloc(n * sizeof *sl);
  for (size_t i = 0; i < n; i++) {
    sl[i] = (struct gm_slice){g->queue[i].cmd, g->queue[i].len};
    bytes += g->queue[i].len;
  }
  size_t size = entry_size(n, bytes);
  void *buf = malloc(size);
  struct entry_hdr h = {.count = (uint32_t)n, .origin = g->id, .token = ++g->next_token};
  entry_encode(buf, &h, sl, n);
  free(sl);
  struct pbatch *b = calloc(1, sizeof *b);
  b->items = malloc(n * sizeof *b->items);
  memcpy(b->items, g->queue, n * sizeof *b->items);
  b->n = n;
  b->token = h.token;
  if (simio_submit(&g->io, buf, size) != 0) {
    pbatch_free(b);
  } else {
    b->next = g->batches;
    g->batches = b;
  }
  free(buf);
  memmove(g->queue, g->queue + n, (g->n_queue - n) * sizeof *g->queue);
  g->n_queue -= n;
  if (g->n_queue > 0)
    sched_in(&g->w->s, PROPOSE_MS, on_propose, g, g->gen);
}

/* ------------------------------------------------------------ provisional */

static struct own_rec *own_get(struct gate *g, uint64_t seq) {
  for (size_t i = 0; i < g->n_own; i++)
    if (g->own[i].seq == seq)
      return &g->own[i];
  return NULL;
}

static void admit_provisional(struct gate *g, size_t vi, const struct ledger_cmd *strict,
                              int policy, uint32_t budget) {
  struct world *w = g->w;
  const struct prov_rec *heard =
      w->cfg.fault_no_heard_check
          ? NULL
          : prov_lookup(g->prov, (const uint8_t *)strict->u.redeem.ticket_id,
                        strlen(strict->u.redeem.ticket_id));
  struct admit_input in = {.policy = policy,
                           .leader_reachable = false,
                           .heard = heard,
                           .budget = budget,
                           .used = admit_budget_used(&g->budget, "fest"),
                           .store_full = false};
  struct admit_decision d;
  admit_decide(&in, &d);
  if (d.action != ADMIT_PROVISIONAL) {
    decide(g, vi, false, d.reason, w->s.now);
    return;
  }
  uint64_t seq = ++g->next_seq;
  struct ledger_cmd c;
  admit_provisional_cmd(strict, g->id, seq, g->epoch, &c);
  struct prov_rec r;
  admit_prov_record(&c, &r);
  if (prov_add(g->prov, &r) != 1) {
    decide(g, vi, false, LEDGER_REASON_BUDGET_EXHAUSTED, w->s.now);
    return;
  }
  admit_budget_take(&g->budget, "fest");
  struct mpk_w mw;
  mpk_w_init(&mw);
  ledger_cmd_encode(&c, &mw);
  if (g->n_own == g->cap_own) {
    g->cap_own = g->cap_own ? g->cap_own * 2 : 64;
    g->own = realloc(g->own, g->cap_own * sizeof *g->own);
  }
  struct own_rec *o = &g->own[g->n_own++];
  memset(o, 0, sizeof *o);
  o->seq = seq;
  o->cmd = malloc(mw.sb.size);
  memcpy(o->cmd, mw.sb.data, mw.sb.size);
  o->len = mw.sb.size;
  arm_tick(g, w->s.now + GATE_TICK_MS); /* its backlog, and a partition to notice */
  /* The fsync before the verdict; the planted fault skips it, so the record
   * lives only in memory until the ledger has it. */
  o->durable = !w->cfg.fault_skip_fsync;
  mpk_w_free(&mw);
  record_admission_cmd(w, &c);
  g->provisional++;
  struct verdict *v = &w->v[vi];
  v->provisional = true;
  v->origin = g->id;
  v->seq = seq;
  v->epoch = g->epoch;
  decide(g, vi, true, LEDGER_REASON_NONE, w->s.now + (o->durable ? g->io.disk_ms : 0));
  push_record(g, &r);
}

static void on_req_deadline(void *arg, uint64_t id) {
  struct gate *g = arg;
  if (!g->up)
    return;
  struct req *r = req_find(g, id, false);
  if (r == NULL)
    return;
  struct world *w = g->w;
  if (r->v == V_OFFICE) { /* the organizer tries again, the same request id */
    submit(g, &r->cmd, r->id);
    sched_in(&w->s, OFFICE_RETRY_MS, on_req_deadline, g, id);
    return;
  }
  if (r->v == V_RECORD) { /* a provisional record's proposal: try again later */
    req_find(g, id, true);
    struct own_rec *o = own_get(g, r->pseq);
    if (o)
      o->inflight = false;
    free(r);
    return;
  }
  if (r->policy == LEDGER_POLICY_AVAILABLE) {
    req_find(g, id, true);
    enter_partition(g);
    admit_provisional(g, r->v, &r->cmd, r->policy, r->budget);
    free(r);
    return;
  }
  if (w->s.now >= r->give_up) {
    req_find(g, id, true);
    decide(g, r->v, false, LEDGER_REASON_NO_QUORUM, w->s.now);
    free(r);
    return;
  }
  submit(g, &r->cmd, r->id); /* a leader may be known now */
  sched_in(&w->s, 500, on_req_deadline, g, id);
}

static void on_result(struct gate *g, uint64_t reqid, const struct ledger_result *res) {
  struct req *r = req_find(g, reqid, true);
  if (r == NULL)
    return; /* decided already (provisionally), or lost in a crash */
  if (res->rc == 0)
    leave_partition(g);
  if (r->v == V_OFFICE) {
    /* A transfer of a ticket used already is refused (its first result
     * again, should a retry reach the ledger twice). */
    if (res->rc == 0)
      g->w->resales_done++;
    else
      g->w->resales_refused++;
  } else if (r->v == V_RECORD) {
    struct own_rec *o = own_get(g, r->pseq);
    if (o) {
      o->inflight = false;
      o->settled = res->rc == 0;
      if (res->rc == 0 && res->has_first_use && !res->duplicate)
        g->incidents_seen++;
    }
  } else if (res->rc != 0) {
    decide(g, r->v, false, LEDGER_REASON_NO_QUORUM, g->w->s.now);
  } else {
    decide(g, r->v, res->reason == LEDGER_REASON_NONE, res->reason, g->w->s.now);
    if (res->reason == LEDGER_REASON_NONE)
      record_admission_cmd(g->w, &r->cmd);
  }
  free(r);
}

static struct req *req_new(struct gate *g) {
  struct req *r = calloc(1, sizeof *r);
  r->id = ++g->next_req;
  r->next = g->reqs;
  g->reqs = r;
  return r;
}

static void propose_backlog(struct gate *g) {
  if (leader_of(g) == 0)
    return;
  size_t inflight = 0;
  for (size_t i = 0; i < g->n_own; i++)
    inflight += g->own[i].inflight;
  for (size_t i = 0; i < g->n_own && inflight < PROPOSE_MAX; i++) {
    struct own_rec *o = &g->own[i];
    if (o->settled || o->inflight)
      continue;
    struct ledger_cmd c;
    if (ledger_cmd_decode(o->cmd, o->len, &c) != 0)
      continue;
    struct req *r = req_new(g);
    r->v = V_RECORD;
    r->pseq = o->seq;
    o->inflight = true;
    inflight++;
    submit(g, &c, r->id);
    sched_in(&g->w->s, g->w->cfg.request_timeout_ms, on_req_deadline, g, r->id);
  }
}

static void prune(struct gate *g) {
  /* Own: drop the settled prefix. */
  size_t k = 0;
  uint64_t upto = 0;
  while (k < g->n_own && g->own[k].settled) {
    upto = g->own[k].seq;
    free(g->own[k].cmd);
    k++;
  }
  if (k > 0) {
    memmove(g->own, g->own + k, (g->n_own - k) * sizeof *g->own);
    g->n_own -= k;
    prov_prune(g->prov, g->id, upto);
  }
  /* Others' records settle once the ledger has them: read it only when
   * the store holds some, and only when the log moved on or records came
   * in since the last read (a read applies the entries queued for it). */
  size_t kept = prov_count(g->prov);
  uint64_t applied = g->io.applied;
  if (kept <= g->n_own || (applied == g->prune_applied && kept <= g->prune_kept))
    return;
  struct ledger_rd *rd;
  if (gate_catch_up(g, SIM_READ_PRUNE) != 0 || ledger_rd_begin(g->ledger, &rd) != 0)
    return;
  admit_prune_settled(g->prov, g->id, rd);
  ledger_rd_end(rd);
  g->prune_applied = applied;
  g->prune_kept = prov_count(g->prov);
}

/* ---------------------------------------------------------------- verify */

static void sim_random(void *arg, void *out, size_t n) {
  uint64_t *st = arg;
  uint8_t *p = out;
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t)sim_rand(st);
}

/* A verify through the node's verification service: method and what the
 * attendee presented ({key: value}). */
static void verify(struct gate *g, uint32_t attendee, const char *method, const char *key,
                   const char *value, bool fraud) {
  struct world *w = g->w;
  char tid[16];
  snprintf(tid, sizeof tid, "t%" PRIu32, attendee);
  size_t vi = verdict_new(w, attendee, g->idx, fraud, tid);
  w->v[vi].pass = strcmp(method, "pass") == 0;
  struct method_env env;
  memset(&env, 0, sizeof env);
  if (gate_catch_up(g, SIM_READ_VERIFY) != 0 || ledger_rd_begin(g->ledger, &env.rd) != 0) {
    decide(g, vi, false, LEDGER_REASON_MALFORMED, w->s.now);
    return;
  }
  env.now_ms = SIM_BASE_MS + w->s.now;
  env.cfg = &w->mcfg;
  env.seal_key = w->seal_key;
  env.random = sim_random;
  env.random_arg = &w->s.rng;
  env.sigs = w->n_pre > 0 ? &w->sigs : NULL;
  json_t *presented = json_pack("{s:s}", key, value);
  struct verify_outcome out;
  int rc = verify_service_check(&env, method, presented, NULL, &out);
  json_decref(presented);
  ledger_rd_end(env.rd);
  if (rc != 0) {
    decide(g, vi, false, LEDGER_REASON_MALFORMED, w->s.now);
    return;
  }
  if (!out.propose) {
    decide(g, vi, false, out.claim.reason, w->s.now);
    return;
  }
  struct ledger_cmd *c = &out.redeem;
  snprintf(c->rid, sizeof c->rid, "s-%s-%zu", g->name, vi);
  snprintf(c->gate, sizeof c->gate, "%s", g->name);
  strcpy(c->actor, "scanner");
  int policy = w->cfg.policy;
  const struct prov_rec *heard =
      w->cfg.fault_no_heard_check
          ? NULL
          : prov_lookup(g->prov, (const uint8_t *)c->u.redeem.ticket_id,
                        strlen(c->u.redeem.ticket_id));
  uint64_t lid = leader_of(g);
  bool reachable = policy == LEDGER_POLICY_STRICT || lid != 0;
  if (!reachable && heard == NULL)
    enter_partition(g);
  struct admit_input in = {.policy = policy,
                           .leader_reachable = reachable,
                           .heard = heard,
                           .budget = w->cfg.budget,
                           .used = admit_budget_used(&g->budget, "fest")};
  struct admit_decision d;
  admit_decide(&in, &d);
  if (d.action == ADMIT_DENY) {
    decide(g, vi, false, d.reason, w->s.now);
    return;
  }
  if (d.action == ADMIT_PROVISIONAL) {
    admit_provisional(g, vi, c, policy, w->cfg.budget);
    return;
  }
  struct req *r = req_new(g);
  r->v = vi;
  r->policy = policy;
  r->budget = w->cfg.budget;
  r->cmd = *c;
  r->give_up = w->s.now + w->cfg.request_timeout_ms;
  submit(g, c, r->id);
  sched_in(&w->s, policy == LEDGER_POLICY_AVAILABLE ? w->cfg.wait_ms : 500, on_req_deadline, g,
           r->id);
}

void gate_verify(struct gate *g, uint32_t attendee, const char *payload, bool fraud) {
  verify(g, attendee, "qr", "payload", payload, fraud);
}

void gate_verify_pass(struct gate *g, uint32_t attendee, const char *code, bool fraud) {
  verify(g, attendee, "pass", "code", code, fraud);
}

/* ---------------------------------------------------------- transfers */

void gate_transfer(struct gate *g, uint32_t attendee) {
  struct world *w = g->w;
  struct req *r = req_new(g);
  r->v = V_OFFICE;
  struct ledger_cmd *c = &r->cmd;
  memset(c, 0, sizeof *c);
  c->op = LEDGER_OP_TICKET_TRANSFER;
  snprintf(c->rid, sizeof c->rid, "resale-%" PRIu32, attendee);
  c->ts_ms = SIM_BASE_MS + w->s.now;
  snprintf(c->gate, sizeof c->gate, "%s", g->name);
  strcpy(c->actor, "organizer");
  snprintf(c->u.transfer.ticket_id, sizeof c->u.transfer.ticket_id, "t%" PRIu32, attendee);
  snprintf(c->u.transfer.to_holder, sizeof c->u.transfer.to_holder, "r%" PRIu32, attendee);
  w->resales++;
  submit(g, c, r->id);
  sched_in(&w->s, OFFICE_RETRY_MS, on_req_deadline, g, r->id);
}

/* ------------------------------------------------------------- messages */

static void gate_on_msg(struct gate *g, struct msg *m) {
  struct world *w = g->w;
  switch (m->type) {
  case M_FWD:
    if (g->raft != NULL && raft_state(g->raft) == RAFT_LEADER) {
      uint8_t *copy = m->bytes;
      m->bytes = NULL;
      leader_enqueue(g, copy, m->len, m->from, m->req);
    }
    break;
  case M_RESULT:
    on_result(g, m->req, &m->res);
    break;
  case M_GOSSIP:
    if (m->len > 0 && m->bytes[0] >= PROV_MSG_PUSH) {
      uint8_t reply[1300];
      size_t rlen = 0;
      if (prov_msg_recv(g->prov, m->bytes, m->len, NULL, NULL, reply, sizeof reply, &rlen) == 0 &&
          rlen > 0)
        send_msg(w, msg_new(M_GOSSIP, g->idx, m->from, reply, rlen));
    } else {
      swim_recv(g->swim, m->bytes, m->len, w->s.now);
    }
    break;
  }
}

/* ------------------------------------------------------------- lifecycle */

static void on_propose(void *arg, uint64_t gen) {
  struct gate *g = arg;
  if (g->up && gen == g->gen)
    propose(g);
}

static void on_tick(void *arg, uint64_t tag) {
  struct gate *g = arg;
  if (!g->up || tag != g->tick_tag)
    return;
  struct world *w = g->w;
  int64_t now = w->s.now;
  g->tick_armed = false;
  swim_tick(g->swim, now);
  if (!g->partition_mode && leader_of(g) == 0 && g->n_own > 0)
    enter_partition(g);
  if (now - g->last_backlog_ms >= BACKLOG_MS) {
    g->last_backlog_ms = now;
    propose_backlog(g);
  }
  if (now - g->last_prune_ms >= PRUNE_MS) {
    g->last_prune_ms = now;
    prune(g);
  }
  if (now - g->last_digest_ms >= DIGEST_MS) {
    g->last_digest_ms = now;
    send_digest(g);
  }
  /* Next: when SWIM, the prune or the digest is due; every GATE_TICK_MS
   * while own provisional records wait (their backlog, a partition). */
  int64_t next = swim_next_tick(g->swim);
  next = g->last_prune_ms + PRUNE_MS < next ? g->last_prune_ms + PRUNE_MS : next;
  next = g->last_digest_ms + DIGEST_MS < next ? g->last_digest_ms + DIGEST_MS : next;
  if (g->n_own > 0 && now + GATE_TICK_MS < next)
    next = now + GATE_TICK_MS;
  arm_tick(g, next > now ? next : now + 1);
}

static struct simio *peer_of(void *arg, raft_id id) {
  struct world *w = arg;
  return id >= 1 && id <= w->cfg.gates ? &w->g[id - 1]->io : NULL;
}

static int64_t raft_delay(void *arg, unsigned from, unsigned to) {
  return world_delay(arg, from, to);
}

int gate_settle(struct gate *g) { return lane_settle(g->w->lane, g->idx); }

/* Before a read: what Raft applied is in the gate's open transaction, which
 * the read borrows (the gates' ledgers are opened no_lock), uncommitted. */
static int gate_catch_up(struct gate *g, enum sim_reader who) {
  uint64_t n = 0;
  int rc = lane_catch_up(g->w->lane, g->idx, &n);
  g->w->caught_reads[who]++;
  g->w->caught_entries[who] += n;
  return rc;
}

/* A committed entry: one this gate proposed applies now (its results
 * answer requests); any other waits on the gate's lane (lane.h). */
static int raft_apply_entry(void *arg, raft_index index, const void *buf, size_t len) {
  struct gate *g = arg;
  struct entry_hdr h;
  if (entry_decode(buf, len, &h, NULL, 0) != 0 || h.origin != g->id) {
    lane_push(g->w->lane, g->idx, index, buf, len);
    return 0;
  }
  /* The queue first (log order), then this one joins the gate's open
   * transaction; the lane goes on with it later (no_lock: it is not tied to
   * this thread). */
  if (gate_catch_up(g, SIM_READ_OWN) != 0)
    return RAFT_IOERR;
  return gm_fsm_apply_at(&g->fsm, index, buf, len);
}

/* A new core, without a raft_io: simio drives it (simio.h). */
static int raft_up(struct gate *g) {
  struct world *w = g->w;
  g->raft = calloc(1, sizeof *g->raft);
  if (g->raft == NULL || gm_fsm_init(&g->fsm, g->ledger, g->id) != 0)
    return GM_ENOMEM;
  g->fsm.on_applied = on_applied;
  g->fsm.arg = g;
  int rc = raft_init(g->raft, NULL, NULL, g->id, g->io.address);
  if (rc != 0)
    return GM_EIO;
  /* libraft formats every diagnostic for a tracer that is not NULL, even
   * its default one that prints nothing. */
  g->raft->tracer = NULL;
  raft_set_election_timeout(g->raft, w->cfg.election_ms);
  raft_set_heartbeat_timeout(g->raft, w->cfg.heartbeat_ms);
  raft_seed(g->raft, (unsigned)sim_rand(&w->s.rng));
  return 0;
}

int gate_create(struct world *w, unsigned idx, struct gate **out) {
  struct gate *g = calloc(1, sizeof *g);
  g->w = w;
  g->idx = idx;
  g->id = idx + 1;
  snprintf(g->name, sizeof g->name, "g%u", idx + 1);
  snprintf(g->dir, sizeof g->dir, "%s/%s", w->root, g->name);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "mkdir -p '%s'", g->dir);
  if (system(cmd) != 0)
    return GM_EIO;
  struct ledger_options o = {
      .map_size = (size_t)2 << 30, .no_sync = true, .group = true, .no_lock = true};
  int rc = ledger_open(&g->ledger, g->dir, &o);
  if (rc != 0)
    return rc;
  struct simio_net net = {.disk = w->disk, .arg = w, .delay = raft_delay, .peer = peer_of};
  simio_init(&g->io, &w->s, &net, idx, g->id);
  *out = g;
  return 0;
}

static void swim_up(struct gate *g) {
  struct world *w = g->w;
  struct swim_config sc;
  swim_config_default(&sc);
  struct swim_io io = {.arg = g, .send = swim_send, .changed = swim_changed};
  g->swim = swim_create(&sc, g->id, g->name, sim_rand(&w->s.rng), &io, w->s.now);
  static const uint8_t hk[16] = {7, 7, 7};
  g->prov = prov_create(1u << 18, hk);
  /* This gate's own records survive a restart (they were synced); what it
   * had heard from others does not. */
  for (size_t i = 0; i < g->n_own; i++) {
    struct ledger_cmd c;
    if (ledger_cmd_decode(g->own[i].cmd, g->own[i].len, &c) != 0)
      continue;
    struct prov_rec r;
    admit_prov_record(&c, &r);
    prov_add(g->prov, &r);
  }
  for (unsigned i = 0; i < w->cfg.gates; i++)
    if (i != g->idx)
      swim_join(g->swim, w->g[i]->name, w->s.now);
}

int gate_start(struct gate *g, bool bootstrap, const struct raft_configuration *conf) {
  struct world *w = g->w;
  int rc = raft_up(g);
  if (rc != 0)
    return rc;
  if (bootstrap && (rc = simio_bootstrap(&g->io, conf)) != 0)
    return GM_EIO;
  struct simio_ops ops = {.arg = g, .apply = raft_apply_entry, .lost_leadership = on_lost_leadership};
  if (simio_start(&g->io, g->raft, w->cfg.heartbeat_ms, &ops) != 0)
    return GM_EIO;
  g->up = true;
  g->io.leader_contact_ms = w->s.now; /* a grace period, as the node gives */
  swim_up(g);
  g->last_prune_ms = w->s.now;
  g->prune_applied = 0;
  g->prune_kept = 0;
  g->last_digest_ms = w->s.now + (int64_t)g->idx * 7 % DIGEST_MS;
  g->last_backlog_ms = w->s.now;
  g->tick_armed = false;
  arm_tick(g, w->s.now + GATE_TICK_MS);
  return 0;
}

static void gate_down(struct gate *g) {
  /* What Raft handed the FSM is in the ledger before the FSM goes (a
   * process that crashes after a commit). */
  gate_settle(g);
  g->up = false;
  g->gen++;
  simio_crash(&g->io); /* closes the core */
  free(g->raft);
  g->raft = NULL;
  gm_fsm_close(&g->fsm);
  /* In-flight proposals die with the process. */
  drop_batches(g);
  swim_destroy(g->swim);
  g->swim = NULL;
  prov_destroy(g->prov);
  g->prov = NULL;
  while (g->reqs) {
    struct req *r = g->reqs;
    g->reqs = r->next;
    free(r);
  }
  for (size_t i = 0; i < g->n_queue; i++)
    free(g->queue[i].cmd);
  g->n_queue = 0;
  /* What was never synced is gone. */
  size_t keep = 0;
  for (size_t i = 0; i < g->n_own; i++) {
    g->own[i].inflight = false;
    if (g->own[i].durable)
      g->own[keep++] = g->own[i];
    else
      free(g->own[i].cmd);
  }
  g->n_own = keep;
  g->partition_mode = false;
}

void gate_crash(struct gate *g) {
  if (g->up)
    gate_down(g);
}

void gate_restart(struct gate *g) {
  if (g->up)
    return;
  g->gen++;
  gate_start(g, false, NULL);
}

void gate_free(struct gate *g) {
  if (g == NULL)
    return;
  if (g->up)
    gate_down(g);
  ledger_close(g->ledger);
  simio_free(&g->io);
  for (size_t i = 0; i < g->n_own; i++)
    free(g->own[i].cmd);
  free(g->own);
  free(g->queue);
  free(g);
}
