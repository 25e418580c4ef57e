/*
 * node.c — the gate node's lifecycle: data dir and cluster key, ledger,
 * first-start bootstrap, HTTP, and a graceful stop that answers every
 * request whose command is queued before the loop ends.
 */
#include "node.h"

#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../lib/assert.h"
#include "../lib/err.h"
#include "../lib/log.h"
#include "../methods/bio.h"
#include "../methods/keys.h"
#include "../methods/nfc.h"
#include "../lib/mpk.h"
#include "auth.h"
#include "checkpoint.h"
#include "cluster.h"
#include "gossip.h"
#include "provisional.h"

int http_start(struct node *n);
void http_stop(struct node *n);

int64_t node_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void node_random(void *arg, void *out, size_t n) { randombytes_buf(out, n); }

int node_env_begin(struct node *n, struct method_env *env) {
  memset(env, 0, sizeof *env);
  env->now_ms = node_now_ms();
  env->cfg = &n->cfg.methods;
  env->seal_key = n->seal_key;
  env->nfc_key = n->nfc_key;
  env->bio_key = n->bio_key;
  env->bio = n->bio;
  env->gate = n->cfg.gate;
  env->random = node_random;
  env->owner = n;
  /* The loop thread keeps one read transaction parked between requests. */
  if (n->rd_parked != NULL) {
    env->rd = n->rd_parked;
    n->rd_parked = NULL;
    int rc = ledger_rd_renew(env->rd);
    if (rc == 0)
      return 0;
    ledger_rd_end(env->rd);
  }
  return ledger_rd_begin(n->ledger, &env->rd);
}

void node_env_end(struct method_env *env) {
  struct node *n = env->owner;
  if (n != NULL && n->rd_parked == NULL) {
    ledger_rd_park(env->rd);
    n->rd_parked = env->rd;
  } else {
    ledger_rd_end(env->rd);
  }
  env->rd = NULL;
}

void node_cmd_init(struct node *n, struct ledger_cmd *c, int op, const char *rid,
                   const char *actor) {
  c->op = op;
  GM_ASSERT(strlen(rid) <= LEDGER_RID_MAX);
  strcpy(c->rid, rid);
  c->ts_ms = node_now_ms();
  strcpy(c->gate, n->cfg.gate);
  actor = actor ? actor : "";
  gm_strlcpy(c->actor, sizeof c->actor, actor, strlen(actor)); /* ids fit: both LEDGER_ID_MAX */
}

static int read_hex_key(const char *s, size_t len, uint8_t out[32]) {
  size_t bin_len;
  while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == ' '))
    len--;
  if (sodium_hex2bin(out, 32, s, len, NULL, &bin_len, NULL) != 0 || bin_len != 32)
    return GM_ECONFIG;
  return 0;
}

/* The cluster key authenticates gates to each other and seals the signing
 * keys. From --cluster-key-file (64 hex chars) when given, else the data
 * dir's cluster.key, created on first start. */
static int cluster_key_load(struct node *n) {
  char path[NODE_PATH_MAX + 32];
  bool given = n->cfg.cluster_key_file[0] != 0;
  if (given)
    snprintf(path, sizeof path, "%s", n->cfg.cluster_key_file);
  else
    snprintf(path, sizeof path, "%s/cluster.key", n->cfg.data_dir);
  char buf[130];
  FILE *f = fopen(path, "r");
  if (f != NULL) {
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    if (read_hex_key(buf, len, n->cluster_key) != 0) {
      GM_ERROR("cluster key file must hold 64 hex characters", "path=%s", path);
      return GM_ECONFIG;
    }
  } else if (given) {
    GM_ERROR("cannot read cluster key file", "path=%s err=\"%s\"", path, strerror(errno));
    return GM_ECONFIG;
  } else {
    randombytes_buf(n->cluster_key, sizeof n->cluster_key);
    sodium_bin2hex(buf, sizeof buf, n->cluster_key, sizeof n->cluster_key);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || write(fd, buf, 64) != 64 || write(fd, "\n", 1) != 1 || fsync(fd) != 0) {
      GM_ERROR("cannot write cluster key", "path=%s err=\"%s\"", path, strerror(errno));
      if (fd >= 0)
        close(fd);
      return GM_EIO;
    }
    close(fd);
    GM_INFO("created cluster key", "path=%s", path);
  }
  node_keys_derive(n);
  return 0;
}

static void on_bootstrap_committed(void *arg, const struct ledger_result *res) {
  (void)arg;
  if (res->rc != 0 && !res->duplicate)
    GM_ERROR("bootstrap command failed", "err=%s", gm_err_code(res->rc));
}

/* Before the loop runs: journal and apply one command, as a batch would. In a
 * cluster (on the leader, once it leads): propose it through Raft. */
