/* swim.c — SWIM membership as a deterministic state machine. */
#include "gossip/swim.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "gossip/wire.h"
#include "lib/buf.h"
#include "lib/err.h"

struct relay { /* an indirect probe run for another gate */
  uint32_t my_seq, their_seq;
  char requester[SWIM_ADDR_MAX + 1];
  int64_t expires_ms;
};

struct swim {
  struct swim_config cfg;
  struct swim_io io;
  struct swim_member m[SWIM_MEMBERS_MAX]; /* m[0] is this gate */
  size_t n;
  uint8_t pending[SWIM_MEMBERS_MAX]; /* retransmissions left for m[i]'s state */
  uint64_t rng;
  uint32_t seq;
  /* the current probe */
  uint64_t target;
  uint32_t probe_seq;
  int64_t probe_sent_ms, next_probe_ms, next_sync_ms;
  bool acked, indirect_sent;
  uint64_t order[SWIM_MEMBERS_MAX]; /* this round's probe order */
  size_t order_n, order_pos;
  struct relay relays[SWIM_RELAYS_MAX];
  size_t sync_pos;
};

void swim_config_default(struct swim_config *c) {
  c->probe_interval_ms = 1000;
  c->probe_timeout_ms = 500;
  c->indirect_checks = 3;
  c->suspicion_mult = 4;
  c->retransmit_mult = 4;
  c->push_pull_ms = 30000;
}

const char *swim_state_str(int st) {
  return st == SWIM_ALIVE ? "alive" : st == SWIM_SUSPECT ? "suspect" : "dead";
}

static uint64_t rnd(struct swim *s) { /* xorshift64* */
  s->rng ^= s->rng >> 12;
  s->rng ^= s->rng << 25;
  s->rng ^= s->rng >> 27;
  return s->rng * 2685821657736338717ULL;
}

static unsigned log10ceil(size_t n) {
  unsigned l = 1;
  while (n >= 10) {
    n /= 10;
    l++;
  }
  return l;
}

static struct swim_member *find(struct swim *s, uint64_t id) {
  for (size_t i = 0; i < s->n; i++)
    if (s->m[i].id == id)
      return &s->m[i];
  return NULL;
}

const struct swim_member *swim_find(const struct swim *s, uint64_t id) {
  return find((struct swim *)s, id);
}

size_t swim_members(const struct swim *s, const struct swim_member **out) {
  *out = s->m;
  return s->n;
}

size_t swim_count(const struct swim *s, enum swim_state st) {
  size_t c = 0;
  for (size_t i = 0; i < s->n; i++)
    c += s->m[i].state == st;
  return c;
}

static void spread(struct swim *s, struct swim_member *m) {
  s->pending[m - s->m] = (uint8_t)(s->cfg.retransmit_mult * log10ceil(s->n + 1));
  if (s->io.changed)
    s->io.changed(s->io.arg, m);
}

struct swim *swim_create(const struct swim_config *c, uint64_t id, const char *addr,
                         uint64_t seed, const struct swim_io *io, int64_t now_ms) {
  if (id == 0 || addr == NULL || strlen(addr) > SWIM_ADDR_MAX || io == NULL || io->send == NULL)
    return NULL;
  struct swim *s = calloc(1, sizeof *s);
  if (s == NULL)
    return NULL;
  s->cfg = *c;
  s->io = *io;
  s->rng = seed ? seed : 0x9e3779b97f4a7c15ULL;
  s->n = 1;
  s->m[0].id = id;
  strcpy(s->m[0].addr, addr);
  s->m[0].since_ms = now_ms;
  s->next_probe_ms = now_ms + (int64_t)(rnd(s) % c->probe_interval_ms);
  s->next_sync_ms = now_ms + c->push_pull_ms;
  return s;
}

void swim_destroy(struct swim *s) { free(s); }

/* ------------------------------------------------------------ encoding */

struct wr {
  uint8_t *p;
  size_t n, cap;
};

