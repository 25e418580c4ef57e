/*
 * cluster.c — Raft membership, the cluster port, forwarding (see cluster.h).
 *
 * Everything here runs on the node's loop thread.
 */
#include "cluster.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <raft.h>
#include <raft/uv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../lib/assert.h"
#include "../lib/codec.h"
#include "../lib/buf.h"
#include "../lib/err.h"
#include "../lib/log.h"
#include "../lib/mpk.h"
#include "../methods/keys.h"
#include "../raft/entry.h"
#include "../raft/fsm.h"
#include "../raft/secure.h"
#include "node.h"

#define CONN_HS_TIMEOUT_MS 5000
#define RPC_MSG_MAX ((size_t)16 << 20)
#define RPC_TIMEOUT_MS 3000
#define TICK_MS 50
#define MEMBERS_MAX 64
#define FWD_MAX_CMDS 1024
/* Audit batches waiting for a leader (keep items), in bytes, and the most
 * the file of those past their deadline holds; past this a new one is
 * dropped and counted (gate_audit_dropped_total). */
#define KEEP_BYTES_MAX ((uint64_t)64 << 20)
#define SPOOL_FILE "audit.held"

enum { CK_RAFT = 1, CK_RPC = 2 };
enum { CS_HELLO, CS_HEADER, CS_AUTH, CS_OPEN, CS_CLOSED };

struct cluster;

struct conn {
  struct cluster *cl;
  uint64_t serial;
  uv_tcp_t tcp;
  uv_connect_t connect_req;
  bool client;
  int state;
  int kind;
  int closing_handles;
  struct sec_hs hs;
  struct sec_chan ch;
  struct gm_buf in;    /* bytes received, not yet consumed */
  struct gm_buf plain; /* RPC: opened bytes not yet parsed into messages */
  uint64_t peer_id;
  char peer_addr[NODE_ADDR_MAX];
  char remote[64];
  int64_t opened_ms;
  bool got_hello; /* the peer's handshake arrived */
  /* Raft traffic: libraft holds raft_end, the relay reads and writes mine. */
  uv_pipe_t *raft_end;
  uv_pipe_t mine;
  bool mine_open;
  struct raft_uv_connect *raft_req;
  raft_uv_connect_cb raft_cb;
  struct conn *next;
};

/* A command on its way to a commit, with its deadline. */
struct citem {
  struct commit_item it;
  int64_t deadline_ms;
  uint64_t queued_ns; /* uv_hrtime() when it reached the cluster queue */
  bool answered;      /* in an entry that timed out: answered already */
};

/* An entry proposed by this leader, waiting to apply. */
struct lbatch {
  struct raft_apply req;
  struct cluster *cl;
  uint64_t token;
  uint64_t index; /* of the entry, once applied */
  struct citem *items;
  size_t n;
  bool applied;
  bool answered;       /* its commands were answered early (timed out) */
  int64_t deadline_ms; /* latest deadline of its commands */
  uint64_t proposed_ns;
  struct lbatch *next;
};

/* An RPC sent, waiting for its reply. */
struct call {
  uint64_t id;
  uint64_t conn_serial;
  int64_t deadline_ms;
  void (*cb)(struct cluster *cl, struct call *call, const msgpack_object *reply);
  uint8_t *pending; /* the request, while its connection is still opening */
  size_t pending_len;
  struct citem *items; /* forwarded commands */
  size_t n;
  uint64_t member; /* ping target */
  void *ctx;
  struct call *next;
};

/* Commands forwarded to this leader by a follower, until answered. */
struct fwd_in {
  struct cluster *cl;
  uint64_t conn_serial;
  uint64_t rpc_id;
  size_t n;
  size_t remaining;
  uint64_t index; /* highest entry index among the commands */
  struct ledger_result *res;
};

/* Results of forwarded commands, held until this replica has applied the
 * entry they are in (so the client reads its own write here). */
struct waiter {
  struct citem item;
  struct ledger_result res;
  uint64_t index;
};

struct member {
  uint64_t id;
  int64_t last_seen_ms;
  uint64_t applied;
  bool seen;
};

struct cluster {
  struct node *n;
  uv_loop_t *loop;
  uint64_t id;
  char address[NODE_ADDR_MAX];
  uint8_t key[32];
  uv_tcp_t listener;
  bool listening;
  struct conn *conns;
  uint64_t next_serial;
  struct raft raft;
  struct raft_io io;
  struct raft_uv_transport transport;
  struct gm_fsm fsm;
  raft_uv_accept_cb accept_cb;
  bool raft_started;
  /* commands waiting for a leader, in order */
  struct citem *queue;
  size_t n_queue, cap_queue;
  uv_idle_t kick; /* runs the queue at the next loop iteration, without waiting in poll */
  uv_timer_t tick;
  int64_t last_ping_ms;
  uint64_t next_token;
  struct lbatch *batches;
  uint64_t completing_index; /* entry index of the results being handed out */
  struct waiter *waiters;
  size_t n_waiters, cap_waiters;
  size_t inflight; /* commands handed to Raft or a leader, not yet answered */
  struct call *calls;
  uint64_t next_call;
  /* joining */
  bool joined;
  char join_target[NODE_ADDR_MAX];
  int64_t next_join_ms;
  /* roles, on the leader */
  struct member members[MEMBERS_MAX];
  size_t n_members;
  bool changing;
  struct raft_change change;
  bool bootstrapped_ledger;
  /* stopping */
  bool stopping;
  int closing_handles;
  void (*stopped)(void *arg);
  void *stopped_arg;
  /* counters for /metrics */
  uint64_t entries_proposed, cmds_proposed, cmds_forwarded, frames_dropped, conns_refused;
  uint64_t retries, no_quorum;
  /* audit batches (keep items): in flight, their bytes, dropped, and those
   * the start read back from SPOOL_FILE */
  size_t keeping;
  uint64_t keep_bytes, audit_dropped, audit_requeued;
  /* SPOOL_FILE: the audit batches that waited past their deadline, appended
   * (spool_fd, -1 until needed), synced on the threadpool within a tick */
  int spool_fd;
  uint64_t spool_bytes;
  bool spool_dirty, spool_syncing;
  uv_fs_t spool_req;
  int64_t spool_warned_ms; /* a batch that cannot be appended is tried each tick */
  int64_t leader_contact_ms; /* the last ping from a leader (they ping every second) */
  int64_t last_refusal_log_ms;
  /* erasure on disk (see cluster.h) */
  struct {
    bool armed;              /* snapshot threshold lowered, waiting for one */
    uint64_t arm_erase;      /* the last erasure the armed snapshot covers */
    uint64_t arm_index;      /* applied index when armed */
    uint64_t padded_for;     /* erasure index pads were proposed for (leader) */
    uint64_t done_through;   /* erasures up to this index are off the disk */
    uint64_t rounds;         /* purges done */
    uint64_t pads;           /* pad entries proposed */
  } purge;
};

static int64_t now_ms(void) { return node_now_ms(); }
static uint64_t clock_us(void) { return uv_hrtime() / 1000; }

/* ------------------------------------------------------------------ utils */

static int addr_to_sockaddr(const char *addr, struct sockaddr_storage *ss) {
  char host[NODE_ADDR_MAX];
  int port;
  if (node_addr_parse(addr, host, sizeof host, &port) != 0)
    return GM_EINVAL;
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0)
    return 0;
  if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0)
    return 0;
  return GM_EINVAL;
}

void cluster_join_token(const uint8_t key[32], char *out, size_t cap) {
  char b64[64];
  gm_b64url_encode(b64, sizeof b64, key, 32);
  snprintf(out, cap, "gmj1.%s", b64);
}

int cluster_token_key(const char *token, uint8_t key[32]) {
  if (strncmp(token, "gmj1.", 5) != 0)
    return GM_EINVAL;
  uint8_t tmp[48];
  long n = gm_b64url_decode(tmp, sizeof tmp, token + 5, strlen(token + 5));
  if (n != 32)
    return GM_EINVAL;
  memcpy(key, tmp, 32);
  sodium_memzero(tmp, sizeof tmp);
  return 0;
}

bool cluster_mode(const struct node_config *cfg) {
  if (cfg->bootstrap || cfg->join[0])
    return true;
  char path[NODE_PATH_MAX + 32];
  snprintf(path, sizeof path, "%s/raft", cfg->data_dir);
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ------------------------------------------------------------ connections */

static void conn_close(struct conn *c);
static void conn_on_plain(struct conn *c, const uint8_t *p, size_t n);
static void conn_opened(struct conn *c);
static void rpc_dispatch(struct conn *c, const msgpack_object *msg);

struct wreq {
  uv_write_t req;
  size_t len;
  uint8_t data[];
};

static void on_written(uv_write_t *req, int status) {
  (void)status;
  free(req);
}

/* Writes a copy of p[0..n) to s; -1 when it cannot. */
static int stream_write(uv_stream_t *s, const void *p, size_t n) {
  struct wreq *w = malloc(sizeof *w + n);
  if (w == NULL)
    return -1;
  memcpy(w->data, p, n);
  w->len = n;
  uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)n);
  if (uv_write(&w->req, s, &b, 1, on_written) != 0) {
    free(w);
    return -1;
  }
  return 0;
}

static void tcp_write(struct conn *c, const void *p, size_t n) {
  if (c->state != CS_CLOSED && stream_write((uv_stream_t *)&c->tcp, p, n) != 0)
    conn_close(c);
}

/* Seals plaintext into frames and writes them. */
static void conn_send(struct conn *c, const uint8_t *p, size_t n) {
  if (c->state == CS_CLOSED)
    return;
  size_t frames = (n + SEC_FRAME_MAX - 1) / SEC_FRAME_MAX;
  size_t total = n + frames * SEC_OVERHEAD;
  struct wreq *w = malloc(sizeof *w + total);
  if (w == NULL) {
    conn_close(c);
    return;
  }
  size_t off = 0, out = 0;
  while (off < n) {
    size_t chunk = n - off > SEC_FRAME_MAX ? SEC_FRAME_MAX : n - off;
    sec_seal(&c->ch, p + off, chunk, w->data + out);
    off += chunk;
    out += chunk + SEC_OVERHEAD;
  }
  w->len = total;
  uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)total);
  if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
    free(w);
    conn_close(c);
  }
}

/* One RPC message: u32 length | msgpack. */
static void conn_send_msg(struct conn *c, const struct mpk_w *w) {
  size_t n = w->sb.size;
  uint8_t *p = malloc(4 + n);
  if (p == NULL) {
    conn_close(c);
    return;
  }
  gm_le32_put(p, (uint32_t)n);
  memcpy(p + 4, w->sb.data, n);
  conn_send(c, p, 4 + n);
  free(p);
}

static void fail_calls_of(struct cluster *cl, uint64_t serial);

static void on_handle_closed(uv_handle_t *h) {
  struct conn *c = h->data;
  if (--c->closing_handles > 0)
    return;
  struct cluster *cl = c->cl;
  for (struct conn **pp = &cl->conns; *pp; pp = &(*pp)->next)
    if (*pp == c) {
      *pp = c->next;
      break;
    }
  gm_buf_free(&c->in);
  gm_buf_free(&c->plain);
  sec_chan_wipe(&c->ch);
  free(c);
  if (cl->stopping && cl->conns == NULL && cl->closing_handles == 0 && cl->stopped) {
    void (*done)(void *) = cl->stopped;
    cl->stopped = NULL;
    done(cl->stopped_arg);
  }
}

