/*
 * bench_bio.c — biometric 1:N search on one core, against the memory
 * bandwidth of the same machine measured in the same run.
 *
 *   1. N templates (default 100,000) of DIM floats (default 512) are sealed
 *      and enrolled through the ledger as BIO_ENROLL commands, as a gate's
 *      replica holds them;
 *   2. a gate's index syncs from the ledger: every template unwrapped,
 *      decrypted and put in locked memory (templates per second);
 *   3. the streaming limit: the best of several read passes over a buffer
 *      as large as the index, summed eight floats at a time;
 *   4. 1:N queries: probes near an enrolled template (cosine about 0.9) and
 *      impostor probes; the time per search, as a ratio of one streaming
 *      pass (1.0 would be the bandwidth bound), and whether every genuine
 *      probe found its ticket above the threshold with the margin and every
 *      impostor stayed below;
 *   5. the same 1:N through the verification service (JSON template parse,
 *      normalisation, search, ticket checks).
 *
 * BENCH_BIO_N and BENCH_BIO_DIM change the sizes. Exits non-zero when a
 * match is wrong (a figure about wrong answers means nothing).
 */
#include <jansson.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ledger/ledger.h"
#include "lib/err.h"
#include "methods/bio.h"
#include "methods/service.h"

#define QUERIES 200
#define BATCH 500

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void rnd(void *arg, void *out, size_t n) { randombytes_buf(out, n); }

/* Deterministic normal deviates (xorshift + Box-Muller), so every run
 * enrols the same population. */
static uint64_t xs = 88172645463325252ULL;
static double uniform(void) {
  xs ^= xs << 13;
  xs ^= xs >> 7;
  xs ^= xs << 17;
  return ((xs >> 11) + 0.5) / 9007199254740992.0;
}
static float gauss(void) {
  return (float)(sqrt(-2 * log(uniform())) * cos(2 * M_PI * uniform()));
}
static void normalise(float *v, uint32_t dim) {
  double s = 0;
  for (uint32_t k = 0; k < dim; k++)
    s += (double)v[k] * v[k];
  float inv = (float)(1 / sqrt(s));
  for (uint32_t k = 0; k < dim; k++)
    v[k] *= inv;
}

static void apply_all(struct ledger *l, struct ledger_cmd *cmds, size_t n) {
  struct gm_slice *s = calloc(n, sizeof *s);
  struct ledger_result *r = calloc(n, sizeof *r);
  struct mpk_w *w = calloc(n, sizeof *w);
  for (size_t i = 0; i < n; i++) {
    mpk_w_init(&w[i]);
    ledger_cmd_encode(&cmds[i], &w[i]);
    s[i].ptr = (const uint8_t *)w[i].sb.data;
    s[i].len = w[i].sb.size;
  }
  if (ledger_apply_batch(l, s, n, r) != 0) {
    fprintf(stderr, "bench_bio: batch failed: %s\n", gm_err_msg(r[0].rc));
    exit(1);
  }
  for (size_t i = 0; i < n; i++) {
    if (r[i].rc != 0 || r[i].reason != LEDGER_REASON_NONE) {
      fprintf(stderr, "bench_bio: command %zu refused: %s\n", i, gm_err_msg(r[i].rc));
      exit(1);
    }
    mpk_w_free(&w[i]);
  }
  free(s);
  free(r);
  free(w);
}

/* The streaming limit: seconds for one read pass over `bytes`, best of 5. */
typedef float v8f __attribute__((vector_size(32)));
__attribute__((target_clones("arch=haswell", "default"), noinline)) static float
stream_sum(const float *p, size_t n) {
  v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
  for (size_t i = 0; i + 32 <= n; i += 32) {
    v8f x0, x1, x2, x3;
    memcpy(&x0, p + i, sizeof x0);
    memcpy(&x1, p + i + 8, sizeof x1);
    memcpy(&x2, p + i + 16, sizeof x2);
    memcpy(&x3, p + i + 24, sizeof x3);
    a0 += x0;
    a1 += x1;
    a2 += x2;
    a3 += x3;
  }
  v8f s = a0 + a1 + a2 + a3;
  return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static long vm_locked_kb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "VmLck: %ld kB", &kb) == 1)
      break;
  if (f)
    fclose(f);
  return kb;
}

