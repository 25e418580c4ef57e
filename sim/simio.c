/*
 * simio.c — a gate's Raft on the simulator's clock (see simio.h).
 */
#include "sim/simio.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/assert.h"

/* ---------------------------------------------------------------- heap */

/* libraft allocates through this heap (raft_heap_set), which is the C
 * heap except for one address: the batch of every entry handed to the
 * core. libraft frees an entry's batch when it is done with a message; the
 * entry's holders are counted here instead (its blob), so that free does
 * nothing. */
static max_align_t held_batch;
#define HELD_BATCH ((void *)&held_batch)

static void *heap_malloc(void *data, size_t size) {
  (void)data;
  return malloc(size);
}

static void *heap_calloc(void *data, size_t nmemb, size_t size) {
  (void)data;
  return calloc(nmemb, size);
}

static void *heap_realloc(void *data, void *p, size_t size) {
  (void)data;
  GM_ASSERT(p != HELD_BATCH);
  return realloc(p, size);
}

static void *heap_aligned(void *data, size_t alignment, size_t size) {
  (void)data;
  return aligned_alloc(alignment, (size + alignment - 1) / alignment * alignment);
}

static void heap_free(void *data, void *p) {
  (void)data;
  if (p != HELD_BATCH)
    free(p);
}

static void heap_aligned_free(void *data, size_t alignment, void *p) {
  (void)alignment;
  heap_free(data, p);
}

static struct raft_heap simio_heap = {.malloc = heap_malloc,
                                      .free = heap_free,
                                      .calloc = heap_calloc,
                                      .realloc = heap_realloc,
                                      .aligned_alloc = heap_aligned,
                                      .aligned_free = heap_aligned_free};

void simio_heap_install(void) {
  if (raft_heap_get() != &simio_heap)
    raft_heap_set(&simio_heap);
}

/* ---------------------------------------------------------------- disk */

/* An entry's bytes, held once; refs counts its holders: the logs and the
 * messages in flight. The disk chains the live ones, to free what is left
 * at the end. */
struct blob {
  struct blob *prev, *next;
  struct simio_disk *disk;
  size_t refs, len;
  int type;
  uint8_t bytes[];
};

struct simio_disk {
  struct blob *live;
  size_t n;
};

struct simio_disk *simio_disk_create(void) {
  simio_heap_install();
  struct simio_disk *d = calloc(1, sizeof *d);
  GM_ASSERT(d != NULL);
  return d;
}

void simio_disk_free(struct simio_disk *d) {
  if (d == NULL)
    return;
  for (struct blob *b = d->live, *next; b != NULL; b = next) {
    next = b->next;
    free(b);
  }
  free(d);
}

size_t simio_disk_count(const struct simio_disk *d) { return d->n; }

/* A new blob holding a copy of p[0..n), with one holder. */
static struct blob *blob_new(struct simio_disk *d, int type, const void *p, size_t n) {
  struct blob *b = malloc(sizeof *b + (n ? n : 1));
  GM_ASSERT(b != NULL);
  b->disk = d;
  b->refs = 1;
  b->len = n;
  b->type = type;
  memcpy(b->bytes, p, n);
  b->prev = NULL;
  b->next = d->live;
  if (d->live != NULL)
    d->live->prev = b;
  d->live = b;
  d->n++;
  return b;
}

/* One holder fewer; the last one frees it. */
static void blob_release(struct blob *b) {
  GM_ASSERT(b->refs > 0);
  if (--b->refs > 0)
    return;
  struct simio_disk *d = b->disk;
  if (b->prev != NULL)
    b->prev->next = b->next;
  else
    d->live = b->next;
  if (b->next != NULL)
    b->next->prev = b->prev;
  d->n--;
  free(b);
}

/* The blob whose bytes an entry handed to the core points at (its batch is
 * HELD_BATCH: this file made it). */
static struct blob *blob_of(const struct raft_entry *e) {
  GM_ASSERT(e->batch == HELD_BATCH);
  return (struct blob *)((uint8_t *)e->buf.base - offsetof(struct blob, bytes));
}

/* b as an entry for the core: one more holder, which the caller drops. */
static struct raft_entry entry_held(struct blob *b, raft_term term) {
  b->refs++;
  return (struct raft_entry){
      .term = term, .type = b->type, .buf = {.base = b->bytes, .len = b->len}, .batch = HELD_BATCH};
}

/* ------------------------------------------------------------- the log */

static struct blob *log_blob(const struct simio *s, size_t i) { return s->log[i].blob; }