static void conn_close(struct conn *c) {
  if (c->state == CS_CLOSED)
    return;
  bool was_open = c->state == CS_OPEN;
  c->state = CS_CLOSED;
  if (c->client && !was_open && c->got_hello) {
    /* The peer answered our handshake, then hung up instead of opening: it
     * could not read our first frame, so we hold another cluster key. */
    int64_t now = now_ms();
    if (now - c->cl->last_refusal_log_ms > 10000) {
      c->cl->last_refusal_log_ms = now;
      GM_WARN("the peer refused the handshake: this gate's cluster key or join token does not "
              "match the cluster's", "peer=%s", c->remote);
    }
  }
  if (c->raft_req != NULL) {
    struct raft_uv_connect *req = c->raft_req;
    c->raft_req = NULL;
    c->raft_cb(req, NULL, RAFT_NOCONNECTION);
  }
  c->closing_handles = 1;
  uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
  if (c->mine_open) {
    c->mine_open = false;
    c->closing_handles++;
    uv_close((uv_handle_t *)&c->mine, on_handle_closed);
  }
  if (c->kind == CK_RPC)
    fail_calls_of(c->cl, c->serial);
  if (!was_open)
    GM_DEBUG("cluster connection closed before it opened", "remote=%s", c->remote);
}

static void conn_reject(struct conn *c, const char *why) {
  c->cl->conns_refused++;
  c->cl->frames_dropped++;
  GM_WARN("cluster: bytes from a peer dropped", "remote=%s why=\"%s\"", c->remote, why);
  conn_close(c);
}

static struct conn *conn_new(struct cluster *cl, bool client) {
  struct conn *c = calloc(1, sizeof *c);
  if (c == NULL)
    return NULL;
  c->cl = cl;
  c->serial = ++cl->next_serial;
  c->client = client;
  c->state = CS_HELLO;
  c->opened_ms = now_ms();
  gm_buf_init(&c->in);
  gm_buf_init(&c->plain);
  uv_tcp_init(cl->loop, &c->tcp);
  c->tcp.data = c;
  c->next = cl->conns;
  cl->conns = c;
  sec_hs_init(&c->hs, client);
  return c;
}

static void send_auth(struct conn *c) {
  struct mpk_w w;
  mpk_w_init(&w);
  mpk_map(&w, 3);
  mpk_kv_u64(&w, "k", (uint64_t)c->kind);
  mpk_kv_u64(&w, "id", c->cl->id);
  mpk_kv_str(&w, "a", c->cl->address);
  conn_send_msg(c, &w);
  mpk_w_free(&w);
}

/* The first message each side sends after the headers: who it is and what
 * the connection carries. Opening it at all proves the cluster key. */
static int read_auth(struct conn *c, const msgpack_object *m) {
  int64_t kind = 0, id = 0;
  if (mpk_get_i64(m, "k", &kind) != 0 || mpk_get_i64(m, "id", &id) != 0 ||
      mpk_get_str(m, "a", c->peer_addr, sizeof c->peer_addr) != 0 ||
      (kind != CK_RAFT && kind != CK_RPC) || id <= 0)
    return GM_EDECODE;
  if (c->client && kind != c->kind)
    return GM_EDECODE;
  c->kind = (int)kind;
  c->peer_id = (uint64_t)id;
  return 0;
}

/* Handshake and frames: consume what c->in holds. */
static void conn_process(struct conn *c) {
  struct cluster *cl = c->cl;
  size_t off = 0;
  while (c->state != CS_CLOSED) {
    uint8_t *p = c->in.ptr + off;
    size_t avail = c->in.len - off;
    if (c->state == CS_HELLO) {
      /* client: server HELLO + header; server: client HELLO */
      size_t need = c->client ? SEC_HELLO_LEN + SEC_HEADER_LEN : SEC_HELLO_LEN;
      if (avail < need)
        break;
      uint8_t header[SEC_HEADER_LEN];
      if (sec_hs_finish(&c->hs, p, cl->key, &c->ch, header) != 0) {
        conn_reject(c, "not a gate handshake");
        break;
      }
      c->got_hello = true;
      if (c->client) {
        if (sec_chan_rx_start(&c->ch, p + SEC_HELLO_LEN) != 0) {
          conn_reject(c, "bad stream header");
          break;
        }
        tcp_write(c, header, sizeof header);
        send_auth(c);
        c->state = CS_AUTH;
      } else {
        uint8_t out[SEC_HELLO_LEN + SEC_HEADER_LEN];
        sec_hs_hello(&c->hs, out);
        memcpy(out + SEC_HELLO_LEN, header, SEC_HEADER_LEN);
        tcp_write(c, out, sizeof out);
        c->state = CS_HEADER;
      }
      off += need;
      continue;
    }
    if (c->state == CS_HEADER) {
      if (avail < SEC_HEADER_LEN)
        break;
      if (sec_chan_rx_start(&c->ch, p) != 0) {
        conn_reject(c, "bad stream header");
        break;
      }
      off += SEC_HEADER_LEN;
      c->state = CS_AUTH;
      continue;
    }
    bool bad;
    size_t flen = sec_frame_len(p, avail, &bad);
    if (bad) {
      conn_reject(c, "impossible frame length");
      break;
    }
    if (flen == 0)
      break;
    uint8_t *m = malloc(flen);
    size_t mlen = 0;
    if (m == NULL || sec_open(&c->ch, p, flen, m, &mlen) != 0) {
      free(m);
      conn_reject(c, c->state == CS_AUTH
                         ? "first frame does not authenticate (wrong cluster key?)"
                         : "frame does not authenticate (forged, replayed or damaged)");
      break;
    }
    off += flen;
    conn_on_plain(c, m, mlen);
    free(m);
  }
  if (c->state != CS_CLOSED && off > 0) {
    memmove(c->in.ptr, c->in.ptr + off, c->in.len - off);
    c->in.len -= off;
  }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  buf->base = malloc(suggested);
  buf->len = buf->base ? suggested : 0;
}

static void on_tcp_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct conn *c = s->data;
  if (nread < 0) {
    free(buf->base);
    conn_close(c);
    return;
  }
  if (nread > 0 && c->state != CS_CLOSED) {
    if (c->in.len + (size_t)nread > RPC_MSG_MAX + 4 * SEC_OVERHEAD ||
        gm_buf_append(&c->in, buf->base, (size_t)nread) != 0)
      conn_reject(c, "too much unconsumed input");
    else
      conn_process(c);
  }
  free(buf->base);
}

/* Plaintext from the peer. */
static void conn_on_plain(struct conn *c, const uint8_t *p, size_t n) {
  if (c->state == CS_OPEN && c->kind == CK_RAFT) {
    if (c->mine_open && stream_write((uv_stream_t *)&c->mine, p, n) != 0)
      conn_close(c);
    return;
  }
  if (gm_buf_append(&c->plain, p, n) != 0) {
    conn_close(c);
    return;
  }
  size_t off = 0;
  while (c->state != CS_CLOSED && c->plain.len - off >= 4) {
    const uint8_t *q = c->plain.ptr + off;
    size_t len = (size_t)q[0] | (size_t)q[1] << 8 | (size_t)q[2] << 16 | (size_t)q[3] << 24;
    if (len == 0 || len > RPC_MSG_MAX) {
      conn_reject(c, "bad message length");
      return;
    }
    if (c->plain.len - off < 4 + len)
      break;
    struct mpk_doc d;
    if (mpk_doc_parse(&d, q + 4, len) != 0 || d.root->type != MSGPACK_OBJECT_MAP) {
      conn_reject(c, "message is not a msgpack map");
      return;
    }
    off += 4 + len;
    if (c->state == CS_AUTH) {
      if (read_auth(c, d.root) != 0) {
        mpk_doc_free(&d);
        conn_reject(c, "bad hello message");
        return;
      }
      mpk_doc_free(&d);
      if (!c->client)
        send_auth(c);
      conn_opened(c);
      /* Raft bytes may follow the hello in the same frame. */
      if (c->state == CS_OPEN && c->kind == CK_RAFT && c->plain.len > off) {
        size_t rest = c->plain.len - off;
        uint8_t *tmp = malloc(rest);
        if (tmp) {
          memcpy(tmp, c->plain.ptr + off, rest);
          c->plain.len = 0;
          conn_on_plain(c, tmp, rest);
          free(tmp);
        }
        return;
      }
      continue;
    }
    rpc_dispatch(c, d.root);
    mpk_doc_free(&d);
  }
  if (c->state != CS_CLOSED && off > 0) {
    memmove(c->plain.ptr, c->plain.ptr + off, c->plain.len - off);
    c->plain.len -= off;
  }
}

/* ------------------------------------------------------- raft transport */

static void on_mine_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct conn *c = s->data;
  if (nread < 0) {
    free(buf->base);
    conn_close(c); /* libraft closed its end */
    return;
  }
  if (nread > 0)
    conn_send(c, (const uint8_t *)buf->base, (size_t)nread);
  free(buf->base);
}

/* Gives libraft the plaintext end of a socketpair for this connection. */
static int raft_pipe(struct conn *c) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    return GM_EIO;
  c->raft_end = raft_malloc(sizeof *c->raft_end);
  if (c->raft_end == NULL) {
    close(fds[0]);
    close(fds[1]);
    return GM_ENOMEM;
  }
  uv_pipe_init(c->cl->loop, &c->mine, 0);
  c->mine.data = c;
  uv_pipe_open(&c->mine, fds[0]);
  c->mine_open = true;
  uv_pipe_init(c->cl->loop, c->raft_end, 0);
  uv_pipe_open(c->raft_end, fds[1]);
  uv_read_start((uv_stream_t *)&c->mine, on_alloc, on_mine_read);
  return 0;
}

static void conn_opened(struct conn *c) {
  struct cluster *cl = c->cl;
  c->state = CS_OPEN;
  if (c->kind != CK_RAFT)
    return;
  if (raft_pipe(c) != 0) {
    conn_close(c);
    return;
  }
  uv_stream_t *s = (uv_stream_t *)c->raft_end;
  c->raft_end = NULL;
  if (c->client) {
    struct raft_uv_connect *req = c->raft_req;
    c->raft_req = NULL;
    if (req != NULL)
      c->raft_cb(req, s, 0);
    else
      uv_close((uv_handle_t *)s, (uv_close_cb)raft_free);
  } else if (cl->accept_cb != NULL && !cl->stopping) {
    cl->accept_cb(&cl->transport, c->peer_id, c->peer_addr, s);
  } else {
    uv_close((uv_handle_t *)s, (uv_close_cb)raft_free);
  }
}

static void on_connected(uv_connect_t *req, int status) {
  struct conn *c = req->data;
  if (c->state == CS_CLOSED)
    return;
  if (status != 0) {
    conn_close(c);
    return;
  }
  uint8_t hello[SEC_HELLO_LEN];
  sec_hs_hello(&c->hs, hello);
  tcp_write(c, hello, sizeof hello);
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_tcp_read);
}

static struct conn *conn_dial(struct cluster *cl, const char *address, int kind) {
  struct sockaddr_storage ss;
  if (addr_to_sockaddr(address, &ss) != 0)
    return NULL;
  struct conn *c = conn_new(cl, true);
  if (c == NULL)
    return NULL;
  c->kind = kind;
  snprintf(c->peer_addr, sizeof c->peer_addr, "%s", address);
  snprintf(c->remote, sizeof c->remote, "%s", address);
  c->connect_req.data = c;
  if (uv_tcp_connect(&c->connect_req, &c->tcp, (struct sockaddr *)&ss, on_connected) != 0) {
    conn_close(c);
    return NULL;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  return c;
}

static int tr_init(struct raft_uv_transport *t, raft_id id, const char *address) {
  (void)t, (void)id, (void)address;
  return 0;
}

static int tr_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb) {
  struct cluster *cl = t->impl; /* raft_uv owns t->data */
  cl->accept_cb = cb;
  return 0;
}

