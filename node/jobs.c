/*
 * jobs.c — the gate's background work, on its loop, every jobs-interval-ms:
 *
 *  - every gate: brings its biometric index up to its ledger replica and
 *    sends its erasure receipts (one BIO_RECEIPT command per batch) for
 *    templates it wiped, once they are off its disk too: its Raft log and
 *    snapshots (cluster.h) or its journal (a checkpoint), then its ledger
 *    file (ledger_compact);
 *  - the leader only (a lone gate is its own leader), so each runs once per
 *    cluster:
 *      expire       deletes credentials expired more than expire-grace-s ago
 *                   that admitted nobody (CRED_EXPIRE, one per method);
 *      revoke       revokes tickets still unused revoke_unscanned_after_ms
 *                   after their event ended (events opt in);
 *      retention    erases biometric templates a retention time after their
 *                   event ended (BIO_ERASE, reason "retention").
 *
 * Every action is a ledger command with a request id derived from what it
 * acts on, so a new leader repeating its predecessor's last run changes
 * nothing; apply writes the audit records. Jobs walk the tables a slice of
 * jobs-batch records per run, resuming where the last run stopped.
 */
#include <inttypes.h>
#include <raft.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/err.h"
#include "../lib/log.h"
#include "../methods/bio.h"
#include "checkpoint.h"
#include "cluster.h"
#include "node.h"

enum { JOB_EXPIRE, JOB_REVOKE, JOB_RETENTION, JOB__COUNT };
static const char *const job_names[JOB__COUNT] = {"expire", "revoke", "retention"};

/* Commands a run proposes at most per job (the next run goes on). */
#define JOBS_PROPOSE_MAX 1000
#define EVENTS_MAX 256

struct jobs {
  struct node *n;
  uv_timer_t timer;
  bool started;
  uint32_t inflight;
  /* Receipts waiting to be sent. */
  char (*rcpt)[LEDGER_ID_MAX + 1];
  size_t n_rcpt, cap_rcpt;
  uint64_t receipts_sent;
  /* Templates wiped from the index, waiting for the disk purge: `need` is
   * the purge mark (purge_mark) that must be done, 0 until taken. */
  struct wiped {
    char id[LEDGER_ID_MAX + 1];
    uint64_t need;
  } *wiped;
  size_t n_wiped, cap_wiped;
  uint64_t compactions, compact_failures;
  /* Where the table walks resume. */
  char cred_method[LEDGER_METHOD_MAX + 1];
  char cred_id[LEDGER_ID_MAX + 1];
  char ticket_after[LEDGER_ID_MAX + 1];
  uint64_t runs[JOB__COUNT];
  uint64_t proposed[JOB__COUNT];
  uint64_t actions[JOB__COUNT];
  uint64_t failures[JOB__COUNT];
};

struct job_cb {
  struct jobs *j;
  int job;
  struct ledger_id_list receipts; /* BIO_RECEIPT only: re-queued on failure */
};

static void receipt_push(struct jobs *j, const char *ticket_id) {
  for (size_t i = 0; i < j->n_rcpt; i++)
    if (strcmp(j->rcpt[i], ticket_id) == 0)
      return;
  if (j->n_rcpt == j->cap_rcpt) {
    size_t cap = j->cap_rcpt ? 2 * j->cap_rcpt : 64;
    void *p = realloc(j->rcpt, cap * sizeof *j->rcpt);
    if (p == NULL)
      return; /* the next sync of a restarted gate finds it again */
    j->rcpt = p;
    j->cap_rcpt = cap;
  }
  strcpy(j->rcpt[j->n_rcpt++], ticket_id);
}

static void on_job_done(void *arg, const struct ledger_result *res) {
  struct job_cb *cb = arg;
  struct jobs *j = cb->j;
  if (j != NULL) {
    if (cb->job >= 0)
      j->inflight--;
    if (cb->job < 0) {
      if (res->rc == 0)
        j->receipts_sent += res->count;
      else
        for (uint32_t i = 0; i < cb->receipts.n; i++)
          receipt_push(j, cb->receipts.v[i]);
    } else if (res->rc == 0 && !res->duplicate) {
      j->actions[cb->job] += cb->job == JOB_EXPIRE ? res->count : 1;
    } else if (res->rc != 0 && res->rc != GM_ESTATE && res->rc != GM_ENOTFOUND) {
      j->failures[cb->job]++;
    }
  }
  free(cb->receipts.v);
  free(cb);
}

