/*
 * simio.c — the in-memory raft_io of the simulator (see simio.h).
 */
#include "sim/simio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/assert.h"

enum { P_APPEND = 1, P_SEND, P_SNAP_PUT, P_SNAP_GET, P_CLOSE };

/* A request whose callback has not run: a slot of the simio's table, named
 * by its index and the slot's generation (a stale name finds nothing). */
struct simio_pending {
  uint32_t gen;
  uint32_t next_free;
  bool live;
  int type;
  void *req;
  void *cb;
  raft_index index; /* P_APPEND: index of the first entry */
  const struct raft_snapshot *snap;
  unsigned trailing;
};

/* A message on the wire; it also completes its send (pend) when it
 * arrives, so that a send costs one event. */
struct transmit {
  struct transmit *next_free;
  struct simio *from;
  raft_id to;
  uint64_t to_gen;
  uint64_t pend;
  struct raft_message msg;
};

#define PEND_NONE UINT32_MAX

/* ---------------------------------------------------------------- heap */

/* libraft allocates through this heap (raft_heap_set): every allocation
 * starts 16 bytes after a header, which tells a plain allocation from an
 * entry held by the disk. An entry is handed to every gate's libraft as its
 * own batch, counted, and libraft's raft_free of it drops one holder. */
#define HEAP_PLAIN 0x706c6e31u
#define HEAP_BLOB 0x626c6f62u
#define HEAP_HDR 16

struct heap_hdr {
  uint32_t magic;
  uint32_t back; /* from the start of the underlying allocation to the user's */
  uint64_t unused;
};

static struct heap_hdr *hdr_of(void *p) {
  struct heap_hdr *h = (struct heap_hdr *)((uint8_t *)p - HEAP_HDR);
  GM_ASSERT(h->magic == HEAP_PLAIN || h->magic == HEAP_BLOB);
  return h;
}

static void *heap_wrap(void *base, uint32_t back, uint32_t magic) {
  if (base == NULL)
    return NULL;
  uint8_t *p = (uint8_t *)base + back;
  struct heap_hdr *h = (struct heap_hdr *)(p - HEAP_HDR);
  h->magic = magic;
  h->back = back;
  return p;
}

static void *heap_malloc(void *data, size_t size) {
  (void)data;
  return heap_wrap(malloc(HEAP_HDR + size), HEAP_HDR, HEAP_PLAIN);
}

static void *heap_calloc(void *data, size_t nmemb, size_t size) {
  (void)data;
  if (size != 0 && nmemb > (SIZE_MAX - HEAP_HDR) / size)
    return NULL;
  return heap_wrap(calloc(1, HEAP_HDR + nmemb * size), HEAP_HDR, HEAP_PLAIN);
}

static void *heap_realloc(void *data, void *p, size_t size) {
  if (p == NULL)
    return heap_malloc(data, size);
  struct heap_hdr *h = hdr_of(p);
  GM_ASSERT(h->magic == HEAP_PLAIN && h->back == HEAP_HDR);
  return heap_wrap(realloc((uint8_t *)p - HEAP_HDR, HEAP_HDR + size), HEAP_HDR, HEAP_PLAIN);
}

static void *heap_aligned(void *data, size_t alignment, size_t size) {
  (void)data;
  if (alignment < HEAP_HDR)
    alignment = HEAP_HDR;
  size_t total = (alignment + size + alignment - 1) / alignment * alignment;
  return heap_wrap(aligned_alloc(alignment, total), (uint32_t)alignment, HEAP_PLAIN);
}

struct blob;
static void blob_release(struct blob *b);

