/*
 * provisional.h — admission when the leader cannot be reached (the
 * "available" policy), on a gate in a cluster.
 *
 * A verify whose credential passed its checks goes to provisional_verify,
 * which applies the admission policy (gossip/admit.h):
 *   - refused at once when a provisional admission of the same ticket has
 *     reached this gate by gossip;
 *   - strict events, or no leader known: decided at once (no_quorum, or a
 *     provisional admission within the budget);
 *   - otherwise the redeem is proposed, and if it has not committed within
 *     offline-wait-ms the gate admits provisionally instead.
 *
 * A provisional admission is a record (origin = this node, seq, partition
 * epoch) plus the redeem command that will carry it to the ledger. It is
 * appended and fdatasync'ed to DATA_DIR/provisional (a journal) before the
 * verdict is sent, pushed to every live member over gossip, and proposed to
 * Raft as soon as a leader is known; it is pruned everywhere once the
 * ledger has it. The command links back to the strict attempt it replaced
 * (srid), so an attempt that committed after all is not a double entry.
 *
 * Partition mode starts when a verify's wait expires or no leader is known
 * (each entry starts a new partition epoch, persisted with the last seq in
 * DATA_DIR/partition.state) and ends with the next commit through Raft.
 */
#ifndef GM_NODE_PROVISIONAL_H
#define GM_NODE_PROVISIONAL_H

#include <jansson.h>
#include <stdbool.h>

#include "../gossip/prov.h"
#include "../ledger/ledger.h"

struct node;
struct api_req;

typedef void (*pv_done_fn)(struct api_req *ar, const struct ledger_result *res,
                           bool provisional);

struct pv_policy {
  int policy; /* LEDGER_POLICY_* of the ticket's tier */
  uint32_t budget;
  char event_id[LEDGER_ID_MAX + 1];
};

/* Opens DATA_DIR/provisional and replays this gate's unsettled records. */
int provisional_open(struct node *n);
int provisional_start(struct node *n);
void provisional_stop(struct node *n);
void provisional_free(struct node *n);
/* A write of records is on the disk (the loop must not end yet). */
bool provisional_busy(struct node *n);

/* Takes a verify that passed its checks; done runs exactly once (unless the
 * client left, in which case the request is released). */
void provisional_verify(struct node *n, struct api_req *ar, const struct ledger_cmd *redeem,
                        const struct pv_policy *pol, pv_done_fn done);

/* The store gossip fills and reads. */
struct prov *provisional_store(struct node *n);
bool provisional_partition_mode(struct node *n);
/* {partition_mode, partition_epoch, backlog, held, admitted, ...} */
json_t *provisional_status(struct node *n);
void provisional_metrics(struct node *n, char *out, size_t cap);

#endif
