/*
 * test_journal.c — the command journal: append and replay in order, replay
 * after a seq, a torn tail dropped and zeroed, corruption elsewhere refused,
 * rotation and dropping covered files, and exact-once apply by applied seq.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"
#include "lib/err.h"
#include "node/journal.h"

static char *dir;

static void setup(void) { dir = th_tmpdir(); }
static void teardown(void) { th_rmdir(dir); }
TestSuite(journal, .init = setup, .fini = teardown);

struct seen {
  uint64_t seqs[64];
  char first[64][32];
  size_t n;
};

static int record(void *arg, uint64_t seq, const struct gm_slice *cmds, size_t n) {
  struct seen *s = arg;
  s->seqs[s->n] = seq;
  snprintf(s->first[s->n], 32, "%.*s", (int)cmds[0].len, (const char *)cmds[0].ptr);
  s->n++;
  cr_assert_eq(n, 2);
  return 0;
}

static void append(struct journal *j, const char *a, uint64_t want) {
  struct gm_slice c[2] = {{(const uint8_t *)a, strlen(a)}, {(const uint8_t *)"x", 1}};
  uint64_t seq;
  cr_assert_eq(journal_append(j, c, 2, &seq), 0);
  cr_assert_eq(seq, want);
}

static void reopen(struct journal *j, uint64_t after, struct seen *s) {
  memset(s, 0, sizeof *s);
  cr_assert_eq(journal_open(j, dir), 0);
  cr_assert_eq(journal_replay(j, after, record, s), 0);
}

Test(journal, append_then_replay_in_order) {
  struct journal j;
  struct seen s;
  reopen(&j, 0, &s);
  cr_assert_eq(s.n, 0);
  append(&j, "one", 1);
  append(&j, "two", 2);
  append(&j, "three", 3);
  journal_close(&j);
  reopen(&j, 0, &s);
  cr_assert_eq(s.n, 3);
  cr_assert_str_eq(s.first[2], "three");
  append(&j, "four", 4); /* appending continues after the replayed tail */
  journal_close(&j);
  reopen(&j, 2, &s);
  cr_assert_eq(s.n, 2, "only records after seq 2");
  cr_assert_eq(s.seqs[0], 3);
  cr_assert_str_eq(s.first[1], "four");
  journal_close(&j);
}

static char *only_file(void) {
  static char path[600];
  char cmd[700];
  snprintf(cmd, sizeof cmd, "ls %s/journal/*.log | tail -1", dir);
  FILE *p = popen(cmd, "r");
  cr_assert(fgets(path, sizeof path, p) != NULL);
  pclose(p);
  path[strcspn(path, "\n")] = 0;
  return path;
}

Test(journal, torn_tail_is_dropped_and_appends_resume) {
  struct journal j;
  struct seen s;
  reopen(&j, 0, &s);
  append(&j, "one", 1);
  append(&j, "two", 2);
  uint64_t end_of_two = j.end;
  append(&j, "three", 3);
  journal_close(&j);
  /* A crash in the middle of writing record 3: its last bytes never hit the disk. */
  int fd = open(only_file(), O_WRONLY);
  uint8_t zeros[8] = {0};
  cr_assert_eq(pwrite(fd, zeros, sizeof zeros, (off_t)(end_of_two + 30)), 8);
  close(fd);
  reopen(&j, 0, &s);
  cr_assert_eq(s.n, 2, "the torn record is not replayed");
  append(&j, "three-again", 3);
  journal_close(&j);
  reopen(&j, 0, &s);
  cr_assert_eq(s.n, 3);
  cr_assert_str_eq(s.first[2], "three-again");
  journal_close(&j);
}

Test(journal, corruption_before_the_tail_is_an_error) {
  struct journal j;
  struct seen s;
  reopen(&j, 0, &s);
  append(&j, "one", 1);
  append(&j, "two", 2);
  journal_close(&j);
  /* Rotation makes file 1 a closed file; damage inside it is corruption. */
  reopen(&j, 0, &s);
  cr_assert_eq(journal_rotate(&j), 0);
  append(&j, "three", 3);
  journal_close(&j);
  char first[600], cmd[700];
  snprintf(cmd, sizeof cmd, "ls %s/journal/*.log | head -1", dir);
  FILE *p = popen(cmd, "r");
  cr_assert(fgets(first, sizeof first, p) != NULL);
  pclose(p);
  first[strcspn(first, "\n")] = 0;
  int fd = open(first, O_WRONLY);
  cr_assert_eq(pwrite(fd, "Z", 1, 25), 1);
  close(fd);
  memset(&s, 0, sizeof s);
  cr_assert_eq(journal_open(&j, dir), 0);
  cr_assert_eq(journal_replay(&j, 0, record, &s), GM_ECORRUPT);
  journal_close(&j);
}

Test(journal, rotate_and_drop_covered_files) {
  struct journal j;
  struct seen s;
  reopen(&j, 0, &s);
  append(&j, "a", 1);
  append(&j, "b", 2);
  cr_assert_eq(journal_rotate(&j), 0);
  append(&j, "c", 3);
  cr_assert_eq(journal_rotate(&j), 0);
  append(&j, "d", 4);
  /* A snapshot covering seq 3 lets the first two files go. */
  cr_assert_eq(journal_drop_through(dir, 3, j.file_start), 0);
  journal_close(&j);
  reopen(&j, 3, &s);
  cr_assert_eq(s.n, 1);
  cr_assert_eq(s.seqs[0], 4);
  journal_close(&j);
  /* A ledger that is behind the dropped files cannot be brought up to date. */
  memset(&s, 0, sizeof s);
  cr_assert_eq(journal_open(&j, dir), 0);
  cr_assert_eq(journal_replay(&j, 1, record, &s), GM_ECORRUPT);
  journal_close(&j);
}

Test(journal, ledger_applies_each_seq_once) {
  struct ledger *l = th_ledger(dir);
  cr_assert_eq(th_event(l, "e1", 0), 0);
  struct ledger_cmd c;
  struct ledger_ticket_spec sp = {.id = "t1", .event_id = "e1", .holder = "h"};
  th_cmd(&c, LEDGER_OP_TICKET_CREATE, "", 10);
  c.u.tickets.v = &sp;
  c.u.tickets.n = 1;
  struct mpk_w w;
  mpk_w_init(&w);
  ledger_cmd_encode(&c, &w);
  struct gm_slice s = {(const uint8_t *)w.sb.data, w.sb.size};
  struct ledger_result r;
  cr_assert_eq(ledger_apply_batch_at(l, 5, &s, 1, &r), 0);
  cr_assert_eq(r.rc, 0);
  cr_assert_eq(ledger_applied_seq(l), 5);
  cr_assert_eq(ledger_apply_batch_at(l, 5, &s, 1, &r), GM_EINVAL, "seq 5 again");
  cr_assert_eq(ledger_apply_batch_at(l, 4, &s, 1, &r), GM_EINVAL, "an older seq");
  cr_assert_eq(ledger_applied_seq(l), 5);
  mpk_w_free(&w);
  ledger_close(l);
}
