/*
 * provisional.c — the available path of admission (see provisional.h).
 */
#include "provisional.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "../gossip/admit.h"
#include "../lib/assert.h"
#include "../lib/buf.h"
#include "../lib/err.h"
#include "../lib/log.h"
#include "../lib/mpk.h"
#include "api.h"
#include "cluster.h"
#include "commit.h"
#include "gossip.h"
#include "journal.h"
#include "node.h"

#define PV_SWEEP_MS 5        /* how often expired waits are looked at */
#define PV_TICK_MS 200       /* proposing the backlog, pruning */
#define PV_PRUNE_MS 1000
#define PV_PROPOSE_MAX 8192  /* own records proposed and not answered yet */
#define PV_PREALLOC ((uint64_t)4 << 20)

/* A verify waiting for its strict attempt, in deadline order. It lives until
 * the attempt's commit callback, which comes exactly once. */
struct pv_wait {
  struct pv_wait *prev, *next;
  struct provisional *pv;
  struct api_req *ar; /* NULL once answered */
  pv_done_fn done;
  struct ledger_cmd cmd;
  struct pv_policy pol;
  int64_t deadline_ms;
  bool in_fifo;
};

/* This gate's own provisional admission, until the ledger has it. */
struct own {
  uint64_t seq;
  uint8_t *cmd; /* the encoded provisional redeem */
  size_t len;
  bool durable, inflight, settled;
};

/* A verdict waiting for its record to be durable. */
struct pv_ack {
  struct api_req *ar;
  pv_done_fn done;
  int64_t decided_ms;
  uint64_t seq;
};

struct provisional {
  struct node *n;
  struct prov *store;
  struct journal log;
  bool log_open;
  uint64_t self;
  bool partition_mode;
  uint64_t epoch;
  uint64_t seq_hw; /* own seqs at or below this are in the ledger */
  struct admit_budget budget;
  struct pv_wait *head, *tail;
  uv_timer_t sweep, tick;
  bool started;
  /* own records, by seq, from `first` */
  struct own *own;
  size_t n_own, cap_own, first;
  /* the next group to write, and the group on the disk */
  struct pv_ack *acks, *w_acks;
  size_t n_acks, cap_acks, n_w_acks;
  struct gm_slice *slices;
  size_t n_slices, cap_slices;
  size_t w_from, w_to; /* own[w_from..w_to) are being written */
  size_t next_write;   /* own index from which records wait for a write */
  bool writing;
  int write_rc;
  uv_work_t work;
  int64_t last_prune_ms;
  size_t inflight;
  /* counters */
  uint64_t admitted, denied_budget, denied_heard, waits_expired, committed, incidents,
      write_failed, epochs;
};

static struct provisional *pv_of(struct node *n) { return n->pv; }

struct prov *provisional_store(struct node *n) {
  return n->pv ? n->pv->store : NULL;
}

bool provisional_partition_mode(struct node *n) { return n->pv && n->pv->partition_mode; }

bool provisional_busy(struct node *n) { return n->pv && n->pv->writing; }

/* ----------------------------------------------------------- state file */

