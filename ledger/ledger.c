/*
 * ledger.c — the LMDB environment, its tables, and every read of the ledger.
 * Writes live in apply.c, snapshots in snapshot.c.
 */
#include "ledger.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/assert.h"
#include "../lib/buf.h"
#include "../lib/err.h"
#include "ledger_int.h"
#include "record.h"

static const char *table_names[] = {
#define LEDGER__TBL_NAME(name, str) str,
    LEDGER_TABLE_LIST(LEDGER__TBL_NAME)
#undef LEDGER__TBL_NAME
};

const char *ledger_reason_str(int reason) {
  static const char *names[] = {
#define LEDGER__REASON_STR(name, str) str,
      LEDGER_REASON_TABLE(LEDGER__REASON_STR)
#undef LEDGER__REASON_STR
  };
  if (reason < 0 || reason >= LEDGER_REASON__COUNT)
    return "unknown";
  return names[reason];
}

const char *ledger_status_str(int status) {
  static const char *names[] = {"created", "transferred", "used", "revoked"};
  return status >= 0 && status < 4 ? names[status] : "unknown";
}

static const char *role_names[] = {"attendee", "staff", "organizer", "admin"};

const char *ledger_role_str(int role) {
  return role >= 0 && role < 4 ? role_names[role] : "unknown";
}

int ledger_role_parse(const char *s) {
  for (int i = 0; i < 4; i++)
    if (strcmp(s, role_names[i]) == 0)
      return i;
  return -1;
}

const char *ledger_policy_str(int policy) {
  return policy == LEDGER_POLICY_AVAILABLE ? "available" : "strict";
}

int ledger_event_policy(const struct ledger_event *e, const char *tier) {
  for (uint32_t i = 0; i < e->n_tier_policy; i++)
    if (strcmp(e->tier_policy[i].tier, tier) == 0)
      return e->tier_policy[i].policy;
  return e->policy;
}

int ledger_policy_parse(const char *s) {
  if (strcmp(s, "strict") == 0)
    return LEDGER_POLICY_STRICT;
  if (strcmp(s, "available") == 0)
    return LEDGER_POLICY_AVAILABLE;
  return -1;
}

int ledger__mdb_err(int mrc) {
  switch (mrc) {
  case MDB_SUCCESS:
    return 0;
  case MDB_NOTFOUND:
    return GM_ENOTFOUND;
  case MDB_MAP_FULL:
  case MDB_TXN_FULL:
  case ENOSPC:
    return GM_EFULL;
  case MDB_CORRUPTED:
  case MDB_PAGE_NOTFOUND:
  case MDB_INVALID:
    return GM_ECORRUPT;
  case ENOMEM:
    return GM_ENOMEM;
  case MDB_KEYEXIST:
    return GM_EEXIST;
  default:
    return GM_EIO;
  }
}

int ledger__get(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t klen, MDB_val *v) {
  MDB_val key = {klen, (void *)k};
  return ledger__mdb_err(mdb_get(txn, dbi, &key, v));
}

int ledger__put(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t klen, const void *v,
                size_t vlen) {
  MDB_val key = {klen, (void *)k}, val = {vlen, (void *)v};
  return ledger__mdb_err(mdb_put(txn, dbi, &key, &val, 0));
}

int ledger__del(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t klen) {
  MDB_val key = {klen, (void *)k};
  return ledger__mdb_err(mdb_del(txn, dbi, &key, NULL));
}

size_t ledger__cred_key(char *out, const char *method, const char *id) {
  size_t m = strlen(method), i = strlen(id);
  GM_ASSERT(m <= LEDGER_METHOD_MAX && i <= LEDGER_ID_MAX);
  memcpy(out, method, m);
  out[m] = 0;
  memcpy(out + m + 1, id, i);
  return m + 1 + i;
}

