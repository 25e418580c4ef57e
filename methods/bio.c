/*
 * bio.c — biometric templates: sealing, the locked in-memory index, 1:1 and
 * 1:N matching (see bio.h).
 */
#include "bio.h"

#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "../lib/buf.h"
#include "../lib/err.h"

void bio_key_derive(const uint8_t cluster_key[32], uint8_t bio_key[32]) {
  crypto_kdf_derive_from_key(bio_key, 32, 3, "gm-bio__", cluster_key);
}

int bio_template_parse(struct method_env *env, const json_t *arr, uint32_t dim, float *out) {
  if (!json_is_array(arr))
    return method__einval(env, "template must be an array of numbers");
  if (json_array_size(arr) != dim)
    return method__einval(env, "template must have %u numbers, not %zu", dim,
                          json_array_size(arr));
  double norm = 0;
  for (uint32_t i = 0; i < dim; i++) {
    const json_t *x = json_array_get(arr, i);
    if (!json_is_number(x))
      return method__einval(env, "template[%u] is not a number", i);
    double v = json_number_value(x);
    if (!isfinite(v) || fabs(v) > 1e6)
      return method__einval(env, "template[%u] is not a finite number", i);
    out[i] = (float)v;
    norm += v * v;
  }
  if (!(norm > 1e-12))
    return method__einval(env, "template has norm 0");
  double inv = 1.0 / sqrt(norm);
  for (uint32_t i = 0; i < dim; i++)
    out[i] = (float)(out[i] * inv);
  return 0;
}

static size_t ad_make(uint8_t *ad, const char *what, const char *ticket_id) {
  size_t a = strlen(what), t = strlen(ticket_id);
  memcpy(ad, what, a);
  memcpy(ad + a, ticket_id, t);
  return a + t;
}

int bio_seal(const uint8_t bio_key[32], const char *ticket_id, const float *v, uint32_t dim,
             void (*random)(void *arg, void *out, size_t n), void *random_arg,
             uint8_t wrapped[LEDGER_BIO_WRAPPED_LEN], uint8_t *ct, size_t *ct_len) {
  if (dim == 0 || dim > LEDGER_BIO_DIM_MAX || strlen(ticket_id) > LEDGER_ID_MAX)
    return GM_EINVAL;
  uint8_t dk[32], ad[16 + LEDGER_ID_MAX];
  random(random_arg, dk, sizeof dk);
  random(random_arg, ct, 24);
  random(random_arg, wrapped, 24);
  size_t pl = 4 * (size_t)dim;
  uint8_t *pt = sodium_malloc(pl);
  if (pt == NULL)
    return GM_ENOMEM;
  for (uint32_t i = 0; i < dim; i++) {
    uint32_t u;
    memcpy(&u, &v[i], 4);
    gm_le32_put(pt + 4 * i, u); /* little endian on every host */
  }
  unsigned long long cl, wl;
  size_t al = ad_make(ad, "gm-bio-v1|", ticket_id);
  crypto_aead_xchacha20poly1305_ietf_encrypt(ct + 24, &cl, pt, pl, ad, al, NULL, ct, dk);
  al = ad_make(ad, "gm-bio-wk|", ticket_id);
  crypto_aead_xchacha20poly1305_ietf_encrypt(wrapped + 24, &wl, dk, sizeof dk, ad, al, NULL,
                                             wrapped, bio_key);
  sodium_free(pt);
  sodium_memzero(dk, sizeof dk);
  *ct_len = 24 + (size_t)cl;
  return 0;
}

int bio_open(const uint8_t bio_key[32], const struct ledger_bio *b, float *out) {
  if (b->ct_len == 0)
    return GM_ESTATE;
  if (b->ct_len != 24 + 4 * (size_t)b->dim + 16)
    return GM_ECORRUPT;
  uint8_t dk[32], ad[16 + LEDGER_ID_MAX];
  unsigned long long n;
  size_t al = ad_make(ad, "gm-bio-wk|", b->ticket_id);
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(dk, &n, NULL, b->wrapped + 24,
                                                 LEDGER_BIO_WRAPPED_LEN - 24, ad, al,
                                                 b->wrapped, bio_key) != 0 ||
      n != sizeof dk)
    return GM_ECRYPTO;
  size_t pl = 4 * (size_t)b->dim;
  uint8_t *pt = sodium_malloc(pl);
  if (pt == NULL) {
    sodium_memzero(dk, sizeof dk);
    return GM_ENOMEM;
  }
  al = ad_make(ad, "gm-bio-v1|", b->ticket_id);
  int rc = crypto_aead_xchacha20poly1305_ietf_decrypt(pt, &n, NULL, b->ct + 24, b->ct_len - 24,
                                                      ad, al, b->ct, dk) == 0 && n == pl
               ? 0
               : GM_ECRYPTO;
  sodium_memzero(dk, sizeof dk);
  if (rc == 0)
    for (uint32_t i = 0; i < b->dim; i++) {
      uint32_t u = gm_le32_get(pt + 4 * i);
      memcpy(&out[i], &u, 4);
    }
  sodium_free(pt);
  return rc;
}

