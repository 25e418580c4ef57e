/*
 * config.c — defaults, file parser and flag parser of the node configuration.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/buf.h"
#include "../lib/err.h"

void node_config_default(struct node_config *c) {
  memset(c, 0, sizeof *c);
  c->node_id = 1;
  strcpy(c->data_dir, "./data");
  strcpy(c->http_listen, "127.0.0.1:8080");
  strcpy(c->cluster_listen, "127.0.0.1:7080");
  c->gossip_listen[0] = 0; /* the cluster address, on UDP */
  strcpy(c->admin_user, "admin");
  strcpy(c->log_level, "info");
  c->body_limit = 1u << 20;
  c->token_ttl_ms = 12LL * 3600 * 1000;
  c->map_size = (size_t)4 << 30;
  c->verify_rate_per_s = 0;
  c->checkpoint_interval_ms = 300 * 1000;
  c->checkpoint_journal_bytes = (uint64_t)64 << 20;
  c->voters = 3;
  c->voter_timeout_ms = 10 * 1000;
  c->request_timeout_ms = 5 * 1000;
  c->election_timeout_ms = 1000;
  c->heartbeat_ms = 100;
  c->snapshot_threshold = 65536;
  c->offline_wait_ms = 300;
  c->offline_budget = 500;
  c->provisional_max = 200000;
  c->jobs_interval_ms = 10 * 1000;
  c->bio_retention_ms = 7LL * 86400 * 1000;
  c->jobs_batch = 5000;
  c->expire_grace_ms = 3600 * 1000;
  method_config_default(&c->methods);
}

static int bad(char *err, size_t errlen, const char *key, const char *why) {
  snprintf(err, errlen, "%s: %s", key, why);
  return GM_EINVAL;
}

static int parse_u64(const char *v, uint64_t min, uint64_t max, uint64_t *out) {
  char *end;
  errno = 0;
  if (v[0] == '-' || v[0] == 0)
    return -1;
  unsigned long long x = strtoull(v, &end, 10);
  if (errno || *end || x < min || x > max)
    return -1;
  *out = x;
  return 0;
}

static int parse_bool(const char *v, bool *out) {
  if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes") || !strcmp(v, "on"))
    *out = true;
  else if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no") || !strcmp(v, "off"))
    *out = false;
  else
    return -1;
  return 0;
}

int node_addr_parse(const char *s, char *host, size_t hostlen, int *port) {
  const char *colon = strrchr(s, ':');
  if (colon == NULL || colon == s)
    return GM_EINVAL;
  if (gm_strlcpy(host, hostlen, s, (size_t)(colon - s)) != 0)
    return GM_EINVAL;
  uint64_t p;
  if (parse_u64(colon + 1, 1, 65535, &p) != 0)
    return GM_EINVAL;
  *port = (int)p;
  return 0;
}

#define STR_KEY(name, field)                                                  \
  if (strcmp(key, name) == 0) {                                               \
    if (gm_strlcpy(c->field, sizeof c->field, value, strlen(value)) != 0)     \
      return bad(err, errlen, key, "too long");                               \
    return 0;                                                                 \
  }

