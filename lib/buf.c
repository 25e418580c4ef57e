/*
 * buf.c — growable buffers (see buf.h).
 */
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

void gm_buf_init(struct gm_buf *b) { memset(b, 0, sizeof *b); }

void gm_buf_init_fixed(struct gm_buf *b, void *mem, size_t cap) {
  b->ptr = mem;
  b->len = 0;
  b->cap = cap;
  b->fixed = true;
}

void gm_buf_free(struct gm_buf *b) {
  if (!b->fixed)
    free(b->ptr);
  gm_buf_init(b);
}

void gm_buf_reset(struct gm_buf *b) { b->len = 0; }

int gm_buf_reserve(struct gm_buf *b, size_t extra) {
  if (extra > GM_BUF_MAX - b->len)
    return GM_ETOOBIG;
  size_t need = b->len + extra;
  if (need <= b->cap)
    return 0;
  if (b->fixed)
    return GM_ETOOBIG;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < need)
    cap *= 2;
  uint8_t *p = realloc(b->ptr, cap);
  if (p == NULL)
    return GM_ENOMEM;
  b->ptr = p;
  b->cap = cap;
  return 0;
}

int gm_buf_append(struct gm_buf *b, const void *p, size_t n) {
  int rc = gm_buf_reserve(b, n);
  if (rc != 0)
    return rc;
  if (n)
    memcpy(b->ptr + b->len, p, n);
  b->len += n;
  return 0;
}

int gm_buf_append_str(struct gm_buf *b, const char *s) {
  return gm_buf_append(b, s, strlen(s));
}

int gm_buf_printf(struct gm_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0)
    return GM_EINVAL;
  int rc = gm_buf_reserve(b, (size_t)n + 1);
  if (rc != 0)
    return rc;
  va_start(ap, fmt);
  vsnprintf((char *)b->ptr + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return 0;
}

int gm_buf_append_i64(struct gm_buf *b, int64_t v) {
  char tmp[24];
  size_t i = sizeof tmp;
  uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  do {
    tmp[--i] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (v < 0)
    tmp[--i] = '-';
  return gm_buf_append(b, tmp + i, sizeof tmp - i);
}

uint8_t *gm_buf_steal(struct gm_buf *b, size_t *len) {
  uint8_t *p = b->ptr;
  if (len)
    *len = b->len;
  gm_buf_init(b);
  return p;
}

int gm_strlcpy(char *dst, size_t cap, const char *src, size_t src_len) {
  if (src_len >= cap) {
    if (cap)
      dst[0] = 0;
    return -1;
  }
  memcpy(dst, src, src_len);
  dst[src_len] = 0;
  return 0;
}

void gm_hex(char *out, const uint8_t *p, size_t n) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[p[i] >> 4];
    out[2 * i + 1] = digits[p[i] & 15];
  }
  out[2 * n] = 0;
}

long gm_unhex(uint8_t *out, size_t cap, const char *s, size_t n) {
  if (n % 2 != 0 || n / 2 > cap)
    return -1;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    int v = c >= '0' && c <= '9'   ? c - '0'
            : c >= 'a' && c <= 'f' ? c - 'a' + 10
            : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                   : -1;
    if (v < 0)
      return -1;
    if (i % 2 == 0)
      out[i / 2] = (uint8_t)(v << 4);
    else
      out[i / 2] |= (uint8_t)v;
  }
  return (long)(n / 2);
}
