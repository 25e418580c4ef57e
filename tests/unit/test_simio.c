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
  if (got_n > 0) {
    raft_free(got[0].batch);
    raft_free(got);
  }
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