static raft_term log_term_of(const struct simio *s, raft_index index) {
  if (index < s->start_index || index - s->start_index >= s->n)
    return 0;
  return s->log[index - s->start_index].term;
}

static void log_free_from(struct simio *s, size_t keep) {
  for (size_t i = keep; i < s->n; i++)
    blob_release(log_blob(s, i));
  s->n = keep;
}

/* Writes entries at `index` (the ones from index on go first): the log
 * holds each as a blob, and a blob's entry is only counted again. */
static void log_write(struct simio *s, raft_index index, const struct raft_entry *es, unsigned n) {
  GM_ASSERT(index >= s->start_index && index - s->start_index <= s->n);
  log_free_from(s, (size_t)(index - s->start_index));
  if (s->n + n > s->cap) {
    size_t cap = s->cap ? s->cap : 64;
    while (cap < s->n + n)
      cap *= 2;
    s->log = realloc(s->log, cap * sizeof *s->log);
    GM_ASSERT(s->log != NULL);
    s->cap = cap;
  }
  for (unsigned i = 0; i < n; i++) {
    const struct raft_entry *e = &es[i];
    struct blob *b;
    if (e->batch == HELD_BATCH) {
      b = blob_of(e);
      b->refs++;
    } else {
      b = blob_new(s->net.disk, e->type, e->buf.base, e->buf.len);
    }
    s->log[s->n + i] = (struct simio_slot){.term = e->term, .blob = b};
  }
  s->n += n;
}

/* --------------------------------------------------------- the network */

/* A message on the wire; the entries of an AppendEntries are held. */
struct transmit {
  struct transmit *next_free;
  struct simio *from;
  raft_id to;
  uint64_t to_gen;
  struct raft_message msg;
};

static void message_release(struct raft_message *m) {
  if (m->type == RAFT_APPEND_ENTRIES && m->append_entries.n_entries > 0) {
    for (unsigned i = 0; i < m->append_entries.n_entries; i++)
      blob_release(blob_of(&m->append_entries.entries[i]));
    free(m->append_entries.entries);
  }
}

/* ------------------------------------------------------------ stepping */

/* A write of n entries from `index`, persisted after the disk's latency;
 * the terms tell which of them a later truncation replaced. */
struct simio_write {
  struct simio_write *next_free;
  struct simio *s;
  uint64_t gen;
  raft_index index;
  unsigned n, cap;
  raft_term *terms;
};

static int step(struct simio *s, struct raft_event *ev);

static void on_written(void *arg, uint64_t unused) {
  (void)unused;
  struct simio_write *w = arg;
  struct simio *s = w->s;
  if (w->gen == s->gen && s->up) {
    /* What is still in the log as written (libraft's raft_io layer checks
     * the same). */
    unsigned n = 0;
    while (n < w->n && log_term_of(s, w->index + n) == w->terms[n])
      n++;
    if (n > 0 && w->index + n - 1 > s->raft->last_stored) {
      struct raft_event ev = {.type = RAFT_PERSISTED_ENTRIES};
      ev.persisted_entries.index = w->index + n - 1;
      int rc = step(s, &ev);
      GM_ASSERT(rc == 0);
    }
  }
  w->next_free = s->free_writes;
  s->free_writes = w;
}

static void persist(struct simio *s, raft_index index, struct raft_entry *es, unsigned n) {
  log_write(s, index, es, n);
  struct simio_write *w = s->free_writes;
  if (w != NULL) {
    s->free_writes = w->next_free;
  } else {
    w = calloc(1, sizeof *w);
    GM_ASSERT(w != NULL);
  }
  if (w->cap < n) {
    w->terms = realloc(w->terms, n * sizeof *w->terms);
    GM_ASSERT(w->terms != NULL);
    w->cap = n;
  }
  w->s = s;
  w->gen = s->gen;
  w->index = index;
  w->n = n;
  for (unsigned i = 0; i < n; i++)
    w->terms[i] = es[i].term;
  sched_in(s->sched, s->disk_ms, on_written, w, 0);
}

static void on_deliver(void *arg, uint64_t unused) {
  (void)unused;
  struct transmit *t = arg;
  struct simio *from = t->from;
  struct simio *to = from->net.peer(from->net.arg, t->to);
  if (to == NULL || !to->up || to->gen != t->to_gen) {
    from->dropped++;
  } else {
    t->msg.server_id = from->id;
    t->msg.server_address = from->address;
    to->delivered++;
    if (t->msg.type == RAFT_APPEND_ENTRIES)
      to->leader_contact_ms = to->sched->now;
    struct raft_event ev = {.type = RAFT_RECEIVE};
    ev.receive.message = &t->msg;
    int rc = step(to, &ev);
    GM_ASSERT(rc == 0);
  }
  message_release(&t->msg);
  t->next_free = from->free_tx;
  from->free_tx = t;
}

