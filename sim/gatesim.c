/*
 * gatesim — replays a festival on many simulated gates and checks the
 * admission invariants.
 *
 *   gatesim --scenario FILE [--seed N] [--report FILE.html]
 *   gatesim --scenario FILE --seeds A..B        sweep, failing seeds listed
 *   gatesim --scenario FILE --bench             simulated time per wall second
 *   --fault skip-fsync | no-heard-check         plant a bug (the checker must fail)
 *   --one-core                                  no lane thread (the same run, slower)
 *   --dir DIR                                   the ledgers' directory (default /dev/shm)
 *   --small-pages                               the ledgers in 4 KiB pages (see huge_pages)
 *
 * Same scenario and seed: byte-identical output. Exit status 1 when an
 * invariant is violated (for a sweep: on any seed).
 */
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <time.h>
#include <unistd.h>

#include "lib/err.h"
#include "sim/sim.h"

/* The 50 gates' ledgers and Raft logs of the 12-hour festival take about
 * 9 GB, all of it touched for the first time during the run: in 4 KiB pages,
 * over two million page faults, each several microseconds on a virtual
 * machine (bench/partition.sh runs that festival in both page sizes). So the
 * simulator asks for 2 MiB pages: jemalloc advises them for its heap (this
 * string is its compiled-in configuration; MALLOC_CONF still overrides it),
 * and huge_pages() puts the ledgers on a tmpfs mounted with huge=always. A
 * sanitizer build keeps its own allocator and ignores the string. */
const char *malloc_conf = "thp:always,metadata_thp:always";

/* As root: a mount namespace of the process's own, where a fresh tmpfs with
 * huge=always covers /dev/shm. Nothing outside the process sees it, and it
 * goes with the process. It must run before any thread starts. False (the
 * ledgers stay on the system's /dev/shm, in 4 KiB pages) when not root or
 * when the kernel refuses any step. */
static bool huge_pages(void) {
  if (geteuid() != 0 || access("/dev/shm", W_OK) != 0 || unshare(CLONE_NEWNS) != 0)
    return false;
  return mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0 &&
         mount("gatesim", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "huge=always,mode=1777") == 0;
}

static bool huge_ledgers;

static void usage(void) {
  fprintf(stderr,
          "usage: gatesim --scenario FILE [--seed N | --seeds A..B] [--report FILE.html]\n"
          "               [--bench] [--fault skip-fsync|no-heard-check] [--one-core]\n"
          "               [--dir DIR] [--small-pages]\n");
  exit(2);
}

static double wall_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int one(const struct sim_cfg *cfg, uint64_t seed, const char *report, bool bench) {
  struct world *w = calloc(1, sizeof *w);
  double t0 = wall_s();
  int rc = world_run(w, cfg, seed);
  if (rc != 0) {
    if (rc == GM_ECONFIG)
      fprintf(stderr, "gatesim: cannot make the ledgers' directory in %s\n",
              cfg->dir ? cfg->dir : "/dev/shm or /tmp");
    else
      fprintf(stderr, "gatesim: setup failed: %s\n", gm_err_code(rc));
    world_free(w);
    free(w);
    return 2;
  }
  double t1 = wall_s();
  unsigned bad = sim_check(w, stdout);
  sim_summary(w, stdout);
  printf("invariants: %s\n", bad ? "VIOLATED" : "all hold");
  if (report && sim_report_html(w, report) != 0)
    fprintf(stderr, "gatesim: cannot write %s\n", report);
  double t2 = wall_s();
  /* What the gates' ledgers hold at the end (the checks settled them all):
   * the tickets' table and the file's pages in use, per gate. */
  uint64_t tk_pages = 0, file_bytes = 0;
  if (bench)
    for (unsigned i = 0; i < cfg->gates; i++) {
      struct ledger_rd *rd;
      uint64_t p = 0;
      if (ledger_rd_begin(w->g[i]->ledger, &rd) == 0) {
        if (ledger_ticket_pages(rd, &p) == 0)
          tk_pages += p;
        ledger_rd_end(rd);
      }
      file_bytes += ledger_size_bytes(w->g[i]->ledger);
    }
  uint64_t by_thread, by_settle;
  double lane_cpu, main_cpu;
  lane_counts(w->lane, &by_thread, &by_settle, &lane_cpu);
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  main_cpu = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
  double sim_s = (double)w->end_ms / 1000.0;
  uint64_t pre_used = w->pre_used;
  uint64_t reads[SIM_READERS], caught[SIM_READERS];
  memcpy(reads, w->caught_reads, sizeof reads);
  memcpy(caught, w->caught_entries, sizeof caught);
#if defined(__SANITIZE_ADDRESS__)
  world_free(w); /* so the leak check sees every allocation returned */
  free(w);
#else
  world_discard(w); /* the process exits next */
#endif
  if (bench) {
    /* The whole run: setup, the festival, the checks, the teardown. */
    double t3 = wall_s();
    printf("bench: %.1f s simulated in %.2f s wall (%.0f simulated s per wall s), "
           "%u gates, %u attendees\n",
           sim_s, t3 - t0, sim_s / (t3 - t0), cfg->gates, cfg->attendees);
    printf("bench: setup and festival %.2f s, checks %.2f s, teardown %.2f s; follower "
           "entries applied by the lane thread %" PRIu64 ", by reads %" PRIu64 "\n",
           t1 - t0, t2 - t1, t3 - t2, by_thread, by_settle);
    printf("bench: CPU of the simulation's thread %.2f s, of the lane thread %.2f s "
           "(the setup's and checks' helper threads not counted); signatures the lane "
           "thread checked ahead and a gate took: %" PRIu64 "\n",
           main_cpu, lane_cpu, pre_used);
    printf("bench: reads of a ledger during the festival, and the queued entries they applied "
           "first: verifies %" PRIu64 " (%" PRIu64 "), provisional prunes %" PRIu64 " (%" PRIu64
           "), a gate's own entries %" PRIu64 " (%" PRIu64 ")\n",
           reads[SIM_READ_VERIFY], caught[SIM_READ_VERIFY], reads[SIM_READ_PRUNE],
           caught[SIM_READ_PRUNE], reads[SIM_READ_OWN], caught[SIM_READ_OWN]);
    printf("bench: the ledgers in %s pages; at the end, per gate, the tickets' table in %.0f "
           "pages of 4 KiB and %.1f MiB of the ledger's file in use\n",
           huge_ledgers ? "2 MiB" : "4 KiB", (double)tk_pages / cfg->gates,
           (double)file_bytes / cfg->gates / 1048576.0);
  }
  return bad ? 1 : 0;
}