/* Opens l->env on l->dir with l->env_flags and the table handles. */
static int env_open(struct ledger *l) {
  int rc;
  if ((rc = ledger__mdb_err(mdb_env_create(&l->env))) != 0)
    return rc;
  mdb_env_set_maxdbs(l->env, LEDGER_T__COUNT);
  if ((rc = ledger__mdb_err(mdb_env_set_mapsize(l->env, l->map_size))) != 0)
    goto err_env;
  if ((rc = ledger__mdb_err(mdb_env_open(l->env, l->dir, l->env_flags, 0600))) != 0)
    goto err_env;
  bool ro = (l->env_flags & MDB_RDONLY) != 0;
  MDB_txn *txn;
  if ((rc = ledger__mdb_err(mdb_txn_begin(l->env, NULL, ro ? MDB_RDONLY : 0, &txn))) != 0)
    goto err_env;
  /* A new ledger (no dedup table yet) knows that none of its dedup
   * entries expired; one made before it kept that does not. */
  MDB_dbi probe;
  bool fresh = !ro && mdb_dbi_open(txn, table_names[LEDGER_T_DEDUP_TS], 0, &probe) == MDB_NOTFOUND;
  for (int i = 0; i < LEDGER_T__COUNT; i++) {
    rc = ledger__mdb_err(mdb_dbi_open(txn, table_names[i], ro ? 0 : MDB_CREATE, &l->dbi[i]));
    if (rc != 0) {
      mdb_txn_abort(txn);
      goto err_env;
    }
  }
  int64_t none = 0;
  if (fresh && (rc = ledger__put(txn, l->dbi[LEDGER_T_META], LEDGER_META_DEDUP_FLOOR,
                                 strlen(LEDGER_META_DEDUP_FLOOR), &none, sizeof none)) != 0) {
    mdb_txn_abort(txn);
    goto err_env;
  }
  if ((rc = ledger__mdb_err(mdb_txn_commit(txn))) != 0)
    goto err_env;
  ledger__seq_load(l);
  l->dedup_known = false; /* the file may be another one (compaction) */
  return 0;

err_env:
  mdb_env_close(l->env);
  l->env = NULL;
  return rc;
}

int ledger_open(struct ledger **out, const char *dir, const struct ledger_options *opt) {
  struct ledger *l = calloc(1, sizeof *l);
  if (l == NULL)
    return GM_ENOMEM;
  int rc = GM_ENOMEM;
  if ((l->dir = strdup(dir)) == NULL)
    goto err_free;
  if (!opt->read_only && mkdir(dir, 0700) != 0 && errno != EEXIST) {
    rc = GM_EIO;
    goto err_free;
  }
  /* NOTLS: read transactions are not tied to threads, so the HTTP loop and
   * workers can each hold one. NORDAHEAD: random reads on a large map. */
  /* Without per-commit sync (a log is the durability point), WRITEMAP lets a
   * commit update pages in the map directly instead of allocating, copying
   * and pwrite()ing each dirty page: 1.2-1.3x on grouped redeems (bench_core). */
  l->env_flags = MDB_NOTLS | MDB_NORDAHEAD |
                 (opt->read_only ? MDB_RDONLY : opt->no_sync ? MDB_NOSYNC | MDB_WRITEMAP : 0) |
                 (opt->no_lock ? MDB_NOLOCK : 0);
  l->map_size = opt->map_size;
  l->group = opt->group && !opt->read_only;
  if ((rc = env_open(l)) != 0)
    goto err_free;
  mpk_w_init(&l->w);
  *out = l;
  return 0;

err_free:
  free(l->dir);
  free(l);
  return rc;
}

void ledger_close(struct ledger *l) {
  if (l == NULL)
    return;
  ledger__settle(l);
  mpk_w_free(&l->w);
  if (l->env != NULL)
    mdb_env_close(l->env);
  free(l->dir);
  free(l);
}

uint64_t ledger_erasures(const struct ledger *l) { return l->erasures; }

static int fsync_path(const char *path) {
  int fd = open(path, O_RDONLY);
  if (fd < 0)
    return GM_EIO;
  int r = fsync(fd);
  close(fd);
  return r == 0 ? 0 : GM_EIO;
}