static int state_save(struct provisional *pv) {
  char path[NODE_PATH_MAX + 32], tmp[NODE_PATH_MAX + 40];
  snprintf(path, sizeof path, "%s/partition.state", pv->n->cfg.data_dir);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  char line[64];
  int len = snprintf(line, sizeof line, "%" PRIu64 " %" PRIu64 "\n", pv->epoch, pv->seq_hw);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return GM_EIO;
  bool ok = write(fd, line, (size_t)len) == len && fsync(fd) == 0;
  close(fd);
  if (!ok || rename(tmp, path) != 0)
    return GM_EIO;
  int dfd = open(pv->n->cfg.data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
  return 0;
}

static void state_load(struct provisional *pv) {
  char path[NODE_PATH_MAX + 32];
  snprintf(path, sizeof path, "%s/partition.state", pv->n->cfg.data_dir);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return;
  uint64_t e = 0, s = 0;
  if (fscanf(f, "%" SCNu64 " %" SCNu64, &e, &s) == 2) {
    pv->epoch = e;
    pv->seq_hw = s;
  }
  fclose(f);
}

/* ------------------------------------------------------- partition mode */

static void enter_partition(struct provisional *pv, const char *why) {
  if (pv->partition_mode)
    return;
  pv->partition_mode = true;
  pv->epoch++;
  pv->epochs++;
  admit_budget_epoch(&pv->budget, pv->epoch);
  if (state_save(pv) != 0)
    GM_ERROR("partition state not saved", "dir=%s", pv->n->cfg.data_dir);
  GM_WARN("partition mode: no leader reachable", "epoch=%" PRIu64 " why=%s", pv->epoch, why);
}

static void leave_partition(struct provisional *pv) {
  if (!pv->partition_mode)
    return;
  pv->partition_mode = false;
  GM_INFO("partition mode over: a leader commits again", "epoch=%" PRIu64, pv->epoch);
}

static bool leader_known(struct provisional *pv) {
  struct cluster_summary cs;
  cluster_summary(pv->n, &cs);
  return cs.leader != 0;
}

/* ------------------------------------------------------------ own list */

static struct own *own_get(struct provisional *pv, uint64_t seq) {
  size_t lo = pv->first, hi = pv->n_own;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (pv->own[mid].seq < seq)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < pv->n_own && pv->own[lo].seq == seq ? &pv->own[lo] : NULL;
}

static int own_push(struct provisional *pv, uint64_t seq, uint8_t *cmd, size_t len) {
  if (pv->n_own == pv->cap_own) {
    if (pv->first > 0 && !pv->writing) {
      /* Settled ones at the front make room. */
      memmove(pv->own, pv->own + pv->first, (pv->n_own - pv->first) * sizeof *pv->own);
      pv->n_own -= pv->first;
      pv->next_write -= pv->first < pv->next_write ? pv->first : pv->next_write;
      pv->first = 0;
    }
    if (pv->n_own == pv->cap_own) {
      size_t cap = pv->cap_own ? pv->cap_own * 2 : 256;
      struct own *v = realloc(pv->own, cap * sizeof *v);
      if (v == NULL)
        return GM_ENOMEM;
      pv->own = v;
      pv->cap_own = cap;
    }
  }
  pv->own[pv->n_own++] = (struct own){.seq = seq, .cmd = cmd, .len = len};
  return 0;
}

/* ------------------------------------------------------------ the write */

/* A journal entry: rec length u16 | record | command. */
static uint8_t *entry_of(const struct prov_rec *r, const uint8_t *cmd, size_t len,
                         size_t *out_len) {
  uint8_t rec[PROV_REC_WIRE_MAX];
  int rl = prov_rec_encode(r, rec, sizeof rec);
  if (rl < 0)
    return NULL;
  uint8_t *e = malloc(2 + (size_t)rl + len);
  if (e == NULL)
    return NULL;
  gm_le16_put(e, (uint16_t)rl);
  memcpy(e + 2, rec, (size_t)rl);
  memcpy(e + 2 + rl, cmd, len);
  *out_len = 2 + (size_t)rl + len;
  return e;
}

static void work_write(uv_work_t *w) {
  struct provisional *pv = w->data;
  uint64_t seq;
  pv->write_rc = journal_append(&pv->log, pv->slices, pv->n_slices, &seq);
}

static void reply(struct api_req *ar, pv_done_fn done, const struct ledger_result *res,
                  bool provisional) {
  if (!api_alive(ar)) {
    api_done(ar);
    return;
  }
  done(ar, res, provisional);
}

static void start_write(struct provisional *pv);

static void push_gossip(struct provisional *pv, size_t from, size_t to) {
  const struct prov_rec *recs[64];
  size_t k = 0;
  for (size_t i = from; i < to; i++) {
    const struct prov_rec *r = prov_get(pv->store, pv->self, pv->own[i].seq);
    if (r != NULL)
      recs[k++] = r;
    if (k == 64 || (i + 1 == to && k > 0)) {
      gossip_push_prov(pv->n, recs, k);
      k = 0;
    }
  }
}

static void write_done(uv_work_t *w, int status) {
  struct provisional *pv = w->data;
  GM_ASSERT(status == 0);
  pv->writing = false;
  for (size_t i = 0; i < pv->n_slices; i++)
    free((void *)pv->slices[i].ptr);
  pv->n_slices = 0;
  bool ok = pv->write_rc == 0;
  if (!ok) {
    pv->write_failed++;
    GM_ERROR("provisional admissions not recorded: refused", "err=%s count=%zu",
             gm_err_code(pv->write_rc), pv->n_w_acks);
  }
  for (size_t i = pv->w_from; i < pv->w_to; i++)
    pv->own[i].durable = ok;
  if (ok)
    push_gossip(pv, pv->w_from, pv->w_to);
  size_t n = pv->n_w_acks;
  pv->n_w_acks = 0;
  for (size_t i = 0; i < n; i++) {
    struct pv_ack *a = &pv->w_acks[i];
    struct ledger_result res;
    memset(&res, 0, sizeof res);
    if (ok) {
      res.reason = LEDGER_REASON_NONE;
      res.decided_ms = a->decided_ms;
    } else {
      res.rc = pv->write_rc;
    }
    if (a->ar != NULL)
      reply(a->ar, a->done, &res, true);
  }
  if (pv->next_write < pv->n_own || pv->n_acks > 0)
    start_write(pv);
  if (!pv->writing)
    node_maybe_stopped(pv->n);
}

static void start_write(struct provisional *pv) {
  if (pv->writing || pv->next_write >= pv->n_own || !pv->log_open)
    return;
  size_t from = pv->next_write, to = pv->n_own;
  if (to - from > pv->cap_slices) {
    size_t cap = to - from;
    struct gm_slice *s = realloc(pv->slices, cap * sizeof *s);
    if (s == NULL)
      return;
    pv->slices = s;
    pv->cap_slices = cap;
  }
  pv->n_slices = 0;
  for (size_t i = from; i < to; i++) {
    const struct prov_rec *r = prov_get(pv->store, pv->self, pv->own[i].seq);
    size_t len = 0;
    uint8_t *e = r ? entry_of(r, pv->own[i].cmd, pv->own[i].len, &len) : NULL;
    if (e == NULL) {
      for (size_t k = 0; k < pv->n_slices; k++)
        free((void *)pv->slices[k].ptr);
      pv->n_slices = 0;
      return;
    }
    pv->slices[pv->n_slices++] = (struct gm_slice){e, len};
  }
  /* The acks of this group go with it. */
  struct pv_ack *t = pv->w_acks;
  pv->w_acks = pv->acks;
  pv->acks = t;
  pv->n_w_acks = pv->n_acks;
  pv->n_acks = 0;
  pv->w_from = from;
  pv->w_to = to;
  pv->next_write = to;
  pv->writing = true;
  pv->work.data = pv;
  int rc = uv_queue_work(pv->n->loop, &pv->work, work_write, write_done);
  GM_ASSERT(rc == 0);
}

static int ack_push(struct provisional *pv, struct api_req *ar, pv_done_fn done, int64_t ms,
                    uint64_t seq) {
  if (pv->n_acks == pv->cap_acks) {
    size_t cap = pv->cap_acks ? pv->cap_acks * 2 : 64;
    struct pv_ack *a = realloc(pv->acks, cap * sizeof *a);
    struct pv_ack *b = a ? realloc(pv->w_acks, cap * sizeof *b) : NULL;
    if (a)
      pv->acks = a;
    if (b == NULL)
      return GM_ENOMEM;
    pv->w_acks = b;
    pv->cap_acks = cap;
  }
  pv->acks[pv->n_acks++] = (struct pv_ack){.ar = ar, .done = done, .decided_ms = ms, .seq = seq};
  return 0;
}

/* ---------------------------------------------------- the admission */

/* A refusal on the available path (heard of by gossip, over the budget) is
 * in no ledger command: it is audited in the next commit, which waits for
 * a leader however long that takes (see cluster.h). */
static void deny(struct provisional *pv, const struct ledger_cmd *c, struct api_req *ar,
                 pv_done_fn done, int reason, const struct prov_rec *heard, int64_t now) {
  struct ledger_audit a;
  memset(&a, 0, sizeof a);
  a.time_ms = now;
  snprintf(a.gate, sizeof a.gate, "%s", c->gate);
  snprintf(a.method, sizeof a.method, "%s", c->u.redeem.method);
  snprintf(a.ticket_id, sizeof a.ticket_id, "%s", c->u.redeem.ticket_id);
  strcpy(a.action, "verify");
  strcpy(a.result, "denied");
  snprintf(a.reason, sizeof a.reason, "%s", ledger_reason_str(reason));
  snprintf(a.device, sizeof a.device, "%s", c->u.redeem.device);
  snprintf(a.ip, sizeof a.ip, "%s", c->u.redeem.ip);
  commit_audit(&pv->n->commit, &a);
  struct ledger_result res;
  memset(&res, 0, sizeof res);
  res.reason = reason;
  res.decided_ms = now;
  if (heard != NULL) {
    res.has_first_use = true;
    snprintf(res.first_use.gate, sizeof res.first_use.gate, "%s", heard->gate);
    snprintf(res.first_use.method, sizeof res.first_use.method, "%s", heard->method);
    res.first_use.used_ms = heard->time_ms;
  }
  reply(ar, done, &res, false);
}

static const struct prov_rec *heard_of(struct provisional *pv, const char *ticket_id) {
  return prov_lookup(pv->store, (const uint8_t *)ticket_id, strlen(ticket_id));
}

/* Admits provisionally: the record and its command, written and synced
 * before the verdict (which write_done sends). */
static void admit_provisional(struct provisional *pv, struct api_req *ar, pv_done_fn done,
                              const struct ledger_cmd *strict, const struct pv_policy *pol) {
  struct node *n = pv->n;
  int64_t now = strict->ts_ms;
  struct admit_input in = {
      .policy = pol->policy,
      .leader_reachable = false,
      .heard = heard_of(pv, strict->u.redeem.ticket_id),
      .budget = pol->budget,
      .used = admit_budget_used(&pv->budget, pol->event_id),
      .store_full = prov_count(pv->store) >= n->cfg.provisional_max,
  };
  struct admit_decision d;
  admit_decide(&in, &d);
  if (d.action != ADMIT_PROVISIONAL) {
    if (d.reason == LEDGER_REASON_BUDGET_EXHAUSTED)
      pv->denied_budget++;
    deny(pv, strict, ar, done, d.reason, in.heard, node_now_ms());
    return;
  }
  struct ledger_cmd c;
  uint64_t seq = prov_next_seq(pv->store, pv->self);
  admit_provisional_cmd(strict, pv->self, seq, pv->epoch, &c);
  struct prov_rec r;
  admit_prov_record(&c, &r);
  struct mpk_w w;
  mpk_w_init(&w);
  ledger_cmd_encode(&c, &w);
  uint8_t *bytes = malloc(w.sb.size);
  int rc = bytes ? 0 : GM_ENOMEM;
  if (rc == 0) {
    memcpy(bytes, w.sb.data, w.sb.size);
    rc = prov_add(pv->store, &r);
    rc = rc == 1 ? own_push(pv, seq, bytes, w.sb.size) : rc == 0 ? GM_EEXIST : rc;
  }
  mpk_w_free(&w);
  if (rc != 0) {
    free(bytes);
    if (rc == GM_EFULL) {
      pv->denied_budget++;
      deny(pv, strict, ar, done, LEDGER_REASON_BUDGET_EXHAUSTED, NULL, now);
    } else {
      reply(ar, done, &(struct ledger_result){.rc = rc}, false);
    }
    return;
  }
  admit_budget_take(&pv->budget, pol->event_id);
  pv->admitted++;
  if (n->cfg.fault_skip_prov_fsync) {
    /* The planted bug the tests look for: the verdict before the disk. */
    struct ledger_result res = {.reason = LEDGER_REASON_NONE, .decided_ms = now};
    reply(ar, done, &res, true);
    ar = NULL;
  }
  if (ack_push(pv, ar, done, now, seq) != 0 && ar != NULL)
    reply(ar, done, &(struct ledger_result){.rc = GM_ENOMEM}, false);
  start_write(pv);
}

static void fifo_remove(struct provisional *pv, struct pv_wait *w) {
  if (!w->in_fifo)
    return;
  if (w->prev)
    w->prev->next = w->next;
  else
    pv->head = w->next;
  if (w->next)
    w->next->prev = w->prev;
  else
    pv->tail = w->prev;
  w->in_fifo = false;
  if (pv->head == NULL)
    uv_timer_stop(&pv->sweep);
}

static void on_strict_done(void *arg, const struct ledger_result *res) {
  struct pv_wait *w = arg;
  struct provisional *pv = w->pv;
  fifo_remove(pv, w);
  if (res->rc == 0)
    leave_partition(pv);
  if (w->ar != NULL) {
    struct api_req *ar = w->ar;
    w->ar = NULL;
    if (res->rc == GM_ENOQUORUM && pv->started && w->pol.policy == LEDGER_POLICY_AVAILABLE) {
      /* The wait outlasted the request timeout: decide now. */
      enter_partition(pv, "request timed out");
      admit_provisional(pv, ar, w->done, &w->cmd, &w->pol);
    } else {
      reply(ar, w->done, res, false);
    }
  }
  free(w);
}

static void on_sweep(uv_timer_t *t) {
  struct provisional *pv = t->data;
  int64_t now = node_now_ms();
  while (pv->head != NULL && pv->head->deadline_ms <= now) {
    struct pv_wait *w = pv->head;
    fifo_remove(pv, w);
    struct api_req *ar = w->ar;
    w->ar = NULL; /* the strict attempt's callback will only free it */
    pv->waits_expired++;
    enter_partition(pv, "no commit within offline-wait-ms");
    if (ar != NULL)
      admit_provisional(pv, ar, w->done, &w->cmd, &w->pol);
  }
}

void provisional_verify(struct node *n, struct api_req *ar, const struct ledger_cmd *redeem,
                        const struct pv_policy *pol, pv_done_fn done) {
  struct provisional *pv = pv_of(n);
  const struct prov_rec *heard = heard_of(pv, redeem->u.redeem.ticket_id);
  /* A strict event waits for a leader (up to request-timeout-ms); an
   * available one only while a leader is known, and then only
   * offline-wait-ms. */
  bool reachable = pol->policy == LEDGER_POLICY_STRICT || leader_known(pv);
  if (!reachable && heard == NULL)
    enter_partition(pv, "no leader known"); /* first: a new epoch has a new budget */
  struct admit_input in = {
      .policy = pol->policy,
      .leader_reachable = reachable,
      .heard = heard,
      .budget = pol->budget,
      .used = admit_budget_used(&pv->budget, pol->event_id),
      .store_full = prov_count(pv->store) >= n->cfg.provisional_max,
  };
  struct admit_decision d;
  admit_decide(&in, &d);
  if (d.action == ADMIT_DENY) {
    pv->denied_heard += heard != NULL;
    deny(pv, redeem, ar, done, d.reason, heard, redeem->ts_ms);
    return;
  }
  if (d.action == ADMIT_PROVISIONAL) {
    admit_provisional(pv, ar, done, redeem, pol);
    return;
  }
  struct pv_wait *w = calloc(1, sizeof *w);
  if (w == NULL) {
    reply(ar, done, &(struct ledger_result){.rc = GM_ENOMEM}, false);
    return;
  }
  w->pv = pv;
  w->ar = ar;
  w->done = done;
  w->cmd = *redeem;
  w->pol = *pol;
  int rc = commit_submit(&n->commit, &w->cmd, on_strict_done, w);
  if (rc != 0) {
    free(w);
    reply(ar, done, &(struct ledger_result){.rc = rc}, false);
    return;
  }
  if (pol->policy != LEDGER_POLICY_AVAILABLE)
    return; /* the commit decides */
  w->deadline_ms = node_now_ms() + n->cfg.offline_wait_ms;
  w->in_fifo = true;
  w->prev = pv->tail;
  if (pv->tail)
    pv->tail->next = w;
  else
    pv->head = w;
  pv->tail = w;
  if (!uv_is_active((uv_handle_t *)&pv->sweep))
    uv_timer_start(&pv->sweep, on_sweep, PV_SWEEP_MS, PV_SWEEP_MS);
}

/* ------------------------------------------------ backlog and pruning */

struct prop {
  struct provisional *pv;
  uint64_t seq;
};

static void propose_backlog(struct provisional *pv);

static void on_prov_committed(void *arg, const struct ledger_result *res) {
  struct prop *p = arg;
  struct provisional *pv = p->pv;
  struct own *o = own_get(pv, p->seq);
  pv->inflight--;
  if (o != NULL) {
    o->inflight = false;
    if (res->rc == 0) {
      o->settled = true;
      pv->committed++;
      if (res->has_first_use && !res->duplicate)
        pv->incidents++;
      leave_partition(pv);
    }
  }
  free(p);
  /* A backlog drains at the pace the leader commits, not the tick's. */
  if (pv->inflight == PV_PROPOSE_MAX / 2 && pv->started)
    propose_backlog(pv);
}

static void propose_backlog(struct provisional *pv) {
  if (!leader_known(pv))
    return;
  for (size_t i = pv->first; i < pv->n_own && pv->inflight < PV_PROPOSE_MAX; i++) {
    struct own *o = &pv->own[i];
    if (!o->durable || o->inflight || o->settled)
      continue;
    struct prop *p = malloc(sizeof *p);
    uint8_t *copy = malloc(o->len);
    if (p == NULL || copy == NULL) {
      free(p);
      free(copy);
      return;
    }
    memcpy(copy, o->cmd, o->len);
    *p = (struct prop){pv, o->seq};
    struct ledger_cmd c;
    if (ledger_cmd_decode(copy, o->len, &c) != 0) {
      free(p);
      free(copy);
      o->settled = true; /* cannot happen: we encoded it */
      continue;
    }
    free(copy);
    if (commit_submit(&pv->n->commit, &c, on_prov_committed, p) != 0) {
      free(p);
      return;
    }
    o->inflight = true;
    pv->inflight++;
  }
}

static void prune(struct provisional *pv) {
  /* Own: the settled prefix. */
  uint64_t own_upto = 0;
  while (pv->first < pv->n_own && pv->first < pv->next_write && !pv->writing &&
         pv->own[pv->first].settled) {
    own_upto = pv->own[pv->first].seq;
    free(pv->own[pv->first].cmd);
    pv->first++;
  }
  if (own_upto > 0)
    prov_prune(pv->store, pv->self, own_upto);
  if (pv->first == pv->n_own && !pv->writing && pv->n_own > 0) {
    /* Everything is in the ledger: the log can start over. */
    pv->seq_hw = pv->own[pv->n_own - 1].seq;
    if (state_save(pv) == 0 && journal_rotate(&pv->log) == 0)
      journal_drop_through_dir(pv->log.dir, pv->log.last_seq, pv->log.file_start);
    pv->first = pv->n_own = pv->next_write = 0;
  }
  /* Others': whatever the ledger has, from the oldest up. */
  struct ledger_rd *rd;
  if (ledger_rd_begin(pv->n->ledger, &rd) != 0)
    return;
  admit_prune_settled(pv->store, pv->self, rd);
  ledger_rd_end(rd);
}

static void on_tick(uv_timer_t *t) {
  struct provisional *pv = t->data;
  if (!pv->partition_mode && !leader_known(pv) && pv->n_own > pv->first)
    enter_partition(pv, "no leader known");
  propose_backlog(pv);
  int64_t now = node_now_ms();
  if (now - pv->last_prune_ms >= PV_PRUNE_MS) {
    pv->last_prune_ms = now;
    prune(pv);
  }
}

/* ------------------------------------------------------------ lifecycle */

static int replay_fn(void *arg, uint64_t seq, const struct gm_slice *cmds, size_t n) {
  (void)seq;
  struct provisional *pv = arg;
  struct ledger_rd *rd = NULL;
  ledger_rd_begin(pv->n->ledger, &rd);
  for (size_t i = 0; i < n; i++) {
    const uint8_t *p = cmds[i].ptr;
    if (cmds[i].len < 2)
      return GM_ECORRUPT;
    size_t rl = gm_le16_get(p);
    struct prov_rec r;
    if (rl + 2 > cmds[i].len || prov_rec_decode(p + 2, rl, &r) != (int)rl)
      return GM_ECORRUPT;
    if (r.origin != pv->self || r.seq <= pv->seq_hw)
      continue;
    size_t len = cmds[i].len - 2 - rl;
    uint8_t *cmd = malloc(len);
    if (cmd == NULL)
      return GM_ENOMEM;
    memcpy(cmd, p + 2 + rl, len);
    if (prov_add(pv->store, &r) != 1 || own_push(pv, r.seq, cmd, len) != 0) {
      free(cmd);
      continue;
    }
    struct own *o = &pv->own[pv->n_own - 1];
    o->durable = true;
    o->settled = rd != NULL && admit_in_ledger(rd, &r);
  }
  if (rd)
    ledger_rd_end(rd);
  return 0;
}

int provisional_open(struct node *n) {
  struct provisional *pv = calloc(1, sizeof *pv);
  if (pv == NULL)
    return GM_ENOMEM;
  n->pv = pv;
  pv->n = n;
  pv->self = n->cfg.node_id;
  uint8_t hk[16];
  randombytes_buf(hk, sizeof hk);
  pv->store = prov_create(n->cfg.provisional_max, hk);
  if (pv->store == NULL)
    return GM_ENOMEM;
  state_load(pv);
  admit_budget_init(&pv->budget, pv->epoch);
  if (pv->seq_hw > 0)
    prov_prune(pv->store, pv->self, pv->seq_hw);
  int rc = journal_open_named(&pv->log, n->cfg.data_dir, "provisional", PV_PREALLOC);
  if (rc == 0)
    rc = journal_replay(&pv->log, 0, replay_fn, pv);
  if (rc != 0) {
    GM_ERROR("provisional log cannot be read", "err=%s", gm_err_code(rc));
    return rc;
  }
  pv->log_open = true;
  pv->next_write = pv->n_own;
  size_t unsettled = 0;
  for (size_t i = 0; i < pv->n_own; i++)
    unsettled += !pv->own[i].settled;
  if (pv->n_own > 0)
    GM_INFO("provisional admissions replayed", "count=%zu unsettled=%zu epoch=%" PRIu64,
            pv->n_own, unsettled, pv->epoch);
  return 0;
}

int provisional_start(struct node *n) {
  struct provisional *pv = pv_of(n);
  uv_timer_init(n->loop, &pv->sweep);
  pv->sweep.data = pv;
  uv_timer_init(n->loop, &pv->tick);
  pv->tick.data = pv;
  uv_timer_start(&pv->tick, on_tick, PV_TICK_MS, PV_TICK_MS);
  pv->started = true;
  return 0;
}

void provisional_stop(struct node *n) {
  struct provisional *pv = pv_of(n);
  if (pv == NULL || !pv->started)
    return;
  pv->started = false;
  uv_timer_stop(&pv->tick);
  uv_close((uv_handle_t *)&pv->tick, NULL);
  uv_timer_stop(&pv->sweep);
  uv_close((uv_handle_t *)&pv->sweep, NULL);
}

void provisional_free(struct node *n) {
  struct provisional *pv = pv_of(n);
  if (pv == NULL)
    return;
  GM_ASSERT(!pv->writing);
  for (size_t i = pv->first; i < pv->n_own; i++)
    free(pv->own[i].cmd);
  free(pv->own);
  free(pv->acks);
  free(pv->w_acks);
  free(pv->slices);
  if (pv->log_open)
    journal_close(&pv->log);
  prov_destroy(pv->store);
  free(pv);
  n->pv = NULL;
}

/* ------------------------------------------------------------ reporting */

static size_t backlog(const struct provisional *pv) {
  size_t k = 0;
  for (size_t i = pv->first; i < pv->n_own; i++)
    k += !pv->own[i].settled;
  return k;
}

json_t *provisional_status(struct node *n) {
  struct provisional *pv = pv_of(n);
  if (pv == NULL)
    return json_null();
  return json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:I}", "partition_mode", pv->partition_mode,
                   "partition_epoch", (json_int_t)pv->epoch, "backlog", (json_int_t)backlog(pv),
                   "held", (json_int_t)prov_count(pv->store), "admitted",
                   (json_int_t)pv->admitted, "committed", (json_int_t)pv->committed,
                   "incidents_found", (json_int_t)pv->incidents);
}

