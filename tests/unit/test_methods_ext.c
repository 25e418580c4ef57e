/*
 * The codecs and arithmetic under the nfc, biometric and geofence methods,
 * against published vectors where they exist: AES-CMAC (RFC 4493 section
 * 4), the NTAG 424 DNA SUN example of NXP AN12196 (all-zero keys), the NDEF
 * URI record example of the NFC Forum URI RTD ("http://www.nxp.com").
 */
#include <criterion/criterion.h>
#include <math.h>
#include <sodium.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "methods/bio.h"
#include "methods/geofence.h"
#include "methods/nfc.h"

static void unhex(uint8_t *out, const char *s) {
  cr_assert(gm_unhex(out, strlen(s) / 2, s, strlen(s)) == (long)(strlen(s) / 2));
}

Test(nfc, aes_cmac_matches_rfc4493) {
  uint8_t k[16], m[64], mac[16], want[16];
  unhex(k, "2b7e151628aed2a6abf7158809cf4f3c");
  unhex(m, "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
           "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710");
  cr_assert_eq(nfc_aes_cmac(k, NULL, 0, mac), 0);
  unhex(want, "bb1d6929e95937287fa37d129b756746");
  cr_assert_arr_eq(mac, want, 16);
  cr_assert_eq(nfc_aes_cmac(k, m, 16, mac), 0);
  unhex(want, "070a16b46b4d4144f79bdd9dd04a287c");
  cr_assert_arr_eq(mac, want, 16);
  cr_assert_eq(nfc_aes_cmac(k, m, 64, mac), 0);
  unhex(want, "51f0bebf7e3b9d92fc49741779363cfe");
  cr_assert_arr_eq(mac, want, 16);
}

Test(nfc, sun_matches_an12196) {
  uint8_t zero[16] = {0}, enc[16], uid[7], mac[8], want_uid[7], want_mac[8];
  uint32_t ctr;
  unhex(enc, "EF963FF7828658A599F3041510671E88");
  cr_assert_eq(nfc_sun_picc(zero, enc, uid, &ctr), 0);
  unhex(want_uid, "04DE5F1EACC040");
  cr_assert_arr_eq(uid, want_uid, 7);
  cr_assert_eq(ctr, 61);
  cr_assert_eq(nfc_sun_mac(zero, uid, ctr, mac), 0);
  unhex(want_mac, "94EED9EE65337086");
  cr_assert_arr_eq(mac, want_mac, 8);
  /* One more tap of the same tag: its counter, another MAC. */
  cr_assert_eq(nfc_sun_mac(zero, uid, 62, mac), 0);
  cr_assert(memcmp(mac, want_mac, 8) != 0);
  /* PICCData under another key does not decrypt to the 0xC7 tag. */
  uint8_t other[16] = {1};
  cr_assert_neq(nfc_sun_picc(other, enc, uid, &ctr), 0);
}

Test(nfc, sun_tap_round_trips) {
  uint8_t mk[16], fk[16], uid[7] = {4, 1, 2, 3, 4, 5, 6}, pad[5] = {9, 9, 9, 9, 9};
  uint8_t enc[16], mac[8], u2[7], m2[8];
  uint32_t ctr;
  randombytes_buf(mk, 16);
  randombytes_buf(fk, 16);
  cr_assert_eq(nfc_sun_tap(mk, fk, uid, 0x123456, pad, enc, mac), 0);
  cr_assert_eq(nfc_sun_picc(mk, enc, u2, &ctr), 0);
  cr_assert_arr_eq(u2, uid, 7);
  cr_assert_eq(ctr, 0x123456);
  cr_assert_eq(nfc_sun_mac(fk, u2, ctr, m2), 0);
  cr_assert_arr_eq(m2, mac, 8);
  cr_assert_neq(nfc_sun_tap(mk, fk, uid, 0x1000000, pad, enc, mac), 0);
}

