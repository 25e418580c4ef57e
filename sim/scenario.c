/*
 * scenario.c — festival scenarios (configs/scenarios/NAME.scn): one setting per
 * line, `#` comments, durations with ms/s/m/h suffixes.
 *
 *   gates 12          voters 3          attendees 2000
 *   duration 2h       arrivals 0 90m    settle 2m
 *   latency 2ms 3ms   loss 0.01         dup 0.01
 *   policy available  budget 300        wait 300ms   request-timeout 3s
 *   heartbeat 100ms   election 1s
 *   fraud 0.03        transfer 0.02    resale 0.01
 *   pass 0.2          (attendees with a dynamic pass instead of a QR code)
 *   partition 20m 1-3,7 4-6 8-12   (components; gates not named form one more)
 *   heal 35m
 *   crash 50m 5 30s   (gate 5 down for 30 s)
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "sim/world.h"

void sim_cfg_default(struct sim_cfg *c) {
  memset(c, 0, sizeof *c);
  strcpy(c->name, "default");
  c->gates = 8;
  c->voters = 3;
  c->attendees = 500;
  c->duration_ms = 30 * 60000;
  c->open_ms = 0;
  c->close_ms = 20 * 60000;
  c->latency_ms = 2;
  c->jitter_ms = 3;
  c->policy = LEDGER_POLICY_AVAILABLE;
  c->budget = 1000;
  c->wait_ms = 300;
  c->request_timeout_ms = 3000;
  c->heartbeat_ms = 100;
  c->election_ms = 1000;
  c->settle_ms = 120000;
}

/* "500ms", "45s", "30m", "2h30m", "1.5h"; a bare number is milliseconds. */
static int duration(const char *s, int64_t *out) {
  double total = 0;
  const char *p = s;
  do {
    char *end;
    double v = strtod(p, &end);
    if (end == p || v < 0)
      return -1;
    double mul = 1;
    if (strncmp(end, "ms", 2) == 0)
      end += 2;
    else if (*end == 's')
      mul = 1000, end++;
    else if (*end == 'm')
      mul = 60000, end++;
    else if (*end == 'h')
      mul = 3600000, end++;
    else if (*end != 0 || p != s)
      return -1;
    total += v * mul;
    p = end;
  } while (*p);
  *out = (int64_t)total;
  return 0;
}

/* "1-3,7" -> marks gates 1,2,3,7 (1-based) with component k. */
static int group(const char *s, unsigned gates, int *comp, int k) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s", s);
  for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    unsigned a, b;
    if (sscanf(tok, "%u-%u", &a, &b) == 2) {
    } else if (sscanf(tok, "%u", &a) == 1) {
      b = a;
    } else {
      return -1;
    }
    if (a < 1 || b < a || b > gates)
      return -1;
    for (unsigned i = a; i <= b; i++)
      comp[i - 1] = k;
  }
  return 0;
}