static bool w_fits(const struct wr *w, size_t k) { return w->n + k <= w->cap; }
static void w_u8(struct wr *w, uint8_t v) { w->p[w->n++] = v; }
static void w_u32(struct wr *w, uint32_t v) {
  gm_le32_put(w->p + w->n, v);
  w->n += 4;
}
static void w_u64(struct wr *w, uint64_t v) {
  gm_le64_put(w->p + w->n, v);
  w->n += 8;
}
static void w_str(struct wr *w, const void *p, size_t k) {
  w_u8(w, (uint8_t)k);
  memcpy(w->p + w->n, p, k);
  w->n += k;
}

static size_t update_size(const struct swim_member *m) {
  return 8 + 8 + 1 + 1 + strlen(m->addr) + 1 + m->meta_len;
}

static void w_update(struct wr *w, const struct swim_member *m) {
  w_u64(w, m->id);
  w_u64(w, m->inc);
  w_u8(w, m->state);
  w_str(w, m->addr, strlen(m->addr));
  w_str(w, m->meta, m->meta_len);
}

/* Header of a message; *count_at is where the update count goes. */
static void w_head(struct swim *s, struct wr *w, uint8_t type, uint32_t seq) {
  w_u8(w, type);
  w_u64(w, s->m[0].id);
  w_u32(w, seq);
}

/* Piggybacks pending updates (this gate's own first) while they fit. */
static void w_gossip(struct swim *s, struct wr *w) {
  size_t at = w->n;
  w_u8(w, 0);
  uint8_t count = 0;
  for (size_t i = 0; i < s->n && count < 255; i++) {
    if (s->pending[i] == 0 || !w_fits(w, update_size(&s->m[i])))
      continue;
    w_update(w, &s->m[i]);
    s->pending[i]--;
    count++;
  }
  w->p[at] = count;
}

static void send_msg(struct swim *s, const char *addr, uint8_t type, uint32_t seq,
                     const struct swim_member *target) {
  uint8_t buf[GW_BODY_MAX];
  struct wr w = {buf, 0, sizeof buf};
  w_head(s, &w, type, seq);
  if (type == SWIM_PING || type == SWIM_PING_REQ) {
    w_u64(&w, target ? target->id : 0);
    const char *a = target ? target->addr : "";
    w_str(&w, a, strlen(a));
  }
  /* Every message announces its sender, so a gate first reached by address
   * learns who answered. */
  s->pending[0] = s->pending[0] ? s->pending[0] : 1;
  w_gossip(s, &w);
  s->io.send(s->io.arg, addr, buf, w.n);
}

/* ------------------------------------------------------------ merging */

static struct swim_member *add(struct swim *s, uint64_t id) {
  if (s->n == SWIM_MEMBERS_MAX) { /* reuse the longest-dead slot */
    size_t old = 0;
    for (size_t i = 1; i < s->n; i++)
      if (s->m[i].state == SWIM_DEAD && (old == 0 || s->m[i].since_ms < s->m[old].since_ms))
        old = i;
    if (old == 0)
      return NULL;
    memset(&s->m[old], 0, sizeof s->m[old]);
    s->m[old].id = id;
    s->pending[old] = 0;
    return &s->m[old];
  }
  struct swim_member *m = &s->m[s->n++];
  memset(m, 0, sizeof *m);
  m->id = id;
  return m;
}