static int sweep(const struct sim_cfg *cfg, uint64_t a, uint64_t b, const char *scenario,
                 const char *fault) {
  uint64_t total = b - a + 1, failing = 0;
  uint64_t *bad = calloc(total, sizeof *bad);
  bool tty = isatty(2);
  for (uint64_t s = a; s <= b; s++) {
    struct world *w = calloc(1, sizeof *w);
    int rc = world_run(w, cfg, s);
    unsigned v = rc == 0 ? sim_check(w, NULL) : 1;
    if (v != 0)
      bad[failing++] = s;
    world_free(w);
    free(w);
    uint64_t done = s - a + 1;
    if (tty || done == total || done % 25 == 0) {
      int width = 40, fill = (int)(width * done / total);
      fprintf(stderr, "%s[%.*s%*s] %" PRIu64 "/%" PRIu64 " seeds, %" PRIu64 " failing%s",
              tty ? "\r" : "", fill, "########################################", width - fill, "",
              done, total, failing, tty ? "" : "\n");
    }
  }
  if (tty)
    fprintf(stderr, "\n");
  printf("sweep %s seeds %" PRIu64 "..%" PRIu64 ": %" PRIu64 " failing\n", cfg->name, a, b,
         failing);
  for (uint64_t i = 0; i < failing; i++)
    printf("  seed %" PRIu64 " fails; replay: gatesim --scenario %s --seed %" PRIu64 "%s%s\n",
           bad[i], scenario, bad[i], fault ? " --fault " : "", fault ? fault : "");
  free(bad);
  return failing ? 1 : 0;
}

int main(int argc, char **argv) {
  const char *scenario = NULL, *report = NULL, *fault = NULL, *dir = NULL;
  uint64_t seed = 1, a = 0, b = 0;
  bool range = false, bench = false, one_core = false, small_pages = false;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--scenario") && i + 1 < argc)
      scenario = argv[++i];
    else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
      seed = strtoull(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--seeds") && i + 1 < argc) {
      if (sscanf(argv[++i], "%" SCNu64 "..%" SCNu64, &a, &b) != 2 || b < a || a == 0)
        usage();
      range = true;
    } else if (!strcmp(argv[i], "--report") && i + 1 < argc)
      report = argv[++i];
    else if (!strcmp(argv[i], "--bench"))
      bench = true;
    else if (!strcmp(argv[i], "--fault") && i + 1 < argc)
      fault = argv[++i];
    else if (!strcmp(argv[i], "--one-core"))
      one_core = true;
    else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
      dir = argv[++i];
    else if (!strcmp(argv[i], "--small-pages"))
      small_pages = true;
    else
      usage();
  }
  if (scenario == NULL)
    usage();
  struct sim_cfg cfg;
  sim_cfg_default(&cfg);
  char err[256];
  if (sim_cfg_load(&cfg, scenario, err, sizeof err) != 0) {
    fprintf(stderr, "gatesim: %s\n", err);
    return 2;
  }
  cfg.one_core = one_core;
  cfg.dir = dir;
  huge_ledgers = dir == NULL && !small_pages && huge_pages();
  if (fault != NULL) {
    if (!strcmp(fault, "skip-fsync"))
      cfg.fault_skip_fsync = true;
    else if (!strcmp(fault, "no-heard-check"))
      cfg.fault_no_heard_check = true;
    else
      usage();
  }
  return range ? sweep(&cfg, a, b, scenario, fault) : one(&cfg, seed, report, bench);
}
