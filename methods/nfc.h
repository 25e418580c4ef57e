/*
 * nfc.h — the `nfc` method (tap-and-go wristbands and cards) and the codecs
 * it rests on.
 *
 * Provisioning maps a tag UID to a ticket (a CRED_ISSUE with method "nfc" and
 * the UID as credential id) and hands back a signed record to write on the
 * tag, so that a gate checks a tap without the mapping and a UID alone cannot
 * be turned into a ticket:
 *
 *   record = "GMN1" | kid u32 | ticket version u32 | uid len u8 | uid |
 *            ticket id len u8 | ticket id | Ed25519 signature (64)
 *
 * signed over "gm-nfc-v1" followed by every byte before the signature, with
 * the cluster's current signing key (keys.h). On the tag it is the payload of
 * an NFC Forum external-type record "gatemesh.app:t" in an NDEF message,
 * inside the NDEF TLV of a Type 2 tag (NTAG21x) from page 4.
 *
 * NTAG 424 DNA tags add a Secure Unique NFC message per tap (NXP AN12196):
 * PICCData (tag 0xC7, the 7-byte UID and the 24-bit read counter) encrypted
 * with the SDM meta-read key, and an AES-CMAC truncated to 8 bytes under a
 * session key derived from the tag's file-read key, the UID and the counter.
 * The counter must grow: one at or below the last seen anywhere in the
 * cluster is a clone or a replay (checked here against the ledger and again
 * when the redeem applies).
 */
#ifndef GM_NFC_H
#define GM_NFC_H

#include <stddef.h>
#include <stdint.h>

#include "method.h"

#define NFC_UID_MAX 10 /* ISO 14443-3: 4, 7 or 10 bytes */
#define NFC_RECORD_MAX (4 + 4 + 4 + 1 + NFC_UID_MAX + 1 + LEDGER_ID_MAX + 64)
#define NFC_NDEF_TYPE "gatemesh.app:t"

/* The UID from its hex form (upper or lower case, 8/14/20 digits).
 * GM_EDECODE for anything else. */
int nfc_uid_parse(const char *hex, uint8_t uid[NFC_UID_MAX], size_t *len);

/* One NDEF record (NFC Forum NDEF 1.0). Decoded records point into the
 * input. */
struct ndef_record {
  uint8_t tnf; /* 0x01 well-known, 0x02 media, 0x03 URI, 0x04 external */
  const uint8_t *type;
  uint8_t type_len;
  const uint8_t *id;
  uint8_t id_len;
  const uint8_t *payload;
  uint32_t payload_len;
};

/* Encodes n records as one message (MB on the first, ME on the last; the
 * short form when a payload is under 256 bytes). GM_ELIMIT if cap is short. */
int ndef_encode(const struct ndef_record *r, size_t n, uint8_t *out, size_t cap,
                size_t *len);
/* Decodes a message of at most max records. GM_EDECODE for a truncated or
 * malformed message, chunked records (not used by this product) and a
 * message without MB first and ME last. */
int ndef_decode(const uint8_t *p, size_t n, struct ndef_record *out, size_t max,
                size_t *count);
/* Type 2 tag memory from page 4: NDEF TLV (0x03, 1- or 3-byte length), the
 * message, the terminator TLV 0xFE. */
int ndef_t2_wrap(const uint8_t *ndef, size_t n, uint8_t *out, size_t cap, size_t *len);
/* Finds the NDEF TLV in tag memory (skipping NULL and lock/memory control
 * TLVs). GM_EDECODE when there is none or it runs past the end. */
int ndef_t2_unwrap(const uint8_t *mem, size_t n, const uint8_t **ndef, size_t *len);

struct nfc_record {
  uint32_t kid;
  uint32_t ticket_version;
  uint8_t uid[NFC_UID_MAX];
  size_t uid_len;
  char ticket_id[LEDGER_ID_MAX + 1];
  const uint8_t *signed_part; /* into the parsed buffer */
  size_t signed_len;
  uint8_t sig[64];
};

/* Builds and signs a record with the 64-byte libsodium secret key. */
int nfc_record_build(const uint8_t sk[64], uint32_t kid, const char *ticket_id,
                     uint32_t version, const uint8_t *uid, size_t uid_len,
                     uint8_t out[NFC_RECORD_MAX], size_t *len);
/* Parses (does not verify) a record. GM_EDECODE on any malformation. */
int nfc_record_parse(const uint8_t *p, size_t n, struct nfc_record *out);
/* 0 when the signature checks with pk. */
int nfc_record_verify(const struct nfc_record *r, const uint8_t pk[32]);

/* SUN: decrypts PICCData with the meta-read key; GM_ECRYPTO unless it holds
 * tag 0xC7 (UID and counter mirrored, 7-byte UID). */
int nfc_sun_picc(const uint8_t meta_key[16], const uint8_t enc[16], uint8_t uid[7],
                 uint32_t *ctr);
/* The truncated SDMMAC over an empty MAC input (the counter-only URL). */
int nfc_sun_mac(const uint8_t file_key[16], const uint8_t uid[7], uint32_t ctr,
                uint8_t mac[8]);
/* What an NTAG 424 DNA tag sends for one tap (for kiosks' self-tests and
 * tests): the encrypted PICCData (pad: 5 random bytes) and the SDMMAC. */
int nfc_sun_tap(const uint8_t meta_key[16], const uint8_t file_key[16], const uint8_t uid[7],
                uint32_t ctr, const uint8_t pad[5], uint8_t enc[16], uint8_t mac[8]);
/* AES-CMAC (RFC 4493) of msg under a 16-byte key. */
int nfc_aes_cmac(const uint8_t key[16], const uint8_t *msg, size_t n, uint8_t mac[16]);

/* The cluster's SUN keys, from the 32-byte NFC key of the method env: one
 * meta-read key for every tag, a file-read key per UID. */
void nfc_sun_keys(const uint8_t nfc_key[32], const uint8_t *uid, size_t uid_len,
                  uint8_t meta_key[16], uint8_t file_key[16]);
/* The NFC key from the cluster key. */
void nfc_key_derive(const uint8_t cluster_key[32], uint8_t nfc_key[32]);

extern const struct method method_nfc;

#endif
