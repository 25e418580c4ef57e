/*
 * main.c — `gated`, the gate node daemon.
 */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "../lib/err.h"
#include "../lib/log.h"
#include "node.h"

static struct node the_node;

static void usage(void) {
  fprintf(stderr,
          "usage: gated [--config FILE] [--KEY VALUE ...]\n"
          "  --data-dir DIR            where the ledger lives (./data)\n"
          "  --http-listen HOST:PORT   HTTP API (127.0.0.1:8080)\n"
          "  --cluster-listen HOST:PORT, --gossip-listen HOST:PORT, --join HOST:PORT,\n"
          "  --bootstrap               cluster settings\n"
          "  --node-id N, --gate NAME  identity of this gate\n"
          "  --cluster-key-file FILE   64 hex chars; default DATA_DIR/cluster.key\n"
          "every key of configs/gate.example.conf is accepted as --key value.\n"
          "GATE_ADMIN_PASSWORD sets the first admin's password on first start.\n");
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      usage();
      return 0;
    }
  if (sodium_init() < 0) {
    fprintf(stderr, "gated: libsodium failed to initialise\n");
    return 1;
  }
  struct node *n = &the_node;
  node_config_default(&n->cfg);
  char err[512];
  if (node_config_from_args(&n->cfg, argc, argv, err, sizeof err) != 0) {
    fprintf(stderr, "gated: %s\n", err);
    usage();
    return 2;
  }
  enum gm_log_level lvl;
  if (gm_log_level_parse(n->cfg.log_level, &lvl) != 0) {
    fprintf(stderr, "gated: log-level must be debug, info, warn or error\n");
    return 2;
  }
  gm_log_set_level(lvl);
  gm_log_set_clock(node_now_ms);
  n->loop = uv_default_loop();
  uv_loop_configure(n->loop, UV_METRICS_IDLE_TIME);
  int rc = node_start(n);
  if (rc != 0) {
    fprintf(stderr, "gated: cannot start: %s\n", gm_err_msg(rc));
    node_cleanup(n);
    return 1;
  }
  uv_run(n->loop, UV_RUN_DEFAULT);
  node_cleanup(n);
  GM_INFO("stopped", "node_id=%u", n->cfg.node_id);
  return 0;
}
