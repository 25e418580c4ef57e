/*
 * http.c — the HTTP server: h2o on the node's libuv loop (HTTP/1.1, HTTP/2
 * over TLS by ALPN or cleartext by prior knowledge), the route table, body
 * parsing with precise errors, problem+json replies, and the guard that keeps
 * a late reply from touching a request h2o has already freed.
 */
#include <openssl/err.h>
#include <sodium.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../lib/assert.h"
#include "../lib/err.h"
#include "../lib/log.h"
#include "api.h"
#include "auth.h"

struct api_guard {
  struct api_req *ar;
};

enum { PUBLIC = -1 };

struct route {
  const char *method;
  const char *pattern; /* '*' matches one path segment, captured in order */
  int min_role;        /* PUBLIC: no token needed */
  api_handler fn;
};

static const struct route routes[] = {
    {"POST", "/auth/login", PUBLIC, api_login},
    {"POST", "/users", LEDGER_ROLE_ADMIN, api_users_create},
    {"GET", "/users/me", LEDGER_ROLE_ATTENDEE, api_users_me},
    {"POST", "/events", LEDGER_ROLE_ORGANIZER, api_events_create},
    {"GET", "/events/*", LEDGER_ROLE_STAFF, api_events_get},
    {"POST", "/events/*/zones", LEDGER_ROLE_ORGANIZER, api_zones_set},
    {"GET", "/events/*/zones", LEDGER_ROLE_ATTENDEE, api_zones_get},
    {"POST", "/tickets", LEDGER_ROLE_ORGANIZER, api_tickets_create},
    {"POST", "/tickets/", LEDGER_ROLE_ORGANIZER, api_tickets_create},
    {"POST", "/tickets/batch", LEDGER_ROLE_ORGANIZER, api_tickets_batch},
    {"GET", "/tickets/*", LEDGER_ROLE_ATTENDEE, api_tickets_get},
    {"POST", "/tickets/*/transfer", LEDGER_ROLE_ATTENDEE, api_tickets_transfer},
    {"POST", "/tickets/*/revoke", LEDGER_ROLE_ORGANIZER, api_tickets_revoke},
    {"POST", "/tickets/*/methods", LEDGER_ROLE_ATTENDEE, api_methods_list},
    {"GET", "/tickets/*/methods", LEDGER_ROLE_ATTENDEE, api_methods_list},
    {"POST", "/tickets/*/methods/*/generate", LEDGER_ROLE_ATTENDEE, api_methods_generate},
    {"GET", "/tickets/*/methods/biometric", LEDGER_ROLE_ATTENDEE, api_bio_get},
    {"DELETE", "/tickets/*/methods/biometric", LEDGER_ROLE_ATTENDEE, api_bio_erase},
    {"POST", "/tickets/*/methods/*/verify", LEDGER_ROLE_STAFF, api_methods_verify},
    {"POST", "/verify", LEDGER_ROLE_STAFF, api_verify},
    {"GET", "/audits/usage", LEDGER_ROLE_STAFF, api_audits},
    {"POST", "/admin/methods/*/toggle", LEDGER_ROLE_ADMIN, api_toggle},
    {"POST", "/admin/tickets/*/override", LEDGER_ROLE_STAFF, api_override},
    {"POST", "/admin/keys/rotate", LEDGER_ROLE_ADMIN, api_keys_rotate},
    {"GET", "/incidents", LEDGER_ROLE_STAFF, api_incidents},
    {"GET", "/cluster/status", PUBLIC, api_cluster_status},
    {"GET", "/cluster/join-token", LEDGER_ROLE_ADMIN, api_cluster_token},
    {"GET", "/cluster/ledger-hash", LEDGER_ROLE_ADMIN, api_ledger_hash},
    {"POST", "/cluster/leave", LEDGER_ROLE_ADMIN, api_cluster_leave},
    {"GET", "/.well-known/jwks.json", PUBLIC, api_jwks},
    {"GET", "/healthz", PUBLIC, api_healthz},
    {"GET", "/metrics", PUBLIC, api_metrics},
};

/* Matches path (no query) against pattern; captures '*' segments. Returns 1
 * on a match, 0 otherwise, -1 when a captured segment is too long. */
