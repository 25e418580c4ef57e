/* fuzz_entry.c — the Raft entry payload decoder (what a damaged log segment
 * or a hostile leader would feed every replica). */
#include "raft/entry.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
  static struct gm_slice cmds[ENTRY_CMDS_MAX];
  struct entry_hdr h;
  if (entry_decode(d, n, &h, cmds, ENTRY_CMDS_MAX) == 0)
    for (uint32_t i = 0; i < h.count; i++)
      if (cmds[i].ptr < d || cmds[i].ptr + cmds[i].len > d + n)
        __builtin_trap();
  return 0;
}
