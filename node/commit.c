/*
 * commit.c — the group-commit pipeline (see commit.h).
 */
#include "commit.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/assert.h"
#include "../lib/err.h"
#include "../lib/log.h"
#include "../lib/mpk.h"

static void on_check(uv_check_t *h);

/* Calls the drain callback once. */
static void fire_idle(struct commit_queue *q) {
  void (*done)(void *) = q->on_idle;
  q->on_idle = NULL;
  if (done)
    done(q->on_idle_arg);
}

int commit_init(struct commit_queue *q, uv_loop_t *loop, struct ledger *ledger,
                struct journal *journal) {
  memset(q, 0, sizeof *q);
  q->loop = loop;
  q->ledger = ledger;
  q->journal = journal;
  q->cap_pending = 1024;
  q->pending = calloc(q->cap_pending, sizeof *q->pending);
  q->slices = calloc(COMMIT_BATCH_MAX + 1, sizeof *q->slices);
  q->results = calloc(COMMIT_BATCH_MAX + 1, sizeof *q->results);
  q->inflight = calloc(COMMIT_BATCH_MAX + 1, sizeof *q->inflight);
  q->audit = calloc(LEDGER_AUDIT_BATCH_MAX, sizeof *q->audit);
  if (!q->pending || !q->slices || !q->results || !q->inflight || !q->audit) {
    commit_close(q);
    return GM_ENOMEM;
  }
  uv_check_init(loop, &q->check);
  q->check.data = q;
  mpk_w_init(&q->scratch);
  return 0;
}

static int push(struct commit_queue *q, uint8_t *cmd, size_t len, commit_cb cb, void *arg,
                bool keep) {
  if (q->n_pending == q->cap_pending) {
    if (q->cap_pending >= COMMIT_QUEUE_MAX)
      return GM_ELIMIT;
    size_t cap = q->cap_pending * 2;
    struct commit_item *p = realloc(q->pending, cap * sizeof *p);
    if (p == NULL)
      return GM_ENOMEM;
    q->pending = p;
    q->cap_pending = cap;
  }
  if (q->n_pending == 0)
    q->first_pending_us = uv_hrtime() / 1000;
  q->pending[q->n_pending++] =
      (struct commit_item){.cmd = cmd, .len = len, .cb = cb, .arg = arg, .keep = keep};
  if (!q->busy)
    uv_check_start(&q->check, on_check);
  return 0;
}

int commit_submit(struct commit_queue *q, const struct ledger_cmd *c, commit_cb cb, void *arg) {
  if (q->closing)
    return GM_ESHUTDOWN;
  if (q->n_pending >= COMMIT_QUEUE_MAX)
    return GM_ELIMIT;
  /* Encode into the queue's scratch writer and keep an exact-size copy: a
   * fresh msgpack buffer would start at 8 KiB for a ~200-byte command. */
  mpk_w_reset(&q->scratch);
  ledger_cmd_encode(c, &q->scratch);
  uint8_t *cmd = malloc(q->scratch.sb.size);
  if (cmd == NULL)
    return GM_ENOMEM;
  memcpy(cmd, q->scratch.sb.data, q->scratch.sb.size);
  int rc = push(q, cmd, q->scratch.sb.size, cb, arg, false);
  if (rc != 0)
    free(cmd);
  return rc;
}

/* An audit batch carries a request id of its own, random: sent again after
 * an answer that got lost, or queued again after a restart, it is found in
 * the ledger's dedup table and changes nothing. */
static void flush_audit(struct commit_queue *q, int64_t ts) {
  if (q->n_audit == 0)
    return;
  struct ledger_cmd c;
  memset(&c, 0, sizeof c);
  c.op = LEDGER_OP_AUDIT_BATCH;
  c.ts_ms = ts;
  uint8_t r[12];
  randombytes_buf(r, sizeof r);
  memcpy(c.rid, "audit-", 6);
  sodium_bin2hex(c.rid + 6, sizeof c.rid - 6, r, sizeof r);
  c.u.audit.v = q->audit;
  c.u.audit.n = q->n_audit;
  struct mpk_w w;
  mpk_w_init(&w);
  ledger_cmd_encode(&c, &w);
  if (push(q, (uint8_t *)w.sb.data, w.sb.size, NULL, NULL, true) != 0) {
    GM_WARN("audit entries dropped: commit queue full", "count=%u", q->n_audit);
    mpk_w_free(&w);
  }
  q->n_audit = 0;
}

void commit_audit(struct commit_queue *q, const struct ledger_audit *a) {
  if (q->n_audit == LEDGER_AUDIT_BATCH_MAX)
    flush_audit(q, a->time_ms);
  q->audit[q->n_audit++] = *a;
  if (!q->busy)
    uv_check_start(&q->check, on_check);
}

int commit_requeue_audit(struct commit_queue *q, uint8_t *cmd, size_t len) {
  if (q->closing)
    return GM_ESHUTDOWN;
  int rc = push(q, cmd, len, NULL, NULL, true);
  if (rc == 0)
    q->pending[q->n_pending - 1].spooled = true;
  return rc;
}

/* On the worker: journal (the durability point), then apply to the ledger.
 * A batch whose journal write failed is applied nowhere and fails whole. */