static void send_one(struct simio *s, const struct raft_message *msg) {
  struct simio *to = s->net.peer(s->net.arg, msg->server_id);
  int64_t delay = to ? s->net.delay(s->net.arg, s->index, to->index) : -1;
  if (delay < 0) {
    s->dropped++;
    return;
  }
  struct transmit *t = s->free_tx;
  if (t != NULL) {
    s->free_tx = t->next_free;
  } else {
    t = malloc(sizeof *t);
    GM_ASSERT(t != NULL);
  }
  t->from = s;
  t->to = msg->server_id;
  t->to_gen = to->gen;
  t->msg = *msg;
  if (msg->type == RAFT_APPEND_ENTRIES && msg->append_entries.n_entries > 0) {
    /* The core names the entries; they come from this log. */
    const struct raft_append_entries *a = &msg->append_entries;
    raft_index first = a->prev_log_index + 1;
    GM_ASSERT(first >= s->start_index && first - s->start_index + a->n_entries <= s->n);
    struct raft_entry *es = malloc(a->n_entries * sizeof *es);
    GM_ASSERT(es != NULL);
    for (unsigned i = 0; i < a->n_entries; i++) {
      const struct simio_slot *e = &s->log[first - s->start_index + i];
      es[i] = entry_held(e->blob, e->term);
    }
    t->msg.append_entries.entries = es;
  }
  /* The core takes no snapshot here (simio_start), so it never sends one. */
  GM_ASSERT(msg->type != RAFT_INSTALL_SNAPSHOT);
  s->sent++;
  sched_in(s->sched, delay, on_deliver, t, 0);
}

/* Hands committed entries on, in order: commands to the gate, a
 * configuration back to the core (as libraft's raft_io layer does). */
static void apply_committed(struct simio *s) {
  while (s->up && s->applied < raft_commit_index(s->raft)) {
    raft_index index = s->applied + 1;
    GM_ASSERT(index >= s->start_index && index - s->start_index < s->n);
    struct blob *b = log_blob(s, (size_t)(index - s->start_index));
    if (b->type == RAFT_COMMAND) {
      if (s->ops.apply(s->ops.arg, index, b->bytes, b->len) != 0)
        return;
      s->applied = index;
    } else if (b->type == RAFT_CHANGE) {
      s->applied = index;
      struct raft_event ev = {.type = RAFT_CONFIGURATION};
      ev.configuration.index = index;
      struct raft_buffer buf = {.base = b->bytes, .len = b->len};
      int rc = raft_configuration_decode(&buf, &ev.configuration.conf);
      GM_ASSERT(rc == 0);
      rc = step(s, &ev);
      GM_ASSERT(rc == 0);
    } else {
      s->applied = index; /* a barrier */
    }
  }
}

/* One event through the core, then what its update asks, in the order
 * libraft's raft_io layer does it: term and vote, entries, messages, then
 * the committed entries. */
static int step(struct simio *s, struct raft_event *ev) {
  GM_ASSERT(!s->stepping);
  s->stepping = true;
  ev->time = (raft_time)s->sched->now;
  ev->capacity = 65535; /* reserved disk space (units of libraft): plenty */
  struct raft_update u;
  int rc = raft_step(s->raft, ev, &u);
  if (rc != 0) {
    s->stepping = false;
    return rc;
  }
  if (u.flags & (RAFT_UPDATE_CURRENT_TERM | RAFT_UPDATE_VOTED_FOR)) {
    s->term = raft_current_term(s->raft);
    s->voted_for = raft_voted_for(s->raft);
  }
  if (u.flags & RAFT_UPDATE_ENTRIES) {
    persist(s, u.entries.index, u.entries.batch, u.entries.n);
    /* The core's own entry (a new leader's barrier) is copied; the
     * batch goes back to it. */
    if (u.entries.batch[0].batch != HELD_BATCH)
      raft_free(u.entries.batch[0].batch);
  }
  GM_ASSERT(!(u.flags & RAFT_UPDATE_SNAPSHOT));
  if (u.flags & RAFT_UPDATE_MESSAGES)
    for (unsigned i = 0; i < u.messages.n; i++)
      send_one(s, &u.messages.batch[i]);
  s->stepping = false;
  int state = raft_state(s->raft);
  if (state != s->state) {
    int was = s->state;
    s->state = state;
    if (was == RAFT_LEADER && s->ops.lost_leadership != NULL)
      s->ops.lost_leadership(s->ops.arg);
  }
  if (u.flags & RAFT_UPDATE_COMMIT_INDEX)
    apply_committed(s);
  return 0;
}