static int match(const char *pattern, const char *path, size_t plen,
                 char params[API_PARAMS_MAX][LEDGER_ID_MAX + 1]) {
  size_t i = 0;
  int np = 0;
  const char *p = pattern;
  while (*p) {
    if (*p == '*') {
      size_t start = i;
      while (i < plen && path[i] != '/')
        i++;
      if (i == start || np == API_PARAMS_MAX)
        return 0;
      if (i - start > LEDGER_ID_MAX)
        return -1;
      memcpy(params[np], path + start, i - start);
      params[np][i - start] = 0;
      np++;
      p++;
    } else {
      if (i >= plen || path[i] != *p)
        return 0;
      i++;
      p++;
    }
  }
  return i == plen;
}

static void guard_dispose(void *p) {
  struct api_guard *g = p;
  if (g->ar != NULL) {
    g->ar->req = NULL;
    g->ar->guard = NULL;
  }
}

bool api_alive(struct api_req *ar) { return ar->req != NULL; }

void api_done(struct api_req *ar) {
  if (ar->guard)
    ar->guard->ar = NULL;
  json_decref(ar->body);
  free(ar);
}

static void count_status(struct node *n, int status) {
  n->metrics.http_requests++;
  int cls = status / 100;
  if (cls >= 1 && cls <= 5)
    n->metrics.http_status[cls]++;
}

void api_reply_text(struct api_req *ar, int status, const char *ctype, const char *body,
                    size_t len) {
  if (!api_alive(ar))
    return;
  h2o_req_t *req = ar->req;
  count_status(ar->node, status);
  if (ar->timed)
    node_observe(ar->node->metrics.verify_lat, &ar->node->metrics.verify_lat_sum_s,
                 uv_hrtime() - ar->t0_ns);
  req->res.status = status;
  req->res.reason = status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
  h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, ctype,
                 strlen(ctype));
  h2o_send_inline(req, body, len);
}

void api_reply_json(struct api_req *ar, int status, json_t *body) {
  char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  if (s == NULL) {
    static const char oom[] = "{\"status\":500,\"code\":\"out_of_memory\"}";
    api_reply_text(ar, 500, "application/problem+json", oom, sizeof oom - 1);
    return;
  }
  api_reply_text(ar, status, "application/json", s, strlen(s));
  free(s);
}

void api_problem(struct api_req *ar, int status, const char *code, const char *fmt, ...) {
  char detail[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  json_t *j = json_pack("{s:s, s:s, s:i, s:s, s:s}", "type", "about:blank", "title", code,
                        "status", status, "code", code, "detail", detail);
  char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
  json_decref(j);
  if (s == NULL)
    return;
  api_reply_text(ar, status, "application/problem+json", s, strlen(s));
  free(s);
}

void api_error(struct api_req *ar, int rc, const char *detail) {
  int status;
  const char *code;
  switch (rc) {
  case GM_EINVAL: status = 400, code = "invalid_field"; break;
  case GM_EDECODE: status = 400, code = "invalid_field"; break;
  case GM_ENOTFOUND: status = 404, code = "not_found"; break;
  case GM_EEXIST: status = 409, code = "conflict"; break;
  case GM_ESTATE: status = 409, code = "conflict"; break;
  case GM_EAUTH: status = 401, code = "unauthorized"; break;
  case GM_EFORBIDDEN: status = 403, code = "forbidden"; break;
  case GM_EDISABLED: status = 403, code = "method_disabled"; break;
  case GM_ETOOBIG: status = 413, code = "payload_too_large"; break;
  case GM_ELIMIT: status = 503, code = "rate_limited"; break;
  case GM_EFULL: status = 507, code = "storage_full"; break;
  case GM_ESHUTDOWN: status = 503, code = "shutting_down"; break;
  case GM_ENOQUORUM: status = 503, code = "no_quorum"; break;
  default: status = 500, code = gm_err_code(rc); break;
  }
  api_problem(ar, status, code, "%s", detail ? detail : gm_err_msg(rc));
}

int api_unpack(struct api_req *ar, const char *fmt, ...) {
  if (ar->body == NULL) {
    api_problem(ar, 400, "bad_json", "a JSON object body is required");
    return -1;
  }
  json_error_t err;
  va_list ap;
  va_start(ap, fmt);
  int rc = json_vunpack_ex(ar->body, &err, JSON_STRICT, fmt, ap);
  va_end(ap);
  if (rc == 0)
    return 0;
  switch (json_error_code(&err)) {
  case json_error_end_of_input_expected:
    api_problem(ar, 400, "unknown_field", "%s", err.text);
    break;
  default:
    api_problem(ar, 400, "invalid_field", "%s", err.text);
  }
  return -1;
}

void api_json_str(struct gm_buf *b, const char *s) {
  static const char hex[] = "0123456789abcdef";
  gm_buf_append(b, "\"", 1);
  const char *run = s;
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c >= 0x20 && c != '"' && c != '\\')
      continue;
    gm_buf_append(b, run, (size_t)(s - run));
    char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
    if (c == '"' || c == '\\')
      gm_buf_append(b, (char[]){'\\', (char)c}, 2);
    else
      gm_buf_append(b, esc, sizeof esc);
    run = s + 1;
  }
  gm_buf_append(b, run, (size_t)(s - run));
  gm_buf_append(b, "\"", 1);
}

