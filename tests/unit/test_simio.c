/* test_simio.c — the simulator's in-memory raft_io: the gates' persisted
 * logs share one copy of each entry, and each log still loads whole. */
#include <criterion/criterion.h>
#include <string.h>

#include "sim/simio.h"

static struct raft_entry entry(const char *text) {
  struct raft_entry e = {.term = 2, .type = RAFT_COMMAND};
  e.buf.base = (void *)text;
  e.buf.len = strlen(text);
  return e;
}

static void load_and_check(struct simio *s, const char *const *want, size_t n) {
  raft_term term;
  raft_id vote;
  struct raft_snapshot *snap;
  raft_index start;
  struct raft_entry *got;
  size_t got_n;
  cr_assert_eq(s->io.load(&s->io, &term, &vote, &snap, &start, &got, &got_n), 0);
  cr_assert_null(snap);
  cr_assert_eq(start, 1);
  cr_assert_eq(got_n, n);
  for (size_t i = 0; i < n; i++) {
    cr_assert_eq(got[i].buf.len, strlen(want[i]));
    cr_assert(memcmp(got[i].buf.base, want[i], got[i].buf.len) == 0, "entry %zu", i);
  }
  /* each entry is its own batch (libraft frees every distinct one) */
  for (size_t i = 0; i < got_n; i++)
    raft_free(got[i].batch);
  raft_free(got);
}

Test(simio, logs_share_their_entries_and_load_whole) {
  struct sched sc;
  sched_init(&sc, 1);
  struct simio_disk *d = simio_disk_create();
  struct simio_net net = {.disk = d};
  struct simio a, b;
  simio_init(&a, &sc, &net, 0, 1);
  simio_init(&b, &sc, &net, 1, 2);
  const char *text[] = {"alpha", "bravo", "charlie", "delta"};
  struct raft_entry es[4];
  for (int i = 0; i < 4; i++)
    es[i] = entry(text[i]);
  struct raft_io_append ra, rb;
  cr_assert_eq(a.io.append(&a.io, &ra, es, 4, NULL), 0);
  /* b gets the same entries from a copy, as a follower would */
  char copy[4][16];
  struct raft_entry cs[4];
  for (int i = 0; i < 4; i++) {
    strcpy(copy[i], text[i]);
    cs[i] = entry(copy[i]);
  }
  cr_assert_eq(b.io.append(&b.io, &rb, cs, 3, NULL), 0);
  cr_assert_eq(simio_disk_count(d), 4, "one copy of each entry for both logs");
  /* b's third entry is overwritten by another */
  cr_assert_eq(b.io.truncate(&b.io, 3), 0);
  struct raft_entry other = entry("echo");
  struct raft_io_append rb2;
  cr_assert_eq(b.io.append(&b.io, &rb2, &other, 1, NULL), 0);
  cr_assert_eq(simio_disk_count(d), 5, "a still holds charlie");
  load_and_check(&a, text, 4);
  const char *bt[] = {"alpha", "bravo", "echo"};
  load_and_check(&b, bt, 3);
  cr_assert_eq(a.io.truncate(&a.io, 3), 0);
  cr_assert_eq(simio_disk_count(d), 3, "charlie and delta were a's alone");
  simio_free(&a);
  simio_free(&b);
  cr_assert_eq(simio_disk_count(d), 0);
  simio_disk_free(d);
  sched_free(&sc);
}

/* The network of the send test: b receives; every message takes 3 ms. */
static struct simio *peer_b;
static struct raft_message got_msg[4];
static int got_msgs, send_status[4], sends_done;

static struct simio *peer(void *arg, raft_id id) {
  (void)arg;
  return id == 2 ? peer_b : NULL;
}
static int64_t delay(void *arg, unsigned from, unsigned to) {
  (void)arg, (void)from, (void)to;
  return 3;
}
static void recv_cb(struct raft_io *io, struct raft_message *m) {
  (void)io;
  got_msg[got_msgs++] = *m;
}
static void tick_cb(struct raft_io *io) { (void)io; }
static void send_cb(struct raft_io_send *req, int status) {
  send_status[(intptr_t)req->data] = status;
  sends_done++;
}
static void close_cb(struct raft_io *io) { (void)io; }