Test(nfc, ndef_uri_record_matches_the_rtd_example) {
  const uint8_t payload[] = {0x01, 'n', 'x', 'p', '.', 'c', 'o', 'm'};
  struct ndef_record r = {.tnf = 0x01, .type = (const uint8_t *)"U", .type_len = 1,
                          .payload = payload, .payload_len = sizeof payload};
  uint8_t out[64], want[12];
  size_t n;
  cr_assert_eq(ndef_encode(&r, 1, out, sizeof out, &n), 0);
  unhex(want, "D101085501" "6E78702E636F6D");
  cr_assert_eq(n, 12);
  cr_assert_arr_eq(out, want, 12);
  struct ndef_record d[2];
  size_t count;
  cr_assert_eq(ndef_decode(out, n, d, 2, &count), 0);
  cr_assert_eq(count, 1);
  cr_assert_eq(d[0].payload_len, sizeof payload);
  cr_assert_arr_eq(d[0].payload, payload, sizeof payload);
  /* Every truncation is refused, and so is trailing garbage. */
  for (size_t k = 0; k < n; k++)
    cr_assert_neq(ndef_decode(out, k, d, 2, &count), 0, "prefix %zu", k);
  out[n] = 0;
  cr_assert_neq(ndef_decode(out, n + 1, d, 2, &count), 0);
}

Test(nfc, long_records_and_type2_tlv) {
  uint8_t payload[300], msg[400], mem[420];
  for (size_t i = 0; i < sizeof payload; i++)
    payload[i] = (uint8_t)i;
  struct ndef_record r[2] = {
      {.tnf = 4, .type = (const uint8_t *)NFC_NDEF_TYPE, .type_len = 14, .payload = payload,
       .payload_len = sizeof payload},
      {.tnf = 1, .type = (const uint8_t *)"T", .type_len = 1, .id = (const uint8_t *)"x",
       .id_len = 1, .payload = payload, .payload_len = 3}};
  size_t n, ml, nl, count;
  cr_assert_eq(ndef_encode(r, 2, msg, sizeof msg, &n), 0);
  cr_assert_eq(msg[0] & 0x10, 0, "a 300-byte payload needs the long form");
  cr_assert_eq(ndef_t2_wrap(msg, n, mem, sizeof mem, &ml), 0);
  cr_assert_eq(mem[0], 0x03);
  cr_assert_eq(mem[1], 0xFF, "a message of 255 bytes or more has a 3-byte length");
  cr_assert_eq(mem[ml - 1], 0xFE);
  const uint8_t *ndef;
  cr_assert_eq(ndef_t2_unwrap(mem, ml, &ndef, &nl), 0);
  cr_assert_eq(nl, n);
  struct ndef_record d[4];
  cr_assert_eq(ndef_decode(ndef, nl, d, 4, &count), 0);
  cr_assert_eq(count, 2);
  cr_assert_eq(d[1].id_len, 1);
  cr_assert_arr_eq(d[0].payload, payload, sizeof payload);
  cr_assert_neq(ndef_t2_unwrap(mem, ml - 10, &ndef, &nl), 0);
}

