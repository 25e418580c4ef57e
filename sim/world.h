/*
 * world.h — the simulated festival: gates running the node core (ledger,
 * methods, admission policy, gossip, libraft) on one simulated clock and
 * network, a scenario driving attendees, partitions and crashes, and the
 * record of every verdict for the invariant checker.
 */
#ifndef GM_SIM_WORLD_H
#define GM_SIM_WORLD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "gossip/admit.h"
#include "gossip/prov.h"
#include "gossip/swim.h"
#include "ledger/ledger.h"
#include "methods/method.h"
#include "methods/pass.h"
#include "raft/fsm.h"
#include "sim/lane.h"
#include "sim/sched.h"
#include "sim/simio.h"

#define SIM_GATES_MAX 256
#define SIM_PHASES_MAX 64
#define SIM_BASE_MS 1800000000000LL /* simulated wall clock at t = 0 */

enum sim_phase_kind { PH_PARTITION = 1, PH_HEAL, PH_CRASH };

/* What reads a gate's ledger during the run (lane.h: each read applies
 * what the gate has queued first). */
enum sim_reader { SIM_READ_VERIFY, SIM_READ_PRUNE, SIM_READ_OWN, SIM_READERS };

struct sim_phase {
  int kind;
  int64_t at_ms;
  int comp[SIM_GATES_MAX]; /* PH_PARTITION: component of each gate */
  unsigned gate;           /* PH_CRASH */
  int64_t down_ms;
};

struct sim_cfg {
  char name[64];
  unsigned gates, voters;
  uint32_t attendees;
  int64_t duration_ms;
  int64_t open_ms, close_ms;   /* arrivals window */
  int64_t latency_ms, jitter_ms;
  double loss, dup;
  int policy;                  /* LEDGER_POLICY_* of the event */
  uint32_t budget;
  int64_t wait_ms, request_timeout_ms;
  uint32_t heartbeat_ms, election_ms;
  double fraud;                /* attendees whose screenshot is shown at another gate too */
  double transfer;             /* tickets transferred before the festival */
  double pass;                 /* attendees showing a dynamic pass (method
                                  pass) rather than a QR code */
  double resale;               /* tickets transferred during it, before the new
                                  holder arrives (the old holder then tries the
                                  old code) */
  struct sim_phase phases[SIM_PHASES_MAX];
  unsigned n_phases;
  int64_t settle_ms;           /* after the last phase and arrival: time to converge */
  /* faults planted on purpose, to prove the checker finds them */
  bool fault_skip_fsync;
  bool fault_no_heard_check;
  /* apply every entry on the simulation's thread (no lane thread): the same
   * run, on one core */
  bool one_core;
  /* where the gates' ledgers go (a fresh directory inside it); NULL:
   * /dev/shm, or /tmp without it */
  const char *dir;
};

int sim_cfg_load(struct sim_cfg *c, const char *path, char *err, size_t errlen);
void sim_cfg_default(struct sim_cfg *c);

/* One verdict given to an attendee (what the checker and the report read). */
struct verdict {
  uint32_t attendee;
  unsigned gate;
  int64_t at_ms, decided_ms;
  bool admitted, provisional, fraud;
  int reason;
  uint64_t origin, seq, epoch; /* provisional ones */
  int comp;                    /* the gate's component when it decided */
  bool pass;                   /* shown a dynamic pass, not a QR code */
  char ticket[16];
};

/* An attendee's dynamic pass, as the organizer's generate issued it. */
struct sim_pass {
  char id[PASS_ID_HEX + 1];
  uint8_t secret[PASS_SECRET_LEN];
};

struct own_rec {
  uint64_t seq;
  uint8_t *cmd;
  size_t len;
  bool durable, settled, inflight;
  int64_t proposed_ms;
};

struct req;

