/*
 * snapshot.c — the whole ledger as a byte stream, and back.
 *
 * Format: "GMSNAP1\n", then per table in the fixed order of LEDGER_TABLE_LIST:
 * u64 entry count, then per entry u32 key length, key, u32 value length,
 * value (little endian), and last a BLAKE2b-256 of everything before it, so a
 * stream damaged in transit is refused before anything is replaced. LMDB iterates keys sorted, so equal states give equal
 * streams, which is what ledger_hash relies on to compare gates. Restore checks
 * every length against the end of the input before reading.
 */
#include <sodium.h>
#include <string.h>

#include "../lib/assert.h"
#include "../lib/err.h"
#include "ledger_int.h"

static const char snap_magic[8] = {'G', 'M', 'S', 'N', 'A', 'P', '1', '\n'};

#define SNAP_CHUNK ((size_t)1 << 20)

struct snap_out {
  struct gm_buf buf;
  crypto_generichash_state hash;
  int (*write)(void *arg, const void *p, size_t n);
  void *arg;
};

static int snap_flush(struct snap_out *o) {
  if (o->buf.len == 0)
    return 0;
  crypto_generichash_update(&o->hash, o->buf.ptr, o->buf.len);
  int rc = o->write(o->arg, o->buf.ptr, o->buf.len);
  o->buf.len = 0;
  return rc;
}

static int snap_put(struct snap_out *o, const void *p, size_t n) {
  if (o->buf.len + n > SNAP_CHUNK) {
    int rc = snap_flush(o);
    if (rc != 0)
      return rc;
  }
  if (n > SNAP_CHUNK) { /* a value larger than a chunk goes straight through */
    crypto_generichash_update(&o->hash, p, n);
    return o->write(o->arg, p, n);
  }
  return gm_buf_append(&o->buf, p, n);
}

static int snap_u32(struct snap_out *o, uint32_t v) {
  uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
  return snap_put(o, x, 4);
}

static int snap_u64(struct snap_out *o, uint64_t v) {
  uint8_t x[8];
  for (int i = 0; i < 8; i++)
    x[i] = (uint8_t)(v >> (8 * i));
  return snap_put(o, x, 8);
}

/* Streams the ledger as txn sees it to write; the stream's closing sum also
 * goes to sum_out when it is not NULL. */
static int snapshot_txn(struct ledger *l, MDB_txn *txn,
                        int (*write)(void *arg, const void *p, size_t n), void *arg,
                        uint8_t sum_out[32]) {
  struct snap_out o = {.write = write, .arg = arg};
  gm_buf_init(&o.buf);
  crypto_generichash_init(&o.hash, NULL, 0, 32);
  int rc;
  if ((rc = snap_put(&o, snap_magic, sizeof snap_magic)) != 0)
    goto out;
  for (int t = 0; t < LEDGER_T__COUNT; t++) {
    MDB_stat st;
    if ((rc = ledger__mdb_err(mdb_stat(txn, l->dbi[t], &st))) != 0)
      goto out;
    if ((rc = snap_u64(&o, st.ms_entries)) != 0)
      goto out;
    MDB_cursor *cur;
    if ((rc = ledger__mdb_err(mdb_cursor_open(txn, l->dbi[t], &cur))) != 0)
      goto out;
    MDB_val k, v;
    uint64_t seen = 0;
    int mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (mrc == 0 && rc == 0) {
      seen++;
      rc = snap_u32(&o, (uint32_t)k.mv_size);
      if (rc == 0)
        rc = snap_put(&o, k.mv_data, k.mv_size);
      if (rc == 0)
        rc = snap_u32(&o, (uint32_t)v.mv_size);
      if (rc == 0)
        rc = snap_put(&o, v.mv_data, v.mv_size);
      mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (rc != 0)
      goto out;
    GM_ASSERT(seen == st.ms_entries);
  }
  if ((rc = snap_flush(&o)) != 0)
    goto out;
  uint8_t sum[32];
  crypto_generichash_final(&o.hash, sum, sizeof sum);
  rc = write(arg, sum, sizeof sum);
  if (rc == 0 && sum_out != NULL)
    memcpy(sum_out, sum, sizeof sum);
out:
  gm_buf_free(&o.buf);
  return rc;
}

static int stream(struct ledger *l, int (*write)(void *arg, const void *p, size_t n), void *arg,
                  uint8_t sum_out[32]) {
  MDB_txn *txn;
  int rc = ledger__settle(l);
  if (rc == 0)
    rc = ledger__mdb_err(mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn));
  if (rc != 0)
    return rc;
  rc = snapshot_txn(l, txn, write, arg, sum_out);
  mdb_txn_abort(txn);
  return rc;
}

