/* test_swim.c — SWIM membership over a simulated network: joins, failure
 * detection, indirect probes through a lossy link, refutation, partitions
 * and their healing, malformed bodies. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gossip/swim.h"
#include "lib/err.h"

#define N 8
#define QMAX 200000

struct pkt {
  int from, to;
  int64_t at;
  size_t n;
  uint8_t body[1400];
};

struct net {
  struct swim *s[N + 1];
  int idx[N + 1];
  bool down[N + 1];
  bool cut[N + 1][N + 1]; /* packets from i to j are lost */
  struct pkt *q;
  size_t nq;
  int64_t now;
  uint64_t rng;
  size_t delivered;
  uint64_t trace; /* FNV-1a of every datagram delivered, with its time */
};

static void trace_add(struct net *net, const struct pkt *p) {
  uint8_t head[12];
  memcpy(head, &net->now, 8);
  memcpy(head + 8, &p->to, 4);
  for (size_t i = 0; i < sizeof head + p->n; i++) {
    net->trace ^= i < sizeof head ? head[i] : p->body[i - sizeof head];
    net->trace *= 1099511628211ULL;
  }
}

static struct net *NET;

static int addr_to_node(const char *addr) {
  int i;
  return sscanf(addr, "10.0.0.%d:7946", &i) == 1 && i >= 1 && i <= N ? i : 0;
}

static void on_send(void *arg, const char *addr, const uint8_t *body, size_t n) {
  int from = *(int *)arg, to = addr_to_node(addr);
  cr_assert(n <= sizeof NET->q[0].body);
  if (to == 0 || NET->nq == QMAX)
    return;
  NET->rng = NET->rng * 6364136223846793005ULL + 1442695040888963407ULL;
  struct pkt *p = &NET->q[NET->nq++];
  p->from = from;
  p->to = to;
  p->at = NET->now + 1 + (int64_t)((NET->rng >> 33) % 10); /* 1-10 ms */
  p->n = n;
  memcpy(p->body, body, n);
}

static void net_init(struct net *net) {
  memset(net, 0, sizeof *net);
  NET = net;
  net->q = calloc(QMAX, sizeof *net->q);
  net->rng = 42;
  net->trace = 14695981039346656037ULL;
  struct swim_config c;
  swim_config_default(&c);
  c.push_pull_ms = 5000;
  for (int i = 1; i <= N; i++) {
    char a[32];
    snprintf(a, sizeof a, "10.0.0.%d:7946", i);
    net->idx[i] = i;
    struct swim_io io = {.arg = &net->idx[i], .send = on_send};
    net->s[i] = swim_create(&c, (uint64_t)i, a, (uint64_t)i * 7919, &io, 0);
    cr_assert_not_null(net->s[i]);
  }
}

static void net_free(struct net *net) {
  for (int i = 1; i <= N; i++)
    swim_destroy(net->s[i]);
  free(net->q);
}

/* Runs the cluster for ms milliseconds, 5 ms per step. Every gate ticks at
 * every step, or (due) only when swim_next_tick says it is due, which is how
 * the simulator drives it. */
static void advance(struct net *net, int64_t ms, bool due) {
  int64_t end = net->now + ms;
  while (net->now < end) {
    net->now += 5;
    size_t keep = 0;
    for (size_t k = 0; k < net->nq; k++) {
      struct pkt *p = &net->q[k];
      if (p->at > net->now) {
        net->q[keep++] = *p;
        continue;
      }
      if (net->down[p->to] || net->down[p->from] || net->cut[p->from][p->to])
        continue;
      cr_assert_eq(swim_recv(net->s[p->to], p->body, p->n, net->now), 0);
      net->delivered++;
      trace_add(net, p);
    }
    net->nq = keep;
    for (int i = 1; i <= N; i++) {
      if (net->down[i] || (due && net->now < swim_next_tick(net->s[i])))
        continue;
      swim_tick(net->s[i], net->now);
      if (!due)
        continue;
      int64_t next = swim_next_tick(net->s[i]);
      cr_assert_gt(next, net->now, "a tick leaves nothing due");
      cr_assert_leq(next, net->now + 1000, "the next probe is at most an interval away");
    }
  }
}

