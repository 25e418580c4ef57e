/*
 * mpk.c — msgpack writer and typed map getters (see mpk.h).
 */
#include "mpk.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"

void mpk_w_init(struct mpk_w *w) { memset(w, 0, sizeof *w); }

void mpk_w_free(struct mpk_w *w) {
  free(w->sb.data);
  memset(w, 0, sizeof *w);
}

void mpk_w_reset(struct mpk_w *w) {
  w->sb.size = 0;
  w->failed = false;
}

/* Where the next n bytes go, or NULL (and `failed`) when the buffer cannot
 * grow to hold them. */
static uint8_t *room(struct mpk_w *w, size_t n) {
  if (w->failed)
    return NULL;
  if (w->sb.alloc - w->sb.size < n) {
    size_t cap = w->sb.alloc ? w->sb.alloc : 256;
    while (cap - w->sb.size < n) {
      if (cap > GM_BUF_MAX) {
        w->failed = true;
        return NULL;
      }
      cap *= 2;
    }
    char *p = realloc(w->sb.data, cap);
    if (p == NULL) {
      w->failed = true;
      return NULL;
    }
    w->sb.data = p;
    w->sb.alloc = cap;
  }
  return (uint8_t *)w->sb.data + w->sb.size;
}

/* A type byte and a big-endian length or value of `bytes` bytes. */
static void head(struct mpk_w *w, uint8_t type, uint64_t v, size_t bytes) {
  uint8_t *p = room(w, 1 + bytes);
  if (p == NULL)
    return;
  p[0] = type;
  for (size_t i = 0; i < bytes; i++)
    p[1 + i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
  w->sb.size += 1 + bytes;
}

static void body(struct mpk_w *w, const void *s, size_t n) {
  uint8_t *p = room(w, n);
  if (p == NULL || n == 0)
    return;
  memcpy(p, s, n);
  w->sb.size += n;
}

/* A container or string header: fixed form below `fix`, then 8 (when
 * `t8` is not 0), 16 and 32-bit lengths. */
static void len_head(struct mpk_w *w, size_t n, uint8_t fixbase, size_t fix, uint8_t t8,
                     uint8_t t16, uint8_t t32) {
  if (n < fix)
    head(w, (uint8_t)(fixbase | n), 0, 0);
  else if (t8 != 0 && n < 256)
    head(w, t8, n, 1);
  else if (n < 65536)
    head(w, t16, n, 2);
  else
    head(w, t32, n, 4);
}

void mpk_map(struct mpk_w *w, uint32_t n) { len_head(w, n, 0x80, 16, 0, 0xde, 0xdf); }
void mpk_arr(struct mpk_w *w, uint32_t n) { len_head(w, n, 0x90, 16, 0, 0xdc, 0xdd); }
void mpk_strn(struct mpk_w *w, const char *s, size_t n) {
  len_head(w, n, 0xa0, 32, 0xd9, 0xda, 0xdb);
  body(w, s, n);
}
void mpk_str(struct mpk_w *w, const char *s) { mpk_strn(w, s, strlen(s)); }
void mpk_u64(struct mpk_w *w, uint64_t v) {
  if (v < 128)
    head(w, (uint8_t)v, 0, 0);
  else if (v < 1u << 8)
    head(w, 0xcc, v, 1);
  else if (v < 1u << 16)
    head(w, 0xcd, v, 2);
  else if (v < (uint64_t)1 << 32)
    head(w, 0xce, v, 4);
  else
    head(w, 0xcf, v, 8);
}
void mpk_i64(struct mpk_w *w, int64_t v) {
  if (v >= 0)
    mpk_u64(w, (uint64_t)v);
  else if (v >= -32)
    head(w, (uint8_t)v, 0, 0); /* negative fixint */
  else if (v >= INT8_MIN)
    head(w, 0xd0, (uint64_t)v, 1);
  else if (v >= INT16_MIN)
    head(w, 0xd1, (uint64_t)v, 2);
  else if (v >= INT32_MIN)
    head(w, 0xd2, (uint64_t)v, 4);
  else
    head(w, 0xd3, (uint64_t)v, 8);
}
void mpk_bool(struct mpk_w *w, bool v) { head(w, v ? 0xc3 : 0xc2, 0, 0); }
void mpk_bin(struct mpk_w *w, const void *p, size_t n) {
  len_head(w, n, 0, 0, 0xc4, 0xc5, 0xc6);
  body(w, p, n);
}

static uint64_t be(const uint8_t *p, size_t len) {
  uint64_t v = 0;
  for (size_t i = 0; i < len; i++)
    v = v << 8 | p[i];
  return v;
}

/* Walks `items` consecutive values from p[*off], checking each container's
 * declared size against the bytes left; advances *off past them. */
static int skip_values(const uint8_t *p, size_t n, size_t *offp, uint64_t items) {
  size_t off = *offp;
  while (items > 0) {
    if (off >= n || items > n - off)
      return GM_EDECODE;
    items--;
    uint8_t t = p[off++];
    uint64_t count = 0, skip = 0;
    size_t hdr = 0;
    if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) {
      continue;
    } else if (t >= 0x80 && t <= 0x8f) {
      count = 2u * (t & 0x0f);
    } else if (t >= 0x90 && t <= 0x9f) {
      count = t & 0x0f;
    } else if (t >= 0xa0 && t <= 0xbf) {
      skip = t & 0x1f;
    } else {
      switch (t) {
      case 0xc4: case 0xd9: hdr = 1; break;                  /* bin8, str8 */
      case 0xc5: case 0xda: hdr = 2; break;                  /* bin16, str16 */
      case 0xc6: case 0xdb: hdr = 4; break;                  /* bin32, str32 */
      case 0xc7: hdr = 1; skip = 1; break;                   /* ext8 (+type) */
      case 0xc8: hdr = 2; skip = 1; break;
      case 0xc9: hdr = 4; skip = 1; break;
      case 0xca: skip = 4; break;
      case 0xcb: skip = 8; break;
      case 0xcc: case 0xd0: skip = 1; break;
      case 0xcd: case 0xd1: skip = 2; break;
      case 0xce: case 0xd2: skip = 4; break;
      case 0xcf: case 0xd3: skip = 8; break;
      case 0xd4: skip = 2; break;                            /* fixext: type + data */
      case 0xd5: skip = 3; break;
      case 0xd6: skip = 5; break;
      case 0xd7: skip = 9; break;
      case 0xd8: skip = 17; break;
      case 0xdc: case 0xdd: case 0xde: case 0xdf: break;
      default: return GM_EDECODE;                            /* 0xc1: never used */
      }
      if (t >= 0xdc) {
        size_t cl = (t == 0xdc || t == 0xde) ? 2 : 4;
        if (n - off < cl)
          return GM_EDECODE;
        count = be(p + off, cl) * (t >= 0xde ? 2 : 1);
        off += cl;
      } else if (hdr) {
        if (n - off < hdr)
          return GM_EDECODE;
        skip += be(p + off, hdr);
        off += hdr;
      }
    }
    if (skip > n - off)
      return GM_EDECODE;
    off += skip;
    items += count;
  }
  *offp = off;
  return 0;
}

