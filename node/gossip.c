/* gossip.c — the gossip port: SWIM over UDP, sealed with the cluster key. */
#include "gossip.h"

#include <errno.h>
#include <sodium.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "../gossip/prov.h"
#include "../gossip/swim.h"
#include "../gossip/wire.h"
#include "../lib/buf.h"
#include "../lib/err.h"
#include "../lib/log.h"
#include "cluster.h"
#include "node.h"
#include "provisional.h"

#define GOSSIP_TICK_MS 50
#define GOSSIP_META_MS 2000  /* metadata (role, applied index) refreshed at most this often */
#define GOSSIP_RESEED_MS 5000 /* a gate that knows no one asks its Raft peers again */
#define GOSSIP_DIGEST_MS 1000 /* anti-entropy: a digest of provisional admissions to one member */

struct gossip {
  struct node *n;
  uv_udp_t udp;
  uv_timer_t timer;
  bool running;
  int closing;
  void (*done)(void *arg);
  void *done_arg;
  struct swim *swim;
  struct gw_key key;
  uint64_t epoch, counter;
  struct {
    uint64_t id;
    struct gw_replay r;
  } replay[SWIM_MEMBERS_MAX];
  size_t n_replay;
  char addr[NODE_ADDR_MAX];
  uint8_t meta[SWIM_META_MAX];
  size_t meta_len;
  int64_t last_meta_ms, last_seed_ms, last_drop_log_ms, last_digest_ms;
  size_t digest_turn;
  uint64_t rx, tx, send_failed, forged, replayed, malformed;
  uint64_t prov_rx, prov_new, prov_tx;
};

static int64_t mono_ms(void) { return (int64_t)(uv_hrtime() / 1000000); }

/* An epoch larger than any this data dir used before. */
static int epoch_next(struct node *n, uint64_t *out) {
  char path[NODE_PATH_MAX + 32], tmp[NODE_PATH_MAX + 40];
  snprintf(path, sizeof path, "%s/gossip.epoch", n->cfg.data_dir);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  uint64_t prev = 0;
  FILE *f = fopen(path, "r");
  if (f != NULL) {
    if (fscanf(f, "%" SCNu64, &prev) != 1)
      prev = 0;
    fclose(f);
  }
  uint64_t now = (uint64_t)node_now_ms();
  *out = now > prev ? now : prev + 1;
  f = fopen(tmp, "w");
  if (f == NULL || fprintf(f, "%" PRIu64 "\n", *out) < 0 || fflush(f) != 0 ||
      fsync(fileno(f)) != 0) {
    if (f)
      fclose(f);
    GM_ERROR("cannot write the gossip epoch", "path=%s err=\"%s\"", tmp, strerror(errno));
    return GM_EIO;
  }
  fclose(f);
  return rename(tmp, path) == 0 ? 0 : GM_EIO;
}

static int sockaddr_of(const char *addr, struct sockaddr_storage *sa) {
  char host[NODE_ADDR_MAX];
  int port;
  if (node_addr_parse(addr, host, sizeof host, &port) != 0)
    return GM_EINVAL;
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)sa) == 0)
    return 0;
  return uv_ip6_addr(host, port, (struct sockaddr_in6 *)sa) == 0 ? 0 : GM_EINVAL;
}

static void send_sa(struct gossip *g, const struct sockaddr *sa, const uint8_t *body,
                    size_t n) {
  uint8_t pkt[GW_PACKET_MAX];
  struct gw_hdr h = {.from = g->n->cfg.node_id, .epoch = g->epoch, .counter = ++g->counter};
  int len = gw_seal(&g->key, &h, body, n, pkt, sizeof pkt);
  if (len < 0) {
    g->send_failed++;
    return;
  }
  uv_buf_t b = uv_buf_init((char *)pkt, (unsigned)len);
  /* A datagram either leaves now or is lost, as on any network. */
  if (uv_udp_try_send(&g->udp, &b, 1, sa) < 0)
    g->send_failed++;
  else
    g->tx++;
}

static void on_swim_send(void *arg, const char *addr, const uint8_t *body, size_t n) {
  struct gossip *g = arg;
  struct sockaddr_storage sa;
  if (sockaddr_of(addr, &sa) != 0) {
    g->send_failed++;
    return;
  }
  send_sa(g, (const struct sockaddr *)&sa, body, n);
}

static void on_prov_new(void *arg, const struct prov_rec *r) {
  (void)r;
  ((struct gossip *)arg)->prov_new++;
}