Test(nfc, records_verify_only_for_their_uid_and_key) {
  uint8_t pk[32], sk[64], pk2[32], sk2[64];
  crypto_sign_keypair(pk, sk);
  crypto_sign_keypair(pk2, sk2);
  uint8_t uid[7] = {4, 0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6}, rec[NFC_RECORD_MAX];
  size_t n;
  cr_assert_eq(nfc_record_build(sk, 7, "t-1", 3, uid, 7, rec, &n), 0);
  struct nfc_record r;
  cr_assert_eq(nfc_record_parse(rec, n, &r), 0);
  cr_assert_eq(r.kid, 7);
  cr_assert_eq(r.ticket_version, 3);
  cr_assert_str_eq(r.ticket_id, "t-1");
  cr_assert_eq(nfc_record_verify(&r, pk), 0);
  cr_assert_neq(nfc_record_verify(&r, pk2), 0);
  rec[13] ^= 1; /* the UID's first byte: another tag */
  cr_assert_eq(nfc_record_parse(rec, n, &r), 0);
  cr_assert_neq(nfc_record_verify(&r, pk), 0);
  for (size_t k = 0; k < n; k++)
    cr_assert_neq(nfc_record_parse(rec, k, &r), 0);
  uint8_t u[10];
  size_t ul;
  cr_assert_eq(nfc_uid_parse("04a1b2c3d4e5f6", u, &ul), 0);
  cr_assert_eq(ul, 7);
  cr_assert_neq(nfc_uid_parse("04a1b2", u, &ul), 0);
  cr_assert_neq(nfc_uid_parse("04a1b2c3d4e5fg", u, &ul), 0);
}

static void noise_random(void *arg, void *out, size_t n) { randombytes_buf(out, n); }

Test(bio, sealing_round_trips_and_binds_the_ticket) {
  uint8_t key[32], wrapped[LEDGER_BIO_WRAPPED_LEN];
  cr_assert(sodium_init() >= 0);
  randombytes_buf(key, sizeof key);
  float v[128], w[128];
  for (int i = 0; i < 128; i++)
    v[i] = (float)sin(i);
  struct ledger_bio *b = calloc(1, sizeof *b);
  strcpy(b->ticket_id, "t1");
  b->dim = 128;
  cr_assert_eq(bio_seal(key, "t1", v, 128, noise_random, NULL, b->wrapped, b->ct, &b->ct_len), 0);
  cr_assert_eq(b->ct_len, 24 + 512 + 16);
  cr_assert_null(memmem(b->ct, b->ct_len, v, 16), "the template is not in the clear");
  cr_assert_eq(bio_open(key, b, w), 0);
  cr_assert_arr_eq(v, w, sizeof v);
  strcpy(b->ticket_id, "t2"); /* moved to another ticket: does not open */
  cr_assert_eq(bio_open(key, b, w), GM_ECRYPTO);
  strcpy(b->ticket_id, "t1");
  key[0] ^= 1;
  cr_assert_eq(bio_open(key, b, w), GM_ECRYPTO);
  memcpy(wrapped, b->wrapped, sizeof wrapped);
  (void)wrapped;
  free(b);
}

/* The index against a brute-force scan, through puts, overwrites and
 * deletions (the map's backward-shift deletion included). */
Test(bio, index_search_matches_brute_force) {
  enum { DIM = 40, N = 600 };
  struct bio_index *ix;
  cr_assert_eq(bio_index_open(&ix, DIM), 0);
  static float rows[N][DIM];
  static bool live[N];
  char id[32];
  srand(7);
  for (int i = 0; i < N; i++) {
    double norm = 0;
    for (int k = 0; k < DIM; k++) {
      rows[i][k] = (float)(rand() / (double)RAND_MAX - 0.5);
      norm += rows[i][k] * rows[i][k];
    }
    for (int k = 0; k < DIM; k++)
      rows[i][k] = (float)(rows[i][k] / sqrt(norm));
    snprintf(id, sizeof id, "t%d", i);
    cr_assert_eq(bio_index_put(ix, id, rows[i]), 0);
    live[i] = true;
  }
  for (int i = 0; i < N; i += 3) {
    snprintf(id, sizeof id, "t%d", i);
    bio_index_del(ix, id);
    live[i] = false;
  }
  cr_assert_eq(bio_index_count(ix), N - (N + 2) / 3);
  for (int q = 0; q < 50; q++) {
    const float *probe = rows[(q * 37) % N];
    double best = -2, second = -2;
    int bi = -1;
    for (int i = 0; i < N; i++) {
      if (!live[i])
        continue;
      double d = bio_dot(probe, rows[i], DIM);
      if (d > best) {
        second = best;
        best = d;
        bi = i;
      } else if (d > second) {
        second = d;
      }
    }
    struct bio_match m;
    bio_index_search(ix, probe, &m);
    snprintf(id, sizeof id, "t%d", bi);
    cr_assert_str_eq(m.ticket_id, id);
    cr_assert_float_eq(m.best, best, 1e-5);
    cr_assert_float_eq(m.second, second, 1e-5);
  }
  for (int i = 1; i < N; i += 3) {
    snprintf(id, sizeof id, "t%d", i);
    cr_assert_not_null(bio_index_get(ix, id));
    cr_assert_arr_eq(bio_index_get(ix, id), rows[i], sizeof rows[i]);
  }
  bio_index_close(ix);
}

