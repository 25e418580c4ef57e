/*
 * biometric.c — the `biometric` method: enrol (generate) and match (verify)
 * over the sealing and the index of bio.h.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/err.h"
#include "bio.h"

static int bio_generate(struct method_env *env, const struct ledger_ticket *t,
                        const json_t *params, struct method_issue *out) {
  json_t *tmpl = NULL;
  int consent = 0;
  json_error_t jerr;
  if (params == NULL ||
      json_unpack_ex((json_t *)params, &jerr, JSON_STRICT, "{s:o, s?b}", "template", &tmpl,
                     "consent", &consent) != 0)
    return method__einval(env, "biometric generate takes {template, consent}: %s", jerr.text);
  if (!consent)
    return method__einval(env, "consent: true is required to enrol a biometric template");
  if (env->bio_key == NULL)
    return method__einval(env, "this gate has no biometric key");
  uint32_t dim = env->cfg->bio_dim;
  float *v = sodium_malloc(dim * sizeof(float));
  uint8_t *ct = malloc(24 + 4 * (size_t)dim + 16);
  if (v == NULL || ct == NULL) {
    if (v)
      sodium_free(v);
    free(ct);
    return GM_ENOMEM;
  }
  memset(&out->cmd, 0, sizeof out->cmd);
  int rc = bio_template_parse(env, tmpl, dim, v);
  size_t cl = 0;
  if (rc == 0)
    rc = bio_seal(env->bio_key, t->id, v, dim, env->random, env->random_arg,
                  out->cmd.u.bio.wrapped, ct, &cl);
  sodium_free(v);
  if (rc != 0) {
    free(ct);
    return rc;
  }
  out->cmd.op = LEDGER_OP_BIO_ENROLL;
  out->cmd.ts_ms = env->now_ms;
  memcpy(out->cmd.u.bio.ticket_id, t->id, sizeof out->cmd.u.bio.ticket_id);
  out->cmd.u.bio.ticket_version = t->version;
  out->cmd.u.bio.dim = dim;
  out->cmd.u.bio.ct = ct;
  out->cmd.u.bio.ct_len = cl;
  out->response = json_pack("{s:b, s:I}", "enrolled", 1, "dim", (json_int_t)dim);
  return out->response ? 0 : GM_ENOMEM;
}

/* The template of one ticket, from the index when it has it. */
static int template_of(struct method_env *env, const char *ticket_id, float *out,
                       uint32_t *version) {
  struct ledger_bio *b = malloc(sizeof *b);
  if (b == NULL)
    return GM_ENOMEM;
  int rc = ledger_bio_get(env->rd, ticket_id, b);
  if (rc == 0 && b->ct_len == 0)
    rc = GM_ENOTFOUND; /* erased */
  if (rc == 0 && b->dim != env->cfg->bio_dim)
    rc = GM_ENOTFOUND;
  if (rc == 0) {
    *version = b->ticket_version;
    const float *row = env->bio ? bio_index_get(env->bio, ticket_id) : NULL;
    if (row)
      memcpy(out, row, b->dim * sizeof(float));
    else
      rc = env->bio_key ? bio_open(env->bio_key, b, out) : GM_ENOTFOUND;
  }
  sodium_memzero(b, sizeof *b);
  free(b);
  return rc;
}

struct scan_ctx {
  struct method_env *env;
  const float *probe;
  float *v;
  struct bio_match m;
};

static int scan_one(void *arg, const struct ledger_bio *b) {
  struct scan_ctx *s = arg;
  if (b->ct_len == 0 || b->dim != s->env->cfg->bio_dim ||
      bio_open(s->env->bio_key, b, s->v) != 0)
    return 0;
  double d = bio_dot(s->probe, s->v, b->dim);
  if (d > s->m.best) {
    s->m.second = s->m.best;
    s->m.best = d;
    memcpy(s->m.ticket_id, b->ticket_id, sizeof s->m.ticket_id);
  } else if (d > s->m.second) {
    s->m.second = d;
  }
  s->m.found = true;
  return 0;
}

static int bio_verify(struct method_env *env, const json_t *presented, struct method_claim *out) {
  json_t *tmpl = NULL;
  const char *tid = NULL;
  json_error_t jerr;
  if (json_unpack_ex((json_t *)presented, &jerr, JSON_STRICT, "{s:o, s?s}", "template", &tmpl,
                     "ticket_id", &tid) != 0)
    return method__einval(env, "presented_data for biometric is {template, ticket_id?}: %s",
                          jerr.text);
  if (tid == NULL)
    tid = env->ticket_hint;
  if (tid != NULL && strlen(tid) > LEDGER_ID_MAX)
    return method__einval(env, "ticket_id is too long");
  uint32_t dim = env->cfg->bio_dim;
  float *probe = sodium_malloc(2 * dim * sizeof(float));
  if (probe == NULL)
    return GM_ENOMEM;
  float *v = probe + dim;
  int rc = bio_template_parse(env, tmpl, dim, probe);
  if (rc != 0)
    goto out;
  strcpy(out->cred_id, "bio");
  if (tid != NULL) {
    /* 1:1 */
    strcpy(out->ticket_id, tid);
    uint32_t version = 0;
    rc = template_of(env, tid, v, &version);
    if (rc == GM_ENOTFOUND || rc == GM_ECRYPTO) {
      rc = 0;
      out->reason = LEDGER_REASON_UNKNOWN_CREDENTIAL;
      goto out;
    }
    if (rc != 0)
      goto out;
    out->has_score = true;
    out->score = bio_dot(probe, v, dim);
    strcpy(out->ticket_id, tid);
    out->ticket_version = version;
    if (out->score < env->cfg->bio_threshold)
      out->reason = LEDGER_REASON_NO_MATCH;
    goto out;
  }
  /* 1:N */
  struct bio_match m;
  if (env->bio != NULL) {
    bio_index_search(env->bio, probe, &m);
  } else {
    struct scan_ctx s = {.env = env, .probe = probe, .v = v};
    s.m.best = s.m.second = -1;
    if (env->bio_key && (rc = ledger_bio_each(env->rd, scan_one, &s)) != 0)
      goto out;
    m = s.m;
  }
  if (!m.found) {
    out->reason = LEDGER_REASON_NO_MATCH;
    goto out;
  }
  out->has_score = true;
  out->score = m.best;
  if (m.best < env->cfg->bio_threshold ||
      (m.second > -1 && m.best - m.second < env->cfg->bio_margin)) {
    out->reason = LEDGER_REASON_NO_MATCH; /* nobody, or not clearly one person */
    goto out;
  }
  uint32_t version = 0;
  struct ledger_bio *b = malloc(sizeof *b);
  if (b == NULL) {
    rc = GM_ENOMEM;
    goto out;
  }
  rc = ledger_bio_get(env->rd, m.ticket_id, b);
  if (rc == 0 && b->ct_len == 0)
    rc = GM_ENOTFOUND;
  version = b->ticket_version;
  sodium_memzero(b, sizeof *b);
  free(b);
  if (rc == GM_ENOTFOUND) { /* erased after the index last synced */
    rc = 0;
    out->reason = LEDGER_REASON_NO_MATCH;
    goto out;
  }
  if (rc != 0)
    goto out;
  strcpy(out->ticket_id, m.ticket_id);
  out->ticket_version = version;
out:
  sodium_free(probe);
  return rc;
}

const struct method method_biometric = {.name = "biometric", .generate = bio_generate,
                                        .verify = bio_verify};
