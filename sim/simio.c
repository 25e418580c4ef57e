/*
 * simio.c — the in-memory raft_io of the simulator (see simio.h).
 */
#include "sim/simio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/assert.h"

enum { P_APPEND = 1, P_SEND, P_SNAP_PUT, P_SNAP_GET, P_CLOSE };

struct simio_pending {
  struct simio_pending *next;
  uint64_t id;
  int type;
  void *req;
  void *cb;
  raft_index index; /* P_APPEND: index of the first entry */
  const struct raft_snapshot *snap;
  unsigned trailing;
};

struct transmit {
  struct simio *from;
  raft_id to;
  uint64_t to_gen;
  struct raft_message msg;
};

static uint64_t next_pending_id = 1;

/* ---------------------------------------------------------------- disk */

struct blob {
  struct blob *next;
  uint64_t hash;
  size_t refs, len;
  uint8_t bytes[];
};

struct simio_disk {
  struct blob **slot; /* chains by hash */
  size_t cap, n;      /* cap a power of two */
};

struct simio_disk *simio_disk_create(void) {
  struct simio_disk *d = calloc(1, sizeof *d);
  GM_ASSERT(d != NULL);
  d->cap = 1024;
  d->slot = calloc(d->cap, sizeof *d->slot);
  GM_ASSERT(d->slot != NULL);
  return d;
}

void simio_disk_free(struct simio_disk *d) {
  if (d == NULL)
    return;
  for (size_t i = 0; i < d->cap; i++)
    for (struct blob *b = d->slot[i], *next; b != NULL; b = next) {
      next = b->next;
      free(b);
    }
  free(d->slot);
  free(d);
}

size_t simio_disk_count(const struct simio_disk *d) { return d->n; }

/* FNV-1a over 8-byte words, then the tail. */
static uint64_t bytes_hash(const uint8_t *p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    h = (h ^ w) * 0x100000001b3ULL;
  }
  for (; i < n; i++)
    h = (h ^ p[i]) * 0x100000001b3ULL;
  return h ^ (h >> 29);
}

static void disk_grow(struct simio_disk *d) {
  size_t cap = d->cap * 2;
  struct blob **slot = calloc(cap, sizeof *slot);
  GM_ASSERT(slot != NULL);
  for (size_t i = 0; i < d->cap; i++)
    for (struct blob *b = d->slot[i], *next; b != NULL; b = next) {
      next = b->next;
      b->next = slot[b->hash & (cap - 1)];
      slot[b->hash & (cap - 1)] = b;
    }
  free(d->slot);
  d->slot = slot;
  d->cap = cap;
}

/* The held copy of p[0..n), one more reference to it. */
static struct blob *disk_get(struct simio_disk *d, const void *p, size_t n) {
  uint64_t h = bytes_hash(p, n);
  for (struct blob *b = d->slot[h & (d->cap - 1)]; b != NULL; b = b->next)
    if (b->hash == h && b->len == n && memcmp(b->bytes, p, n) == 0) {
      b->refs++;
      return b;
    }
  if (d->n >= d->cap)
    disk_grow(d);
  struct blob *b = malloc(sizeof *b + (n ? n : 1));
  GM_ASSERT(b != NULL);
  b->hash = h;
  b->refs = 1;
  b->len = n;
  memcpy(b->bytes, p, n);
  struct blob **head = &d->slot[h & (d->cap - 1)];
  b->next = *head;
  *head = b;
  d->n++;
  return b;
}

static void disk_put(struct simio_disk *d, struct blob *b) {
  if (--b->refs > 0)
    return;
  for (struct blob **pp = &d->slot[b->hash & (d->cap - 1)]; *pp != NULL; pp = &(*pp)->next)
    if (*pp == b) {
      *pp = b->next;
      break;
    }
  d->n--;
  free(b);
}

