/*
 * gossip.h — the gate's gossip port: SWIM (gossip/swim.h) over UDP on the
 * node's loop, every datagram sealed with the cluster key (gossip/wire.h).
 *
 * The port is the cluster address on UDP unless gossip-listen says
 * otherwise; peers are first reached at their cluster addresses (the join
 * target, then every Raft member), and each gate's own gossip address
 * spreads with its alive messages. A datagram that is forged, replayed or
 * malformed is dropped, counted in /metrics and logged (at most once a
 * second). The boot epoch in DATA_DIR/gossip.epoch grows on every start, so
 * packets of an earlier run are refused as replays.
 */
#ifndef GM_NODE_GOSSIP_H
#define GM_NODE_GOSSIP_H

#include <jansson.h>
#include <stdint.h>

struct node;

int gossip_start(struct node *n);
/* Closes the port; done(arg) once the handles are closed. */
void gossip_stop(struct node *n, void (*done)(void *arg), void *arg);
void gossip_free(struct node *n);
/* Adds a member known only by address (a Raft member, a join target). */
void gossip_seed(struct node *n, const char *addr);
/* {"address", "members": [{id, address, state, incarnation}], counters} */
json_t *gossip_status(struct node *n);
void gossip_metrics(struct node *n, char *out, size_t cap);

struct prov_rec;
/* Sends these provisional admissions to every member not known dead. */
void gossip_push_prov(struct node *n, const struct prov_rec *const *recs, size_t k);

#endif
