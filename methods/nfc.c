/*
 * nfc.c — the `nfc` method: NDEF and Type 2 tag codecs, the signed tag
 * record, NTAG 424 DNA SUN messages (see nfc.h).
 */
#include "nfc.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <string.h>

#include "../lib/buf.h"
#include "../lib/codec.h"
#include "../lib/err.h"
#include "keys.h"

int nfc_uid_parse(const char *hex, uint8_t uid[NFC_UID_MAX], size_t *len) {
  size_t n = strlen(hex);
  if (n != 8 && n != 14 && n != 20)
    return GM_EDECODE;
  long got = gm_unhex(uid, NFC_UID_MAX, hex, n);
  if (got < 0)
    return GM_EDECODE;
  *len = (size_t)got;
  return 0;
}

/* --- NDEF ---------------------------------------------------------------- */

#define NDEF_MB 0x80
#define NDEF_ME 0x40
#define NDEF_CF 0x20
#define NDEF_SR 0x10
#define NDEF_IL 0x08

int ndef_encode(const struct ndef_record *r, size_t n, uint8_t *out, size_t cap, size_t *len) {
  size_t at = 0;
  for (size_t i = 0; i < n; i++) {
    bool sr = r[i].payload_len < 256;
    size_t need = 2 + (sr ? 1 : 4) + (r[i].id_len ? 1 : 0) + r[i].type_len + r[i].id_len +
                  r[i].payload_len;
    if (cap - at < need)
      return GM_ELIMIT;
    out[at++] = (uint8_t)((i == 0 ? NDEF_MB : 0) | (i + 1 == n ? NDEF_ME : 0) |
                          (sr ? NDEF_SR : 0) | (r[i].id_len ? NDEF_IL : 0) | (r[i].tnf & 7));
    out[at++] = r[i].type_len;
    if (sr) {
      out[at++] = (uint8_t)r[i].payload_len;
    } else {
      for (int s = 24; s >= 0; s -= 8)
        out[at++] = (uint8_t)(r[i].payload_len >> s);
    }
    if (r[i].id_len)
      out[at++] = r[i].id_len;
    memcpy(out + at, r[i].type, r[i].type_len);
    at += r[i].type_len;
    if (r[i].id_len)
      memcpy(out + at, r[i].id, r[i].id_len);
    at += r[i].id_len;
    if (r[i].payload_len)
      memcpy(out + at, r[i].payload, r[i].payload_len);
    at += r[i].payload_len;
  }
  *len = at;
  return 0;
}

int ndef_decode(const uint8_t *p, size_t n, struct ndef_record *out, size_t max,
                size_t *count) {
  size_t at = 0, k = 0;
  *count = 0;
  for (;;) {
    if (n - at < 3)
      return GM_EDECODE;
    uint8_t h = p[at++];
    uint8_t tnf = h & 7;
    if ((k == 0) != ((h & NDEF_MB) != 0) || (h & NDEF_CF) || tnf == 7)
      return GM_EDECODE;
    if (k == max)
      return GM_EDECODE;
    struct ndef_record *r = &out[k];
    memset(r, 0, sizeof *r);
    r->tnf = tnf;
    r->type_len = p[at++];
    if (h & NDEF_SR) {
      r->payload_len = p[at++];
    } else {
      if (n - at < 4)
        return GM_EDECODE;
      r->payload_len = gm_be32_get(p + at);
      at += 4;
    }
    if (h & NDEF_IL) {
      if (n - at < 1)
        return GM_EDECODE;
      r->id_len = p[at++];
    }
    /* Empty records have nothing; unknown/unchanged ones have no type. */
    if ((tnf == 0 && (r->type_len || r->id_len || r->payload_len)) ||
        ((tnf == 5 || tnf == 6) && r->type_len) || (tnf >= 1 && tnf <= 4 && r->type_len == 0))
      return GM_EDECODE;
    size_t body = (size_t)r->type_len + r->id_len + r->payload_len;
    if (n - at < body)
      return GM_EDECODE;
    r->type = p + at;
    at += r->type_len;
    r->id = p + at;
    at += r->id_len;
    r->payload = p + at;
    at += r->payload_len;
    k++;
    if (h & NDEF_ME)
      break;
  }
  if (at != n)
    return GM_EDECODE;
  *count = k;
  return 0;
}