static int apply_now(struct node *n, struct ledger_cmd *c, const char *rid) {
  node_cmd_init(n, c, c->op, rid, "bootstrap");
  if (n->cluster_mode)
    return commit_submit(&n->commit, c, on_bootstrap_committed, n);
  struct mpk_w w;
  mpk_w_init(&w);
  ledger_cmd_encode(c, &w);
  struct gm_slice s = {(const uint8_t *)w.sb.data, w.sb.size};
  struct ledger_result r;
  uint64_t seq;
  int rc = journal_append(&n->journal, &s, 1, &seq);
  if (rc == 0)
    rc = ledger_apply_batch_at(n->ledger, seq, &s, 1, &r);
  mpk_w_free(&w);
  return rc != 0 ? rc : r.rc;
}

int node_bootstrap(struct node *n) {
  struct ledger_rd *rd;
  int rc = ledger_rd_begin(n->ledger, &rd);
  if (rc != 0)
    return rc;
  uint64_t users = 0;
  struct ledger_key key;
  int krc = ledger_key_current(rd, &key);
  ledger_user_count(rd, &users);
  ledger_rd_end(rd);

  int64_t now = node_now_ms();
  /* A fresh key when there is none, or when the newest has under a third of
   * its validity left: credentials signed now must outlive tonight's event. */
  if (krc == GM_ENOTFOUND ||
      (krc == 0 && key.not_after_ms - now < n->cfg.methods.key_validity_ms / 3)) {
    struct method_env env;
    struct ledger_cmd c = {0};
    if ((rc = node_env_begin(n, &env)) != 0)
      return rc;
    rc = keys_new_cmd(&env, &c);
    node_env_end(&env);
    char rid[64];
    snprintf(rid, sizeof rid, "bootstrap-key-%u", c.u.key.kid);
    if (rc == 0)
      rc = apply_now(n, &c, rid);
    if (rc != 0) {
      GM_ERROR("cannot create a signing key", "err=%s", gm_err_code(rc));
      return rc;
    }
    GM_INFO("signing key created", "kid=k%u", c.u.key.kid);
  } else if (krc != 0) {
    return krc;
  }
  if (users > 0)
    return 0;
  const char *pw = n->cfg.admin_password[0] ? n->cfg.admin_password : getenv("GATE_ADMIN_PASSWORD");
  if (pw == NULL || strlen(pw) < 8) {
    GM_ERROR("no admin account yet: set GATE_ADMIN_PASSWORD (8+ characters) or admin-password",
             "data_dir=%s", n->cfg.data_dir);
    return GM_ECONFIG;
  }
  struct ledger_cmd c = {0};
  c.op = LEDGER_OP_USER_ADD;
  strcpy(c.u.user.id, "u-admin");
  snprintf(c.u.user.username, sizeof c.u.user.username, "%s", n->cfg.admin_user);
  c.u.user.role = LEDGER_ROLE_ADMIN;
  if ((rc = auth_password_hash_sync(pw, c.u.user.pwhash)) != 0)
    return rc;
  if ((rc = apply_now(n, &c, "bootstrap-admin")) != 0)
    return rc;
  GM_INFO("admin account created", "user=%s", n->cfg.admin_user);
  return 0;
}

const double node_lat_bounds_ms[NODE_LAT_BUCKETS] = {0.5, 1,  2,   5,   10,   20,   30,
                                                     40,  50, 75, 100, 250, 1000, 5000};

void node_observe(uint64_t hist[NODE_LAT_BUCKETS + 1], double *sum_s, uint64_t ns) {
  double ms = (double)ns / 1e6;
  size_t i = 0;
  while (i < NODE_LAT_BUCKETS && ms > node_lat_bounds_ms[i])
    i++;
  hist[i]++;
  *sum_s += ms / 1e3;
}

/* Runs once per loop iteration, just before the loop waits for I/O: the
 * time since the previous one, less the time spent waiting, is how long
 * the loop was busy (a request that arrives meanwhile waits that long). */
static void on_loop_prepare(uv_prepare_t *h) {
  struct node *n = h->data;
  uint64_t now = uv_hrtime(), idle = uv_metrics_idle_time(n->loop);
  if (n->loop_prev_ns != 0) {
    uint64_t span = now - n->loop_prev_ns, waited = idle - n->loop_prev_idle_ns;
    node_observe(n->metrics.loop_busy, &n->metrics.loop_busy_sum_s,
                 span > waited ? span - waited : 0);
  }
  n->loop_prev_ns = now;
  n->loop_prev_idle_ns = idle;
}

static void on_signal(uv_signal_t *h, int signum) {
  struct node *n = h->data;
  GM_INFO("stopping", "signal=%d", signum);
  node_stop(n);
}