static void submit(struct jobs *j, int job, struct ledger_cmd *c) {
  struct job_cb *cb = calloc(1, sizeof *cb);
  if (cb == NULL)
    return;
  cb->j = j;
  cb->job = job;
  if (c->op == LEDGER_OP_BIO_RECEIPT) {
    cb->receipts = c->u.receipts; /* the callback owns the list, once encoded */
    c->u.receipts.v = NULL;
    c->u.receipts.n = 0;
  }
  struct ledger_cmd *enc = c;
  struct ledger_cmd tmp;
  if (c->op == LEDGER_OP_BIO_RECEIPT) {
    tmp = *c;
    tmp.u.receipts = cb->receipts;
    enc = &tmp;
  }
  if (job >= 0)
    j->inflight++;
  if (commit_submit(&j->n->commit, enc, on_job_done, cb) != 0) {
    struct ledger_result r = {.rc = GM_ELIMIT};
    on_job_done(cb, &r);
    return;
  }
  if (job >= 0)
    j->proposed[job]++;
}

/* A request id for a job's action on `what`: the same action gets the same
 * id on whichever gate leads. */
static void job_rid(char out[LEDGER_RID_MAX + 1], const char *prefix, const char *what,
                    uint64_t extra) {
  uint8_t h[12];
  char hex[25];
  crypto_generichash(h, sizeof h, (const uint8_t *)what, strlen(what), NULL, 0);
  gm_hex(hex, h, sizeof h);
  snprintf(out, LEDGER_RID_MAX + 1, "%s-%s-%" PRIu64, prefix, hex, extra);
}

/* --- biometric index and receipts ----------------------------------------- */

static void on_erased(void *arg, const char *ticket_id) {
  struct node *n = arg;
  struct jobs *j = n->jobs;
  if (j == NULL)
    return;
  for (size_t i = 0; i < j->n_wiped; i++)
    if (strcmp(j->wiped[i].id, ticket_id) == 0)
      return;
  if (j->n_wiped == j->cap_wiped) {
    size_t cap = j->cap_wiped ? 2 * j->cap_wiped : 64;
    void *p = realloc(j->wiped, cap * sizeof *j->wiped);
    if (p == NULL)
      return; /* the next sync of a restarted gate finds it again */
    j->wiped = p;
    j->cap_wiped = cap;
  }
  struct wiped *w = &j->wiped[j->n_wiped++];
  strcpy(w->id, ticket_id);
  w->need = 0;
}

/* A mark that purge_done reaches once everything erased so far is off this
 * gate's disk. */
static uint64_t purge_mark(struct node *n) {
  if (n->cluster_mode)
    return cluster_purge_mark(n);
  /* The next checkpoint started drops the journal files up to here. */
  n->purge_wanted = true;
  checkpoint_now(n);
  return n->purge_started + (n->purge_wanted ? 1 : 0);
}

static uint64_t purge_done(struct node *n) {
  return n->cluster_mode ? cluster_purge_done(n) : n->purge_done;
}

/* Marks the templates wiped since the last run; drops those this gate sent
 * a receipt for already (a restarted gate finds every erasure again). */
static void wiped_mark(struct jobs *j, struct ledger_rd *rd) {
  struct node *n = j->n;
  size_t keep = 0;
  uint64_t mark = 0;
  for (size_t i = 0; i < j->n_wiped; i++) {
    struct wiped *w = &j->wiped[i];
    if (w->need == 0) {
      if (ledger_bio_receipt_has(rd, w->id, n->cfg.gate))
        continue;
      if (mark == 0)
        mark = purge_mark(n);
      w->need = mark ? mark : 1;
    }
    j->wiped[keep++] = *w;
  }
  j->n_wiped = keep;
}