int ledger_compact(struct ledger *l) {
  if (l->env_flags & MDB_RDONLY)
    return GM_EINVAL;
  int rc = ledger__settle(l);
  if (rc != 0)
    return rc;
  char tmp[PATH_MAX], from[PATH_MAX], to[PATH_MAX];
  if (snprintf(tmp, sizeof tmp, "%s/compact", l->dir) >= (int)sizeof tmp ||
      snprintf(from, sizeof from, "%s/data.mdb", tmp) >= (int)sizeof from ||
      snprintf(to, sizeof to, "%s/data.mdb", l->dir) >= (int)sizeof to)
    return GM_EINVAL;
  unlink(from); /* left by a copy that was cut short */
  if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
    return GM_EIO;
  rc = ledger__mdb_err(mdb_env_copy2(l->env, tmp, MDB_CP_COMPACT));
  if (rc == 0 && chmod(from, 0600) != 0)
    rc = GM_EIO;
  if (rc == 0)
    rc = fsync_path(from);
  if (rc != 0) {
    unlink(from);
    rmdir(tmp);
    return rc == GM_EIO ? rc : GM_EIO;
  }
  /* The copy is complete and durable: switch to it. A crash from here on
   * leaves either file in place, each a whole ledger. */
  mdb_env_close(l->env);
  l->env = NULL;
  int moved = rename(from, to);
  rmdir(tmp);
  if (moved == 0)
    fsync_path(l->dir);
  if (env_open(l) != 0)
    return GM_ESTATE;
  return moved == 0 ? 0 : GM_EIO;
}

/* The transaction a new read uses. Without LMDB's locks (no_lock) a read
 * borrows the open group: it sees every applied batch and nothing commits
 * (the caller keeps applies out until the read ends). Otherwise the group
 * commits and the read gets its own snapshot. */
static int rd_txn(struct ledger_rd *rd) {
  struct ledger *l = rd->l;
  if (l->held != NULL && (l->env_flags & MDB_NOLOCK)) {
    rd->txn = l->held;
    rd->borrowed = true;
    return 0;
  }
  rd->borrowed = false;
  int rc = ledger__settle(l);
  return rc != 0 ? rc : ledger__mdb_err(mdb_txn_begin(l->env, NULL, MDB_RDONLY, &rd->txn));
}

int ledger_rd_begin(struct ledger *l, struct ledger_rd **out) {
  struct ledger_rd *rd = malloc(sizeof *rd);
  if (rd == NULL)
    return GM_ENOMEM;
  rd->l = l;
  int rc = rd_txn(rd);
  if (rc != 0) {
    free(rd);
    return rc;
  }
  *out = rd;
  return 0;
}

void ledger_rd_park(struct ledger_rd *rd) {
  if (rd->borrowed)
    rd->txn = NULL;
  else
    mdb_txn_reset(rd->txn);
}

int ledger_rd_renew(struct ledger_rd *rd) {
  if (rd->borrowed)
    return rd_txn(rd); /* the group may have committed meanwhile */
  int rc = ledger__settle(rd->l);
  return rc != 0 ? rc : ledger__mdb_err(mdb_txn_renew(rd->txn));
}

void ledger_rd_end(struct ledger_rd *rd) {
  if (rd == NULL)
    return;
  if (!rd->borrowed)
    mdb_txn_abort(rd->txn);
  free(rd);
}

int ledger_event_get(struct ledger_rd *rd, const char *id, struct ledger_event *out) {
  MDB_val v;
  int rc = ledger__get(rd->txn, rd->l->dbi[LEDGER_T_EVENTS], id, strlen(id), &v);
  return rc != 0 ? rc : ledger__event_dec(v.mv_data, v.mv_size, out);
}

int ledger__ticket_read(MDB_txn *txn, struct ledger *l, const char *id,
                        struct ledger_ticket *t) {
  MDB_val v;
  int rc = ledger__get(txn, l->dbi[LEDGER_T_TICKETS], id, strlen(id), &v);
  return rc != 0 ? rc : ledger__ticket_dec(v.mv_data, v.mv_size, t);
}

void ledger__use_of(const struct ledger_ticket *t, struct ledger_use *u) {
  memset(u, 0, sizeof *u);
  memcpy(u->gate, t->used_gate, sizeof u->gate);
  memcpy(u->method, t->used_method, sizeof u->method);
  memcpy(u->cred_id, t->used_cred, sizeof u->cred_id);
  u->used_ms = t->used_ms;
}

