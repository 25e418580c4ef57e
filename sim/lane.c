/*
 * lane.c — deferred ledger applies on a second core (see lane.h).
 *
 * The lane thread polls: it looks at every queue's length without a lock and
 * takes a queue's lock only to apply it, and only with trylock, so the
 * simulation's thread never waits for a signal and seldom for a lock. When
 * nothing is ready it sleeps a little.
 */
#include "sim/lane.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/assert.h"
#include "lib/mpk.h"

#define LANE_IDLE_NS 20000

struct item {
  struct item *next;
  uint64_t index;
  size_t n;
  uint8_t p[];
};

struct queue {
  pthread_mutex_t mu;
  struct item *head, *tail;
  atomic_size_t n; /* read by the lane thread without the lock */
  int err;
};

struct lane {
  struct queue *q;
  unsigned gates;
  lane_apply_fn apply;
  lane_flush_fn flush;
  void *arg;
  bool threaded;
  pthread_t thread;
  atomic_bool stop;
  atomic_uint_fast64_t by_thread, by_settle;
};

/* Applies and frees the gate's queue; q->mu is held. The grouped
 * transaction stays open: the next settle commits it, on whichever thread
 * that runs (a gate's ledger is opened without LMDB's locks, so its
 * transaction is not tied to a thread; the queue's lock orders its use). */
static uint64_t drain(struct lane *l, unsigned g) {
  struct queue *q = &l->q[g];
  struct item *it = q->head;
  q->head = q->tail = NULL;
  atomic_store(&q->n, 0);
  uint64_t done = 0;
  while (it != NULL) {
    struct item *next = it->next;
    if (q->err == 0)
      q->err = l->apply(l->arg, g, it->index, it->p, it->n);
    free(it);
    it = next;
    done++;
  }
  return done;
}

static void *run(void *arg) {
  struct lane *l = arg;
  while (!atomic_load(&l->stop)) {
    uint64_t done = 0;
    for (unsigned g = 0; g < l->gates; g++) {
      struct queue *q = &l->q[g];
      if (atomic_load(&q->n) >= LANE_BATCH && pthread_mutex_trylock(&q->mu) == 0) {
        done += drain(l, g);
        pthread_mutex_unlock(&q->mu);
      }
    }
    if (done == 0) {
      struct timespec ts = {0, LANE_IDLE_NS};
      nanosleep(&ts, NULL);
    }
    atomic_fetch_add(&l->by_thread, done);
  }
  mpk_thread_end(); /* the applies decoded records on this thread */
  return NULL;
}

int lane_create(struct lane **out, unsigned gates, bool threaded, lane_apply_fn apply,
                lane_flush_fn flush, void *arg) {
  struct lane *l = calloc(1, sizeof *l);
  if (l == NULL || (l->q = calloc(gates, sizeof *l->q)) == NULL) {
    free(l);
    return -1;
  }
  l->gates = gates;
  l->apply = apply;
  l->flush = flush;
  l->arg = arg;
  for (unsigned g = 0; g < gates; g++)
    pthread_mutex_init(&l->q[g].mu, NULL);
  atomic_init(&l->stop, false);
  l->threaded = threaded && pthread_create(&l->thread, NULL, run, l) == 0;
  *out = l;
  return 0;
}

void lane_destroy(struct lane *l) {
  if (l == NULL)
    return;
  if (l->threaded) {
    atomic_store(&l->stop, true);
    pthread_join(l->thread, NULL);
  }
  for (unsigned g = 0; g < l->gates; g++) {
    for (struct item *it = l->q[g].head, *next; it != NULL; it = next) {
      next = it->next;
      free(it);
    }
    pthread_mutex_destroy(&l->q[g].mu);
  }
  free(l->q);
  free(l);
}

void lane_push(struct lane *l, unsigned gate, uint64_t index, const void *p, size_t n) {
  struct item *it = malloc(sizeof *it + n);
  GM_ASSERT(it != NULL);
  it->next = NULL;
  it->index = index;
  it->n = n;
  memcpy(it->p, p, n);
  struct queue *q = &l->q[gate];
  pthread_mutex_lock(&q->mu);
  if (q->tail != NULL)
    q->tail->next = it;
  else
    q->head = it;
  q->tail = it;
  atomic_fetch_add(&q->n, 1);
  pthread_mutex_unlock(&q->mu);
}

int lane_settle(struct lane *l, unsigned gate) {
  struct queue *q = &l->q[gate];
  pthread_mutex_lock(&q->mu);
  uint64_t done = drain(l, gate);
  int rc = l->flush(l->arg, gate);
  if (q->err == 0)
    q->err = rc;
  int err = q->err;
  pthread_mutex_unlock(&q->mu);
  atomic_fetch_add(&l->by_settle, done);
  return err;
}

void lane_counts(struct lane *l, uint64_t *threaded, uint64_t *settled) {
  *threaded = atomic_load(&l->by_thread);
  *settled = atomic_load(&l->by_settle);
}
