/*
 * lane.c — deferred ledger applies on a second core (see lane.h).
 *
 * The lane thread polls: it looks at every queue's length without a lock and
 * takes a gate's ledger only to apply its queue, and only with trylock, so
 * the simulation's thread never waits for a signal, and waits for a lock
 * only when it reads a ledger the lane is applying to. When nothing is ready
 * the lane does a little of the idle work it was given (lane_idle_fn), or
 * sleeps a little when there is none.
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

/* Queued entries, packed: an item header, then its bytes, 8-aligned. */
struct item {
  uint64_t index;
  uint64_t n;
};

struct qbuf {
  uint8_t *p;
  size_t len, cap;
};

/* A gate's queue is two buffers: pushes append to the active one, and a
 * drain swaps them and applies the other with no lock held but the ledger's,
 * so a push waits only for a swap, never for an apply. */
struct queue {
  pthread_mutex_t mu;     /* the active buffer */
  pthread_mutex_t ledger; /* the gate's ledger; its holder may swap */
  struct qbuf b[2];
  unsigned active;
  atomic_size_t n; /* entries in the active buffer; read without a lock */
  int err;         /* under `ledger` */
};

struct lane {
  struct queue *q;
  unsigned gates;
  lane_apply_fn apply;
  lane_flush_fn flush;
  lane_idle_fn idle;
  void *arg;
  bool threaded;
  pthread_t thread;
  atomic_bool stop;
  atomic_uint_fast64_t by_thread, by_settle;
};

static size_t item_size(size_t n) { return sizeof(struct item) + ((n + 7) & ~(size_t)7); }

/* Applies what the gate has queued; q->ledger is held. The grouped
 * transaction stays open: the next settle commits it, on whichever thread
 * that runs (a gate's ledger is opened without LMDB's locks, so its
 * transaction is not tied to a thread; q->ledger orders its use). */
static uint64_t drain(struct lane *l, unsigned g) {
  struct queue *q = &l->q[g];
  pthread_mutex_lock(&q->mu);
  struct qbuf *b = &q->b[q->active];
  q->active ^= 1; /* the other buffer was emptied by the last drain */
  atomic_store(&q->n, 0);
  pthread_mutex_unlock(&q->mu);
  uint64_t done = 0;
  for (size_t at = 0; at < b->len; done++) {
    struct item it;
    memcpy(&it, b->p + at, sizeof it);
    if (q->err == 0)
      q->err = l->apply(l->arg, g, it.index, b->p + at + sizeof it, (size_t)it.n);
    at += item_size((size_t)it.n);
  }
  b->len = 0;
  return done;
}

static void *run(void *arg) {
  struct lane *l = arg;
  while (!atomic_load(&l->stop)) {
    uint64_t done = 0;
    for (unsigned g = 0; g < l->gates; g++) {
      struct queue *q = &l->q[g];
      if (atomic_load(&q->n) >= LANE_BATCH && pthread_mutex_trylock(&q->ledger) == 0) {
        done += drain(l, g);
        pthread_mutex_unlock(&q->ledger);
      }
    }
    if (done == 0 && (l->idle == NULL || !l->idle(l->arg))) {
      struct timespec ts = {0, LANE_IDLE_NS};
      nanosleep(&ts, NULL);
    }
    atomic_fetch_add(&l->by_thread, done);
  }
  mpk_thread_end(); /* the applies decoded records on this thread */
  return NULL;
}

int lane_create(struct lane **out, unsigned gates, bool threaded, lane_apply_fn apply,
                lane_flush_fn flush, lane_idle_fn idle, void *arg) {
  struct lane *l = calloc(1, sizeof *l);
  if (l == NULL || (l->q = calloc(gates, sizeof *l->q)) == NULL) {
    free(l);
    return -1;
  }
  l->gates = gates;
  l->apply = apply;
  l->flush = flush;
  l->idle = idle;
  l->arg = arg;
  for (unsigned g = 0; g < gates; g++) {
    pthread_mutex_init(&l->q[g].mu, NULL);
    pthread_mutex_init(&l->q[g].ledger, NULL);
  }
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
    free(l->q[g].b[0].p);
    free(l->q[g].b[1].p);
    pthread_mutex_destroy(&l->q[g].mu);
    pthread_mutex_destroy(&l->q[g].ledger);
  }
  free(l->q);
  free(l);
}

void lane_push(struct lane *l, unsigned gate, uint64_t index, const void *p, size_t n) {
  struct queue *q = &l->q[gate];
  struct item it = {index, n};
  size_t need = item_size(n);
  pthread_mutex_lock(&q->mu);
  struct qbuf *b = &q->b[q->active];
  if (b->len + need > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + need)
      cap *= 2;
    b->p = realloc(b->p, cap);
    GM_ASSERT(b->p != NULL);
    b->cap = cap;
  }
  memcpy(b->p + b->len, &it, sizeof it);
  memcpy(b->p + b->len + sizeof it, p, n);
  b->len += need;
  atomic_fetch_add(&q->n, 1);
  pthread_mutex_unlock(&q->mu);
}

static int settle(struct lane *l, unsigned gate, bool commit, uint64_t *applied) {
  struct queue *q = &l->q[gate];
  pthread_mutex_lock(&q->ledger);
  uint64_t done = drain(l, gate);
  if (commit) {
    int rc = l->flush(l->arg, gate);
    if (q->err == 0)
      q->err = rc;
  }
  int err = q->err;
  pthread_mutex_unlock(&q->ledger);
  atomic_fetch_add(&l->by_settle, done);
  if (applied != NULL)
    *applied = done;
  return err;
}

int lane_settle(struct lane *l, unsigned gate) { return settle(l, gate, true, NULL); }

int lane_catch_up(struct lane *l, unsigned gate, uint64_t *applied) {
  return settle(l, gate, false, applied);
}

struct split {
  void (*fn)(void *);
  void *arg;
};

static void *split_run(void *arg) {
  struct split *sp = arg;
  sp->fn(sp->arg);
  mpk_thread_end(); /* the work may have decoded records on this thread */
  return NULL;
}

void lane_split(bool one_core, void (*fn)(void *), void *here, void *there) {
  struct split sp = {fn, there};
  pthread_t t;
  bool two = !one_core && pthread_create(&t, NULL, split_run, &sp) == 0;
  fn(here);
  if (two)
    pthread_join(t, NULL);
  else
    fn(there);
}

void lane_counts(struct lane *l, uint64_t *threaded, uint64_t *settled, double *cpu_s) {
  *threaded = atomic_load(&l->by_thread);
  *settled = atomic_load(&l->by_settle);
  clockid_t id;
  struct timespec ts;
  *cpu_s = l->threaded && pthread_getcpuclockid(l->thread, &id) == 0 &&
                   clock_gettime(id, &ts) == 0
               ? (double)ts.tv_sec + (double)ts.tv_nsec / 1e9
               : 0;
}
