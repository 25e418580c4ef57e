/* fuzz_frame.c — the cluster channel: a peer's HELLO, then arbitrary bytes
 * as frames on an open channel (garbage, truncation, forgery, replay). */
#include <string.h>

#include "raft/secure.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
  static const uint8_t key[32] = {7};
  struct sec_hs a, b;
  struct sec_chan ca, cb;
  uint8_t ha[SEC_HELLO_LEN], hb[SEC_HELLO_LEN], hdr_a[SEC_HEADER_LEN], hdr_b[SEC_HEADER_LEN];
  if (n >= SEC_HELLO_LEN) { /* a hostile HELLO */
    struct sec_hs x;
    struct sec_chan cx;
    sec_hs_init(&x, false);
    sec_hs_finish(&x, d, key, &cx, hdr_a);
  }
  sec_hs_init(&a, true);
  sec_hs_init(&b, false);
  sec_hs_hello(&a, ha);
  sec_hs_hello(&b, hb);
  if (sec_hs_finish(&a, hb, key, &ca, hdr_a) != 0 || sec_hs_finish(&b, ha, key, &cb, hdr_b) != 0)
    __builtin_trap();
  sec_chan_rx_start(&ca, hdr_b);
  sec_chan_rx_start(&cb, hdr_a);
  /* One genuine frame first, so the input also lands after a valid one. */
  uint8_t frame[16 + SEC_OVERHEAD], m[SEC_FRAME_MAX + 64];
  sec_seal(&ca, (const uint8_t *)"hello, gate 2...", 16, frame);
  size_t mlen;
  bool bad;
  if (sec_frame_len(frame, sizeof frame, &bad) != sizeof frame ||
      sec_open(&cb, frame, sizeof frame, m, &mlen) != 0 || mlen != 16)
    __builtin_trap();
  size_t off = 0;
  while (off < n) {
    size_t len = sec_frame_len(d + off, n - off, &bad);
    if (bad || len == 0)
      break;
    if (sec_open(&cb, d + off, len, m, &mlen) == 0)
      __builtin_trap(); /* nothing forged without the key may open */
    off += len;
  }
  /* A replay of the genuine frame never opens again. */
  if (sec_open(&cb, frame, sizeof frame, m, &mlen) == 0)
    __builtin_trap();
  return 0;
}
