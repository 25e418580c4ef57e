/*
 * pass.h — dynamic cryptographic passes: a signed pass (JWS, EdDSA, kid) that
 * hands the holder app a per-pass secret, and the rotating code the app shows.
 *
 * Code text: "<pass_id>.<step>.<mac>" — pass_id 32 hex chars, step the decimal
 * time step (unix seconds / period), mac 16 hex chars = the first 8 bytes of
 * HMAC-SHA256(secret, "gm-pass-v1" pass_id step_be64). The step travels in
 * the code so a gate knows exactly which step to check and remember: a code
 * is good for ±1 step and never again after a later or equal one was seen.
 */
#ifndef GM_PASS_H
#define GM_PASS_H

#include <stddef.h>
#include <stdint.h>

#define PASS_ID_HEX 32
#define PASS_SECRET_LEN 32
#define PASS_MAC_LEN 8
#define PASS_CODE_MAX (PASS_ID_HEX + 1 + 20 + 1 + 2 * PASS_MAC_LEN)

struct pass_code {
  char pass_id[PASS_ID_HEX + 1];
  uint64_t step;
  uint8_t mac[PASS_MAC_LEN];
};

int pass_code_parse(const char *s, size_t n, struct pass_code *out);
void pass_code_mac(const uint8_t secret[PASS_SECRET_LEN], const char *pass_id, uint64_t step,
                   uint8_t mac[PASS_MAC_LEN]);
/* The holder app's side: writes the code for step into out (PASS_CODE_MAX+1). */
void pass_code_make(char *out, const uint8_t secret[PASS_SECRET_LEN], const char *pass_id,
                    uint64_t step);

#endif
