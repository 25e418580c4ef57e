#!/usr/bin/env bash
# One real gate on a loopback port, driven over HTTP and with gatectl: auth and
# roles, events and tickets, QR scanned from its PNG, already_used with
# first_use, transfer -> superseded, pass replay, holder-key QR, bad input that
# changes nothing, toggles, key rotation, audit, override, idempotency.
source "$(dirname "$0")/lib.sh"

start_gate g1 || exit 1
U=$URL_g1
export GATE_URL=$U
ADMIN=$(login "$U" admin admin-pass-1)
check "admin login gives a token" test -n "$ADMIN" -a "$ADMIN" != null

r=$(api POST "$U/auth/login" "" '{"username":"admin","password":"wrong-pass"}')
check "wrong password is 401" eq "$(status_of "$r")" 401
check "401 is problem+json with code" eq "$(jf "$r" .code)" unauthorized
r=$(api POST "$U/auth/login" "" '{"username":"nobody","password":"whatever1"}')
check "unknown user is 401" eq "$(status_of "$r")" 401
r=$(api GET "$U/users/me" "")
check "no token is 401" eq "$(status_of "$r")" 401
r=$(api GET "$U/users/me" "garbage.token.here")
check "forged token is 401" eq "$(status_of "$r")" 401
# A token signed by some other key: valid shape, wrong signature.
forged="${ADMIN%.*}.$(printf 'x%.0s' $(seq 1 86))"
r=$(api GET "$U/users/me" "$forged")
check "token with a bad signature is 401" eq "$(status_of "$r")" 401

for u in "org organizer" "scan staff" "alice attendee" "bob attendee"; do
  set -- $u
  r=$(api POST "$U/users" "$ADMIN" "{\"username\":\"$1\",\"password\":\"pw-$1-123\",\"role\":\"$2\"}")
  check "create user $1" eq "$(status_of "$r")" 201
done
r=$(api POST "$U/users" "$ADMIN" '{"username":"org","password":"pw-org-123","role":"staff"}')
check "duplicate username is 409" eq "$(status_of "$r")" 409
r=$(api POST "$U/users" "$ADMIN" '{"username":"x","password":"short","role":"staff"}')
check "short password is invalid_field" eq "$(jf "$r" .code)" invalid_field
ORG=$(login "$U" org pw-org-123)
STAFF=$(login "$U" scan pw-scan-123)
ALICE=$(login "$U" alice pw-alice-123)
BOB=$(login "$U" bob pw-bob-123)
r=$(api GET "$U/users/me" "$STAFF")
check "users/me tells the role" eq "$(jf "$r" .role)" staff
r=$(api POST "$U/users" "$ORG" '{"username":"y","password":"pw-y-12345","role":"admin"}')
check "organizer cannot create users" eq "$(status_of "$r")" 403

END=$(( ($(date +%s) + 86400) * 1000 ))
r=$(api POST "$U/events" "$STAFF" "{\"id\":\"fest\",\"name\":\"Fest\",\"starts_ms\":0,\"ends_ms\":$END}")
check "staff cannot create events" eq "$(status_of "$r")" 403
r=$(api POST "$U/events" "$ORG" "{\"id\":\"fest\",\"name\":\"Fest\",\"starts_ms\":0,\"ends_ms\":$END,\"offline_policy\":\"available\",\"offline_budget\":50}")
check "organizer creates an event" eq "$(status_of "$r")" 201
check "event keeps its policy" eq "$(jf "$r" .offline_policy)" available
r=$(api POST "$U/events" "$ORG" "{\"id\":\"fest\",\"name\":\"Again\",\"starts_ms\":0,\"ends_ms\":$END}")
check "duplicate event is 409" eq "$(status_of "$r")" 409

