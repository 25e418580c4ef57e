/*
 * check.c — the invariants of a festival run, its summary and its report.
 *
 *   I1 at most one strict admission per ticket;
 *   I2 every acknowledged admission (strict or provisional) is in the final
 *      ledger: as the ticket's use, or as a recorded incident;
 *   I3 every double entry involves a provisional admission that its gate
 *      could not have known to refuse: made in another partition component,
 *      or so close in time to the other that gossip had not arrived;
 *   I4 no gate admitted provisionally past its budget in one partition epoch;
 *   I5 after the heal every gate converges to the same ledger (same hash);
 *   I6 replaying every committed admission command changes nothing.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "lib/assert.h"
#include "lib/err.h"
#include "sim/sim.h"

/* Gossip reaches a live member within a few round trips and one digest
 * period; admissions closer together than this may both pass. */
#define GOSSIP_BOUND_MS 3000

static void violation(struct world *w, FILE *out, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#include <stdarg.h>

static void violation(struct world *w, FILE *out, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (w->violations < 20 && out != NULL) {
    fprintf(out, "VIOLATION ");
    vfprintf(out, fmt, ap);
    fprintf(out, "\n");
  }
  va_end(ap);
  w->violations++;
}

/* The component a gate was in at time t (the scenario's phases; the final
 * heal joins everyone). */
static int comp_at(const struct world *w, unsigned gate, int64_t t) {
  int64_t best = -1;
  int comp = 0;
  for (unsigned i = 0; i < w->cfg.n_phases; i++) {
    const struct sim_phase *p = &w->cfg.phases[i];
    if (p->at_ms > t || p->at_ms < best || (p->kind != PH_PARTITION && p->kind != PH_HEAL))
      continue;
    best = p->at_ms;
    comp = p->kind == PH_PARTITION ? p->comp[gate] : 0;
  }
  return comp;
}

/* Whether the gate (re)started within the window before t: it lost what
 * gossip had told it. */
static bool restarted_near(const struct world *w, unsigned gate, int64_t t) {
  for (unsigned i = 0; i < w->cfg.n_phases; i++) {
    const struct sim_phase *p = &w->cfg.phases[i];
    if (p->kind == PH_CRASH && p->gate - 1 == gate) {
      int64_t up = p->at_ms + p->down_ms;
      if (t >= p->at_ms && t <= up + GOSSIP_BOUND_MS)
        return true;
    }
  }
  return false;
}

static uint32_t ticket_no(const char *id) { return (uint32_t)strtoul(id + 1, NULL, 10); }

static const struct verdict *find_prov(const struct world *w, uint64_t origin, uint64_t seq) {
  for (size_t i = 0; i < w->n_v; i++)
    if (w->v[i].provisional && w->v[i].origin == origin && w->v[i].seq == seq)
      return &w->v[i];
  return NULL;
}

struct inc_ctx {
  struct world *w;
  FILE *out;
  const size_t *strict_of; /* verdict index of a ticket's strict admission, or SIZE_MAX */
  uint64_t count;
};

static int check_incident(void *arg, const struct ledger_incident *x) {
  struct inc_ctx *c = arg;
  struct world *w = c->w;
  c->count++;
  const struct verdict *b = find_prov(w, x->origin, x->pseq);
  if (b == NULL) {
    violation(w, c->out, "I3 incident %" PRIu64 "/%" PRIu64 " on %s has no provisional verdict",
              x->origin, x->pseq, x->ticket_id);
    return 0;
  }
  const struct verdict *a = NULL;
  if (x->first_pseq != 0) {
    a = find_prov(w, x->first_origin, x->first_pseq);
  } else if (strcmp(x->kind, "double_entry") == 0) {
    uint32_t t = ticket_no(x->ticket_id);
    if (t < w->cfg.attendees && c->strict_of[t] != SIZE_MAX)
      a = &w->v[c->strict_of[t]];
  }
  if (a == NULL)
    return 0; /* stale-state incidents (superseded, revoked) have no first */
  const struct verdict *first = a->at_ms <= b->at_ms ? a : b, *second = a->at_ms <= b->at_ms ? b : a;
  bool apart = comp_at(w, first->gate, first->at_ms) != comp_at(w, second->gate, second->at_ms) ||
               comp_at(w, first->gate, second->at_ms) != comp_at(w, second->gate, second->at_ms);
  bool close = second->at_ms - first->at_ms <= GOSSIP_BOUND_MS;
  if (!apart && !close && !restarted_near(w, second->gate, second->at_ms))
    violation(w, c->out,
              "I3 double entry of %s: g%u at %" PRId64 " ms and g%u at %" PRId64
              " ms, same component, gossip had time to refuse it",
              x->ticket_id, first->gate + 1, first->at_ms, second->gate + 1, second->at_ms);
  return 0;
}

/* Compares gates from..gates-1, in steps of two, with gate 1; a gate whose
 * ledger differs or cannot be read leaves its slot false. */
struct comparing {
  struct world *w;
  unsigned from;
  bool *same;
};

static void compare_some(void *arg) {
  struct comparing *cs = arg;
  for (unsigned i = cs->from; i < cs->w->cfg.gates; i += 2)
    if (i == 0)
      cs->same[0] = true;
    else if (ledger_same(cs->w->g[0]->ledger, cs->w->g[i]->ledger, &cs->same[i]) != 0)
      cs->same[i] = false;
}

/* True when every gate's ledger is gate 1's: equal states, so equal
 * hashes, found without hashing. Nothing writes the ledgers now (each is
 * flushed first, here), so a second thread compares every other one
 * (unless the run keeps to one core); both read gate 1's. */
static bool all_alike(struct world *w) {
  unsigned n = w->cfg.gates;
  bool *same = calloc(n, sizeof *same);
  GM_ASSERT(same != NULL);
  bool alike = true;
  for (unsigned i = 0; i < n; i++)
    if (ledger_flush(w->g[i]->ledger) != 0)
      alike = false;
  struct comparing even = {w, 0, same}, odd = {w, 1, same};
  lane_split(w->cfg.one_core, compare_some, &even, &odd);
  for (unsigned i = 0; i < n; i++)
    alike = alike && same[i];
  free(same);
  return alike;
}

unsigned sim_check(struct world *w, FILE *out) {
  w->violations = 0;
  if (world_settle(w) != 0)
    violation(w, out, "I5 a gate could not apply a committed entry");
  uint32_t n = w->cfg.attendees;
  size_t *strict_of = malloc(n * sizeof *strict_of);
  for (uint32_t i = 0; i < n; i++)
    strict_of[i] = SIZE_MAX;
  /* I1 */
  for (size_t i = 0; i < w->n_v; i++) {
    const struct verdict *v = &w->v[i];
    if (!v->admitted || v->provisional || v->decided_ms < 0)
      continue;
    uint32_t t = ticket_no(v->ticket);
    if (strict_of[t] != SIZE_MAX)
      violation(w, out, "I1 two strict admissions of %s (g%u, g%u)", v->ticket,
                w->v[strict_of[t]].gate + 1, v->gate + 1);
    else
      strict_of[t] = i;
  }
  /* I5 first: the other checks read one gate's ledger for all. */
  bool same = all_alike(w);
  if (!same)
    violation(w, out, "I5 the gates' ledgers differ after the heal");
  if (w->converged_ms < 0)
    violation(w, out, "I5 the gates did not converge after the last heal");
  struct ledger *l = w->g[0]->ledger;
  struct ledger_rd *rd;
  if (ledger_rd_begin(l, &rd) != 0) {
    free(strict_of);
    violation(w, out, "cannot read the ledger");
    return w->violations;
  }
  /* I2 */
  for (size_t i = 0; i < w->n_v; i++) {
    const struct verdict *v = &w->v[i];
    if (!v->admitted || v->decided_ms < 0)
      continue;
    struct ledger_ticket t;
    if (ledger_ticket_get(rd, v->ticket, &t) != 0) {
      violation(w, out, "I2 %s is not in the ledger", v->ticket);
      continue;
    }
    char gname[16];
    snprintf(gname, sizeof gname, "g%u", v->gate + 1);
    bool as_use = t.status == LEDGER_TICKET_USED && strcmp(t.used_gate, gname) == 0 &&
                  t.used_ms == SIM_BASE_MS + v->at_ms;
    if (!v->provisional) {
      if (!as_use)
        violation(w, out, "I2 strict admission of %s at g%u (%" PRId64 " ms) is not its use",
                  v->ticket, v->gate + 1, v->at_ms);
      continue;
    }
    struct ledger_incident x;
    bool found = as_use || (t.used_origin == v->origin && t.used_pseq == v->seq) ||
                 ledger_incident_get(rd, v->origin, v->seq, &x) == 0;
    if (!found)
      violation(w, out,
                "I2 acknowledged provisional admission of %s at g%u (%" PRId64
                " ms, seq %" PRIu64 ") is not in the ledger",
                v->ticket, v->gate + 1, v->at_ms, v->seq);
  }
  /* I3 */
  struct inc_ctx ic = {w, out, strict_of, 0};
  ledger_incident_each(rd, check_incident, &ic);
  w->incidents = ic.count;
  ledger_rd_end(rd);
  /* I4: provisional admissions per (gate, epoch), counted in one pass. */
  size_t *first = calloc(w->cfg.gates + 1, sizeof *first);
  for (unsigned g = 0; g < w->cfg.gates; g++)
    first[g + 1] = first[g] + (size_t)w->g[g]->epoch;
  uint32_t *per = calloc(first[w->cfg.gates] + 1, sizeof *per);
  for (size_t i = 0; i < w->n_v; i++) {
    const struct verdict *v = &w->v[i];
    if (v->provisional && v->admitted && v->epoch >= 1 && v->epoch <= w->g[v->gate]->epoch)
      per[first[v->gate] + v->epoch - 1]++;
  }
  for (unsigned g = 0; g < w->cfg.gates; g++)
    for (uint64_t e = 1; e <= w->g[g]->epoch; e++)
      if (per[first[g] + e - 1] > w->cfg.budget)
        violation(w, out, "I4 g%u admitted %u provisionally in epoch %" PRIu64 ", budget %u",
                  g + 1, per[first[g] + e - 1], e, w->cfg.budget);
  free(per);
  free(first);
  /* I6: every committed admission command again, on gate 1's ledger. */
  uint8_t before[32], after[32];
  ledger_hash(l, before);
  if (ledger_rd_begin(l, &rd) == 0) {
    struct gm_slice *sl = malloc((w->n_cmds + 1) * sizeof *sl);
    size_t k = 0;
    for (size_t i = 0; i < w->n_cmds; i++) {
      struct ledger_cmd c;
      struct ledger_result r;
      if (ledger_cmd_decode(w->cmds[i], w->cmd_len[i], &c) == 0 &&
          (ledger_dedup_get(rd, c.rid, &r) == 0 ||
           (c.op == LEDGER_OP_REDEEM && c.u.redeem.p_seq == 0 &&
            ledger_redeem_get(rd, c.u.redeem.ticket_id, c.rid, &r) == 0)))
        sl[k++] = (struct gm_slice){w->cmds[i], w->cmd_len[i]};
    }
    ledger_rd_end(rd);
    struct ledger_result *res = malloc((k + 1) * sizeof *res);
    for (size_t at = 0; at < k; at += 4096) {
      size_t m = k - at < 4096 ? k - at : 4096;
      ledger_apply_batch(l, sl + at, m, res);
    }
    free(res);
    free(sl);
    ledger_hash(l, after);
    if (memcmp(before, after, 32) != 0)
      violation(w, out, "I6 replaying %zu committed admissions changed the ledger", k);
  }
  free(strict_of);
  return w->violations;
}

/* ---------------------------------------------------------------- summary */

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

void sim_summary(struct world *w, FILE *out) {
  uint64_t answered = 0, unanswered = 0, strict = 0, prov = 0, denied = 0;
  uint64_t fraud = 0, fraud_refused = 0, reasons[LEDGER_REASON__COUNT + 1] = {0};
  uint64_t by_pass = 0, pass_admitted = 0;
  int64_t *lat = malloc((w->n_v + 1) * sizeof *lat);
  size_t nl = 0;
  for (size_t i = 0; i < w->n_v; i++) {
    const struct verdict *v = &w->v[i];
    if (v->decided_ms < 0) {
      unanswered++;
      continue;
    }
    answered++;
    by_pass += v->pass;
    pass_admitted += v->pass && v->admitted;
    lat[nl++] = v->decided_ms - v->at_ms;
    if (v->admitted)
      v->provisional ? prov++ : strict++;
    else
      denied++;
    if (!v->admitted && v->reason >= 0 && v->reason < LEDGER_REASON__COUNT)
      reasons[v->reason]++;
    if (v->fraud) {
      fraud++;
      fraud_refused += !v->admitted;
    }
  }
  qsort(lat, nl, sizeof *lat, cmp_i64);
  fprintf(out, "gatesim scenario=%s seed=%" PRIu64 " gates=%u voters=%u attendees=%u\n",
          w->cfg.name, w->seed, w->cfg.gates, w->cfg.voters, w->cfg.attendees);
  fprintf(out,
          "verdicts %" PRIu64 " answered, %" PRIu64 " unanswered (gate crashed): admitted %" PRIu64
          " strict + %" PRIu64 " provisional, denied %" PRIu64 "\n",
          answered, unanswered, strict, prov, denied);
  fprintf(out, "denied by reason:");
  for (int r = 1; r < LEDGER_REASON__COUNT; r++)
    if (reasons[r])
      fprintf(out, " %s=%" PRIu64, ledger_reason_str(r), reasons[r]);
  fprintf(out, "\nfraud attempts %" PRIu64 ", refused %" PRIu64 "\n", fraud, fraud_refused);
  if (w->cfg.pass > 0)
    fprintf(out, "dynamic passes shown %" PRIu64 ", admitted %" PRIu64 "; QR codes %" PRIu64
                 ", admitted %" PRIu64 "\n",
            by_pass, pass_admitted, answered - by_pass, strict + prov - pass_admitted);
  if (w->cfg.resale > 0)
    fprintf(out,
            "resales during the festival %" PRIu64 ": transferred %" PRIu64 ", refused %" PRIu64
            " (used first), unanswered %" PRIu64 " (gate crashed)\n",
            w->resales, w->resales_done, w->resales_refused,
            w->resales - w->resales_done - w->resales_refused);
  fprintf(out, "incidents in the ledger %" PRIu64 "\n", w->incidents);
  if (nl > 0)
    fprintf(out, "verdict latency ms p50=%" PRId64 " p99=%" PRId64 " max=%" PRId64 "\n",
            lat[nl / 2], lat[(nl * 99) / 100], lat[nl - 1]);
  if (w->converged_ms >= 0)
    fprintf(out, "converged %" PRId64 " ms after the last heal\n", w->converged_ms);
  else
    fprintf(out, "did not converge after the last heal\n");
  uint64_t raft_msgs = 0, raft_dropped = 0;
  for (unsigned i = 0; i < w->cfg.gates; i++) {
    raft_msgs += w->g[i]->io.sent;
    raft_dropped += w->g[i]->io.dropped;
  }
  fprintf(out,
          "simulated %" PRId64 " s, %" PRIu64 " events; messages: raft %" PRIu64 " (%" PRIu64
          " dropped), gossip %" PRIu64 ", commands and results %" PRIu64 ", %" PRIu64
          " dropped\n",
          w->end_ms / 1000, w->s.executed, raft_msgs, raft_dropped, w->gossip_msgs,
          w->messages - w->gossip_msgs, w->dropped);
  free(lat);
}

/* ----------------------------------------------------------------- report */

int sim_report_html(struct world *w, const char *path) {
  FILE *f = fopen(path, "w");
  if (f == NULL)
    return GM_EIO;
  const int W = 900, H = 260, PAD = 40;
  double span = (double)(w->end_ms > 0 ? w->end_ms : 1);
  fprintf(f, "<!doctype html><html><head><meta charset=\"utf-8\"><title>gatesim %s seed %" PRIu64
             "</title><style>body{font:14px sans-serif;margin:2em}svg{background:#fafafa;"
             "border:1px solid #ddd}pre{background:#f4f4f4;padding:1em}</style></head><body>\n",
          w->cfg.name, w->seed);
  fprintf(f, "<h1>Festival %s, seed %" PRIu64 "</h1>\n<pre>", w->cfg.name, w->seed);
  sim_summary(w, f);
  fprintf(f, "</pre>\n<h2>Admissions per gate over time</h2>\n");
  fprintf(f, "<svg width=\"%d\" height=\"%d\">\n", W, H);
  uint64_t max = 1;
  uint64_t *count = calloc(w->cfg.gates, sizeof *count);
  for (size_t i = 0; i < w->n_v; i++)
    if (w->v[i].admitted && w->v[i].decided_ms >= 0 && ++count[w->v[i].gate] > max)
      max = count[w->v[i].gate];
  for (unsigned g = 0; g < w->cfg.gates; g++) {
    unsigned hue = (g * 47) % 360;
    fprintf(f, "<polyline fill=\"none\" stroke=\"hsl(%u,60%%,45%%)\" points=\"%d,%d", hue, PAD,
            H - PAD);
    uint64_t c = 0;
    for (size_t i = 0; i < w->n_v; i++) {
      const struct verdict *v = &w->v[i];
      if (v->gate != g || !v->admitted || v->decided_ms < 0)
        continue;
      c++;
      double x = PAD + (W - 2 * PAD) * (double)v->decided_ms / span;
      double y = (H - PAD) - (H - 2 * PAD) * (double)c / (double)max;
      fprintf(f, " %.1f,%.1f", x, y);
    }
    fprintf(f, "\"><title>g%u: %" PRIu64 " admitted</title></polyline>\n", g + 1, c);
  }
  /* provisional admissions as dots */
  for (size_t i = 0; i < w->n_v; i++) {
    const struct verdict *v = &w->v[i];
    if (v->provisional && v->admitted && v->decided_ms >= 0)
      fprintf(f, "<circle cx=\"%.1f\" cy=\"%d\" r=\"1.5\" fill=\"#d80\"/>\n",
              PAD + (W - 2 * PAD) * (double)v->decided_ms / span, H - PAD + 8);
  }
  fprintf(f, "<text x=\"%d\" y=\"%d\">0</text><text x=\"%d\" y=\"%d\">%" PRId64
             " min</text><text x=\"4\" y=\"%d\">%" PRIu64 "</text>\n",
          PAD, H - 8, W - PAD - 40, H - 8, w->end_ms / 60000, PAD, max);
  fprintf(f, "</svg><p>Lines: cumulative admissions per gate; orange dots: provisional "
             "admissions.</p>\n<h2>Partition timeline</h2>\n");
  int row = 14;
  fprintf(f, "<svg width=\"%d\" height=\"%d\">\n", W, PAD + row * (int)w->cfg.gates);
  for (unsigned g = 0; g < w->cfg.gates; g++) {
    fprintf(f, "<text x=\"2\" y=\"%d\" font-size=\"10\">g%u</text>\n", 20 + row * (int)g + 10, g + 1);
    for (unsigned i = 0; i < w->cfg.n_phases; i++) {
      const struct sim_phase *p = &w->cfg.phases[i];
      if (p->kind == PH_PARTITION || p->kind == PH_CRASH) {
        int64_t end = w->end_ms;
        if (p->kind == PH_CRASH)
          end = p->at_ms + p->down_ms;
        else
          for (unsigned k = 0; k < w->cfg.n_phases; k++)
            if (w->cfg.phases[k].at_ms > p->at_ms && w->cfg.phases[k].kind != PH_CRASH &&
                w->cfg.phases[k].at_ms < end)
              end = w->cfg.phases[k].at_ms;
        if (p->kind == PH_CRASH && p->gate - 1 != g)
          continue;
        double x0 = PAD + (W - 2 * PAD) * (double)p->at_ms / span;
        double x1 = PAD + (W - 2 * PAD) * (double)end / span;
        const char *fill = p->kind == PH_CRASH ? "#000" : NULL;
        char buf[32];
        if (fill == NULL) {
          snprintf(buf, sizeof buf, "hsl(%d,55%%,60%%)", (p->comp[g] * 97) % 360);
          fill = buf;
        }
        fprintf(f, "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>\n", x0,
                20 + row * (int)g, x1 - x0 > 1 ? x1 - x0 : 1, row - 2, fill);
      }
    }
  }
  fprintf(f, "</svg><p>Colour: the gate's partition component; black: crashed.</p>\n");
  fprintf(f, "<h2>Incidents</h2>\n<svg width=\"%d\" height=\"60\">\n", W);
  struct ledger_rd *rd;
  if (ledger_rd_begin(w->g[0]->ledger, &rd) == 0) {
    for (size_t i = 0; i < w->n_v; i++) {
      const struct verdict *v = &w->v[i];
      struct ledger_incident x;
      if (v->provisional && ledger_incident_get(rd, v->origin, v->seq, &x) == 0)
        fprintf(f,
                "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"10\" y2=\"50\" stroke=\"#c00\"><title>%s %s at g%u"
                "</title></line>\n",
                PAD + (W - 2 * PAD) * (double)v->at_ms / span,
                PAD + (W - 2 * PAD) * (double)v->at_ms / span, x.kind, x.ticket_id, v->gate + 1);
    }
    ledger_rd_end(rd);
  }
  fprintf(f, "</svg><p>Each line: a provisional admission the ledger recorded as an incident.</p>"
             "</body></html>\n");
  free(count);
  return fclose(f) == 0 ? 0 : GM_EIO;
}
