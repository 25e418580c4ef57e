/* prov.c — the store of provisional admissions heard through gossip. */
#include "gossip/prov.h"

#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/err.h"

struct origin {
  uint64_t id;
  uint64_t contig; /* every seq in 1..contig was received (or pruned) */
  uint64_t pruned;
  struct prov_rec **recs; /* sorted by seq, all > pruned */
  size_t n, cap;
};

struct prov {
  size_t max, count;
  uint8_t hkey[crypto_shorthash_KEYBYTES];
  struct origin origins[PROV_ORIGINS_MAX];
  size_t n_origins;
  struct prov_rec **index; /* open addressing by credential; the first heard */
  size_t index_cap;        /* a power of two, at least 2 x max */
};

static uint64_t hash(const struct prov *p, const uint8_t *key, size_t len) {
  uint8_t h[crypto_shorthash_BYTES];
  crypto_shorthash(h, key, len, p->hkey);
  return gm_le64_get(h);
}

struct prov *prov_create(size_t max_records, const uint8_t hash_key[16]) {
  if (max_records == 0)
    return NULL;
  struct prov *p = calloc(1, sizeof *p);
  if (p == NULL)
    return NULL;
  p->max = max_records;
  memcpy(p->hkey, hash_key, sizeof p->hkey);
  p->index_cap = 16;
  while (p->index_cap < 2 * max_records)
    p->index_cap <<= 1;
  p->index = calloc(p->index_cap, sizeof *p->index);
  if (p->index == NULL) {
    free(p);
    return NULL;
  }
  return p;
}

void prov_destroy(struct prov *p) {
  if (p == NULL)
    return;
  for (size_t i = 0; i < p->n_origins; i++) {
    for (size_t k = 0; k < p->origins[i].n; k++)
      free(p->origins[i].recs[k]);
    free(p->origins[i].recs);
  }
  free(p->index);
  free(p);
}

/* Origins are kept sorted by id: a lookup is a binary search, and a digest
 * (written in this order) is read alongside in one pass. */