/* A provisional-admission message: a push is stored, a digest answered. */
static int prov_recv(struct gossip *g, const uint8_t *body, size_t n, const struct sockaddr *from) {
  struct prov *store = provisional_store(g->n);
  if (store == NULL)
    return 0;
  uint8_t reply[GW_BODY_MAX];
  size_t rlen = 0;
  int rc = prov_msg_recv(store, body, n, on_prov_new, g, reply, sizeof reply, &rlen);
  if (rc == GM_EFULL) {
    GM_WARN("provisional store full: records from gossip dropped", "held=%zu",
            prov_count(store));
    return 0;
  }
  if (rc != 0)
    return rc;
  g->prov_rx++;
  if (rlen > 0) {
    send_sa(g, from, reply, rlen);
    g->prov_tx++;
  }
  return 0;
}

void gossip_push_prov(struct node *n, const struct prov_rec *const *recs, size_t k) {
  struct gossip *g = n->gossip;
  if (g == NULL || !g->running || k == 0)
    return;
  const struct swim_member *ms;
  size_t count = swim_members(g->swim, &ms);
  uint8_t body[GW_BODY_MAX];
  for (size_t done = 0; done < k;) {
    size_t taken;
    int len = prov_msg_push(recs + done, k - done, body, sizeof body, &taken);
    if (len < 0)
      return;
    for (size_t i = 0; i < count; i++)
      if (ms[i].state != SWIM_DEAD && ms[i].id != n->cfg.node_id) {
        on_swim_send(g, ms[i].addr, body, (size_t)len);
        g->prov_tx++;
      }
    done += taken;
  }
}

/* Anti-entropy: the store's digest to the next live member in turn. */
static void send_digest(struct gossip *g) {
  struct prov *store = provisional_store(g->n);
  if (store == NULL)
    return;
  const struct swim_member *ms;
  size_t count = swim_members(g->swim, &ms);
  for (size_t tries = 0; tries < count; tries++) {
    const struct swim_member *m = &ms[g->digest_turn++ % count];
    if (m->state == SWIM_ALIVE && m->id != g->n->cfg.node_id) {
      uint8_t body[GW_BODY_MAX];
      int len = prov_msg_digest(store, body, sizeof body);
      if (len > 0) {
        on_swim_send(g, m->addr, body, (size_t)len);
        g->prov_tx++;
      }
      return;
    }
  }
}

static void on_swim_changed(void *arg, const struct swim_member *m) {
  (void)arg;
  if (m->state != SWIM_ALIVE)
    GM_INFO("gossip: member state", "node=%" PRIu64 " state=%s incarnation=%" PRIu64, m->id,
            swim_state_str(m->state), m->inc);
}

static struct gw_replay *replay_of(struct gossip *g, uint64_t id, bool create) {
  for (size_t i = 0; i < g->n_replay; i++)
    if (g->replay[i].id == id)
      return &g->replay[i].r;
  if (!create || g->n_replay == SWIM_MEMBERS_MAX)
    return NULL;
  g->replay[g->n_replay].id = id;
  memset(&g->replay[g->n_replay].r, 0, sizeof g->replay[g->n_replay].r);
  return &g->replay[g->n_replay++].r;
}

static void dropped(struct gossip *g, uint64_t *counter, const char *why,
                    const struct sockaddr *from) {
  (*counter)++;
  int64_t now = mono_ms();
  if (now - g->last_drop_log_ms < 1000)
    return;
  g->last_drop_log_ms = now;
  char ip[64] = "?";
  if (from && from->sa_family == AF_INET)
    uv_ip4_name((const struct sockaddr_in *)from, ip, sizeof ip);
  else if (from && from->sa_family == AF_INET6)
    uv_ip6_name((const struct sockaddr_in6 *)from, ip, sizeof ip);
  GM_WARN("gossip: datagram dropped", "reason=%s from=%s forged=%" PRIu64 " replayed=%" PRIu64
          " malformed=%" PRIu64, why, ip, g->forged, g->replayed, g->malformed);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  static char space[65536];
  (void)h, (void)suggested;
  *buf = uv_buf_init(space, sizeof space);
}