int mpk_validate(const uint8_t *p, size_t n) {
  size_t off = 0;
  int rc = skip_values(p, n, &off, 1);
  return rc == 0 && off == n ? 0 : GM_EDECODE;
}

static bool rd_need(const struct mpk_rd *r, size_t n) { return (size_t)(r->end - r->p) >= n; }

int mpk_rd_map(struct mpk_rd *r, uint32_t *n) {
  if (!rd_need(r, 1))
    return GM_EDECODE;
  uint8_t t = *r->p;
  if (t >= 0x80 && t <= 0x8f) {
    *n = t & 0x0f;
    r->p++;
    return 0;
  }
  size_t cl = t == 0xde ? 2 : t == 0xdf ? 4 : 0;
  if (cl == 0 || !rd_need(r, 1 + cl))
    return GM_EDECODE;
  *n = (uint32_t)be(r->p + 1, cl);
  r->p += 1 + cl;
  /* Each entry needs at least two bytes: a hostile count fails here, not
   * after a long walk. */
  return (uint64_t)*n * 2 <= (uint64_t)(r->end - r->p) ? 0 : GM_EDECODE;
}

static int rd_bytes(struct mpk_rd *r, bool str, const uint8_t **p, uint32_t *len) {
  if (!rd_need(r, 1))
    return GM_EDECODE;
  uint8_t t = *r->p;
  size_t hl;
  uint64_t l;
  if (str && t >= 0xa0 && t <= 0xbf) {
    hl = 1;
    l = t & 0x1f;
  } else {
    size_t lb = str ? (t == 0xd9 ? 1 : t == 0xda ? 2 : t == 0xdb ? 4 : 0)
                    : (t == 0xc4 ? 1 : t == 0xc5 ? 2 : t == 0xc6 ? 4 : 0);
    if (lb == 0 || !rd_need(r, 1 + lb))
      return GM_EDECODE;
    hl = 1 + lb;
    l = be(r->p + 1, lb);
  }
  if (!rd_need(r, hl) || l > (uint64_t)(r->end - r->p) - hl)
    return GM_EDECODE;
  *p = r->p + hl;
  *len = (uint32_t)l;
  r->p += hl + l;
  return 0;
}