bool api_valid_id(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > LEDGER_ID_MAX)
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '.' || c == '_' || c == ':' || c == '@' || c == '-'))
      return false;
  }
  return true;
}

int api_check_len(struct api_req *ar, const char *field, const char *v, size_t max,
                  bool required) {
  size_t n = strlen(v);
  if ((required && n == 0) || n > max) {
    api_problem(ar, 400, "invalid_field", "%s must be %s1 to %zu characters", field,
                required ? "" : "0 or ", max);
    return -1;
  }
  return 0;
}

int api_require(struct api_req *ar, int role) {
  if (!ar->authed) {
    api_problem(ar, 401, "unauthorized", "a bearer token is required");
    return -1;
  }
  if (ar->who.role < role) {
    api_problem(ar, 403, "forbidden", "this needs the %s role", ledger_role_str(role));
    return -1;
  }
  return 0;
}

static int hexv(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

int api_query(struct api_req *ar, const char *key, char *out, size_t cap) {
  h2o_req_t *req = ar->req;
  if (req->query_at == SIZE_MAX)
    return -1;
  const char *q = req->path.base + req->query_at + 1;
  const char *end = req->path.base + req->path.len;
  size_t klen = strlen(key);
  while (q < end) {
    const char *amp = memchr(q, '&', (size_t)(end - q));
    if (amp == NULL)
      amp = end;
    if ((size_t)(amp - q) > klen && memcmp(q, key, klen) == 0 && q[klen] == '=') {
      size_t o = 0;
      for (const char *v = q + klen + 1; v < amp; v++) {
        char c = *v;
        if (c == '+') {
          c = ' ';
        } else if (c == '%' && amp - v >= 3 && hexv(v[1]) >= 0 && hexv(v[2]) >= 0) {
          c = (char)(hexv(v[1]) << 4 | hexv(v[2]));
          v += 2;
        }
        if (o + 1 >= cap || c == 0)
          return -1;
        out[o++] = c;
      }
      out[o] = 0;
      return 0;
    }
    q = amp + 1;
  }
  return -1;
}

static void on_committed(void *arg, const struct ledger_result *res) {
  struct api_req *ar = arg;
  api_commit_cb cb = ar->commit_cb;
  if (!api_alive(ar)) {
    /* The client left; the command still committed (and its rid makes a
     * retry return this same result). */
    api_done(ar);
    return;
  }
  cb(ar, res);
}

void api_commit(struct api_req *ar, struct ledger_cmd *c, api_commit_cb cb) {
  ar->commit_cb = cb;
  int rc = commit_submit(&ar->node->commit, c, on_committed, ar);
  if (rc != 0) {
    /* Refused (queue full, shutting down): the callback still runs, once,
     * with the refusal as the result, so it frees what it owns. */
    struct ledger_result res;
    memset(&res, 0, sizeof res);
    res.rc = rc;
    cb(ar, &res);
  }
}

static void peer_ip(h2o_req_t *req, char *out, size_t cap) {
  struct sockaddr_storage ss;
  out[0] = 0;
  socklen_t len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
  if (len == 0)
    return;
  if (ss.ss_family == AF_INET)
    inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, out, (socklen_t)cap);
  else if (ss.ss_family == AF_INET6)
    inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, out, (socklen_t)cap);
}