static void on_recv(uv_udp_t *u, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *from,
                    unsigned flags) {
  struct gossip *g = u->data;
  if (nread <= 0 || from == NULL || g->closing)
    return;
  if (flags & UV_UDP_PARTIAL) {
    dropped(g, &g->malformed, "truncated", from);
    return;
  }
  struct gw_hdr h;
  uint8_t body[GW_BODY_MAX];
  const uint8_t *p = (const uint8_t *)buf->base;
  int len = gw_open(&g->key, p, (size_t)nread, &h, body);
  if (len < 0) {
    dropped(g, &g->forged, len == GM_ECRYPTO ? "does not verify" : "not a gossip packet", from);
    return;
  }
  struct gw_replay *r = replay_of(g, h.from, true);
  if (r == NULL || gw_replay_accept(r, h.epoch, h.counter) != 0) {
    dropped(g, &g->replayed, "replayed", from);
    return;
  }
  if (len > 0 && body[0] >= PROV_MSG_PUSH) {
    if (prov_recv(g, body, (size_t)len, from) != 0)
      dropped(g, &g->malformed, "malformed", from);
    else
      g->rx++;
    return;
  }
  if (swim_recv(g->swim, body, (size_t)len, mono_ms()) != 0) {
    dropped(g, &g->malformed, "malformed", from);
    return;
  }
  g->rx++;
}

static void seed_cb(struct node *n, const char *addr) { gossip_seed(n, addr); }

static void refresh_meta(struct gossip *g, int64_t now) {
  struct cluster_summary cs;
  cluster_summary(g->n, &cs);
  uint8_t meta[17];
  meta[0] = cs.state;
  gm_le64_put(meta + 1, cs.applied);
  gm_le64_put(meta + 9, cs.leader);
  /* The applied index moves all the time: spread it at most every few
   * seconds, the role and leader at once. */
  bool role_changed = g->meta_len != sizeof meta || g->meta[0] != meta[0] ||
                      memcmp(g->meta + 9, meta + 9, 8) != 0;
  bool moved = g->meta_len == sizeof meta && memcmp(g->meta + 1, meta + 1, 8) != 0;
  if (!role_changed && !(moved && now - g->last_meta_ms >= GOSSIP_META_MS))
    return;
  memcpy(g->meta, meta, sizeof meta);
  g->meta_len = sizeof meta;
  g->last_meta_ms = now;
  swim_set_meta(g->swim, meta, sizeof meta, now);
}

static void on_tick(uv_timer_t *t) {
  struct gossip *g = t->data;
  int64_t now = mono_ms();
  refresh_meta(g, now);
  if (swim_count(g->swim, SWIM_ALIVE) <= 1 && now - g->last_seed_ms >= GOSSIP_RESEED_MS) {
    g->last_seed_ms = now;
    if (g->n->cfg.join[0])
      gossip_seed(g->n, g->n->cfg.join);
    cluster_each_peer(g->n, seed_cb);
  }
  swim_tick(g->swim, now);
  if (now - g->last_digest_ms >= GOSSIP_DIGEST_MS) {
    g->last_digest_ms = now;
    send_digest(g);
  }
}

void gossip_seed(struct node *n, const char *addr) {
  struct gossip *g = n->gossip;
  if (g != NULL && strcmp(addr, g->addr) != 0)
    swim_join(g->swim, addr, mono_ms());
}

int gossip_start(struct node *n) {
  struct gossip *g = calloc(1, sizeof *g);
  if (g == NULL)
    return GM_ENOMEM;
  n->gossip = g;
  g->n = n;
  const char *addr = n->cfg.gossip_listen[0] ? n->cfg.gossip_listen : n->cfg.cluster_listen;
  snprintf(g->addr, sizeof g->addr, "%s", addr);
  struct sockaddr_storage sa;
  int rc;
  if (sockaddr_of(g->addr, &sa) != 0) {
    GM_ERROR("gossip address is not HOST:PORT", "addr=%s", g->addr);
    return GM_ECONFIG;
  }
  if ((rc = epoch_next(n, &g->epoch)) != 0)
    return rc;
  gw_key_derive(&g->key, n->cluster_key);
  struct swim_config sc;
  swim_config_default(&sc);
  struct swim_io io = {.arg = g, .send = on_swim_send, .changed = on_swim_changed};
  uint64_t seed;
  randombytes_buf(&seed, sizeof seed);
  g->swim = swim_create(&sc, n->cfg.node_id, g->addr, seed, &io, mono_ms());
  if (g->swim == NULL)
    return GM_ENOMEM;
  uv_udp_init(n->loop, &g->udp);
  g->udp.data = g;
  int urc = uv_udp_bind(&g->udp, (const struct sockaddr *)&sa, 0);
  if (urc == 0)
    urc = uv_udp_recv_start(&g->udp, on_alloc, on_recv);
  if (urc != 0) {
    GM_ERROR("cannot open the gossip port", "addr=%s err=\"%s\"", g->addr, uv_strerror(urc));
    uv_close((uv_handle_t *)&g->udp, NULL);
    return GM_EIO;
  }
  uv_timer_init(n->loop, &g->timer);
  g->timer.data = g;
  uv_timer_start(&g->timer, on_tick, GOSSIP_TICK_MS, GOSSIP_TICK_MS);
  g->running = true;
  GM_INFO("gossip listening", "addr=%s epoch=%" PRIu64, g->addr, g->epoch);
  return 0;
}