#define NUM_KEY(name, min, max, assign)                                       \
  if (strcmp(key, name) == 0) {                                               \
    uint64_t v;                                                               \
    if (parse_u64(value, min, max, &v) != 0)                                  \
      return bad(err, errlen, key, "must be an integer from " #min " to " #max); \
    assign;                                                                   \
    return 0;                                                                 \
  }

int node_config_set(struct node_config *c, const char *key, const char *value, char *err,
                    size_t errlen) {
  STR_KEY("gate", gate);
  STR_KEY("data-dir", data_dir);
  STR_KEY("cluster-key-file", cluster_key_file);
  STR_KEY("join", join);
  STR_KEY("join-token", join_token);
  STR_KEY("admin-user", admin_user);
  STR_KEY("admin-password", admin_password);
  STR_KEY("tls-cert", tls_cert);
  STR_KEY("tls-key", tls_key);
  STR_KEY("log-level", log_level);
  if (!strcmp(key, "http-listen") || !strcmp(key, "cluster-listen") ||
      !strcmp(key, "gossip-listen")) {
    char host[NODE_ADDR_MAX];
    int port;
    if (node_addr_parse(value, host, sizeof host, &port) != 0)
      return bad(err, errlen, key, "must be HOST:PORT");
    char *dst = !strcmp(key, "http-listen")      ? c->http_listen
                : !strcmp(key, "cluster-listen") ? c->cluster_listen
                                                 : c->gossip_listen;
    return gm_strlcpy(dst, NODE_ADDR_MAX, value, strlen(value)) == 0
               ? 0
               : bad(err, errlen, key, "too long");
  }
  if (!strcmp(key, "bootstrap")) {
    if (parse_bool(value, &c->bootstrap) != 0)
      return bad(err, errlen, key, "must be true or false");
    return 0;
  }
  if (!strcmp(key, "fault-skip-provisional-fsync")) {
    if (parse_bool(value, &c->fault_skip_prov_fsync) != 0)
      return bad(err, errlen, key, "must be true or false");
    return 0;
  }
  if (!strcmp(key, "nfc-require-record")) {
    if (parse_bool(value, &c->methods.nfc_require_record) != 0)
      return bad(err, errlen, key, "must be true or false");
    return 0;
  }
  if (!strcmp(key, "bio-threshold") || !strcmp(key, "bio-margin")) {
    char *end;
    double d = strtod(value, &end);
    if (*value == 0 || *end != 0 || !(d >= 0 && d <= 1))
      return bad(err, errlen, key, "must be a number from 0 to 1");
    if (!strcmp(key, "bio-threshold"))
      c->methods.bio_threshold = d;
    else
      c->methods.bio_margin = d;
    return 0;
  }
  if (!strcmp(key, "methods")) {
    c->methods.enabled_qr = c->methods.enabled_pass = false;
    c->methods.enabled_nfc = c->methods.enabled_biometric = false;
    c->methods.enabled_geofence = false;
    char buf[256];
    if (gm_strlcpy(buf, sizeof buf, value, strlen(value)) != 0)
      return bad(err, errlen, key, "too long");
    for (char *save, *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
      if (!strcmp(tok, "qr"))
        c->methods.enabled_qr = true;
      else if (!strcmp(tok, "pass"))
        c->methods.enabled_pass = true;
      else if (!strcmp(tok, "nfc"))
        c->methods.enabled_nfc = true;
      else if (!strcmp(tok, "biometric"))
        c->methods.enabled_biometric = true;
      else if (!strcmp(tok, "geofence"))
        c->methods.enabled_geofence = true;
      else
        return bad(err, errlen, key,
                   "unknown method (known: qr, pass, nfc, biometric, geofence)");
    }
    return 0;
  }
  NUM_KEY("node-id", 1, 0xffffffffULL, c->node_id = (uint32_t)v);
  NUM_KEY("body-limit", 1024, 64ULL << 20, c->body_limit = (size_t)v);
  NUM_KEY("token-ttl-s", 60, 30ULL * 86400, c->token_ttl_ms = (int64_t)v * 1000);
  NUM_KEY("map-size-mb", 16, 1ULL << 20, c->map_size = (size_t)v << 20);
  NUM_KEY("verify-rate-per-s", 0, 1000000, c->verify_rate_per_s = (uint32_t)v);
  NUM_KEY("checkpoint-interval-s", 1, 86400, c->checkpoint_interval_ms = (int64_t)v * 1000);
  NUM_KEY("checkpoint-journal-mb", 1, 65536, c->checkpoint_journal_bytes = v << 20);
  if (!strcmp(key, "voters")) {
    if (strcmp(value, "3") != 0 && strcmp(value, "5") != 0 && strcmp(value, "1") != 0)
      return bad(err, errlen, key, "must be 1, 3 or 5");
    c->voters = (uint32_t)atoi(value);
    return 0;
  }
  NUM_KEY("voter-timeout-s", 1, 3600, c->voter_timeout_ms = (int64_t)v * 1000);
  NUM_KEY("request-timeout-ms", 100, 600000, c->request_timeout_ms = (int64_t)v);
  NUM_KEY("election-timeout-ms", 100, 60000, c->election_timeout_ms = (uint32_t)v);
  NUM_KEY("heartbeat-ms", 10, 10000, c->heartbeat_ms = (uint32_t)v);
  NUM_KEY("snapshot-threshold", 16, 1000000, c->snapshot_threshold = (uint32_t)v);
  NUM_KEY("offline-wait-ms", 10, 60000, c->offline_wait_ms = (int64_t)v);
  NUM_KEY("offline-budget", 0, UINT32_MAX, c->offline_budget = (uint32_t)v);
  NUM_KEY("provisional-max", 16, 10000000, c->provisional_max = (uint32_t)v);
  NUM_KEY("qr-ttl-s", 5, 86400, c->methods.qr_ttl_ms = (int64_t)v * 1000);
  NUM_KEY("holder-window-s", 5, 3600, c->methods.holder_window_ms = (int64_t)v * 1000);
  NUM_KEY("clock-skew-s", 0, 300, c->methods.clock_skew_ms = (int64_t)v * 1000);
  NUM_KEY("pass-period-s", 5, 300, c->methods.pass_period_s = (uint32_t)v);
  NUM_KEY("bio-dim", 8, LEDGER_BIO_DIM_MAX, c->methods.bio_dim = (uint32_t)v);
  NUM_KEY("geo-freshness-s", 1, 3600, c->methods.geo_freshness_ms = (int64_t)v * 1000);
  NUM_KEY("geo-max-accuracy-m", 1, 100000, c->methods.geo_max_accuracy_m = (uint32_t)v);
  NUM_KEY("jobs-interval-ms", 50, 3600000, c->jobs_interval_ms = (int64_t)v);
  NUM_KEY("jobs-batch", 1, 1000000, c->jobs_batch = (uint32_t)v);
  NUM_KEY("expire-grace-s", 0, 365ULL * 86400, c->expire_grace_ms = (int64_t)v * 1000);
  NUM_KEY("bio-retention-s", 0, 10ULL * 365 * 86400,
          c->bio_retention_ms = (int64_t)v * 1000);
  NUM_KEY("key-validity-days", 1, 3650,
          c->methods.key_validity_ms = (int64_t)v * 86400 * 1000);
  return bad(err, errlen, key, "unknown key");
}

static char *trim(char *s) {
  while (*s == ' ' || *s == '\t')
    s++;
  char *e = s + strlen(s);
  while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
    *--e = 0;
  return s;
}

int node_config_load_file(struct node_config *c, const char *path, char *err, size_t errlen) {
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return GM_EIO;
  }
  char line[1024];
  int lineno = 0, rc = 0;
  while (fgets(line, sizeof line, f) != NULL) {
    lineno++;
    char *s = trim(line);
    if (*s == 0 || *s == '#')
      continue;
    char *eq = strchr(s, '=');
    if (eq == NULL) {
      snprintf(err, errlen, "%s:%d: expected key = value", path, lineno);
      rc = GM_EINVAL;
      break;
    }
    *eq = 0;
    char sub[256];
    if ((rc = node_config_set(c, trim(s), trim(eq + 1), sub, sizeof sub)) != 0) {
      snprintf(err, errlen, "%s:%d: %s", path, lineno, sub);
      break;
    }
  }
  fclose(f);
  return rc;
}

int node_config_from_args(struct node_config *c, int argc, char **argv, char *err,
                          size_t errlen) {
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], "--config")) {
      if (i + 1 >= argc)
        return bad(err, errlen, "--config", "needs a file");
      int rc = node_config_load_file(c, argv[i + 1], err, errlen);
      if (rc != 0)
        return rc;
    }
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strncmp(a, "--", 2) != 0) {
      snprintf(err, errlen, "unexpected argument %s", a);
      return GM_EINVAL;
    }
    if (!strcmp(a, "--config")) {
      i++;
      continue;
    }
    if (!strcmp(a, "--bootstrap")) {
      c->bootstrap = true;
      continue;
    }
    if (i + 1 >= argc) {
      snprintf(err, errlen, "%s needs a value", a);
      return GM_EINVAL;
    }
    int rc = node_config_set(c, a + 2, argv[++i], err, errlen);
    if (rc != 0)
      return rc;
  }
  if (c->gate[0] == 0)
    snprintf(c->gate, sizeof c->gate, "gate-%u", c->node_id);
  return 0;
}
