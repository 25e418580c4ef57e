/*
 * gate.h — one simulated gate (see gate.c).
 */
#ifndef GM_SIM_GATE_H
#define GM_SIM_GATE_H

#include "sim/world.h"

int gate_create(struct world *w, unsigned idx, struct gate **out);
/* Starts Raft (bootstrapping it with conf the first time) and gossip. */
int gate_start(struct gate *g, bool bootstrap, const struct raft_configuration *conf);
/* An attendee shows a QR payload at this gate. */
void gate_verify(struct gate *g, uint32_t attendee, const char *payload, bool fraud);
/* An attendee shows a dynamic pass's code at this gate. */
void gate_verify_pass(struct gate *g, uint32_t attendee, const char *code, bool fraud);
/* An organizer at this gate transfers the attendee's ticket to a new
 * holder (a resale), retrying until a leader answers. */
void gate_transfer(struct gate *g, uint32_t attendee);
void gate_crash(struct gate *g);
/* Applies the entries queued for this gate's ledger (lane.h): call before
 * reading it. 0, or the storage error that stopped its applies. */
int gate_settle(struct gate *g);
void gate_restart(struct gate *g);
void gate_free(struct gate *g);
int64_t world_delay(struct world *w, unsigned from, unsigned to);

#endif