static int tr_connect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
                      const char *address, raft_uv_connect_cb cb) {
  (void)id;
  struct cluster *cl = t->impl; /* raft_uv owns t->data */
  if (cl->stopping)
    return RAFT_CANCELED;
  struct conn *c = conn_dial(cl, address, CK_RAFT);
  if (c == NULL)
    return RAFT_NOCONNECTION;
  c->raft_req = req;
  c->raft_cb = cb;
  return 0;
}

static void tr_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb) {
  struct cluster *cl = t->impl; /* raft_uv owns t->data */
  cl->accept_cb = NULL;
  for (struct conn *c = cl->conns; c; c = c->next)
    if (c->raft_req != NULL) {
      struct raft_uv_connect *req = c->raft_req;
      c->raft_req = NULL;
      c->raft_cb(req, NULL, RAFT_CANCELED);
    }
  cb(t);
}

static void on_accept(uv_stream_t *server, int status) {
  struct cluster *cl = server->data;
  if (status != 0 || cl->stopping)
    return;
  struct conn *c = conn_new(cl, false);
  if (c == NULL)
    return;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    conn_close(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  struct sockaddr_storage ss;
  int len = sizeof ss;
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
    char ip[48] = "?";
    int port = 0;
    if (ss.ss_family == AF_INET) {
      uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
      port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    } else {
      uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
      port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    snprintf(c->remote, sizeof c->remote, "%s:%d", ip, port);
  }
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_tcp_read);
}

/* ------------------------------------------------------------------- RPC */

static struct conn *rpc_conn(struct cluster *cl, const char *address) {
  for (struct conn *c = cl->conns; c; c = c->next)
    if (c->client && c->kind == CK_RPC && c->state != CS_CLOSED &&
        strcmp(c->peer_addr, address) == 0)
      return c;
  return conn_dial(cl, address, CK_RPC);
}

static struct conn *conn_by_serial(struct cluster *cl, uint64_t serial) {
  for (struct conn *c = cl->conns; c; c = c->next)
    if (c->serial == serial && c->state != CS_CLOSED)
      return c;
  return NULL;
}

/* Sends an RPC now if its connection is open, else when it opens (the tick
 * sends pending requests). The reply, or NULL on failure or timeout, goes to
 * cb exactly once. */
static struct call *rpc_call(struct cluster *cl, const char *address, struct mpk_w *w,
                             void (*cb)(struct cluster *, struct call *, const msgpack_object *),
                             uint64_t id) {
  struct conn *c = rpc_conn(cl, address);
  if (c == NULL)
    return NULL;
  struct call *call = calloc(1, sizeof *call);
  if (call == NULL)
    return NULL;
  call->id = id;
  call->conn_serial = c->serial;
  call->deadline_ms = now_ms() + RPC_TIMEOUT_MS;
  call->cb = cb;
  if (c->state == CS_OPEN) {
    conn_send_msg(c, w);
  } else {
    size_t n = w->sb.size;
    if ((call->pending = malloc(4 + n)) == NULL) {
      free(call);
      return NULL;
    }
    uint8_t *q = call->pending;
    gm_le32_put(q, (uint32_t)n);
    memcpy(q + 4, w->sb.data, n);
    call->pending_len = 4 + n;
  }
  call->next = cl->calls;
  cl->calls = call;
  return call;
}

static void call_finish(struct cluster *cl, struct call *call, const msgpack_object *reply) {
  for (struct call **pp = &cl->calls; *pp; pp = &(*pp)->next)
    if (*pp == call) {
      *pp = call->next;
      break;
    }
  call->cb(cl, call, reply);
  free(call->pending);
  free(call);
}

static void fail_calls_of(struct cluster *cl, uint64_t serial) {
  for (struct call *call = cl->calls, *next; call; call = next) {
    next = call->next;
    if (call->conn_serial == serial)
      call_finish(cl, call, NULL);
  }
}

/* Calls waiting for their connection to open get sent; expired ones fail. */
static void calls_tick(struct cluster *cl) {
  int64_t now = now_ms();
  for (struct call *call = cl->calls, *next; call; call = next) {
    next = call->next;
    if (now >= call->deadline_ms) {
      call_finish(cl, call, NULL);
      continue;
    }
    if (call->pending != NULL) {
      struct conn *c = conn_by_serial(cl, call->conn_serial);
      if (c == NULL) {
        call_finish(cl, call, NULL);
      } else if (c->state == CS_OPEN) {
        conn_send(c, call->pending, call->pending_len);
        free(call->pending);
        call->pending = NULL;
      }
    }
  }
}

/* ------------------------------------------------------- commit pipeline */

static void on_kick(uv_idle_t *h);

/* The last answer does not tell the commit queue at once: a draining queue
 * then stops the cluster, and cluster_stop answers whatever still waits,
 * which would answer again the items of a loop that is calling this (the
 * waiters of after_apply and on_tick). on_kick tells it instead, at the
 * next loop iteration. */
static void spool_done(struct cluster *cl);

static void complete(struct cluster *cl, struct citem *ci, const struct ledger_result *res) {
  GM_ASSERT(cl->inflight > 0);
  cl->inflight--;
  if (ci->it.keep) {
    GM_ASSERT(cl->keeping > 0 && cl->keep_bytes >= ci->it.len);
    cl->keeping--;
    cl->keep_bytes -= ci->it.len;
    if (cl->keeping == 0 && cl->spool_bytes > 0)
      spool_done(cl);
  }
  if (ci->it.cb)
    ci->it.cb(ci->it.arg, res);
  free(ci->it.cmd);
  if (cl->inflight == 0 && !cl->stopping)
    uv_idle_start(&cl->kick, on_kick);
}

/* ------------------------------------------------ audit batches kept
 *
 * An audit batch (a keep item) past its deadline with no leader waits on,
 * and is appended to SPOOL_FILE, once: at its deadline, or at once while no
 * leader is known (on_kick); a stop appends those that had not got there
 * yet. The start queues the file's batches again. When no audit
 * batch is in flight any more, all of them reached the ledger (or were
 * dropped and counted) and the file is emptied. A batch sent twice is
 * found in the ledger's dedup table by its request id. */

static void spool_path(const struct cluster *cl, char *out, size_t cap) {
  snprintf(out, cap, "%s/" SPOOL_FILE, cl->n->cfg.data_dir);
}

static int spool_open(struct cluster *cl) {
  if (cl->spool_fd >= 0)
    return 0;
  char path[NODE_PATH_MAX + 16];
  spool_path(cl, path, sizeof path);
  cl->spool_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (cl->spool_fd < 0) {
    GM_WARN("cannot open the file of kept audit entries", "path=%s err=%s", path,
            strerror(errno));
    return GM_EIO;
  }
  return 0;
}

/* Appends the batch unless it is there already. A short write is cut off
 * at once (failing that, the next start cuts it off: spool_load). */
static void spool_append(struct cluster *cl, struct citem *ci) {
  if (ci->it.spooled)
    return;
  uint32_t n = (uint32_t)ci->it.len;
  uint8_t len[4] = {(uint8_t)n, (uint8_t)(n >> 8), (uint8_t)(n >> 16), (uint8_t)(n >> 24)};
  struct iovec iov[2] = {{len, 4}, {ci->it.cmd, ci->it.len}};
  ssize_t want = (ssize_t)(4 + ci->it.len), w = -1;
  const char *why = "the file is full";
  if (cl->spool_bytes + (uint64_t)want <= KEEP_BYTES_MAX && spool_open(cl) == 0) {
    do
      w = writev(cl->spool_fd, iov, 2);
    while (w < 0 && errno == EINTR);
    why = w < 0 ? strerror(errno) : "short write";
  }
  if (w != want) {
    if (w > 0 && ftruncate(cl->spool_fd, (off_t)cl->spool_bytes) != 0)
      why = "short write, and cannot cut it off";
    int64_t now = now_ms();
    if (now - cl->spool_warned_ms >= 10000) {
      cl->spool_warned_ms = now;
      GM_WARN("audit entries not kept on disk", "bytes=%zu why=\"%s\"", ci->it.len, why);
    }
    return;
  }
  ci->it.spooled = true;
  cl->spool_bytes += (uint64_t)want;
  cl->spool_dirty = true;
}

/* Whether an audit batch past its deadline waits on (and is kept in the
 * file): yes until the gate stops, whose drain ends at the deadlines. */
static bool holds(struct cluster *cl, struct citem *ci) {
  if (!ci->it.keep || cl->stopping || cl->n->commit.closing)
    return false;
  spool_append(cl, ci);
  return true;
}

static void on_spool_synced(uv_fs_t *req) {
  struct cluster *cl = req->data;
  if (req->result < 0)
    GM_WARN("cannot sync the file of kept audit entries", "err=%s",
            uv_strerror((int)req->result));
  uv_fs_req_cleanup(req);
  cl->spool_syncing = false;
  node_maybe_stopped(cl->n);
}

/* From the tick: what was appended since the last sync, synced off the
 * loop thread. */
static void spool_sync(struct cluster *cl) {
  if (!cl->spool_dirty || cl->spool_syncing || cl->spool_fd < 0)
    return;
  cl->spool_dirty = false;
  cl->spool_req.data = cl;
  if (uv_fs_fdatasync(cl->loop, &cl->spool_req, cl->spool_fd, on_spool_synced) == 0)
    cl->spool_syncing = true;
}

bool cluster_busy(struct node *n) { return n->cluster != NULL && n->cluster->spool_syncing; }

/* No audit batch in flight: every one in the file reached the ledger. */
static void spool_done(struct cluster *cl) {
  if (cl->stopping || cl->n->commit.closing || cl->spool_fd < 0)
    return;
  if (ftruncate(cl->spool_fd, 0) != 0) {
    GM_WARN("cannot empty the file of kept audit entries", "err=%s", strerror(errno));
    return;
  }
  GM_INFO("kept audit entries are in the ledger", "bytes=%" PRIu64, cl->spool_bytes);
  cl->spool_bytes = 0;
  cl->spool_dirty = true;
}

/* At the start: the file's batches queued again. A record cut short or not
 * an audit batch ends the reading, and the file is cut there, so what is
 * appended later stays readable. */
static void spool_load(struct cluster *cl) {
  char path[NODE_PATH_MAX + 16];
  spool_path(cl, path, sizeof path);
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return;
  uint64_t n = 0, good = 0;
  uint8_t h[4];
  while (fread(h, 1, 4, f) == 4) {
    size_t len = (size_t)h[0] | (size_t)h[1] << 8 | (size_t)h[2] << 16 | (size_t)h[3] << 24;
    uint8_t *cmd = len > 0 && len <= ENTRY_BYTES_MAX ? malloc(len) : NULL;
    struct ledger_cmd c;
    if (cmd == NULL || fread(cmd, 1, len, f) != len || ledger_cmd_decode(cmd, len, &c) != 0) {
      free(cmd);
      break;
    }
    bool audit = c.op == LEDGER_OP_AUDIT_BATCH && c.rid[0];
    ledger_cmd_free(&c);
    if (!audit || commit_requeue_audit(&cl->n->commit, cmd, len) != 0) {
      free(cmd);
      break;
    }
    good += 4 + len;
    n++;
  }
  bool rest = fseek(f, 0, SEEK_END) != 0 || (uint64_t)ftell(f) != good;
  fclose(f);
  if (rest)
    GM_WARN("kept audit entries: a record is cut short or unreadable; the rest is dropped",
            "path=%s read=%" PRIu64, path, n);
  if (spool_open(cl) == 0) {
    if (ftruncate(cl->spool_fd, (off_t)good) != 0)
      GM_WARN("cannot cut the file of kept audit entries", "err=%s", strerror(errno));
    cl->spool_bytes = good;
    cl->spool_dirty = true;
  }
  cl->audit_requeued = n;
  if (n > 0)
    GM_INFO("audit entries kept on disk queued again", "batches=%" PRIu64, n);
}

