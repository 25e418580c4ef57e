/*
 * ledger.h — the replicated state machine of the gate mesh, on LMDB.
 *
 * Writes: only through commands (cmd.h) applied by ledger_apply_batch, all of
 * a batch inside one LMDB write transaction, committed with one fsync. Apply is
 * deterministic: it reads no clock and no random source; the same sequence of
 * commands gives the same state (and the same ledger_hash) on every gate.
 * A command refused for what it says leaves no trace and the batch goes on; a
 * storage failure (map full, I/O) commits nothing of the batch.
 *
 * Grouped applies (ledger_options.group): the write transaction stays open
 * after a batch and the next batches join it; it commits when anything reads
 * (ledger_rd_begin, a snapshot, the hash), on ledger_flush, on close, or
 * once its batches carried LEDGER_GROUP_MAX commands. With no_lock as well,
 * ledger_rd_begin commits nothing: the read borrows the open transaction
 * (it sees every applied batch, as a commit would have shown it). For a caller that
 * applies a log one entry at a time on one thread, where the log and not
 * the ledger is the durability point: a run of entries costs one commit and
 * each page is copied once. A storage failure then loses every batch since the last
 * commit, so it breaks the handle (every later call fails with GM_ESTATE):
 * the caller stops, and at the next start replays its log from
 * ledger_applied_seq. The open transaction belongs to the thread that
 * applied: a caller that hands the ledger to another thread flushes it first,
 * and reads (which commit it) happen on that thread too.
 *
 * Reads: through a struct ledger_rd (an LMDB read transaction, a consistent
 * snapshot). Read transactions are cheap; one thread may hold several.
 *
 * Threads: one writer at a time (the caller serialises apply calls); reads may
 * run on any thread concurrently with a write.
 *
 * Ownership: every getter copies into caller-owned structs; nothing returned
 * points into the map.
 */
#ifndef GM_LEDGER_H
#define GM_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/buf.h"
#include "cmd.h"
#include "types.h"

struct ledger;
struct ledger_rd;

struct ledger_options {
  size_t map_size;   /* bytes; LMDB's file grows up to this */
  bool no_sync;      /* commits are not fsynced: durability comes from a log
                        (the node's journal, later the Raft log) replayed
                        over the ledger with ledger_apply_batch_at */
  bool read_only;    /* an existing ledger, for reading only (tools): no
                        table is created and no write is allowed */
  bool group;        /* grouped applies (see above) */
  bool no_lock;      /* one process, and the caller orders every use of the
                        handle: LMDB takes no lock and keeps no reader table,
                        so a held group may go on or commit on another thread,
                        a read borrows the held group (see above), and every
                        read must end before the next apply */
};

/* A grouped transaction commits once its batches carried this many
 * commands (a batch counts at least one), even when nothing reads: it bounds
 * the pages one transaction dirties, and so the pages the file needs beside
 * its live ones (those the last transaction freed are not reused until the
 * one after it). Counting batches alone let a run of large batches, such as
 * a gate's backlog after a heal, rewrite most of a ledger in one
 * transaction. */
#define LEDGER_GROUP_MAX 1024

/* The outcome of one command. rc is 0 or GM_E*; for REDEEM reason is the
 * verdict (LEDGER_REASON_NONE = admitted). A duplicate (same rid applied
 * before) carries the first result with duplicate = true and changes nothing. */
struct ledger_result {
  int rc;
  int reason;
  bool duplicate;
  int64_t decided_ms;
  bool has_first_use;
  struct ledger_use first_use;
  uint32_t count;   /* tickets created */
  char id[LEDGER_ID_MAX + 1]; /* what the command created or acted on */
  uint32_t version; /* ticket version after the command */
};

int ledger_open(struct ledger **out, const char *dir, const struct ledger_options *opt);
void ledger_close(struct ledger *l);

/* Applies cmds[0..n) in one write transaction; results[i] is the outcome of
 * cmds[i]. Returns 0 when the transaction committed (results say what each
 * command did), or GM_E* when nothing committed (results[i].rc all set to it). */
int ledger_apply_batch(struct ledger *l, const struct gm_slice *cmds, size_t n,
                       struct ledger_result *results);
/* The same, recording `seq` as the last applied batch in the same
 * transaction. seq must be greater than ledger_applied_seq (GM_EINVAL
 * otherwise, nothing applied): a journal or log replayed after a crash skips
 * what the ledger already holds, so every batch applies exactly once. */
