/*
 * journal.h — the gate's command journal: the durability point of a single
 * gate (in a cluster, the Raft log takes this role).
 *
 * Every commit batch is appended as one record and fdatasync'ed before any of
 * its verdicts is sent; the ledger then applies it without syncing. After a
 * crash, replay hands back every record after the ledger's applied seq.
 *
 * On disk: DIR/journal/<first seq, 16 hex>.log, files preallocated in
 * JOURNAL_FILE_PREALLOC steps and zero-filled JOURNAL_ZERO_STEP ahead of the
 * append point. A record is
 *   magic u32 | body length u32 | seq u64 | count u32 | count x (len u32, bytes)
 *   | BLAKE2b-128 of everything before it in the record
 * (little endian). Zero bytes where a magic should be mark the end. A record
 * that fails its checksum at the tail of the last file is a write torn by a
 * crash: it was never acknowledged, so replay stops there and the tail is
 * zeroed; anywhere else it is corruption (GM_ECORRUPT).
 *
 * Threads: append and rotate run on the commit worker; open, replay and
 * close before the loop starts or after it stops.
 */
#ifndef GM_NODE_JOURNAL_H
#define GM_NODE_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "../lib/buf.h"

#define JOURNAL_FILE_PREALLOC ((uint64_t)64 << 20)
/* On ext4 a preallocated block stays "unwritten" until first written, and
 * converting it is a metadata change that turns the fdatasync behind a batch
 * into a filesystem journal commit. Writing zeros a step ahead, synced once
 * per step, keeps each batch's sync to its own data. */
#define JOURNAL_ZERO_STEP ((uint64_t)1 << 20)
/* A record larger than this is refused on append and treated as corruption
 * on replay, so a damaged length can never make replay allocate without bound. */
#define JOURNAL_RECORD_MAX ((uint64_t)256 << 20)
#define JOURNAL_FILES_MAX 4096

struct journal {
  char dir[600];
  int fd;
  uint64_t file_start; /* first seq of the open file */
  uint64_t end;        /* logical end of the open file */
  uint64_t alloc;      /* bytes preallocated in the open file */
  uint64_t zeroed;     /* bytes of the open file written (zeros ahead of end) */
  uint64_t last_seq;   /* last seq appended or replayed */
  uint64_t bytes_since_rotate;
  uint64_t prealloc;   /* bytes a file is preallocated in */
  struct gm_buf buf;
};

typedef int (*journal_apply_fn)(void *arg, uint64_t seq, const struct gm_slice *cmds, size_t n);

/* Prepares DATA_DIR/journal (created if missing). Call replay next. */
int journal_open(struct journal *j, const char *data_dir);
/* The same in DATA_DIR/<name>, preallocating files in steps of prealloc. */
int journal_open_named(struct journal *j, const char *data_dir, const char *name,
                       uint64_t prealloc);
/* Calls fn for every record with seq > after, in order, then opens the last
 * file for appending. A gap in seqs after `after` is GM_ECORRUPT. */
int journal_replay(struct journal *j, uint64_t after, journal_apply_fn fn, void *arg);
/* Appends cmds as record last_seq+1 and makes it durable; *seq gets it. */
int journal_append(struct journal *j, const struct gm_slice *cmds, size_t n, uint64_t *seq);
/* Starts a new file at last_seq+1. Files wholly at or before `through` can
 * then be deleted with journal_drop_through. */
int journal_rotate(struct journal *j);
/* Deletes files whose records all have seq <= through (never the open one). */
int journal_drop_through(const char *data_dir, uint64_t through, uint64_t open_file_start);
/* The same in the journal directory dir (journal.dir). */
int journal_drop_through_dir(const char *dir, uint64_t through, uint64_t open_file_start);
void journal_close(struct journal *j);

#endif