/* An audit batch failed by a stop stays in SPOOL_FILE for the next start;
 * one failed otherwise (the ledger full, say) is dropped and counted, even
 * if the file has it: the file is emptied once no batch is in flight. */
static void fail_item(struct cluster *cl, struct citem *ci, int rc) {
  struct ledger_result r;
  memset(&r, 0, sizeof r);
  r.rc = rc;
  if (ci->it.keep) {
    bool stop = cl->stopping || cl->n->commit.closing;
    if (stop)
      spool_append(cl, ci);
    if (!stop || !ci->it.spooled) {
      cl->audit_dropped++;
      GM_WARN("audit entries dropped", "err=%s bytes=%zu", gm_err_code(rc), ci->it.len);
    }
  }
  complete(cl, ci, &r);
}

static int queue_push(struct cluster *cl, const struct citem *ci) {
  if (cl->n_queue == cl->cap_queue) {
    size_t cap = cl->cap_queue ? cl->cap_queue * 2 : 256;
    struct citem *q = realloc(cl->queue, cap * sizeof *q);
    if (q == NULL)
      return GM_ENOMEM;
    cl->queue = q;
    cl->cap_queue = cap;
  }
  cl->queue[cl->n_queue++] = *ci;
  uv_idle_start(&cl->kick, on_kick);
  return 0;
}

/* Requeues commands whose proposal failed, or fails them past deadline
 * (audit batches wait on, see holds). */
static void retry_items(struct cluster *cl, struct citem *items, size_t n) {
  int64_t now = now_ms();
  for (size_t i = 0; i < n; i++) {
    items[i].answered = false;
    if (cl->stopping || (now >= items[i].deadline_ms && !holds(cl, &items[i]))) {
      cl->no_quorum++;
      fail_item(cl, &items[i], GM_ENOQUORUM);
    } else if (queue_push(cl, &items[i]) != 0) {
      fail_item(cl, &items[i], GM_ENOMEM);
    } else {
      cl->retries++;
    }
  }
  uv_idle_start(&cl->kick, on_kick);
}

static void on_applied(void *arg, uint64_t index, uint64_t token,
                       const struct ledger_result *res, size_t n) {
  struct cluster *cl = arg;
  for (struct lbatch *b = cl->batches; b; b = b->next)
    if (b->token == token) {
      if (n != b->n)
        return;
      for (size_t i = 0; i < n; i++)
        b->items[i].it.res = res[i];
      b->applied = true;
      b->index = index;
      return;
    }
}

static void purge_after_apply(struct cluster *cl, uint64_t index);

static void after_apply(void *arg, uint64_t index) {
  struct cluster *cl = arg;
  purge_after_apply(cl, index);
  size_t keep = 0;
  for (size_t i = 0; i < cl->n_waiters; i++) {
    struct waiter *w = &cl->waiters[i];
    if (w->index <= index)
      complete(cl, &w->item, &w->res);
    else
      cl->waiters[keep++] = *w;
  }
  cl->n_waiters = keep;
}

/* Hands a forwarded command's result out once this replica has its entry. */
static void complete_at(struct cluster *cl, struct citem *ci, const struct ledger_result *res,
                        uint64_t index) {
  if (index <= raft_last_applied(&cl->raft) || cl->stopping) {
    complete(cl, ci, res);
    return;
  }
  if (cl->n_waiters == cl->cap_waiters) {
    size_t cap = cl->cap_waiters ? cl->cap_waiters * 2 : 64;
    struct waiter *w = realloc(cl->waiters, cap * sizeof *w);
    if (w == NULL) {
      complete(cl, ci, res);
      return;
    }
    cl->waiters = w;
    cl->cap_waiters = cap;
  }
  cl->waiters[cl->n_waiters++] = (struct waiter){.item = *ci, .res = *res, .index = index};
}

static void on_apply_done(struct raft_apply *req, int status, void *result) {
  (void)result;
  struct lbatch *b = req->data;
  struct cluster *cl = b->cl;
  for (struct lbatch **pp = &cl->batches; *pp; pp = &(*pp)->next)
    if (*pp == b) {
      *pp = b->next;
      break;
    }
  /* Items answered already (their requests timed out while the entry
   * waited) are left out; audit batches are never answered early. */
  size_t k = 0;
  for (size_t i = 0; i < b->n; i++)
    if (!b->items[i].answered)
      b->items[k++] = b->items[i];
  if (k == 0) {
  } else if (status == 0 && b->applied) {
    struct node_metrics *m = &cl->n->metrics;
    if (!b->answered)
      node_observe(m->raft_commit, &m->raft_commit_sum_s, uv_hrtime() - b->proposed_ns);
    cl->completing_index = b->index;
    for (size_t i = 0; i < k; i++) {
      struct ledger_result r = b->items[i].it.res;
      complete(cl, &b->items[i], &r);
    }
    cl->completing_index = 0;
  } else {
    /* Not known to have applied (leadership lost): propose again. A command
     * that did commit after all comes back as the first result: its request
     * id is in the ledger's dedup table. */
    GM_DEBUG("raft apply did not complete; retrying", "status=%s commands=%zu",
             raft_strerror(status), k);
    retry_items(cl, b->items, k);
  }
  free(b->items);
  free(b);
  if (cl->n_queue > 0)
    uv_idle_start(&cl->kick, on_kick);
}

/* Entries proposed and not yet applied; more wait and grow the next one,
 * so under load each log write (one fsync on every voter) carries more
 * commands instead of queueing behind the others. */
#define INFLIGHT_ENTRIES_MAX 2

static size_t entries_in_flight(struct cluster *cl) {
  size_t n = 0;
  for (struct lbatch *b = cl->batches; b; b = b->next)
    n += !b->applied;
  return n;
}

/* The leader: pack up to one entry's worth of the queue into one raft_apply. */
static void propose(struct cluster *cl) {
  while (cl->n_queue > 0 && entries_in_flight(cl) < INFLIGHT_ENTRIES_MAX) {
    size_t n = 0, bytes = 0;
    while (n < cl->n_queue && n < ENTRY_CMDS_MAX &&
           entry_size(n + 1, bytes + cl->queue[n].it.len) <= ENTRY_BYTES_MAX) {
      bytes += cl->queue[n].it.len;
      n++;
    }
    if (n == 0) { /* one command larger than an entry */
      fail_item(cl, &cl->queue[0], GM_ETOOBIG);
      memmove(cl->queue, cl->queue + 1, (cl->n_queue - 1) * sizeof *cl->queue);
      cl->n_queue--;
      continue;
    }
    struct lbatch *b = calloc(1, sizeof *b);
    struct gm_slice *sl = malloc(n * sizeof *sl);
    size_t size = entry_size(n, bytes);
    void *buf = raft_malloc(size);
    if (b == NULL || sl == NULL || buf == NULL || (b->items = malloc(n * sizeof *b->items)) == NULL) {
      free(b ? b->items : NULL);
      free(b);
      free(sl);
      raft_free(buf);
      return; /* try again next tick */
    }
    for (size_t i = 0; i < n; i++)
      sl[i] = (struct gm_slice){cl->queue[i].it.cmd, cl->queue[i].it.len};
    struct entry_hdr h = {.count = (uint32_t)n, .origin = cl->id, .token = ++cl->next_token};
    entry_encode(buf, &h, sl, n);
    free(sl);
    memcpy(b->items, cl->queue, n * sizeof *b->items);
    b->n = n;
    b->cl = cl;
    for (size_t i = 0; i < n; i++)
      if (b->items[i].deadline_ms > b->deadline_ms)
        b->deadline_ms = b->items[i].deadline_ms;
    b->token = h.token;
    b->req.data = b;
    b->proposed_ns = uv_hrtime();
    struct node_metrics *m = &cl->n->metrics;
    for (size_t i = 0; i < n; i++)
      node_observe(m->raft_queue, &m->raft_queue_sum_s, b->proposed_ns - b->items[i].queued_ns);
    struct raft_buffer rb = {.base = buf, .len = size};
    int rc = raft_apply(&cl->raft, &b->req, &rb, 1, on_apply_done);
    if (rc != 0) {
      /* raft_apply frees nothing on this path in 0.22 unless it is a length
       * error, which entry_size rules out. */
      raft_free(buf);
      free(b->items);
      free(b);
      GM_DEBUG("raft_apply refused", "err=%s", raft_strerror(rc));
      return;
    }
    b->next = cl->batches;
    cl->batches = b;
    memmove(cl->queue, cl->queue + n, (cl->n_queue - n) * sizeof *cl->queue);
    cl->n_queue -= n;
    cl->entries_proposed++;
    cl->cmds_proposed += n;
  }
}

static void on_forwarded(struct cluster *cl, struct call *call, const msgpack_object *reply) {
  int64_t rc = GM_EIO, index = 0;
  const msgpack_object *res = NULL;
  if (reply != NULL && mpk_get_i64(reply, "rc", &rc) == 0 && rc == 0) {
    mpk_opt_i64(reply, "idx", &index);
    res = mpk_get(reply, "res");
    if (res == NULL || res->type != MSGPACK_OBJECT_ARRAY || res->via.array.size != call->n)
      rc = GM_EDECODE;
  }
  if (rc == GM_EFULL) {
    for (size_t i = 0; i < call->n; i++)
      fail_item(cl, &call->items[i], GM_EFULL);
  } else if (rc != 0 || res == NULL) {
    retry_items(cl, call->items, call->n);
  } else {
    for (size_t i = 0; i < call->n; i++) {
      const msgpack_object *o = &res->via.array.ptr[i];
      struct ledger_result r;
      if (o->type != MSGPACK_OBJECT_BIN ||
          ledger_result_decode(o->via.bin.ptr, o->via.bin.size, &r) != 0) {
        memset(&r, 0, sizeof r);
        r.rc = GM_EDECODE;
      }
      complete_at(cl, &call->items[i], &r, (uint64_t)index);
    }
  }
  free(call->items);
  call->items = NULL;
}