int ledger_snapshot_stream(struct ledger *l, int (*write)(void *arg, const void *p, size_t n),
                           void *arg) {
  return stream(l, write, arg, NULL);
}

int ledger_snapshot_stream_rd(struct ledger_rd *rd,
                              int (*write)(void *arg, const void *p, size_t n), void *arg) {
  return snapshot_txn(rd->l, rd->txn, write, arg, NULL);
}

static int to_buf(void *arg, const void *p, size_t n) { return gm_buf_append(arg, p, n); }

int ledger_snapshot(struct ledger *l, struct gm_buf *out) {
  return ledger_snapshot_stream(l, to_buf, out);
}

struct reader {
  const uint8_t *p;
  size_t n;
  size_t off;
};

static int get_bytes(struct reader *r, size_t len, const uint8_t **out) {
  if (len > r->n - r->off)
    return GM_EDECODE;
  *out = r->p + r->off;
  r->off += len;
  return 0;
}

static int get_u32(struct reader *r, uint32_t *v) {
  const uint8_t *x;
  if (get_bytes(r, 4, &x) != 0)
    return GM_EDECODE;
  *v = (uint32_t)x[0] | (uint32_t)x[1] << 8 | (uint32_t)x[2] << 16 | (uint32_t)x[3] << 24;
  return 0;
}

static int get_u64(struct reader *r, uint64_t *v) {
  const uint8_t *x;
  if (get_bytes(r, 8, &x) != 0)
    return GM_EDECODE;
  *v = 0;
  for (int i = 7; i >= 0; i--)
    *v = *v << 8 | x[i];
  return 0;
}

int ledger_restore(struct ledger *l, const uint8_t *p, size_t n) {
  uint8_t sum[32];
  if (n < sizeof snap_magic + 32)
    return GM_EDECODE;
  n -= 32;
  crypto_generichash(sum, sizeof sum, p, n, NULL, 0);
  if (sodium_memcmp(sum, p + n, 32) != 0)
    return GM_EDECODE;
  struct reader r = {p, n, 0};
  const uint8_t *magic;
  if (get_bytes(&r, sizeof snap_magic, &magic) != 0 ||
      memcmp(magic, snap_magic, sizeof snap_magic) != 0)
    return GM_EDECODE;
  MDB_txn *txn;
  int rc = ledger__settle(l);
  if (rc == 0)
    rc = ledger__mdb_err(mdb_txn_begin(l->env, NULL, 0, &txn));
  if (rc != 0)
    return rc;
  for (int t = 0; t < LEDGER_T__COUNT; t++) {
    if ((rc = ledger__mdb_err(mdb_drop(txn, l->dbi[t], 0))) != 0)
      goto abort;
    uint64_t count;
    if ((rc = get_u64(&r, &count)) != 0)
      goto abort;
    for (uint64_t i = 0; i < count; i++) {
      uint32_t kl, vl;
      const uint8_t *k, *v;
      if ((rc = get_u32(&r, &kl)) != 0 || (rc = get_bytes(&r, kl, &k)) != 0 ||
          (rc = get_u32(&r, &vl)) != 0 || (rc = get_bytes(&r, vl, &v)) != 0)
        goto abort;
      if (kl == 0 || kl > 511) { /* LMDB's default maximum key size */
        rc = GM_EDECODE;
        goto abort;
      }
      MDB_val key = {kl, (void *)k}, val = {vl, (void *)v};
      /* APPEND both loads fast and rejects a stream whose keys are not sorted. */
      int mrc = mdb_put(txn, l->dbi[t], &key, &val, MDB_APPEND);
      if (mrc == MDB_KEYEXIST) {
        rc = GM_EDECODE;
        goto abort;
      }
      if ((rc = ledger__mdb_err(mrc)) != 0)
        goto abort;
    }
  }
  if (r.off != r.n) {
    rc = GM_EDECODE;
    goto abort;
  }
  rc = ledger__mdb_err(mdb_txn_commit(txn));
  ledger__seq_load(l);
  return rc;
abort:
  mdb_txn_abort(txn);
  return rc;
}

