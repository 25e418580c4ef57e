/* fuzz_swim.c — gossip bodies from a peer that holds the cluster key but
 * sends anything: every body is applied whole or refused whole, the table
 * stays bounded, and the state machine keeps ticking. */
#include <string.h>

#include "gossip/swim.h"
#include "lib/err.h"

static size_t sent;
static void on_send(void *arg, const char *addr, const uint8_t *body, size_t n) {
  (void)arg, (void)addr, (void)body;
  sent += n;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
  struct swim_config c;
  swim_config_default(&c);
  struct swim_io io = {.send = on_send};
  struct swim *s = swim_create(&c, 1, "10.0.0.1:7946", 3, &io, 0);
  if (s == NULL)
    return 0;
  /* Several bodies in one input, split at each 0xff 0xfe pair. */
  size_t start = 0;
  int64_t now = 0;
  for (size_t i = 0; i <= n; i++) {
    if (i < n && !(i + 1 < n && d[i] == 0xff && d[i + 1] == 0xfe))
      continue;
    int rc = swim_recv(s, d + start, i - start, now);
    if (rc != 0 && rc != GM_EDECODE)
      __builtin_trap();
    now += 700;
    swim_tick(s, now);
    start = i + 2;
    i++;
  }
  const struct swim_member *m;
  size_t k = swim_members(s, &m);
  if (k == 0 || k > SWIM_MEMBERS_MAX || m[0].id != 1 || m[0].state != SWIM_ALIVE)
    __builtin_trap();
  swim_destroy(s);
  return 0;
}