int ndef_t2_wrap(const uint8_t *ndef, size_t n, uint8_t *out, size_t cap, size_t *len) {
  if (n > 0xFFFE)
    return GM_ELIMIT;
  size_t hdr = n < 0xFF ? 2 : 4;
  if (cap < hdr + n + 1)
    return GM_ELIMIT;
  out[0] = 0x03;
  if (n < 0xFF) {
    out[1] = (uint8_t)n;
  } else {
    out[1] = 0xFF;
    out[2] = (uint8_t)(n >> 8);
    out[3] = (uint8_t)n;
  }
  memcpy(out + hdr, ndef, n);
  out[hdr + n] = 0xFE;
  *len = hdr + n + 1;
  return 0;
}

int ndef_t2_unwrap(const uint8_t *mem, size_t n, const uint8_t **ndef, size_t *len) {
  size_t at = 0;
  while (at < n) {
    uint8_t t = mem[at++];
    if (t == 0x00)
      continue;
    if (t == 0xFE)
      break;
    if (at >= n)
      return GM_EDECODE;
    size_t l = mem[at++];
    if (l == 0xFF) {
      if (n - at < 2)
        return GM_EDECODE;
      l = (size_t)mem[at] << 8 | mem[at + 1];
      at += 2;
    }
    if (n - at < l)
      return GM_EDECODE;
    if (t == 0x03) {
      *ndef = mem + at;
      *len = l;
      return 0;
    }
    at += l;
  }
  return GM_EDECODE;
}

/* --- the signed record ---------------------------------------------------- */

static const char rec_magic[4] = {'G', 'M', 'N', '1'};
static const char rec_ctx[] = "gm-nfc-v1";

static void rec_sign_input(crypto_sign_state *st, const uint8_t *p, size_t n) {
  crypto_sign_init(st);
  crypto_sign_update(st, (const uint8_t *)rec_ctx, sizeof rec_ctx - 1);
  crypto_sign_update(st, p, n);
}

int nfc_record_build(const uint8_t sk[64], uint32_t kid, const char *ticket_id,
                     uint32_t version, const uint8_t *uid, size_t uid_len,
                     uint8_t out[NFC_RECORD_MAX], size_t *len) {
  size_t tl = strlen(ticket_id);
  if (uid_len == 0 || uid_len > NFC_UID_MAX || tl == 0 || tl > LEDGER_ID_MAX)
    return GM_EINVAL;
  size_t at = 0;
  memcpy(out, rec_magic, 4);
  at += 4;
  gm_be32_put(out + at, kid);
  at += 4;
  gm_be32_put(out + at, version);
  at += 4;
  out[at++] = (uint8_t)uid_len;
  memcpy(out + at, uid, uid_len);
  at += uid_len;
  out[at++] = (uint8_t)tl;
  memcpy(out + at, ticket_id, tl);
  at += tl;
  crypto_sign_state st;
  rec_sign_input(&st, out, at);
  crypto_sign_final_create(&st, out + at, NULL, sk);
  *len = at + 64;
  return 0;
}