double bio_dot(const float *a, const float *b, uint32_t dim) {
  double s = 0;
  for (uint32_t i = 0; i < dim; i++)
    s += (double)a[i] * b[i];
  return s;
}

/* --- the index ------------------------------------------------------------ */

typedef float v8f __attribute__((vector_size(32)));

struct bio_index {
  uint32_t dim;
  uint32_t stride;  /* floats per row: dim rounded up to 16 */
  float *rows;      /* cap * stride floats, locked */
  size_t rows_bytes;
  size_t n, cap;
  char (*ids)[LEDGER_ID_MAX + 1];
  uint32_t *map;    /* open addressing: row + 1, 0 = empty */
  size_t map_cap;   /* power of two, >= 2 * cap */
  bool locked;
  uint64_t gen;
  uint64_t skipped;
  float *scratch;   /* one row, locked with the rest */
};

static uint64_t id_hash(const char *s) {
  uint64_t h = 1469598103934665603ULL;
  for (; *s; s++)
    h = (h ^ (uint8_t)*s) * 1099511628211ULL;
  return h;
}

/* Locked, dump-excluded anonymous memory. */
static void *locked_alloc(size_t bytes, bool *locked) {
  void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    return NULL;
  madvise(p, bytes, MADV_DONTDUMP);
  if (mlock(p, bytes) != 0)
    *locked = false;
  return p;
}

static void locked_free(void *p, size_t bytes) {
  if (p == NULL)
    return;
  sodium_memzero(p, bytes);
  munlock(p, bytes);
  munmap(p, bytes);
}

static int grow(struct bio_index *ix, size_t cap) {
  size_t bytes = cap * ix->stride * sizeof(float);
  bool locked = ix->locked;
  float *rows = locked_alloc(bytes, &locked);
  if (rows == NULL)
    return GM_ENOMEM;
  void *ids = realloc(ix->ids, cap * sizeof *ix->ids);
  size_t mcap = 16;
  while (mcap < 2 * cap)
    mcap *= 2;
  uint32_t *map = calloc(mcap, sizeof *map);
  if (ids == NULL || map == NULL) {
    locked_free(rows, bytes);
    free(map);
    if (ids)
      ix->ids = ids;
    return GM_ENOMEM;
  }
  ix->ids = ids;
  if (ix->n > 0)
    memcpy(rows, ix->rows, ix->n * ix->stride * sizeof(float));
  locked_free(ix->rows, ix->rows_bytes);
  ix->rows = rows;
  ix->rows_bytes = bytes;
  ix->locked = locked;
  ix->cap = cap;
  free(ix->map);
  ix->map = map;
  ix->map_cap = mcap;
  for (size_t r = 0; r < ix->n; r++) {
    size_t i = id_hash(ix->ids[r]) & (mcap - 1);
    while (map[i] != 0)
      i = (i + 1) & (mcap - 1);
    map[i] = (uint32_t)r + 1;
  }
  return 0;
}

int bio_index_open(struct bio_index **out, uint32_t dim) {
  if (dim == 0 || dim > LEDGER_BIO_DIM_MAX)
    return GM_EINVAL;
  struct bio_index *ix = calloc(1, sizeof *ix);
  if (ix == NULL)
    return GM_ENOMEM;
  ix->dim = dim;
  ix->stride = (dim + 15) / 16 * 16;
  ix->locked = true;
  ix->scratch = locked_alloc(ix->stride * sizeof(float), &ix->locked);
  int rc = ix->scratch ? grow(ix, 64) : GM_ENOMEM;
  if (rc != 0) {
    bio_index_close(ix);
    return rc;
  }
  *out = ix;
  return 0;
}

