/*
 * entry.h — the payload of one Raft log entry: a batch of ledger commands
 * proposed together by one gate.
 *
 * Layout (little endian):
 *   magic u32 "GME1" | count u32 | origin u64 (proposing node id)
 *   | token u64 (the proposer's batch number) | count x (len u32, bytes)
 *   | zero padding to a multiple of 8 (libraft requires it)
 *
 * origin and token let the proposer match an applied entry to the requests
 * waiting on it; every other gate ignores them.
 *
 * An entry with count 0 is a pad: its body is zeros, of any length (a
 * multiple of 8). Pads change nothing in the ledger; they move the Raft log
 * on, so that the segment holding an erased template closes and a snapshot
 * can delete it (see cluster.h, "Erasure on disk").
 */
#ifndef GM_RAFT_ENTRY_H
#define GM_RAFT_ENTRY_H

#include <stddef.h>
#include <stdint.h>

#include "../lib/buf.h"

#define ENTRY_MAGIC 0x31454d47u /* "GME1" */
#define ENTRY_HDR_LEN 24
/* Bounds on one entry: what the batcher packs and what decode accepts. */
#define ENTRY_CMDS_MAX 4096
#define ENTRY_BYTES_MAX ((size_t)8 << 20)

struct entry_hdr {
  uint32_t count;
  uint64_t origin;
  uint64_t token;
};

/* Size of the entry holding commands of these total bytes (padding included). */
size_t entry_size(size_t n_cmds, size_t cmd_bytes);
/* Writes the entry into out (entry_size bytes). */
void entry_encode(uint8_t *out, const struct entry_hdr *h, const struct gm_slice *cmds, size_t n);
/* Parses p[0..n): fills h and, when cmds is not NULL, up to cap slices that
 * point into p. GM_EDECODE for anything malformed (bad magic, lengths past the
 * end, non-zero padding, too many commands). */
int entry_decode(const uint8_t *p, size_t n, struct entry_hdr *h, struct gm_slice *cmds,
                 size_t cap);

#endif
