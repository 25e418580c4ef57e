/*
 * sched.h — the simulator's clock and event queue, and its random source.
 *
 * Time is simulated milliseconds; an event runs at its time, events at the
 * same time in the order they were scheduled, so a run depends only on its
 * seed. Cancelling is by generation: an event whose owner moved on checks
 * its own token and returns.
 */
#ifndef GM_SIM_SCHED_H
#define GM_SIM_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef void (*sim_fn)(void *arg, uint64_t tag);

struct sim_event {
  int64_t time;
  uint64_t seq;
  sim_fn fn;
  void *arg;
  uint64_t tag;
};

struct sched {
  int64_t now;
  uint64_t seq;
  struct sim_event *heap;
  size_t n, cap;
  /* events scheduled in bulk before the run (sched_later): sorted once,
   * taken from `at` on, merged with the heap by (time, sequence) */
  struct sim_event *later;
  size_t n_later, cap_later, at_later;
  bool later_sorted;
  uint64_t rng;
  uint64_t executed;
};

void sched_init(struct sched *s, uint64_t seed);
void sched_free(struct sched *s);
void sched_at(struct sched *s, int64_t time, sim_fn fn, void *arg, uint64_t tag);
static inline void sched_in(struct sched *s, int64_t delay, sim_fn fn, void *arg, uint64_t tag) {
  sched_at(s, s->now + (delay < 0 ? 0 : delay), fn, arg, tag);
}
/* The same, for the many events a run knows before it starts (attendees'
 * arrivals): they wait in a sorted array rather than the heap, which stays
 * small. The order is the one sched_at would give. */
void sched_later(struct sched *s, int64_t time, sim_fn fn, void *arg, uint64_t tag);
/* The sched_later events not run yet, in the order they will run (*n of
 * them); valid until the next sched_later or run. */
const struct sim_event *sched_later_order(struct sched *s, size_t *n);
/* Events not run yet, and the time of the next one (pending > 0). */
size_t sched_pending(const struct sched *s);
int64_t sched_next_at(struct sched *s);
/* Runs events up to and including time `until`; returns how many ran. */
size_t sched_run_until(struct sched *s, int64_t until);

/* xorshift64*: deterministic, seeded. */
uint64_t sim_rand(uint64_t *state);
/* Uniform in [0, n). */
uint64_t sim_below(uint64_t *state, uint64_t n);
/* Uniform in [0, 1). */
double sim_unit(uint64_t *state);

#endif
