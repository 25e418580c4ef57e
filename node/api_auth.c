/*
 * api_auth.c — POST /auth/login, POST /users, GET /users/me.
 */
#include <sodium.h>
#include <string.h>

#include "../lib/buf.h"
#include "../lib/err.h"
#include "../lib/jws.h"
#include "api.h"
#include "auth.h"

#define PASSWORD_MIN 8
#define PASSWORD_MAX 255

struct login_state {
  struct ledger_user user;
  bool found;
};

static void login_checked(void *arg, int rc, const char *hash) {
  struct api_req *ar = arg;
  struct login_state *st = ar->state;
  if (!api_alive(ar))
    goto out;
  if (rc != 0 || !st->found) {
    api_problem(ar, 401, "unauthorized", "unknown user or wrong password");
    goto out;
  }
  char token[GM_JWS_MAX];
  int64_t exp;
  rc = auth_token_issue(ar->node, &st->user, token, &exp);
  if (rc != 0) {
    api_error(ar, rc, "cannot sign a token");
    goto out;
  }
  api_reply_json(ar, 200,
                 json_pack("{s:s, s:s, s:I, s:s}", "token", token, "role",
                           ledger_role_str(st->user.role), "expires_ms", (json_int_t)exp,
                           "user_id", st->user.id));
out:
  sodium_memzero(st, sizeof *st);
  free(st);
  api_done(ar);
}

void api_login(struct api_req *ar) {
  const char *username, *password;
  if (api_unpack(ar, "{s:s, s:s}", "username", &username, "password", &password) != 0)
    return api_done(ar);
  struct login_state *st = calloc(1, sizeof *st);
  if (st == NULL) {
    api_error(ar, GM_ENOMEM, NULL);
    return api_done(ar);
  }
  struct ledger_rd *rd;
  uint64_t users = 1;
  int rc = ledger_rd_begin(ar->node->ledger, &rd);
  if (rc == 0) {
    st->found = strlen(username) <= LEDGER_ID_MAX &&
                ledger_user_by_name(rd, username, &st->user) == 0;
    if (!st->found)
      rc = ledger_user_count(rd, &users);
    ledger_rd_end(rd);
  }
  /* No account at all: a cluster's first leader has not committed its
   * bootstrap admin yet, or a joining gate has not caught up. Saying so
   * (rather than 401) tells a client to retry, not to doubt the password. */
  if (rc == 0 && users == 0) {
    free(st);
    api_problem(ar, 503, "not_ready",
                "this gate has no accounts yet: its ledger is still being bootstrapped or "
                "caught up; retry in a moment");
    return api_done(ar);
  }
  /* An unknown user costs the same Argon2id check as a known one (against a
   * hash made at start-up), so timing does not tell which usernames exist. */
  ar->state = st;
  if (rc == 0)
    rc = auth_password_check(ar->node, strlen(password) <= PASSWORD_MAX ? password : "",
                             st->found ? st->user.pwhash : ar->node->dummy_pwhash, login_checked,
                             ar);
  if (rc != 0) {
    free(st);
    api_error(ar, rc, NULL);
    api_done(ar);
  }
}

struct user_state {
  struct ledger_cmd cmd;
};

static void user_committed(struct api_req *ar, const struct ledger_result *res) {
  struct user_state *st = ar->state;
  if (res->rc == GM_EEXIST)
    api_problem(ar, 409, "conflict", "username %s is taken", st->cmd.u.user.username);
  else if (res->rc != 0)
    api_error(ar, res->rc, NULL);
  else
    api_reply_json(ar, 201,
                   json_pack("{s:s, s:s, s:s}", "id", st->cmd.u.user.id, "username",
                             st->cmd.u.user.username, "role",
                             ledger_role_str(st->cmd.u.user.role)));
  free(st);
  api_done(ar);
}

static void user_hashed(void *arg, int rc, const char *hash) {
  struct api_req *ar = arg;
  struct user_state *st = ar->state;
  if (!api_alive(ar) || rc != 0) {
    if (rc != 0)
      api_error(ar, rc, NULL);
    free(st);
    return api_done(ar);
  }
  strcpy(st->cmd.u.user.pwhash, hash);
  api_commit(ar, &st->cmd, user_committed);
}

void api_users_create(struct api_req *ar) {
  const char *username, *password, *role;
  if (api_unpack(ar, "{s:s, s:s, s:s}", "username", &username, "password", &password, "role",
                 &role) != 0)
    return api_done(ar);
  if (!api_valid_id(username)) {
    api_problem(ar, 400, "invalid_field",
                "username must be 1 to %d of letters, digits and ._:@-", LEDGER_ID_MAX);
    return api_done(ar);
  }
  size_t pl = strlen(password);
  if (pl < PASSWORD_MIN || pl > PASSWORD_MAX) {
    api_problem(ar, 400, "invalid_field", "password must be %d to %d characters", PASSWORD_MIN,
                PASSWORD_MAX);
    return api_done(ar);
  }
  int r = ledger_role_parse(role);
  if (r < 0) {
    api_problem(ar, 400, "invalid_field", "role must be admin, organizer, staff or attendee");
    return api_done(ar);
  }
  struct user_state *st = calloc(1, sizeof *st);
  if (st == NULL) {
    api_error(ar, GM_ENOMEM, NULL);
    return api_done(ar);
  }
  node_cmd_init(ar->node, &st->cmd, LEDGER_OP_USER_ADD, ar->rid, ar->who.user_id);
  uint8_t rnd[8];
  randombytes_buf(rnd, sizeof rnd);
  strcpy(st->cmd.u.user.id, "u-");
  gm_hex(st->cmd.u.user.id + 2, rnd, sizeof rnd);
  strcpy(st->cmd.u.user.username, username);
  st->cmd.u.user.role = r;
  ar->state = st;
  int rc = auth_password_hash(ar->node, password, user_hashed, ar);
  if (rc != 0) {
    free(st);
    api_error(ar, rc, NULL);
    api_done(ar);
  }
}

void api_users_me(struct api_req *ar) {
  api_reply_json(ar, 200,
                 json_pack("{s:s, s:s, s:s}", "id", ar->who.user_id, "username",
                           ar->who.username, "role", ledger_role_str(ar->who.role)));
  api_done(ar);
}