int ledger_ticket_get(struct ledger_rd *rd, const char *id, struct ledger_ticket *out) {
  return ledger__ticket_read(rd->txn, rd->l, id, out);
}

int ledger_use_get(struct ledger_rd *rd, const char *ticket_id, struct ledger_use *out) {
  struct ledger_ticket t;
  int rc = ledger__ticket_read(rd->txn, rd->l, ticket_id, &t);
  if (rc != 0)
    return rc;
  if (t.status != LEDGER_TICKET_USED)
    return GM_ENOTFOUND;
  ledger__use_of(&t, out);
  return 0;
}

int ledger_cred_get(struct ledger_rd *rd, const char *method, const char *id,
                    struct ledger_cred *out) {
  char key[LEDGER_METHOD_MAX + LEDGER_ID_MAX + 2];
  if (strlen(method) > LEDGER_METHOD_MAX || strlen(id) > LEDGER_ID_MAX)
    return GM_ENOTFOUND;
  size_t kl = ledger__cred_key(key, method, id);
  MDB_val v;
  int rc = ledger__get(rd->txn, rd->l->dbi[LEDGER_T_CREDS], key, kl, &v);
  return rc != 0 ? rc : ledger__cred_dec(v.mv_data, v.mv_size, out);
}

int ledger_user_get(struct ledger_rd *rd, const char *id, struct ledger_user *out) {
  MDB_val v;
  int rc = ledger__get(rd->txn, rd->l->dbi[LEDGER_T_USERS], id, strlen(id), &v);
  return rc != 0 ? rc : ledger__user_dec(v.mv_data, v.mv_size, out);
}

int ledger_user_by_name(struct ledger_rd *rd, const char *username, struct ledger_user *out) {
  MDB_val v;
  int rc = ledger__get(rd->txn, rd->l->dbi[LEDGER_T_USERNAMES], username, strlen(username), &v);
  if (rc != 0)
    return rc;
  char id[LEDGER_ID_MAX + 1];
  if (gm_strlcpy(id, sizeof id, v.mv_data, v.mv_size) != 0)
    return GM_ECORRUPT;
  return ledger_user_get(rd, id, out);
}

static void kid_key(uint8_t k[4], uint32_t kid) { gm_be32_put(k, kid); }

int ledger_key_get(struct ledger_rd *rd, uint32_t kid, struct ledger_key *out) {
  uint8_t k[4];
  kid_key(k, kid);
  MDB_val v;
  int rc = ledger__get(rd->txn, rd->l->dbi[LEDGER_T_KEYS], k, sizeof k, &v);
  return rc != 0 ? rc : ledger__key_dec(v.mv_data, v.mv_size, out);
}

int ledger_key_current(struct ledger_rd *rd, struct ledger_key *out) {
  MDB_cursor *cur;
  int rc = ledger__mdb_err(mdb_cursor_open(rd->txn, rd->l->dbi[LEDGER_T_KEYS], &cur));
  if (rc != 0)
    return rc;
  MDB_val k, v;
  rc = ledger__mdb_err(mdb_cursor_get(cur, &k, &v, MDB_LAST));
  if (rc == 0)
    rc = ledger__key_dec(v.mv_data, v.mv_size, out);
  mdb_cursor_close(cur);
  return rc;
}

int ledger_key_each(struct ledger_rd *rd, int (*fn)(void *arg, const struct ledger_key *k),
                    void *arg) {
  MDB_cursor *cur;
  int rc = ledger__mdb_err(mdb_cursor_open(rd->txn, rd->l->dbi[LEDGER_T_KEYS], &cur));
  if (rc != 0)
    return rc;
  MDB_val k, v;
  int mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
  rc = 0;
  while (mrc == 0) {
    struct ledger_key key;
    if ((rc = ledger__key_dec(v.mv_data, v.mv_size, &key)) != 0)
      break;
    if (fn(arg, &key) != 0)
      break;
    mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
  }
  mdb_cursor_close(cur);
  return rc;
}

