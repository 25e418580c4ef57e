/*
 * simio.h — a gate's Raft on the simulator's clock: libraft's raft_step
 * core, driven here, with the log, the term and the vote kept in memory.
 *
 * libraft's core decides (elections, replication, commit); this file does
 * what its updates ask: it persists the term, the vote and the entries,
 * sends the messages, reports a write as persisted after the disk's
 * latency, feeds received messages and the periodic tick back to the core,
 * and hands each committed command entry to the gate in log order. The
 * core keeps no entries of its own, so each gate's log here is the only
 * one in the process (no second copy, as libraft's raft_io layer would
 * keep).
 *
 * What a gate persists (term, vote, log) lives here and survives a
 * simulated crash; what is in flight does not: a crash forgets pending
 * writes' completions, drops messages addressed to the gate, and the next
 * start hands the persisted state to a new core as a real restart would.
 * An entry written before a crash stays written: a write that may or may
 * not have reached the disk, which Raft tolerates either way.
 *
 * Messages leave through the network callback, which returns the delivery
 * delay or -1 to drop them (partition, loss); delivery re-checks that the
 * receiver is up and has not restarted since.
 *
 * Every gate persists the same entries, so the logs and the messages in
 * flight share one copy of each: a blob on a simio_disk, counted.
 */
#ifndef GM_SIM_SIMIO_H
#define GM_SIM_SIMIO_H

#include <raft.h>
#include <stdbool.h>

#include "sim/sched.h"

struct simio;

/* Entries' bytes, each held once however many logs and messages hold it.
 * libraft allocates through simio's heap, which the first
 * simio_disk_create installs (before any libraft allocation): the entries
 * this file hands the core name a batch that freeing leaves alone, since
 * their holders are counted here. */
struct simio_disk;
void simio_heap_install(void);
struct simio_disk *simio_disk_create(void);
/* Frees the store and whatever it still holds; every simio using it was
 * freed first. */
void simio_disk_free(struct simio_disk *d);
/* Distinct entries held (for tests). */
size_t simio_disk_count(const struct simio_disk *d);

struct simio_net {
  struct simio_disk *disk;
  void *arg;
  /* Delay before `to` receives a message from `from`, or -1 to drop it. */
  int64_t (*delay)(void *arg, unsigned from, unsigned to);
  /* The simio of gate index `to` (for delivery), or NULL. */
  struct simio *(*peer)(void *arg, raft_id id);
};

/* What the gate does for its Raft. */
struct simio_ops {
  void *arg;
  /* A committed command entry, in log order, once. Non-zero: applying
   * stops there and resumes with that entry at the next commit. */
  int (*apply)(void *arg, raft_index index, const void *buf, size_t len);
  /* The gate stopped being the leader: what it proposed and has not seen
   * applied gets no answer from Raft. */
  void (*lost_leadership)(void *arg);
};

struct simio_write;
struct transmit;
struct blob;

/* A persisted entry: its term, and the blob that holds its type and bytes
 * (shared with the other gates' logs and the messages in flight). */
struct simio_slot {
  raft_term term;
  struct blob *blob;
};

struct simio {
  struct sched *sched;
  struct simio_net net;
  unsigned index;     /* gate index */
  raft_id id;
  char address[16];
  uint64_t gen;       /* bumped by every crash: stale events are ignored */
  bool up;
  int64_t disk_ms;    /* latency of a write */
  /* persisted */
  raft_term term;
  raft_id voted_for;
  struct simio_slot *log;
  size_t n, cap;
  raft_index start_index; /* index of log[0] */
  /* running */
  struct raft *raft;
  struct simio_ops ops;
  unsigned tick_ms;
  raft_index applied; /* the last entry handed to ops.apply (or skipped) */
  int state;          /* the core's state after the last step */
  bool stepping;
  struct simio_write *free_writes; /* completed writes, to reuse */
  struct transmit *free_tx;        /* delivered messages, to reuse */
  uint64_t sent, delivered, dropped;
  int64_t leader_contact_ms; /* the last AppendEntries received */
};

void simio_init(struct simio *s, struct sched *sched, const struct simio_net *net,
                unsigned index, raft_id id);
/* The first entry of a new cluster's log: its configuration. RAFT_CANTBOOTSTRAP
 * when something is persisted already. */
int simio_bootstrap(struct simio *s, const struct raft_configuration *conf);
/* Starts r (raft_init'ed without a raft_io, its options set) on what is
 * persisted; it ticks every tick_ms, as libraft's raft_io layer would. */
int simio_start(struct simio *s, struct raft *r, unsigned tick_ms, const struct simio_ops *ops);
/* A new command entry with a copy of buf[0..len), if this gate leads:
 * 0, or libraft's code (RAFT_NOTLEADER, ...). */
int simio_submit(struct simio *s, const void *buf, size_t len);
/* A crash: the core is closed and freed (the caller frees r), pending
 * completions and ticks are forgotten. */
void simio_crash(struct simio *s);
void simio_free(struct simio *s);

#endif
