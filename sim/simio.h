/*
 * simio.h — libraft's raft_io, in memory, on the simulator's clock.
 *
 * What a gate persists (term, vote, log, snapshot) lives here and survives a
 * simulated crash; what is in flight does not: a crash cancels pending
 * appends and sends, drops messages addressed to the gate, and the next
 * start loads the persisted state as a real restart would.
 *
 * Messages leave through the network callback, which returns the delivery
 * delay or -1 to drop them (partition, loss); delivery re-checks that the
 * receiver is up and has not restarted since.
 *
 * Every gate persists the same entries, so the persisted logs share one
 * copy of each: a simio_disk holds them, counted, for all the gates.
 */
#ifndef GM_SIM_SIMIO_H
#define GM_SIM_SIMIO_H

#include <raft.h>
#include <stdbool.h>

#include "sim/sched.h"

struct simio;

/* Entries' bytes, each held once however many logs hold it: the persisted
 * logs, and every gate's libraft, which gets each received or loaded entry
 * as its own batch. For that libraft allocates through simio's heap, which
 * the first simio_disk_create installs (before any libraft allocation). */
struct simio_disk;
void simio_heap_install(void);
struct simio_disk *simio_disk_create(void);
/* Frees the store; every simio using it was freed first. */
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

struct simio_pending;
struct transmit;

struct simio {
  struct raft_io io;
  struct sched *sched;
  struct simio_net net;
  unsigned index;     /* gate index */
  raft_id id;
  char address[16];
  uint64_t gen;       /* bumped by every crash: stale events are ignored */
  bool up;
  int64_t disk_ms;    /* latency of an append */
  /* persisted */
  raft_term term;
  raft_id voted_for;
  struct raft_entry *entries;
  size_t n, cap;
  raft_index start_index; /* index of entries[0] */
  struct raft_snapshot *snapshot;
  /* running */
  unsigned tick_ms;
  raft_io_tick_cb tick_cb;
  raft_io_recv_cb recv_cb;
  /* requests whose callbacks have not run: a table of slots, the free ones
   * chained from free_pend */
  struct simio_pending *pend;
  uint32_t n_pend, cap_pend, free_pend, live_pend;
  struct transmit *free_tx; /* messages delivered, to reuse */
  uint64_t sent, delivered, dropped;
  int64_t leader_contact_ms; /* the last AppendEntries received */
};

void simio_init(struct simio *s, struct sched *sched, const struct simio_net *net,
                unsigned index, raft_id id);
/* Cancels what is in flight (a crash): callbacks run with RAFT_CANCELED. */
void simio_crash(struct simio *s);
void simio_free(struct simio *s);

#endif