/* Once the log or journal is purged past some wiped templates, compacts the
 * ledger file and queues their receipts. Runs with no transaction open. */
static void purge_finish(struct jobs *j) {
  struct node *n = j->n;
  uint64_t done = purge_done(n);
  bool ready = false;
  for (size_t i = 0; i < j->n_wiped && !ready; i++)
    ready = j->wiped[i].need != 0 && j->wiped[i].need <= done;
  if (!ready)
    return;
  bool idle = n->cluster_mode ? cluster_ledger_idle(n) : !n->snap_running && commit_idle(&n->commit);
  if (!idle)
    return;
  if (n->rd_parked != NULL) {
    ledger_rd_end(n->rd_parked);
    n->rd_parked = NULL;
  }
  int rc = ledger_compact(n->ledger);
  if (rc == GM_ESTATE) {
    GM_ERROR("ledger did not reopen after compaction; stopping", "err=%s", gm_err_code(rc));
    abort();
  }
  if (rc != 0) {
    j->compact_failures++;
    GM_WARN("ledger compaction failed; retried at the next run", "err=%s", gm_err_code(rc));
    return;
  }
  j->compactions++;
  size_t keep = 0, sent = 0;
  for (size_t i = 0; i < j->n_wiped; i++)
    if (j->wiped[i].need != 0 && j->wiped[i].need <= done) {
      receipt_push(j, j->wiped[i].id);
      sent++;
    } else {
      j->wiped[keep++] = j->wiped[i];
    }
  j->n_wiped = keep;
  GM_INFO("erased templates off the disk; receipts queued", "templates=%zu", sent);
}

void node_bio_sync(struct node *n, struct ledger_rd *rd) {
  if (n->bio == NULL) {
    int rc = bio_index_open(&n->bio, n->cfg.methods.bio_dim);
    if (rc != 0) {
      GM_WARN("biometric index unavailable", "err=%s", gm_err_code(rc));
      return;
    }
    if (!bio_index_locked(n->bio))
      GM_WARN("biometric templates are not in locked memory", "hint=\"raise RLIMIT_MEMLOCK\"");
  }
  int rc = bio_index_sync(n->bio, rd, n->bio_key, on_erased, n);
  if (rc != 0)
    GM_WARN("biometric index sync failed", "err=%s", gm_err_code(rc));
}

static void receipts_flush(struct jobs *j, struct ledger_rd *rd) {
  struct node *n = j->n;
  while (j->n_rcpt > 0) {
    size_t k = j->n_rcpt < LEDGER_LIST_MAX ? j->n_rcpt : LEDGER_LIST_MAX;
    struct ledger_cmd c = {0};
    c.u.receipts.v = malloc(k * sizeof *c.u.receipts.v);
    if (c.u.receipts.v == NULL)
      return;
    uint32_t m = 0;
    for (size_t i = j->n_rcpt - k; i < j->n_rcpt; i++)
      if (!ledger_bio_receipt_has(rd, j->rcpt[i], n->cfg.gate))
        strcpy(c.u.receipts.v[m++], j->rcpt[i]);
    j->n_rcpt -= k;
    if (m == 0) {
      free(c.u.receipts.v);
      continue;
    }
    c.u.receipts.n = m;
    char rid[LEDGER_RID_MAX + 1];
    job_rid(rid, "rc", c.u.receipts.v[0], (uint64_t)node_now_ms());
    node_cmd_init(n, &c, LEDGER_OP_BIO_RECEIPT, rid, "job");
    submit(j, -1, &c);
  }
}

/* --- the leader's jobs ---------------------------------------------------- */

struct due_events {
  struct jobs *j;
  int64_t now;
  size_t n_revoke, n_retain;
  char revoke[EVENTS_MAX][LEDGER_ID_MAX + 1];
  int64_t revoke_after[EVENTS_MAX];
  char retain[EVENTS_MAX][LEDGER_ID_MAX + 1];
};