/* A persisted entry: its bytes are the disk's (its batch names the blob). */
static void entry_keep(struct simio *s, struct raft_entry *dst, const struct raft_entry *src) {
  struct blob *b = disk_get(s->net.disk, src->buf.base, src->buf.len);
  dst->term = src->term;
  dst->type = src->type;
  dst->buf.base = b->bytes;
  dst->buf.len = src->buf.len;
  dst->batch = b;
}

static void entry_drop(struct simio *s, struct raft_entry *e) {
  disk_put(s->net.disk, e->batch);
}

/* ------------------------------------------------------------- helpers */

/* n entries copied into one batch allocation (what libraft expects of
 * received and loaded entries). */
static struct raft_entry *entries_copy(const struct raft_entry *src, size_t n) {
  if (n == 0)
    return NULL;
  size_t bytes = 0;
  for (size_t i = 0; i < n; i++)
    bytes += src[i].buf.len;
  struct raft_entry *dst = raft_calloc(n, sizeof *dst);
  uint8_t *batch = raft_malloc(bytes ? bytes : 1);
  GM_ASSERT(dst != NULL && batch != NULL);
  size_t at = 0;
  for (size_t i = 0; i < n; i++) {
    dst[i].term = src[i].term;
    dst[i].type = src[i].type;
    dst[i].buf.len = src[i].buf.len;
    dst[i].buf.base = batch + at;
    dst[i].batch = batch;
    memcpy(batch + at, src[i].buf.base, src[i].buf.len);
    at += src[i].buf.len;
  }
  return dst;
}

static void conf_copy(const struct raft_configuration *src, struct raft_configuration *dst) {
  raft_configuration_init(dst);
  for (unsigned i = 0; i < src->n; i++) {
    int rc = raft_configuration_add(dst, src->servers[i].id, src->servers[i].address,
                                    src->servers[i].role);
    GM_ASSERT(rc == 0);
  }
}

static struct raft_snapshot *snapshot_copy(const struct raft_snapshot *s) {
  struct raft_snapshot *d = raft_calloc(1, sizeof *d);
  GM_ASSERT(d != NULL);
  d->index = s->index;
  d->term = s->term;
  d->configuration_index = s->configuration_index;
  conf_copy(&s->configuration, &d->configuration);
  size_t len = 0;
  for (unsigned i = 0; i < s->n_bufs; i++)
    len += s->bufs[i].len;
  d->bufs = raft_calloc(1, sizeof *d->bufs);
  d->bufs[0].base = raft_malloc(len ? len : 1);
  d->bufs[0].len = len;
  size_t at = 0;
  for (unsigned i = 0; i < s->n_bufs; i++) {
    memcpy((uint8_t *)d->bufs[0].base + at, s->bufs[i].base, s->bufs[i].len);
    at += s->bufs[i].len;
  }
  d->n_bufs = 1;
  return d;
}

static void snapshot_free(struct raft_snapshot *s) {
  if (s == NULL)
    return;
  raft_configuration_close(&s->configuration);
  for (unsigned i = 0; i < s->n_bufs; i++)
    raft_free(s->bufs[i].base);
  raft_free(s->bufs);
  raft_free(s);
}

static void log_free_from(struct simio *s, size_t keep) {
  for (size_t i = keep; i < s->n; i++)
    entry_drop(s, &s->entries[i]);
  s->n = keep;
}

static struct simio_pending *pending_add(struct simio *s, int type, void *req, void *cb) {
  struct simio_pending *p = calloc(1, sizeof *p);
  GM_ASSERT(p != NULL);
  p->id = next_pending_id++;
  p->type = type;
  p->req = req;
  p->cb = cb;
  p->next = s->pending;
  s->pending = p;
  return p;
}

static struct simio_pending *pending_take(struct simio *s, uint64_t id) {
  for (struct simio_pending **pp = &s->pending; *pp; pp = &(*pp)->next)
    if ((*pp)->id == id) {
      struct simio_pending *p = *pp;
      *pp = p->next;
      return p;
    }
  return NULL;
}