Test(geo, circles_by_great_circle_distance) {
  /* One degree of latitude is about 111.2 km. */
  cr_assert_float_eq(geo_distance_m(0, 0, 1, 0), 111195, 100);
  /* Across the antimeridian: 0.002 degrees of longitude at the equator. */
  cr_assert_float_eq(geo_distance_m(0, 179.999, 0, -179.999), 222.4, 1);
  struct ledger_zone z = {.kind = LEDGER_ZONE_CIRCLE, .n_points = 1, .radius_m = 3};
  z.lat_e7[0] = 525200000;
  z.lon_e7[0] = 134050000;
  cr_assert(geo_in_zone(&z, 52.52, 13.405));
  cr_assert(geo_in_zone(&z, 52.52002, 13.405)); /* 2.2 m north */
  cr_assert_not(geo_in_zone(&z, 52.52004, 13.405)); /* 4.4 m north */
}

Test(geo, polygons_across_the_antimeridian_and_small_ones) {
  double lat[4] = {-16.9, -16.9, -17.0, -17.0}, lon[4] = {179.999, -179.999, -179.999, 179.999};
  cr_assert(geo_in_polygon(-16.95, -179.9995, lat, lon, 4));
  cr_assert(geo_in_polygon(-16.95, 179.9995, lat, lon, 4));
  cr_assert(geo_in_polygon(-16.95, 180.0, lat, lon, 4));
  cr_assert_not(geo_in_polygon(-16.95, 0, lat, lon, 4));
  cr_assert_not(geo_in_polygon(-16.95, 179.99, lat, lon, 4));
  cr_assert_not(geo_in_polygon(-17.05, -179.9995, lat, lon, 4));
  /* A 2 m x 2 m square: 1 m inside is in, 1 m outside is out. */
  double d = 2.0 / 111195.0;
  double sl[4] = {48.0, 48.0, 48.0 + d, 48.0 + d}, so[4] = {2.0, 2.0 + 1.5 * d, 2.0 + 1.5 * d, 2.0};
  cr_assert(geo_in_polygon(48.0 + d / 2, 2.0 + 0.75 * d, sl, so, 4));
  cr_assert_not(geo_in_polygon(48.0 + 1.5 * d, 2.0 + 0.75 * d, sl, so, 4));
  /* A concave (L-shaped) zone. */
  double ll[6] = {0, 0, 1, 1, 2, 2}, lo[6] = {0, 2, 2, 1, 1, 0};
  cr_assert(geo_in_polygon(0.5, 1.5, ll, lo, 6));
  cr_assert(geo_in_polygon(1.5, 0.5, ll, lo, 6));
  cr_assert_not(geo_in_polygon(1.5, 1.5, ll, lo, 6));
}

Test(geo, the_signed_message_is_canonical) {
  char a[GEO_MSG_MAX], b[GEO_MSG_MAX];
  geo_message(a, "t1", 52.52000001, 13.405, 9.2, 1000);
  geo_message(b, "t1", 52.5200000149, 13.40500001, 10, 1000);
  cr_assert_str_eq(a, "gm-geo-v1|t1|525200000|134050000|10|1000");
  cr_assert_str_eq(a, b);
}