static void run(struct net *net, int64_t ms) { advance(net, ms, false); }

static int state_at(struct net *net, int viewer, int id) {
  const struct swim_member *m = swim_find(net->s[viewer], (uint64_t)id);
  return m ? m->state : -1;
}

static void join_all(struct net *net) {
  for (int i = 2; i <= N; i++)
    swim_join(net->s[i], "10.0.0.1:7946", net->now);
  run(net, 8000);
  for (int i = 1; i <= N; i++) {
    cr_assert_eq(swim_count(net->s[i], SWIM_ALIVE), N, "gate %d sees %zu alive", i,
                 swim_count(net->s[i], SWIM_ALIVE));
  }
}

Test(swim, everyone_learns_everyone_through_one_seed) {
  struct net net;
  net_init(&net);
  join_all(&net);
  /* and stays so: no false suspicion on a healthy network */
  run(&net, 30000);
  for (int i = 1; i <= N; i++)
    for (int j = 1; j <= N; j++)
      cr_assert_eq(state_at(&net, i, j), SWIM_ALIVE, "%d sees %d as %d", i, j, state_at(&net, i, j));
  net_free(&net);
}

Test(swim, a_stopped_gate_is_suspected_then_dead_everywhere) {
  struct net net;
  net_init(&net);
  join_all(&net);
  net.down[5] = true;
  /* probe interval 1 s over 7 others, then a 4 s suspicion: well within 20 s */
  run(&net, 20000);
  for (int i = 1; i <= N; i++)
    if (i != 5)
      cr_assert_eq(state_at(&net, i, 5), SWIM_DEAD, "%d sees 5 as %d", i, state_at(&net, i, 5));
  /* it comes back: it learns it was declared dead and refutes */
  net.down[5] = false;
  run(&net, 15000);
  for (int i = 1; i <= N; i++)
    cr_assert_eq(state_at(&net, i, 5), SWIM_ALIVE, "%d sees 5 as %d", i, state_at(&net, i, 5));
  cr_assert_gt(swim_find(net.s[5], 5)->inc, 0);
  net_free(&net);
}

Test(swim, indirect_probes_keep_a_gate_behind_one_bad_link_alive) {
  struct net net;
  net_init(&net);
  join_all(&net);
  net.cut[2][3] = net.cut[3][2] = true; /* 2 and 3 cannot talk directly */
  run(&net, 60000);
  cr_assert_eq(state_at(&net, 2, 3), SWIM_ALIVE);
  cr_assert_eq(state_at(&net, 3, 2), SWIM_ALIVE);
  for (int i = 1; i <= N; i++)
    cr_assert_eq(swim_count(net.s[i], SWIM_DEAD), 0);
  net_free(&net);
}

Test(swim, a_gate_suspected_by_a_rumour_refutes_it) {
  struct net net;
  net_init(&net);
  join_all(&net);
  uint64_t inc0 = swim_find(net.s[2], 2)->inc;
  /* gate 4 hears "2 is suspect" at 2's current incarnation */
  uint8_t b[64];
  size_t n = 0;
  b[n++] = SWIM_SYNC_REPLY;
  memset(b + n, 0, 8), b[n] = 6, n += 8; /* from gate 6 */
  memset(b + n, 0, 4), n += 4;           /* seq */
  b[n++] = 1;                            /* one update */
  memset(b + n, 0, 8), b[n] = 2, n += 8; /* id 2 */
  memset(b + n, 0, 8), b[n] = (uint8_t)inc0, n += 8;
  b[n++] = SWIM_SUSPECT;
  const char *a = "10.0.0.2:7946";
  b[n++] = (uint8_t)strlen(a);
  memcpy(b + n, a, strlen(a)), n += strlen(a);
  b[n++] = 0; /* no meta */
  cr_assert_eq(swim_recv(net.s[4], b, n, net.now), 0);
  cr_assert_eq(state_at(&net, 4, 2), SWIM_SUSPECT);
  run(&net, 3000); /* less than the suspicion timeout */
  cr_assert_gt(swim_find(net.s[2], 2)->inc, inc0, "2 raised its incarnation");
  for (int i = 1; i <= N; i++)
    cr_assert_eq(state_at(&net, i, 2), SWIM_ALIVE, "%d sees 2 as %d", i, state_at(&net, i, 2));
  net_free(&net);
}