r=$(api POST "$U/tickets/" "$ORG" '{"event_id":"fest","holder":"alice","id":"t-alice","tier":"vip"}')
check "create ticket" eq "$(status_of "$r")" 201
check "new ticket is created/v1" eq "$(jf "$r" '.status+"/"+(.version|tostring)')" created/1
r=$(api POST "$U/tickets/" "$ORG" '{"event_id":"nope","holder":"x"}')
check "ticket for unknown event is 400" eq "$(status_of "$r")" 400
body='{"tickets":['
for i in $(seq 1 50); do body+="{\"event_id\":\"fest\",\"holder\":\"h$i\",\"id\":\"b$i\"},"; done
body="${body%,}]}"
r=$(api POST "$U/tickets/batch" "$ORG" "$body")
check "batch creates 50" eq "$(jf "$r" .created)" 50
r=$(api GET "$U/tickets/b37" "$STAFF")
check "batch ticket readable" eq "$(jf "$r" .holder)" h37
r=$(api POST "$U/tickets/batch" "$ORG" '{"tickets":[{"event_id":"fest","holder":"x","id":"b1"}]}')
check "batch with an existing id is 409" eq "$(status_of "$r")" 409
printf 'carol,standard,csv-1\ndave,vip,csv-2\n# comment\nerin\n' > "$TMP/t.csv"
check "gatectl imports a CSV" env GATE_TOKEN="$ORG" "$GATECTL" ticket import fest "$TMP/t.csv"
r=$(api GET "$U/tickets/csv-2" "$STAFF")
check "CSV ticket has its tier" eq "$(jf "$r" .tier)" vip

r=$(api GET "$U/tickets/t-alice" "$ALICE")
check "attendee reads own ticket" eq "$(status_of "$r")" 200
r=$(api GET "$U/tickets/t-alice" "$BOB")
check "attendee cannot read another's ticket" eq "$(status_of "$r")" 404
r=$(api GET "$U/tickets/t-alice" "")
check "anonymous cannot read tickets" eq "$(status_of "$r")" 401

# --- QR: generate, scan from the PNG, then again ---
check "gatectl qr generate writes a PNG" env GATE_TOKEN="$ALICE" "$GATECTL" qr generate t-alice --png "$TMP/alice.png" --svg "$TMP/alice.svg"
check "PNG file is a PNG" bash -c "head -c 8 '$TMP/alice.png' | od -An -c | grep -q 'P   N   G'"
check "SVG file is an SVG" grep -q "<svg" "$TMP/alice.svg"
r=$(api POST "$U/tickets/t-alice/methods/qr/verify" "$ALICE" '{"presented_data":{"payload":"x"}}')
check "attendee cannot verify" eq "$(status_of "$r")" 403
GATE_TOKEN=$STAFF "$GATECTL" verify qr --image "$TMP/alice.png" --gate north > "$TMP/v1.json"; rc=$?
check "scan from PNG admits (exit 0)" eq "$rc" 0
check "verdict admitted" eq "$(jq -r .admitted "$TMP/v1.json")" true
check "verdict names ticket and gate" eq "$(jq -r '.ticket_id+"@"+.gate' "$TMP/v1.json")" t-alice@north
check "verdict is not provisional" eq "$(jq -r .provisional "$TMP/v1.json")" false
GATE_TOKEN=$STAFF "$GATECTL" verify qr --image "$TMP/alice.png" --gate south > "$TMP/v2.json"; rc=$?
check "second scan is denied (exit 3)" eq "$rc" 3
check "second scan is already_used" eq "$(jq -r .reason "$TMP/v2.json")" already_used
check "already_used carries first_use gate" eq "$(jq -r .first_use.gate "$TMP/v2.json")" north
check "first_use has method and time" eq "$(jq -r '(.first_use.method)+":"+(.first_use.used_ms>0|tostring)' "$TMP/v2.json")" qr:true
r=$(api GET "$U/tickets/t-alice" "$ALICE")
check "ticket is used at north" eq "$(jf "$r" '.status+"@"+.used_gate')" used@north

# --- transfer supersedes credentials of the older version ---
r=$(api POST "$U/tickets/b1/methods/qr/generate" "$ORG" '')
OLDQR=$(jf "$r" .payload)
r=$(api POST "$U/tickets/b1/transfer" "$BOB" '{"to_holder":"bob"}')
check "non-holder attendee cannot transfer" eq "$(status_of "$r")" 404
r=$(api POST "$U/tickets/b1/transfer" "$ORG" '{"to_holder":"bob"}')
check "transfer bumps the version" eq "$(jf "$r" '.version|tostring')" 2
check "transferred status" eq "$(jf "$r" .status)" transferred
r=$(api POST "$U/verify" "$STAFF" "{\"method\":\"qr\",\"presented_data\":{\"payload\":\"$OLDQR\"}}")
check "old QR after transfer is superseded" eq "$(jf "$r" .reason)" superseded
r=$(api GET "$U/tickets/b1" "$BOB")
check "new holder reads the ticket" eq "$(status_of "$r")" 200
r=$(api POST "$U/tickets/b1/methods/qr/generate" "$BOB" '')
NEWQR=$(jf "$r" .payload)
r=$(api POST "$U/tickets/b1/methods/qr/verify" "$STAFF" "{\"presented_data\":{\"payload\":\"$NEWQR\"}}")
check "new QR admits" eq "$(jf "$r" .admitted)" true
r=$(api POST "$U/tickets/b2/methods/qr/verify" "$STAFF" "{\"presented_data\":{\"payload\":\"$NEWQR\"}}")
check "QR presented for another ticket is no_match" eq "$(jf "$r" .reason)" no_match