int ledger_apply_batch_at(struct ledger *l, uint64_t seq, const struct gm_slice *cmds, size_t n,
                          struct ledger_result *results);
/* The seq of the last batch applied with ledger_apply_batch_at (0: none). */
uint64_t ledger_applied_seq(struct ledger *l);
/* Bytes in use in the ledger's file (pages up to the last one written): about
 * the size of a snapshot. */
uint64_t ledger_size_bytes(struct ledger *l);
/* Erasures (BIO_ERASE) applied through this handle: a caller compares the
 * count around an apply to learn that a batch erased a template. */
uint64_t ledger_erasures(const struct ledger *l);
/* Rewrites the ledger's file with its live records only (LMDB's compacting
 * copy, fsynced, renamed over the file) and reopens it: the bytes of erased
 * records that LMDB's free pages still held are gone from the file. No
 * transaction of this ledger may be open, parked ones included; the handle
 * stays valid. On failure the old file is kept (GM_EIO), except when the
 * reopen fails, which leaves the handle unusable (GM_ESTATE: the caller
 * must stop and recover at the next start). */
int ledger_compact(struct ledger *l);
/* Forces everything committed so far to disk (for a ledger opened no_sync). */
int ledger_sync(struct ledger *l);
/* Commits the grouped transaction (a no-op without one). 0, or the error
 * that broke the handle. */
int ledger_flush(struct ledger *l);
int ledger_apply(struct ledger *l, const void *cmd, size_t len, struct ledger_result *res);

/* Encodes c and applies it alone. */
int ledger_apply_cmd(struct ledger *l, const struct ledger_cmd *c, struct ledger_result *res);

int ledger_rd_begin(struct ledger *l, struct ledger_rd **out);
void ledger_rd_end(struct ledger_rd *rd);
/* Parks rd (releases its snapshot, keeps its reader slot) and brings it back
 * on a fresh snapshot: for a thread that reads per request, this skips the
 * reader-table lock and allocation of a new transaction. */
void ledger_rd_park(struct ledger_rd *rd);
int ledger_rd_renew(struct ledger_rd *rd);

int ledger_event_get(struct ledger_rd *rd, const char *id, struct ledger_event *out);
int ledger_ticket_get(struct ledger_rd *rd, const char *id, struct ledger_ticket *out);
int ledger_cred_get(struct ledger_rd *rd, const char *method, const char *id,
                    struct ledger_cred *out);
int ledger_use_get(struct ledger_rd *rd, const char *ticket_id, struct ledger_use *out);
int ledger_user_get(struct ledger_rd *rd, const char *id, struct ledger_user *out);
int ledger_user_by_name(struct ledger_rd *rd, const char *username, struct ledger_user *out);
int ledger_key_get(struct ledger_rd *rd, uint32_t kid, struct ledger_key *out);
/* The newest key (highest kid); GM_ENOTFOUND before the first KEY_ADD. */
int ledger_key_current(struct ledger_rd *rd, struct ledger_key *out);
/* Calls fn for every key, oldest first; stops early when fn returns non-zero. */
int ledger_key_each(struct ledger_rd *rd, int (*fn)(void *arg, const struct ledger_key *k),
                    void *arg);
/* 1 enabled, 0 disabled, GM_ENOTFOUND when never toggled (config decides). */
int ledger_method_flag(struct ledger_rd *rd, const char *method);
/* The result the command with request id `rid` got, from the dedup table:
 * every command but a strict redeem that admitted, which its ticket
 * remembers instead (ledger_redeem_get). GM_ENOTFOUND when none is known. */
int ledger_dedup_get(struct ledger_rd *rd, const char *rid, struct ledger_result *out);
/* The result the strict redeem of ticket_id with request id `rid` got, an
 * admission or a refusal; GM_ENOTFOUND when none is known. */
int ledger_redeem_get(struct ledger_rd *rd, const char *ticket_id, const char *rid,
                      struct ledger_result *out);
/* The newest time (ts_ms) of a dedup entry the ledger ever let expire
 * (LEDGER_DEDUP_TTL_MS): every command with a request id applied at a
 * later time still has its dedup entry. 0 when none expired; INT64_MAX
 * when the ledger does not know (it was made before it kept this). */
