/*
 * ledger_int.h — internals shared by the ledger's files: the LMDB tables and
 * small get/put helpers that map LMDB's codes onto lib/err.h.
 */
#ifndef GM_LEDGER_INT_H
#define GM_LEDGER_INT_H

#include <lmdb.h>

#include "../lib/mpk.h"
#include "ledger.h"

#define LEDGER_TABLE_LIST(X) \
  X(META, "meta")            \
  X(EVENTS, "events")        \
  X(TICKETS, "tickets")      \
  X(CREDS, "credentials")    \
  X(KEYS, "keys")            \
  X(USERS, "users")          \
  X(USERNAMES, "usernames")  \
  X(FLAGS, "method_flags")   \
  X(AUDIT, "audit")          \
  X(DEDUP, "dedup")          \
  X(DEDUP_TS, "dedup_ts")    \
  X(INCIDENTS, "incidents")  \
  X(BIO, "bio")              \
  X(BIO_LOG, "bio_log")      \
  X(BIO_RCPT, "bio_receipts") \
  X(ZONES, "zones")

enum ledger__table {
#define LEDGER__TBL_ENUM(name, str) LEDGER_T_##name,
  LEDGER_TABLE_LIST(LEDGER__TBL_ENUM)
#undef LEDGER__TBL_ENUM
  LEDGER_T__COUNT
};

struct ledger {
  MDB_env *env;
  MDB_dbi dbi[LEDGER_T__COUNT];
  char *dir;
  unsigned env_flags;
  size_t map_size;
  uint64_t erasures;  /* BIO_ERASE commands applied */
  /* Grouped applies (ledger_options.group): the open write transaction that
   * holds the batches applied since the last commit, how many commands they
   * carried (a batch counts at least one), and the error that ended one
   * without a commit (sticky: the batches it held are gone, so the handle
   * refuses everything until it is reopened). */
  MDB_txn *held;
  size_t held_cmds;
  int broken;
  bool group;
  uint64_t applied_seq; /* applied_seq of the state a reader will see next */
  struct mpk_w w;     /* scratch for the (single) writer */
  uint64_t audit_seq; /* last audit key of the batch being applied */
  /* A time no entry of the dedup time index is older than (its key's first
   * eight bytes), so that a batch whose expiry limit is not past it skips
   * the index (dedup_prune). Trusted only in the write transaction that
   * follows dedup_txn, the one the bound was kept in: an abort, a restore
   * or any other writer's commit in between gives the next one another id,
   * and a reopen clears dedup_known. */
  bool dedup_known;
  uint64_t dedup_oldest;
  size_t dedup_txn;
  /* Method flags read in the batch being applied (cleared per batch and by
   * a toggle), so a batch of redeems reads each flag once. */
  struct {
    char method[LEDGER_METHOD_MAX + 1];
    bool enabled;
  } flags[8];
  size_t n_flags;
};

struct ledger_rd {
  struct ledger *l;
  MDB_txn *txn;
  bool borrowed; /* txn is the open group's (no_lock): not this reader's to end */
};

int ledger__mdb_err(int mrc);
/* Commits the grouped transaction, if one is open: called before anything
 * that reads the ledger or replaces its file, so it sees every applied batch.
 * Returns 0 or the error of the commit (the handle is then broken). */
int ledger__settle(struct ledger *l);
/* Sets l->applied_seq from the committed state (open, restore, a failure). */
void ledger__seq_load(struct ledger *l);
/* Reads table[key] into a borrowed MDB_val (valid until txn ends). */
int ledger__get(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t klen, MDB_val *v);
int ledger__put(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t klen, const void *v,
                size_t vlen);
int ledger__del(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t klen);
/* method\0id, returns length; out must hold LEDGER_METHOD_MAX+LEDGER_ID_MAX+2. */
size_t ledger__cred_key(char *out, const char *method, const char *id);

/* The dedup key of a reset admission's request id: a zero byte, then the
 * id's hash (see apply.c). */
#define LEDGER_RESET_KEY 9
/* The result the admission that used t had. */
void ledger__admitted_result(const struct ledger_ticket *t, struct ledger_result *res);
/* The first result of the strict redeem with this request id on ticket t
 * (NULL: the ticket does not exist): 0 and *res, or GM_ENOTFOUND. */
int ledger__redeem_seen(struct ledger *l, MDB_txn *txn, const char *rid,
                        const struct ledger_ticket *t, struct ledger_result *res);

/* The meta key of ledger_dedup_floor (an int64, native order). */
#define LEDGER_META_DEDUP_FLOOR "dedup_floor"

int ledger__ticket_read(MDB_txn *txn, struct ledger *l, const char *id,
                        struct ledger_ticket *t);
/* event\0zone (zones), ticket\0gate (receipts): returns the length. */
size_t ledger__pair_key(char *out, const char *a, const char *b);

/* The first use of a used ticket, from its record. */
void ledger__use_of(const struct ledger_ticket *t, struct ledger_use *u);

#endif