# --- pass: rotating code, replay ---
r=$(api POST "$U/tickets/b3/methods/pass/generate" "$ORG" '')
check "pass generate" eq "$(status_of "$r")" 200
PID_=$(jf "$r" .pass_id); SEC=$(jf "$r" .secret)
check "pass is a JWS with kid" bash -c "echo '$(jf "$r" .payload)' | cut -d. -f1 | base64 -d 2>/dev/null | grep -q kid"
CODE=$("$GATECTL" pass code "$PID_" "$SEC")
r=$(api POST "$U/verify" "$STAFF" "{\"method\":\"pass\",\"presented_data\":{\"code\":\"$CODE\"}}")
check "pass code admits" eq "$(jf "$r" .admitted)" true
r=$(api POST "$U/verify" "$STAFF" "{\"method\":\"pass\",\"presented_data\":{\"code\":\"$CODE\"}}")
check "same pass code again is replayed" eq "$(jf "$r" .reason)" replayed
r=$(api POST "$U/tickets/b4/methods/pass/generate" "$ORG" '')
PID4=$(jf "$r" .pass_id); SEC4=$(jf "$r" .secret)
OLD=$("$GATECTL" pass code "$PID4" "$SEC4" --at $(( ($(date +%s) - 120) * 1000 )))
r=$(api POST "$U/verify" "$STAFF" "{\"method\":\"pass\",\"presented_data\":{\"code\":\"$OLD\"}}")
check "two-minute-old pass code is expired" eq "$(jf "$r" .reason)" expired
BADC="${OLD%?}0"; [ "$BADC" = "$OLD" ] && BADC="${OLD%?}1"
CUR=$("$GATECTL" pass code "$PID4" "$SEC4"); BADC="${CUR%?}$( [ "${CUR: -1}" = 0 ] && echo 1 || echo 0)"
r=$(api POST "$U/verify" "$STAFF" "{\"method\":\"pass\",\"presented_data\":{\"code\":\"$BADC\"}}")
check "pass code with a wrong MAC is bad_signature" eq "$(jf "$r" .reason)" bad_signature
r=$(api POST "$U/verify" "$STAFF" '{"method":"pass","presented_data":{"code":"123"}}')
check "truncated pass code is malformed" eq "$(jf "$r" .reason)" malformed
r=$(api GET "$U/tickets/b4" "$STAFF")
check "denied pass codes left b4 unused" eq "$(jf "$r" .status)" created

# --- holder-key QR: the phone signs a fresh display offline ---
KEYS=$("$GATECTL" keygen)
HPK=$(echo "$KEYS" | jq -r .public_key); HSK=$(echo "$KEYS" | jq -r .secret_key)
r=$(api POST "$U/tickets/b5/methods/qr/generate" "$ORG" "{\"holder_key\":\"$HPK\"}")
check "holder-mode generate" eq "$(jf "$r" .mode)" holder
CRED=$(jf "$r" .credential)
STALE=$("$GATECTL" qr show "$CRED" --holder-secret "$HSK" --at $(( ($(date +%s) - 300) * 1000 )))
r=$(api POST "$U/verify" "$STAFF" "{\"method\":\"qr\",\"presented_data\":{\"payload\":\"$STALE\"}}")
check "screenshot replayed after the window is expired" eq "$(jf "$r" .reason)" expired
r=$(api POST "$U/verify" "$STAFF" "{\"method\":\"qr\",\"presented_data\":{\"payload\":\"$CRED\"}}")
check "the bare credential is refused" eq "$(jf "$r" .admitted)" false
FRESH=$("$GATECTL" qr show "$CRED" --holder-secret "$HSK")
r=$(api POST "$U/verify" "$STAFF" "{\"method\":\"qr\",\"presented_data\":{\"payload\":\"$FRESH\"}}")
check "fresh holder display admits" eq "$(jf "$r" .admitted)" true
r=$(api POST "$U/tickets/b6/methods/qr/generate" "$ORG" '{"holder_key":"not-a-key"}')
check "bad holder_key is invalid_field" eq "$(jf "$r" .code)" invalid_field

