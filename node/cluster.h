/*
 * cluster.h — the gate as a member of a Raft cluster (libraft over libuv).
 *
 * Cluster mode: the node was started with --bootstrap or --join, or its data
 * dir already holds Raft state (DATA_DIR/raft). Then every command goes
 * through Raft instead of the local journal: the leader packs the commands
 * of one loop iteration into one entry (one raft_apply, one buffer); a
 * follower forwards them to the leader and relays the results. Reads are
 * served from the local replica.
 *
 * The cluster port carries two kinds of connections, both over the
 * encrypted channel of raft/secure.h: Raft's own traffic (libraft gets the
 * plaintext end of a socketpair through a custom raft_uv_transport) and RPCs
 * between gates (forwarded commands, joins, leaves, pings).
 *
 * Roles: the first `voters` members vote; every later one is a standby.
 * The leader pings every member each second; a voter silent for
 * voter-timeout-ms is demoted to standby and the most caught-up reachable
 * standby promoted in its place.
 *
 * Erasure on disk: an erased template's sealed copy (data key and
 * ciphertext) is also in the Raft log, in the entry that enrolled it, and
 * may be in older snapshots. Once an erasure applies, the gate waits until
 * its log has moved PURGE_LOG_BYTES past it (the leader proposes pad entries
 * for that, so nobody waits for admissions), which puts the enrolment in a
 * closed segment; it then takes a snapshot keeping one trailing entry, so
 * libraft deletes those segments, and deletes the snapshots older than that
 * one itself. The node then compacts its ledger file (ledger_compact) and
 * only then sends its erasure receipt.
 */
#ifndef GM_NODE_CLUSTER_H
#define GM_NODE_CLUSTER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "commit.h"
#include "config.h"

struct node;
struct cluster;

/* Whether this node runs in a cluster (see above). */
bool cluster_mode(const struct node_config *cfg);
/* Starts Raft (bootstrapping or joining as configured) and the cluster port.
 * Hooks n->commit up to Raft. */
int cluster_start(struct node *n);
/* Leaves the loop's handles closing; done runs when they are closed. */
void cluster_stop(struct node *n, void (*done)(void *arg), void *arg);
void cluster_free(struct node *n);
/* GET /cluster/status body. */
json_t *cluster_status(struct node *n);
/* Asks the leader to remove node `id` from the configuration; cb gets 0 or
 * a GM_E* code. */
int cluster_leave(struct node *n, uint64_t id, void (*cb)(void *arg, int rc, const char *msg),
                  void *arg);
/* The join token of this cluster: "gmj1." + base64url(cluster key). */
void cluster_join_token(const uint8_t key[32], char *out, size_t cap);
/* Parses a join token into a cluster key; GM_EINVAL when it is not one. */
int cluster_token_key(const char *token, uint8_t key[32]);
/* For /metrics. */
void cluster_metrics(struct node *n, char *out, size_t cap);

/* What gossip says about this gate: its Raft state (RAFT_FOLLOWER,
 * RAFT_CANDIDATE, RAFT_LEADER; 0 before Raft runs), applied index and the
 * leader it knows (0: none). */
/* A follower that has had no ping from a leader for this long reports no
 * leader (the leader pings every member every second). */
#define CLUSTER_LEADER_CONTACT_MS 2500

struct cluster_summary {
  uint8_t state;
  uint64_t applied;
  uint64_t leader;
};
void cluster_summary(struct node *n, struct cluster_summary *out);
/* Raft log segments are this size (libraft's uv default: a gate set to 1
 * MiB stopped appending), pads this long (see above). */
#define CLUSTER_SEGMENT_BYTES (8u << 20)
#define PAD_ENTRY_BYTES (1u << 20)
/* Past an erasure, the segment that held it has closed (it holds at most one
 * segment) and its closing has finished (the next one has filled up too). */
#define PURGE_LOG_BYTES (2u * CLUSTER_SEGMENT_BYTES + PAD_ENTRY_BYTES)
/* The index of the last erasure this gate applied, and the last erasure
 * whose log segments and snapshots are off its disk (0 outside a cluster). */
uint64_t cluster_purge_mark(struct node *n);
uint64_t cluster_purge_done(struct node *n);
/* No Raft snapshot holds a read transaction on the ledger. */
bool cluster_ledger_idle(struct node *n);
/* A sync of DATA_DIR/audit.held is on the threadpool (the loop must not end
 * yet). That file keeps the audit batches that waited for a leader past
 * request-timeout-ms, for the next start should this one end first. */
bool cluster_busy(struct node *n);
/* Calls fn with the cluster address of every Raft member but this one. */
void cluster_each_peer(struct node *n, void (*fn)(struct node *n, const char *addr));

#endif