int ledger_method_flag(struct ledger_rd *rd, const char *method) {
  MDB_val v;
  int rc = ledger__get(rd->txn, rd->l->dbi[LEDGER_T_FLAGS], method, strlen(method), &v);
  if (rc != 0)
    return rc;
  return v.mv_size == 1 && ((const uint8_t *)v.mv_data)[0] ? 1 : 0;
}

int ledger_dedup_get(struct ledger_rd *rd, const char *rid, struct ledger_result *out) {
  MDB_val v;
  int rc = ledger__get(rd->txn, rd->l->dbi[LEDGER_T_DEDUP], rid, strlen(rid), &v);
  return rc != 0 ? rc : ledger__result_dec(v.mv_data, v.mv_size, out);
}

int64_t ledger_dedup_floor(struct ledger_rd *rd) {
  MDB_val v;
  int64_t floor;
  if (ledger__get(rd->txn, rd->l->dbi[LEDGER_T_META], LEDGER_META_DEDUP_FLOOR,
                  strlen(LEDGER_META_DEDUP_FLOOR), &v) != 0 ||
      v.mv_size != sizeof floor)
    return INT64_MAX;
  memcpy(&floor, v.mv_data, sizeof floor);
  return floor;
}

int ledger_redeem_get(struct ledger_rd *rd, const char *ticket_id, const char *rid,
                      struct ledger_result *out) {
  struct ledger_ticket t;
  int rc = ledger__ticket_read(rd->txn, rd->l, ticket_id, &t);
  if (rc != 0 && rc != GM_ENOTFOUND)
    return rc;
  return ledger__redeem_seen(rd->l, rd->txn, rid, rc == 0 ? &t : NULL, out);
}

static int count_table(struct ledger_rd *rd, int t, uint64_t *out) {
  MDB_stat st;
  int rc = ledger__mdb_err(mdb_stat(rd->txn, rd->l->dbi[t], &st));
  if (rc == 0)
    *out = st.ms_entries;
  return rc;
}

int ledger_user_count(struct ledger_rd *rd, uint64_t *out) {
  return count_table(rd, LEDGER_T_USERS, out);
}

int ledger_ticket_count(struct ledger_rd *rd, uint64_t *out) {
  return count_table(rd, LEDGER_T_TICKETS, out);
}

int ledger_ticket_pages(struct ledger_rd *rd, uint64_t *out) {
  MDB_stat st;
  int rc = ledger__mdb_err(mdb_stat(rd->txn, rd->l->dbi[LEDGER_T_TICKETS], &st));
  if (rc == 0)
    *out = (uint64_t)st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages;
  return rc;
}

int ledger_incident_count(struct ledger_rd *rd, uint64_t *out) {
  return count_table(rd, LEDGER_T_INCIDENTS, out);
}

int ledger_incident_get(struct ledger_rd *rd, uint64_t origin, uint64_t pseq,
                        struct ledger_incident *out) {
  uint8_t key[16];
  for (int i = 0; i < 8; i++) {
    key[i] = (uint8_t)(origin >> (56 - 8 * i));
    key[8 + i] = (uint8_t)(pseq >> (56 - 8 * i));
  }
  MDB_val v;
  int rc = ledger__get(rd->txn, rd->l->dbi[LEDGER_T_INCIDENTS], key, sizeof key, &v);
  return rc != 0 ? rc : ledger__incident_dec(v.mv_data, v.mv_size, out);
}

int ledger_incident_each(struct ledger_rd *rd,
                         int (*fn)(void *arg, const struct ledger_incident *x), void *arg) {
  MDB_cursor *cur;
  int rc = ledger__mdb_err(mdb_cursor_open(rd->txn, rd->l->dbi[LEDGER_T_INCIDENTS], &cur));
  if (rc != 0)
    return rc;
  MDB_val k, v;
  int mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
  while (mrc == 0) {
    struct ledger_incident x;
    if ((rc = ledger__incident_dec(v.mv_data, v.mv_size, &x)) != 0)
      break;
    if (fn(arg, &x) != 0)
      break;
    mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
  }
  mdb_cursor_close(cur);
  if (rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND)
    rc = ledger__mdb_err(mrc);
  return rc;
}