int main(void) {
  if (sodium_init() < 0)
    return 1;
  const char *e;
  uint32_t n = (e = getenv("BENCH_BIO_N")) ? (uint32_t)atol(e) : 100000;
  uint32_t dim = (e = getenv("BENCH_BIO_DIM")) ? (uint32_t)atol(e) : 512;
  if (n < 2 || dim < 16 || dim > LEDGER_BIO_DIM_MAX)
    return 2;
  char dir[] = "/tmp/gmbench-bio.XXXXXX";
  if (mkdtemp(dir) == NULL)
    return 1;
  struct ledger *l;
  struct ledger_options o = {.map_size = (size_t)(n + 1000) * 12288, .no_sync = true};
  if (ledger_open(&l, dir, &o) != 0)
    return 1;
  struct method_config cfg;
  method_config_default(&cfg);
  cfg.bio_dim = dim;
  uint8_t bio_key[32];
  randombytes_buf(bio_key, sizeof bio_key);
  int64_t t_now = (int64_t)time(NULL) * 1000;

  /* 1. Event, tickets, enrolments. */
  double t0 = now_s();
  struct ledger_cmd c = {.op = LEDGER_OP_EVENT_CREATE, .ts_ms = t_now};
  strcpy(c.u.event.id, "bench");
  c.u.event.ends_ms = t_now + 86400000LL;
  apply_all(l, &c, 1);
  struct ledger_ticket_spec *spec = calloc(LEDGER_BATCH_TICKETS_MAX, sizeof *spec);
  for (uint32_t b = 0; b < n; b += LEDGER_BATCH_TICKETS_MAX) {
    uint32_t k = n - b < LEDGER_BATCH_TICKETS_MAX ? n - b : LEDGER_BATCH_TICKETS_MAX;
    for (uint32_t i = 0; i < k; i++) {
      snprintf(spec[i].id, sizeof spec[i].id, "t%u", b + i);
      strcpy(spec[i].event_id, "bench");
    }
    memset(&c, 0, sizeof c);
    c.op = LEDGER_OP_TICKET_CREATE;
    c.ts_ms = t_now;
    c.u.tickets.v = spec;
    c.u.tickets.n = k;
    apply_all(l, &c, 1);
  }
  free(spec);
  float *v = malloc(dim * sizeof *v);
  struct ledger_cmd *cmds = calloc(BATCH, sizeof *cmds);
  for (uint32_t b = 0; b < n; b += BATCH) {
    uint32_t k = n - b < BATCH ? n - b : BATCH;
    for (uint32_t i = 0; i < k; i++) {
      for (uint32_t d = 0; d < dim; d++)
        v[d] = gauss();
      normalise(v, dim);
      struct ledger_cmd *ci = &cmds[i];
      memset(ci, 0, sizeof *ci);
      ci->op = LEDGER_OP_BIO_ENROLL;
      ci->ts_ms = t_now;
      snprintf(ci->u.bio.ticket_id, sizeof ci->u.bio.ticket_id, "t%u", b + i);
      ci->u.bio.ticket_version = 1;
      ci->u.bio.dim = dim;
      ci->u.bio.ct = malloc(24 + 4 * (size_t)dim + 16);
      if (bio_seal(bio_key, ci->u.bio.ticket_id, v, dim, rnd, NULL, ci->u.bio.wrapped,
                   ci->u.bio.ct, &ci->u.bio.ct_len) != 0)
        return 1;
    }
    apply_all(l, cmds, k);
    for (uint32_t i = 0; i < k; i++)
      ledger_cmd_free(&cmds[i]);
  }
  free(cmds);
  double t_enrol = now_s() - t0;
  printf("bio_enrol %u templates of %u floats in %.1f s (%.0f /s through the ledger)\n", n, dim,
         t_enrol, n / t_enrol);

  /* 2. The gate's index. */
  struct bio_index *ix;
  struct ledger_rd *rd;
  if (bio_index_open(&ix, dim) != 0 || ledger_rd_begin(l, &rd) != 0)
    return 1;
  t0 = now_s();
  if (bio_index_sync(ix, rd, bio_key, NULL, NULL) != 0 || bio_index_count(ix) != n) {
    fprintf(stderr, "bench_bio: index sync failed (%zu of %u)\n", bio_index_count(ix), n);
    return 1;
  }
  double t_sync = now_s() - t0;
  ledger_rd_end(rd);
  size_t bytes = bio_index_bytes(ix);
  long lck = vm_locked_kb();
  printf("bio_index_sync %.0f templates/s (%.2f s); index %.1f MiB, %s (VmLck %ld kB)\n",
         n / t_sync, t_sync, bytes / 1048576.0,
         bio_index_locked(ix) ? "locked" : "NOT LOCKED: raise RLIMIT_MEMLOCK", lck);

  /* 3. Streaming limit over as many bytes as the rows hold. */
  size_t used = (size_t)n * ((dim + 15) / 16 * 16) * sizeof(float);
  float *buf = aligned_alloc(64, (used + 63) / 64 * 64);
  for (size_t i = 0; i < used / sizeof(float); i++)
    buf[i] = (float)(i & 255);
  double stream = 1e9;
  volatile float sink = 0;
  for (int r = 0; r < 5; r++) {
    t0 = now_s();
    sink += stream_sum(buf, used / sizeof(float));
    double t = now_s() - t0;
    if (t < stream)
      stream = t;
  }
  free(buf);
  printf("memory_stream %.1f GB/s (one pass over %.1f MB: %.2f ms)\n", used / stream / 1e9,
         used / 1e6, stream * 1e3);

  /* 4. Queries: genuine probes (an enrolled template, read back from the
   * index, plus noise) and impostors (fresh vectors). */
  float *probe = malloc(dim * sizeof *probe);
  double lat[QUERIES];
  int wrong = 0, genuine_ok = 0, impostor_ok = 0;
  double min_best = 2, max_impostor = -2;
  for (int q = 0; q < QUERIES; q++) {
    bool genuine = q % 4 != 3;
    char want[LEDGER_ID_MAX + 1] = "";
    if (genuine) {
      snprintf(want, sizeof want, "t%u", (uint32_t)(uniform() * n) % n);
      const float *row = bio_index_get(ix, want);
      for (uint32_t d = 0; d < dim; d++)
        probe[d] = row[d] + 0.5f * gauss() / sqrtf((float)dim);
    } else {
      for (uint32_t d = 0; d < dim; d++)
        probe[d] = gauss();
    }
    normalise(probe, dim);
    struct bio_match m;
    t0 = now_s();
    bio_index_search(ix, probe, &m);
    lat[q] = now_s() - t0;
    bool accept = m.found && m.best >= cfg.bio_threshold && m.best - m.second >= cfg.bio_margin;
    if (genuine) {
      genuine_ok += accept && strcmp(m.ticket_id, want) == 0;
      wrong += !accept || strcmp(m.ticket_id, want) != 0;
      min_best = m.best < min_best ? m.best : min_best;
    } else {
      impostor_ok += !accept;
      wrong += accept;
      max_impostor = m.best > max_impostor ? m.best : max_impostor;
    }
  }
  qsort(lat, QUERIES, sizeof lat[0], cmp_double);
  double p50 = lat[QUERIES / 2], p99 = lat[QUERIES * 99 / 100];
  printf("bio_1n_search p50 %.2f ms p99 %.2f ms over %u x %u; %.2f x one streaming pass "
         "(target <= 20 ms: %s)\n",
         p50 * 1e3, p99 * 1e3, n, dim, p50 / stream, p99 <= 0.020 ? "meets target" : "ABOVE TARGET");
  printf("bio_1n_accuracy genuine %d/%d matched (lowest score %.3f), impostors %d/%d refused "
         "(highest score %.3f), threshold %.2f margin %.2f\n",
         genuine_ok, QUERIES - QUERIES / 4, min_best, impostor_ok, QUERIES / 4, max_impostor,
         cfg.bio_threshold, cfg.bio_margin);

  /* 5. Through the service, as POST /verify with a template only. */
  json_t *arr = json_array();
  const float *row = bio_index_get(ix, "t7");
  for (uint32_t d = 0; d < dim; d++)
    json_array_append_new(arr, json_real(row[d] + 0.5 * gauss() / sqrt(dim)));
  json_t *pd = json_pack("{s:o}", "template", arr);
  struct method_env env = {.now_ms = t_now + 1000, .cfg = &cfg, .bio_key = bio_key, .bio = ix,
                           .random = rnd};
  for (int q = 0; q < 20; q++) {
    if (ledger_rd_begin(l, &env.rd) != 0)
      return 1;
    struct verify_outcome out;
    t0 = now_s();
    int rc = verify_service_check(&env, "biometric", pd, NULL, &out);
    lat[q] = now_s() - t0;
    ledger_rd_end(env.rd);
    if (rc != 0 || out.claim.reason != LEDGER_REASON_NONE ||
        strcmp(out.claim.ticket_id, "t7") != 0) {
      fprintf(stderr, "bench_bio: service 1:N verify failed (rc %d reason %d)\n", rc,
              out.claim.reason);
      wrong++;
      break;
    }
  }
  qsort(lat, 20, sizeof lat[0], cmp_double);
  printf("bio_1n_verify p50 %.2f ms (JSON template, search, ticket checks)\n", lat[10] * 1e3);
  json_decref(pd);
  free(probe);
  free(v);
  bio_index_close(ix);
  ledger_close(l);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0)
    return 1;
  (void)sink;
  if (wrong > 0) {
    fprintf(stderr, "bench_bio: %d wrong answers\n", wrong);
    return 1;
  }
  return 0;
}
