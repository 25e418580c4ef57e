/*
 * mkcreds.c — prepares a stopped gate's data dir for the HTTP benchmark:
 * N fresh tickets, and for each one a ready request body for POST /verify,
 * written one per line. The QR payloads are signed with the gate's own key
 * (unsealed with its cluster key), the passes are issued as ledger commands,
 * so every body is a distinct, valid, unused credential.
 *
 *   mkcreds DATA_DIR qr|pass N OUT_FILE [PASS_PERIOD_S]
 *
 * For a running cluster (whose ledger only Raft may write), tickets are
 * pushed through the API and this signs QR payloads for them offline, with
 * the key read from a member's ledger:
 *
 *   mkcreds DATA_DIR qr-for N OUT_FILE PREFIX    (tickets PREFIX1..PREFIXN)
 *
 * and turns the replies of the pass generate API (one JSON per line) into
 * request bodies carrying each pass's code for the current step:
 *
 *   mkcreds - pass-codes REPLIES_FILE OUT_FILE PASS_PERIOD_S
 */
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ledger/ledger.h"
#include "lib/codec.h"
#include "lib/err.h"
#include "methods/keys.h"
#include "methods/pass.h"
#include "methods/qr.h"

static void rnd(void *arg, void *out, size_t n) { randombytes_buf(out, n); }

static int apply_all(struct ledger *l, struct mpk_w *w, size_t n) {
  struct gm_slice *s = calloc(n, sizeof *s);
  struct ledger_result *r = calloc(n, sizeof *r);
  for (size_t i = 0; i < n; i++)
    s[i] = (struct gm_slice){(uint8_t *)w[i].sb.data, w[i].sb.size};
  int rc = ledger_apply_batch(l, s, n, r);
  for (size_t i = 0; i < n && rc == 0; i++)
    if (r[i].rc != 0)
      rc = r[i].rc;
  free(s);
  free(r);
  return rc;
}