static int discard(void *arg, const void *p, size_t n) {
  (void)arg, (void)p, (void)n;
  return 0;
}

/* The stream's closing sum names the whole state: nothing hashes it twice. */
int ledger_hash(struct ledger *l, uint8_t out[32]) { return stream(l, discard, NULL, out); }

static bool val_eq(const MDB_val *x, const MDB_val *y) {
  return x->mv_size == y->mv_size && memcmp(x->mv_data, y->mv_data, x->mv_size) == 0;
}

/* *eq: the two tables hold the same entries (LMDB walks both in key order). */
static int table_same(MDB_txn *ta, MDB_dbi da, MDB_txn *tb, MDB_dbi db, bool *eq) {
  MDB_stat sa, sb;
  int rc = ledger__mdb_err(mdb_stat(ta, da, &sa));
  if (rc == 0)
    rc = ledger__mdb_err(mdb_stat(tb, db, &sb));
  if (rc != 0 || sa.ms_entries != sb.ms_entries) {
    *eq = false;
    return rc;
  }
  MDB_cursor *ca = NULL, *cb = NULL;
  if ((rc = ledger__mdb_err(mdb_cursor_open(ta, da, &ca))) != 0 ||
      (rc = ledger__mdb_err(mdb_cursor_open(tb, db, &cb))) != 0)
    goto out;
  MDB_val ka, va, kb, vb;
  int ra = mdb_cursor_get(ca, &ka, &va, MDB_FIRST), rb = mdb_cursor_get(cb, &kb, &vb, MDB_FIRST);
  while (ra == 0 && rb == 0 && *eq) {
    *eq = val_eq(&ka, &kb) && val_eq(&va, &vb);
    ra = mdb_cursor_get(ca, &ka, &va, MDB_NEXT);
    rb = mdb_cursor_get(cb, &kb, &vb, MDB_NEXT);
  }
  if (*eq && ra != rb)
    *eq = false; /* one table ended first */
  if ((ra != 0 && ra != MDB_NOTFOUND) || (rb != 0 && rb != MDB_NOTFOUND))
    rc = ledger__mdb_err(ra != 0 && ra != MDB_NOTFOUND ? ra : rb);
out:
  if (ca != NULL)
    mdb_cursor_close(ca);
  if (cb != NULL)
    mdb_cursor_close(cb);
  return rc;
}

int ledger_same(struct ledger *a, struct ledger *b, bool *same) {
  *same = false;
  MDB_txn *ta = NULL, *tb = NULL;
  int rc = ledger__settle(a);
  if (rc == 0)
    rc = ledger__settle(b);
  if (rc == 0)
    rc = ledger__mdb_err(mdb_txn_begin(a->env, NULL, MDB_RDONLY, &ta));
  if (rc == 0)
    rc = ledger__mdb_err(mdb_txn_begin(b->env, NULL, MDB_RDONLY, &tb));
  bool eq = true;
  for (int t = 0; rc == 0 && eq && t < LEDGER_T__COUNT; t++)
    rc = table_same(ta, a->dbi[t], tb, b->dbi[t], &eq);
  if (ta != NULL)
    mdb_txn_abort(ta);
  if (tb != NULL)
    mdb_txn_abort(tb);
  if (rc == 0)
    *same = eq;
  return rc;
}
