/*
 * geofence.h — the `geofence` method (passive presence).
 *
 * An event has entry zones (ZONE_SET commands): circles (centre, radius) or
 * polygons, each for one gate or for every gate. generate registers the
 * attendee device's Ed25519 public key as the ticket's credential (or makes
 * a key pair for a device that cannot) and returns the zones. verify is the
 * client SDK's entry webhook: a position report signed by that device key,
 *
 *   "gm-geo-v1|<ticket id>|<lat e7>|<lon e7>|<accuracy m>|<timestamp ms>"
 *
 * with lat/lon in 1e-7 degrees rounded to nearest and the accuracy rounded
 * up to whole metres, checked for signature, freshness, accuracy and
 * position; the ticket's single use is the ledger's redeem.
 *
 * Geometry: a circle by great-circle distance (haversine, which stays exact
 * for small radii); a polygon by ray casting in a local east/north plane
 * centred on the point, with longitude differences wrapped to (-180, 180],
 * so a zone across the antimeridian works and a zone of a few metres keeps
 * centimetre precision. Zones are meant to be entrances, not continents:
 * polygons wider than 90 degrees of longitude or around a pole are not
 * supported.
 */
#ifndef GM_GEOFENCE_H
#define GM_GEOFENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "method.h"

#define GEO_MSG_MAX 200

double geo_distance_m(double lat1, double lon1, double lat2, double lon2);
bool geo_in_polygon(double lat, double lon, const double *plat, const double *plon, size_t n);
bool geo_in_zone(const struct ledger_zone *z, double lat, double lon);
/* The signed message of a report; its length. */
size_t geo_message(char out[GEO_MSG_MAX], const char *ticket_id, double lat, double lon,
                   double accuracy_m, int64_t timestamp_ms);
/* A zone as its JSON form, and back (GM_EINVAL with env->err). */
json_t *geo_zone_json(const struct ledger_zone *z);
int geo_zone_parse(struct method_env *env, const json_t *in, const char *event_id,
                   struct ledger_zone *out);

extern const struct method method_geofence;

#endif