static void message_release(struct raft_message *m) {
  if (m->type == RAFT_APPEND_ENTRIES && m->append_entries.n_entries > 0) {
    raft_free(m->append_entries.entries[0].batch);
    raft_free(m->append_entries.entries);
  } else if (m->type == RAFT_INSTALL_SNAPSHOT) {
    raft_configuration_close(&m->install_snapshot.conf);
    raft_free(m->install_snapshot.data.base);
  }
}

/* ------------------------------------------------------------ completion */

static void complete(struct simio *s, struct simio_pending *p, int status) {
  switch (p->type) {
  case P_APPEND: {
    struct raft_io_append *req = p->req;
    raft_io_append_cb cb = (raft_io_append_cb)p->cb;
    if (cb)
      cb(req, status);
    break;
  }
  case P_SEND: {
    struct raft_io_send *req = p->req;
    raft_io_send_cb cb = (raft_io_send_cb)p->cb;
    if (cb)
      cb(req, status);
    break;
  }
  case P_SNAP_PUT: {
    struct raft_io_snapshot_put *req = p->req;
    if (status == 0) {
      struct raft_snapshot *copy = snapshot_copy(p->snap);
      snapshot_free(s->snapshot);
      s->snapshot = copy;
      /* Keep `trailing` entries before the snapshot's index. */
      raft_index first_kept = copy->index >= p->trailing ? copy->index - p->trailing + 1 : 1;
      if (p->trailing == 0) {
        log_free_from(s, 0);
        s->start_index = copy->index + 1;
      } else if (first_kept > s->start_index) {
        size_t drop = (size_t)(first_kept - s->start_index);
        if (drop > s->n)
          drop = s->n;
        for (size_t i = 0; i < drop; i++)
          entry_drop(s, &s->entries[i]);
        memmove(s->entries, s->entries + drop, (s->n - drop) * sizeof *s->entries);
        s->n -= drop;
        s->start_index += drop;
      }
    }
    raft_io_snapshot_put_cb cb = (raft_io_snapshot_put_cb)p->cb;
    if (cb)
      cb(req, status);
    break;
  }
  case P_SNAP_GET: {
    struct raft_io_snapshot_get *req = p->req;
    raft_io_snapshot_get_cb cb = (raft_io_snapshot_get_cb)p->cb;
    struct raft_snapshot *copy = status == 0 && s->snapshot ? snapshot_copy(s->snapshot) : NULL;
    cb(req, copy, copy ? 0 : (status ? status : RAFT_NOTFOUND));
    break;
  }
  case P_CLOSE: {
    raft_io_close_cb cb = (raft_io_close_cb)p->cb;
    if (cb)
      cb(&s->io);
    break;
  }
  }
  free(p);
}

static void on_pending(void *arg, uint64_t id) {
  struct simio *s = arg;
  struct simio_pending *p = pending_take(s, id);
  if (p != NULL)
    complete(s, p, 0);
}

static void on_tick(void *arg, uint64_t gen) {
  struct simio *s = arg;
  if (gen != s->gen || !s->up || s->tick_cb == NULL)
    return;
  sched_in(s->sched, s->tick_ms, on_tick, s, s->gen);
  s->tick_cb(&s->io);
}

/* ------------------------------------------------------------- methods */

static int m_init(struct raft_io *io, raft_id id, const char *address) {
  (void)io, (void)id, (void)address;
  return 0;
}

static void m_close(struct raft_io *io, raft_io_close_cb cb) {
  struct simio *s = io->impl;
  s->up = false;
  s->tick_cb = NULL;
  s->recv_cb = NULL;
  /* What libraft still waits for finishes now, cancelled. */
  while (s->pending != NULL) {
    struct simio_pending *p = s->pending;
    s->pending = p->next;
    complete(s, p, RAFT_CANCELED);
  }
  struct simio_pending *p = pending_add(s, P_CLOSE, NULL, (void *)cb);
  sched_in(s->sched, 0, on_pending, s, p->id);
}

