/* test_simio.c — a gate's Raft in the simulator: libraft's core driven
 * through raft_step over simio's log and network. Three gates elect a
 * leader, replicate and apply what it submits, in order and once; the logs
 * and the messages share one copy of each entry; a crashed gate restarts
 * on its persisted log and catches up; nothing is left held at the end. */
#include <criterion/criterion.h>
#include <string.h>

#include "sim/simio.h"

#define N 3

static struct simio io[N];
static struct raft *cores[N];
static char applied[N][16][16]; /* the commands each gate applied, by index */
static unsigned applies[N];      /* how many times apply ran on each gate */
static unsigned losses[N];

static struct simio *peer(void *arg, raft_id id) {
  (void)arg;
  return id >= 1 && id <= N ? &io[id - 1] : NULL;
}
static int cut = -1; /* a gate whose messages, both ways, are lost */
static int64_t delay(void *arg, unsigned from, unsigned to) {
  (void)arg;
  return (int)from == cut || (int)to == cut ? -1 : 3;
}
static int apply(void *arg, raft_index index, const void *buf, size_t len) {
  unsigned g = (unsigned)(intptr_t)arg;
  cr_assert_lt(index, 16);
  cr_assert_lt(len, 16);
  memcpy(applied[g][index], buf, len);
  applied[g][index][len] = 0;
  applies[g]++;
  return 0;
}
static void lost(void *arg) { losses[(intptr_t)arg]++; }

static void start(unsigned g, struct sched *sc) {
  cores[g] = calloc(1, sizeof *cores[g]);
  cr_assert_eq(raft_init(cores[g], NULL, NULL, io[g].id, io[g].address), 0);
  cores[g]->tracer = NULL;
  raft_set_election_timeout(cores[g], 1000);
  raft_set_heartbeat_timeout(cores[g], 100);
  raft_seed(cores[g], (unsigned)(g * 7919 + 13));
  struct simio_ops ops = {.arg = (void *)(intptr_t)g, .apply = apply, .lost_leadership = lost};
  cr_assert_eq(simio_start(&io[g], cores[g], 100, &ops), 0);
  (void)sc;
}

static void crash(unsigned g) {
  simio_crash(&io[g]);
  free(cores[g]);
  cores[g] = NULL;
}

static int leader(void) {
  int found = -1;
  for (int g = 0; g < N; g++)
    if (cores[g] != NULL && raft_state(cores[g]) == RAFT_LEADER) {
      cr_assert_eq(found, -1, "one leader");
      found = g;
    }
  return found;
}

/* A command this test submits: "c<k>". */
static void submit(int g, int k) {
  char cmd[16];
  snprintf(cmd, sizeof cmd, "c%d", k);
  cr_assert_eq(simio_submit(&io[g], cmd, strlen(cmd)), 0);
}

