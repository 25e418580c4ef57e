/*
 * swim.h — SWIM membership and failure detection (with Lifeguard-style
 * suspicion and refutation), as a deterministic state machine: time comes
 * in as an argument, randomness from a seed, datagram bodies go out through
 * a callback. The node seals them (gossip/wire.h) and moves them over UDP;
 * the simulator delivers them itself.
 *
 * Every probe interval a gate pings the next member of a shuffled round;
 * without an ack within the probe timeout it asks `indirect_checks` others
 * to ping it; without any ack by the end of the interval the member becomes
 * suspect. A suspect that does not refute within the suspicion timeout
 * (suspicion_mult x log10(members) x probe interval) is dead. A gate that
 * hears itself suspected or declared dead refutes by raising its
 * incarnation. Membership changes ride on every message (each retransmitted
 * retransmit_mult x log10(members + 1) times); every push_pull_ms a gate
 * also sends its whole table to a random member, dead ones included, so
 * two sides of a healed partition find each other again.
 *
 * Body on the wire (integers little endian, sizes checked on every read):
 *   type u8 | sender id u64 | seq u32 | [target id u64 | addr len u8 | addr]
 *   | update count u8 | updates
 *   update = id u64 | incarnation u64 | state u8 | addr len u8 | addr
 *            | meta len u8 | meta
 */
#ifndef GM_GOSSIP_SWIM_H
#define GM_GOSSIP_SWIM_H

#include <stddef.h>
#include <stdint.h>

#define SWIM_MEMBERS_MAX 256
#define SWIM_ADDR_MAX 63
#define SWIM_META_MAX 64
#define SWIM_RELAYS_MAX 32 /* indirect probes this gate runs for others */

enum swim_state { SWIM_ALIVE = 0, SWIM_SUSPECT = 1, SWIM_DEAD = 2 };

enum swim_msg { SWIM_PING = 1, SWIM_ACK = 2, SWIM_PING_REQ = 3, SWIM_SYNC = 4, SWIM_SYNC_REPLY = 5 };

struct swim_config {
  uint32_t probe_interval_ms; /* 1000 */
  uint32_t probe_timeout_ms;  /* 500 */
  uint32_t indirect_checks;   /* 3 */
  uint32_t suspicion_mult;    /* 4 */
  uint32_t retransmit_mult;   /* 4 */
  uint32_t push_pull_ms;      /* 30000 */
};

struct swim_member {
  uint64_t id;
  char addr[SWIM_ADDR_MAX + 1];
  uint64_t inc;
  uint8_t state;
  int64_t since_ms; /* when it entered its state */
  uint8_t meta[SWIM_META_MAX];
  uint8_t meta_len;
};

struct swim_io {
  void *arg;
  void (*send)(void *arg, const char *addr, const uint8_t *body, size_t n);
  /* A member joined or changed state, incarnation, address or metadata. */
  void (*changed)(void *arg, const struct swim_member *m);
};

struct swim;

void swim_config_default(struct swim_config *c);
/* NULL on a bad argument (id 0, address too long) or no memory. */
struct swim *swim_create(const struct swim_config *c, uint64_t id, const char *addr,
                         uint64_t seed, const struct swim_io *io, int64_t now_ms);
void swim_destroy(struct swim *s);

/* Announces this gate to a member known only by address. */
void swim_join(struct swim *s, const char *addr, int64_t now_ms);
/* New metadata (at most SWIM_META_MAX bytes) for this gate, spread as an
 * alive message with a higher incarnation. */
int swim_set_meta(struct swim *s, const uint8_t *meta, size_t n, int64_t now_ms);
void swim_tick(struct swim *s, int64_t now_ms);
/* The earliest time at which swim_tick has something to do (a probe, an
 * indirect probe, a suspicion running out, a sync, a relay expiring): a
 * caller on an event queue sleeps until then, or until a datagram. */
int64_t swim_next_tick(const struct swim *s);
/* One decoded datagram body; GM_EDECODE for a malformed one (dropped whole,
 * nothing applied). */
int swim_recv(struct swim *s, const uint8_t *body, size_t n, int64_t now_ms);

/* The table, this gate included (first). */
size_t swim_members(const struct swim *s, const struct swim_member **out);
const struct swim_member *swim_find(const struct swim *s, uint64_t id);
size_t swim_count(const struct swim *s, enum swim_state st);
const char *swim_state_str(int st);

#endif
