/*
 * checkpoint.h — keeps the journal short and the gate recoverable.
 *
 * The ledger commits without fsync (the journal is the durability point), so
 * after a power loss its file cannot be trusted. A checkpoint streams the
 * whole ledger into a snapshot file (DATA_DIR/snapshot, written aside,
 * fsynced, renamed) and then deletes the journal files it covers. It is due
 * when the journal outgrows both checkpoint-journal-mb and the last snapshot,
 * or every checkpoint-interval-s. Recovery at start:
 *   - clean shutdown, or a crash on the same boot (the page cache survived):
 *     the ledger is good; replay the journal past its applied seq;
 *   - a crash on an earlier boot (power loss, kernel crash): discard the
 *     ledger, restore the snapshot, replay the journal past it.
 * The boot is told by /proc/sys/kernel/random/boot_id; DATA_DIR/state holds
 * "clean|dirty <boot id>".
 */
#ifndef GM_NODE_CHECKPOINT_H
#define GM_NODE_CHECKPOINT_H

#include "node.h"

/* Opens the ledger and journal of n->cfg.data_dir, recovering as above. */
int checkpoint_recover(struct node *n);
/* Marks the data dir clean (after the ledger was synced) or dirty. */
int checkpoint_mark(struct node *n, bool clean);
/* Starts the periodic checkpoint timer. */
void checkpoint_start(struct node *n);
void checkpoint_stop(struct node *n);
/* Starts a checkpoint now (or as soon as the batch on the worker is done),
 * unless one is running. */
void checkpoint_now(struct node *n);

#endif