static int event_due(void *arg, const struct ledger_event *e) {
  struct due_events *d = arg;
  struct node *n = d->j->n;
  if (e->revoke_unscanned_after_ms > 0 && e->ends_ms + e->revoke_unscanned_after_ms <= d->now &&
      d->n_revoke < EVENTS_MAX) {
    d->revoke_after[d->n_revoke] = e->revoke_unscanned_after_ms;
    strcpy(d->revoke[d->n_revoke++], e->id);
  }
  int64_t keep = e->bio_retention_ms > 0 ? e->bio_retention_ms : n->cfg.bio_retention_ms;
  if (e->ends_ms + keep <= d->now && d->n_retain < EVENTS_MAX)
    strcpy(d->retain[d->n_retain++], e->id);
  return 0;
}

static int find_event(char (*ids)[LEDGER_ID_MAX + 1], size_t n, const char *id) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(ids[i], id) == 0)
      return (int)i;
  return -1;
}

struct expire_walk {
  struct jobs *j;
  int64_t cutoff;
  uint32_t seen, proposed;
  struct ledger_cmd c; /* CRED_EXPIRE being filled */
};

static void expire_send(struct expire_walk *w) {
  if (w->c.u.expire.ids.n == 0)
    return;
  char rid[LEDGER_RID_MAX + 1];
  char what[LEDGER_METHOD_MAX + LEDGER_ID_MAX + 2];
  snprintf(what, sizeof what, "%s/%s", w->c.u.expire.method, w->c.u.expire.ids.v[0]);
  /* Named by the run's cutoff too: a later run over the same records is a
   * new command (one that the ledger refused then may pass now). */
  job_rid(rid, "jx", what, (uint64_t)w->cutoff);
  node_cmd_init(w->j->n, &w->c, LEDGER_OP_CRED_EXPIRE, rid, "job");
  submit(w->j, JOB_EXPIRE, &w->c);
  w->c.u.expire.ids.n = 0;
  w->proposed++;
}

static int expire_one(void *arg, const struct ledger_cred *c) {
  struct expire_walk *w = arg;
  struct jobs *j = w->j;
  strcpy(j->cred_method, c->method);
  strcpy(j->cred_id, c->id);
  w->seen++;
  if (c->expires_ms == 0 || c->expires_ms > w->cutoff)
    return 0;
  if (strcmp(w->c.u.expire.method, c->method) != 0 ||
      w->c.u.expire.ids.n == LEDGER_LIST_MAX) {
    expire_send(w);
    strcpy(w->c.u.expire.method, c->method);
  }
  strcpy(w->c.u.expire.ids.v[w->c.u.expire.ids.n++], c->id);
  return w->proposed >= JOBS_PROPOSE_MAX ? 1 : 0;
}

static void job_expire(struct jobs *j, struct ledger_rd *rd, int64_t now) {
  struct expire_walk w = {.j = j, .cutoff = now - j->n->cfg.expire_grace_ms};
  w.c.u.expire.ids.v = malloc(LEDGER_LIST_MAX * sizeof *w.c.u.expire.ids.v);
  if (w.c.u.expire.ids.v == NULL)
    return;
  j->runs[JOB_EXPIRE]++;
  int rc = ledger_cred_scan(rd, j->cred_method, j->cred_id, j->n->cfg.jobs_batch, expire_one, &w);
  expire_send(&w);
  free(w.c.u.expire.ids.v);
  if (rc != 0 || w.seen < j->n->cfg.jobs_batch)
    j->cred_method[0] = j->cred_id[0] = 0; /* the end: start over next time */
}

struct revoke_walk {
  struct jobs *j;
  struct due_events *d;
  uint32_t seen, proposed;
};