static void apply(struct swim *s, const struct swim_member *u, int64_t now) {
  struct swim_member *self = &s->m[0];
  if (u->id == self->id) {
    if (u->state != SWIM_ALIVE && u->inc >= self->inc) { /* refute */
      self->inc = u->inc + 1;
      self->since_ms = now;
      spread(s, self);
    }
    return;
  }
  struct swim_member *m = find(s, u->id);
  bool fresh = m == NULL;
  if (fresh) {
    if (u->state == SWIM_DEAD)
      return; /* nothing to forget */
  } else {
    bool take;
    switch (u->state) {
    case SWIM_ALIVE:
      take = u->inc > m->inc;
      break;
    case SWIM_SUSPECT:
      take = (m->state == SWIM_ALIVE && u->inc >= m->inc) ||
             (m->state == SWIM_SUSPECT && u->inc > m->inc) ||
             (m->state == SWIM_DEAD && u->inc > m->inc);
      break;
    default:
      take = m->state != SWIM_DEAD && u->inc >= m->inc;
      break;
    }
    if (!take)
      return;
  }
  if (fresh && (m = add(s, u->id)) == NULL)
    return;
  bool state_changed = fresh || m->state != u->state;
  m->inc = u->inc;
  m->state = u->state;
  memcpy(m->addr, u->addr, sizeof m->addr);
  memcpy(m->meta, u->meta, u->meta_len);
  m->meta_len = u->meta_len;
  if (state_changed)
    m->since_ms = now;
  spread(s, m);
}

static void mark(struct swim *s, struct swim_member *m, uint8_t state, int64_t now) {
  struct swim_member u = *m;
  u.state = state;
  apply(s, &u, now);
}

/* ------------------------------------------------------------ decoding */

struct rd {
  const uint8_t *p;
  size_t n, off;
};

static int r_u8(struct rd *r, uint8_t *v) {
  if (r->off + 1 > r->n)
    return GM_EDECODE;
  *v = r->p[r->off++];
  return 0;
}
static int r_u32(struct rd *r, uint32_t *v) {
  if (r->off + 4 > r->n)
    return GM_EDECODE;
  *v = gm_le32_get(r->p + r->off);
  r->off += 4;
  return 0;
}
static int r_u64(struct rd *r, uint64_t *v) {
  if (r->off + 8 > r->n)
    return GM_EDECODE;
  *v = gm_le64_get(r->p + r->off);
  r->off += 8;
  return 0;
}
static int r_str(struct rd *r, char *dst, size_t cap) { /* NUL-terminated, no NUL inside */
  uint8_t k;
  if (r_u8(r, &k) != 0 || k > cap - 1 || r->off + k > r->n || memchr(r->p + r->off, 0, k))
    return GM_EDECODE;
  memcpy(dst, r->p + r->off, k);
  dst[k] = 0;
  r->off += k;
  return 0;
}
static int r_bin(struct rd *r, uint8_t *dst, size_t cap, uint8_t *len) {
  uint8_t k;
  if (r_u8(r, &k) != 0 || k > cap || r->off + k > r->n)
    return GM_EDECODE;
  memcpy(dst, r->p + r->off, k);
  *len = k;
  r->off += k;
  return 0;
}

/* ------------------------------------------------------------ protocol */

static struct swim_member *random_alive(struct swim *s, uint64_t except) {
  size_t cand[SWIM_MEMBERS_MAX], k = 0;
  for (size_t i = 1; i < s->n; i++)
    if (s->m[i].state == SWIM_ALIVE && s->m[i].id != except)
      cand[k++] = i;
  return k ? &s->m[cand[rnd(s) % k]] : NULL;
}

static void new_round(struct swim *s) {
  s->order_n = 0;
  for (size_t i = 1; i < s->n; i++)
    if (s->m[i].state != SWIM_DEAD)
      s->order[s->order_n++] = s->m[i].id;
  for (size_t i = s->order_n; i > 1; i--) { /* Fisher-Yates */
    size_t j = rnd(s) % i;
    uint64_t t = s->order[i - 1];
    s->order[i - 1] = s->order[j];
    s->order[j] = t;
  }
  s->order_pos = 0;
}

static void probe_next(struct swim *s, int64_t now) {
  /* conclude the last probe */
  struct swim_member *t = s->target ? find(s, s->target) : NULL;
  if (t != NULL && !s->acked && t->state == SWIM_ALIVE)
    mark(s, t, SWIM_SUSPECT, now);
  s->target = 0;
  for (int tries = 0; tries < 2 && s->target == 0; tries++) {
    if (s->order_pos >= s->order_n)
      new_round(s);
    while (s->order_pos < s->order_n) {
      struct swim_member *m = find(s, s->order[s->order_pos++]);
      if (m != NULL && m->state != SWIM_DEAD) {
        s->target = m->id;
        break;
      }
    }
  }
  if (s->target == 0)
    return;
  t = find(s, s->target);
  s->probe_seq = ++s->seq;
  s->probe_sent_ms = now;
  s->acked = false;
  s->indirect_sent = false;
  send_msg(s, t->addr, SWIM_PING, s->probe_seq, t);
}