Test(simio, a_sent_entry_arrives_as_the_disks_copy_and_its_send_completes_once) {
  struct sched sc;
  sched_init(&sc, 1);
  struct simio_disk *d = simio_disk_create();
  struct simio_net net = {.disk = d, .delay = delay, .peer = peer};
  struct simio a, b;
  simio_init(&a, &sc, &net, 0, 1);
  simio_init(&b, &sc, &net, 1, 2);
  peer_b = &b;
  cr_assert_eq(a.io.start(&a.io, 1000, tick_cb, recv_cb), 0);
  cr_assert_eq(b.io.start(&b.io, 1000, tick_cb, recv_cb), 0);
  const char *text[] = {"alpha", "bravo"};
  struct raft_entry es[2] = {entry(text[0]), entry(text[1])};
  struct raft_io_append ra;
  cr_assert_eq(a.io.append(&a.io, &ra, es, 2, NULL), 0);
  cr_assert_eq(simio_disk_count(d), 2);
  /* the leader sends its own copies (libraft's buffers, not the disk's) */
  char c0[8], c1[8];
  strcpy(c0, text[0]);
  strcpy(c1, text[1]);
  struct raft_entry mine[2] = {entry(c0), entry(c1)};
  struct raft_message m = {.type = RAFT_APPEND_ENTRIES, .server_id = 2};
  m.append_entries.term = 2;
  m.append_entries.prev_log_index = 0;
  m.append_entries.entries = mine;
  m.append_entries.n_entries = 2;
  struct raft_io_send s0 = {.data = (void *)0}, s1 = {.data = (void *)1};
  cr_assert_eq(a.io.send(&a.io, &s0, &m, send_cb), 0);
  cr_assert_eq(a.io.send(&a.io, &s1, &m, send_cb), 0);
  cr_assert_eq(sends_done, 0, "a send completes later, never within the call");
  sched_run_until(&sc, 3);
  cr_assert_eq(got_msgs, 2);
  cr_assert_eq(sends_done, 2);
  cr_assert_eq(send_status[0], 0);
  cr_assert_eq(send_status[1], 0);
  cr_assert_eq(simio_disk_count(d), 2, "no new copy for the receiver");
  struct raft_entry *r = got_msg[0].append_entries.entries;
  cr_assert_eq(r[0].buf.base, a.entries[0].buf.base, "the receiver holds the disk's bytes");
  cr_assert_eq(r[1].buf.base, a.entries[1].buf.base);
  cr_assert_neq(r[0].batch, r[1].batch, "each entry its own batch");
  /* the receiver persists what it got: still one copy each */
  struct raft_io_append rb;
  cr_assert_eq(b.io.append(&b.io, &rb, r, 2, NULL), 0);
  cr_assert_eq(simio_disk_count(d), 2);
  /* libraft frees what it was handed (both messages), entry by entry */
  for (int k = 0; k < 2; k++) {
    r = got_msg[k].append_entries.entries;
    raft_free(r[0].batch);
    raft_free(r[1].batch);
    raft_free(r);
  }
  /* a send cancelled by a close completes once, cancelled */
  struct raft_io_send s2 = {.data = (void *)2};
  cr_assert_eq(a.io.send(&a.io, &s2, &m, send_cb), 0);
  a.io.close(&a.io, close_cb);
  cr_assert_eq(sends_done, 3);
  cr_assert_eq(send_status[2], RAFT_CANCELED);
  sched_run_until(&sc, 100);
  cr_assert_eq(sends_done, 3, "the delivery does not complete it again");
  cr_assert_eq(got_msgs, 3);
  r = got_msg[2].append_entries.entries;
  cr_assert_eq(r[0].buf.base, a.entries[0].buf.base);
  raft_free(r[0].batch);
  raft_free(r[1].batch);
  raft_free(r);
  /* the first message's entries are still held by b's log and a's */
  cr_assert_eq(simio_disk_count(d), 2);
  simio_free(&a);
  cr_assert_eq(simio_disk_count(d), 2, "b holds them");
  simio_free(&b);
  cr_assert_eq(simio_disk_count(d), 0, "nothing leaks a holder");
  simio_disk_free(d);
  sched_free(&sc);
}

/* The scheduler: events put aside before a run (sched_later) and events in
 * its heap (sched_at) run in one order, by time and then by when each was
 * scheduled, as if all had gone to the heap. */
static uint64_t ran[64];
static size_t n_ran;
static void record(void *arg, uint64_t tag) {
  struct sched *s = arg;
  ran[n_ran++] = tag;
  if (tag == 7) /* an event scheduled while running, at the same time */
    sched_at(s, s->now, record, s, 99);
}

Test(sched, later_and_heap_events_run_in_time_then_schedule_order) {
  struct sched s;
  sched_init(&s, 1);
  static const int64_t at[] = {30, 10, 20, 10, 30, 0, 20, 10, 5, 30};
  for (uint64_t i = 0; i < 10; i++) {
    if (i % 3 == 0)
      sched_at(&s, at[i], record, &s, i);
    else
      sched_later(&s, at[i], record, &s, i);
  }
  cr_assert_eq(sched_pending(&s), 10);
  cr_assert_eq(sched_next_at(&s), 0);
  cr_assert_eq(sched_run_until(&s, 15), 6, "the event added at 10 runs at 10");
  cr_assert_eq(sched_run_until(&s, 100), 5);
  cr_assert_eq(sched_pending(&s), 0);
  static const uint64_t want[] = {5, 8, 1, 3, 7, 99, 2, 6, 0, 4, 9};
  cr_assert_eq(n_ran, 11);
  for (size_t i = 0; i < n_ran; i++)
    cr_assert_eq(ran[i], want[i], "event %zu: %llu", i, (unsigned long long)ran[i]);
  sched_free(&s);
}
