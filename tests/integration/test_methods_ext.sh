#!/usr/bin/env bash
# NFC, biometric and geofence methods and the background jobs, on one real
# gate and then on a 3-gate Raft cluster:
#  - nfc: provisioning, a UID bound twice, signed records (forged, copied to
#    another UID), NTAG 424 SUN taps (bad CMAC, replayed counter after a
#    reset), the reader tooling without a reader;
#  - biometric: consent, bad templates, 1:1 and 1:N with score, the margin,
#    erasure with receipts, no template bytes in the data dir or the log;
#  - geofence: zones (circle, polygon across the antimeridian), signed
#    position reports (unsigned, stale, forged, outside, inaccurate);
#  - jobs: expiry of credentials, revocation of unscanned tickets, biometric
#    retention; in the cluster each runs once, on the leader.
source "$(dirname "$0")/lib.sh"

JOBS=(--jobs-interval-ms 200 --expire-grace-s 0)
start_gate g1 "${JOBS[@]}" || exit 1
U=$URL_g1
export GATE_URL=$U
ADMIN=$(login "$U" admin admin-pass-1)
export GATE_TOKEN=$ADMIN
NOW=$(( $(date +%s) * 1000 ))
END=$(( NOW + 86400000 ))
api POST "$U/events" "$ADMIN" "{\"id\":\"fest\",\"name\":\"Fest\",\"starts_ms\":0,\"ends_ms\":$END}" >/dev/null
body='{"tickets":['
for t in n1 n2 n3 n4 b1 b2 b3 b4 b5 g1 g2 g3 q1; do body+="{\"event_id\":\"fest\",\"holder\":\"h-$t\",\"id\":\"$t\"},"; done
r=$(api POST "$U/tickets/batch" "$ADMIN" "${body%,}]}")
check "setup: tickets" eq "$(jf "$r" .created)" 13

is() { [ "$("${@:2}")" = "$1" ]; } # is VALUE COMMAND...: re-run by wait_until
verify() { api POST "$U/verify" "$ADMIN" "{\"method\":\"$1\",\"presented_data\":$2}"; }
reason() { jf "$1" '.reason // "admitted"'; }

# --- nfc -------------------------------------------------------------------
r=$(api POST "$U/tickets/n1/methods/nfc/generate" "$ADMIN" '{"uid":"04A1B2C3D4E5F6"}')
check "nfc: provision a 7-byte UID" eq "$(status_of "$r")" 200
REC1=$(jf "$r" .record)
check "nfc: the record is signed and the NDEF TLV ready to write" \
  test "$(jf "$r" '.kid')/$(jf "$r" '.ndef_t2' | cut -c1-2)" = "k1/03"
r=$(api POST "$U/tickets/n2/methods/nfc/generate" "$ADMIN" '{"uid":"04a1b2c3d4e5f6"}')
check "nfc: a UID mapped to another ticket is refused" eq "$(status_of "$r")" 409
r=$(api POST "$U/tickets/n2/methods/nfc/generate" "$ADMIN" '{"uid":"04A1B2"}')
check "nfc: a wrong-length UID is 400" eq "$(status_of "$r")" 400
r=$(api POST "$U/tickets/n2/methods/nfc/generate" "$ADMIN" '{"uid":"04A1B2C3D4E5F7"}')
REC2=$(jf "$r" .record)
r=$(verify nfc '{"uid":"04A1B2C3D4E5F7","record":"'"$REC1"'"}')
check "nfc: a record copied to another tag is bad_signature" eq "$(reason "$r")" bad_signature
forged="${REC2%??????}AAAAAA"
r=$(verify nfc '{"uid":"04A1B2C3D4E5F7","record":"'"$forged"'"}')
check "nfc: a forged record is bad_signature" eq "$(reason "$r")" bad_signature
r=$(verify nfc '{"uid":"04A1B2C3D4E5F7","record":"AAAA"}')
check "nfc: a truncated record is malformed" eq "$(reason "$r")" malformed
r=$(verify nfc '{"uid":"0411223344556677889900"}')
check "nfc: a UID of 11 bytes is 400" eq "$(status_of "$r")" 400
r=$(verify nfc '{"uid":"04FFFFFFFFFFFF"}')
check "nfc: an unknown tag is unknown_credential" eq "$(reason "$r")" unknown_credential
r=$(verify nfc '{"uid":"04A1B2C3D4E5F6","record":"'"$REC1"'"}')
check "nfc: a tap with its record admits" test "$(jf "$r" .admitted)/$(jf "$r" .ticket_id)" = "true/n1"
r=$(verify nfc '{"uid":"04a1b2c3d4e5f6"}')
check "nfc: the second tap is already_used" eq "$(reason "$r")" already_used
r=$(api GET "$U/tickets/n1" "$ADMIN")
check "nfc: used_ms and used_method are set" test "$(jf "$r" .used_method)/$(jf "$r" '.used_ms > 0')" = "nfc/true"

