/*
 * hello.c — the peer for the HTTP benchmark: a raw h2o handler on one libuv
 * loop, set up exactly like gated's server (same accept path, TCP_NODELAY),
 * answering every request with a fixed 200. What gated achieves over this is
 * the cost of its own work per request.
 */
#define H2O_USE_LIBUV 1
#include <h2o.h>
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

static h2o_globalconf_t config;
static h2o_context_t ctx;
static h2o_accept_ctx_t accept_ctx;

static int on_req(h2o_handler_t *self, h2o_req_t *req) {
  static const char body[] = "{\"hello\":true}";
  req->res.status = 200;
  req->res.reason = "OK";
  h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                 H2O_STRLIT("application/json"));
  h2o_send_inline(req, body, sizeof body - 1);
  return 0;
}

static void on_accept(uv_stream_t *listener, int status) {
  if (status != 0)
    return;
  uv_tcp_t *conn = malloc(sizeof *conn);
  uv_tcp_init(listener->loop, conn);
  if (uv_accept(listener, (uv_stream_t *)conn) != 0) {
    uv_close((uv_handle_t *)conn, (uv_close_cb)free);
    return;
  }
  uv_tcp_nodelay(conn, 1);
  h2o_accept(&accept_ctx, h2o_uv_socket_create((uv_stream_t *)conn, (uv_close_cb)free));
}

int main(int argc, char **argv) {
  int port = argc > 1 ? atoi(argv[1]) : 18999;
  h2o_config_init(&config);
  h2o_hostconf_t *host = h2o_config_register_host(&config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
  h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
  h2o_create_handler(path, sizeof(h2o_handler_t))->on_req = on_req;
  uv_loop_t *loop = uv_default_loop();
  h2o_context_init(&ctx, loop, &config);
  accept_ctx.ctx = &ctx;
  accept_ctx.hosts = config.hosts;
  uv_tcp_t listener;
  struct sockaddr_in addr;
  uv_tcp_init(loop, &listener);
  uv_ip4_addr("127.0.0.1", port, &addr);
  if (uv_tcp_bind(&listener, (struct sockaddr *)&addr, 0) != 0 ||
      uv_listen((uv_stream_t *)&listener, 1024, on_accept) != 0) {
    fprintf(stderr, "hello: cannot listen on %d\n", port);
    return 1;
  }
  return uv_run(loop, UV_RUN_DEFAULT);
}