int mpk_rd_str(struct mpk_rd *r, const char **s, uint32_t *len) {
  const uint8_t *p; /* its own object: writing *s through a uint8_t** would alias */
  int rc = rd_bytes(r, true, &p, len);
  if (rc == 0)
    *s = (const char *)p;
  return rc;
}

int mpk_rd_bin(struct mpk_rd *r, const uint8_t **p, uint32_t *len) {
  return rd_bytes(r, false, p, len);
}

int mpk_rd_i64(struct mpk_rd *r, int64_t *v) {
  if (!rd_need(r, 1))
    return GM_EDECODE;
  uint8_t t = *r->p;
  if (t <= 0x7f) {
    *v = t;
    r->p++;
    return 0;
  }
  if (t >= 0xe0) {
    *v = (int8_t)t;
    r->p++;
    return 0;
  }
  size_t len = 0;
  bool sign = false;
  switch (t) {
  case 0xcc: len = 1; break;
  case 0xcd: len = 2; break;
  case 0xce: len = 4; break;
  case 0xcf: len = 8; break;
  case 0xd0: len = 1, sign = true; break;
  case 0xd1: len = 2, sign = true; break;
  case 0xd2: len = 4, sign = true; break;
  case 0xd3: len = 8, sign = true; break;
  default: return GM_EDECODE;
  }
  if (!rd_need(r, 1 + len))
    return GM_EDECODE;
  uint64_t u = be(r->p + 1, len);
  if (sign) {
    /* sign-extend from len bytes */
    unsigned shift = (unsigned)(64 - 8 * len);
    *v = (int64_t)(u << shift) >> shift;
  } else {
    if (u > (uint64_t)INT64_MAX)
      return GM_EDECODE;
    *v = (int64_t)u;
  }
  r->p += 1 + len;
  return 0;
}

int mpk_rd_u32(struct mpk_rd *r, uint32_t *v) {
  int64_t x;
  if (mpk_rd_i64(r, &x) != 0 || x < 0 || x > UINT32_MAX)
    return GM_EDECODE;
  *v = (uint32_t)x;
  return 0;
}

int mpk_rd_bool(struct mpk_rd *r, bool *v) {
  if (!rd_need(r, 1) || (*r->p != 0xc2 && *r->p != 0xc3))
    return GM_EDECODE;
  *v = *r->p == 0xc3;
  r->p++;
  return 0;
}