r=$(api POST "$U/tickets/n3/methods/nfc/generate" "$ADMIN" '{"uid":"04DE5F1EACC041","sun":true}')
MK=$(jf "$r" .sdm_meta_read_key); FK=$(jf "$r" .sdm_file_read_key)
check "nfc: a SUN tag gets its SDM keys" test ${#MK}/${#FK} = 32/32
r=$(api POST "$U/tickets/n4/methods/nfc/generate" "$ADMIN" '{"uid":"04DE5F1E","sun":true}')
check "nfc: SUN needs a 7-byte UID" eq "$(status_of "$r")" 400
TAP3=$("$GATECTL" nfc sun-tap --uid 04DE5F1EACC041 --ctr 3 --meta-key "$MK" --file-key "$FK")
bad=$(jq -c '.cmac = "0000000000000000"' <<<"$TAP3")
r=$(verify nfc "{\"sun\":$bad}")
check "nfc: a SUN with a bad CMAC is bad_signature" eq "$(reason "$r")" bad_signature
r=$(verify nfc "{\"uid\":\"04DE5F1EACC042\",\"sun\":$TAP3}")
check "nfc: a SUN of another tag is bad_signature" eq "$(reason "$r")" bad_signature
r=$(verify nfc "{\"sun\":$TAP3}")
check "nfc: a SUN tap admits" test "$(jf "$r" .admitted)/$(jf "$r" .ticket_id)" = "true/n3"
api POST "$U/admin/tickets/n3/override" "$ADMIN" '{"action":"reset","reason":"test"}' >/dev/null
r=$(verify nfc "{\"sun\":$TAP3}")
check "nfc: a replayed counter is refused after a reset" eq "$(reason "$r")" replayed
TAP4=$("$GATECTL" nfc sun-tap --uid 04DE5F1EACC041 --ctr 4 --meta-key "$MK" --file-key "$FK")
r=$(verify nfc "{\"sun\":$TAP4}")
check "nfc: the next counter admits" eq "$(reason "$r")" admitted
r=$(verify nfc '{"uid":"04DE5F1EACC041","sun":{"picc_data":"zz","cmac":"00"}}')
check "nfc: a malformed SUN is malformed" eq "$(reason "$r")" malformed
out=$("$GATECTL" nfc write --device pn532_uart:/dev/gm-no-such-reader --ticket n4 2>&1); rc=$?
check "nfc: write without a reader fails naming the connstring" \
  test $rc = 1 -a -n "$(grep -F "pn532_uart:/dev/gm-no-such-reader" <<<"$out")"
out=$("$GATECTL" nfc listen --device pn532_uart:/dev/gm-no-reader-2 --gate "$U" 2>&1); rc=$?
check "nfc: listen without a reader fails naming the connstring" \
  test $rc = 1 -a -n "$(grep -F "pn532_uart:/dev/gm-no-reader-2" <<<"$out")"

# --- biometric -------------------------------------------------------------
# Templates of 128 values +-c (c = 1/sqrt(128), so already normalised), signs
# from a seeded generator; flip N signs for a noisy capture of the same face.
C=0.08838834764831845
tmpl() { # tmpl SEED FLIPS
  awk -v s="$1" -v f="$2" -v c="$C" 'BEGIN { srand(s); printf "["; for (i = 0; i < 128; i++) {
    v = (rand() < 0.5) ? -c : c; if (i < f) v = -v; printf "%s%s", (i ? "," : ""), v } printf "]" }'
}
A=$(tmpl 11 0); A_NOISY=$(tmpl 11 5); B=$(tmpl 22 0); B_NOISY=$(tmpl 22 4); D=$(tmpl 44 0)
E=$(tmpl 55 0); E2=$(tmpl 55 2)
enrol() { api POST "$U/tickets/$1/methods/biometric/generate" "$ADMIN" "{\"template\":$2,\"consent\":true}"; }
r=$(api POST "$U/tickets/b1/methods/biometric/generate" "$ADMIN" "{\"template\":$A}")
check "bio: no consent is 400" eq "$(status_of "$r")" 400
r=$(enrol b1 "[1,2,3]")
check "bio: a template of the wrong dimension is 400" eq "$(status_of "$r")" 400
r=$(enrol b1 "$(tmpl 11 0 | sed 's/^\[[^,]*,/["x",/')")
check "bio: a non-number is 400" eq "$(status_of "$r")" 400
r=$(enrol b1 "$(tmpl 11 0 | sed 's/^\[[^,]*,/[1e999,/')")
check "bio: an infinite value is 400" eq "$(status_of "$r")" 400
r=$(enrol b1 "[$(printf '0,%.0s' $(seq 1 127))0]")
check "bio: a zero template is 400" eq "$(status_of "$r")" 400
r=$(enrol b1 "$A")
check "bio: enrol with consent" test "$(status_of "$r")/$(jf "$r" .enrolled)" = "200/true"
enrol b2 "$B" >/dev/null; enrol b3 "$D" >/dev/null
r=$(api POST "$U/tickets/b2/methods/biometric/verify" "$ADMIN" "{\"presented_data\":{\"template\":$B_NOISY}}")
check "bio: 1:1 of the same face admits with its score" \
  test "$(jf "$r" .admitted)/$(jf "$r" '.score > 0.85 and .score < 0.95')" = "true/true"