Test(simio, three_gates_elect_replicate_apply_and_share_each_entry) {
  struct sched sc;
  sched_init(&sc, 1);
  struct simio_disk *d = simio_disk_create();
  struct simio_net net = {.disk = d, .delay = delay, .peer = peer};
  struct raft_configuration conf;
  raft_configuration_init(&conf);
  for (unsigned g = 0; g < N; g++) {
    simio_init(&io[g], &sc, &net, g, g + 1);
    cr_assert_eq(raft_configuration_add(&conf, g + 1, io[g].address, RAFT_VOTER), 0);
  }
  for (unsigned g = 0; g < N; g++) {
    cr_assert_eq(simio_bootstrap(&io[g], &conf), 0);
    cr_assert_eq(simio_bootstrap(&io[g], &conf), RAFT_CANTBOOTSTRAP, "once");
  }
  raft_configuration_close(&conf);
  for (unsigned g = 0; g < N; g++)
    start(g, &sc);
  sched_run_until(&sc, 5000);
  int l = leader();
  cr_assert_geq(l, 0, "a leader within 5 s");
  int f = (l + 1) % N;
  cr_assert_eq(simio_submit(&io[f], "x", 1), RAFT_NOTLEADER);
  for (int k = 0; k < 3; k++)
    submit(l, k);
  sched_run_until(&sc, sc.now + 500);
  /* index 1: the configuration (committed from the start, so the leader
   * needs no barrier); then c0..c2 */
  for (unsigned g = 0; g < N; g++) {
    cr_assert_eq(io[g].n, 4, "gate %u holds the whole log", g);
    cr_assert_eq(io[g].applied, 4, "gate %u applied it", g);
    cr_assert_eq(applies[g], 3, "gate %u: each command once, nothing else", g);
    for (int k = 0; k < 3; k++) {
      char want[16];
      snprintf(want, sizeof want, "c%d", k);
      cr_assert_str_eq(applied[g][2 + k], want, "gate %u index %d", g, 2 + k);
    }
    for (size_t i = 1; i < 4; i++)
      cr_assert_eq(io[g].log[i].blob, io[l].log[i].blob,
                   "gate %u entry %zu: the leader's copy", g, i);
  }
  /* Each bootstrap wrote its configuration; each command was copied once. */
  cr_assert_eq(simio_disk_count(d), N + 3);

  /* A follower crashes: what is addressed to it is dropped; the others go on. */
  crash((unsigned)f);
  uint64_t dropped = io[l].dropped;
  submit(l, 3);
  sched_run_until(&sc, sc.now + 500);
  cr_assert_gt(io[l].dropped, dropped);
  int o = 3 - l - f; /* the third gate */
  cr_assert_eq(io[o].applied, 5, "a majority commits without it");
  cr_assert_eq(io[f].n, 4, "its persisted log survives");
  /* It restarts on that log, catches up, and applies again from index 2
   * (what libraft's raft_io layer does; a ledger skips what it has). */
  memset(applied[f], 0, sizeof applied[f]);
  unsigned before = applies[f];
  start((unsigned)f, &sc);
  submit(l, 4);
  sched_run_until(&sc, sc.now + 2000);
  cr_assert_eq(io[f].n, 6);
  cr_assert_eq(io[f].applied, 6);
  cr_assert_eq(applies[f] - before, 5, "c0..c4");
  cr_assert_str_eq(applied[f][2], "c0");
  cr_assert_str_eq(applied[f][5], "c3");
  cr_assert_str_eq(applied[f][6], "c4");

  /* The leader is cut off with an entry it cannot commit: it steps down
   * and is told, another gate leads, and after the heal the cut-off
   * gate's entry is replaced by the new leader's. */
  cut = l;
  submit(l, 5);
  cr_assert_eq(io[l].n, 7);
  sched_run_until(&sc, sc.now + 5000);
  cr_assert_eq(losses[l], 1, "the leader that stopped leading was told");
  cr_assert_neq(raft_state(cores[l]), RAFT_LEADER);
  int nl = leader();
  cr_assert_geq(nl, 0);
  cr_assert_neq(nl, l);
  cr_assert_eq(io[l].applied, 6, "c5 never committed");
  cut = -1;
  submit(nl, 6);
  sched_run_until(&sc, sc.now + 3000);
  for (int g = 0; g < N; g++) {
    cr_assert_eq(io[g].applied, io[nl].applied, "gate %d", g);
    cr_assert_str_eq(applied[g][io[g].applied], "c6", "gate %d", g);
    cr_assert_eq(io[g].log[io[g].n - 1].blob, io[nl].log[io[nl].n - 1].blob);
  }
  for (int g = 0; g < N; g++)
    for (raft_index i = 2; i <= io[g].applied; i++)
      cr_assert(strcmp(applied[g][i], "c5") != 0, "gate %d applied the lost entry", g);

  /* What is in flight is delivered to no one; then nothing is held. */
  for (int g = 0; g < N; g++)
    if (cores[g] != NULL)
      crash((unsigned)g);
  while (sched_pending(&sc) > 0)
    sched_run_until(&sc, sched_next_at(&sc));
  for (int g = 0; g < N; g++)
    simio_free(&io[g]);
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
