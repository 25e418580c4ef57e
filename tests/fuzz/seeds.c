/* seeds.c — writes one valid input per fuzz target into its corpus folder, so
 * fuzzing starts from inputs that reach deep into each parser. */
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/buf.h"
#include "lib/jws.h"
#include "ledger/cmd.h"
#include "ledger/record.h"
#include "methods/nfc.h"
#include "methods/pass.h"
#include "methods/qr.h"
#include "methods/qr_image.h"
#include "raft/entry.h"

static void put(const char *dir, const char *name, const void *p, size_t n) {
  char path[512];
  mkdir(dir, 0755);
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (f) {
    fwrite(p, 1, n, f);
    fclose(f);
  }
}

int main(int argc, char **argv) {
  if (argc < 2 || sodium_init() < 0)
    return 2;
  mkdir(argv[1], 0755); /* a fresh checkout has no corpus folder yet */
  char d[400];
  uint8_t pk[32], sk[64];
  crypto_sign_seed_keypair(pk, sk, (const uint8_t *)"0123456789abcdef0123456789abcdef");
  char text[QR_TEXT_MAX];
  qr_issue(text, sizeof text, 1, sk, 1, 4000000000u, 1, "t1", NULL);
  snprintf(d, sizeof d, "%s/qr", argv[1]);
  put(d, "ticket", text, strlen(text));
  char cred[QR_TEXT_MAX], show[QR_TEXT_MAX];
  qr_issue(cred, sizeof cred, 1, sk, 1, 4000000000u, 1, "t1", pk);
  qr_holder_show(show, sizeof show, cred, sk, 5);
  put(d, "holder", show, strlen(show));

  char code[PASS_CODE_MAX + 1];
  pass_code_make(code, pk, "0123456789abcdef0123456789abcdef", 12345);
  snprintf(d, sizeof d, "%s/pass", argv[1]);
  put(d, "code", code, strlen(code));

  char jws[GM_JWS_MAX];
  json_t *claims = json_pack("{s:s, s:i}", "sub", "u-1", "exp", 99);
  long n = gm_jws_sign(jws, sizeof jws, "k1", "JWT", claims, sk);
  json_decref(claims);
  snprintf(d, sizeof d, "%s/jws", argv[1]);
  put(d, "token", jws, (size_t)n);

  {
    struct gm_slice two[2] = {{(const uint8_t *)"\x81\xa1o\x01", 4}, {(const uint8_t *)"abc", 3}};
    struct entry_hdr h = {.count = 2, .origin = 1, .token = 9};
    uint8_t e[64];
    entry_encode(e, &h, two, 2);
    snprintf(d, sizeof d, "%s/entry", argv[1]);
    put(d, "two", e, entry_size(2, 7));
  }

  struct ledger_cmd c = {.op = LEDGER_OP_REDEEM, .ts_ms = 5};
  strcpy(c.rid, "r1");
  strcpy(c.u.redeem.ticket_id, "t1");
  strcpy(c.u.redeem.method, "qr");
  struct mpk_w w;
  mpk_w_init(&w);
  ledger_cmd_encode(&c, &w);
  snprintf(d, sizeof d, "%s/cmd", argv[1]);
  put(d, "redeem", w.sb.data, w.sb.size);
  struct ledger_ticket_spec s = {.id = "t2", .event_id = "e1", .holder = "h"};
  memset(&c, 0, sizeof c);
  c.op = LEDGER_OP_TICKET_CREATE;
  c.u.tickets.v = &s;
  c.u.tickets.n = 1;
  mpk_w_reset(&w);
  ledger_cmd_encode(&c, &w);
  put(d, "tickets", w.sb.data, w.sb.size);
  mpk_w_free(&w);

  uint8_t *px;
  uint32_t side;
  qr_render_gray("HELLO", &px, &side);
  snprintf(d, sizeof d, "%s/image", argv[1]);
  char hdr[64];
  int hl = snprintf(hdr, sizeof hdr, "P5\n%u %u\n255\n", side, side);
  FILE *f;
  char path[512];
  mkdir(d, 0755);
  snprintf(path, sizeof path, "%s/code.pgm", d);
  if ((f = fopen(path, "wb"))) {
    fwrite(hdr, 1, (size_t)hl, f);
    fwrite(px, 1, (size_t)side * side, f);
    fclose(f);
  }
  free(px);

  snprintf(d, sizeof d, "%s/request", argv[1]);
  char req[1024];
  int rl = snprintf(req, sizeof req, "{\"method\":\"qr\",\"presented_data\":{\"payload\":\"%s\"}}", text);
  put(d, "qr", req, (size_t)rl);
  rl = snprintf(req, sizeof req, "{\"method\":\"pass\",\"presented_data\":{\"code\":\"%s\"}}", code);
  put(d, "pass", req, (size_t)rl);
  struct ledger_ticket tk = {.id = "t1", .event_id = "e1", .holder = "h", .version = 1};
  mpk_w_init(&w);
  ledger__ticket_enc(&w, &tk);
  snprintf(d, sizeof d, "%s/record", argv[1]);
  put(d, "ticket", w.sb.data, w.sb.size);
  mpk_w_free(&w);
  snprintf(d, sizeof d, "%s/snapshot", argv[1]);
  put(d, "empty", "GMSNAP1\n", 8);

  /* A tag as written by `gatectl nfc write`: the signed record in an NDEF
   * message in Type 2 tag memory. */
  static const uint8_t uid[7] = {0x04, 0xDE, 0x5F, 0x1E, 0xAC, 0xC0, 0x40};
  uint8_t rec[NFC_RECORD_MAX], msg[512], mem[600];
  size_t rl2, ml, tl;
  nfc_record_build(sk, 1, "t1", 1, uid, sizeof uid, rec, &rl2);
  struct ndef_record nr = {.tnf = 4, .type = (const uint8_t *)NFC_NDEF_TYPE,
                           .type_len = sizeof NFC_NDEF_TYPE - 1, .payload = rec,
                           .payload_len = (uint32_t)rl2};
  ndef_encode(&nr, 1, msg, sizeof msg, &ml);
  ndef_t2_wrap(msg, ml, mem, sizeof mem, &tl);
  snprintf(d, sizeof d, "%s/ndef", argv[1]);
  put(d, "tag", mem, tl);
  put(d, "record", rec, rl2);

  /* A SUN tap of the tag the sun target maps, under its NFC key (fixture.c),
   * as plaintext PICCData and as presented_data. */
  uint8_t nfc_key[32], mk[16], fk[16], scratch[16], enc[16], mac[8], pad[5] = {1, 2, 3, 4, 5};
  memset(nfc_key, 0x4e, sizeof nfc_key);
  nfc_sun_keys(nfc_key, NULL, 0, mk, scratch);
  nfc_sun_keys(nfc_key, uid, sizeof uid, scratch, fk);
  nfc_sun_tap(mk, fk, uid, 5, pad, enc, mac);
  uint8_t plain[16] = {0xC7, 0x04, 0xDE, 0x5F, 0x1E, 0xAC, 0xC0, 0x40, 5, 0, 0, 1, 2, 3, 4, 5};
  snprintf(d, sizeof d, "%s/sun", argv[1]);
  put(d, "picc", plain, sizeof plain);
  char ench[33], mach[17], uidh[15];
  gm_hex(ench, enc, 16);
  gm_hex(mach, mac, 8);
  gm_hex(uidh, uid, 7);
  rl = snprintf(req, sizeof req, "{\"uid\":\"%s\",\"sun\":{\"picc_data\":\"%s\",\"cmac\":\"%s\"}}",
                uidh, ench, mach);
  put(d, "tap", req, (size_t)rl);

  /* An entry report inside the circle zone of the webhook target. */
  snprintf(d, sizeof d, "%s/webhook", argv[1]);
  rl = snprintf(req, sizeof req,
                "{\"device_key\":\"k\",\"lat\":52.5201,\"lon\":13.4051,\"accuracy_m\":8,"
                "\"timestamp_ms\":1699999995000,\"signature\":\"AA\"}");
  put(d, "report", req, (size_t)rl);
  rl = snprintf(req, sizeof req,
                "{\"id\":\"z\",\"polygon\":[[-16.5,179.9],[-16.5,-179.9],[-16.4,-179.9]]}");
  put(d, "zone", req, (size_t)rl);
  return 0;
}