void bio_index_close(struct bio_index *ix) {
  if (ix == NULL)
    return;
  locked_free(ix->rows, ix->rows_bytes);
  if (ix->scratch)
    locked_free(ix->scratch, ix->stride * sizeof(float));
  free(ix->ids);
  free(ix->map);
  free(ix);
}

/* The map slot holding ticket_id's row, or the empty slot where it goes. */
static size_t map_find(const struct bio_index *ix, const char *ticket_id) {
  size_t i = id_hash(ticket_id) & (ix->map_cap - 1);
  while (ix->map[i] != 0 && strcmp(ix->ids[ix->map[i] - 1], ticket_id) != 0)
    i = (i + 1) & (ix->map_cap - 1);
  return i;
}

const float *bio_index_get(const struct bio_index *ix, const char *ticket_id) {
  size_t i = map_find(ix, ticket_id);
  return ix->map[i] ? ix->rows + (size_t)(ix->map[i] - 1) * ix->stride : NULL;
}

int bio_index_put(struct bio_index *ix, const char *ticket_id, const float *v) {
  if (strlen(ticket_id) > LEDGER_ID_MAX)
    return GM_EINVAL;
  size_t i = map_find(ix, ticket_id);
  size_t r;
  if (ix->map[i] != 0) {
    r = ix->map[i] - 1;
  } else {
    if (ix->n == ix->cap) {
      int rc = grow(ix, ix->cap * 2);
      if (rc != 0)
        return rc;
      i = map_find(ix, ticket_id);
    }
    r = ix->n++;
    strcpy(ix->ids[r], ticket_id);
    ix->map[i] = (uint32_t)r + 1;
  }
  float *row = ix->rows + r * ix->stride;
  memcpy(row, v, ix->dim * sizeof(float));
  memset(row + ix->dim, 0, (ix->stride - ix->dim) * sizeof(float));
  return 0;
}

/* Removes map slot i, shifting back the entries of its probe run (no
 * tombstones, so lookups stay short through many erasures). */
static void map_remove(struct bio_index *ix, size_t i) {
  size_t mask = ix->map_cap - 1;
  ix->map[i] = 0;
  size_t j = i;
  for (;;) {
    j = (j + 1) & mask;
    if (ix->map[j] == 0)
      return;
    size_t home = id_hash(ix->ids[ix->map[j] - 1]) & mask;
    /* Move j back to i unless its home lies cyclically in (i, j]. */
    bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (!stays) {
      ix->map[i] = ix->map[j];
      ix->map[j] = 0;
      i = j;
    }
  }
}

void bio_index_del(struct bio_index *ix, const char *ticket_id) {
  size_t i = map_find(ix, ticket_id);
  if (ix->map[i] == 0)
    return;
  size_t r = ix->map[i] - 1, last = ix->n - 1;
  map_remove(ix, i);
  float *row = ix->rows + r * ix->stride;
  if (r != last) {
    /* The last row fills the hole; its map entry follows it. */
    size_t k = map_find(ix, ix->ids[last]);
    memcpy(row, ix->rows + last * ix->stride, ix->stride * sizeof(float));
    strcpy(ix->ids[r], ix->ids[last]);
    ix->map[k] = (uint32_t)r + 1;
  }
  sodium_memzero(ix->rows + last * ix->stride, ix->stride * sizeof(float));
  memset(ix->ids[last], 0, sizeof ix->ids[last]);
  ix->n--;
}

/* Dot products of one probe with rows of `stride` floats (a multiple of 16),
 * eight lanes at a time in two accumulators; a clone for AVX2+FMA hosts. */
__attribute__((target_clones("arch=haswell", "default"))) static void
dots(const float *rows, size_t n, uint32_t stride, const float *probe, float *out) {
  for (size_t r = 0; r < n; r++) {
    const float *row = rows + r * stride;
    v8f a0 = {0}, a1 = {0};
    for (uint32_t k = 0; k < stride; k += 16) {
      v8f x0, x1, p0, p1;
      memcpy(&x0, row + k, sizeof x0);
      memcpy(&x1, row + k + 8, sizeof x1);
      memcpy(&p0, probe + k, sizeof p0);
      memcpy(&p1, probe + k + 8, sizeof p1);
      a0 += x0 * p0;
      a1 += x1 * p1;
    }
    v8f s = a0 + a1;
    out[r] = s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
  }
}

