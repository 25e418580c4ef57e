/*
 * config.h — the gate node's configuration: a `key = value` file and the same
 * keys as --key value flags (flags win). Every key has a default, so a node
 * starts with no file at all. configs/gate.example.conf documents each key.
 */
#ifndef GM_NODE_CONFIG_H
#define GM_NODE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../methods/method.h"

#define NODE_PATH_MAX 512
#define NODE_ADDR_MAX 128

struct node_config {
  uint32_t node_id;
  char gate[64 + 1];
  char data_dir[NODE_PATH_MAX];
  char http_listen[NODE_ADDR_MAX];
  char cluster_listen[NODE_ADDR_MAX];
  char gossip_listen[NODE_ADDR_MAX];
  bool bootstrap;
  char join[NODE_ADDR_MAX];
  char cluster_key_file[NODE_PATH_MAX];
  char join_token[128];
  uint32_t voters;              /* members that vote (3 or 5); later ones are standbys */
  int64_t voter_timeout_ms;     /* a voter silent this long is replaced by a standby */
  int64_t request_timeout_ms;   /* a write waits this long for a leader, then no_quorum */
  uint32_t election_timeout_ms;
  uint32_t heartbeat_ms;
  uint32_t snapshot_threshold;  /* entries between Raft snapshots */
  int64_t offline_wait_ms;      /* an available-policy verify waits this long for its
                                   commit, then admits provisionally */
  uint32_t offline_budget;      /* an event's budget when its creation names none */
  uint32_t provisional_max;     /* provisional admissions a gate holds (its own and heard) */
  bool fault_skip_prov_fsync;   /* test fault: answer before the record is durable */
  char admin_user[64 + 1];
  char admin_password[256];
  char tls_cert[NODE_PATH_MAX];
  char tls_key[NODE_PATH_MAX];
  char log_level[16];
  size_t body_limit;
  int64_t token_ttl_ms;
  size_t map_size;
  uint32_t verify_rate_per_s; /* per client address; 0 = unlimited */
  int64_t checkpoint_interval_ms;
  uint64_t checkpoint_journal_bytes;
  int64_t jobs_interval_ms;     /* background jobs and the biometric index sync */
  int64_t bio_retention_ms;     /* templates erased this long after their event ends,
                                   unless the event says otherwise */
  uint32_t jobs_batch;          /* records a job examines per run */
  int64_t expire_grace_ms;      /* credentials are deleted this long after they expire */
  struct method_config methods;
};

void node_config_default(struct node_config *c);
/* Applies one key; GM_EINVAL with a message in err for a bad key or value. */
int node_config_set(struct node_config *c, const char *key, const char *value, char *err,
                    size_t errlen);
int node_config_load_file(struct node_config *c, const char *path, char *err, size_t errlen);
/* Parses argv: --config FILE first, then every --key value / --flag. */
int node_config_from_args(struct node_config *c, int argc, char **argv, char *err,
                          size_t errlen);
/* Splits "host:port"; port in 1..65535. */
int node_addr_parse(const char *s, char *host, size_t hostlen, int *port);

#endif