int nfc_record_parse(const uint8_t *p, size_t n, struct nfc_record *r) {
  memset(r, 0, sizeof *r);
  if (n < 4 + 4 + 4 + 1 + 4 + 1 + 1 + 64 || n > NFC_RECORD_MAX || memcmp(p, rec_magic, 4) != 0)
    return GM_EDECODE;
  size_t at = 4;
  r->kid = gm_be32_get(p + at);
  at += 4;
  r->ticket_version = gm_be32_get(p + at);
  at += 4;
  r->uid_len = p[at++];
  if (r->uid_len != 4 && r->uid_len != 7 && r->uid_len != 10)
    return GM_EDECODE;
  if (n - at < r->uid_len + 1 + 64)
    return GM_EDECODE;
  memcpy(r->uid, p + at, r->uid_len);
  at += r->uid_len;
  size_t tl = p[at++];
  if (tl == 0 || tl > LEDGER_ID_MAX || n - at != tl + 64)
    return GM_EDECODE;
  if (gm_strlcpy(r->ticket_id, sizeof r->ticket_id, (const char *)p + at, tl) != 0 ||
      strlen(r->ticket_id) != tl)
    return GM_EDECODE;
  at += tl;
  r->signed_part = p;
  r->signed_len = at;
  memcpy(r->sig, p + at, 64);
  return 0;
}

int nfc_record_verify(const struct nfc_record *r, const uint8_t pk[32]) {
  crypto_sign_state st;
  rec_sign_input(&st, r->signed_part, r->signed_len);
  return crypto_sign_final_verify(&st, r->sig, pk) == 0 ? 0 : GM_ECRYPTO;
}

/* --- SUN (NTAG 424 DNA secure dynamic messaging) -------------------------- */

int nfc_aes_cmac(const uint8_t key[16], const uint8_t *msg, size_t n, uint8_t mac[16]) {
  EVP_MAC *m = EVP_MAC_fetch(NULL, "CMAC", NULL);
  EVP_MAC_CTX *ctx = m ? EVP_MAC_CTX_new(m) : NULL;
  EVP_MAC_free(m);
  OSSL_PARAM params[2] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_CIPHER, (char *)"AES-128-CBC", 0),
      OSSL_PARAM_construct_end()};
  size_t outl = 0;
  int ok = ctx != NULL && EVP_MAC_init(ctx, key, 16, params) == 1 &&
           EVP_MAC_update(ctx, msg, n) == 1 && EVP_MAC_final(ctx, mac, &outl, 16) == 1 &&
           outl == 16;
  EVP_MAC_CTX_free(ctx);
  return ok ? 0 : GM_ECRYPTO;
}

int nfc_sun_picc(const uint8_t meta_key[16], const uint8_t enc[16], uint8_t uid[7],
                 uint32_t *ctr) {
  uint8_t pt[32];
  int outl = 0, fin = 0;
  static const uint8_t iv[16];
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
  int ok = c != NULL && EVP_DecryptInit_ex(c, EVP_aes_128_cbc(), NULL, meta_key, iv) == 1 &&
           EVP_CIPHER_CTX_set_padding(c, 0) == 1 &&
           EVP_DecryptUpdate(c, pt, &outl, enc, 16) == 1 &&
           EVP_DecryptFinal_ex(c, pt + outl, &fin) == 1 && outl + fin == 16;
  EVP_CIPHER_CTX_free(c);
  if (!ok)
    return GM_ECRYPTO;
  /* 0xC7: UID mirrored (bit 7), counter mirrored (bit 6), UID length 7. */
  int rc = pt[0] == 0xC7 ? 0 : GM_ECRYPTO;
  if (rc == 0) {
    memcpy(uid, pt + 1, 7);
    *ctr = (uint32_t)pt[8] | (uint32_t)pt[9] << 8 | (uint32_t)pt[10] << 16;
  }
  sodium_memzero(pt, sizeof pt);
  return rc;
}

int nfc_sun_mac(const uint8_t file_key[16], const uint8_t uid[7], uint32_t ctr,
                uint8_t mac[8]) {
  uint8_t sv2[16] = {0x3C, 0xC3, 0x00, 0x01, 0x00, 0x80};
  memcpy(sv2 + 6, uid, 7);
  sv2[13] = (uint8_t)ctr;
  sv2[14] = (uint8_t)(ctr >> 8);
  sv2[15] = (uint8_t)(ctr >> 16);
  uint8_t ses[16], full[16];
  int rc = nfc_aes_cmac(file_key, sv2, sizeof sv2, ses);
  if (rc == 0)
    rc = nfc_aes_cmac(ses, NULL, 0, full);
  if (rc == 0)
    for (int i = 0; i < 8; i++)
      mac[i] = full[2 * i + 1]; /* the odd bytes: NXP's truncation */
  sodium_memzero(ses, sizeof ses);
  return rc;
}

