/*
 * record.h — msgpack codecs of stored records (internal to ledger/).
 */
#ifndef GM_LEDGER_RECORD_H
#define GM_LEDGER_RECORD_H

#include "../lib/mpk.h"
#include "ledger.h"

void ledger__event_enc(struct mpk_w *w, const struct ledger_event *e);
int ledger__event_dec(const void *p, size_t n, struct ledger_event *e);
void ledger__ticket_enc(struct mpk_w *w, const struct ledger_ticket *t);
int ledger__ticket_dec(const void *p, size_t n, struct ledger_ticket *t);
void ledger__cred_enc(struct mpk_w *w, const struct ledger_cred *c);
int ledger__cred_dec(const void *p, size_t n, struct ledger_cred *c);
void ledger__user_enc(struct mpk_w *w, const struct ledger_user *u);
int ledger__user_dec(const void *p, size_t n, struct ledger_user *u);
void ledger__key_enc(struct mpk_w *w, const struct ledger_key *k);
int ledger__key_dec(const void *p, size_t n, struct ledger_key *k);
void ledger__result_enc(struct mpk_w *w, const struct ledger_result *r);
int ledger__result_dec(const void *p, size_t n, struct ledger_result *r);
void ledger__incident_enc(struct mpk_w *w, const struct ledger_incident *x);
int ledger__incident_dec(const void *p, size_t n, struct ledger_incident *x);
void ledger__bio_enc(struct mpk_w *w, const struct ledger_bio *b);
int ledger__bio_dec(const void *p, size_t n, struct ledger_bio *b);
void ledger__zone_enc(struct mpk_w *w, const struct ledger_zone *z);
int ledger__zone_dec(const void *p, size_t n, struct ledger_zone *z);
void ledger__audit_encode(struct mpk_w *w, const struct ledger_audit *a);
int ledger__audit_decode(const msgpack_object *o, struct ledger_audit *a);

#endif
