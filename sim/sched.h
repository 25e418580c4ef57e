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
  uint64_t rng;
  uint64_t executed;
};

void sched_init(struct sched *s, uint64_t seed);
void sched_free(struct sched *s);
void sched_at(struct sched *s, int64_t time, sim_fn fn, void *arg, uint64_t tag);
static inline void sched_in(struct sched *s, int64_t delay, sim_fn fn, void *arg, uint64_t tag) {
  sched_at(s, s->now + (delay < 0 ? 0 : delay), fn, arg, tag);
}
/* Runs events up to and including time `until`; returns how many ran. */
size_t sched_run_until(struct sched *s, int64_t until);

/* xorshift64*: deterministic, seeded. */
uint64_t sim_rand(uint64_t *state);
/* Uniform in [0, n). */
uint64_t sim_below(uint64_t *state, uint64_t n);
/* Uniform in [0, 1). */
double sim_unit(uint64_t *state);

#endif