int ledger_audit_scan(struct ledger_rd *rd, const struct ledger_audit_filter *f,
                      int (*fn)(void *arg, const struct ledger_audit *a), void *arg) {
  MDB_cursor *cur;
  int rc = ledger__mdb_err(mdb_cursor_open(rd->txn, rd->l->dbi[LEDGER_T_AUDIT], &cur));
  if (rc != 0)
    return rc;
  MDB_val k, v;
  uint32_t emitted = 0, scanned = 0;
  int mrc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
  while (mrc == 0 && emitted < f->limit && scanned < LEDGER_AUDIT_SCAN_MAX) {
    scanned++;
    struct mpk_doc d;
    struct ledger_audit a;
    if (mpk_doc_parse(&d, v.mv_data, v.mv_size) != 0) {
      rc = GM_ECORRUPT;
      break;
    }
    rc = ledger__audit_decode(d.root, &a);
    mpk_doc_free(&d);
    if (rc != 0)
      break;
    /* Entries carry their proposer's clock, so seq order is only roughly time
     * order: skip older ones rather than stop at the first. */
    bool recent = a.time_ms >= f->since_ms;
    if (k.mv_size == 8) {
      const uint8_t *kb = k.mv_data;
      a.seq = 0;
      for (int i = 0; i < 8; i++)
        a.seq = a.seq << 8 | kb[i];
    }
    bool match = recent && (!f->ticket_id || strcmp(f->ticket_id, a.ticket_id) == 0) &&
                 (!f->method || strcmp(f->method, a.method) == 0) &&
                 (!f->gate || strcmp(f->gate, a.gate) == 0);
    if (match) {
      emitted++;
      if (fn(arg, &a) != 0)
        break;
    }
    mrc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
  }
  mdb_cursor_close(cur);
  return rc;
}

size_t ledger__pair_key(char *out, const char *a, const char *b) {
  size_t na = strlen(a), nb = strlen(b);
  memcpy(out, a, na);
  out[na] = 0;
  memcpy(out + na + 1, b, nb);
  return na + 1 + nb;
}

/* Walks table from the first key after (after, alen) — from the start when
 * after is NULL — while keys begin with prefix (plen bytes; 0: any), calling
 * fn per entry until it returns non-zero (1 stops cleanly, <0 is an error),
 * at most max entries (0: no limit). */
static int walk(struct ledger_rd *rd, int table, const void *after, size_t alen,
                const void *prefix, size_t plen, uint32_t max,
                int (*fn)(void *arg, const MDB_val *k, const MDB_val *v), void *arg) {
  MDB_cursor *cur;
  int rc = ledger__mdb_err(mdb_cursor_open(rd->txn, rd->l->dbi[table], &cur));
  if (rc != 0)
    return rc;
  MDB_val k, v;
  int mrc;
  if (after != NULL) {
    k.mv_data = (void *)after;
    k.mv_size = alen;
    mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    if (mrc == 0 && k.mv_size == alen && memcmp(k.mv_data, after, alen) == 0)
      mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
  } else if (plen > 0) {
    k.mv_data = (void *)prefix;
    k.mv_size = plen;
    mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
  } else {
    mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
  }
  uint32_t seen = 0;
  while (mrc == 0) {
    if (plen > 0 && (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0))
      break;
    int r = fn(arg, &k, &v);
    if (r < 0)
      rc = r;
    if (r != 0)
      break;
    if (max > 0 && ++seen >= max)
      break;
    mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
  }
  mdb_cursor_close(cur);
  if (rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND)
    rc = ledger__mdb_err(mrc);
  return rc;
}

int ledger_bio_get(struct ledger_rd *rd, const char *ticket_id, struct ledger_bio *out) {
  MDB_val v;
  int rc = ledger__get(rd->txn, rd->l->dbi[LEDGER_T_BIO], ticket_id, strlen(ticket_id), &v);
  return rc != 0 ? rc : ledger__bio_dec(v.mv_data, v.mv_size, out);
}