void bio_index_search(const struct bio_index *ix, const float *probe, struct bio_match *m) {
  memset(m, 0, sizeof *m);
  m->best = m->second = -1;
  if (ix->n == 0)
    return;
  float *p = ix->scratch;
  memcpy(p, probe, ix->dim * sizeof(float));
  memset(p + ix->dim, 0, (ix->stride - ix->dim) * sizeof(float));
  enum { CHUNK = 256 };
  float s[CHUNK];
  size_t best = 0;
  for (size_t base = 0; base < ix->n; base += CHUNK) {
    size_t k = ix->n - base < CHUNK ? ix->n - base : CHUNK;
    dots(ix->rows + base * ix->stride, k, ix->stride, p, s);
    for (size_t i = 0; i < k; i++) {
      if (s[i] > m->best) {
        m->second = m->best;
        m->best = s[i];
        best = base + i;
      } else if (s[i] > m->second) {
        m->second = s[i];
      }
    }
  }
  m->found = true;
  strcpy(m->ticket_id, ix->ids[best]);
}

size_t bio_index_count(const struct bio_index *ix) { return ix->n; }
size_t bio_index_bytes(const struct bio_index *ix) { return ix->rows_bytes; }
bool bio_index_locked(const struct bio_index *ix) { return ix->locked; }
uint64_t bio_index_gen(const struct bio_index *ix) { return ix->gen; }
uint64_t bio_index_skipped(const struct bio_index *ix) { return ix->skipped; }

struct sync_ctx {
  struct bio_index *ix;
  struct ledger_rd *rd;
  const uint8_t *key;
  void (*erased)(void *arg, const char *ticket_id);
  void *arg;
  struct ledger_bio *b;
  float *v;
  uint64_t last;
  bool first;
  int rc;
};

/* One ticket's current record into the index (or out of it). */
static int sync_ticket(struct sync_ctx *s, const char *ticket_id) {
  int rc = ledger_bio_get(s->rd, ticket_id, s->b);
  if (rc == GM_ENOTFOUND)
    return 0;
  if (rc != 0)
    return rc;
  if (s->b->ct_len == 0) {
    bio_index_del(s->ix, ticket_id);
    if (s->erased)
      s->erased(s->arg, ticket_id);
    return 0;
  }
  if (s->b->dim != s->ix->dim) {
    s->ix->skipped++;
    return 0;
  }
  rc = bio_open(s->key, s->b, s->v);
  if (rc == 0)
    rc = bio_index_put(s->ix, ticket_id, s->v);
  else if (rc == GM_ECRYPTO)
    s->ix->skipped++, rc = 0; /* sealed under another cluster key */
  return rc;
}

static int sync_entry(void *arg, uint64_t gen, const char *ticket_id) {
  struct sync_ctx *s = arg;
  s->last = gen;
  /* A later log entry of the same ticket will say the same; only the
   * record's own gen (its latest change) is acted on. */
  int rc = ledger_bio_get(s->rd, ticket_id, s->b);
  if (rc == GM_ENOTFOUND)
    return 0;
  if (rc != 0)
    return rc;
  if (s->b->gen != gen)
    return 0;
  rc = sync_ticket(s, ticket_id);
  return rc;
}

int bio_index_sync(struct bio_index *ix, struct ledger_rd *rd, const uint8_t bio_key[32],
                   void (*erased)(void *arg, const char *ticket_id), void *arg) {
  uint64_t head = ledger_bio_gen(rd);
  if (head == ix->gen)
    return 0;
  struct sync_ctx s = {ix, rd, bio_key, erased, arg, malloc(sizeof(struct ledger_bio)),
                       ix->scratch, ix->gen, ix->gen == 0, 0};
  if (s.b == NULL)
    return GM_ENOMEM;
  if (head < ix->gen) {
    /* The ledger went back (a restored snapshot): start over. */
    while (ix->n > 0)
      bio_index_del(ix, ix->ids[ix->n - 1]);
    ix->gen = s.last = 0;
  }
  int rc = ledger_bio_log_each(rd, ix->gen, sync_entry, &s);
  sodium_memzero(s.b, sizeof *s.b);
  free(s.b);
  sodium_memzero(ix->scratch, ix->stride * sizeof(float));
  if (rc == 0)
    ix->gen = head;
  return rc;
}