int mpk_rd_skip(struct mpk_rd *r) {
  size_t off = 0;
  int rc = skip_values(r->p, (size_t)(r->end - r->p), &off, 1);
  if (rc == 0)
    r->p += off;
  return rc;
}

int mpk_rd_strcpy(struct mpk_rd *r, char *dst, size_t cap) {
  const char *s = "";
  uint32_t len = 0;
  if (mpk_rd_str(r, &s, &len) != 0 || memchr(s, 0, len) != NULL)
    return GM_EDECODE;
  return gm_strlcpy(dst, cap, s, len) == 0 ? 0 : GM_EDECODE;
}

int mpk_rd_bincpy(struct mpk_rd *r, uint8_t *dst, size_t cap, size_t *len) {
  const uint8_t *p = NULL;
  uint32_t l = 0;
  if (mpk_rd_bin(r, &p, &l) != 0 || l > cap)
    return GM_EDECODE;
  memcpy(dst, p, l);
  *len = l;
  return 0;
}

/* Every record read decodes into a zone. One zone per thread is reused
 * (cleared, its first chunk kept) instead of a fresh 8 KiB allocation per
 * read; a document parsed while another is open gets its own zone. */
static __thread msgpack_zone tl_zone;
static __thread bool tl_ready, tl_busy;

#define MPK_ZONE_CHUNK 4096

int mpk_doc_parse(struct mpk_doc *d, const void *p, size_t n) {
  size_t off = 0;
  if (mpk_validate(p, n) != 0)
    return GM_EDECODE;
  if (!tl_busy) {
    if (!tl_ready && !msgpack_zone_init(&tl_zone, MPK_ZONE_CHUNK))
      return GM_ENOMEM;
    tl_ready = true;
    tl_busy = true;
    d->zone = &tl_zone;
    d->pooled = true;
  } else {
    d->zone = msgpack_zone_new(MPK_ZONE_CHUNK);
    d->pooled = false;
    if (d->zone == NULL)
      return GM_ENOMEM;
  }
  msgpack_unpack_return r = msgpack_unpack(p, n, &off, d->zone, &d->obj);
  if (r != MSGPACK_UNPACK_SUCCESS || off != n || d->obj.type != MSGPACK_OBJECT_MAP) {
    mpk_doc_free(d);
    return GM_EDECODE;
  }
  d->root = &d->obj;
  return 0;
}

void mpk_thread_end(void) {
  if (tl_ready && !tl_busy) {
    msgpack_zone_destroy(&tl_zone);
    tl_ready = false;
  }
}

void mpk_doc_free(struct mpk_doc *d) {
  if (d->zone == NULL)
    return;
  if (d->pooled) {
    msgpack_zone_clear(d->zone);
    tl_busy = false;
  } else {
    msgpack_zone_free(d->zone);
  }
  d->zone = NULL;
}

const msgpack_object *mpk_get(const msgpack_object *map, const char *key) {
  if (map == NULL || map->type != MSGPACK_OBJECT_MAP)
    return NULL;
  size_t klen = strlen(key);
  for (uint32_t i = 0; i < map->via.map.size; i++) {
    const msgpack_object_kv *kv = &map->via.map.ptr[i];
    if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == klen &&
        memcmp(kv->key.via.str.ptr, key, klen) == 0)
      return &kv->val;
  }
  return NULL;
}

int mpk_obj_str(const msgpack_object *o, char *dst, size_t cap) {
  if (o == NULL || o->type != MSGPACK_OBJECT_STR)
    return GM_EDECODE;
  if (memchr(o->via.str.ptr, 0, o->via.str.size) != NULL)
    return GM_EDECODE;
  return gm_strlcpy(dst, cap, o->via.str.ptr, o->via.str.size) == 0 ? 0 : GM_EDECODE;
}