static void work_apply(uv_work_t *w) {
  struct commit_queue *q = w->data;
  uint64_t t0 = uv_hrtime();
  if (q->journal == NULL) {
    q->batch_rc = ledger_apply_batch(q->ledger, q->slices, q->n_inflight, q->results);
  } else {
    uint64_t seq;
    q->batch_rc = journal_append(q->journal, q->slices, q->n_inflight, &seq);
    if (q->batch_rc == 0)
      q->batch_rc = ledger_apply_batch_at(q->ledger, seq, q->slices, q->n_inflight, q->results);
    else
      for (size_t i = 0; i < q->n_inflight; i++) {
        memset(&q->results[i], 0, sizeof q->results[i]);
        q->results[i].rc = q->batch_rc;
      }
    if (q->batch_rc == 0 && q->rotate_requested) {
      uint64_t through = q->journal->last_seq;
      if (journal_rotate(q->journal) == 0) {
        q->rotated = true;
        q->rotated_through = through;
      }
      q->rotate_requested = false;
    }
  }
  q->stats.apply_us += (uv_hrtime() - t0) / 1000;
}

static void start_batch(struct commit_queue *q);

static void work_done(uv_work_t *w, int status) {
  struct commit_queue *q = w->data;
  GM_ASSERT(status == 0);
  q->stats.batches++;
  q->stats.commands += q->n_inflight;
  if (q->n_inflight > q->stats.batch_max)
    q->stats.batch_max = q->n_inflight;
  if (q->batch_rc != 0) {
    q->stats.failed_batches++;
    GM_ERROR("commit failed", "err=%s commands=%zu", gm_err_code(q->batch_rc), q->n_inflight);
  } else {
    q->stats.applied += q->n_inflight;
  }
  size_t n = q->n_inflight;
  q->n_inflight = 0;
  q->busy = false;
  if (q->rotated) {
    q->rotated = false;
    if (q->on_rotated)
      q->on_rotated(q->on_rotated_arg, q->rotated_through, q->journal->file_start);
  }
  for (size_t i = 0; i < n; i++) {
    struct commit_item *it = &q->inflight[i];
    if (it->cb)
      it->cb(it->arg, &q->results[i]);
    free(it->cmd);
  }
  /* What arrived during the fsync is the next group: start it now rather than
   * wait for another loop iteration. */
  if (q->n_pending > 0 || q->n_audit > 0)
    start_batch(q);
  else if (q->closing)
    fire_idle(q);
}

static void start_batch(struct commit_queue *q) {
  GM_ASSERT(!q->busy);
  if (q->n_audit > 0 && q->n_pending < COMMIT_BATCH_MAX) {
    int64_t ts = q->audit[q->n_audit - 1].time_ms;
    flush_audit(q, ts);
  }
  size_t n = q->n_pending < COMMIT_BATCH_MAX ? q->n_pending : COMMIT_BATCH_MAX;
  if (n == 0)
    return;
  if (q->remote != NULL) {
    /* All of it now: re-arming the check from inside the check phase would
     * leave the rest waiting until the loop next wakes up. */
    q->stats.wait_us += uv_hrtime() / 1000 - q->first_pending_us;
    while (q->n_pending > 0) {
      /* Taken off the queue first: a command failed on the spot answers its
       * request, which may queue more. */
      size_t k = q->n_pending < COMMIT_BATCH_MAX ? q->n_pending : COMMIT_BATCH_MAX;
      memcpy(q->inflight, q->pending, k * sizeof *q->pending);
      memmove(q->pending, q->pending + k, (q->n_pending - k) * sizeof *q->pending);
      q->n_pending -= k;
      q->stats.commands += k;
      q->remote(q->remote_arg, q->inflight, k);
    }
    q->first_pending_us = uv_hrtime() / 1000;
    return;
  }
  memcpy(q->inflight, q->pending, n * sizeof *q->pending);
  memmove(q->pending, q->pending + n, (q->n_pending - n) * sizeof *q->pending);
  q->n_pending -= n;
  q->n_inflight = n;
  q->stats.wait_us += uv_hrtime() / 1000 - q->first_pending_us;
  q->first_pending_us = uv_hrtime() / 1000;
  for (size_t i = 0; i < n; i++)
    q->slices[i] = (struct gm_slice){q->inflight[i].cmd, q->inflight[i].len};
  q->busy = true;
  q->work.data = q;
  int rc = uv_queue_work(q->loop, &q->work, work_apply, work_done);
  GM_ASSERT(rc == 0);
}

static void on_check(uv_check_t *h) {
  struct commit_queue *q = h->data;
  uv_check_stop(&q->check);
  if (!q->busy)
    start_batch(q);
}

bool commit_idle(const struct commit_queue *q) {
  return !q->busy && q->n_pending == 0 && q->n_audit == 0 &&
         (q->remote_idle == NULL || q->remote_idle(q->remote_arg));
}

void commit_remote_settled(struct commit_queue *q) {
  if (q->closing && commit_idle(q))
    fire_idle(q);
}

void commit_drain(struct commit_queue *q, void (*done)(void *arg), void *arg) {
  q->closing = true;
  q->on_idle = done;
  q->on_idle_arg = arg;
  if (commit_idle(q)) {
    fire_idle(q);
    return;
  }
  if (!q->busy)
    start_batch(q);
  if (q->remote != NULL && commit_idle(q))
    fire_idle(q);
}

void commit_close(struct commit_queue *q) {
  GM_ASSERT(!q->busy);
  if (q->check.loop)
    uv_close((uv_handle_t *)&q->check, NULL);
  for (size_t i = 0; i < q->n_pending; i++)
    free(q->pending[i].cmd);
  free(q->pending);
  free(q->slices);
  free(q->results);
  free(q->inflight);
  free(q->audit);
  mpk_w_free(&q->scratch);
  q->pending = NULL;
  q->slices = NULL;
  q->results = NULL;
  q->inflight = NULL;
  q->audit = NULL;
}
