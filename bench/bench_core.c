/*
 * bench_core.c — in-process rates on one core, each against its physical
 * limit measured in the same run:
 *   raw Ed25519 verify (crypto_sign_verify_detached) per second,
 *   qr verifications (decode + key lookup + signature + ticket state) per
 *     second, as a ratio of the raw rate,
 *   pass verifications (parse + credential lookup + HMAC + state) per second,
 *   redeem commands committed per second the way gated commits them: each
 *     group journaled with one fdatasync, then applied to the unsynced ledger
 *     (groups of 64, what 64 connections give, and of 1000).
 * Prints one line per figure: name value unit [ratio].
 */
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ledger/ledger.h"
#include "lib/err.h"
#include "methods/keys.h"
#include "methods/pass.h"
#include "methods/qr.h"
#include "methods/service.h"
#include "node/journal.h"

#define TICKETS 100000
static const double SECONDS = 2.0;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void rnd(void *arg, void *out, size_t n) { randombytes_buf(out, n); }

static struct ledger *l;
static struct method_config cfg;
static uint8_t seal[32];
static int64_t T0;

static void apply(struct ledger_cmd *c) {
  struct ledger_result r;
  if (ledger_apply_cmd(l, c, &r) != 0 || r.rc != 0) {
    fprintf(stderr, "bench: setup command failed: %s\n", gm_err_msg(r.rc));
    exit(1);
  }
}

static void setup(const char *dir) {
  struct ledger_options o = {.map_size = (size_t)4 << 30, .no_sync = true};
  if (ledger_open(&l, dir, &o) != 0)
    exit(1);
  method_config_default(&cfg);
  randombytes_buf(seal, sizeof seal);
  T0 = (int64_t)time(NULL) * 1000;
  struct ledger_cmd c = {.op = LEDGER_OP_EVENT_CREATE, .ts_ms = T0};
  strcpy(c.u.event.id, "bench");
  strcpy(c.u.event.name, "bench");
  c.u.event.ends_ms = T0 + 86400000LL;
  apply(&c);
  struct ledger_ticket_spec *v = calloc(LEDGER_BATCH_TICKETS_MAX, sizeof *v);
  for (int b = 0; b < TICKETS / LEDGER_BATCH_TICKETS_MAX; b++) {
    for (int i = 0; i < LEDGER_BATCH_TICKETS_MAX; i++) {
      snprintf(v[i].id, sizeof v[i].id, "t%d", b * LEDGER_BATCH_TICKETS_MAX + i);
      strcpy(v[i].event_id, "bench");
      strcpy(v[i].holder, "h");
    }
    memset(&c, 0, sizeof c);
    c.op = LEDGER_OP_TICKET_CREATE;
    c.ts_ms = T0;
    c.u.tickets.v = v;
    c.u.tickets.n = LEDGER_BATCH_TICKETS_MAX;
    apply(&c);
  }
  free(v);
  struct method_env env = {.now_ms = T0, .cfg = &cfg, .seal_key = seal, .random = rnd};
  ledger_rd_begin(l, &env.rd);
  keys_new_cmd(&env, &c);
  ledger_rd_end(env.rd);
  apply(&c);
}