static void heap_free(void *data, void *p) {
  (void)data;
  if (p == NULL)
    return;
  struct heap_hdr *h = hdr_of(p);
  if (h->magic == HEAP_BLOB) {
    blob_release(p);
    return;
  }
  h->magic = 0;
  free((uint8_t *)p - h->back);
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

/* An entry's bytes, held once; refs counts its holders: the persisted logs
 * and every libraft that was handed it. */
struct blob {
  struct blob *next;
  struct simio_disk *disk;
  uint64_t hash;
  size_t refs, len;
  uint8_t bytes[];
};

struct simio_disk {
  struct blob **slot; /* chains by hash */
  size_t cap, n;      /* cap a power of two */
};

struct simio_disk *simio_disk_create(void) {
  simio_heap_install();
  struct simio_disk *d = calloc(1, sizeof *d);
  GM_ASSERT(d != NULL);
  d->cap = 1024;
  d->slot = calloc(d->cap, sizeof *d->slot);
  GM_ASSERT(d->slot != NULL);
  return d;
}

static void blob_free(struct blob *b) {
  struct heap_hdr *h = hdr_of(b);
  h->magic = 0;
  free((uint8_t *)b - h->back);
}

void simio_disk_free(struct simio_disk *d) {
  if (d == NULL)
    return;
  for (size_t i = 0; i < d->cap; i++)
    for (struct blob *b = d->slot[i], *next; b != NULL; b = next) {
      next = b->next;
      blob_free(b);
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
  struct blob *b = heap_wrap(malloc(HEAP_HDR + sizeof *b + (n ? n : 1)), HEAP_HDR, HEAP_BLOB);
  GM_ASSERT(b != NULL);
  b->disk = d;
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

/* One holder fewer; the last one frees it. */
static void blob_release(struct blob *b) {
  GM_ASSERT(b->refs > 0);
  if (--b->refs > 0)
    return;
  struct simio_disk *d = b->disk;
  for (struct blob **pp = &d->slot[b->hash & (d->cap - 1)]; *pp != NULL; pp = &(*pp)->next)
    if (*pp == b) {
      *pp = b->next;
      break;
    }
  d->n--;
  blob_free(b);
}

/* The blob an entry's bytes are, if its batch is one (an entry that came
 * from this disk); NULL otherwise. */
static struct blob *blob_of(const struct raft_entry *e) {
  if (e->batch == NULL || hdr_of(e->batch)->magic != HEAP_BLOB)
    return NULL;
  struct blob *b = e->batch;
  return b->bytes == e->buf.base && b->len == e->buf.len ? b : NULL;
}

/* dst holds src's bytes as the disk's entry: its batch is the blob. An
 * entry that is a blob already is only counted again; one that has the
 * same index and term as the one this log persisted (what a leader sends)
 * is compared with it rather than hashed. */
static void entry_keep_at(struct simio *s, struct raft_entry *dst, const struct raft_entry *src,
                          raft_index index) {
  struct blob *b = blob_of(src);
  if (b == NULL && index >= s->start_index && index - s->start_index < s->n) {
    const struct raft_entry *mine = &s->entries[index - s->start_index];
    if (mine->term == src->term && mine->buf.len == src->buf.len &&
        memcmp(mine->buf.base, src->buf.base, src->buf.len) == 0)
      b = mine->batch;
  }
  if (b != NULL)
    b->refs++;
  else
    b = disk_get(s->net.disk, src->buf.base, src->buf.len);
  dst->term = src->term;
  dst->type = src->type;
  dst->buf.base = b->bytes;
  dst->buf.len = src->buf.len;
  dst->batch = b;
}

static void entry_keep(struct simio *s, struct raft_entry *dst, const struct raft_entry *src) {
  entry_keep_at(s, dst, src, 0);
}

static void entry_drop(struct raft_entry *e) { blob_release(e->batch); }

/* ------------------------------------------------------------- helpers */

/* n entries for libraft to own (received or loaded ones), the first at
 * `index` (0: unknown): each is the disk's entry, its own batch, counted. */
static struct raft_entry *entries_share(struct simio *s, const struct raft_entry *src, size_t n,
                                        raft_index index) {
  if (n == 0)
    return NULL;
  struct raft_entry *dst = raft_calloc(n, sizeof *dst);
  GM_ASSERT(dst != NULL);
  for (size_t i = 0; i < n; i++)
    entry_keep_at(s, &dst[i], &src[i], index ? index + i : 0);
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
    entry_drop(&s->entries[i]);
  s->n = keep;
}

/* A new pending request; returns its name. The pointer in *out is valid
 * until the next pending_add. */
static uint64_t pending_add(struct simio *s, int type, void *req, void *cb,
                            struct simio_pending **out) {
  if (s->free_pend == PEND_NONE) {
    if (s->n_pend == s->cap_pend) {
      s->cap_pend = s->cap_pend ? s->cap_pend * 2 : 64;
      s->pend = realloc(s->pend, s->cap_pend * sizeof *s->pend);
      GM_ASSERT(s->pend != NULL);
    }
    s->pend[s->n_pend] = (struct simio_pending){.gen = 0, .next_free = PEND_NONE};
    s->free_pend = s->n_pend++;
  }
  uint32_t slot = s->free_pend;
  struct simio_pending *p = &s->pend[slot];
  s->free_pend = p->next_free;
  *p = (struct simio_pending){
      .gen = p->gen + 1, .next_free = PEND_NONE, .live = true, .type = type, .req = req, .cb = cb};
  s->live_pend++;
  if (out)
    *out = p;
  return (uint64_t)p->gen << 32 | slot;
}

/* Takes the pending request `name` out of the table into *p; false if it
 * completed already (or was cancelled). */
static bool pending_take(struct simio *s, uint64_t name, struct simio_pending *p) {
  uint32_t slot = (uint32_t)name;
  if (slot >= s->n_pend || !s->pend[slot].live || s->pend[slot].gen != (uint32_t)(name >> 32))
    return false;
  *p = s->pend[slot];
  s->pend[slot].live = false;
  s->pend[slot].next_free = s->free_pend;
  s->free_pend = slot;
  s->live_pend--;
  return true;
}

static void message_release(struct raft_message *m) {
  if (m->type == RAFT_APPEND_ENTRIES && m->append_entries.n_entries > 0) {
    for (unsigned i = 0; i < m->append_entries.n_entries; i++)
      entry_drop(&m->append_entries.entries[i]);
    raft_free(m->append_entries.entries);
  } else if (m->type == RAFT_INSTALL_SNAPSHOT) {
    raft_configuration_close(&m->install_snapshot.conf);
    raft_free(m->install_snapshot.data.base);
  }
}

/* ------------------------------------------------------------ completion */

/* Runs the callback of p (taken out of the table already). */
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
          entry_drop(&s->entries[i]);
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
}

static void on_pending(void *arg, uint64_t name) {
  struct simio *s = arg;
  struct simio_pending p;
  if (pending_take(s, name, &p))
    complete(s, &p, 0);
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
  /* What libraft still waits for finishes now, cancelled, in the order
   * of the table's slots. */
  while (s->live_pend > 0)
    for (uint32_t i = 0; i < s->n_pend; i++) {
      struct simio_pending p;
      if (s->pend[i].live && pending_take(s, (uint64_t)s->pend[i].gen << 32 | i, &p))
        complete(s, &p, RAFT_CANCELED);
    }
  sched_in(s->sched, 0, on_pending, s, pending_add(s, P_CLOSE, NULL, (void *)cb, NULL));
}

static int m_load(struct raft_io *io, raft_term *term, raft_id *voted_for,
                  struct raft_snapshot **snapshot, raft_index *start_index,
                  struct raft_entry *entries[], size_t *n_entries) {
  struct simio *s = io->impl;
  *term = s->term;
  *voted_for = s->voted_for;
  *snapshot = s->snapshot ? snapshot_copy(s->snapshot) : NULL;
  *start_index = s->start_index;
  *entries = entries_share(s, s->entries, s->n, 0);
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
  struct simio *from = t->from;
  /* The send completes as its message arrives (unless a close of the
   * sender cancelled it). */
  struct simio_pending p;
  if (pending_take(from, t->pend, &p))
    complete(from, &p, 0);
  struct simio *to = from->net.peer(from->net.arg, t->to);
  if (to == NULL || !to->up || to->gen != t->to_gen || to->recv_cb == NULL) {
    from->dropped++;
    message_release(&t->msg);
  } else {
    t->msg.server_id = from->id;
    t->msg.server_address = from->address;
    to->delivered++;
    if (t->msg.type == RAFT_APPEND_ENTRIES)
      to->leader_contact_ms = to->sched->now;
    /* libraft takes the entries (or snapshot data) it is handed. */
    to->recv_cb(&to->io, &t->msg);
  }
  t->next_free = from->free_tx;
  from->free_tx = t;
}

static int m_send(struct raft_io *io, struct raft_io_send *req, const struct raft_message *msg,
                  raft_io_send_cb cb) {
  struct simio *s = io->impl;
  uint64_t pend = pending_add(s, P_SEND, req, (void *)cb, NULL);
  struct simio *to = s->net.peer(s->net.arg, msg->server_id);
  int64_t delay = to ? s->net.delay(s->net.arg, s->index, to->index) : -1;
  if (delay < 0) {
    s->dropped++;
    sched_in(s->sched, 0, on_pending, s, pend);
    return 0;
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
  t->pend = pend;
  t->msg = *msg;
  if (msg->type == RAFT_APPEND_ENTRIES) {
    t->msg.append_entries.entries =
        entries_share(s, msg->append_entries.entries, msg->append_entries.n_entries,
                      msg->append_entries.prev_log_index + 1);
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
  uint64_t name = pending_add(s, P_APPEND, req, (void *)cb, NULL);
  sched_in(s->sched, s->disk_ms, on_pending, s, name);
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
  struct simio_pending *p;
  uint64_t name = pending_add(s, P_SNAP_PUT, req, (void *)cb, &p);
  p->snap = snapshot;
  p->trailing = trailing;
  sched_in(s->sched, s->disk_ms, on_pending, s, name);
  return 0;
}

static int m_snapshot_get(struct raft_io *io, struct raft_io_snapshot_get *req,
                          raft_io_snapshot_get_cb cb) {
  struct simio *s = io->impl;
  uint64_t name = pending_add(s, P_SNAP_GET, req, (void *)cb, NULL);
  sched_in(s->sched, s->disk_ms, on_pending, s, name);
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
  s->free_pend = PEND_NONE;
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
  free(s->pend);
  s->pend = NULL;
  s->n_pend = s->cap_pend = s->live_pend = 0;
  s->free_pend = PEND_NONE;
  while (s->free_tx != NULL) {
    struct transmit *t = s->free_tx;
    s->free_tx = t->next_free;
    free(t);
  }
  log_free_from(s, 0);
  raft_free(s->entries);
  s->entries = NULL;
  s->cap = 0;
  snapshot_free(s->snapshot);
  s->snapshot = NULL;
}