static void on_tick(void *arg, uint64_t gen) {
  struct simio *s = arg;
  if (gen != s->gen || !s->up)
    return;
  sched_in(s->sched, s->tick_ms, on_tick, s, s->gen);
  struct raft_event ev = {.type = RAFT_TIMEOUT};
  int rc = step(s, &ev);
  GM_ASSERT(rc == 0);
}

/* ----------------------------------------------------------------- api */

int simio_bootstrap(struct simio *s, const struct raft_configuration *conf) {
  if (s->term != 0 || s->n != 0)
    return RAFT_CANTBOOTSTRAP;
  struct raft_buffer buf;
  int rc = raft_configuration_encode(conf, &buf);
  if (rc != 0)
    return rc;
  struct raft_entry e = {.term = 1, .type = RAFT_CHANGE, .buf = buf};
  s->start_index = 1;
  log_write(s, 1, &e, 1);
  raft_free(buf.base);
  s->term = 1;
  s->voted_for = 0;
  return 0;
}

int simio_start(struct simio *s, struct raft *r, unsigned tick_ms, const struct simio_ops *ops) {
  s->raft = r;
  s->ops = *ops;
  s->tick_ms = tick_ms;
  s->state = RAFT_FOLLOWER;
  if (s->start_index == 0)
    s->start_index = 1;
  /* What libraft's raft_io layer takes as applied on a start without a
   * snapshot: the first entry (the bootstrap configuration) when more
   * follow. The ledger skips what it applied before. */
  s->applied = s->n > 1 ? s->start_index : s->start_index - 1;
  s->up = true;
  struct raft_entry *es = NULL;
  if (s->n > 0) {
    es = malloc(s->n * sizeof *es);
    GM_ASSERT(es != NULL);
    for (size_t i = 0; i < s->n; i++)
      es[i] = entry_held(log_blob(s, i), s->log[i].term);
  }
  struct raft_event ev = {.type = RAFT_START};
  ev.start.term = s->term;
  ev.start.voted_for = s->voted_for;
  ev.start.metadata = NULL;
  ev.start.start_index = s->start_index;
  ev.start.entries = es;
  ev.start.n_entries = (unsigned)s->n;
  size_t n = s->n;
  int rc = step(s, &ev);
  for (size_t i = 0; i < n; i++)
    blob_release(blob_of(&es[i]));
  free(es);
  if (rc != 0) {
    s->up = false;
    return rc;
  }
  sched_in(s->sched, tick_ms, on_tick, s, s->gen);
  return 0;
}

int simio_submit(struct simio *s, const void *buf, size_t len) {
  if (!s->up || raft_state(s->raft) != RAFT_LEADER)
    return RAFT_NOTLEADER;
  struct blob *b = blob_new(s->net.disk, RAFT_COMMAND, buf, len);
  struct raft_entry e = entry_held(b, raft_current_term(s->raft));
  blob_release(b); /* the entry holds it now */
  struct raft_event ev = {.type = RAFT_SUBMIT};
  ev.submit.entries = &e;
  ev.submit.n = 1;
  int rc = step(s, &ev);
  blob_release(b);
  return rc;
}

void simio_init(struct simio *s, struct sched *sched, const struct simio_net *net,
                unsigned index, raft_id id) {
  memset(s, 0, sizeof *s);
  s->sched = sched;
  s->net = *net;
  s->index = index;
  s->id = id;
  snprintf(s->address, sizeof s->address, "g%u", (unsigned)id);
  s->disk_ms = 2;
}

void simio_crash(struct simio *s) {
  s->gen++;
  s->up = false;
  if (s->raft != NULL) {
    raft_close(s->raft, NULL); /* without a raft_io: at once */
    s->raft = NULL;
  }
}

void simio_free(struct simio *s) {
  while (s->free_writes != NULL) {
    struct simio_write *w = s->free_writes;
    s->free_writes = w->next_free;
    free(w->terms);
    free(w);
  }
  while (s->free_tx != NULL) {
    struct transmit *t = s->free_tx;
    s->free_tx = t->next_free;
    free(t);
  }
  log_free_from(s, 0);
  free(s->log);
  s->log = NULL;
  s->cap = 0;
}
