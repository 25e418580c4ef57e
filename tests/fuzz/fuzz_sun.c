/* fuzz_sun.c — NTAG 424 DNA Secure Unique NFC messages three ways:
 *  - the input's first 24 bytes as an encrypted PICCData and an SDMMAC, as
 *    they arrive from a tag;
 *  - the first 16 bytes as a PICCData plaintext, encrypted here with the
 *    cluster's meta-read key, so the fuzzer reaches the field checks behind
 *    the decryption: an accepted plaintext must give back its UID and counter;
 *  - the input as the JSON presented_data of the nfc method, through the
 *    verification service of a gate that has the SUN keys and one tag mapped.
 */
#include <jansson.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "lib/buf.h"
#include "methods/nfc.h"
#include "methods/service.h"

static const uint8_t mapped_uid[7] = {0x04, 0xDE, 0x5F, 0x1E, 0xAC, 0xC0, 0x40};

static void map_tag(void) {
  struct ledger_cred c = {.method = "nfc", .ticket_id = "t1", .ticket_version = 1};
  gm_hex(c.id, mapped_uid, sizeof mapped_uid);
  struct ledger_cmd cmd = {.op = LEDGER_OP_CRED_ISSUE, .ts_ms = 1000};
  cmd.u.cred = c;
  fixture_apply(&cmd);
}

static void encrypt_block(const uint8_t key[16], const uint8_t pt[16], uint8_t ct[16]) {
  static const uint8_t iv[16];
  int l1 = 0, l2 = 0;
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
  if (c == NULL || EVP_EncryptInit_ex(c, EVP_aes_128_cbc(), NULL, key, iv) != 1 ||
      EVP_CIPHER_CTX_set_padding(c, 0) != 1 || EVP_EncryptUpdate(c, ct, &l1, pt, 16) != 1 ||
      EVP_EncryptFinal_ex(c, ct + l1, &l2) != 1 || l1 + l2 != 16)
    abort();
  EVP_CIPHER_CTX_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
  static struct fixture *fx;
  if (fx == NULL) {
    fx = fixture_get();
    map_tag();
  }
  uint8_t mk[16], fk[16], uid[7], mac[8];
  uint32_t ctr;
  nfc_sun_keys(fx->nfc_key, NULL, 0, mk, fk);
  if (n >= 24 && nfc_sun_picc(mk, d, uid, &ctr) == 0) {
    nfc_sun_keys(fx->nfc_key, uid, 7, mk, fk);
    if (nfc_sun_mac(fk, uid, ctr, mac) != 0 || ctr > 0xFFFFFF)
      abort();
    nfc_sun_keys(fx->nfc_key, NULL, 0, mk, fk);
  }
  if (n >= 16) {
    uint8_t enc[16];
    encrypt_block(mk, d, enc);
    bool accept = nfc_sun_picc(mk, enc, uid, &ctr) == 0;
    if (accept != (d[0] == 0xC7))
      abort();
    if (accept && (memcmp(uid, d + 1, 7) != 0 ||
                   ctr != ((uint32_t)d[8] | (uint32_t)d[9] << 8 | (uint32_t)d[10] << 16)))
      abort();
  }
  json_error_t err;
  json_t *pd = json_loadb((const char *)d, n, JSON_REJECT_DUPLICATES, &err);
  if (pd != NULL) {
    struct method_env env;
    if (fixture_env(&env, 2000) == 0) {
      struct verify_outcome out;
      verify_service_check(&env, "nfc", pd, NULL, &out);
      ledger_rd_end(env.rd);
    }
    json_decref(pd);
  }
  return 0;
}