static int revoke_one(void *arg, const struct ledger_ticket *t) {
  struct revoke_walk *w = arg;
  struct jobs *j = w->j;
  strcpy(j->ticket_after, t->id);
  w->seen++;
  if (t->status != LEDGER_TICKET_CREATED && t->status != LEDGER_TICKET_TRANSFERRED)
    return 0;
  int e = find_event(w->d->revoke, w->d->n_revoke, t->event_id);
  if (e < 0)
    return 0;
  struct ledger_cmd c = {0};
  char rid[LEDGER_RID_MAX + 1];
  job_rid(rid, "jr", t->id, t->version);
  node_cmd_init(j->n, &c, LEDGER_OP_TICKET_REVOKE, rid, "job");
  strcpy(c.u.revoke.ticket_id, t->id);
  snprintf(c.u.revoke.reason, sizeof c.u.revoke.reason,
           "unscanned %" PRId64 " s after the event ended", w->d->revoke_after[e] / 1000);
  submit(j, JOB_REVOKE, &c);
  return ++w->proposed >= JOBS_PROPOSE_MAX ? 1 : 0;
}

static void job_revoke(struct jobs *j, struct ledger_rd *rd, struct due_events *d) {
  if (d->n_revoke == 0)
    return;
  j->runs[JOB_REVOKE]++;
  struct revoke_walk w = {.j = j, .d = d};
  int rc = ledger_ticket_scan(rd, j->ticket_after, j->n->cfg.jobs_batch, revoke_one, &w);
  if (rc != 0 || (w.seen < j->n->cfg.jobs_batch && w.proposed < JOBS_PROPOSE_MAX))
    j->ticket_after[0] = 0;
}

struct retain_walk {
  struct jobs *j;
  struct due_events *d;
  uint32_t proposed;
};

static int retain_one(void *arg, const struct ledger_bio *b) {
  struct retain_walk *w = arg;
  if (b->ct_len == 0 || find_event(w->d->retain, w->d->n_retain, b->event_id) < 0)
    return 0;
  struct ledger_cmd c = {0};
  char rid[LEDGER_RID_MAX + 1];
  job_rid(rid, "je", b->ticket_id, b->gen);
  node_cmd_init(w->j->n, &c, LEDGER_OP_BIO_ERASE, rid, "job");
  strcpy(c.u.erase.ticket_id, b->ticket_id);
  strcpy(c.u.erase.reason, "retention");
  submit(w->j, JOB_RETENTION, &c);
  return ++w->proposed >= JOBS_PROPOSE_MAX ? 1 : 0;
}

static void job_retention(struct jobs *j, struct ledger_rd *rd, struct due_events *d) {
  if (d->n_retain == 0)
    return;
  j->runs[JOB_RETENTION]++;
  struct retain_walk w = {.j = j, .d = d};
  ledger_bio_each(rd, retain_one, &w);
}

static bool leads(struct node *n) {
  if (n->cluster == NULL)
    return !n->cluster_mode;
  struct cluster_summary s;
  cluster_summary(n, &s);
  return s.state == RAFT_LEADER;
}

static void on_tick(uv_timer_t *t) {
  struct jobs *j = t->data;
  struct node *n = j->n;
  if (n->stopping)
    return;
  struct method_env env;
  if (node_env_begin(n, &env) != 0)
    return;
  node_bio_sync(n, env.rd);
  wiped_mark(j, env.rd);
  receipts_flush(j, env.rd);
  /* One run at a time: the last run's commands are applied before the next
   * run reads the ledger, so nothing is proposed twice by one leader. */
  if (j->inflight == 0 && leads(n)) {
    struct due_events *d = calloc(1, sizeof *d);
    if (d != NULL) {
      d->j = j;
      d->now = env.now_ms;
      ledger_event_each(env.rd, event_due, d);
      job_expire(j, env.rd, env.now_ms);
      job_revoke(j, env.rd, d);
      job_retention(j, env.rd, d);
      free(d);
    }
  }
  node_env_end(&env);
  purge_finish(j);
}

int jobs_start(struct node *n) {
  struct jobs *j = calloc(1, sizeof *j);
  if (j == NULL)
    return GM_ENOMEM;
  j->n = n;
  n->jobs = j;
  uv_timer_init(n->loop, &j->timer);
  j->timer.data = j;
  uint64_t every = (uint64_t)n->cfg.jobs_interval_ms;
  /* The first sync soon after start: a restarted gate sends the receipts of
   * erasures applied while it was down. */
  uv_timer_start(&j->timer, on_tick, every < 500 ? every : 500, every);
  uv_unref((uv_handle_t *)&j->timer);
  j->started = true;
  return 0;
}