static size_t origin_at(const struct prov *p, uint64_t id) {
  size_t lo = 0, hi = p->n_origins;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (p->origins[mid].id < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static struct origin *origin_of(const struct prov *p, uint64_t id) {
  size_t i = origin_at(p, id);
  return i < p->n_origins && p->origins[i].id == id ? (struct origin *)&p->origins[i] : NULL;
}

/* Position of seq in o->recs, or where it would go; *found when present. */
static size_t find_seq(const struct origin *o, uint64_t seq, bool *found) {
  size_t lo = 0, hi = o->n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (o->recs[mid]->seq < seq)
      lo = mid + 1;
    else
      hi = mid;
  }
  *found = lo < o->n && o->recs[lo]->seq == seq;
  return lo;
}

/* Every record is in the index (linear probing); records of one
 * credential sit along one probe chain in the order they were heard, so a
 * lookup finds the first heard that is still held. */
static void index_put(struct prov *p, struct prov_rec *r) {
  size_t mask = p->index_cap - 1, i = (size_t)hash(p, r->key, r->key_len) & mask;
  while (p->index[i] != NULL)
    i = (i + 1) & mask;
  p->index[i] = r;
}

/* Removes r, shifting back the entries after it that probed past its slot
 * (no tombstones: lookups stay short however much is pruned). */
static void index_del(struct prov *p, const struct prov_rec *r) {
  size_t mask = p->index_cap - 1, i = (size_t)hash(p, r->key, r->key_len) & mask;
  while (p->index[i] != r) {
    if (p->index[i] == NULL)
      return;
    i = (i + 1) & mask;
  }
  for (size_t j = i;;) {
    j = (j + 1) & mask;
    struct prov_rec *e = p->index[j];
    if (e == NULL)
      break;
    size_t home = (size_t)hash(p, e->key, e->key_len) & mask;
    /* e stays if its home lies cyclically in (i, j]. */
    bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
    if (stays)
      continue;
    p->index[i] = e;
    i = j;
  }
  p->index[i] = NULL;
}

const struct prov_rec *prov_lookup(const struct prov *p, const uint8_t *key, size_t len) {
  if (len == 0 || len > PROV_KEY_MAX)
    return NULL;
  size_t mask = p->index_cap - 1, i = (size_t)hash(p, key, len) & mask;
  for (;; i = (i + 1) & mask) {
    const struct prov_rec *e = p->index[i];
    if (e == NULL)
      return NULL;
    if (e->key_len == len && memcmp(e->key, key, len) == 0)
      return e;
  }
}

static void advance(struct origin *o) {
  bool found = true;
  while (found) {
    find_seq(o, o->contig + 1, &found);
    if (found)
      o->contig++;
  }
}

static struct origin *origin_add(struct prov *p, uint64_t id) {
  size_t i = origin_at(p, id);
  if (i < p->n_origins && p->origins[i].id == id)
    return &p->origins[i];
  if (p->n_origins == PROV_ORIGINS_MAX)
    return NULL;
  memmove(&p->origins[i + 1], &p->origins[i], (p->n_origins - i) * sizeof *p->origins);
  p->n_origins++;
  struct origin *o = &p->origins[i];
  memset(o, 0, sizeof *o);
  o->id = id;
  return o;
}

int prov_add(struct prov *p, const struct prov_rec *r) {
  if (r->origin == 0 || r->seq == 0 || r->key_len == 0 || r->key_len > PROV_KEY_MAX)
    return GM_EINVAL;
  struct origin *o = origin_add(p, r->origin);
  if (o == NULL)
    return GM_EFULL;
  if (r->seq <= o->pruned)
    return 0;
  bool found;
  size_t at = find_seq(o, r->seq, &found);
  if (found)
    return 0;
  if (p->count == p->max)
    return GM_EFULL;
  if (o->n == o->cap) {
    size_t cap = o->cap ? o->cap * 2 : 64;
    struct prov_rec **v = realloc(o->recs, cap * sizeof *v);
    if (v == NULL)
      return GM_ENOMEM;
    o->recs = v;
    o->cap = cap;
  }
  struct prov_rec *copy = malloc(sizeof *copy);
  if (copy == NULL)
    return GM_ENOMEM;
  *copy = *r;
  memset(copy->key + copy->key_len, 0, PROV_KEY_MAX - copy->key_len);
  memmove(o->recs + at + 1, o->recs + at, (o->n - at) * sizeof *o->recs);
  o->recs[at] = copy;
  o->n++;
  p->count++;
  index_put(p, copy);
  advance(o);
  return 1;
}

uint64_t prov_contiguous(const struct prov *p, uint64_t origin) {
  const struct origin *o = origin_of(p, origin);
  return o ? o->contig : 0;
}

uint64_t prov_next_seq(const struct prov *p, uint64_t origin) {
  const struct origin *o = origin_of(p, origin);
  if (o == NULL)
    return 1;
  uint64_t top = o->n ? o->recs[o->n - 1]->seq : o->pruned;
  return (top > o->contig ? top : o->contig) + 1;
}

size_t prov_count(const struct prov *p) { return p->count; }

size_t prov_origins(const struct prov *p, uint64_t *ids, size_t cap) {
  size_t k = 0;
  for (size_t i = 0; i < p->n_origins && k < cap; i++)
    ids[k++] = p->origins[i].id;
  return k;
}

const struct prov_rec *prov_first(const struct prov *p, uint64_t origin) {
  const struct origin *o = origin_of(p, origin);
  return o && o->n ? o->recs[0] : NULL;
}

const struct prov_rec *prov_get(const struct prov *p, uint64_t origin, uint64_t seq) {
  const struct origin *o = origin_of(p, origin);
  if (o == NULL)
    return NULL;
  bool found;
  size_t at = find_seq(o, seq, &found);
  return found ? o->recs[at] : NULL;
}

void prov_skip(struct prov *p, uint64_t origin, uint64_t upto) {
  struct origin *o = origin_add(p, origin);
  if (o == NULL || upto <= o->contig)
    return;
  o->contig = upto;
  advance(o);
}

void prov_prune(struct prov *p, uint64_t origin, uint64_t upto) {
  struct origin *o = origin_add(p, origin);
  if (o == NULL || upto <= o->pruned)
    return;
  size_t k = 0;
  while (k < o->n && o->recs[k]->seq <= upto)
    k++;
  if (k > 0) {
    for (size_t i = 0; i < k; i++) {
      index_del(p, o->recs[i]);
      free(o->recs[i]);
    }
    memmove(o->recs, o->recs + k, (o->n - k) * sizeof *o->recs);
    o->n -= k;
    p->count -= k;
  }
  o->pruned = upto;
  if (o->contig < upto)
    o->contig = upto;
  advance(o);
}

int prov_digest(const struct prov *p, uint8_t *out, size_t cap) {
  size_t need = 2 + 16 * p->n_origins;
  if (cap < need)
    return GM_ETOOBIG;
  gm_le16_put(out, (uint16_t)p->n_origins);
  for (size_t i = 0; i < p->n_origins; i++) {
    gm_le64_put(out + 2 + 16 * i, p->origins[i].id);
    gm_le64_put(out + 10 + 16 * i, p->origins[i].contig);
  }
  return (int)need;
}

/* A peer's digest, read alongside this store's origins (both ascending by
 * id). A digest out of order (not one this code wrote) is searched whole
 * for each origin instead. */
struct digest_rd {
  const uint8_t *d;
  size_t count, at;
  bool sorted;
};

static void digest_rd_init(struct digest_rd *r, const uint8_t *d) {
  r->d = d;
  r->count = gm_le16_get(d);
  r->at = 0;
  r->sorted = true;
  for (size_t k = 1; k < r->count && r->sorted; k++)
    r->sorted = gm_le64_get(d + 2 + 16 * (k - 1)) < gm_le64_get(d + 2 + 16 * k);
}

/* What the peer holds of origin `id` (0: nothing); ids asked ascending. */
static uint64_t digest_have(struct digest_rd *r, uint64_t id) {
  const uint8_t *d = r->d;
  if (!r->sorted) {
    uint64_t have = 0;
    for (size_t k = 0; k < r->count; k++)
      if (gm_le64_get(d + 2 + 16 * k) == id)
        have = gm_le64_get(d + 10 + 16 * k);
    return have;
  }
  while (r->at < r->count && gm_le64_get(d + 2 + 16 * r->at) < id)
    r->at++;
  return r->at < r->count && gm_le64_get(d + 2 + 16 * r->at) == id
             ? gm_le64_get(d + 10 + 16 * r->at)
             : 0;
}

int prov_missing(const struct prov *p, const uint8_t *d, size_t n, size_t max,
                 void (*fn)(void *arg, const struct prov_rec *r), void *arg) {
  if (n < 2)
    return GM_EDECODE;
  size_t count = gm_le16_get(d);
  if (count > PROV_ORIGINS_MAX || n != 2 + 16 * count)
    return GM_EDECODE;
  struct digest_rd dr;
  digest_rd_init(&dr, d);
  size_t sent = 0;
  for (size_t i = 0; i < p->n_origins && sent < max; i++) {
    const struct origin *o = &p->origins[i];
    uint64_t have = digest_have(&dr, o->id);
    bool found;
    for (size_t j = find_seq(o, have + 1, &found); j < o->n && sent < max; j++, sent++)
      fn(arg, o->recs[j]);
  }
  return (int)sent;
}

int prov_rec_encode(const struct prov_rec *r, uint8_t *out, size_t cap) {
  size_t ml = strnlen(r->method, sizeof r->method), gl = strnlen(r->gate, sizeof r->gate);
  size_t need = 35 + (size_t)r->key_len + ml + gl;
  if (r->key_len > PROV_KEY_MAX || ml > PROV_METHOD_MAX || gl > PROV_GATE_MAX || cap < need)
    return GM_ETOOBIG;
  gm_le64_put(out, r->origin);
  gm_le64_put(out + 8, r->seq);
  gm_le64_put(out + 16, r->epoch);
  gm_le64_put(out + 24, (uint64_t)r->time_ms);
  uint8_t *p = out + 32;
  *p++ = r->key_len;
  memcpy(p, r->key, r->key_len);
  p += r->key_len;
  *p++ = (uint8_t)ml;
  memcpy(p, r->method, ml);
  p += ml;
  *p++ = (uint8_t)gl;
  memcpy(p, r->gate, gl);
  return (int)need;
}

/* A length-prefixed string at p[*at..n) into dst (NUL-terminated). */
static int read_str(const uint8_t *p, size_t n, size_t *at, char *dst, size_t max) {
  if (*at >= n || p[*at] > max || n - *at - 1 < p[*at])
    return GM_EDECODE;
  size_t len = p[*at];
  memcpy(dst, p + *at + 1, len);
  dst[len] = 0;
  if (memchr(dst, 0, len) != NULL)
    return GM_EDECODE;
  *at += 1 + len;
  return 0;
}

int prov_rec_decode(const uint8_t *p, size_t n, struct prov_rec *r) {
  if (n < 33)
    return GM_EDECODE;
  memset(r, 0, sizeof *r);
  r->origin = gm_le64_get(p);
  r->seq = gm_le64_get(p + 8);
  r->epoch = gm_le64_get(p + 16);
  r->time_ms = (int64_t)gm_le64_get(p + 24);
  r->key_len = p[32];
  if (r->key_len == 0 || r->key_len > PROV_KEY_MAX || n < 33 + (size_t)r->key_len ||
      r->origin == 0 || r->seq == 0)
    return GM_EDECODE;
  memcpy(r->key, p + 33, r->key_len);
  size_t at = 33 + (size_t)r->key_len;
  if (read_str(p, n, &at, r->method, PROV_METHOD_MAX) != 0 ||
      read_str(p, n, &at, r->gate, PROV_GATE_MAX) != 0)
    return GM_EDECODE;
  return (int)at;
}

/* ------------------------------------------------------------- messages */

int prov_msg_push(const struct prov_rec *const *recs, size_t n, uint8_t *out, size_t cap,
                  size_t *taken) {
  *taken = 0;
  if (cap < 2)
    return GM_ETOOBIG;
  out[0] = PROV_MSG_PUSH;
  size_t at = 2, k = 0;
  while (k < n && k < 255) {
    int len = prov_rec_encode(recs[k], out + at, cap - at);
    if (len < 0)
      break;
    at += (size_t)len;
    k++;
  }
  out[1] = (uint8_t)k;
  *taken = k;
  return k == 0 && n > 0 ? GM_ETOOBIG : (int)at;
}

int prov_msg_digest(const struct prov *p, uint8_t *out, size_t cap) {
  if (cap < 1)
    return GM_ETOOBIG;
  out[0] = PROV_MSG_DIGEST;
  int len = prov_digest(p, out + 1, cap - 1);
  return len < 0 ? len : len + 1;
}

struct reply_ctx {
  uint8_t *out;
  size_t cap, at;
  uint8_t count;
};

static void reply_add(void *arg, const struct prov_rec *r) {
  struct reply_ctx *c = arg;
  if (c->count == 255)
    return;
  int len = prov_rec_encode(r, c->out + c->at, c->cap - c->at);
  if (len < 0)
    return; /* full: the next digest asks again */
  c->at += (size_t)len;
  c->count++;
}

int prov_msg_recv(struct prov *p, const uint8_t *body, size_t n,
                  void (*on_new)(void *arg, const struct prov_rec *r), void *arg,
                  uint8_t *reply, size_t reply_cap, size_t *reply_len) {
  *reply_len = 0;
  if (n < 1)
    return GM_EDECODE;
  if (body[0] == PROV_MSG_DIGEST) {
    const uint8_t *d = body + 1;
    size_t dn = n - 1;
    if (dn < 2 || dn != 2 + 16 * (size_t)gm_le16_get(d) || gm_le16_get(d) > PROV_ORIGINS_MAX)
      return GM_EDECODE;
    /* Where the peer is behind what this store pruned (records the ledger
     * has), it is told to skip ahead: it will never get those records. */
    struct digest_rd dr;
    digest_rd_init(&dr, d);
    size_t nmarks = 0, room = reply_cap < 3 ? 0 : (reply_cap - 3) / 16 / 4;
    for (size_t i = 0; i < p->n_origins && nmarks < PROV_MARKS_MAX && nmarks < room; i++) {
      const struct origin *o = &p->origins[i];
      uint64_t have = digest_have(&dr, o->id);
      if (have < o->pruned) {
        gm_le64_put(reply + 2 + 16 * nmarks, o->id);
        gm_le64_put(reply + 10 + 16 * nmarks, o->pruned);
        nmarks++;
      }
    }
    size_t head = 2 + 16 * nmarks + 1;
    if (reply_cap < head)
      return GM_ETOOBIG;
    struct reply_ctx c = {reply, reply_cap, head, 0};
    int rc = prov_missing(p, d, dn, PROV_REPLY_MAX, reply_add, &c);
    if (rc < 0)
      return rc;
    if (c.count > 0 || nmarks > 0) {
      reply[0] = PROV_MSG_ANSWER;
      reply[1] = (uint8_t)nmarks;
      reply[head - 1] = c.count;
      *reply_len = c.at;
    }
    return 0;
  }
  size_t at, nmarks = 0;
  if (body[0] == PROV_MSG_ANSWER) {
    if (n < 3)
      return GM_EDECODE;
    nmarks = body[1];
    if (nmarks > PROV_MARKS_MAX || n < 3 + 16 * nmarks)
      return GM_EDECODE;
    at = 2 + 16 * nmarks;
  } else if (body[0] == PROV_MSG_PUSH && n >= 2) {
    at = 1;
  } else {
    return GM_EDECODE;
  }
  /* Decoded whole before anything is added: a malformed packet adds nothing. */
  size_t count = body[at++];
  size_t first = at;
  struct prov_rec r;
  for (size_t k = 0; k < count; k++) {
    int len = prov_rec_decode(body + at, n - at, &r);
    if (len < 0)
      return GM_EDECODE;
    at += (size_t)len;
  }
  if (at != n)
    return GM_EDECODE;
  for (size_t k = 0; k < nmarks; k++)
    prov_skip(p, gm_le64_get(body + 2 + 16 * k), gm_le64_get(body + 10 + 16 * k));
  at = first;
  for (size_t k = 0; k < count; k++) {
    at += (size_t)prov_rec_decode(body + at, n - at, &r);
    int rc = prov_add(p, &r);
    if (rc == GM_EFULL)
      return rc;
    if (rc == 1 && on_new)
      on_new(arg, &r);
  }
  return 0;
}
