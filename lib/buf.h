/*
 * buf.h — a growable byte buffer and a borrowed byte slice.
 *
 * A gm_buf owns its bytes (free with gm_buf_free); a gm_slice borrows bytes
 * owned by someone else and is valid only as long as they are. Growth doubles
 * and is capped at GM_BUF_MAX so a hostile length can never make us allocate
 * without bound.
 */
#ifndef GM_BUF_H
#define GM_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GM_BUF_MAX ((size_t)1 << 31)

struct gm_slice {
  const uint8_t *ptr;
  size_t len;
};

struct gm_buf {
  uint8_t *ptr;
  size_t len;
  size_t cap;
  bool fixed; /* borrowed memory: never grown or freed; growth is GM_ETOOBIG */
};

void gm_buf_init(struct gm_buf *b);
/* A buffer over caller memory (a stack array), for hot paths that must not
 * allocate. */
void gm_buf_init_fixed(struct gm_buf *b, void *mem, size_t cap);
void gm_buf_free(struct gm_buf *b);
void gm_buf_reset(struct gm_buf *b);
int gm_buf_reserve(struct gm_buf *b, size_t extra);
int gm_buf_append(struct gm_buf *b, const void *p, size_t n);
int gm_buf_append_str(struct gm_buf *b, const char *s);
int gm_buf_printf(struct gm_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Appends v in decimal (the hot-path alternative to gm_buf_printf). */
int gm_buf_append_i64(struct gm_buf *b, int64_t v);

/* Hands the bytes to the caller (who frees them with free()) and resets b. */
uint8_t *gm_buf_steal(struct gm_buf *b, size_t *len);

/* Copies src (at most cap-1 bytes) into dst and terminates it; returns -1 and
 * writes nothing useful if src does not fit, so callers can reject oversize
 * input instead of silently truncating it. */
int gm_strlcpy(char *dst, size_t cap, const char *src, size_t src_len);

/* Lower-case hex of n bytes into out (2n+1 bytes). */
void gm_hex(char *out, const uint8_t *p, size_t n);
/* Bytes of the hex string s[0..n) (either case) into out; the byte count, or
 * -1 for an odd length, a non-hex character or more than cap bytes. */
long gm_unhex(uint8_t *out, size_t cap, const char *s, size_t n);

/* Little-endian integers in byte buffers (journal records, Raft entries,
 * frame lengths). */
static inline void gm_le16_put(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}
static inline uint16_t gm_le16_get(const uint8_t *p) {
  return (uint16_t)(p[0] | (uint16_t)p[1] << 8);
}
static inline void gm_le32_put(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}
static inline void gm_le64_put(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint32_t gm_le32_get(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t gm_le64_get(const uint8_t *p) {
  return (uint64_t)gm_le32_get(p) | (uint64_t)gm_le32_get(p + 4) << 32;
}

/* Big-endian (network order) integers: signed token and tag formats, and
 * keys that must sort numerically. */
static inline void gm_be32_put(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (24 - 8 * i));
}
static inline uint32_t gm_be32_get(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

#endif