# --- bad input: clear errors, nothing changes ---
r=$(api POST "$U/tickets/b7/methods/qr/generate" "$ORG" '')
Q7=$(jf "$r" .payload)
r=$(api POST "$U/verify" "$STAFF" '{"method":"qr","presented_data":{"payload":')
check "malformed JSON is bad_json" eq "$(jf "$r" .code)" bad_json
check "bad_json is 400" eq "$(status_of "$r")" 400
r=$(api POST "$U/verify" "$STAFF" '[1,2]')
check "non-object body is bad_json" eq "$(jf "$r" .code)" bad_json
r=$(api POST "$U/verify" "$STAFF" "{\"method\":\"qr\",\"presented_data\":{\"payload\":\"$Q7\"},\"extra\":1}")
check "unknown field is unknown_field" eq "$(jf "$r" .code)" unknown_field
r=$(api POST "$U/verify" "$STAFF" '{"method":"qr","presented_data":"x"}')
check "wrong type is invalid_field" eq "$(jf "$r" .code)" invalid_field
r=$(api POST "$U/verify" "$STAFF" '{"method":7,"presented_data":{}}')
check "numeric method is invalid_field" eq "$(jf "$r" .code)" invalid_field
r=$(api POST "$U/verify" "$STAFF" '{"method":"smoke","presented_data":{}}')
check "unknown method is 404" eq "$(status_of "$r")" 404
r=$(api POST "$U/verify" "$STAFF" "{\"method\":\"qr\",\"presented_data\":{\"payload\":\"${Q7:0:40}\"}}")
check "truncated QR is malformed" eq "$(jf "$r" .reason)" malformed
flip() { local s=$1 i=$2; local c=${s:$i:1}; local d=A; [ "$c" = A ] && d=B; echo "${s:0:$i}$d${s:$((i+1))}"; }
r=$(api POST "$U/verify" "$STAFF" "{\"method\":\"qr\",\"presented_data\":{\"payload\":\"$(flip "$Q7" $(( ${#Q7} - 5 )))\"}}")
check "bit-flipped QR signature is refused" bash -c "echo '$(jf "$r" .reason)' | grep -Eq '^(bad_signature|malformed)$'"
r=$(api POST "$U/verify" "$STAFF" "{\"method\":\"qr\",\"presented_data\":{\"payload\":\"$(flip "$Q7" 30)\"}}")
check "bit-flipped QR body is refused" bash -c "echo '$(jf "$r" .reason)' | grep -Eq '^(bad_signature|malformed|unknown_credential)$'"
printf 'P5\n64 64\n255\n' > "$TMP/blank.pgm"; head -c 4096 /dev/zero | tr '\0' '\377' >> "$TMP/blank.pgm"
GATE_TOKEN=$STAFF "$GATECTL" verify qr --image "$TMP/blank.pgm" > "$TMP/v3.json"
check "image with no QR gives a verdict, not a crash" eq "$(jq -r .reason "$TMP/v3.json")" malformed
r=$(api POST "$U/verify" "$STAFF" '{"method":"qr","presented_data":{"image_base64":"aGVsbG8gd29ybGQ="}}')
check "non-image is invalid_field" eq "$(jf "$r" .code)" invalid_field
head -c 2200000 /dev/zero | tr '\0' 'a' > "$TMP/big"
st=$(curl -s -o "$TMP/resp" -w '%{http_code}' -H "Authorization: Bearer $STAFF" \
  -H 'Content-Type: application/json' --data-binary @"$TMP/big" "$U/verify")
check "oversize body is 413" eq "$st" 413
check "413 is problem+json payload_too_large" eq "$(jq -r .code "$TMP/resp")" payload_too_large
head -c 20000000 /dev/zero | tr '\0' 'a' > "$TMP/huge"
st=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $STAFF" --data-binary @"$TMP/huge" "$U/verify")
check "very large body is 413 too" eq "$st" 413
r=$(api GET "$U/tickets/b7" "$STAFF")
check "bad input left b7 untouched" eq "$(jf "$r" '.status+"/"+(.version|tostring)')" created/1
r=$(api POST "$U/verify" "$STAFF" "{\"method\":\"qr\",\"presented_data\":{\"payload\":\"$Q7\"}}")
check "the genuine QR still admits afterwards" eq "$(jf "$r" .admitted)" true
check "garbage bytes on the HTTP port do not kill the gate" bash -c \
  "head -c 5000 /dev/urandom > /dev/tcp/127.0.0.1/$PORT_g1; sleep 0.2; curl -sf $U/healthz"
