/* fuzz_ndef.c — what a gate reads off a tag: Type 2 tag memory, the NDEF
 * message in it, and the signed ticket record. Decoded records must lie
 * inside the input, and a decoded message must survive re-encoding. */
#include <stdlib.h>
#include <string.h>

#include "methods/nfc.h"

#define MAX_RECORDS 8

static void inside(const uint8_t *p, size_t len, const uint8_t *d, size_t n) {
  if (len > 0 && (p < d || p + len > d + n))
    abort();
}

static void check_message(const uint8_t *m, size_t ml, const uint8_t *d, size_t n) {
  struct ndef_record r[MAX_RECORDS], again[MAX_RECORDS];
  size_t cnt, cnt2, len;
  if (ndef_decode(m, ml, r, MAX_RECORDS, &cnt) != 0)
    return;
  if (cnt == 0 || cnt > MAX_RECORDS)
    abort();
  for (size_t i = 0; i < cnt; i++) {
    inside(r[i].type, r[i].type_len, d, n);
    inside(r[i].id, r[i].id_len, d, n);
    inside(r[i].payload, r[i].payload_len, d, n);
    struct nfc_record rec;
    if (r[i].type_len == strlen(NFC_NDEF_TYPE) &&
        memcmp(r[i].type, NFC_NDEF_TYPE, r[i].type_len) == 0 &&
        nfc_record_parse(r[i].payload, r[i].payload_len, &rec) == 0)
      inside(rec.signed_part, rec.signed_len, d, n);
  }
  /* Re-encode and decode: the same records, field for field. */
  static uint8_t buf[8192];
  if (ndef_encode(r, cnt, buf, sizeof buf, &len) != 0)
    return;
  if (ndef_decode(buf, len, again, MAX_RECORDS, &cnt2) != 0 || cnt2 != cnt)
    abort();
  for (size_t i = 0; i < cnt; i++)
    if (again[i].tnf != r[i].tnf || again[i].type_len != r[i].type_len ||
        again[i].id_len != r[i].id_len || again[i].payload_len != r[i].payload_len ||
        memcmp(again[i].type, r[i].type, r[i].type_len) != 0 ||
        memcmp(again[i].id, r[i].id, r[i].id_len) != 0 ||
        memcmp(again[i].payload, r[i].payload, r[i].payload_len) != 0)
      abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
  const uint8_t *m;
  size_t ml;
  /* As tag memory from page 4. */
  if (ndef_t2_unwrap(d, n, &m, &ml) == 0) {
    inside(m, ml, d, n);
    check_message(m, ml, d, n);
  }
  /* As a bare message. */
  check_message(d, n, d, n);
  /* As a bare ticket record: parsed fields within their bounds, and a
   * signature that cannot verify under a key that did not sign it. */
  struct nfc_record rec;
  if (nfc_record_parse(d, n, &rec) == 0) {
    inside(rec.signed_part, rec.signed_len, d, n);
    if (rec.uid_len > NFC_UID_MAX || strlen(rec.ticket_id) > LEDGER_ID_MAX)
      abort();
    static const uint8_t pk[32] = {1};
    nfc_record_verify(&rec, pk);
  }
  return 0;
}