void jobs_stop(struct node *n) {
  struct jobs *j = n->jobs;
  if (j == NULL || !j->started)
    return;
  uv_timer_stop(&j->timer);
  uv_close((uv_handle_t *)&j->timer, NULL);
  j->started = false;
}

void jobs_free(struct node *n) {
  struct jobs *j = n->jobs;
  if (j != NULL) {
    free(j->rcpt);
    free(j->wiped);
    free(j);
    n->jobs = NULL;
  }
  bio_index_close(n->bio);
  n->bio = NULL;
}

void jobs_metrics(struct node *n, struct gm_buf *b) {
  struct jobs *j = n->jobs;
  if (j == NULL)
    return;
  gm_buf_printf(b, "# TYPE gate_job_runs_total counter\n");
  for (int i = 0; i < JOB__COUNT; i++)
    gm_buf_printf(b, "gate_job_runs_total{job=\"%s\"} %" PRIu64 "\n", job_names[i], j->runs[i]);
  gm_buf_printf(b, "# TYPE gate_job_proposed_total counter\n");
  for (int i = 0; i < JOB__COUNT; i++)
    gm_buf_printf(b, "gate_job_proposed_total{job=\"%s\"} %" PRIu64 "\n", job_names[i],
                  j->proposed[i]);
  gm_buf_printf(b, "# TYPE gate_job_actions_total counter\n");
  for (int i = 0; i < JOB__COUNT; i++)
    gm_buf_printf(b, "gate_job_actions_total{job=\"%s\"} %" PRIu64 "\n", job_names[i],
                  j->actions[i]);
  gm_buf_printf(b, "# TYPE gate_job_failures_total counter\n");
  for (int i = 0; i < JOB__COUNT; i++)
    gm_buf_printf(b, "gate_job_failures_total{job=\"%s\"} %" PRIu64 "\n", job_names[i],
                  j->failures[i]);
  gm_buf_printf(b, "# TYPE gate_bio_receipts_total counter\ngate_bio_receipts_total %" PRIu64
                   "\n",
                j->receipts_sent);
  gm_buf_printf(b, "# TYPE gate_bio_purge_pending gauge\ngate_bio_purge_pending %zu\n",
                j->n_wiped);
  gm_buf_printf(b, "# TYPE gate_ledger_compactions_total counter\ngate_ledger_compactions_total %"
                   PRIu64 "\n# TYPE gate_ledger_compaction_failures_total counter\n"
                   "gate_ledger_compaction_failures_total %" PRIu64 "\n",
                j->compactions, j->compact_failures);
  if (n->bio != NULL) {
    gm_buf_printf(b, "# TYPE gate_bio_templates gauge\ngate_bio_templates %zu\n",
                  bio_index_count(n->bio));
    gm_buf_printf(b, "# TYPE gate_bio_locked_bytes gauge\ngate_bio_locked_bytes %zu\n",
                  bio_index_locked(n->bio) ? bio_index_bytes(n->bio) : (size_t)0);
  }
}

json_t *jobs_status(struct node *n) {
  struct jobs *j = n->jobs;
  json_t *o = json_object();
  if (j == NULL)
    return o;
  for (int i = 0; i < JOB__COUNT; i++)
    json_object_set_new(o, job_names[i],
                        json_pack("{s:I, s:I, s:I}", "runs", (json_int_t)j->runs[i], "proposed",
                                  (json_int_t)j->proposed[i], "actions",
                                  (json_int_t)j->actions[i]));
  json_object_set_new(o, "leader", json_boolean(leads(n)));
  if (n->bio != NULL)
    json_object_set_new(o, "biometric",
                        json_pack("{s:I, s:b, s:I, s:I, s:I}", "templates",
                                  (json_int_t)bio_index_count(n->bio), "locked",
                                  bio_index_locked(n->bio), "locked_bytes",
                                  (json_int_t)bio_index_bytes(n->bio), "receipts_pending",
                                  (json_int_t)j->n_rcpt, "purge_pending",
                                  (json_int_t)j->n_wiped));
  return o;
}