r=$(api GET "$U/no/such/thing" "")
check "unknown path is 404 problem" eq "$(jf "$r" .code)" not_found

# --- revoke ---
r=$(api POST "$U/tickets/b8/methods/qr/generate" "$ORG" '')
Q8=$(jf "$r" .payload)
r=$(api POST "$U/tickets/b8/revoke" "$STAFF" '{"reason":"fraud"}')
check "staff cannot revoke" eq "$(status_of "$r")" 403
r=$(api POST "$U/tickets/b8/revoke" "$ORG" '{"reason":"chargeback"}')
check "organizer revokes" eq "$(jf "$r" .status)" revoked
r=$(api POST "$U/verify" "$STAFF" "{\"method\":\"qr\",\"presented_data\":{\"payload\":\"$Q8\"}}")
check "revoked ticket's QR is revoked" eq "$(jf "$r" .reason)" revoked

# --- method toggle ---
r=$(api POST "$U/tickets/b9/methods/qr/generate" "$ORG" '')
Q9=$(jf "$r" .payload)
r=$(api POST "$U/admin/methods/qr/toggle" "$ORG" '{"enabled":false}')
check "only admins toggle" eq "$(status_of "$r")" 403
r=$(api POST "$U/admin/methods/qr/toggle" "$ADMIN" '{"enabled":false}')
check "admin disables qr" eq "$(jf "$r" .enabled)" false
r=$(api GET "$U/tickets/b9/methods" "$STAFF")
check "methods list shows qr disabled" eq "$(jf "$r" '.methods[]|select(.name=="qr")|.enabled')" false
r=$(api POST "$U/verify" "$STAFF" "{\"method\":\"qr\",\"presented_data\":{\"payload\":\"$Q9\"}}")
check "disabled method verdict" eq "$(jf "$r" .reason)" method_disabled
r=$(api POST "$U/tickets/b9/methods/qr/generate" "$ORG" '')
check "generate on a disabled method is 403 method_disabled" eq "$(jf "$r" .code)" method_disabled
api POST "$U/admin/methods/qr/toggle" "$ADMIN" '{"enabled":true}' >/dev/null
r=$(api POST "$U/verify" "$STAFF" "{\"method\":\"qr\",\"presented_data\":{\"payload\":\"$Q9\"}}")
check "re-enabled qr admits" eq "$(jf "$r" .admitted)" true

# --- key rotation: new kid signs, old credentials still verify ---
r=$(api POST "$U/tickets/b10/methods/qr/generate" "$ORG" '{"ttl_s":600}')
Q10=$(jf "$r" .payload); K1=$(jf "$r" .kid)
r=$(api POST "$U/admin/keys/rotate" "$ADMIN" '')
K2=$(jf "$r" .kid)
check "rotation gives a new kid" test -n "$K2" -a "$K2" != "$K1"
r=$(api GET "$U/.well-known/jwks.json" "")
check "JWKS lists both keys" eq "$(jf "$r" '.keys|length')" 2
check "JWKS keys are Ed25519 OKP" eq "$(jf "$r" '[.keys[]|.kty+.crv]|unique|join(",")')" OKPEd25519
r=$(api POST "$U/tickets/b11/methods/qr/generate" "$ORG" '')
check "new QRs use the new kid" eq "$(jf "$r" .kid)" "$K2"
r=$(api POST "$U/verify" "$STAFF" "{\"method\":\"qr\",\"presented_data\":{\"payload\":\"$Q10\"}}")
check "QR signed before rotation still admits" eq "$(jf "$r" .admitted)" true
r=$(api GET "$U/users/me" "$STAFF")
check "tokens signed before rotation still work" eq "$(status_of "$r")" 200

