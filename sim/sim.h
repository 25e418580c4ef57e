/*
 * sim.h — gatesim: one festival run (world_run), its invariants
 * (sim_check) and what it reports (sim_summary, sim_report_html).
 */
#ifndef GM_SIM_SIM_H
#define GM_SIM_SIM_H

#include <stdio.h>

#include "sim/world.h"

int world_run(struct world *w, const struct sim_cfg *cfg, uint64_t seed);
void world_free(struct world *w);
/* Ends a run whose process exits next: stops the lane thread and removes
 * the ledgers' directory, and leaves the memory (the gates' Raft logs: ten
 * million entries in a 12-hour run) to the exit, freeing nothing. */
void world_discard(struct world *w);
/* Applies every gate's queued entries (lane.h), before reading ledgers. */
int world_settle(struct world *w);

/* Checks every invariant; returns the number violated, each described in
 * out (one line each). */
unsigned sim_check(struct world *w, FILE *out);
/* The run's figures, deterministic for a seed. */
void sim_summary(struct world *w, FILE *out);
int sim_report_html(struct world *w, const char *path);

#endif