r=$(api POST "$U/tickets/b3/methods/biometric/verify" "$ADMIN" "{\"presented_data\":{\"template\":$A}}")
check "bio: 1:1 of another face is no_match with a low score" \
  test "$(reason "$r")/$(jf "$r" '.score < 0.5')" = "no_match/true"
r=$(verify biometric "{\"template\":$A_NOISY}")
check "bio: 1:N finds the face" test "$(jf "$r" .admitted)/$(jf "$r" .ticket_id)" = "true/b1"
r=$(verify biometric "{\"template\":$(tmpl 66 0)}")
check "bio: 1:N of a stranger is no_match and names nobody" \
  test "$(reason "$r")/$(jf "$r" '.ticket_id // "none"')" = "no_match/none"
enrol b4 "$E" >/dev/null; enrol b5 "$E2" >/dev/null
r=$(verify biometric "{\"template\":$E}")
check "bio: 1:N between two close faces is no_match (margin)" eq "$(reason "$r")" no_match
# sealed_pat LEDGER_DIR TICKET: 32 bytes of the ticket's wrapped data key and
# 32 bytes from the middle of its ciphertext, in hex.
sealed_pat() {
  local s w c; s=$("$SEALED" "$1" "$2") || return 1
  w=${s%% *}; c=${s#* }
  echo "${w:0:64} ${c:$(( ${#c} / 2 )):64}"
}
# sealed_in PATTERNS DIR...: files holding either piece of the sealed record.
sealed_in() { local p; for p in $1; do "$SEALED" --find "$p" "${@:2}"; done; }
SP=$(sealed_pat "$DIR_g1/data/ledger" b3)
check "bio: the sealed record is on disk while enrolled (journal, ledger)" \
  test -n "$(sealed_in "$SP" "$DIR_g1")" -a -n "$SP"
r=$(api DELETE "$U/tickets/b3/methods/biometric" "$ADMIN")
check "bio: erase" test "$(status_of "$r")/$(jf "$r" .erased)" = "200/true"
r=$(api DELETE "$U/tickets/b3/methods/biometric" "$ADMIN")
check "bio: erasing twice is 409" eq "$(status_of "$r")" 409
receipts() { api GET "$1/tickets/$2/methods/biometric" "$ADMIN" | cut -d' ' -f2- | jq '.receipts | length'; }
check "bio: the gate records its erasure receipt" wait_until 30 is 1 receipts "$U" b3
check "bio: ... once no copy of the sealed record is left on its disk" \
  test -z "$(sealed_in "$SP" "$DIR_g1")"
r=$(api GET "$U/tickets/b3/methods/biometric" "$ADMIN")
check "bio: status says erased on request" \
  test "$(jf "$r" .enrolled)/$(jf "$r" .erase_reason)/$(jf "$r" '.receipts[0].gate')" = "false/request/g1"
r=$(api POST "$U/tickets/b3/methods/biometric/verify" "$ADMIN" "{\"presented_data\":{\"template\":$D}}")
check "bio: an erased template matches nothing" eq "$(reason "$r")" unknown_credential
r=$(api GET "$U/audits/usage?ticket=b3&method=biometric" "$ADMIN")
check "bio: enrol and erase are audited, without the template" \
  test "$(jf "$r" '[.events[].action] | unique | join(",")')" = "enroll,erase,verify"
# c as float32, little endian, for a (+,+,-,+) run and the decimal text.
pos='\xf3\x04\xb5\x3d'; neg='\xf3\x04\xb5\xbd'
sign4=$(awk -v s=11 'BEGIN { srand(s); for (i = 0; i < 4; i++) printf "%s", (rand() < 0.5) ? "n" : "p" }')
pat=""; for ((i = 0; i < 4; i++)); do [ "${sign4:$i:1}" = p ] && pat+=$pos || pat+=$neg; done
# leaks DIR...: files holding the template's first floats or its decimal text.
leaks() {
  "$SEALED" --find "${pat//\\x/}" "$@"
  "$SEALED" --find "$(printf 0.0883883476 | od -An -tx1 | tr -d ' \n')" "$@"
}
check "bio: no template bytes or text in the data dir or the log" test -z "$(leaks "$DIR_g1")"
printf "$pat" > "$TMP/probe.bin"
check "bio: (the search itself finds such bytes)" test -n "$(leaks "$TMP/probe.bin")"
rm -f "$TMP/probe.bin"

# --- geofence --------------------------------------------------------------
r=$(api POST "$U/events/fest/zones" "$ADMIN" '{"id":"main","circle":{"lat":52.52,"lon":13.405,"radius_m":150}}')
check "geo: a circle zone" eq "$(status_of "$r")" 201
r=$(api POST "$U/events/fest/zones" "$ADMIN" \
  '{"id":"ferry","gate":"g1","polygon":[[-16.9,179.999],[-16.9,-179.999],[-17.0,-179.999],[-17.0,179.999]],"max_accuracy_m":30}')
check "geo: a polygon zone across the antimeridian" eq "$(status_of "$r")" 201
r=$(api POST "$U/events/fest/zones" "$ADMIN" '{"id":"bad","circle":{"lat":95,"lon":0,"radius_m":10}}')
check "geo: a zone out of range is 400" eq "$(status_of "$r")" 400
r=$(api POST "$U/tickets/g1/methods/geofence/generate" "$ADMIN" '{}')
K1=$(jf "$r" .device_secret_key); DK1=$(jf "$r" .device_key)
check "geo: generate returns the zones and a device key" \
  test "$(jf "$r" '.zones | length')/${#DK1}" = "2/43"
r=$(api POST "$U/tickets/g2/methods/geofence/generate" "$ADMIN" '{}')
K2=$(jf "$r" .device_secret_key); DK2=$(jf "$r" .device_key)
report() { # report KEY DEVKEY TICKET LAT LON ACC [AT]
  local s; s=$("$GATECTL" geo sign --key "$1" --ticket "$3" --lat "$4" --lon "$5" --accuracy "$6" ${7:+--at $7})
  echo "{\"device_key\":\"$2\",\"lat\":$4,\"lon\":$5,\"accuracy_m\":$6,\"timestamp_ms\":$(jq .timestamp_ms <<<"$s"),\"signature\":\"$(jq -r .signature <<<"$s")\"}"
}
p=$(report "$K2" "$DK2" g2 52.5201 13.4051 10)
r=$(verify geofence "$(jq -c 'del(.signature)' <<<"$p")")
check "geo: an unsigned webhook is bad_signature" eq "$(reason "$r")" bad_signature
r=$(verify geofence "$(jq -c '.lat = 52.5202' <<<"$p")")
check "geo: a report altered after signing is bad_signature" eq "$(reason "$r")" bad_signature
r=$(verify geofence "$(report "$K2" "$DK2" g2 52.5201 13.4051 10 $(( $(date +%s) * 1000 - 60000 )))")
check "geo: a stale report is expired" eq "$(reason "$r")" expired
r=$(verify geofence "$(report "$K2" "$DK2" g2 52.53 13.405 10)")
check "geo: a point 1 km away is outside_zone" eq "$(reason "$r")" outside_zone
r=$(verify geofence "$(report "$K2" "$DK2" g2 52.5201 13.4051 500)")
check "geo: an inaccurate fix is outside_zone" eq "$(reason "$r")" outside_zone
r=$(verify geofence "$(jq -c '.lat = 91' <<<"$p")")
check "geo: latitude out of range is 400" eq "$(status_of "$r")" 400
r=$(verify geofence '{"device_key":"x","lat":"52","lon":13,"accuracy_m":5,"timestamp_ms":1,"signature":"x"}')
check "geo: a string for a number is 400" eq "$(status_of "$r")" 400
r=$(verify geofence "$(report "$K1" "$DK2" g2 52.5201 13.4051 10)")
check "geo: a report signed by another device is bad_signature" eq "$(reason "$r")" bad_signature
r=$(verify geofence "$(report "$K2" "$DK2" g2 -16.95 -179.9995 10)")
check "geo: inside the polygon across the antimeridian admits" \
  test "$(jf "$r" .admitted)/$(jf "$r" .ticket_id)" = "true/g2"
r=$(verify geofence "$(report "$K1" "$DK1" g1 52.5205 13.4055 20)")
check "geo: inside the circle admits" test "$(jf "$r" .admitted)/$(jf "$r" .ticket_id)" = "true/g1"
r=$(verify geofence "$(report "$K1" "$DK1" g1 52.5205 13.4055 20)")
check "geo: a second entry is already_used" eq "$(reason "$r")" already_used

# --- background jobs -------------------------------------------------------
r=$(api POST "$U/tickets/q1/methods/qr/generate" "$ADMIN" '{"ttl_s":5}')
QR=$(jf "$r" .payload)
# Nothing scans it: a scan would use it, and a credential that admitted
# its ticket is kept as the record of that admission.
exp_count() { api GET "$U/audits/usage?ticket=q1" "$ADMIN" | cut -d' ' -f2- | jq '[.events[] | select(.action == "expire")] | length'; }
check "jobs: an expired QR is deleted by the expiry job, audited" wait_until 12 is 1 exp_count
r=$(verify qr "{\"payload\":\"$QR\"}")
check "jobs: a late scan of it is still refused" eq "$(jf "$r" .admitted)" false
# "past" ends 3 s from now and revokes 1 s after its end, so p2 is admitted
# before the job (every 200 ms) may revoke anything of it.
PAST=$(( $(date +%s) * 1000 + 3000 ))
api POST "$U/events" "$ADMIN" "{\"id\":\"past\",\"name\":\"Past\",\"starts_ms\":0,\"ends_ms\":$PAST,\"revoke_unscanned_after_ms\":1000}" >/dev/null
api POST "$U/events" "$ADMIN" "{\"id\":\"past2\",\"name\":\"Past 2\",\"starts_ms\":0,\"ends_ms\":$END,\"biometric_retention_ms\":1000}" >/dev/null
api POST "$U/tickets/batch" "$ADMIN" '{"tickets":[{"event_id":"past","holder":"x","id":"p1"},{"event_id":"past","holder":"y","id":"p2"},{"event_id":"past2","holder":"z","id":"p3"}]}' >/dev/null
api POST "$U/admin/tickets/p2/override" "$ADMIN" '{"action":"admit","reason":"came in"}' >/dev/null
st() { api GET "$U/tickets/$1" "$ADMIN" | cut -d' ' -f2- | jq -r .status; }
check "jobs: an unscanned ticket of an opted-in event is revoked" wait_until 15 is revoked st p1
check "jobs: a scanned one is not" eq "$(st p2)" used
check "jobs: an event that did not opt in keeps its tickets" eq "$(st p3)" created
r=$(api GET "$U/audits/usage?ticket=p1" "$ADMIN")
check "jobs: the revocation is audited with its reason" \
  grep -q "unscanned" <<<"$(jf "$r" '.events[] | select(.action == "revoke") | .reason')"
m=$(curl -s "$U/metrics")
check "jobs: /metrics counts the actions" \
  test -n "$(grep -E '^gate_job_actions_total\{job="revoke"\} [1-9]' <<<"$m")"
# Retention: past2 ends tomorrow, so nothing yet; an event already over with
# 1 s retention loses its templates.
api POST "$U/events" "$ADMIN" "{\"id\":\"past3\",\"name\":\"Past 3\",\"starts_ms\":0,\"ends_ms\":$((NOW + 3000)),\"biometric_retention_ms\":1000}" >/dev/null
api POST "$U/tickets/" "$ADMIN" '{"event_id":"past3","holder":"w","id":"p4"}' >/dev/null
enrol p3 "$(tmpl 77 0)" >/dev/null
r=$(enrol p4 "$(tmpl 88 0)")
check "jobs: enrol before the event ends" eq "$(status_of "$r")" 200
bio_reason() { api GET "$U/tickets/$1/methods/biometric" "$ADMIN" | cut -d' ' -f2- | jq -r '.erase_reason // "enrolled"'; }
check "jobs: retention erases templates after the event" wait_until 12 is retention bio_reason p4
check "jobs: retention keeps templates of running events" eq "$(bio_reason p3)" enrolled
check "jobs: the retention erasure gets its receipt" wait_until 20 is 1 receipts "$U" p4

# --- the 3-gate cluster ------------------------------------------------------
# An erasure pushes about 20 MiB of pad entries through every gate; with a
# 600 ms election timeout, three sanitizer builds on two cores lost their
# leader during it again and again, and each new leader padded anew.
RAFT_FLAGS=(--snapshot-threshold 64 --election-timeout-ms 2000 --heartbeat-ms 100 "${JOBS[@]}")
member a 1 --bootstrap || exit 1
lead_role() { status "$URL_a" | jq -r .role; }
wait_until 20 is leader lead_role
TA=$(login "$URL_a" admin admin-pass-1)
JT=$(curl -s -H "Authorization: Bearer $TA" "$URL_a/cluster/join-token" | jq -r .token)
member b 2 --join 127.0.0.1:$CPORT_a --join-token "$JT" || exit 1
member c 3 --join 127.0.0.1:$CPORT_a --join-token "$JT" || exit 1
voters() { status "$URL_a" | jq '[.members[] | select(.role == "voter" and .reachable)] | length'; }
check "cluster: three voters" wait_until 15 is 3 voters
ADMIN=$TA
api POST "$URL_a/events" "$TA" "{\"id\":\"fest\",\"name\":\"Fest\",\"starts_ms\":0,\"ends_ms\":$END}" >/dev/null
body='{"tickets":['
for t in cb1 cb2 cn1; do body+="{\"event_id\":\"fest\",\"holder\":\"h\",\"id\":\"$t\"},"; done
api POST "$URL_a/tickets/batch" "$TA" "${body%,}]}" >/dev/null
has_ticket() { api GET "$1/tickets/$2" "$TA" | cut -c1-3; }
wait_until 5 is 200 has_ticket "$URL_b" cn1
wait_until 5 is 200 has_ticket "$URL_c" cn1
r=$(api POST "$URL_b/tickets/cb1/methods/biometric/generate" "$TA" "{\"template\":$A,\"consent\":true}")
check "cluster: enrol through a follower" eq "$(status_of "$r")" 200
api POST "$URL_a/tickets/cb2/methods/biometric/generate" "$TA" "{\"template\":$B,\"consent\":true}" >/dev/null
U=$URL_c
found() { jf "$(verify biometric "{\"template\":$A_NOISY}")" .ticket_id; }
check "cluster: 1:N on a third gate finds the face" wait_until 5 is cb1 found
check "cluster: no template bytes or text on any gate (Raft log, ledger, log)" \
  test -z "$(leaks "$DIR_a" "$DIR_b" "$DIR_c")"
SP=$(sealed_pat "$DIR_a/data/ledger" cb2)
check "cluster: the sealed record is in every gate's Raft log while enrolled" \
  test -n "$SP" -a -n "$(sealed_in "$SP" "$DIR_a/data/raft")" -a -n "$(sealed_in "$SP" "$DIR_b/data/raft")" \
  -a -n "$(sealed_in "$SP" "$DIR_c/data/raft")"
r=$(api DELETE "$URL_c/tickets/cb2/methods/biometric" "$TA")
check "cluster: erase through a follower" eq "$(status_of "$r")" 200
# The purge moves about 19 MiB of pad entries through every gate's log, then
# each gate snapshots and compacts its ledger: seconds, more under load or
# sanitizers. The wait ends at the third receipt.
check "cluster: every gate records its erasure receipt" wait_until 60 is 3 receipts "$URL_a" cb2
check "cluster: ... once no gate has a copy of the sealed record on disk (log, snapshots, ledger)" \
  test -z "$(sealed_in "$SP" "$DIR_a" "$DIR_b" "$DIR_c")"
purged() { curl -s "$1/metrics" | sed -n 's/^gate_ledger_compactions_total //p'; }
check "cluster: each gate compacted its ledger for it" \
  test "$(purged "$URL_a")" -ge 1 -a "$(purged "$URL_b")" -ge 1 -a "$(purged "$URL_c")" -ge 1
r=$(api POST "$URL_a/tickets/cn1/methods/nfc/generate" "$TA" '{"uid":"04C0FFEE"}')
U=$URL_b
r=$(verify nfc '{"uid":"04c0ffee","record":"'"$(jf "$r" .record)"'"}')
check "cluster: an nfc tap on another gate admits" eq "$(jf "$r" .ticket_id)" cn1
# The revoke job runs on the leader only. Its tickets come after the erasure:
# a leader change during the pads would otherwise leave the revocations with
# a gate that is no longer the leader when the counters are read.
api POST "$URL_b/events" "$TA" "{\"id\":\"gone\",\"name\":\"Gone\",\"starts_ms\":0,\"ends_ms\":$PAST,\"revoke_unscanned_after_ms\":1000}" >/dev/null
body='{"tickets":['
for i in 1 2 3 4 5; do body+="{\"event_id\":\"gone\",\"holder\":\"h\",\"id\":\"r$i\"},"; done
api POST "$URL_a/tickets/batch" "$TA" "${body%,}]}" >/dev/null
revoked() { [ "$(api GET "$URL_a/audits/usage?limit=100" "$TA" | cut -d' ' -f2- | jq '[.events[] | select(.action == "revoke")] | length')" = 5 ]; }
check "cluster: the revoke job revokes the 5 unscanned tickets" wait_until 10 revoked
sleep 1
check "cluster: ... once each, not once per gate" revoked
proposed() { curl -s "$1/metrics" | sed -n 's/^gate_job_proposed_total{job="revoke"} //p'; }
LEAD=$(for g in a b c; do eval "u=\$URL_$g"; [ "$(status "$u" | jq -r .role)" = leader ] && echo "$u"; done)
others=0; for g in a b c; do eval "u=\$URL_$g"; [ "$u" != "$LEAD" ] && others=$((others + $(proposed "$u"))); done
check "cluster: only the leader ran the job" test "$(proposed "$LEAD")" -ge 5 -a "$others" = 0
finish