uint64_t ledger_bio_gen(struct ledger_rd *rd) {
  MDB_val v;
  uint64_t g = 0;
  if (ledger__get(rd->txn, rd->l->dbi[LEDGER_T_META], "bio_gen", 7, &v) == 0 && v.mv_size == 8)
    memcpy(&g, v.mv_data, 8);
  return g;
}

struct walk_log {
  int (*fn)(void *arg, uint64_t gen, const char *ticket_id);
  void *arg;
};

static int log_entry(void *arg, const MDB_val *k, const MDB_val *v) {
  struct walk_log *w = arg;
  char id[LEDGER_ID_MAX + 1];
  if (k->mv_size != 8 || gm_strlcpy(id, sizeof id, v->mv_data, v->mv_size) != 0)
    return GM_ECORRUPT;
  uint64_t g = 0;
  for (int i = 0; i < 8; i++)
    g = g << 8 | ((const uint8_t *)k->mv_data)[i];
  return w->fn(w->arg, g, id);
}

int ledger_bio_log_each(struct ledger_rd *rd, uint64_t after,
                        int (*fn)(void *arg, uint64_t gen, const char *ticket_id), void *arg) {
  uint8_t key[8];
  for (int i = 7; i >= 0; i--) {
    key[i] = (uint8_t)after;
    after >>= 8;
  }
  struct walk_log w = {fn, arg};
  return walk(rd, LEDGER_T_BIO_LOG, key, 8, NULL, 0, 0, log_entry, &w);
}

struct walk_bio {
  int (*fn)(void *arg, const struct ledger_bio *b);
  void *arg;
  struct ledger_bio *b;
};

static int bio_entry(void *arg, const MDB_val *k, const MDB_val *v) {
  struct walk_bio *w = arg;
  if (ledger__bio_dec(v->mv_data, v->mv_size, w->b) != 0)
    return GM_ECORRUPT;
  return w->fn(w->arg, w->b);
}

int ledger_bio_each(struct ledger_rd *rd, int (*fn)(void *arg, const struct ledger_bio *b),
                    void *arg) {
  struct walk_bio w = {fn, arg, malloc(sizeof(struct ledger_bio))};
  if (w.b == NULL)
    return GM_ENOMEM;
  int rc = walk(rd, LEDGER_T_BIO, NULL, 0, NULL, 0, 0, bio_entry, &w);
  sodium_memzero(w.b, sizeof *w.b);
  free(w.b);
  return rc;
}

struct walk_rcpt {
  int (*fn)(void *arg, const struct ledger_bio_receipt *r);
  void *arg;
  size_t plen;
};

static int rcpt_entry(void *arg, const MDB_val *k, const MDB_val *v) {
  struct walk_rcpt *w = arg;
  struct ledger_bio_receipt r;
  memset(&r, 0, sizeof r);
  const char *key = k->mv_data;
  if (v->mv_size != 8 || w->plen > LEDGER_ID_MAX + 1 ||
      gm_strlcpy(r.ticket_id, sizeof r.ticket_id, key, w->plen - 1) != 0 ||
      gm_strlcpy(r.gate, sizeof r.gate, key + w->plen, k->mv_size - w->plen) != 0)
    return GM_ECORRUPT;
  uint64_t t = 0;
  for (int i = 0; i < 8; i++)
    t = t << 8 | ((const uint8_t *)v->mv_data)[i];
  r.erased_ms = (int64_t)t;
  return w->fn(w->arg, &r);
}

int ledger_bio_receipt_each(struct ledger_rd *rd, const char *ticket_id,
                            int (*fn)(void *arg, const struct ledger_bio_receipt *r),
                            void *arg) {
  size_t n = strlen(ticket_id);
  if (n > LEDGER_ID_MAX)
    return 0;
  char prefix[LEDGER_ID_MAX + 1];
  memcpy(prefix, ticket_id, n + 1);
  struct walk_rcpt w = {fn, arg, n + 1};
  return walk(rd, LEDGER_T_BIO_RCPT, NULL, 0, prefix, n + 1, 0, rcpt_entry, &w);
}