static void sync_to(struct swim *s, const char *addr, uint8_t type) {
  /* the whole table in as many datagrams as it takes */
  size_t i = 0;
  while (i < s->n) {
    uint8_t buf[GW_BODY_MAX];
    struct wr w = {buf, 0, sizeof buf};
    w_head(s, &w, type, ++s->seq);
    size_t at = w.n;
    w_u8(&w, 0);
    uint8_t count = 0;
    while (i < s->n && count < 255 && w_fits(&w, update_size(&s->m[i]))) {
      w_update(&w, &s->m[i++]);
      count++;
    }
    w.p[at] = count;
    s->io.send(s->io.arg, addr, buf, w.n);
  }
}

void swim_tick(struct swim *s, int64_t now) {
  if (s->target != 0 && !s->acked && !s->indirect_sent &&
      now - s->probe_sent_ms >= s->cfg.probe_timeout_ms) {
    s->indirect_sent = true;
    struct swim_member *t = find(s, s->target);
    for (uint32_t k = 0; t != NULL && k < s->cfg.indirect_checks; k++) {
      struct swim_member *via = random_alive(s, s->target);
      if (via == NULL)
        break;
      send_msg(s, via->addr, SWIM_PING_REQ, s->probe_seq, t);
    }
  }
  if (now >= s->next_probe_ms) {
    probe_next(s, now);
    s->next_probe_ms = now + s->cfg.probe_interval_ms;
  }
  int64_t suspicion = (int64_t)s->cfg.suspicion_mult * log10ceil(s->n) * s->cfg.probe_interval_ms;
  for (size_t i = 1; i < s->n; i++)
    if (s->m[i].state == SWIM_SUSPECT && now - s->m[i].since_ms >= suspicion)
      mark(s, &s->m[i], SWIM_DEAD, now);
  if (now >= s->next_sync_ms && s->n > 1) {
    s->next_sync_ms = now + s->cfg.push_pull_ms;
    size_t i = 1 + (size_t)(rnd(s) % (s->n - 1)); /* dead ones too: a healed partition */
    sync_to(s, s->m[i].addr, SWIM_SYNC);
  }
  for (size_t i = 0; i < SWIM_RELAYS_MAX; i++)
    if (s->relays[i].expires_ms != 0 && now >= s->relays[i].expires_ms)
      s->relays[i].expires_ms = 0;
}

int64_t swim_next_tick(const struct swim *s) {
  int64_t t = s->next_probe_ms;
  if (s->target != 0 && !s->acked && !s->indirect_sent && s->probe_sent_ms + s->cfg.probe_timeout_ms < t)
    t = s->probe_sent_ms + s->cfg.probe_timeout_ms;
  int64_t suspicion = (int64_t)s->cfg.suspicion_mult * log10ceil(s->n) * s->cfg.probe_interval_ms;
  for (size_t i = 1; i < s->n; i++)
    if (s->m[i].state == SWIM_SUSPECT && s->m[i].since_ms + suspicion < t)
      t = s->m[i].since_ms + suspicion;
  if (s->n > 1 && s->next_sync_ms < t)
    t = s->next_sync_ms;
  for (size_t i = 0; i < SWIM_RELAYS_MAX; i++)
    if (s->relays[i].expires_ms != 0 && s->relays[i].expires_ms < t)
      t = s->relays[i].expires_ms;
  return t;
}

void swim_join(struct swim *s, const char *addr, int64_t now) {
  (void)now;
  s->pending[0] = (uint8_t)(s->cfg.retransmit_mult * log10ceil(s->n + 1));
  sync_to(s, addr, SWIM_SYNC);
}