int main(int argc, char **argv) {
  if (sodium_init() < 0)
    return 1;
  char dir[] = "/tmp/gmbench.XXXXXX";
  if (mkdtemp(dir) == NULL)
    return 1;
  setup(dir);

  /* BENCH_PASS_ONLY=1 profiles the pass path alone. */
  bool pass_only = getenv("BENCH_PASS_ONLY") != NULL;
  /* Raw Ed25519 verify on a QR-sized message. */
  uint8_t pk[32], sk[64], msg[120], sig[64];
  crypto_sign_keypair(pk, sk);
  randombytes_buf(msg, sizeof msg);
  crypto_sign_detached(sig, NULL, msg, sizeof msg, sk);
  long n = 0;
  double t0 = now_s(), t;
  do {
    for (int i = 0; i < 1000; i++)
      n += crypto_sign_verify_detached(sig, msg, sizeof msg, pk) == 0;
  } while ((t = now_s()) - t0 < (pass_only ? 0 : SECONDS));
  double raw = (double)n / (t - t0);
  printf("raw_ed25519_verify %.0f /s\n", raw);

  /* QR payloads for every ticket, signed by the ledger's key. */
  struct method_env env = {.now_ms = T0 + 1000, .cfg = &cfg, .seal_key = seal, .random = rnd};
  ledger_rd_begin(l, &env.rd);
  uint32_t kid;
  keys_signing(&env, &kid, sk);
  char(*qr)[QR_TEXT_MAX] = malloc((size_t)TICKETS * QR_TEXT_MAX);
  for (int i = 0; i < TICKETS; i++) {
    char id[16];
    snprintf(id, sizeof id, "t%d", i);
    qr_issue(qr[i], QR_TEXT_MAX, kid, sk, (uint32_t)(T0 / 1000), (uint32_t)(T0 / 1000 + 600), 1,
             id, NULL);
  }
  json_t *pd = json_object();
  struct verify_outcome out;
  n = 0;
  long bad = 0;
  t0 = now_s();
  do {
    for (int i = 0; i < 1000; i++, n++) {
      json_object_set_new(pd, "payload", json_string(qr[n % TICKETS]));
      verify_service_check(&env, "qr", pd, NULL, &out);
      bad += !out.propose;
    }
  } while ((t = now_s()) - t0 < (pass_only ? 0 : SECONDS));
  double qrs = (double)n / (t - t0);
  printf("qr_verify_inprocess %.0f /s %.2f of raw (target >= 0.70)\n", qrs, qrs / raw);
  if (bad)
    printf("  warning: %ld qr verifications did not pass\n", bad);
  ledger_rd_end(env.rd);

  /* Passes: one per ticket (in one commit), codes for the current step. */
  struct gm_slice *cmds = calloc(TICKETS, sizeof *cmds);
  struct ledger_result *res = calloc(TICKETS, sizeof *res);
  struct mpk_w *w = calloc(TICKETS, sizeof *w);
  char(*codes)[PASS_CODE_MAX + 1] = malloc((size_t)TICKETS * (PASS_CODE_MAX + 1));
  uint64_t step = (uint64_t)(env.now_ms / 1000) / cfg.pass_period_s;
  for (int i = 0; i < TICKETS; i++) {
    struct ledger_cmd c = {.op = LEDGER_OP_CRED_ISSUE, .ts_ms = T0};
    uint8_t r[16];
    randombytes_buf(r, sizeof r);
    char pid[PASS_ID_HEX + 1];
    for (int j = 0; j < 16; j++)
      sprintf(pid + 2 * j, "%02x", r[j]);
    strcpy(c.u.cred.method, "pass");
    strcpy(c.u.cred.id, pid);
    snprintf(c.u.cred.ticket_id, sizeof c.u.cred.ticket_id, "t%d", i);
    c.u.cred.ticket_version = 1;
    c.u.cred.expires_ms = T0 + 86400000LL;
    randombytes_buf(c.u.cred.secret, PASS_SECRET_LEN);
    c.u.cred.secret_len = PASS_SECRET_LEN;
    pass_code_make(codes[i], c.u.cred.secret, pid, step);
    mpk_w_init(&w[i]);
    ledger_cmd_encode(&c, &w[i]);
    cmds[i] = (struct gm_slice){(uint8_t *)w[i].sb.data, w[i].sb.size};
  }
  ledger_apply_batch(l, cmds, TICKETS, res);
  ledger_rd_begin(l, &env.rd);
  n = 0;
  bad = 0;
  t0 = now_s();
  do {
    for (int i = 0; i < 1000; i++, n++) {
      json_object_set_new(pd, "code", json_string(codes[n % TICKETS]));
      json_object_del(pd, "payload");
      verify_service_check(&env, "pass", pd, NULL, &out);
      bad += !out.propose;
    }
  } while ((t = now_s()) - t0 < (pass_only ? 5 * SECONDS : SECONDS));
  double passes = (double)n / (t - t0);
  printf("pass_verify_inprocess %.0f /s %.2f of 300000 target (target >= 1.00)\n", passes,
         passes / 300000.0);
  if (bad)
    printf("  warning: %ld pass verifications did not pass\n", bad);

  /* Redeems committed as gated commits them: journal + fdatasync, then apply. */
  struct journal jr;
  if (journal_open(&jr, dir) != 0 || journal_replay(&jr, 0, NULL, NULL) != 0)
    return 1;
  int done = 0;
  const int groups[2] = {64, 1000};
  for (int gi = 0; gi < 2; gi++) {
    int batch = groups[gi], n_done = 0;
    t0 = now_s();
    for (int b = 0; done + batch <= (gi + 1) * TICKETS / 2 && now_s() - t0 < SECONDS; b++) {
      for (int i = 0; i < batch; i++) {
        int k = done + i;
        json_object_set_new(pd, "code", json_string(codes[k]));
        verify_service_check(&env, "pass", pd, NULL, &out);
        snprintf(out.redeem.rid, sizeof out.redeem.rid, "r%d", k);
        strcpy(out.redeem.gate, "g");
        mpk_w_reset(&w[k]);
        ledger_cmd_encode(&out.redeem, &w[k]);
        cmds[i] = (struct gm_slice){(uint8_t *)w[k].sb.data, w[k].sb.size};
      }
      ledger_rd_end(env.rd);
      uint64_t seq;
      if (journal_append(&jr, cmds, (size_t)batch, &seq) != 0 ||
          ledger_apply_batch_at(l, seq, cmds, (size_t)batch, res) != 0)
        return 1;
      for (int i = 0; i < batch; i++)
        bad += res[i].reason != LEDGER_REASON_NONE;
      ledger_rd_begin(l, &env.rd);
      done += batch;
      n_done += batch;
    }
    t = now_s();
    printf("redeem_commit_journaled %.0f /s (groups of %d, one fdatasync each)\n", n_done / (t - t0),
           batch);
  }
  if (bad)
    printf("  warning: %ld redeems were not admitted\n", bad);
  journal_close(&jr);
  ledger_rd_end(env.rd);
  for (int i = 0; i < TICKETS; i++)
    mpk_w_free(&w[i]);
  json_decref(pd);
  ledger_close(l);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0)
    return 1;
  (void)argc;
  (void)argv;
  return 0;
}
