/*
 * entry.c — Raft entry payload codec (see entry.h).
 */
#include "entry.h"

#include <string.h>

#include "../lib/err.h"

size_t entry_size(size_t n_cmds, size_t cmd_bytes) {
  size_t n = ENTRY_HDR_LEN + 4 * n_cmds + cmd_bytes;
  return (n + 7) & ~(size_t)7;
}

void entry_encode(uint8_t *out, const struct entry_hdr *h, const struct gm_slice *cmds, size_t n) {
  gm_le32_put(out, ENTRY_MAGIC);
  gm_le32_put(out + 4, (uint32_t)n);
  gm_le64_put(out + 8, h->origin);
  gm_le64_put(out + 16, h->token);
  size_t off = ENTRY_HDR_LEN, bytes = 0;
  for (size_t i = 0; i < n; i++) {
    gm_le32_put(out + off, (uint32_t)cmds[i].len);
    memcpy(out + off + 4, cmds[i].ptr, cmds[i].len);
    off += 4 + cmds[i].len;
    bytes += cmds[i].len;
  }
  size_t total = entry_size(n, bytes);
  memset(out + off, 0, total - off);
}

int entry_decode(const uint8_t *p, size_t n, struct entry_hdr *h, struct gm_slice *cmds,
                 size_t cap) {
  if (n < ENTRY_HDR_LEN || n % 8 != 0 || n > ENTRY_BYTES_MAX || gm_le32_get(p) != ENTRY_MAGIC)
    return GM_EDECODE;
  h->count = gm_le32_get(p + 4);
  h->origin = gm_le64_get(p + 8);
  h->token = gm_le64_get(p + 16);
  if (h->count > ENTRY_CMDS_MAX)
    return GM_EDECODE;
  size_t off = ENTRY_HDR_LEN;
  if (h->count == 0) { /* a pad entry: zeros only, of any length */
    for (; off < n; off++)
      if (p[off] != 0)
        return GM_EDECODE;
    return 0;
  }
  for (uint32_t i = 0; i < h->count; i++) {
    if (n - off < 4)
      return GM_EDECODE;
    uint32_t len = gm_le32_get(p + off);
    off += 4;
    if (len == 0 || len > n - off)
      return GM_EDECODE;
    if (cmds != NULL && i < cap) {
      cmds[i].ptr = p + off;
      cmds[i].len = len;
    }
    off += len;
  }
  if (n - off >= 8)
    return GM_EDECODE;
  for (; off < n; off++)
    if (p[off] != 0)
      return GM_EDECODE;
  return 0;
}