int nfc_sun_tap(const uint8_t meta_key[16], const uint8_t file_key[16], const uint8_t uid[7],
                uint32_t ctr, const uint8_t pad[5], uint8_t enc[16], uint8_t mac[8]) {
  if (ctr > 0xFFFFFF)
    return GM_EINVAL;
  uint8_t pt[16] = {0xC7};
  memcpy(pt + 1, uid, 7);
  pt[8] = (uint8_t)ctr;
  pt[9] = (uint8_t)(ctr >> 8);
  pt[10] = (uint8_t)(ctr >> 16);
  memcpy(pt + 11, pad, 5);
  static const uint8_t iv[16];
  int outl = 0, fin = 0;
  uint8_t out[32];
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
  int ok = c != NULL && EVP_EncryptInit_ex(c, EVP_aes_128_cbc(), NULL, meta_key, iv) == 1 &&
           EVP_CIPHER_CTX_set_padding(c, 0) == 1 &&
           EVP_EncryptUpdate(c, out, &outl, pt, 16) == 1 &&
           EVP_EncryptFinal_ex(c, out + outl, &fin) == 1 && outl + fin == 16;
  EVP_CIPHER_CTX_free(c);
  if (!ok)
    return GM_ECRYPTO;
  memcpy(enc, out, 16);
  return nfc_sun_mac(file_key, uid, ctr, mac);
}

void nfc_key_derive(const uint8_t cluster_key[32], uint8_t nfc_key[32]) {
  crypto_kdf_derive_from_key(nfc_key, 32, 2, "gm-nfc__", cluster_key);
}

void nfc_sun_keys(const uint8_t nfc_key[32], const uint8_t *uid, size_t uid_len,
                  uint8_t meta_key[16], uint8_t file_key[16]) {
  uint8_t k[32];
  crypto_kdf_derive_from_key(k, 32, 1, "gm-sdm__", nfc_key);
  memcpy(meta_key, k, 16);
  crypto_generichash(file_key, 16, uid, uid_len, k + 16, 16);
  sodium_memzero(k, sizeof k);
}

/* --- the method ----------------------------------------------------------- */