int64_t ledger_dedup_floor(struct ledger_rd *rd);
int ledger_user_count(struct ledger_rd *rd, uint64_t *out);
int ledger_ticket_count(struct ledger_rd *rd, uint64_t *out);
/* The pages (branch, leaf, overflow) the tickets' table takes. */
int ledger_ticket_pages(struct ledger_rd *rd, uint64_t *out);
int ledger_incident_count(struct ledger_rd *rd, uint64_t *out);
/* The incident of provisional admission (origin, pseq), if one was found. */
int ledger_incident_get(struct ledger_rd *rd, uint64_t origin, uint64_t pseq,
                        struct ledger_incident *out);
/* Every incident, by (origin, pseq); stops early when fn returns non-zero. */
int ledger_incident_each(struct ledger_rd *rd,
                         int (*fn)(void *arg, const struct ledger_incident *x), void *arg);

/* Biometric enrolments (tombstones included), the change counter and log
 * (gen -> ticket, one entry per enrol or erase), and erasure receipts. */
int ledger_bio_get(struct ledger_rd *rd, const char *ticket_id, struct ledger_bio *out);
uint64_t ledger_bio_gen(struct ledger_rd *rd);
int ledger_bio_log_each(struct ledger_rd *rd, uint64_t after,
                        int (*fn)(void *arg, uint64_t gen, const char *ticket_id), void *arg);
int ledger_bio_each(struct ledger_rd *rd, int (*fn)(void *arg, const struct ledger_bio *b),
                    void *arg);
int ledger_bio_receipt_each(struct ledger_rd *rd, const char *ticket_id,
                            int (*fn)(void *arg, const struct ledger_bio_receipt *r), void *arg);
bool ledger_bio_receipt_has(struct ledger_rd *rd, const char *ticket_id, const char *gate);
/* The zones of an event, by zone id. */
int ledger_zone_each(struct ledger_rd *rd, const char *event_id,
                     int (*fn)(void *arg, const struct ledger_zone *z), void *arg);
int ledger_event_each(struct ledger_rd *rd, int (*fn)(void *arg, const struct ledger_event *e),
                      void *arg);
/* At most max tickets (0: all) with ids after `after` ("" or NULL: from the
 * first), in id order: background jobs walk the table a slice at a time.
 * fn returns 0 to go on, 1 to stop, a GM_E* code to fail. */
int ledger_ticket_scan(struct ledger_rd *rd, const char *after, uint32_t max,
                       int (*fn)(void *arg, const struct ledger_ticket *t), void *arg);
/* The same over credentials, ordered by (method, id). */
int ledger_cred_scan(struct ledger_rd *rd, const char *after_method, const char *after_id,
                     uint32_t max, int (*fn)(void *arg, const struct ledger_cred *c), void *arg);

struct ledger_audit_filter {
  const char *ticket_id; /* NULL = any */
  const char *method;
  const char *gate;
  int64_t since_ms;
  uint32_t limit;
};
/* Newest first; at most filter->limit entries, and at most
 * LEDGER_AUDIT_SCAN_MAX entries examined, so a query with a rare filter cannot
 * walk the whole log. */
#define LEDGER_AUDIT_SCAN_MAX 200000
int ledger_audit_scan(struct ledger_rd *rd, const struct ledger_audit_filter *f,
                      int (*fn)(void *arg, const struct ledger_audit *a), void *arg);

/* The whole state as a byte stream (tables in a fixed order, keys sorted), so
 * equal states give equal bytes. restore replaces the state with a stream. */
int ledger_snapshot(struct ledger *l, struct gm_buf *out);
/* The same stream handed to write() in chunks of at most 1 MiB, so a large
 * ledger goes to a file without being held in memory; write returns 0 or a
 * GM_E* code that stops the snapshot. */
int ledger_snapshot_stream(struct ledger *l, int (*write)(void *arg, const void *p, size_t n),
                           void *arg);
/* The same over the state rd sees (another thread may keep applying). */
int ledger_snapshot_stream_rd(struct ledger_rd *rd,
                              int (*write)(void *arg, const void *p, size_t n), void *arg);
int ledger_restore(struct ledger *l, const uint8_t *p, size_t n);
/* A command's result as bytes (what a follower gets back from the leader). */
void ledger_result_encode(struct mpk_w *w, const struct ledger_result *r);
int ledger_result_decode(const void *p, size_t n, struct ledger_result *r);
/* The BLAKE2b-256 that closes the snapshot stream (of everything before it):
 * equal ledgers, equal hashes. */
int ledger_hash(struct ledger *l, uint8_t out[32]);
/* *same: a and b hold the same state (the same tables, keys and values: so
 * the same snapshot stream and hash). It walks both and hashes nothing. */
int ledger_same(struct ledger *a, struct ledger *b, bool *same);

#endif