int mpk_get_str(const msgpack_object *map, const char *key, char *dst, size_t cap) {
  return mpk_obj_str(mpk_get(map, key), dst, cap);
}

int mpk_opt_str(const msgpack_object *map, const char *key, char *dst, size_t cap) {
  const msgpack_object *o = mpk_get(map, key);
  if (o == NULL || o->type == MSGPACK_OBJECT_NIL) {
    if (cap)
      dst[0] = 0;
    return 0;
  }
  return mpk_obj_str(o, dst, cap);
}

static int obj_i64(const msgpack_object *o, int64_t *out) {
  if (o == NULL)
    return GM_EDECODE;
  if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
    if (o->via.u64 > (uint64_t)INT64_MAX)
      return GM_EDECODE;
    *out = (int64_t)o->via.u64;
    return 0;
  }
  if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
    *out = o->via.i64;
    return 0;
  }
  return GM_EDECODE;
}

int mpk_get_i64(const msgpack_object *map, const char *key, int64_t *out) {
  return obj_i64(mpk_get(map, key), out);
}

int mpk_opt_i64(const msgpack_object *map, const char *key, int64_t *out) {
  const msgpack_object *o = mpk_get(map, key);
  if (o == NULL || o->type == MSGPACK_OBJECT_NIL) {
    *out = 0;
    return 0;
  }
  return obj_i64(o, out);
}

int mpk_get_u32(const msgpack_object *map, const char *key, uint32_t *out) {
  int64_t v;
  int rc = mpk_get_i64(map, key, &v);
  if (rc != 0 || v < 0 || v > UINT32_MAX)
    return GM_EDECODE;
  *out = (uint32_t)v;
  return 0;
}

int mpk_get_u64(const msgpack_object *map, const char *key, uint64_t *out) {
  int64_t v;
  int rc = mpk_get_i64(map, key, &v);
  if (rc != 0 || v < 0)
    return GM_EDECODE;
  *out = (uint64_t)v;
  return 0;
}

int mpk_opt_u32(const msgpack_object *map, const char *key, uint32_t *out) {
  int64_t v;
  int rc = mpk_opt_i64(map, key, &v);
  if (rc != 0 || v < 0 || v > UINT32_MAX)
    return GM_EDECODE;
  *out = (uint32_t)v;
  return 0;
}

int mpk_get_bool(const msgpack_object *map, const char *key, bool *out) {
  const msgpack_object *o = mpk_get(map, key);
  if (o == NULL || o->type != MSGPACK_OBJECT_BOOLEAN)
    return GM_EDECODE;
  *out = o->via.boolean;
  return 0;
}

int mpk_opt_bool(const msgpack_object *map, const char *key, bool *out) {
  const msgpack_object *o = mpk_get(map, key);
  if (o == NULL || o->type == MSGPACK_OBJECT_NIL) {
    *out = false;
    return 0;
  }
  if (o->type != MSGPACK_OBJECT_BOOLEAN)
    return GM_EDECODE;
  *out = o->via.boolean;
  return 0;
}

static int obj_bin(const msgpack_object *o, uint8_t *dst, size_t cap, size_t *len) {
  if (o == NULL || o->type != MSGPACK_OBJECT_BIN || o->via.bin.size > cap)
    return GM_EDECODE;
  memcpy(dst, o->via.bin.ptr, o->via.bin.size);
  *len = o->via.bin.size;
  return 0;
}

int mpk_get_bin(const msgpack_object *map, const char *key, uint8_t *dst, size_t cap,
                size_t *len) {
  return obj_bin(mpk_get(map, key), dst, cap, len);
}

int mpk_opt_bin(const msgpack_object *map, const char *key, uint8_t *dst, size_t cap,
                size_t *len) {
  const msgpack_object *o = mpk_get(map, key);
  if (o == NULL || o->type == MSGPACK_OBJECT_NIL) {
    *len = 0;
    return 0;
  }
  return obj_bin(o, dst, cap, len);
}