# --- audit, incidents, override ---
r=$(api GET "$U/audits/usage?ticket=t-alice" "$STAFF")
check "audit lists t-alice's generate and verifies" bash -c "[ $(jf "$r" '.events|length') -ge 3 ]"
check "audit records the admitted verify at north" eq "$(jf "$r" '[.events[]|select(.result=="admitted")][0].gate')" north
check "audit records the denial with its reason" eq "$(jf "$r" '[.events[]|select(.result=="denied")][0].reason')" already_used
r=$(api GET "$U/audits/usage?method=pass&limit=2" "$STAFF")
check "audit filters and limits" eq "$(jf "$r" '[.events[]|.method]|unique|join(",")')/$(jf "$r" '.events|length')" pass/2
r=$(api GET "$U/audits/usage?limit=abc" "$STAFF")
check "bad audit limit is 400" eq "$(status_of "$r")" 400
r=$(api GET "$U/audits/usage" "$ALICE")
check "attendees cannot read the audit" eq "$(status_of "$r")" 403
r=$(api GET "$U/incidents" "$STAFF")
check "incidents list the double-scan attempt" bash -c "[ $(jf "$r" '[.incidents[]|select(.reason=="already_used")]|length') -ge 1 ]"
r=$(api POST "$U/admin/tickets/t-alice/override" "$STAFF" '{"action":"reset","reason":"re-entry"}')
check "plain staff cannot override" eq "$(status_of "$r")" 403
r=$(api POST "$U/admin/tickets/t-alice/override" "$ORG" '{"action":"reset","reason":"wristband re-entry"}')
check "override reset makes the ticket unused" eq "$(jf "$r" .status)" created
r=$(api POST "$U/admin/tickets/t-alice/override" "$ORG" '{"action":"admit","reason":"scanner down"}')
check "override admit marks it used" eq "$(jf "$r" '.status+"/"+.used_method')" used/override
r=$(api POST "$U/admin/tickets/t-alice/override" "$ORG" '{"action":"admit","reason":"twice"}')
check "override admit of a used ticket is 409" eq "$(status_of "$r")" 409
r=$(api POST "$U/admin/tickets/t-alice/override" "$ORG" '{"action":"wave","reason":"x"}')
check "unknown override action is 400" eq "$(status_of "$r")" 400

# --- idempotency: a retried write returns the first result ---
r1=$(curl -s -H "Authorization: Bearer $ORG" -H 'Idempotency-Key: import-42' "$U/tickets/" -d '{"event_id":"fest","holder":"zoe"}')
r2=$(curl -s -H "Authorization: Bearer $ORG" -H 'Idempotency-Key: import-42' "$U/tickets/" -d '{"event_id":"fest","holder":"zoe"}')
check "retry with the same Idempotency-Key returns the same ticket" eq "$(echo "$r1" | jq -r .id)" "$(echo "$r2" | jq -r .id)"
r=$(api POST "$U/tickets/b12/methods/qr/generate" "$ORG" '')
Q12=$(jf "$r" .payload)
v1=$(curl -s -H "Authorization: Bearer $STAFF" -H 'Idempotency-Key: scan-1' "$U/verify" -d "{\"method\":\"qr\",\"presented_data\":{\"payload\":\"$Q12\"}}")
v2=$(curl -s -H "Authorization: Bearer $STAFF" -H 'Idempotency-Key: scan-1' "$U/verify" -d "{\"method\":\"qr\",\"presented_data\":{\"payload\":\"$Q12\"}}")
check "first verify admits" eq "$(echo "$v1" | jq -r .admitted)" true
check "retried verify (lost reply) returns admitted again, not already_used" eq "$(echo "$v2" | jq -r .admitted)" true

# --- monitoring ---
check "healthz" curl -sf "$U/healthz"
r=$(api GET "$U/metrics" "")
check "metrics count admissions" bash -c "echo '$(body_of "$r")' | grep -Eq '^gate_verify_total\{result=\"admitted\"\} [1-9]'"
# Histograms: cumulative buckets that never decrease, +Inf equal to _count.
hist_ok() { # hist_ok METRICS NAME: the histogram is well formed and counted something
  echo "$1" | awk -v n="$2" '
    index($1, n "_bucket{") == 1 { if ($2 < last) bad = 1; last = $2; inf = $2 }
    $1 == n "_count" { count = $2 }
    END { exit !(bad == 0 && count > 0 && inf == count) }'
}
check "metrics: verify latency histogram" hist_ok "$(body_of "$r")" gate_verify_duration_seconds
check "metrics: loop busy histogram" hist_ok "$(body_of "$r")" gate_loop_busy_seconds
r=$(api GET "$U/cluster/status" "")
check "cluster status has node_id and applied_index" eq "$(jf "$r" '(.node_id|tostring)+"/"+(.applied_index>0|tostring)')" 1/true
check "HTTP/2 with prior knowledge" bash -c "curl -s --http2-prior-knowledge -o /dev/null -w '%{http_version}' $U/healthz | grep -q '^2'"

finish