static void header_value(h2o_req_t *req, const char *name, char *out, size_t cap) {
  out[0] = 0;
  ssize_t i = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
  if (i >= 0) {
    h2o_iovec_t v = req->headers.entries[i].value;
    if (v.len < cap) {
      memcpy(out, v.base, v.len);
      out[v.len] = 0;
    }
  }
}

static int on_req(h2o_handler_t *self, h2o_req_t *req) {
  struct node *n = ((struct node_handler *)self)->node;
  struct api_req *ar = calloc(1, sizeof *ar);
  if (ar == NULL)
    return -1;
  ar->req = req;
  ar->node = n;
  ar->t0_ns = uv_hrtime();
  ar->guard = h2o_mem_alloc_shared(&req->pool, sizeof *ar->guard, guard_dispose);
  ar->guard->ar = ar;
  peer_ip(req, ar->ip, sizeof ar->ip);
  header_value(req, "x-device-id", ar->device, sizeof ar->device);

  size_t plen = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
  const char *path = req->path.base;
  const struct route *rt = NULL;
  bool path_known = false;
  for (size_t i = 0; i < GM_ARRAY_LEN(routes); i++) {
    int m = match(routes[i].pattern, path, plen, ar->params);
    if (m < 0) {
      api_problem(ar, 404, "not_found", "identifier too long");
      api_done(ar);
      return 0;
    }
    if (m == 0)
      continue;
    path_known = true;
    if (h2o_memis(req->method.base, req->method.len, routes[i].method,
                  strlen(routes[i].method))) {
      rt = &routes[i];
      break;
    }
  }
  if (rt == NULL) {
    if (path_known)
      api_problem(ar, 405, "method_not_allowed", "method not allowed on this path");
    else
      api_problem(ar, 404, "not_found", "no such endpoint");
    api_done(ar);
    return 0;
  }
  if (req->entity.base != NULL && req->entity.len > n->cfg.body_limit) {
    api_problem(ar, 413, "payload_too_large", "the body is over %zu bytes", n->cfg.body_limit);
    api_done(ar);
    return 0;
  }
  if (req->entity.base != NULL && req->entity.len > 0) {
    json_error_t err;
    ar->body = json_loadb(req->entity.base, req->entity.len, JSON_REJECT_DUPLICATES, &err);
    if (ar->body == NULL) {
      api_problem(ar, 400, "bad_json", "line %d column %d: %s", err.line, err.column, err.text);
      api_done(ar);
      return 0;
    }
    if (!json_is_object(ar->body)) {
      api_problem(ar, 400, "bad_json", "the body must be a JSON object");
      api_done(ar);
      return 0;
    }
  }
  ssize_t hi = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
  if (hi >= 0) {
    h2o_iovec_t v = req->headers.entries[hi].value;
    if (v.len < 7 || !h2o_lcstris(v.base, 7, "bearer ", 7) ||
        auth_token_check(n, v.base + 7, v.len - 7, &ar->who) != 0) {
      api_problem(ar, 401, "unauthorized", "the bearer token is invalid or expired");
      api_done(ar);
      return 0;
    }
    ar->authed = true;
  }
  if (rt->min_role != PUBLIC && api_require(ar, rt->min_role) != 0) {
    api_done(ar);
    return 0;
  }
  char idem[129];
  header_value(req, "idempotency-key", idem, sizeof idem);
  auth_request_id(n, ar->authed ? ar->who.user_id : ar->ip, idem, ar->rid);
  ar->has_idem_key = idem[0] != 0;
  if (ar->rid[0] == 0 && n->cluster != NULL) {
    /* In a cluster a command may be proposed twice (a leader change while it
     * was in flight); a request id makes the second one return the first's
     * result instead of applying again. */
    uint8_t r[16];
    randombytes_buf(r, sizeof r);
    memcpy(ar->rid, "rr-", 3);
    gm_hex(ar->rid + 3, r, sizeof r);
  }
  ar->timed = rt->fn == api_verify || rt->fn == api_methods_verify;
  rt->fn(ar);
  return 0;
}