struct gate {
  struct world *w;
  unsigned idx;
  uint64_t id;
  char name[16];
  bool up;
  uint64_t gen;
  char dir[160];
  struct ledger *ledger;
  struct simio io;
  struct raft *raft;
  struct gm_fsm fsm; /* applies into the ledger (now, or on the lane: lane.h) */
  struct swim *swim;
  struct prov *prov;
  struct admit_budget budget;
  uint64_t epoch;
  bool partition_mode;
  struct own_rec *own;
  size_t n_own, cap_own;
  uint64_t next_seq;
  struct req *reqs; /* waiting for a commit */
  /* leader side: commands to propose, each with where to send its result */
  struct qitem *queue;
  size_t n_queue, cap_queue;
  struct pbatch *batches;
  uint64_t next_token;
  uint64_t next_req;
  int64_t last_prune_ms, last_digest_ms, last_backlog_ms;
  /* what the last prune that read the ledger saw: the applied index and
   * how many records the store kept */
  uint64_t prune_applied;
  size_t prune_kept;
  /* the gate's timer: when it runs next (tick_tag tells stale events) */
  int64_t tick_at;
  uint64_t tick_tag;
  bool tick_armed;
  size_t digest_turn;
  uint64_t admitted, provisional, incidents_seen;
  int64_t down_until;
};

/* An arrival's payload, with its issuer signature as the lane thread
 * checked it ahead, when it had nothing to apply (world.c, method_sigs). */
struct precheck {
  const char *payload;
  _Atomic uint8_t state; /* 0 not yet, 1 good, 2 bad, 3 nothing to check */
  uint32_t len;          /* of the signed message */
  uint8_t sig[64];
  uint8_t hash[32]; /* BLAKE2b of the signed message */
};

struct world {
  struct sim_cfg cfg;
  uint64_t seed;
  struct sched s;
  struct gate *g[SIM_GATES_MAX];
  struct lane *lane;
  struct simio_disk *disk; /* the gates' persisted entries */
  int comp[SIM_GATES_MAX];
  char root[128];
  uint8_t seal_key[32];
  struct method_config mcfg;
  uint32_t kid;
  uint8_t sk[64];
  /* attendees: the QR payload each holds, and a stale one (from before a
   * transfer) that a fraudster shows */
  char **payload;
  char **stale;
  uint8_t *fate;          /* kept, moved before, resold during, or a pass */
  struct sim_pass *passes; /* by attendee, for those with a pass */
  /* transfers during the festival (resale): proposed by an organizer at a
   * gate, retried until a leader answers; how they ended */
  uint64_t resales, resales_done, resales_refused;
  /* verdicts */
  struct verdict *v;
  size_t n_v, cap_v;
  /* commands of every admission, for the replay check */
  uint8_t **cmds;
  size_t *cmd_len;
  size_t n_cmds, cap_cmds;
  /* budget check: provisional admissions per (gate, epoch) */
  uint64_t messages, gossip_msgs, dropped;
  int64_t converged_ms; /* when every live gate had the same ledger after the last heal */
  int64_t last_heal_ms;
  int64_t end_ms;
  uint64_t incidents; /* in the final ledger */
  bool stopping;
  char violation[512];
  unsigned violations;
  bool quiet;
  /* the arrivals in the order they come, checked ahead (struct precheck) */
  struct precheck *pre;
  size_t n_pre;
  atomic_bool pre_ready;
  atomic_size_t pre_next; /* the lane thread's next */
  atomic_size_t pre_main; /* the arrivals before this one came */
  size_t pre_cur;         /* the arrival a gate is verifying (SIZE_MAX: none) */
  uint64_t pre_used;      /* signatures a gate took from the prechecks */
  /* reads that applied a gate's queued entries first, by reader (enum
   * sim_reader): how many, and the entries they applied (the bench line) */
  uint64_t caught_reads[SIM_READERS], caught_entries[SIM_READERS];
  uint8_t pk[32];         /* the organizer's signing key */
  struct method_sigs sigs;
};

#endif