Test(swim, two_sides_of_a_partition_find_each_other_after_it_heals) {
  struct net net;
  net_init(&net);
  join_all(&net);
  for (int i = 1; i <= N; i++)
    for (int j = 1; j <= N; j++)
      net.cut[i][j] = (i <= 4) != (j <= 4);
  run(&net, 30000);
  for (int i = 1; i <= N; i++)
    cr_assert_eq(swim_count(net.s[i], SWIM_ALIVE), 4, "gate %d sees %zu alive during the split", i,
                 swim_count(net.s[i], SWIM_ALIVE));
  memset(net.cut, 0, sizeof net.cut);
  run(&net, 30000); /* push-pull every 5 s here, to a random member, dead ones included */
  for (int i = 1; i <= N; i++)
    cr_assert_eq(swim_count(net.s[i], SWIM_ALIVE), N, "gate %d sees %zu alive after heal", i,
                 swim_count(net.s[i], SWIM_ALIVE));
  net_free(&net);
}

Test(swim, malformed_bodies_change_nothing) {
  struct net net;
  net_init(&net);
  join_all(&net);
  const struct swim_member *m;
  size_t before = swim_members(net.s[1], &m);
  uint8_t junk[600];
  for (size_t i = 0; i < sizeof junk; i++)
    junk[i] = (uint8_t)(i * 131 + 7);
  for (size_t len = 0; len < sizeof junk; len++) {
    int rc = swim_recv(net.s[1], junk, len, net.now);
    cr_assert(rc == 0 || rc == GM_EDECODE);
  }
  /* an update cut in the middle: refused whole */
  uint8_t b[64];
  size_t n = 0;
  b[n++] = SWIM_SYNC;
  memset(b + n, 0, 8), b[n] = 9, n += 8;
  memset(b + n, 0, 4), n += 4;
  b[n++] = 1;
  memset(b + n, 0, 8), b[n] = 77, n += 8;
  cr_assert_eq(swim_recv(net.s[1], b, n, net.now), GM_EDECODE);
  cr_assert_null(swim_find(net.s[1], 77));
  cr_assert_eq(swim_members(net.s[1], &m), before);
  net_free(&net);
}

/* A stopped gate found dead and back alive, ticking every step or only
 * when due; returns the trace of the datagrams delivered. */
static uint64_t stop_and_return(bool due) {
  struct net net;
  net_init(&net);
  for (int i = 2; i <= N; i++)
    swim_join(net.s[i], "10.0.0.1:7946", net.now);
  advance(&net, 8000, due);
  net.down[5] = true;
  advance(&net, 20000, due);
  for (int i = 1; i <= N; i++)
    if (i != 5)
      cr_assert_eq(state_at(&net, i, 5), SWIM_DEAD, "%d sees 5 as %d", i, state_at(&net, i, 5));
  net.down[5] = false;
  advance(&net, 15000, due);
  for (int i = 1; i <= N; i++)
    cr_assert_eq(state_at(&net, i, 5), SWIM_ALIVE, "%d sees 5 as %d", i, state_at(&net, i, 5));
  cr_assert_gt(net.delivered, 0);
  uint64_t t = net.trace;
  net_free(&net);
  return t;
}

/* A tick before swim_next_tick changes nothing: skipping them gives the
 * same run, datagram for datagram. */
Test(swim, ticking_only_when_due_gives_the_same_run) {
  uint64_t every = stop_and_return(false), due = stop_and_return(true);
  cr_assert_eq(every, due, "every step: trace %016llx, when due: %016llx",
               (unsigned long long)every, (unsigned long long)due);
}
