/*
 * api.h — request plumbing shared by the HTTP handlers.
 *
 * Each request gets a struct api_req (malloc'd, not in the h2o pool) whose
 * `req` pointer is cleared by a guard in the request's pool when h2o disposes
 * of the request — a client that hung up while its command was committing.
 * A handler that answers later checks api_alive() first and always ends with
 * api_done(). Every reply function frees nothing and may be called once.
 */
#ifndef GM_NODE_API_H
#define GM_NODE_API_H

#include <jansson.h>

#include "../lib/buf.h"

#include "node.h"

#define API_PARAMS_MAX 3

struct api_guard;

struct api_req {
  h2o_req_t *req;
  struct node *node;
  struct api_guard *guard;
  json_t *body;
  bool authed;
  struct auth_who who;
  char ip[LEDGER_IP_MAX + 1];
  char device[LEDGER_DEVICE_MAX + 1];
  char rid[LEDGER_RID_MAX + 1];
  bool has_idem_key;
  bool timed;        /* a verify: its latency goes to the histogram */
  uint64_t t0_ns;    /* uv_hrtime() when the request arrived */
  char params[API_PARAMS_MAX][LEDGER_ID_MAX + 1];
  void *state; /* handler-owned, freed by the handler */
  void (*commit_cb)(struct api_req *ar, const struct ledger_result *res);
};

typedef void (*api_handler)(struct api_req *ar);

bool api_alive(struct api_req *ar);
void api_done(struct api_req *ar);

void api_reply_json(struct api_req *ar, int status, json_t *body); /* steals body */
void api_reply_text(struct api_req *ar, int status, const char *ctype, const char *body,
                    size_t len);
void api_problem(struct api_req *ar, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Maps a GM_E* code to a status and stable code and replies. */
void api_error(struct api_req *ar, int rc, const char *detail);

/* Unpacks the JSON body strictly (unknown fields refused). On failure it has
 * replied (400 bad_json / invalid_field / unknown_field) and returns -1. */
int api_unpack(struct api_req *ar, const char *fmt, ...);
/* Validates an id-like string: 1..LEDGER_ID_MAX of [A-Za-z0-9._:@-]. */
bool api_valid_id(const char *s);
/* Checks a string's length (and non-emptiness when required); replies 400. */
int api_check_len(struct api_req *ar, const char *field, const char *v, size_t max,
                  bool required);

/* Role check: replies 401/403 and returns -1 when not allowed. */
int api_require(struct api_req *ar, int role);
/* Query string value (URL-decoded) into out; 0 if present. */
int api_query(struct api_req *ar, const char *key, char *out, size_t cap);

/* Commits c and calls cb exactly once on the loop thread: with the committed
 * result, or right away with res->rc = GM_ELIMIT / GM_ESHUTDOWN when the
 * queue refuses the command (cb replies 503 through api_error). */
typedef void (*api_commit_cb)(struct api_req *ar, const struct ledger_result *res);
void api_commit(struct api_req *ar, struct ledger_cmd *c, api_commit_cb cb);

/* Handlers (api_*.c). */
void api_login(struct api_req *ar);
void api_users_create(struct api_req *ar);
void api_users_me(struct api_req *ar);
void api_events_create(struct api_req *ar);
void api_events_get(struct api_req *ar);
void api_tickets_create(struct api_req *ar);
void api_tickets_batch(struct api_req *ar);
void api_tickets_get(struct api_req *ar);
void api_tickets_transfer(struct api_req *ar);
void api_tickets_revoke(struct api_req *ar);
void api_methods_list(struct api_req *ar);
void api_methods_generate(struct api_req *ar);
void api_methods_verify(struct api_req *ar);
void api_verify(struct api_req *ar);
void api_audits(struct api_req *ar);
void api_toggle(struct api_req *ar);
void api_override(struct api_req *ar);
void api_keys_rotate(struct api_req *ar);
void api_jwks(struct api_req *ar);
void api_healthz(struct api_req *ar);
void api_metrics(struct api_req *ar);
void api_cluster_status(struct api_req *ar);
void api_cluster_token(struct api_req *ar);
void api_ledger_hash(struct api_req *ar);
void api_cluster_leave(struct api_req *ar);
void api_incidents(struct api_req *ar);
void api_bio_get(struct api_req *ar);
void api_bio_erase(struct api_req *ar);
void api_zones_set(struct api_req *ar);
void api_zones_get(struct api_req *ar);

/* Loads the ticket named by params[0] if the caller holds it or has at least
 * `role`; otherwise replies (404 to attendees, 403 to others) and returns -1. */
int api_load_ticket(struct api_req *ar, int role, struct ledger_ticket *t);

/* Appends s as a JSON string literal (quoted, escaped). */
void api_json_str(struct gm_buf *b, const char *s);

/* Shared JSON renderers. */
json_t *api_ticket_json(const struct ledger_ticket *t);
json_t *api_event_json(const struct ledger_event *e);

#endif