static int nfc_generate(struct method_env *env, const struct ledger_ticket *t,
                        const json_t *params, struct method_issue *out) {
  const char *uidhex;
  int sun = 0;
  json_error_t jerr;
  if (params == NULL ||
      json_unpack_ex((json_t *)params, &jerr, JSON_STRICT, "{s:s, s?b}", "uid", &uidhex, "sun",
                     &sun) != 0)
    return method__einval(env, "nfc generate takes {uid, sun?}: %s", jerr.text);
  uint8_t uid[NFC_UID_MAX];
  size_t ul;
  if (nfc_uid_parse(uidhex, uid, &ul) != 0)
    return method__einval(env, "uid must be 4, 7 or 10 bytes in hex");
  if (sun && (ul != 7 || env->nfc_key == NULL))
    return method__einval(env, "SUN tags (NTAG 424 DNA) have 7-byte UIDs");
  uint32_t kid;
  uint8_t sk[64];
  int rc = keys_signing(env, &kid, sk);
  if (rc != 0)
    return rc;
  uint8_t rec[NFC_RECORD_MAX];
  size_t rl;
  rc = nfc_record_build(sk, kid, t->id, t->version, uid, ul, rec, &rl);
  sodium_memzero(sk, sizeof sk);
  if (rc != 0)
    return rc;
  struct ndef_record nr = {.tnf = 0x04,
                           .type = (const uint8_t *)NFC_NDEF_TYPE,
                           .type_len = sizeof NFC_NDEF_TYPE - 1,
                           .payload = rec,
                           .payload_len = (uint32_t)rl};
  uint8_t ndef[NFC_RECORD_MAX + 32], mem[NFC_RECORD_MAX + 40];
  size_t nl, ml;
  if ((rc = ndef_encode(&nr, 1, ndef, sizeof ndef, &nl)) != 0 ||
      (rc = ndef_t2_wrap(ndef, nl, mem, sizeof mem, &ml)) != 0)
    return rc;
  char rec64[2 * NFC_RECORD_MAX], memhex[2 * sizeof mem + 1], uidn[2 * NFC_UID_MAX + 1],
      kids[16];
  gm_b64url_encode(rec64, sizeof rec64, rec, rl);
  gm_hex(memhex, mem, ml);
  gm_hex(uidn, uid, ul);
  keys_kid_str(kids, kid);

  method__cred_issue(env, t, "nfc", uidn, out);
  out->response = json_pack("{s:s, s:s, s:s, s:s}", "uid", uidn, "record", rec64, "ndef_t2",
                            memhex, "kid", kids);
  if (out->response && sun) {
    uint8_t mk[16], fk[16];
    char mkh[33], fkh[33];
    nfc_sun_keys(env->nfc_key, uid, ul, mk, fk);
    gm_hex(mkh, mk, 16);
    gm_hex(fkh, fk, 16);
    json_object_set_new(out->response, "sdm_meta_read_key", json_string(mkh));
    json_object_set_new(out->response, "sdm_file_read_key", json_string(fkh));
    sodium_memzero(mk, sizeof mk);
    sodium_memzero(fk, sizeof fk);
    sodium_memzero(mkh, sizeof mkh);
    sodium_memzero(fkh, sizeof fkh);
  }
  return out->response ? 0 : GM_ENOMEM;
}

/* SUN check: the UID and counter of an authentic tap, or a reason. */
static int sun_check(struct method_env *env, const json_t *sun, uint8_t uid[7], uint32_t *ctr,
                     int *reason) {
  const char *picc, *cmac;
  json_error_t jerr;
  if (json_unpack_ex((json_t *)sun, &jerr, JSON_STRICT, "{s:s, s:s}", "picc_data", &picc,
                     "cmac", &cmac) != 0)
    return method__einval(env, "sun must be {picc_data, cmac}: %s", jerr.text);
  uint8_t enc[16], mac[8], want[8];
  if (strlen(picc) != 32 || gm_unhex(enc, sizeof enc, picc, 32) != 16 || strlen(cmac) != 16 ||
      gm_unhex(mac, sizeof mac, cmac, 16) != 8) {
    *reason = LEDGER_REASON_MALFORMED;
    return 0;
  }
  if (env->nfc_key == NULL) {
    *reason = LEDGER_REASON_BAD_SIGNATURE;
    return 0;
  }
  uint8_t mk[16], fk[16];
  nfc_sun_keys(env->nfc_key, NULL, 0, mk, fk);
  int rc = nfc_sun_picc(mk, enc, uid, ctr);
  if (rc == 0) {
    nfc_sun_keys(env->nfc_key, uid, 7, mk, fk);
    rc = nfc_sun_mac(fk, uid, *ctr, want);
  }
  sodium_memzero(mk, sizeof mk);
  sodium_memzero(fk, sizeof fk);
  if (rc != 0 || sodium_memcmp(want, mac, sizeof mac) != 0)
    *reason = LEDGER_REASON_BAD_SIGNATURE;
  return 0;
}