void provisional_metrics(struct node *n, char *out, size_t cap) {
  struct provisional *pv = pv_of(n);
  out[0] = 0;
  if (pv == NULL)
    return;
  snprintf(out, cap,
           "# HELP gate_partition_mode 1 while this gate cannot reach a leader\n"
           "# TYPE gate_partition_mode gauge\n"
           "gate_partition_mode %d\n"
           "# HELP gate_partition_epoch Partition epochs this gate has entered\n"
           "# TYPE gate_partition_epoch gauge\n"
           "gate_partition_epoch %" PRIu64 "\n"
           "# HELP gate_provisional_total Provisional admissions by outcome\n"
           "# TYPE gate_provisional_total counter\n"
           "gate_provisional_total{result=\"admitted\"} %" PRIu64 "\n"
           "gate_provisional_total{result=\"committed\"} %" PRIu64 "\n"
           "gate_provisional_total{result=\"budget_exhausted\"} %" PRIu64 "\n"
           "gate_provisional_total{result=\"refused_heard\"} %" PRIu64 "\n"
           "gate_provisional_total{result=\"write_failed\"} %" PRIu64 "\n"
           "gate_provisional_total{result=\"wait_expired\"} %" PRIu64 "\n"
           "# HELP gate_provisional_backlog Own provisional admissions not in the ledger yet\n"
           "# TYPE gate_provisional_backlog gauge\n"
           "gate_provisional_backlog %zu\n"
           "# HELP gate_provisional_held Provisional admissions held (own and heard)\n"
           "# TYPE gate_provisional_held gauge\n"
           "gate_provisional_held %zu\n"
           "# HELP gate_double_entries_found_total Own provisional admissions that reached the ledger as incidents\n"
           "# TYPE gate_double_entries_found_total counter\n"
           "gate_double_entries_found_total %" PRIu64 "\n",
           pv->partition_mode ? 1 : 0, pv->epoch, pv->admitted, pv->committed,
           pv->denied_budget, pv->denied_heard, pv->write_failed, pv->waits_expired,
           backlog(pv), prov_count(pv->store), pv->incidents);
}