int node_start(struct node *n) {
  n->started_ms = node_now_ms();
  /* A peer that hangs up must give a write error, not kill the gate: libuv
   * writes to sockets and socketpairs with plain write(2). */
  signal(SIGPIPE, SIG_IGN);
  if (mkdir(n->cfg.data_dir, 0700) != 0 && errno != EEXIST) {
    GM_ERROR("cannot create data dir", "path=%s err=\"%s\"", n->cfg.data_dir, strerror(errno));
    return GM_EIO;
  }
  int rc = cluster_key_load(n);
  if (rc != 0)
    return rc;
  n->cluster_mode = cluster_mode(&n->cfg);
  if ((rc = checkpoint_recover(n)) != 0)
    return rc;
  n->started = true;
  /* In a cluster the leader bootstraps the ledger once it leads. */
  if (!n->cluster_mode && (rc = node_bootstrap(n)) != 0)
    return rc;
  if ((rc = auth_init(n)) != 0)
    return rc;
  n->rate = calloc(RATE_SLOTS, sizeof *n->rate);
  if (n->rate == NULL)
    return GM_ENOMEM;
  if ((rc = commit_init(&n->commit, n->loop, n->ledger, n->cluster_mode ? NULL : &n->journal)) !=
      0)
    return rc;
  if (n->cluster_mode) {
    if ((rc = provisional_open(n)) != 0)
      return rc;
    if ((rc = cluster_start(n)) != 0)
      return rc;
    if ((rc = gossip_start(n)) != 0)
      return rc;
    if ((rc = provisional_start(n)) != 0)
      return rc;
  } else {
    checkpoint_start(n);
  }
  if ((rc = jobs_start(n)) != 0)
    return rc;
  if ((rc = http_start(n)) != 0)
    return rc;
  uv_signal_init(n->loop, &n->sig_int);
  uv_signal_init(n->loop, &n->sig_term);
  n->sig_int.data = n->sig_term.data = n;
  uv_signal_start(&n->sig_int, on_signal, SIGINT);
  uv_signal_start(&n->sig_term, on_signal, SIGTERM);
  uv_timer_init(n->loop, &n->stop_timer);
  n->stop_timer.data = n;
  uv_prepare_init(n->loop, &n->loop_prep);
  n->loop_prep.data = n;
  uv_prepare_start(&n->loop_prep, on_loop_prepare);
  uv_unref((uv_handle_t *)&n->loop_prep);
  GM_INFO("gate ready", "node_id=%u gate=%s http=%s", n->cfg.node_id, n->cfg.gate,
          n->cfg.http_listen);
  return 0;
}

static void on_stop_timer(uv_timer_t *t) {
  struct node *n = t->data;
  uv_stop(n->loop);
}

void node_maybe_stopped(struct node *n) {
  if (!n->stopping || !n->drained || n->snap_running || provisional_busy(n) || cluster_busy(n))
    return;
  /* Give the replies just written a moment to leave the socket buffers. */
  uv_timer_start(&n->stop_timer, on_stop_timer, 200, 0);
}

static void on_cluster_closed(void *arg) {
  struct node *n = arg;
  n->cluster_closed = true;
  n->drained = true;
  node_maybe_stopped(n);
}

static void on_drained(void *arg) {
  struct node *n = arg;
  GM_INFO("commit queue drained", "applied=%llu", (unsigned long long)n->commit.stats.applied);
  if (n->cluster != NULL) {
    cluster_stop(n, on_cluster_closed, n);
    return;
  }
  n->drained = true;
  node_maybe_stopped(n);
}

void node_stop(struct node *n) {
  if (n->stopping)
    return;
  n->stopping = true;
  uv_signal_stop(&n->sig_int);
  uv_signal_stop(&n->sig_term);
  http_stop(n);
  jobs_stop(n);
  gossip_stop(n, NULL, NULL);
  provisional_stop(n);
  checkpoint_stop(n);
  commit_drain(&n->commit, on_drained, n);
}

void node_cleanup(struct node *n) {
  if (n->rd_parked) {
    ledger_rd_end(n->rd_parked);
    n->rd_parked = NULL;
  }
  if (n->commit.pending)
    commit_close(&n->commit);
  /* A clean stop: the ledger is on disk, the next start needs no rebuild. */
  if (n->started && n->ledger && n->drained && ledger_sync(n->ledger) == 0)
    checkpoint_mark(n, true);
  journal_close(&n->journal);
  gossip_free(n);
  jobs_free(n);
  provisional_free(n);
  cluster_free(n);
  auth_cleanup(n);
  free(n->rate);
  n->rate = NULL;
  ledger_close(n->ledger);
  n->ledger = NULL;
  sodium_memzero(n->cluster_key, sizeof n->cluster_key);
  sodium_memzero(n->seal_key, sizeof n->seal_key);
  sodium_memzero(n->nfc_key, sizeof n->nfc_key);
  sodium_memzero(n->bio_key, sizeof n->bio_key);
}

void node_keys_derive(struct node *n) {
  keys_seal_key_derive(n->cluster_key, n->seal_key);
  nfc_key_derive(n->cluster_key, n->nfc_key);
  bio_key_derive(n->cluster_key, n->bio_key);
}