/* A follower: send the queue to the leader. */
static void forward(struct cluster *cl, const char *leader_addr) {
  while (cl->n_queue > 0) {
    size_t n = cl->n_queue < FWD_MAX_CMDS ? cl->n_queue : FWD_MAX_CMDS;
    struct mpk_w w;
    mpk_w_init(&w);
    uint64_t id = ++cl->next_call;
    mpk_map(&w, 3);
    mpk_kv_str(&w, "t", "fwd");
    mpk_kv_u64(&w, "id", id);
    mpk_str(&w, "cmds");
    mpk_arr(&w, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
      mpk_bin(&w, cl->queue[i].it.cmd, cl->queue[i].it.len);
    struct citem *items = malloc(n * sizeof *items);
    struct call *call = items ? rpc_call(cl, leader_addr, &w, on_forwarded, id) : NULL;
    mpk_w_free(&w);
    if (call == NULL) {
      free(items);
      return; /* no connection: the tick retries */
    }
    memcpy(items, cl->queue, n * sizeof *items);
    call->items = items;
    call->n = n;
    call->deadline_ms = now_ms() + cl->n->cfg.request_timeout_ms;
    memmove(cl->queue, cl->queue + n, (cl->n_queue - n) * sizeof *cl->queue);
    cl->n_queue -= n;
    cl->cmds_forwarded += n;
  }
}

static void on_kick(uv_idle_t *h) {
  struct cluster *cl = h->data;
  uv_idle_stop(&cl->kick);
  if (cl->inflight == 0 && !cl->stopping)
    commit_remote_settled(&cl->n->commit); /* may stop the cluster */
  if (cl->n_queue == 0 || !cl->raft_started || cl->stopping)
    return;
  if (raft_state(&cl->raft) == RAFT_LEADER) {
    propose(cl);
    return;
  }
  raft_id lid = 0;
  const char *laddr = NULL;
  raft_leader(&cl->raft, &lid, &laddr);
  if (lid != 0 && laddr != NULL && lid != cl->id) {
    forward(cl, laddr);
    return;
  }
  /* No leader known: the tick retries; expire what waited too long. */
  int64_t now = now_ms();
  size_t keep = 0;
  for (size_t i = 0; i < cl->n_queue; i++) {
    if (now >= cl->queue[i].deadline_ms && !holds(cl, &cl->queue[i])) {
      cl->no_quorum++;
      fail_item(cl, &cl->queue[i], GM_ENOQUORUM);
    } else {
      /* An audit batch goes to the file at once while no leader is known
       * (a crash then loses at most a tick's worth). */
      if (cl->queue[i].it.keep && !cl->stopping && !cl->n->commit.closing)
        spool_append(cl, &cl->queue[i]);
      cl->queue[keep++] = cl->queue[i];
    }
  }
  cl->n_queue = keep;
}

/* Whether the ledger has room for more: past 90% of its map, new commands
 * are refused (storage_full) before they reach the log, because a committed
 * entry that cannot be applied stops this replica. */
static bool ledger_has_room(struct cluster *cl) {
  uint64_t used = ledger_size_bytes(cl->n->ledger);
  return used < cl->n->cfg.map_size / 10 * 9 && cl->fsm.last_error != GM_EFULL;
}

static void remote_submit(void *arg, struct commit_item *items, size_t n) {
  struct cluster *cl = arg;
  int64_t deadline = now_ms() + cl->n->cfg.request_timeout_ms;
  bool room = ledger_has_room(cl);
  if (!room)
    GM_WARN("ledger map nearly full: commands refused (raise map-size-mb)", "map_mb=%zu",
            cl->n->cfg.map_size >> 20);
  for (size_t i = 0; i < n; i++) {
    struct citem ci = {.it = items[i], .deadline_ms = deadline, .queued_ns = uv_hrtime()};
    cl->inflight++;
    if (ci.it.keep) {
      cl->keeping++;
      cl->keep_bytes += ci.it.len;
      if (cl->keep_bytes > KEEP_BYTES_MAX) {
        cl->audit_dropped++;
        GM_WARN("audit entries dropped: too many wait for a leader", "waiting_bytes=%" PRIu64,
                cl->keep_bytes - ci.it.len);
        complete(cl, &ci, &(struct ledger_result){.rc = GM_ELIMIT});
        continue;
      }
    }
    if (cl->stopping || !room || queue_push(cl, &ci) != 0)
      fail_item(cl, &ci, cl->stopping ? GM_ESHUTDOWN : !room ? GM_EFULL : GM_ENOMEM);
  }
  uv_idle_start(&cl->kick, on_kick);
}

static bool remote_idle(void *arg) {
  struct cluster *cl = arg;
  return cl->inflight == 0;
}

/* ------------------------------------------------------ RPC: server side */

static void reply_simple(struct conn *c, const char *type, uint64_t id, int rc, const char *msg,
                         const char *leader) {
  struct mpk_w w;
  mpk_w_init(&w);
  mpk_map(&w, 5);
  mpk_kv_str(&w, "t", type);
  mpk_kv_u64(&w, "id", id);
  mpk_kv_i64(&w, "rc", rc);
  mpk_kv_str(&w, "msg", msg ? msg : "");
  mpk_kv_str(&w, "leader", leader ? leader : "");
  conn_send_msg(c, &w);
  mpk_w_free(&w);
}

static const char *leader_address(struct cluster *cl) {
  raft_id lid = 0;
  const char *laddr = NULL;
  raft_leader(&cl->raft, &lid, &laddr);
  return laddr ? laddr : "";
}

static void fwd_item_done(void *arg, const struct ledger_result *res) {
  struct fwd_in *f = arg;
  /* results arrive in order of items; find the first free slot */
  size_t i = f->n - f->remaining;
  f->res[i] = *res;
  if (f->cl->completing_index > f->index)
    f->index = f->cl->completing_index;
  if (--f->remaining > 0)
    return;
  struct conn *c = conn_by_serial(f->cl, f->conn_serial);
  if (c != NULL) {
    struct mpk_w w, rw;
    mpk_w_init(&w);
    mpk_w_init(&rw);
    mpk_map(&w, 5);
    mpk_kv_str(&w, "t", "fwdr");
    mpk_kv_u64(&w, "id", f->rpc_id);
    mpk_kv_i64(&w, "rc", 0);
    mpk_kv_u64(&w, "idx", f->index);
    mpk_str(&w, "res");
    mpk_arr(&w, (uint32_t)f->n);
    for (size_t k = 0; k < f->n; k++) {
      mpk_w_reset(&rw);
      ledger_result_encode(&rw, &f->res[k]);
      mpk_bin(&w, rw.sb.data, rw.sb.size);
    }
    conn_send_msg(c, &w);
    mpk_w_free(&w);
    mpk_w_free(&rw);
  }
  free(f->res);
  free(f);
}

static void rpc_fwd(struct conn *c, const msgpack_object *m, uint64_t id) {
  struct cluster *cl = c->cl;
  if (raft_state(&cl->raft) != RAFT_LEADER) {
    reply_simple(c, "fwdr", id, GM_ENOTLEADER, "not the leader", leader_address(cl));
    return;
  }
  const msgpack_object *cmds = mpk_get(m, "cmds");
  if (cmds == NULL || cmds->type != MSGPACK_OBJECT_ARRAY || cmds->via.array.size == 0 ||
      cmds->via.array.size > FWD_MAX_CMDS) {
    reply_simple(c, "fwdr", id, GM_EDECODE, "bad forward", NULL);
    return;
  }
  size_t n = cmds->via.array.size;
  if (!ledger_has_room(cl)) {
    reply_simple(c, "fwdr", id, GM_EFULL, "ledger map nearly full", NULL);
    return;
  }
  for (size_t i = 0; i < n; i++)
    if (cmds->via.array.ptr[i].type != MSGPACK_OBJECT_BIN || cmds->via.array.ptr[i].via.bin.size == 0) {
      reply_simple(c, "fwdr", id, GM_EDECODE, "bad forward", NULL);
      return;
    }
  struct fwd_in *f = calloc(1, sizeof *f);
  if (f == NULL || (f->res = calloc(n, sizeof *f->res)) == NULL) {
    free(f);
    reply_simple(c, "fwdr", id, GM_ENOMEM, "out of memory", NULL);
    return;
  }
  f->cl = cl;
  f->conn_serial = c->serial;
  f->rpc_id = id;
  f->n = f->remaining = n;
  int64_t deadline = now_ms() + cl->n->cfg.request_timeout_ms;
  for (size_t i = 0; i < n; i++) {
    const msgpack_object *o = &cmds->via.array.ptr[i];
    uint8_t *cmd = malloc(o->via.bin.size);
    struct citem ci = {.it = {.cmd = cmd, .len = o->via.bin.size, .cb = fwd_item_done, .arg = f},
                       .deadline_ms = deadline};
    cl->inflight++;
    if (cmd == NULL) {
      fail_item(cl, &ci, GM_ENOMEM);
      continue;
    }
    memcpy(cmd, o->via.bin.ptr, o->via.bin.size);
    if (queue_push(cl, &ci) != 0)
      fail_item(cl, &ci, GM_ENOMEM);
  }
  uv_idle_start(&cl->kick, on_kick);
}

static struct member *member_get(struct cluster *cl, uint64_t id) {
  for (size_t i = 0; i < cl->n_members; i++)
    if (cl->members[i].id == id)
      return &cl->members[i];
  if (cl->n_members == MEMBERS_MAX)
    return NULL;
  struct member *m = &cl->members[cl->n_members++];
  memset(m, 0, sizeof *m);
  m->id = id;
  return m;
}

static const struct raft_server *server_of(struct cluster *cl, uint64_t id) {
  for (unsigned i = 0; i < cl->raft.configuration.n; i++)
    if (cl->raft.configuration.servers[i].id == id)
      return &cl->raft.configuration.servers[i];
  return NULL;
}

static unsigned count_role(struct cluster *cl, int role) {
  unsigned n = 0;
  for (unsigned i = 0; i < cl->raft.configuration.n; i++)
    n += cl->raft.configuration.servers[i].role == role;
  return n;
}

struct join_op {
  struct cluster *cl;
  uint64_t conn_serial;
  uint64_t rpc_id;
  uint64_t node;
  int role;
  const char *type;
};

static void join_reply(struct join_op *op, int rc, const char *msg) {
  struct conn *c = conn_by_serial(op->cl, op->conn_serial);
  if (c != NULL)
    reply_simple(c, op->type, op->rpc_id, rc, msg, NULL);
}

static void on_assigned(struct raft_change *req, int status) {
  struct join_op *op = req->data;
  struct cluster *cl = op->cl;
  cl->changing = false;
  if (status != 0)
    GM_WARN("role change failed", "node=%" PRIu64 " err=%s", op->node, raft_strerror(status));
  else
    GM_INFO("member role set", "node=%" PRIu64 " role=%s", op->node, raft_role_name(op->role));
  if (op->rpc_id)
    join_reply(op, status == 0 ? 0 : GM_ESTATE, status == 0 ? "joined" : raft_strerror(status));
  free(op);
}

static void on_added(struct raft_change *req, int status) {
  struct join_op *op = req->data;
  struct cluster *cl = op->cl;
  if (status != 0) {
    cl->changing = false;
    join_reply(op, GM_ESTATE, raft_strerror(status));
    free(op);
    return;
  }
  GM_INFO("member added", "node=%" PRIu64, op->node);
  int rc = raft_assign(&cl->raft, &cl->change, op->node, op->role, on_assigned);
  if (rc != 0) {
    cl->changing = false;
    join_reply(op, GM_ESTATE, raft_strerror(rc));
    free(op);
  }
}

static void rpc_join(struct conn *c, const msgpack_object *m, uint64_t id) {
  struct cluster *cl = c->cl;
  int64_t node = 0;
  char addr[NODE_ADDR_MAX];
  if (mpk_get_i64(m, "node", &node) != 0 || node <= 0 ||
      mpk_get_str(m, "addr", addr, sizeof addr) != 0) {
    reply_simple(c, "joinr", id, GM_EDECODE, "bad join", NULL);
    return;
  }
  if (raft_state(&cl->raft) != RAFT_LEADER) {
    reply_simple(c, "joinr", id, GM_ENOTLEADER, "not the leader", leader_address(cl));
    return;
  }
  const struct raft_server *s = server_of(cl, (uint64_t)node);
  if (s != NULL) {
    if (strcmp(s->address, addr) != 0) {
      reply_simple(c, "joinr", id, GM_EEXIST, "node id already in use at another address", NULL);
      return;
    }
    if (s->role != RAFT_SPARE) {
      reply_simple(c, "joinr", id, 0, "already a member", NULL);
      return;
    }
  }
  if (cl->changing) {
    reply_simple(c, "joinr", id, GM_ELIMIT, "another membership change is in progress", NULL);
    return;
  }
  struct join_op *op = calloc(1, sizeof *op);
  if (op == NULL) {
    reply_simple(c, "joinr", id, GM_ENOMEM, "out of memory", NULL);
    return;
  }
  op->cl = cl;
  op->conn_serial = c->serial;
  op->rpc_id = id;
  op->node = (uint64_t)node;
  op->type = "joinr";
  op->role = count_role(cl, RAFT_VOTER) < cl->n->cfg.voters ? RAFT_VOTER : RAFT_STANDBY;
  cl->change.data = op;
  cl->changing = true;
  int rc = s != NULL ? raft_assign(&cl->raft, &cl->change, op->node, op->role, on_assigned)
                     : raft_add(&cl->raft, &cl->change, op->node, addr, on_added);
  if (rc != 0) {
    cl->changing = false;
    reply_simple(c, "joinr", id, GM_ESTATE, raft_strerror(rc), NULL);
    free(op);
  }
  struct member *mb = member_get(cl, op->node);
  if (mb) {
    mb->seen = true;
    mb->last_seen_ms = now_ms();
  }
}

static void on_removed(struct raft_change *req, int status) {
  struct join_op *op = req->data;
  op->cl->changing = false;
  if (status == 0)
    GM_INFO("member removed", "node=%" PRIu64, op->node);
  join_reply(op, status == 0 ? 0 : GM_ESTATE, status == 0 ? "removed" : raft_strerror(status));
  free(op);
}

static void rpc_leave(struct conn *c, const msgpack_object *m, uint64_t id) {
  struct cluster *cl = c->cl;
  int64_t node = 0;
  if (mpk_get_i64(m, "node", &node) != 0 || node <= 0) {
    reply_simple(c, "leaver", id, GM_EDECODE, "bad leave", NULL);
    return;
  }
  if (raft_state(&cl->raft) != RAFT_LEADER) {
    reply_simple(c, "leaver", id, GM_ENOTLEADER, "not the leader", leader_address(cl));
    return;
  }
  if (server_of(cl, (uint64_t)node) == NULL) {
    reply_simple(c, "leaver", id, GM_ENOTFOUND, "no such member", NULL);
    return;
  }
  if ((uint64_t)node == cl->id) {
    reply_simple(c, "leaver", id, GM_ESTATE, "the leader cannot remove itself; stop it first",
                 NULL);
    return;
  }
  if (cl->changing) {
    reply_simple(c, "leaver", id, GM_ELIMIT, "another membership change is in progress", NULL);
    return;
  }
  struct join_op *op = calloc(1, sizeof *op);
  if (op == NULL)
    return;
  op->cl = cl;
  op->conn_serial = c->serial;
  op->rpc_id = id;
  op->node = (uint64_t)node;
  op->type = "leaver";
  cl->change.data = op;
  cl->changing = true;
  int rc = raft_remove(&cl->raft, &cl->change, op->node, on_removed);
  if (rc != 0) {
    cl->changing = false;
    reply_simple(c, "leaver", id, GM_ESTATE, raft_strerror(rc), NULL);
    free(op);
  }
}

static void rpc_ping(struct conn *c, uint64_t id) {
  struct cluster *cl = c->cl;
  cl->leader_contact_ms = now_ms(); /* only a leader pings */
  struct mpk_w w;
  mpk_w_init(&w);
  mpk_map(&w, 4);
  mpk_kv_str(&w, "t", "pong");
  mpk_kv_u64(&w, "id", id);
  mpk_kv_i64(&w, "rc", 0);
  mpk_kv_u64(&w, "applied", raft_last_applied(&cl->raft));
  conn_send_msg(c, &w);
  mpk_w_free(&w);
}

static void rpc_dispatch(struct conn *c, const msgpack_object *m) {
  char type[16];
  int64_t id = 0;
  if (mpk_get_str(m, "t", type, sizeof type) != 0 || mpk_get_i64(m, "id", &id) != 0) {
    conn_reject(c, "message without type or id");
    return;
  }
  if (!c->client) {
    if (!strcmp(type, "fwd"))
      rpc_fwd(c, m, (uint64_t)id);
    else if (!strcmp(type, "join"))
      rpc_join(c, m, (uint64_t)id);
    else if (!strcmp(type, "leave"))
      rpc_leave(c, m, (uint64_t)id);
    else if (!strcmp(type, "ping"))
      rpc_ping(c, (uint64_t)id);
    else
      conn_reject(c, "unknown request type");
    return;
  }
  for (struct call *call = c->cl->calls; call; call = call->next)
    if (call->id == (uint64_t)id && call->conn_serial == c->serial) {
      call_finish(c->cl, call, m);
      return;
    }
}

/* -------------------------------------------------- joining, roles, tick */

static void on_join_reply(struct cluster *cl, struct call *call, const msgpack_object *reply) {
  (void)call;
  int64_t rc = GM_EIO;
  char msg[128] = "no reply", leader[NODE_ADDR_MAX] = "";
  if (reply != NULL) {
    mpk_get_i64(reply, "rc", &rc);
    mpk_get_str(reply, "msg", msg, sizeof msg);
    mpk_get_str(reply, "leader", leader, sizeof leader);
  }
  if (rc == 0) {
    cl->joined = true;
    GM_INFO("joined the cluster", "via=%s", cl->join_target);
    return;
  }
  if (rc == GM_ENOTLEADER && leader[0]) {
    snprintf(cl->join_target, sizeof cl->join_target, "%s", leader);
    cl->next_join_ms = 0; /* redirected: ask the leader at the next tick */
    return;
  }
  GM_WARN("join not accepted yet; retrying", "target=%s reason=\"%s\"", cl->join_target, msg);
}

static void join_try(struct cluster *cl) {
  int64_t now = now_ms();
  if (cl->joined || now < cl->next_join_ms)
    return;
  /* In a configuration already (a restart, or the leader replicated us). */
  if (server_of(cl, cl->id) != NULL && server_of(cl, cl->id)->role != RAFT_SPARE) {
    cl->joined = true;
    return;
  }
  cl->next_join_ms = now + 1000;
  struct mpk_w w;
  mpk_w_init(&w);
  uint64_t id = ++cl->next_call;
  mpk_map(&w, 4);
  mpk_kv_str(&w, "t", "join");
  mpk_kv_u64(&w, "id", id);
  mpk_kv_u64(&w, "node", cl->id);
  mpk_kv_str(&w, "addr", cl->address);
  rpc_call(cl, cl->join_target, &w, on_join_reply, id);
  mpk_w_free(&w);
}

static void on_pong(struct cluster *cl, struct call *call, const msgpack_object *reply) {
  int64_t applied = 0;
  if (reply == NULL || mpk_get_i64(reply, "applied", &applied) != 0)
    return;
  struct member *m = member_get(cl, call->member);
  if (m) {
    m->seen = true;
    m->last_seen_ms = now_ms();
    m->applied = (uint64_t)applied;
  }
}

static void ping_members(struct cluster *cl) {
  for (unsigned i = 0; i < cl->raft.configuration.n; i++) {
    const struct raft_server *s = &cl->raft.configuration.servers[i];
    if (s->id == cl->id)
      continue;
    struct mpk_w w;
    mpk_w_init(&w);
    uint64_t id = ++cl->next_call;
    mpk_map(&w, 2);
    mpk_kv_str(&w, "t", "ping");
    mpk_kv_u64(&w, "id", id);
    struct call *call = rpc_call(cl, s->address, &w, on_pong, id);
    mpk_w_free(&w);
    if (call != NULL)
      call->member = s->id;
  }
}

static bool member_alive(struct cluster *cl, uint64_t id, int64_t now) {
  struct member *m = member_get(cl, id);
  return m != NULL && m->seen && now - m->last_seen_ms < cl->n->cfg.voter_timeout_ms;
}

/* The leader keeps `voters` voters: a silent voter is demoted and a live
 * standby promoted, one configuration change at a time. */
static void manage_roles(struct cluster *cl) {
  if (cl->changing)
    return;
  int64_t now = now_ms();
  if (now - cl->n->started_ms < cl->n->cfg.voter_timeout_ms)
    return; /* give members time to answer a new leader's pings */
  unsigned voters = count_role(cl, RAFT_VOTER);
  uint64_t lost = 0, spare = 0, standby = 0;
  for (unsigned i = 0; i < cl->raft.configuration.n; i++) {
    const struct raft_server *s = &cl->raft.configuration.servers[i];
    bool alive = s->id == cl->id || member_alive(cl, s->id, now);
    if (s->role == RAFT_VOTER && !alive && lost == 0)
      lost = s->id;
    if (s->role == RAFT_STANDBY && alive) {
      struct member *m = member_get(cl, s->id);
      struct member *best = standby ? member_get(cl, standby) : NULL;
      if (standby == 0 || (m && best && m->applied > best->applied))
        standby = s->id;
    }
    if (s->role == RAFT_SPARE && alive && spare == 0)
      spare = s->id;
  }
  uint64_t target = 0;
  int role = 0;
  if ((lost != 0 || voters < cl->n->cfg.voters) && standby != 0) {
    target = standby, role = RAFT_VOTER; /* promote first, then demote */
  } else if (lost != 0 && voters > cl->n->cfg.voters) {
    target = lost, role = RAFT_STANDBY;
  } else if (lost != 0 && standby == 0 && voters >= cl->n->cfg.voters && voters > 1 &&
             count_role(cl, RAFT_STANDBY) == 0) {
    return; /* nobody to promote: keep the lost voter */
  }
  if (target == 0)
    return;
  struct join_op *op = calloc(1, sizeof *op);
  if (op == NULL)
    return;
  op->cl = cl;
  op->node = target;
  op->role = role;
  op->type = "";
  cl->change.data = op;
  cl->changing = true;
  GM_INFO(role == RAFT_VOTER ? "promoting a standby" : "demoting an unreachable voter",
          "node=%" PRIu64, target);
  if (raft_assign(&cl->raft, &cl->change, target, role, on_assigned) != 0) {
    cl->changing = false;
    free(op);
  }
}

/* ------------------------------------------------------ erasure on disk */

static void purge_after_apply(struct cluster *cl, uint64_t index) {
  struct gm_fsm *f = &cl->fsm;
  if (cl->purge.armed || f->erase_index <= cl->purge.done_through ||
      f->applied_bytes - f->erase_bytes < PURGE_LOG_BYTES)
    return;
  /* Every entry up to the erasure now sits in a closed segment: the next
   * entry applied takes a snapshot, which deletes those segments. */
  cl->purge.armed = true;
  cl->purge.arm_erase = f->erase_index;
  cl->purge.arm_index = index;
  raft_set_snapshot_threshold(&cl->raft, 1);
  raft_set_snapshot_trailing(&cl->raft, 1);
}

/* Deletes the snapshots (data and .meta) older than the one at `index`:
 * libraft keeps the last two, and the older one may hold the template. */
static void purge_old_snapshots(struct cluster *cl, uint64_t index) {
  char dir[NODE_PATH_MAX + 32];
  snprintf(dir, sizeof dir, "%s/raft", cl->n->cfg.data_dir);
  DIR *d = opendir(dir);
  if (d == NULL)
    return;
  struct dirent *e;
  unsigned long long term, at, ts;
  int off = 0;
  while ((e = readdir(d)) != NULL)
    if (sscanf(e->d_name, "snapshot-%llu-%llu-%llu%n", &term, &at, &ts, &off) == 3 &&
        (e->d_name[off] == 0 || strcmp(e->d_name + off, ".meta") == 0) && at < index &&
        unlinkat(dirfd(d), e->d_name, 0) != 0)
      GM_WARN("cannot delete an old raft snapshot", "file=%s err=\"%s\"", e->d_name,
              strerror(errno));
  fsync(dirfd(d));
  closedir(d);
}

static void on_snapshot(void *arg, uint64_t index) {
  struct cluster *cl = arg;
  if (!cl->purge.armed || index <= cl->purge.arm_index)
    return;
  purge_old_snapshots(cl, index);
  raft_set_snapshot_threshold(&cl->raft, cl->n->cfg.snapshot_threshold);
  raft_set_snapshot_trailing(&cl->raft, cl->n->cfg.snapshot_threshold / 2);
  cl->purge.armed = false;
  cl->purge.done_through = cl->purge.arm_erase;
  cl->purge.rounds++;
  GM_INFO("erased templates purged from the raft log", "through_index=%" PRIu64
          " snapshot=%" PRIu64, cl->purge.done_through, index);
}

static void on_pad_done(struct raft_apply *req, int status, void *result) {
  (void)result;
  struct cluster *cl = req->data;
  if (status != 0)
    cl->purge.padded_for = 0; /* not known to have committed: pad again */
  free(req);
}

/* The leader moves the log on past an erasure with pad entries, so gates
 * need not wait for admissions to fill their segments. */
static void purge_pad(struct cluster *cl) {
  struct gm_fsm *f = &cl->fsm;
  if (f->erase_index <= cl->purge.done_through || cl->purge.padded_for == f->erase_index ||
      raft_state(&cl->raft) != RAFT_LEADER)
    return;
  cl->purge.padded_for = f->erase_index;
  /* Enough for every gate, counted from the erasure, plus two to take the
   * snapshot after arming. */
  size_t n = PURGE_LOG_BYTES / PAD_ENTRY_BYTES + 3;
  for (size_t i = 0; i < n; i++) {
    struct raft_apply *req = malloc(sizeof *req);
    void *buf = raft_malloc(PAD_ENTRY_BYTES);
    if (req == NULL || buf == NULL) {
      free(req);
      raft_free(buf);
      cl->purge.padded_for = 0;
      return;
    }
    memset(buf, 0, PAD_ENTRY_BYTES);
    struct entry_hdr h = {.count = 0, .origin = cl->id, .token = 0};
    entry_encode(buf, &h, NULL, 0);
    req->data = cl;
    struct raft_buffer rb = {.base = buf, .len = PAD_ENTRY_BYTES};
    int rc = raft_apply(&cl->raft, req, &rb, 1, on_pad_done);
    if (rc != 0) {
      raft_free(buf);
      free(req);
      cl->purge.padded_for = 0;
      return;
    }
    cl->purge.pads++;
  }
}

uint64_t cluster_purge_mark(struct node *n) {
  struct cluster *cl = n->cluster;
  if (cl == NULL)
    return 0;
  if (cl->fsm.erase_index == 0) {
    /* An erasure applied before this gate restarted, its purge perhaps not
     * finished: purge everything up to here. */
    cl->fsm.erase_index = raft_last_applied(&cl->raft);
    cl->fsm.erase_bytes = cl->fsm.applied_bytes;
  }
  return cl->fsm.erase_index;
}

uint64_t cluster_purge_done(struct node *n) {
  return n->cluster ? n->cluster->purge.done_through : 0;
}

bool cluster_ledger_idle(struct node *n) {
  return n->cluster == NULL || n->cluster->fsm.snap_rd == NULL;
}

static void on_tick(uv_timer_t *t) {
  struct cluster *cl = t->data;
  if (cl->stopping)
    return;
  purge_pad(cl);
  int64_t now = now_ms();
  /* Handshakes that stall are dropped. */
  for (struct conn *c = cl->conns, *next; c; c = next) {
    next = c->next;
    if (c->state != CS_OPEN && c->state != CS_CLOSED && now - c->opened_ms > CONN_HS_TIMEOUT_MS)
      conn_reject(c, "handshake timed out");
  }
  calls_tick(cl);
  /* An entry that does not apply in time (no quorum, or a replica that
   * cannot apply it) is answered no_quorum / storage_full; its callback
   * later only frees it. */
  for (struct lbatch *b = cl->batches; b; b = b->next)
    if (!b->answered && !b->applied && now >= b->deadline_ms) {
      b->answered = true;
      int rc = cl->fsm.last_error == GM_EFULL ? GM_EFULL : GM_ENOQUORUM;
      for (size_t i = 0; i < b->n; i++) {
        if (holds(cl, &b->items[i]))
          continue; /* the entry's outcome decides (on_apply_done) */
        cl->no_quorum += rc == GM_ENOQUORUM;
        b->items[i].answered = true;
        fail_item(cl, &b->items[i], rc);
      }
    }
  /* A committed result is not held past its deadline even if this replica
   * lags: the write is durable either way. */
  size_t keep = 0;
  for (size_t i = 0; i < cl->n_waiters; i++) {
    if (now >= cl->waiters[i].item.deadline_ms)
      complete(cl, &cl->waiters[i].item, &cl->waiters[i].res);
    else
      cl->waiters[keep++] = cl->waiters[i];
  }
  cl->n_waiters = keep;
  if (cl->join_target[0])
    join_try(cl);
  bool leader = raft_state(&cl->raft) == RAFT_LEADER;
  if (leader && !cl->bootstrapped_ledger) {
    cl->bootstrapped_ledger = true;
    int rc = node_bootstrap(cl->n);
    if (rc != 0)
      GM_ERROR("cluster bootstrap commands failed", "err=%s", gm_err_code(rc));
  }
  if (leader && now - cl->last_ping_ms >= 1000) {
    cl->last_ping_ms = now;
    ping_members(cl);
    manage_roles(cl);
  }
  if (cl->n_queue > 0)
    on_kick(&cl->kick);
  spool_sync(cl);
}

/* ----------------------------------------------------------- lifecycle */

static int load_join_key(struct node *n) {
  if (n->cfg.join_token[0] == 0)
    return 0;
  uint8_t key[32];
  if (cluster_token_key(n->cfg.join_token, key) != 0) {
    GM_ERROR("join token is malformed (expected gmj1.<key>)", "token_len=%zu",
             strlen(n->cfg.join_token));
    return GM_ECONFIG;
  }
  if (sodium_memcmp(key, n->cluster_key, 32) != 0) {
    /* The token's key replaces a key generated on this first start. */
    char path[NODE_PATH_MAX + 32], hex[65];
    snprintf(path, sizeof path, "%s/cluster.key", n->cfg.data_dir);
    sodium_bin2hex(hex, sizeof hex, key, 32);
    FILE *f = fopen(path, "w");
    if (f == NULL || fprintf(f, "%s\n", hex) < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0) {
      if (f)
        fclose(f);
      return GM_EIO;
    }
    fclose(f);
    memcpy(n->cluster_key, key, 32);
    node_keys_derive(n);
  }
  sodium_memzero(key, sizeof key);
  return 0;
}

int cluster_start(struct node *n) {
  int rc = load_join_key(n);
  if (rc != 0)
    return rc;
  struct cluster *cl = calloc(1, sizeof *cl);
  if (cl == NULL)
    return GM_ENOMEM;
  cl->spool_fd = -1;
  n->cluster = cl;
  cl->n = n;
  cl->loop = n->loop;
  cl->id = n->cfg.node_id;
  snprintf(cl->address, sizeof cl->address, "%s", n->cfg.cluster_listen);
  memcpy(cl->key, n->cluster_key, 32);
  if (n->cfg.join[0])
    snprintf(cl->join_target, sizeof cl->join_target, "%s", n->cfg.join);

  struct sockaddr_storage ss;
  if (addr_to_sockaddr(cl->address, &ss) != 0) {
    GM_ERROR("cluster-listen must be IP:PORT", "value=%s", cl->address);
    return GM_ECONFIG;
  }
  uv_tcp_init(cl->loop, &cl->listener);
  cl->listener.data = cl;
  int urc = uv_tcp_bind(&cl->listener, (struct sockaddr *)&ss, 0);
  if (urc == 0)
    urc = uv_listen((uv_stream_t *)&cl->listener, 128, on_accept);
  cl->listening = true;
  if (urc != 0) {
    GM_ERROR("cannot listen on the cluster port", "addr=%s err=%s", cl->address,
             uv_strerror(urc));
    return GM_EIO;
  }
  uv_idle_init(cl->loop, &cl->kick);
  cl->kick.data = cl;
  uv_timer_init(cl->loop, &cl->tick);
  cl->tick.data = cl;

  char dir[NODE_PATH_MAX + 32];
  snprintf(dir, sizeof dir, "%s/raft", n->cfg.data_dir);
  if (mkdir(dir, 0700) != 0 && errno != EEXIST)
    return GM_EIO;
  if ((rc = gm_fsm_init(&cl->fsm, n->ledger, cl->id)) != 0)
    return rc;
  cl->fsm.on_applied = on_applied;
  cl->fsm.after_apply = after_apply;
  cl->fsm.on_snapshot = on_snapshot;
  cl->fsm.clock_us = clock_us;
  cl->fsm.arg = cl;
  cl->fsm.raft = &cl->raft;
  cl->transport.version = 1;
  cl->transport.impl = cl;
  cl->transport.init = tr_init;
  cl->transport.listen = tr_listen;
  cl->transport.connect = tr_connect;
  cl->transport.close = tr_close;
  if ((rc = raft_uv_init(&cl->io, cl->loop, dir, &cl->transport)) != 0) {
    GM_ERROR("raft_uv_init failed", "err=\"%s\"", cl->io.errmsg);
    return GM_EIO;
  }
  if ((rc = raft_init(&cl->raft, &cl->io, &cl->fsm.fsm, cl->id, cl->address)) != 0) {
    GM_ERROR("raft_init failed", "err=\"%s\"", raft_errmsg(&cl->raft));
    return GM_EIO;
  }
  /* libraft formats every diagnostic for a tracer that is not NULL, even
   * its default one that prints nothing. */
  cl->raft.tracer = NULL;
  raft_set_election_timeout(&cl->raft, n->cfg.election_timeout_ms);
  raft_set_heartbeat_timeout(&cl->raft, n->cfg.heartbeat_ms);
  raft_set_snapshot_threshold(&cl->raft, n->cfg.snapshot_threshold);
  raft_set_snapshot_trailing(&cl->raft, n->cfg.snapshot_threshold / 2);
  raft_set_pre_vote(&cl->raft, true);
  if (n->cfg.bootstrap) {
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    raft_configuration_add(&conf, cl->id, cl->address, RAFT_VOTER);
    rc = raft_bootstrap(&cl->raft, &conf);
    raft_configuration_close(&conf);
    if (rc == 0)
      GM_INFO("cluster bootstrapped", "node_id=%" PRIu64 " addr=%s", cl->id, cl->address);
    else if (rc != RAFT_CANTBOOTSTRAP) {
      GM_ERROR("raft_bootstrap failed", "err=\"%s\"", raft_errmsg(&cl->raft));
      return GM_EIO;
    }
  }
  if ((rc = raft_start(&cl->raft)) != 0) {
    GM_ERROR("raft_start failed", "err=\"%s\"", raft_errmsg(&cl->raft));
    return GM_EIO;
  }
  cl->raft_started = true;
  cl->leader_contact_ms = now_ms(); /* a grace period for the first ping */
  n->commit.remote = remote_submit;
  n->commit.remote_idle = remote_idle;
  n->commit.remote_arg = cl;
  spool_load(cl);
  uv_timer_start(&cl->tick, on_tick, TICK_MS, TICK_MS);
  GM_INFO("cluster member started", "node_id=%" PRIu64 " addr=%s join=%s voters=%u", cl->id,
          cl->address, cl->join_target[0] ? cl->join_target : "-", n->cfg.voters);
  return 0;
}

static void cl_release(struct cluster *cl) {
  cl->closing_handles--;
  if (cl->closing_handles == 0 && cl->conns == NULL && cl->stopped) {
    void (*done)(void *) = cl->stopped;
    cl->stopped = NULL;
    done(cl->stopped_arg);
  }
}

static void cl_handle_closed(uv_handle_t *h) { cl_release(h->data); }

static void on_raft_closed(struct raft *r) {
  struct cluster *cl = r->data;
  cl->raft_started = false;
  raft_uv_close(&cl->io);
  for (struct conn *c = cl->conns, *next; c; c = next) {
    next = c->next;
    conn_close(c);
  }
  cl->closing_handles += 3;
  uv_close((uv_handle_t *)&cl->listener, cl_handle_closed);
  uv_close((uv_handle_t *)&cl->kick, cl_handle_closed);
  uv_close((uv_handle_t *)&cl->tick, cl_handle_closed);
}

void cluster_stop(struct node *n, void (*done)(void *arg), void *arg) {
  struct cluster *cl = n->cluster;
  if (cl == NULL || cl->stopping) {
    done(arg);
    return;
  }
  cl->stopping = true;
  cl->stopped = done;
  cl->stopped_arg = arg;
  /* Whatever still waits is answered now (the caller drained first). */
  for (size_t i = 0; i < cl->n_queue; i++)
    fail_item(cl, &cl->queue[i], GM_ESHUTDOWN);
  cl->n_queue = 0;
  for (size_t i = 0; i < cl->n_waiters; i++)
    complete(cl, &cl->waiters[i].item, &cl->waiters[i].res);
  cl->n_waiters = 0;
  for (struct call *call = cl->calls, *next; call; call = next) {
    next = call->next;
    call_finish(cl, call, NULL);
  }
  if (cl->raft_started) {
    cl->raft.data = cl;
    raft_close(&cl->raft, on_raft_closed);
  } else {
    on_raft_closed(&cl->raft);
  }
}

void cluster_free(struct node *n) {
  struct cluster *cl = n->cluster;
  if (cl == NULL)
    return;
  gm_fsm_close(&cl->fsm);
  if (cl->spool_fd >= 0) {
    GM_ASSERT(!cl->spool_syncing);
    if (fdatasync(cl->spool_fd) != 0)
      GM_WARN("cannot sync the file of kept audit entries", "err=%s", strerror(errno));
    else if (cl->spool_bytes > 0)
      GM_INFO("audit entries kept on disk for the next start", "bytes=%" PRIu64, cl->spool_bytes);
    close(cl->spool_fd);
    if (cl->spool_bytes == 0) {
      char path[NODE_PATH_MAX + 16];
      spool_path(cl, path, sizeof path);
      unlink(path);
    }
  }
  free(cl->queue);
  free(cl->waiters);
  sodium_memzero(cl->key, sizeof cl->key);
  free(cl);
  n->cluster = NULL;
}

/* -------------------------------------------------------------- status */

static const char *state_name(struct cluster *cl) {
  switch (raft_state(&cl->raft)) {
  case RAFT_LEADER: return "leader";
  case RAFT_FOLLOWER: return "follower";
  case RAFT_CANDIDATE: return "candidate";
  default: return "unavailable";
  }
}

static const char *role_name(int role) {
  return role == RAFT_VOTER ? "voter" : role == RAFT_STANDBY ? "standby" : "spare";
}

json_t *cluster_status(struct node *n) {
  struct cluster *cl = n->cluster;
  json_t *o = json_object();
  if (cl == NULL) {
    json_object_set_new(o, "node_id", json_integer(n->cfg.node_id));
    json_object_set_new(o, "role", json_string("standalone"));
    json_object_set_new(o, "leader", json_integer(n->cfg.node_id));
    json_object_set_new(o, "term", json_integer(0));
    json_object_set_new(o, "applied_index", json_integer((json_int_t)ledger_applied_seq(n->ledger)));
    json_object_set_new(o, "members", json_array());
    json_object_set_new(o, "partition_mode", json_false());
    return o;
  }
  raft_id lid = 0;
  const char *laddr = NULL;
  raft_leader(&cl->raft, &lid, &laddr);
  const struct raft_server *me = server_of(cl, cl->id);
  uint64_t applied = raft_last_applied(&cl->raft);
  bool leader = raft_state(&cl->raft) == RAFT_LEADER;
  json_object_set_new(o, "node_id", json_integer((json_int_t)cl->id));
  json_object_set_new(o, "role", json_string(state_name(cl)));
  json_object_set_new(o, "membership", json_string(me ? role_name(me->role) : "none"));
  json_object_set_new(o, "leader", lid ? json_integer((json_int_t)lid) : json_null());
  json_object_set_new(o, "leader_address", json_string(laddr ? laddr : ""));
  json_object_set_new(o, "term", json_integer((json_int_t)raft_current_term(&cl->raft)));
  json_object_set_new(o, "applied_index", json_integer((json_int_t)applied));
  json_object_set_new(o, "commit_index", json_integer((json_int_t)raft_commit_index(&cl->raft)));
  json_object_set_new(o, "last_index", json_integer((json_int_t)raft_last_index(&cl->raft)));
  json_t *ms = json_array();
  int64_t now = now_ms();
  for (unsigned i = 0; i < cl->raft.configuration.n; i++) {
    const struct raft_server *s = &cl->raft.configuration.servers[i];
    json_t *m = json_object();
    json_object_set_new(m, "id", json_integer((json_int_t)s->id));
    json_object_set_new(m, "address", json_string(s->address));
    json_object_set_new(m, "role", json_string(role_name(s->role)));
    if (s->id == cl->id) {
      json_object_set_new(m, "reachable", json_true());
      json_object_set_new(m, "applied_index", json_integer((json_int_t)applied));
      json_object_set_new(m, "lag", json_integer(0));
    } else if (leader) {
      struct member *mb = member_get(cl, s->id);
      bool alive = mb && mb->seen && now - mb->last_seen_ms < 3000;
      json_object_set_new(m, "reachable", json_boolean(alive));
      if (mb && mb->seen) {
        json_object_set_new(m, "applied_index", json_integer((json_int_t)mb->applied));
        json_object_set_new(m, "lag", json_integer(mb->applied < applied
                                                       ? (json_int_t)(applied - mb->applied)
                                                       : 0));
      }
    }
    json_array_append_new(ms, m);
  }
  json_object_set_new(o, "members", ms);
  json_object_set_new(o, "partition_mode", json_false());
  return o;
}

void cluster_summary(struct node *n, struct cluster_summary *out) {
  struct cluster *cl = n->cluster;
  memset(out, 0, sizeof *out);
  if (cl == NULL || !cl->raft_started)
    return;
  raft_id lid = 0;
  const char *laddr = NULL;
  raft_leader(&cl->raft, &lid, &laddr);
  out->state = (uint8_t)raft_state(&cl->raft);
  out->applied = raft_last_applied(&cl->raft);
  /* A standby never stands for election, so libraft keeps naming the last
   * leader it heard of however long ago; a leader silent for a few pings is
   * not reachable, whatever libraft says. */
  bool heard = now_ms() - cl->leader_contact_ms < CLUSTER_LEADER_CONTACT_MS;
  out->leader = out->state == RAFT_LEADER || heard ? lid : 0;
}

void cluster_each_peer(struct node *n, void (*fn)(struct node *n, const char *addr)) {
  struct cluster *cl = n->cluster;
  if (cl == NULL || !cl->raft_started)
    return;
  for (unsigned i = 0; i < cl->raft.configuration.n; i++)
    if (cl->raft.configuration.servers[i].id != cl->id)
      fn(n, cl->raft.configuration.servers[i].address);
}

void cluster_metrics(struct node *n, char *out, size_t cap) {
  struct cluster *cl = n->cluster;
  if (cl == NULL) {
    out[0] = 0;
    return;
  }
  snprintf(out, cap,
           "# TYPE gate_raft_applied_index gauge\ngate_raft_applied_index %" PRIu64 "\n"
           "# TYPE gate_raft_term gauge\ngate_raft_term %" PRIu64 "\n"
           "# TYPE gate_raft_leader gauge\ngate_raft_leader %d\n"
           "# TYPE gate_raft_entries_proposed_total counter\ngate_raft_entries_proposed_total %" PRIu64 "\n"
           "# TYPE gate_raft_commands_proposed_total counter\ngate_raft_commands_proposed_total %" PRIu64 "\n"
           "# TYPE gate_raft_commands_forwarded_total counter\ngate_raft_commands_forwarded_total %" PRIu64 "\n"
           "# TYPE gate_raft_retries_total counter\ngate_raft_retries_total %" PRIu64 "\n"
           "# TYPE gate_raft_no_quorum_total counter\ngate_raft_no_quorum_total %" PRIu64 "\n"
           "# TYPE gate_cluster_frames_dropped_total counter\ngate_cluster_frames_dropped_total %" PRIu64 "\n"
           "# TYPE gate_raft_entries_skipped_total counter\ngate_raft_entries_skipped_total %" PRIu64 "\n"
           "# TYPE gate_audit_batches_waiting gauge\ngate_audit_batches_waiting %zu\n"
           "# TYPE gate_audit_dropped_total counter\ngate_audit_dropped_total %" PRIu64 "\n"
           "# TYPE gate_audit_requeued_total counter\ngate_audit_requeued_total %" PRIu64 "\n",
           (uint64_t)raft_last_applied(&cl->raft), (uint64_t)raft_current_term(&cl->raft),
           raft_state(&cl->raft) == RAFT_LEADER, cl->entries_proposed, cl->cmds_proposed,
           cl->cmds_forwarded, cl->retries, cl->no_quorum, cl->frames_dropped,
           cl->fsm.skipped_entries, cl->keeping, cl->audit_dropped, cl->audit_requeued);
}

/* ---------------------------------------------------------------- leave */

struct leave_ctx {
  void (*cb)(void *arg, int rc, const char *msg);
  void *arg;
};

static void on_leave_reply(struct cluster *cl, struct call *call, const msgpack_object *reply) {
  (void)cl;
  struct leave_ctx *lc = call->ctx;
  int64_t rc = GM_ENOQUORUM;
  char msg[128] = "no reply from the leader";
  if (reply != NULL) {
    mpk_get_i64(reply, "rc", &rc);
    mpk_get_str(reply, "msg", msg, sizeof msg);
  }
  lc->cb(lc->arg, (int)rc, msg);
  free(lc);
}

int cluster_leave(struct node *n, uint64_t id, void (*cb)(void *arg, int rc, const char *msg),
                  void *arg) {
  struct cluster *cl = n->cluster;
  if (cl == NULL)
    return GM_ESTATE;
  raft_id lid = 0;
  const char *laddr = NULL;
  raft_leader(&cl->raft, &lid, &laddr);
  if (lid == 0 || laddr == NULL)
    return GM_ENOQUORUM;
  struct leave_ctx *lc = malloc(sizeof *lc);
  if (lc == NULL)
    return GM_ENOMEM;
  lc->cb = cb;
  lc->arg = arg;
  struct mpk_w w;
  mpk_w_init(&w);
  uint64_t rid = ++cl->next_call;
  mpk_map(&w, 3);
  mpk_kv_str(&w, "t", "leave");
  mpk_kv_u64(&w, "id", rid);
  mpk_kv_u64(&w, "node", id);
  /* Also to itself when it leads: the RPC path is the same. */
  struct call *call = rpc_call(cl, laddr, &w, on_leave_reply, rid);
  mpk_w_free(&w);
  if (call == NULL) {
    free(lc);
    return GM_ENOQUORUM;
  }
  call->ctx = lc;
  return 0;
}
