/*
 * fsm.h — the ledger as libraft's state machine.
 *
 * apply: one entry (entry.h) = one ledger batch, applied with the entry's
 * Raft index as its sequence number, so an entry the ledger already holds
 * (a restart replaying the log) is skipped, and every entry applies exactly
 * once. When the entry was proposed here, on_applied hands the per-command
 * results to whoever waits for them.
 *
 * Snapshots: "GMRS" | version u32 | applied index u64 | ledger snapshot
 * stream. snapshot() pins a read transaction on the loop, snapshot_async()
 * streams it on a worker while applies go on, snapshot_finalize() releases
 * both. restore() skips a snapshot the ledger is already past (a gate that
 * restarts with an intact ledger), otherwise replaces the ledger with it.
 */
#ifndef GM_RAFT_FSM_H
#define GM_RAFT_FSM_H

#include <raft.h>
#include <stdbool.h>
#include <stdint.h>

#include "../ledger/ledger.h"

#define FSM_SNAP_MAGIC 0x53524d47u /* "GMRS" */
#define FSM_SNAP_HDR 16

struct gm_fsm {
  struct raft_fsm fsm; /* handed to raft_init; fsm.data points back here */
  struct raft *raft;
  struct ledger *ledger;
  uint64_t node_id;
  /* Results of an entry proposed by this node (origin == node_id). */
  void (*on_applied)(void *arg, uint64_t index, uint64_t token, const struct ledger_result *res,
                     size_t n);
  /* After every entry applied (any origin): lets readers waiting for this
   * replica to catch up go on. */
  void (*after_apply)(void *arg, uint64_t index);
  void *arg;
  struct gm_slice *cmds;
  struct ledger_result *results;
  struct ledger_rd *snap_rd; /* pinned by snapshot(), released by finalize */
  uint64_t snap_index;
  struct gm_buf snap_buf;
  struct raft_buffer snap_out;
  /* Microseconds from the caller's clock, for the restore time in the log;
   * NULL: no timing (raft/ reads no clock itself). */
  uint64_t (*clock_us)(void);
  /* After a snapshot is stored (index: its last entry), or failed to be. */
  void (*on_snapshot)(void *arg, uint64_t index);
  uint64_t applied_entries;
  uint64_t skipped_entries;
  /* Bytes of the entries applied since start, and that count just after the
   * last entry that erased a biometric template (with its index): the log
   * has moved on at least the difference since the erasure. */
  uint64_t applied_bytes;
  uint64_t erase_bytes;
  uint64_t erase_index;
  int last_error; /* a storage failure that stopped apply (map full, I/O) */
};

int gm_fsm_init(struct gm_fsm *f, struct ledger *ledger, uint64_t node_id);
/* What fsm.apply does with the entry p[0..n) at Raft index `index`: 0, or
 * RAFT_IOERR when storage failed (nothing of the entry applied). It touches
 * the FSM and its ledger only, not the raft struct, so a caller that defers
 * an entry (the simulator) may apply it on another thread, in log order. */
int gm_fsm_apply_at(struct gm_fsm *f, uint64_t index, const void *p, size_t n);
void gm_fsm_close(struct gm_fsm *f);

#endif