static int nfc_verify(struct method_env *env, const json_t *presented, struct method_claim *out) {
  const char *uidhex = NULL, *rec64 = NULL;
  json_t *sun = NULL;
  json_error_t jerr;
  if (json_unpack_ex((json_t *)presented, &jerr, JSON_STRICT, "{s?s, s?s, s?o}", "uid", &uidhex,
                     "record", &rec64, "sun", &sun) != 0)
    return method__einval(env, "presented_data for nfc is {uid, record?, sun?}: %s", jerr.text);
  if (uidhex == NULL && sun == NULL)
    return method__einval(env, "uid is required");
  uint8_t uid[NFC_UID_MAX];
  size_t ul = 0;
  if (uidhex != NULL && nfc_uid_parse(uidhex, uid, &ul) != 0)
    return method__einval(env, "uid must be 4, 7 or 10 bytes in hex");
  if (sun != NULL) {
    uint8_t suid[7];
    uint32_t ctr = 0;
    int rc = sun_check(env, sun, suid, &ctr, &out->reason);
    if (rc != 0 || out->reason != LEDGER_REASON_NONE)
      return rc;
    if (uidhex != NULL && (ul != 7 || memcmp(uid, suid, 7) != 0)) {
      out->reason = LEDGER_REASON_BAD_SIGNATURE; /* a SUN of another tag */
      return 0;
    }
    memcpy(uid, suid, 7);
    ul = 7;
    out->nonce = (uint64_t)ctr + 1;
  }
  char uidn[2 * NFC_UID_MAX + 1];
  gm_hex(uidn, uid, ul);
  memcpy(out->cred_id, uidn, strlen(uidn) + 1);

  struct nfc_record rec;
  bool has_rec = false;
  if (rec64 != NULL) {
    uint8_t raw[NFC_RECORD_MAX];
    long rl = gm_b64url_decode(raw, sizeof raw, rec64, strlen(rec64));
    uint8_t pk[32];
    if (rl < 0 || nfc_record_parse(raw, (size_t)rl, &rec) != 0) {
      out->reason = LEDGER_REASON_MALFORMED;
      return 0;
    }
    int krc = keys_public(env, rec.kid, pk);
    if (krc != 0 || nfc_record_verify(&rec, pk) != 0 || rec.uid_len != ul ||
        memcmp(rec.uid, uid, ul) != 0) {
      /* Unknown key, forged, or a record copied from another tag. */
      out->reason = LEDGER_REASON_BAD_SIGNATURE;
      return 0;
    }
    has_rec = true;
  } else if (env->cfg->nfc_require_record) {
    out->reason = LEDGER_REASON_BAD_SIGNATURE;
    return 0;
  }

  struct ledger_cred cred;
  int rc = ledger_cred_get(env->rd, "nfc", uidn, &cred);
  if (rc != 0 && rc != GM_ENOTFOUND)
    return rc;
  if (rc == GM_ENOTFOUND) {
    /* Not (yet) mapped on this gate: the signed record alone says which
     * ticket, which is what lets a gate behind on replication admit. */
    if (!has_rec) {
      out->reason = LEDGER_REASON_UNKNOWN_CREDENTIAL;
      return 0;
    }
    memcpy(out->ticket_id, rec.ticket_id, sizeof out->ticket_id);
    out->ticket_version = rec.ticket_version;
    if (out->nonce > 0)
      out->reason = LEDGER_REASON_UNKNOWN_CREDENTIAL; /* a SUN tag must be mapped */
    return 0;
  }
  memcpy(out->ticket_id, cred.ticket_id, sizeof out->ticket_id);
  out->ticket_version = cred.ticket_version;
  if (has_rec) {
    if (strcmp(rec.ticket_id, cred.ticket_id) != 0) {
      out->reason = LEDGER_REASON_BAD_SIGNATURE;
      return 0;
    }
    if (rec.ticket_version != cred.ticket_version) {
      out->reason = LEDGER_REASON_SUPERSEDED;
      return 0;
    }
  }
  if (out->nonce > 0 && out->nonce <= cred.last_ctr)
    out->reason = LEDGER_REASON_REPLAYED; /* a cloned tag or a recorded tap */
  return 0;
}

const struct method method_nfc = {.name = "nfc", .generate = nfc_generate, .verify = nfc_verify};