static int m_load(struct raft_io *io, raft_term *term, raft_id *voted_for,
                  struct raft_snapshot **snapshot, raft_index *start_index,
                  struct raft_entry *entries[], size_t *n_entries) {
  struct simio *s = io->impl;
  *term = s->term;
  *voted_for = s->voted_for;
  *snapshot = s->snapshot ? snapshot_copy(s->snapshot) : NULL;
  *start_index = s->start_index;
  *entries = entries_copy(s->entries, s->n);
  *n_entries = s->n;
  return 0;
}

static int m_start(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick,
                   raft_io_recv_cb recv) {
  struct simio *s = io->impl;
  s->tick_ms = msecs;
  s->tick_cb = tick;
  s->recv_cb = recv;
  s->up = true;
  sched_in(s->sched, msecs, on_tick, s, s->gen);
  return 0;
}

static int m_bootstrap(struct raft_io *io, const struct raft_configuration *conf) {
  struct simio *s = io->impl;
  if (s->term != 0 || s->n != 0)
    return RAFT_CANTBOOTSTRAP;
  struct raft_buffer buf;
  int rc = raft_configuration_encode(conf, &buf);
  if (rc != 0)
    return rc;
  s->entries = raft_calloc(1, sizeof *s->entries);
  s->cap = 1;
  struct raft_entry e = {.term = 1, .type = RAFT_CHANGE, .buf = buf};
  entry_keep(s, &s->entries[0], &e);
  raft_free(buf.base);
  s->n = 1;
  s->start_index = 1;
  s->term = 1;
  s->voted_for = 0;
  return 0;
}

static int m_recover(struct raft_io *io, const struct raft_configuration *conf) {
  (void)io, (void)conf;
  return RAFT_IOERR;
}

static int m_set_term(struct raft_io *io, raft_term term) {
  struct simio *s = io->impl;
  s->term = term;
  s->voted_for = 0;
  return 0;
}

static int m_set_vote(struct raft_io *io, raft_id id) {
  ((struct simio *)io->impl)->voted_for = id;
  return 0;
}

static void on_deliver(void *arg, uint64_t unused) {
  (void)unused;
  struct transmit *t = arg;
  struct simio *to = t->from->net.peer(t->from->net.arg, t->to);
  if (to == NULL || !to->up || to->gen != t->to_gen || to->recv_cb == NULL) {
    t->from->dropped++;
    message_release(&t->msg);
    free(t);
    return;
  }
  t->msg.server_id = t->from->id;
  t->msg.server_address = t->from->address;
  to->delivered++;
  if (t->msg.type == RAFT_APPEND_ENTRIES)
    to->leader_contact_ms = to->sched->now;
  /* libraft takes the entries (or snapshot data) it is handed. */
  to->recv_cb(&to->io, &t->msg);
  free(t);
}

static int m_send(struct raft_io *io, struct raft_io_send *req, const struct raft_message *msg,
                  raft_io_send_cb cb) {
  struct simio *s = io->impl;
  struct simio_pending *p = pending_add(s, P_SEND, req, (void *)cb);
  sched_in(s->sched, 0, on_pending, s, p->id);
  struct simio *to = s->net.peer(s->net.arg, msg->server_id);
  int64_t delay = to ? s->net.delay(s->net.arg, s->index, to->index) : -1;
  if (delay < 0) {
    s->dropped++;
    return 0;
  }
  struct transmit *t = calloc(1, sizeof *t);
  GM_ASSERT(t != NULL);
  t->from = s;
  t->to = msg->server_id;
  t->to_gen = to->gen;
  t->msg = *msg;
  if (msg->type == RAFT_APPEND_ENTRIES) {
    t->msg.append_entries.entries =
        entries_copy(msg->append_entries.entries, msg->append_entries.n_entries);
  } else if (msg->type == RAFT_INSTALL_SNAPSHOT) {
    conf_copy(&msg->install_snapshot.conf, &t->msg.install_snapshot.conf);
    size_t len = msg->install_snapshot.data.len;
    t->msg.install_snapshot.data.base = raft_malloc(len ? len : 1);
    memcpy(t->msg.install_snapshot.data.base, msg->install_snapshot.data.base, len);
  }
  s->sent++;
  sched_in(s->sched, delay, on_deliver, t, 0);
  return 0;
}

