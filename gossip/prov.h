/*
 * prov.h — provisional admissions as gossip carries them: a bounded store
 * of records, each numbered by the gate that admitted (origin, seq = 1, 2,
 * ...), indexed by credential so any gate that has heard of an admission
 * refuses the same credential, with digests for anti-entropy: a gate sends
 * what it has from every origin (the highest seq below which it has them
 * all), and the peer answers with what is missing.
 *
 * No sockets, no clocks: times are in the records. A record stays until its
 * origin's admissions up to it are in the ledger (prov_prune); a store that
 * is full refuses more (GM_EFULL), which the admission policy turns into a
 * refusal to admit provisionally.
 *
 * Record on the wire (integers little endian):
 *   origin u64 | seq u64 | epoch u64 | time_ms i64 | key len u8 | key
 *   | method len u8 | method | gate len u8 | gate
 * Digest: count u16 | (origin u64 | contiguous seq u64) * count
 */
#ifndef GM_GOSSIP_PROV_H
#define GM_GOSSIP_PROV_H

#include <stddef.h>
#include <stdint.h>

#define PROV_KEY_MAX 96
#define PROV_METHOD_MAX 16
#define PROV_GATE_MAX 64
#define PROV_REC_WIRE_MAX (8 + 8 + 8 + 8 + 3 + PROV_KEY_MAX + PROV_METHOD_MAX + PROV_GATE_MAX)
#define PROV_ORIGINS_MAX 256

struct prov_rec {
  uint64_t origin; /* node id of the admitting gate */
  uint64_t seq;    /* that gate's provisional admissions, from 1 */
  uint64_t epoch;  /* its partition epoch when it admitted */
  int64_t time_ms;
  uint8_t key_len;
  uint8_t key[PROV_KEY_MAX]; /* the credential, as the ledger keys redeems */
  char method[PROV_METHOD_MAX + 1];
  char gate[PROV_GATE_MAX + 1]; /* the gate label the scanner gave */
};

struct prov;

/* hash_key: 16 bytes keying the credential index (random in a gate, fixed in
 * the simulator). NULL on no memory or max_records == 0. */
struct prov *prov_create(size_t max_records, const uint8_t hash_key[16]);
void prov_destroy(struct prov *p);

/* 1 when the record is new, 0 when it was already here (or already pruned),
 * GM_EFULL when the store is full, GM_EINVAL for a malformed record. */
int prov_add(struct prov *p, const struct prov_rec *r);
/* The first record heard of for this credential, or NULL. */
const struct prov_rec *prov_lookup(const struct prov *p, const uint8_t *key, size_t len);
/* The next seq this gate would give its own admission as `origin`. */
uint64_t prov_next_seq(const struct prov *p, uint64_t origin);
/* Highest seq below which every record of `origin` was received. */
uint64_t prov_contiguous(const struct prov *p, uint64_t origin);
size_t prov_count(const struct prov *p);

/* The origins this store knows (at most cap of them), ascending by id;
 * returns how many. */
size_t prov_origins(const struct prov *p, uint64_t *ids, size_t cap);
/* Moves origin's contiguous mark to at least upto (a peer pruned those: they
 * are in its ledger); records held are kept. */
void prov_skip(struct prov *p, uint64_t origin, uint64_t upto);
/* The oldest record held of origin, or NULL. */
const struct prov_rec *prov_first(const struct prov *p, uint64_t origin);
const struct prov_rec *prov_get(const struct prov *p, uint64_t origin, uint64_t seq);

/* Drops origin's records up to seq (they are in the ledger now); an origin
 * not seen yet is remembered as pruned up to seq. */
void prov_prune(struct prov *p, uint64_t origin, uint64_t upto_seq);

/* This store's digest (its origins ascending by id, so a peer reads it in
 * one pass); returns its length, or GM_ETOOBIG. */
int prov_digest(const struct prov *p, uint8_t *out, size_t cap);
/* Calls fn for each record this store has that a peer with `digest` lacks,
 * at most max of them; returns how many, or GM_EDECODE for a bad digest. */
int prov_missing(const struct prov *p, const uint8_t *digest, size_t n, size_t max,
                 void (*fn)(void *arg, const struct prov_rec *r), void *arg);

int prov_rec_encode(const struct prov_rec *r, uint8_t *out, size_t cap);
/* Reads one record at p[0..n); returns the bytes used, or GM_EDECODE. */
int prov_rec_decode(const uint8_t *p, size_t n, struct prov_rec *r);

/* Messages on the gossip port (the first body byte tells them from SWIM's):
 *   PUSH:   type | count u8 | records                    (new admissions)
 *   DIGEST: type | digest                                (asks for what the sender lacks)
 *   ANSWER: type | marks u8 | (origin u64 | upto u64) * marks | count u8 | records
 *           (what the asker lacks; a mark tells it that this store pruned that
 *           origin's records up to `upto`, so it skips ahead instead of waiting
 *           for records nobody will send) */
#define PROV_MSG_PUSH 0x40
#define PROV_MSG_DIGEST 0x41
#define PROV_MSG_ANSWER 0x42
#define PROV_MARKS_MAX 16
/* Records in one answer to a digest at most; the next digest asks again. */
#define PROV_REPLY_MAX 64

/* Encodes as many of recs as fit in cap (at most 255); *taken says how many.
 * Returns the length, or GM_ETOOBIG when not even one fits. */
int prov_msg_push(const struct prov_rec *const *recs, size_t n, uint8_t *out, size_t cap,
                  size_t *taken);
int prov_msg_digest(const struct prov *p, uint8_t *out, size_t cap);
/* Handles a PUSH (every record decoded before any is added; on_new for each
 * new one) or a DIGEST (the PUSH answer written to reply, *reply_len = 0 when
 * there is nothing to send). GM_EDECODE for a malformed body, GM_EFULL when
 * the store filled up. */
int prov_msg_recv(struct prov *p, const uint8_t *body, size_t n,
                  void (*on_new)(void *arg, const struct prov_rec *r), void *arg,
                  uint8_t *reply, size_t reply_cap, size_t *reply_len);

#endif