int swim_set_meta(struct swim *s, const uint8_t *meta, size_t n, int64_t now) {
  if (n > SWIM_META_MAX)
    return GM_ETOOBIG;
  memcpy(s->m[0].meta, meta, n);
  s->m[0].meta_len = (uint8_t)n;
  s->m[0].inc++;
  s->m[0].since_ms = now;
  spread(s, &s->m[0]);
  return 0;
}

int swim_recv(struct swim *s, const uint8_t *body, size_t n, int64_t now) {
  struct rd r = {body, n, 0};
  uint8_t type, count;
  uint64_t from, target = 0;
  uint32_t seq;
  char taddr[SWIM_ADDR_MAX + 1] = "";
  if (r_u8(&r, &type) != 0 || type < SWIM_PING || type > SWIM_SYNC_REPLY || r_u64(&r, &from) != 0 ||
      from == 0 || r_u32(&r, &seq) != 0)
    return GM_EDECODE;
  if ((type == SWIM_PING || type == SWIM_PING_REQ) &&
      (r_u64(&r, &target) != 0 || r_str(&r, taddr, sizeof taddr) != 0))
    return GM_EDECODE;
  /* Decode every update before applying any: a malformed body changes nothing. */
  struct swim_member ups[255];
  if (r_u8(&r, &count) != 0)
    return GM_EDECODE;
  for (uint8_t i = 0; i < count; i++) {
    struct swim_member *u = &ups[i];
    memset(u, 0, sizeof *u);
    if (r_u64(&r, &u->id) != 0 || u->id == 0 || r_u64(&r, &u->inc) != 0 ||
        r_u8(&r, &u->state) != 0 || u->state > SWIM_DEAD ||
        r_str(&r, u->addr, sizeof u->addr) != 0 ||
        r_bin(&r, u->meta, sizeof u->meta, &u->meta_len) != 0)
      return GM_EDECODE;
  }
  if (r.off != n)
    return GM_EDECODE;
  if (from == s->m[0].id)
    return 0; /* our own packet, looped back */
  for (uint8_t i = 0; i < count; i++)
    apply(s, &ups[i], now);
  const struct swim_member *sender = find(s, from);
  switch (type) {
  case SWIM_PING:
    if (target == s->m[0].id && sender != NULL)
      send_msg(s, sender->addr, SWIM_ACK, seq, NULL);
    break;
  case SWIM_ACK:
    if (seq == s->probe_seq && s->target != 0) {
      s->acked = true;
      break;
    }
    for (size_t i = 0; i < SWIM_RELAYS_MAX; i++) {
      struct relay *rl = &s->relays[i];
      if (rl->expires_ms != 0 && rl->my_seq == seq) {
        send_msg(s, rl->requester, SWIM_ACK, rl->their_seq, NULL);
        rl->expires_ms = 0;
      }
    }
    break;
  case SWIM_PING_REQ: {
    if (sender == NULL || target == 0 || target == s->m[0].id || taddr[0] == 0)
      break;
    struct relay *slot = NULL;
    for (size_t i = 0; i < SWIM_RELAYS_MAX && slot == NULL; i++)
      if (s->relays[i].expires_ms == 0)
        slot = &s->relays[i];
    if (slot == NULL)
      break; /* bounded: this gate is busy relaying already */
    slot->my_seq = ++s->seq;
    slot->their_seq = seq;
    memcpy(slot->requester, sender->addr, sizeof slot->requester);
    slot->expires_ms = now + s->cfg.probe_interval_ms;
    struct swim_member t = {.id = target};
    memcpy(t.addr, taddr, sizeof t.addr);
    send_msg(s, taddr, SWIM_PING, slot->my_seq, &t);
    break;
  }
  case SWIM_SYNC:
    if (sender != NULL)
      sync_to(s, sender->addr, SWIM_SYNC_REPLY);
    break;
  default:
    break;
  }
  return 0;
}