static void on_accept(uv_stream_t *listener, int status) {
  struct node *n = listener->data;
  if (status != 0)
    return;
  uv_tcp_t *conn = malloc(sizeof *conn);
  if (conn == NULL)
    return;
  uv_tcp_init(listener->loop, conn);
  if (uv_accept(listener, (uv_stream_t *)conn) != 0) {
    uv_close((uv_handle_t *)conn, (uv_close_cb)free);
    return;
  }
  /* Verdicts are small and latency-bound: never let Nagle hold them back. */
  uv_tcp_nodelay(conn, 1);
  h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)conn, (uv_close_cb)free);
  h2o_accept(&n->accept_ctx, sock);
}

static SSL_CTX *tls_setup(struct node *n) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == NULL)
    return NULL;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (SSL_CTX_use_certificate_chain_file(ctx, n->cfg.tls_cert) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, n->cfg.tls_key, SSL_FILETYPE_PEM) != 1) {
    GM_ERROR("cannot load TLS certificate or key", "cert=%s key=%s", n->cfg.tls_cert,
             n->cfg.tls_key);
    SSL_CTX_free(ctx);
    return NULL;
  }
  h2o_ssl_register_alpn_protocols(ctx, h2o_http2_alpn_protocols);
  return ctx;
}

int http_start(struct node *n) {
  h2o_config_init(&n->h2o_config);
  /* h2o refuses larger bodies itself (plain 413); up to this size we read the
   * body and answer 413 as problem+json with our own limit. */
  n->h2o_config.max_request_entity_size = n->cfg.body_limit * 4;
  h2o_hostconf_t *host =
      h2o_config_register_host(&n->h2o_config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
  h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
  struct node_handler *h = (struct node_handler *)h2o_create_handler(path, sizeof *h);
  h->super.on_req = on_req;
  h->node = n;
  h2o_context_init(&n->h2o_ctx, n->loop, &n->h2o_config);
  n->accept_ctx.ctx = &n->h2o_ctx;
  n->accept_ctx.hosts = n->h2o_config.hosts;
  if (n->cfg.tls_cert[0]) {
    n->ssl = tls_setup(n);
    if (n->ssl == NULL)
      return GM_ECONFIG;
    n->accept_ctx.ssl_ctx = n->ssl;
  }
  char host_s[NODE_ADDR_MAX];
  int port;
  if (node_addr_parse(n->cfg.http_listen, host_s, sizeof host_s, &port) != 0)
    return GM_ECONFIG;
  struct sockaddr_storage addr;
  if (uv_ip4_addr(host_s, port, (struct sockaddr_in *)&addr) != 0 &&
      uv_ip6_addr(host_s, port, (struct sockaddr_in6 *)&addr) != 0) {
    GM_ERROR("bad listen address", "addr=%s", n->cfg.http_listen);
    return GM_ECONFIG;
  }
  uv_tcp_init(n->loop, &n->listener);
  n->listener.data = n;
  int rc = uv_tcp_bind(&n->listener, (struct sockaddr *)&addr, 0);
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)&n->listener, 1024, on_accept);
  if (rc != 0) {
    GM_ERROR("cannot listen", "addr=%s err=\"%s\"", n->cfg.http_listen, uv_strerror(rc));
    return GM_EIO;
  }
  GM_INFO("http listening", "addr=%s tls=%s", n->cfg.http_listen, n->ssl ? "on" : "off");
  return 0;
}

void http_stop(struct node *n) {
  if (n->listener.loop && !uv_is_closing((uv_handle_t *)&n->listener))
    uv_close((uv_handle_t *)&n->listener, NULL);
  h2o_context_request_shutdown(&n->h2o_ctx);
}

void http_cleanup(struct node *n) {
  h2o_context_dispose(&n->h2o_ctx);
  h2o_config_dispose(&n->h2o_config);
  if (n->ssl)
    SSL_CTX_free(n->ssl);
}
