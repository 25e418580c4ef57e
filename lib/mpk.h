/*
 * mpk.h — small helpers over msgpack-c for the ledger's records and commands.
 *
 * Records and commands are msgpack maps with short string keys: readable in a
 * hex dump, tolerant of added fields, and decoded without a schema compiler.
 * The writer appends to its own buffer; the reader parses a whole buffer into a zone
 * (struct mpk_doc) and offers typed getters that fail with GM_EDECODE on a
 * missing key, a wrong type or a value that does not fit the destination —
 * never by truncating.
 *
 * Ownership: strings returned by the getters are copied into caller buffers;
 * msgpack_object pointers from mpk_get() live as long as the mpk_doc.
 */
#ifndef GM_MPK_H
#define GM_MPK_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The writer emits the smallest encoding of every value, as msgpack-c's
 * packer does, byte for byte. `sb` is the output so far; after a failed
 * allocation `failed` is set, later writes are dropped, and the output is
 * incomplete until mpk_w_reset. */
struct mpk_w {
  struct {
    char *data;
    size_t size, alloc;
  } sb;
  bool failed;
};

void mpk_w_init(struct mpk_w *w);
void mpk_w_free(struct mpk_w *w);
/* Drops what was written, keeps the allocation. */
void mpk_w_reset(struct mpk_w *w);

void mpk_map(struct mpk_w *w, uint32_t n);
void mpk_arr(struct mpk_w *w, uint32_t n);
void mpk_str(struct mpk_w *w, const char *s);
void mpk_strn(struct mpk_w *w, const char *s, size_t n);
void mpk_i64(struct mpk_w *w, int64_t v);
void mpk_u64(struct mpk_w *w, uint64_t v);
void mpk_bool(struct mpk_w *w, bool v);
void mpk_bin(struct mpk_w *w, const void *p, size_t n);
/* A key and its value. Keys are string literals: inlined, their strlen
 * is a constant. */
static inline void mpk_kv_str(struct mpk_w *w, const char *k, const char *v) {
  mpk_strn(w, k, strlen(k));
  mpk_str(w, v);
}
static inline void mpk_kv_i64(struct mpk_w *w, const char *k, int64_t v) {
  mpk_strn(w, k, strlen(k));
  mpk_i64(w, v);
}
static inline void mpk_kv_u64(struct mpk_w *w, const char *k, uint64_t v) {
  mpk_strn(w, k, strlen(k));
  mpk_u64(w, v);
}
static inline void mpk_kv_bool(struct mpk_w *w, const char *k, bool v) {
  mpk_strn(w, k, strlen(k));
  mpk_bool(w, v);
}
static inline void mpk_kv_bin(struct mpk_w *w, const char *k, const void *p, size_t n) {
  mpk_strn(w, k, strlen(k));
  mpk_bin(w, p, n);
}

struct mpk_doc {
  msgpack_zone *zone;
  bool pooled;
  msgpack_object obj;
  const msgpack_object *root;
};

/* Frees the decode zone this thread keeps for mpk_doc_parse: a thread that
 * ends (not the process) calls it last, or the zone's first chunk leaks. */
void mpk_thread_end(void);

/* In-place reader for the hot records: walks a buffer without building an
 * object tree or allocating, every read bounds-checked (GM_EDECODE past the
 * end or on a type mismatch). Strings and bins point into the buffer. */
struct mpk_rd {
  const uint8_t *p;
  const uint8_t *end;
};

int mpk_rd_map(struct mpk_rd *r, uint32_t *n);
int mpk_rd_str(struct mpk_rd *r, const char **s, uint32_t *len);
int mpk_rd_i64(struct mpk_rd *r, int64_t *v);
int mpk_rd_bool(struct mpk_rd *r, bool *v);
int mpk_rd_bin(struct mpk_rd *r, const uint8_t **p, uint32_t *len);
/* Skips one value of any type (unknown fields of a newer writer). */
int mpk_rd_skip(struct mpk_rd *r);
/* A string into dst (NUL-terminated, no embedded NUL), a bin into dst. */
int mpk_rd_strcpy(struct mpk_rd *r, char *dst, size_t cap);
int mpk_rd_bincpy(struct mpk_rd *r, uint8_t *dst, size_t cap, size_t *len);
int mpk_rd_u32(struct mpk_rd *r, uint32_t *v);

/* Checks that p[0..n) is exactly one well-formed msgpack value whose
 * every declared container size fits in the bytes that remain. msgpack-c
 * allocates a container from its declared size before reading the elements,
 * so 8 hostile bytes could otherwise ask for 128 GiB; this walk allocates
 * nothing and is linear in n. */
int mpk_validate(const uint8_t *p, size_t n);

/* Parses exactly one msgpack value filling all of p[0..n); it must be a map.
 * On success the caller must call mpk_doc_free. On failure nothing is held. */
int mpk_doc_parse(struct mpk_doc *d, const void *p, size_t n);
void mpk_doc_free(struct mpk_doc *d);

const msgpack_object *mpk_get(const msgpack_object *map, const char *key);
int mpk_get_str(const msgpack_object *map, const char *key, char *dst, size_t cap);
int mpk_opt_str(const msgpack_object *map, const char *key, char *dst, size_t cap);
int mpk_get_i64(const msgpack_object *map, const char *key, int64_t *out);
int mpk_opt_i64(const msgpack_object *map, const char *key, int64_t *out);
int mpk_get_u32(const msgpack_object *map, const char *key, uint32_t *out);
int mpk_opt_u32(const msgpack_object *map, const char *key, uint32_t *out);
/* Below 2^63: ids and hashes the ledger stores are kept in that range. */
int mpk_get_u64(const msgpack_object *map, const char *key, uint64_t *out);
int mpk_get_bool(const msgpack_object *map, const char *key, bool *out);
int mpk_opt_bool(const msgpack_object *map, const char *key, bool *out);
int mpk_get_bin(const msgpack_object *map, const char *key, uint8_t *dst, size_t cap,
                size_t *len);
int mpk_opt_bin(const msgpack_object *map, const char *key, uint8_t *dst, size_t cap,
                size_t *len);
/* Copies a str object into dst (NUL-terminated). */
int mpk_obj_str(const msgpack_object *o, char *dst, size_t cap);

#endif