static void on_closed(uv_handle_t *h) {
  struct gossip *g = h->data;
  if (--g->closing == 0 && g->done)
    g->done(g->done_arg);
}

void gossip_stop(struct node *n, void (*done)(void *arg), void *arg) {
  struct gossip *g = n->gossip;
  if (g == NULL || !g->running || g->closing) {
    if (done)
      done(arg);
    return;
  }
  g->done = done;
  g->done_arg = arg;
  g->closing = 2;
  uv_timer_stop(&g->timer);
  uv_close((uv_handle_t *)&g->udp, on_closed);
  uv_close((uv_handle_t *)&g->timer, on_closed);
}

void gossip_free(struct node *n) {
  struct gossip *g = n->gossip;
  if (g == NULL)
    return;
  swim_destroy(g->swim);
  gw_key_wipe(&g->key);
  free(g);
  n->gossip = NULL;
}

json_t *gossip_status(struct node *n) {
  struct gossip *g = n->gossip;
  if (g == NULL)
    return json_null();
  json_t *o = json_object(), *ms = json_array();
  const struct swim_member *m;
  size_t k = swim_members(g->swim, &m);
  for (size_t i = 0; i < k; i++) {
    json_t *j = json_object();
    json_object_set_new(j, "id", json_integer((json_int_t)m[i].id));
    json_object_set_new(j, "address", json_string(m[i].addr));
    json_object_set_new(j, "state", json_string(swim_state_str(m[i].state)));
    json_object_set_new(j, "incarnation", json_integer((json_int_t)m[i].inc));
    if (m[i].meta_len == 17) {
      static const char *const names[] = {"none", "follower", "candidate", "leader"};
      uint8_t st = m[i].meta[0];
      json_object_set_new(j, "raft_state", json_string(st <= 3 ? names[st] : "unknown"));
      json_object_set_new(j, "applied_index", json_integer((json_int_t)gm_le64_get(m[i].meta + 1)));
      uint64_t leader = gm_le64_get(m[i].meta + 9);
      json_object_set_new(j, "leader", leader ? json_integer((json_int_t)leader) : json_null());
    }
    json_array_append_new(ms, j);
  }
  json_object_set_new(o, "address", json_string(g->addr));
  json_object_set_new(o, "alive", json_integer((json_int_t)swim_count(g->swim, SWIM_ALIVE)));
  json_object_set_new(o, "members", ms);
  return o;
}

void gossip_metrics(struct node *n, char *out, size_t cap) {
  struct gossip *g = n->gossip;
  if (g == NULL) {
    out[0] = 0;
    return;
  }
  snprintf(out, cap,
           "# TYPE gate_gossip_members gauge\n"
           "gate_gossip_members{state=\"alive\"} %zu\ngate_gossip_members{state=\"suspect\"} %zu\n"
           "gate_gossip_members{state=\"dead\"} %zu\n"
           "# TYPE gate_gossip_datagrams_total counter\n"
           "gate_gossip_datagrams_total{result=\"received\"} %" PRIu64 "\n"
           "gate_gossip_datagrams_total{result=\"sent\"} %" PRIu64 "\n"
           "gate_gossip_datagrams_total{result=\"send_failed\"} %" PRIu64 "\n"
           "gate_gossip_datagrams_total{result=\"forged\"} %" PRIu64 "\n"
           "gate_gossip_datagrams_total{result=\"replayed\"} %" PRIu64 "\n"
           "gate_gossip_datagrams_total{result=\"malformed\"} %" PRIu64 "\n",
           swim_count(g->swim, SWIM_ALIVE), swim_count(g->swim, SWIM_SUSPECT),
           swim_count(g->swim, SWIM_DEAD), g->rx, g->tx, g->send_failed, g->forged, g->replayed,
           g->malformed);
}
