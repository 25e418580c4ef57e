/* sched.c — the simulator's event queue (see sched.h): a binary heap on
 * (time, sequence). */
#include "sim/sched.h"

#include <stdlib.h>
#include <string.h>

#include "lib/assert.h"

void sched_init(struct sched *s, uint64_t seed) {
  memset(s, 0, sizeof *s);
  s->rng = seed * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL;
  if (s->rng == 0)
    s->rng = 1;
}

void sched_free(struct sched *s) {
  free(s->heap);
  s->heap = NULL;
  s->n = s->cap = 0;
  free(s->later);
  s->later = NULL;
  s->n_later = s->cap_later = s->at_later = 0;
}

static int before(const struct sim_event *a, const struct sim_event *b) {
  return a->time < b->time || (a->time == b->time && a->seq < b->seq);
}

/* Room for one more event in an array of n that holds *cap. */
static void grow(struct sim_event **v, size_t n, size_t *cap) {
  if (n < *cap)
    return;
  *cap = *cap ? *cap * 2 : 1024;
  *v = realloc(*v, *cap * sizeof **v);
  GM_ASSERT(*v != NULL);
}

/* A new event: never in the past, and after every event scheduled before. */
static struct sim_event event_at(struct sched *s, int64_t time, sim_fn fn, void *arg,
                                 uint64_t tag) {
  return (struct sim_event){time < s->now ? s->now : time, s->seq++, fn, arg, tag};
}

void sched_at(struct sched *s, int64_t time, sim_fn fn, void *arg, uint64_t tag) {
  grow(&s->heap, s->n, &s->cap);
  struct sim_event e = event_at(s, time, fn, arg, tag);
  size_t i = s->n++;
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!before(&e, &s->heap[p]))
      break;
    s->heap[i] = s->heap[p];
    i = p;
  }
  s->heap[i] = e;
}

static struct sim_event pop(struct sched *s) {
  struct sim_event top = s->heap[0];
  struct sim_event last = s->heap[--s->n];
  size_t i = 0;
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    const struct sim_event *best = &last;
    if (l < s->n && before(&s->heap[l], best)) {
      m = l;
      best = &s->heap[l];
    }
    if (r < s->n && before(&s->heap[r], best))
      m = r;
    if (m == i)
      break;
    s->heap[i] = s->heap[m];
    i = m;
  }
  if (s->n > 0)
    s->heap[i] = last;
  return top;
}

void sched_later(struct sched *s, int64_t time, sim_fn fn, void *arg, uint64_t tag) {
  grow(&s->later, s->n_later, &s->cap_later);
  s->later[s->n_later++] = event_at(s, time, fn, arg, tag);
  s->later_sorted = false;
}

static int cmp_event(const void *a, const void *b) {
  return before(a, b) ? -1 : before(b, a) ? 1 : 0;
}

/* The next event of the array, if it comes before the heap's. */
static const struct sim_event *next_later(struct sched *s) {
  if (s->at_later == s->n_later)
    return NULL;
  if (!s->later_sorted) {
    qsort(s->later + s->at_later, s->n_later - s->at_later, sizeof *s->later, cmp_event);
    s->later_sorted = true;
  }
  const struct sim_event *e = &s->later[s->at_later];
  return s->n == 0 || before(e, &s->heap[0]) ? e : NULL;
}

const struct sim_event *sched_later_order(struct sched *s, size_t *n) {
  next_later(s); /* sorts them */
  *n = s->n_later - s->at_later;
  return s->later + s->at_later;
}

size_t sched_pending(const struct sched *s) { return s->n + (s->n_later - s->at_later); }

int64_t sched_next_at(struct sched *s) {
  const struct sim_event *e = next_later(s);
  return e != NULL ? e->time : s->heap[0].time;
}

size_t sched_run_until(struct sched *s, int64_t until) {
  size_t ran = 0;
  for (;;) {
    const struct sim_event *l = next_later(s);
    struct sim_event e;
    if (l != NULL && l->time <= until)
      e = s->later[s->at_later++];
    else if (l == NULL && s->n > 0 && s->heap[0].time <= until)
      e = pop(s);
    else
      break;
    s->now = e.time;
    e.fn(e.arg, e.tag);
    ran++;
  }
  s->executed += ran;
  if (s->now < until)
    s->now = until;
  return ran;
}

uint64_t sim_rand(uint64_t *x) {
  *x ^= *x >> 12;
  *x ^= *x << 25;
  *x ^= *x >> 27;
  return *x * 0x2545F4914F6CDD1DULL;
}

uint64_t sim_below(uint64_t *x, uint64_t n) { return n ? sim_rand(x) % n : 0; }

double sim_unit(uint64_t *x) { return (double)(sim_rand(x) >> 11) / 9007199254740992.0; }