bool ledger_bio_receipt_has(struct ledger_rd *rd, const char *ticket_id, const char *gate) {
  char key[LEDGER_ID_MAX + LEDGER_GATE_MAX + 2];
  if (strlen(ticket_id) > LEDGER_ID_MAX || strlen(gate) > LEDGER_GATE_MAX)
    return false;
  size_t kl = ledger__pair_key(key, ticket_id, gate);
  MDB_val v;
  return ledger__get(rd->txn, rd->l->dbi[LEDGER_T_BIO_RCPT], key, kl, &v) == 0;
}

struct walk_zone {
  int (*fn)(void *arg, const struct ledger_zone *z);
  void *arg;
};

static int zone_entry(void *arg, const MDB_val *k, const MDB_val *v) {
  struct walk_zone *w = arg;
  struct ledger_zone z;
  if (ledger__zone_dec(v->mv_data, v->mv_size, &z) != 0)
    return GM_ECORRUPT;
  return w->fn(w->arg, &z);
}

int ledger_zone_each(struct ledger_rd *rd, const char *event_id,
                     int (*fn)(void *arg, const struct ledger_zone *z), void *arg) {
  size_t n = strlen(event_id);
  if (n > LEDGER_ID_MAX)
    return 0;
  char prefix[LEDGER_ID_MAX + 1];
  memcpy(prefix, event_id, n + 1);
  struct walk_zone w = {fn, arg};
  return walk(rd, LEDGER_T_ZONES, NULL, 0, prefix, n + 1, 0, zone_entry, &w);
}

struct walk_event {
  int (*fn)(void *arg, const struct ledger_event *e);
  void *arg;
};

static int event_entry(void *arg, const MDB_val *k, const MDB_val *v) {
  struct walk_event *w = arg;
  struct ledger_event e;
  if (ledger__event_dec(v->mv_data, v->mv_size, &e) != 0)
    return GM_ECORRUPT;
  return w->fn(w->arg, &e);
}

int ledger_event_each(struct ledger_rd *rd, int (*fn)(void *arg, const struct ledger_event *e),
                      void *arg) {
  struct walk_event w = {fn, arg};
  return walk(rd, LEDGER_T_EVENTS, NULL, 0, NULL, 0, 0, event_entry, &w);
}

struct walk_ticket {
  int (*fn)(void *arg, const struct ledger_ticket *t);
  void *arg;
};

static int ticket_entry(void *arg, const MDB_val *k, const MDB_val *v) {
  struct walk_ticket *w = arg;
  struct ledger_ticket t;
  if (ledger__ticket_dec(v->mv_data, v->mv_size, &t) != 0)
    return GM_ECORRUPT;
  return w->fn(w->arg, &t);
}

int ledger_ticket_scan(struct ledger_rd *rd, const char *after, uint32_t max,
                       int (*fn)(void *arg, const struct ledger_ticket *t), void *arg) {
  struct walk_ticket w = {fn, arg};
  return walk(rd, LEDGER_T_TICKETS, after && after[0] ? after : NULL, after ? strlen(after) : 0,
              NULL, 0, max, ticket_entry, &w);
}

struct walk_cred {
  int (*fn)(void *arg, const struct ledger_cred *c);
  void *arg;
};

static int cred_entry(void *arg, const MDB_val *k, const MDB_val *v) {
  struct walk_cred *w = arg;
  struct ledger_cred c;
  if (ledger__cred_dec(v->mv_data, v->mv_size, &c) != 0)
    return GM_ECORRUPT;
  return w->fn(w->arg, &c);
}

int ledger_cred_scan(struct ledger_rd *rd, const char *after_method, const char *after_id,
                     uint32_t max, int (*fn)(void *arg, const struct ledger_cred *c),
                     void *arg) {
  char key[LEDGER_METHOD_MAX + LEDGER_ID_MAX + 2];
  size_t kl = 0;
  bool from = after_method && after_method[0] && strlen(after_method) <= LEDGER_METHOD_MAX &&
              after_id && strlen(after_id) <= LEDGER_ID_MAX;
  if (from)
    kl = ledger__cred_key(key, after_method, after_id);
  struct walk_cred w = {fn, arg};
  return walk(rd, LEDGER_T_CREDS, from ? key : NULL, kl, NULL, 0, max, cred_entry, &w);
}
