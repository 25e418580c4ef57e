/*
 * bio.h — the `biometric` method: face templates (float vectors computed on
 * the attendee's or the gate's device) matched by cosine similarity.
 *
 * Sealing: a template is normalised, then encrypted with a fresh per-ticket
 * data key (XChaCha20-Poly1305, the ticket id as associated data); the data
 * key is wrapped with the cluster's biometric key. Only the sealed forms
 * enter the enrol command, so the Raft log, the ledger and its snapshots hold
 * ciphertext. Erasing destroys the wrapped key, replicated as a command.
 *
 * Matching: 1:1 when the ticket is known (the path's ticket, or ticket_id in
 * presented_data), 1:N over every enrolled template otherwise; the best
 * match must reach the threshold and beat the second best by the margin.
 *
 * The index: each gate keeps the decrypted templates of the ledger in memory
 * it locks (mlock, excluded from core dumps), as rows of floats padded to a
 * multiple of 16 and scanned with SIMD. It follows the ledger through the
 * biometric change log (ledger_bio_log_each), so an enrolment or an erasure
 * applied by Raft reaches it on the next sync, and an erased template is
 * wiped from memory there — the moment a gate's receipt is recorded.
 */
#ifndef GM_BIO_H
#define GM_BIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "method.h"

void bio_key_derive(const uint8_t cluster_key[32], uint8_t bio_key[32]);

/* A JSON array of exactly dim finite numbers, normalised into out.
 * GM_EINVAL (env->err says why) otherwise, or when its norm is 0. */
int bio_template_parse(struct method_env *env, const json_t *arr, uint32_t dim, float *out);

/* Seals v (dim floats) for ticket_id: wrapped key and ciphertext
 * (24 + 4*dim + 16 bytes). */
int bio_seal(const uint8_t bio_key[32], const char *ticket_id, const float *v, uint32_t dim,
             void (*random)(void *arg, void *out, size_t n), void *random_arg,
             uint8_t wrapped[LEDGER_BIO_WRAPPED_LEN], uint8_t *ct, size_t *ct_len);
/* Opens an enrolment into out (b->dim floats). GM_ECRYPTO if it does not
 * authenticate, GM_ESTATE if it was erased. */
int bio_open(const uint8_t bio_key[32], const struct ledger_bio *b, float *out);

double bio_dot(const float *a, const float *b, uint32_t dim);

struct bio_index;

struct bio_match {
  bool found;       /* any template at all */
  double best;
  double second;    /* -1 when there is no second template */
  char ticket_id[LEDGER_ID_MAX + 1];
};

int bio_index_open(struct bio_index **out, uint32_t dim);
void bio_index_close(struct bio_index *ix);
/* Brings the index up to the ledger rd reads: every change logged after the
 * last one seen. erased(arg, ticket) is called for each erasure applied to
 * the index (its memory already wiped), including erasures found on the
 * first sync of a restarted gate. Templates of another dimension are
 * skipped (counted in bio_index_skipped). */
int bio_index_sync(struct bio_index *ix, struct ledger_rd *rd, const uint8_t bio_key[32],
                   void (*erased)(void *arg, const char *ticket_id), void *arg);
int bio_index_put(struct bio_index *ix, const char *ticket_id, const float *v);
void bio_index_del(struct bio_index *ix, const char *ticket_id);
/* The row of ticket_id, or NULL. */
const float *bio_index_get(const struct bio_index *ix, const char *ticket_id);
/* Best and second best by cosine similarity against a normalised probe. */
void bio_index_search(const struct bio_index *ix, const float *probe, struct bio_match *m);
size_t bio_index_count(const struct bio_index *ix);
size_t bio_index_bytes(const struct bio_index *ix);
bool bio_index_locked(const struct bio_index *ix);
uint64_t bio_index_gen(const struct bio_index *ix);
uint64_t bio_index_skipped(const struct bio_index *ix);

#endif