int sim_cfg_load(struct sim_cfg *c, const char *path, char *err, size_t errlen) {
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    snprintf(err, errlen, "%s: cannot open", path);
    return GM_EIO;
  }
  const char *base = strrchr(path, '/');
  snprintf(c->name, sizeof c->name, "%s", base ? base + 1 : path);
  char *dot = strrchr(c->name, '.');
  if (dot)
    *dot = 0;
  char line[1024];
  int lineno = 0, rc = 0;
  /* Phases name gates, so the gate count comes first: a first pass. */
  while (fgets(line, sizeof line, f)) {
    unsigned n;
    if (sscanf(line, " gates %u", &n) == 1)
      c->gates = n;
  }
  if (c->gates < 2 || c->gates > SIM_GATES_MAX) {
    snprintf(err, errlen, "%s: gates must be 2 to %d", path, SIM_GATES_MAX);
    fclose(f);
    return GM_EINVAL;
  }
  rewind(f);
  while (rc == 0 && fgets(line, sizeof line, f)) {
    lineno++;
    char *hash = strchr(line, '#');
    if (hash)
      *hash = 0;
    char *w[40];
    int n = 0;
    for (char *save = NULL, *t = strtok_r(line, " \t\r\n", &save); t && n < 40;
         t = strtok_r(NULL, " \t\r\n", &save))
      w[n++] = t;
    if (n == 0)
      continue;
    const char *k = w[0];
    bool ok = true;
    if (!strcmp(k, "gates") && n == 2) {
    } else if (!strcmp(k, "voters") && n == 2) {
      c->voters = (unsigned)atoi(w[1]);
      ok = c->voters == 1 || c->voters == 3 || c->voters == 5;
    } else if (!strcmp(k, "attendees") && n == 2) {
      c->attendees = (uint32_t)strtoul(w[1], NULL, 10);
      ok = c->attendees > 0 && c->attendees <= 10000000;
    } else if (!strcmp(k, "duration") && n == 2) {
      ok = duration(w[1], &c->duration_ms) == 0;
    } else if (!strcmp(k, "settle") && n == 2) {
      ok = duration(w[1], &c->settle_ms) == 0;
    } else if (!strcmp(k, "arrivals") && n == 3) {
      ok = duration(w[1], &c->open_ms) == 0 && duration(w[2], &c->close_ms) == 0 &&
           c->close_ms > c->open_ms;
    } else if (!strcmp(k, "latency") && (n == 2 || n == 3)) {
      ok = duration(w[1], &c->latency_ms) == 0 && (n == 2 || duration(w[2], &c->jitter_ms) == 0);
    } else if (!strcmp(k, "loss") && n == 2) {
      c->loss = atof(w[1]);
      ok = c->loss >= 0 && c->loss < 1;
    } else if (!strcmp(k, "dup") && n == 2) {
      c->dup = atof(w[1]);
      ok = c->dup >= 0 && c->dup < 1;
    } else if (!strcmp(k, "policy") && n == 2) {
      c->policy = ledger_policy_parse(w[1]);
      ok = c->policy >= 0;
    } else if (!strcmp(k, "budget") && n == 2) {
      c->budget = (uint32_t)strtoul(w[1], NULL, 10);
    } else if (!strcmp(k, "wait") && n == 2) {
      ok = duration(w[1], &c->wait_ms) == 0;
    } else if (!strcmp(k, "request-timeout") && n == 2) {
      ok = duration(w[1], &c->request_timeout_ms) == 0;
    } else if (!strcmp(k, "heartbeat") && n == 2) {
      int64_t v;
      ok = duration(w[1], &v) == 0 && v >= 10;
      c->heartbeat_ms = (uint32_t)v;
    } else if (!strcmp(k, "election") && n == 2) {
      int64_t v;
      ok = duration(w[1], &v) == 0 && v >= 100;
      c->election_ms = (uint32_t)v;
    } else if (!strcmp(k, "fraud") && n == 2) {
      c->fraud = atof(w[1]);
      ok = c->fraud >= 0 && c->fraud <= 1;
    } else if (!strcmp(k, "transfer") && n == 2) {
      c->transfer = atof(w[1]);
      ok = c->transfer >= 0 && c->transfer <= 1;
    } else if (!strcmp(k, "pass") && n == 2) {
      c->pass = atof(w[1]);
      ok = c->pass >= 0 && c->pass <= 1;
    } else if (!strcmp(k, "resale") && n == 2) {
      c->resale = atof(w[1]);
      ok = c->resale >= 0 && c->resale <= 1;
    } else if ((!strcmp(k, "partition") && n >= 3) || (!strcmp(k, "heal") && n == 2) ||
               (!strcmp(k, "crash") && n == 4)) {
      if (c->n_phases == SIM_PHASES_MAX) {
        ok = false;
      } else {
        struct sim_phase *p = &c->phases[c->n_phases];
        memset(p, 0, sizeof *p);
        ok = duration(w[1], &p->at_ms) == 0;
        if (!strcmp(k, "partition")) {
          p->kind = PH_PARTITION;
          for (unsigned i = 0; i < c->gates; i++)
            p->comp[i] = n - 1; /* gates not named: one more component */
          for (int i = 2; i < n && ok; i++)
            ok = group(w[i], c->gates, p->comp, i - 1) == 0;
        } else if (!strcmp(k, "heal")) {
          p->kind = PH_HEAL;
        } else {
          p->kind = PH_CRASH;
          p->gate = (unsigned)atoi(w[2]);
          ok = ok && p->gate >= 1 && p->gate <= c->gates && duration(w[3], &p->down_ms) == 0;
        }
        c->n_phases += ok;
      }
    } else {
      ok = false;
    }
    if (!ok) {
      snprintf(err, errlen, "%s:%d: cannot read \"%s\"", path, lineno, k);
      rc = GM_EINVAL;
    }
  }
  fclose(f);
  if (rc == 0 && c->voters > c->gates) {
    snprintf(err, errlen, "%s: more voters than gates", path);
    rc = GM_EINVAL;
  }
  return rc;
}