static void on_append(void *arg, uint64_t id) {
  struct simio *s = arg;
  struct simio_pending *p = pending_take(s, id);
  if (p != NULL)
    complete(s, p, 0);
}

static int m_append(struct raft_io *io, struct raft_io_append *req,
                    const struct raft_entry entries[], unsigned n, raft_io_append_cb cb) {
  struct simio *s = io->impl;
  /* Written now (the buffers are only borrowed until the callback); a crash
   * before the callback is a write that may or may not have reached the
   * disk, which Raft tolerates either way. */
  if (s->n + n > s->cap) {
    size_t cap = s->cap ? s->cap : 64;
    while (cap < s->n + n)
      cap *= 2;
    s->entries = raft_realloc(s->entries, cap * sizeof *s->entries);
    GM_ASSERT(s->entries != NULL);
    s->cap = cap;
  }
  struct raft_entry *v = s->entries;
  for (unsigned i = 0; i < n; i++)
    entry_keep(s, &v[s->n + i], &entries[i]);
  if (s->n == 0 && s->start_index == 0)
    s->start_index = 1;
  s->n += n;
  struct simio_pending *p = pending_add(s, P_APPEND, req, (void *)cb);
  sched_in(s->sched, s->disk_ms, on_append, s, p->id);
  return 0;
}

static int m_truncate(struct raft_io *io, raft_index index) {
  struct simio *s = io->impl;
  if (index < s->start_index)
    log_free_from(s, 0);
  else if (index - s->start_index < s->n)
    log_free_from(s, (size_t)(index - s->start_index));
  return 0;
}

static int m_snapshot_put(struct raft_io *io, unsigned trailing, struct raft_io_snapshot_put *req,
                          const struct raft_snapshot *snapshot, raft_io_snapshot_put_cb cb) {
  struct simio *s = io->impl;
  struct simio_pending *p = pending_add(s, P_SNAP_PUT, req, (void *)cb);
  p->snap = snapshot;
  p->trailing = trailing;
  sched_in(s->sched, s->disk_ms, on_pending, s, p->id);
  return 0;
}

static int m_snapshot_get(struct raft_io *io, struct raft_io_snapshot_get *req,
                          raft_io_snapshot_get_cb cb) {
  struct simio *s = io->impl;
  struct simio_pending *p = pending_add(s, P_SNAP_GET, req, (void *)cb);
  sched_in(s->sched, s->disk_ms, on_pending, s, p->id);
  return 0;
}

static raft_time m_time(struct raft_io *io) {
  return (raft_time)((struct simio *)io->impl)->sched->now;
}

static int m_random(struct raft_io *io, int min, int max) {
  struct simio *s = io->impl;
  if (max <= min)
    return min;
  return min + (int)sim_below(&s->sched->rng, (uint64_t)(max - min));
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
  s->io.version = 2;
  s->io.capacity = 65535; /* reserved disk space (units of libraft): plenty */
  s->io.impl = s;
  s->io.init = m_init;
  s->io.close = m_close;
  s->io.load = m_load;
  s->io.start = m_start;
  s->io.bootstrap = m_bootstrap;
  s->io.recover = m_recover;
  s->io.set_term = m_set_term;
  s->io.set_vote = m_set_vote;
  s->io.send = m_send;
  s->io.append = m_append;
  s->io.truncate = m_truncate;
  s->io.snapshot_put = m_snapshot_put;
  s->io.snapshot_get = m_snapshot_get;
  s->io.time = m_time;
  s->io.random = m_random;
}

void simio_crash(struct simio *s) {
  s->gen++;
  s->up = false;
}

void simio_free(struct simio *s) {
  while (s->pending != NULL) {
    struct simio_pending *p = s->pending;
    s->pending = p->next;
    free(p);
  }
  log_free_from(s, 0);
  raft_free(s->entries);
  s->entries = NULL;
  s->cap = 0;
  snapshot_free(s->snapshot);
  s->snapshot = NULL;
}