int main(int argc, char **argv) {
  if (argc < 5 || sodium_init() < 0) {
    fprintf(stderr, "usage: mkcreds DATA_DIR qr|pass N OUT_FILE [PASS_PERIOD_S]\n");
    return 2;
  }
  const char *dir = argv[1], *kind = argv[2];
  if (!strcmp(kind, "pass-codes")) {
    FILE *in = fopen(argv[3], "r"), *pout = fopen(argv[4], "w");
    uint32_t per = argc > 5 ? (uint32_t)atoi(argv[5]) : 15;
    if (in == NULL || pout == NULL || per == 0) {
      fprintf(stderr, "mkcreds: cannot open %s or %s\n", argv[3], argv[4]);
      return 1;
    }
    uint64_t st = (uint64_t)time(NULL) / per;
    char line[8192];
    int count = 0;
    while (fgets(line, sizeof line, in)) {
      json_t *j = json_loads(line, 0, NULL);
      const char *pid = json_string_value(json_object_get(j, "pass_id"));
      const char *sec = json_string_value(json_object_get(j, "secret"));
      uint8_t secret[PASS_SECRET_LEN];
      if (pid && sec && gm_b64url_decode(secret, sizeof secret, sec, strlen(sec)) == PASS_SECRET_LEN) {
        char code[PASS_CODE_MAX + 1];
        pass_code_make(code, secret, pid, st);
        fprintf(pout, "{\"method\":\"pass\",\"presented_data\":{\"code\":\"%s\"}}\n", code);
        count++;
      }
      json_decref(j);
    }
    fclose(in);
    fclose(pout);
    fprintf(stderr, "mkcreds: %d pass codes\n", count);
    return 0;
  }
  int n = atoi(argv[3]);
  uint32_t period = argc > 5 ? (uint32_t)atoi(argv[5]) : 15;
  char path[1024];
  snprintf(path, sizeof path, "%s/cluster.key", dir);
  FILE *kf = fopen(path, "r");
  char hex[80] = {0};
  uint8_t ckey[32], seal[32];
  size_t bl;
  if (!kf || !fgets(hex, sizeof hex, kf) ||
      sodium_hex2bin(ckey, 32, hex, 64, NULL, &bl, NULL) != 0 || bl != 32) {
    fprintf(stderr, "mkcreds: cannot read %s\n", path);
    return 1;
  }
  fclose(kf);
  keys_seal_key_derive(ckey, seal);
  snprintf(path, sizeof path, "%s/ledger", dir);
  struct ledger *l;
  struct ledger_options o = {.map_size = (size_t)4 << 30};
  if (ledger_open(&l, path, &o) != 0) {
    fprintf(stderr, "mkcreds: cannot open %s\n", path);
    return 1;
  }
  int64_t now = (int64_t)time(NULL) * 1000;
  if (!strcmp(kind, "qr-for")) {
    struct method_config qcfg;
    method_config_default(&qcfg);
    struct method_env qenv = {.now_ms = now, .cfg = &qcfg, .seal_key = seal, .random = rnd};
    uint32_t qkid;
    uint8_t qsk[64];
    ledger_rd_begin(l, &qenv.rd);
    int qrc = keys_signing(&qenv, &qkid, qsk);
    ledger_rd_end(qenv.rd);
    FILE *qout = fopen(argv[4], "w");
    if (qrc != 0 || qout == NULL || argc < 6) {
      fprintf(stderr, "mkcreds: no signing key, output or prefix\n");
      return 1;
    }
    for (int i = 1; i <= n; i++) {
      char id[LEDGER_ID_MAX + 1], text[QR_TEXT_MAX];
      snprintf(id, sizeof id, "%s%d", argv[5], i);
      qr_issue(text, sizeof text, qkid, qsk, (uint32_t)(now / 1000), (uint32_t)(now / 1000 + 3600),
               1, id, NULL);
      fprintf(qout, "{\"method\":\"qr\",\"presented_data\":{\"payload\":\"%s\"}}\n", text);
    }
    fclose(qout);
    ledger_close(l);
    return 0;
  }
  struct method_config cfg;
  method_config_default(&cfg);
  cfg.pass_period_s = period;
  struct ledger_cmd c = {.op = LEDGER_OP_EVENT_CREATE, .ts_ms = now};
  struct ledger_result r;
  snprintf(c.rid, sizeof c.rid, "bench-event-%s", kind);
  snprintf(c.u.event.id, sizeof c.u.event.id, "bench-%s", kind);
  strcpy(c.u.event.name, "benchmark");
  c.u.event.ends_ms = now + 86400000LL;
  ledger_apply_cmd(l, &c, &r);
  char event[LEDGER_ID_MAX + 1];
  strcpy(event, c.u.event.id);

  FILE *out = fopen(argv[4], "w");
  struct method_env env = {.now_ms = now, .cfg = &cfg, .seal_key = seal, .random = rnd};
  uint32_t kid;
  uint8_t sk[64];
  ledger_rd_begin(l, &env.rd);
  int rc = keys_signing(&env, &kid, sk);
  ledger_rd_end(env.rd);
  if (rc != 0 || out == NULL) {
    fprintf(stderr, "mkcreds: no signing key or output: %s\n", gm_err_msg(rc));
    return 1;
  }
  const int chunk = LEDGER_BATCH_TICKETS_MAX;
  struct ledger_ticket_spec *v = calloc(chunk, sizeof *v);
  struct mpk_w *w = calloc(chunk, sizeof *w);
  for (int i = 0; i < chunk; i++)
    mpk_w_init(&w[i]);
  uint64_t step = (uint64_t)(now / 1000) / period;
  for (int base = 0; base < n; base += chunk) {
    int m = n - base < chunk ? n - base : chunk;
    for (int i = 0; i < m; i++) {
      snprintf(v[i].id, sizeof v[i].id, "%s-%d", kind, base + i);
      strcpy(v[i].event_id, event);
      strcpy(v[i].holder, "bench");
    }
    memset(&c, 0, sizeof c);
    c.op = LEDGER_OP_TICKET_CREATE;
    c.ts_ms = now;
    c.u.tickets.v = v;
    c.u.tickets.n = (uint32_t)m;
    if (ledger_apply_cmd(l, &c, &r) != 0 || r.rc != 0) {
      fprintf(stderr, "mkcreds: ticket batch failed: %s\n", gm_err_msg(r.rc));
      return 1;
    }
    for (int i = 0; i < m; i++) {
      if (!strcmp(kind, "qr")) {
        char text[QR_TEXT_MAX];
        qr_issue(text, sizeof text, kid, sk, (uint32_t)(now / 1000), (uint32_t)(now / 1000 + 3600),
                 1, v[i].id, NULL);
        fprintf(out, "{\"method\":\"qr\",\"presented_data\":{\"payload\":\"%s\"}}\n", text);
      } else {
        struct ledger_cmd p = {.op = LEDGER_OP_CRED_ISSUE, .ts_ms = now};
        uint8_t id[16];
        randombytes_buf(id, sizeof id);
        for (int j = 0; j < 16; j++)
          sprintf(p.u.cred.id + 2 * j, "%02x", id[j]);
        strcpy(p.u.cred.method, "pass");
        strcpy(p.u.cred.ticket_id, v[i].id);
        p.u.cred.ticket_version = 1;
        p.u.cred.expires_ms = now + 86400000LL;
        randombytes_buf(p.u.cred.secret, PASS_SECRET_LEN);
        p.u.cred.secret_len = PASS_SECRET_LEN;
        char code[PASS_CODE_MAX + 1];
        pass_code_make(code, p.u.cred.secret, p.u.cred.id, step);
        fprintf(out, "{\"method\":\"pass\",\"presented_data\":{\"code\":\"%s\"}}\n", code);
        mpk_w_reset(&w[i]);
        ledger_cmd_encode(&p, &w[i]);
      }
    }
    if (strcmp(kind, "qr") && apply_all(l, w, (size_t)m) != 0) {
      fprintf(stderr, "mkcreds: pass issue failed\n");
      return 1;
    }
  }
  fclose(out);
  ledger_close(l);
  return 0;
}
