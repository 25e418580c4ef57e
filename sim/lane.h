/*
 * lane.h — the simulator's second core: gates' ledger applies, deferred.
 *
 * Applying a Raft entry to a gate's ledger is deterministic in the entries
 * applied before it, and nothing in a run looks at a gate's ledger except
 * through a read. So the simulator does not apply an entry a gate did not
 * propose itself when Raft hands it over: it queues a copy on the gate's
 * lane. A lane thread applies a gate's queue once it holds LANE_BATCH
 * entries; before anything reads a gate's ledger (a verify, a prune, the
 * checker), lane_catch_up (or lane_settle, which also commits) applies what
 * is still queued on the calling thread. Either way a gate's entries apply
 * in log order through the same FSM, in one grouped transaction that a read
 * borrows and a settle commits, and every read sees all the entries Raft has
 * applied: the run is the one applies in place would give, event for event.
 * Only the wall time differs, spread over two cores.
 *
 * A gate's ledger, with its open transaction, belongs to whichever thread
 * holds the gate's ledger lock; the lane thread only takes one it can take
 * at once. So the gates' ledgers are opened without LMDB's locks (no_lock).
 * A push takes only the queue's own lock, which no apply holds.
 */
#ifndef GM_SIM_LANE_H
#define GM_SIM_LANE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LANE_BATCH 1

struct lane;

/* Applies the entry p[0..n) at `index` to gate `gate`: 0 or an error that
 * stops the gate's applies. */
typedef int (*lane_apply_fn)(void *arg, unsigned gate, uint64_t index, const void *p, size_t n);
/* Before a read: commits the gate's grouped transaction. */
typedef int (*lane_flush_fn)(void *arg, unsigned gate);
/* When no queue is ready: a little other work for the lane thread (true
 * when it did some; false lets the thread sleep a little). */
typedef bool (*lane_idle_fn)(void *arg);

/* threaded: start the lane thread (otherwise every apply waits for a
 * settle, on the caller's thread). */
int lane_create(struct lane **out, unsigned gates, bool threaded, lane_apply_fn apply,
                lane_flush_fn flush, lane_idle_fn idle, void *arg);
/* Stops the thread; what is still queued is dropped (settle first). */
void lane_destroy(struct lane *l);
/* Queues a copy of the entry for the gate. */
void lane_push(struct lane *l, unsigned gate, uint64_t index, const void *p, size_t n);
/* Applies what the gate has queued, on this thread, and commits it. Returns
 * 0, or the first error any apply of this gate met (it stays reported). */
int lane_settle(struct lane *l, unsigned gate);
/* The same without the commit: before a read that borrows the gate's open
 * transaction (ledger_options.no_lock). *applied (when not NULL) gets how
 * many queued entries it applied. */
int lane_catch_up(struct lane *l, unsigned gate, uint64_t *applied);
/* Runs fn(there) on a second thread while fn(here) runs on this one, and
 * returns when both are done; both run here, in turn, when one_core is set
 * (or no thread starts). For work split in two halves that share nothing:
 * the setup's payloads and ledger copies, the checker's comparisons. */
void lane_split(bool one_core, void (*fn)(void *), void *here, void *there);
/* Entries applied by the lane thread and by settles, and the CPU seconds
 * the lane thread used so far (0 without one): for the bench line. */
void lane_counts(struct lane *l, uint64_t *threaded, uint64_t *settled, double *cpu_s);

#endif
