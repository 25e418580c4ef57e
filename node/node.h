/*
 * node.h — the gate node: one libuv loop holding the ledger, the commit
 * pipeline, the HTTP server and the auth state. Only node/ touches sockets,
 * h2o and the wall clock; everything it decides with is in ledger/ and
 * methods/, fed the time through struct method_env.
 */
#ifndef GM_NODE_H
#define GM_NODE_H

#define H2O_USE_LIBUV 1
#include <h2o.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "../ledger/ledger.h"
#include "../methods/method.h"
#include "commit.h"
#include "config.h"
#include "journal.h"

#define AUTH_CACHE_SLOTS 4096
#define RATE_SLOTS 4096

struct auth_who {
  char user_id[LEDGER_ID_MAX + 1];
  char username[LEDGER_ID_MAX + 1];
  int role;
  int64_t exp_ms;
};

struct auth_cache_slot {
  uint64_t tag;
  struct auth_who who;
};

struct rate_slot {
  uint64_t tag;
  double tokens;
  int64_t last_ms;
};

#define NODE_LAT_BUCKETS 14
extern const double node_lat_bounds_ms[NODE_LAT_BUCKETS];

struct node_metrics {
  uint64_t http_requests;
  uint64_t http_status[6]; /* by class: [2]=2xx ... [5]=5xx */
  uint64_t verify_admitted;
  uint64_t verify_denied;
  uint64_t reasons[LEDGER_REASON__COUNT];
  uint64_t auth_cache_hits;
  uint64_t auth_cache_misses;
  /* Latency histograms: counts per bucket, bucket i holding what is at most
   * node_lat_bounds_ms[i] and the last one the rest (/metrics prints them
   * cumulative). POST /verify, request received to response sent: */
  uint64_t verify_lat[NODE_LAT_BUCKETS + 1];
  double verify_lat_sum_s;
  /* Time the loop spent working (not waiting in poll) per iteration. */
  uint64_t loop_busy[NODE_LAT_BUCKETS + 1];
  double loop_busy_sum_s;
  /* In a cluster, on the leader: a command's wait in the queue before its
   * entry is proposed, and an entry's time from proposal to applied here. */
  uint64_t raft_queue[NODE_LAT_BUCKETS + 1];
  double raft_queue_sum_s;
  uint64_t raft_commit[NODE_LAT_BUCKETS + 1];
  double raft_commit_sum_s;
};

/* Adds one observation of NS nanoseconds to a histogram over the bounds. */
void node_observe(uint64_t hist[NODE_LAT_BUCKETS + 1], double *sum_s, uint64_t ns);

struct node_handler {
  h2o_handler_t super;
  struct node *node;
};

struct node {
  struct node_config cfg;
  uv_loop_t *loop;
  struct ledger *ledger;
  struct commit_queue commit;
  struct cluster *cluster; /* NULL for a gate that runs alone */
  struct gossip *gossip;   /* in a cluster: the gossip port */
  struct provisional *pv;  /* in a cluster: provisional admissions */
  bool cluster_mode;
  uint8_t cluster_key[32];
  uint8_t seal_key[32];
  uint8_t nfc_key[32];   /* NTAG 424 SUN keys derive from it */
  uint8_t bio_key[32];   /* wraps biometric data keys */
  uint8_t cache_key[16];
  struct bio_index *bio; /* decrypted templates, locked in memory */
  struct jobs *jobs;     /* background jobs, biometric sync and receipts */
  h2o_globalconf_t h2o_config;
  h2o_context_t h2o_ctx;
  h2o_accept_ctx_t accept_ctx;
  uv_tcp_t listener;
  SSL_CTX *ssl;
  struct ledger_rd *rd_parked; /* the loop thread's reusable read transaction */
  struct auth_cache_slot *auth_cache;
  char dummy_pwhash[LEDGER_PWHASH_MAX + 1]; /* checked for unknown usernames */
  struct rate_slot *rate;
  struct node_metrics metrics;
  uv_signal_t sig_int;
  uv_signal_t sig_term;
  uv_timer_t stop_timer;
  uv_prepare_t loop_prep;
  uint64_t loop_prev_ns;  /* the previous iteration's prepare time */
  uint64_t loop_prev_idle_ns;
  struct journal journal;
  uv_timer_t ckpt_timer;
  bool snap_running;
  /* Erasure on disk outside a cluster: a checkpoint started after the
   * erasure drops the journal files holding the enrolment (rounds count
   * those checkpoints: wanted, started, done). */
  bool purge_wanted;
  uint64_t purge_started, purge_done;
  int64_t last_checkpoint_ms;
  uint64_t last_snapshot_bytes;
  bool drained;
  bool cluster_closed;
  bool started;
  bool stopping;
  int64_t started_ms;
};

int64_t node_now_ms(void);
/* Derives the seal, NFC and biometric keys from n->cluster_key. */
void node_keys_derive(struct node *n);
/* Brings the biometric index up to what rd sees; erasures found queue this
 * gate's receipts. */
void node_bio_sync(struct node *n, struct ledger_rd *rd);
/* Background jobs (jobs.c): started with the node, stopped before drain. */
int jobs_start(struct node *n);
void jobs_stop(struct node *n);
void jobs_free(struct node *n);
/* /metrics lines of the jobs and the biometric index. */
void jobs_metrics(struct node *n, struct gm_buf *b);
json_t *jobs_status(struct node *n);
/* A method environment over a fresh read snapshot; end it with node_env_end. */
int node_env_begin(struct node *n, struct method_env *env);
void node_env_end(struct method_env *env);
/* Fills the fields every command carries: a request id, time, gate, actor. */
void node_cmd_init(struct node *n, struct ledger_cmd *c, int op, const char *rid,
                   const char *actor);
void node_random(void *arg, void *out, size_t n);

int node_start(struct node *n);
/* Stops accepting, drains the commit queue, stops the loop. */
void node_stop(struct node *n);
void node_cleanup(struct node *n);
/* Ends the loop once the commit queue is drained and no checkpoint runs. */
void node_maybe_stopped(struct node *n);

/* First start: creates the admin account and the first signing key. */
int node_bootstrap(struct node *n);

#endif
