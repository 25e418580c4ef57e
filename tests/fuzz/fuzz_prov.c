/* fuzz_prov.c — provisional-admission records and digests from a peer:
 * records decode or are refused, the store stays bounded and consistent,
 * and a hostile digest is refused or answered within the bound; the same
 * bytes as a gossip message (push or digest) are taken whole or not at all. */
#include <string.h>

#include "gossip/prov.h"
#include "lib/err.h"

static size_t got;
static void count(void *arg, const struct prov_rec *r) {
  (void)arg, (void)r;
  got++;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
  static const uint8_t hk[16] = {5};
  struct prov *p = prov_create(64, hk);
  if (p == NULL)
    return 0;
  size_t off = 0;
  while (off < n) {
    struct prov_rec r;
    int used = prov_rec_decode(d + off, n - off, &r);
    if (used < 0)
      break;
    int rc = prov_add(p, &r);
    if (rc != 0 && rc != 1 && rc != GM_EFULL)
      __builtin_trap();
    if (rc == 1 && prov_lookup(p, r.key, r.key_len) == NULL)
      __builtin_trap(); /* what was just added is found */
    if (r.seq % 7 == 0)
      prov_prune(p, r.origin, r.seq / 2);
    off += (size_t)used;
  }
  if (prov_count(p) > 64)
    __builtin_trap();
  got = 0;
  int m = prov_missing(p, d, n, 10, count, NULL);
  if ((m < 0 && m != GM_EDECODE) || (m >= 0 && ((size_t)m != got || got > 10)))
    __builtin_trap();
  uint8_t dig[2 + 16 * PROV_ORIGINS_MAX];
  if (prov_digest(p, dig, sizeof dig) < 2)
    __builtin_trap();
  /* The same bytes as a gossip message: a push adds all or nothing, a
   * digest's answer fits its buffer. */
  size_t before = prov_count(p), rlen = 0;
  uint8_t reply[1300];
  got = 0;
  int rc = prov_msg_recv(p, d, n, count, NULL, reply, sizeof reply, &rlen);
  if (rc != 0 && rc != GM_EDECODE && rc != GM_EFULL)
    __builtin_trap();
  if (rc == GM_EDECODE && prov_count(p) != before)
    __builtin_trap();
  if (rlen > sizeof reply || (rlen > 0 && reply[0] != PROV_MSG_ANSWER))
    __builtin_trap();
  prov_destroy(p);
  return 0;
}
