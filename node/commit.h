/*
 * commit.h — group commit of ledger commands on the node's loop.
 *
 * Commands submitted during one loop iteration are applied together at its
 * check phase in one LMDB write transaction, on a worker thread, with one
 * fsync. While that batch is on the disk the loop keeps serving, and what
 * arrives meanwhile forms the next batch, so throughput is (commands per
 * batch) x (fsyncs per second) rather than one command per fsync.
 *
 * Each submit's callback runs exactly once on the loop thread, after its
 * batch committed (durable) or failed; if commit_submit returns an error the
 * callback never runs. Audit entries ride along in the next batch as one
 * AUDIT_BATCH command, with no callback.
 */
#ifndef GM_NODE_COMMIT_H
#define GM_NODE_COMMIT_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "../ledger/ledger.h"
#include "../lib/mpk.h"
#include "journal.h"

/* Commands in one transaction; more wait for the next. Bounds the time one
 * transaction holds the writer and the size of its dirty page set. */
#define COMMIT_BATCH_MAX 4096
/* Commands waiting; past this submit answers GM_ELIMIT (HTTP 503). */
#define COMMIT_QUEUE_MAX 65536

typedef void (*commit_cb)(void *arg, const struct ledger_result *res);

struct commit_item {
  uint8_t *cmd;
  size_t len;
  commit_cb cb;
  void *arg;
  struct ledger_result res;
  /* An AUDIT_BATCH (it has a request id of its own, so a repeat changes
   * nothing): in a cluster it waits for a leader however long that takes,
   * rather than expire at request-timeout-ms (see cluster.h). */
  bool keep;
  bool spooled; /* a keep item already in the cluster's file of them */
};

struct commit_stats {
  uint64_t batches;
  uint64_t commands;
  uint64_t failed_batches;
  uint64_t batch_max;
  uint64_t applied; /* commands applied since start (the local applied index) */
  uint64_t apply_us; /* time in ledger_apply_batch (worker thread), summed */
  uint64_t wait_us;  /* time from a batch's first submit to its start, summed */
};

struct commit_queue {
  uv_loop_t *loop;
  struct ledger *ledger;
  struct journal *journal; /* NULL: the ledger syncs each commit itself */
  bool rotate_requested;   /* rotate the journal after the next batch */
  bool rotated;            /* set by the worker when it did */
  uint64_t rotated_through; /* last seq in the files before the rotation */
  void (*on_rotated)(void *arg, uint64_t through, uint64_t new_file_start);
  void *on_rotated_arg;
  struct commit_item *pending;
  size_t n_pending;
  size_t cap_pending;
  struct commit_item *inflight;
  size_t n_inflight;
  struct gm_slice *slices;
  struct ledger_result *results;
  int batch_rc;
  bool busy;
  bool closing;
  uv_check_t check;
  uv_work_t work;
  struct ledger_audit *audit;
  uint32_t n_audit;
  struct mpk_w scratch; /* encoding buffer of the loop thread */
  struct commit_stats stats;
  uint64_t first_pending_us; /* when the oldest pending command arrived */
  void (*on_idle)(void *arg); /* called when closing and nothing is left */
  void *on_idle_arg;
  /* In a cluster every command goes through Raft: each batch's items are
   * handed to `remote` (which then owns item->cmd and calls item->cb exactly
   * once), and `remote_idle` says whether it still has some in flight. */
  void (*remote)(void *arg, struct commit_item *items, size_t n);
  bool (*remote_idle)(void *arg);
  void *remote_arg;
};

int commit_init(struct commit_queue *q, uv_loop_t *loop, struct ledger *ledger,
                struct journal *journal);
/* Encodes c and queues it. GM_ELIMIT when the queue is full, GM_ESHUTDOWN
 * after commit_drain. */
int commit_submit(struct commit_queue *q, const struct ledger_cmd *c, commit_cb cb, void *arg);
void commit_audit(struct commit_queue *q, const struct ledger_audit *a);
/* Queues an encoded AUDIT_BATCH again (one kept over a restart, see
 * cluster.h), as a keep item; takes cmd. */
int commit_requeue_audit(struct commit_queue *q, uint8_t *cmd, size_t len);
/* Stops taking commands; calls done once everything queued has committed. */
void commit_drain(struct commit_queue *q, void (*done)(void *arg), void *arg);
void commit_close(struct commit_queue *q);
bool commit_idle(const struct commit_queue *q);
/* The remote side calls this when its last command in flight completed. */
void commit_remote_settled(struct commit_queue *q);

#endif
