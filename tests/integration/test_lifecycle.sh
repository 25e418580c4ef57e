#!/usr/bin/env bash
# A gate's life: SIGTERM in the middle of a burst of scans loses no
# acknowledged admission, a restart keeps everything, a fresh data dir needs an
# admin password, a config file works and a bad one is refused, TLS serves
# HTTP/2 by ALPN.
source "$(dirname "$0")/lib.sh"

start_gate g1 --log-level info || exit 1
U=$URL_g1
ADMIN=$(login "$U" admin admin-pass-1)
END=$(( ($(date +%s) + 86400) * 1000 ))
N=300
festival "$U" "$ADMIN" s $N
mkdir -p "$TMP/verdicts"

# Scan all of them from 16 parallel clients and stop the gate mid-burst.
scan() {
  curl -s -m 10 -H "Authorization: Bearer $ADMIN" "$U/verify" \
    -d "{\"method\":\"qr\",\"presented_data\":{\"payload\":\"$(cat "$TMP/qr/$1")\"}}" \
    > "$TMP/verdicts/$1" 2>/dev/null
}
export -f scan; export U ADMIN TMP
seq 1 $N | sed 's/^/s/' | xargs -P 16 -I{} bash -c 'scan {}' &
XP=$!
sleep 0.4
kill -TERM "$PID_g1"
for _ in $(seq 1 100); do kill -0 "$PID_g1" 2>/dev/null || break; sleep 0.05; done
check "gate exits after SIGTERM" bash -c "! kill -0 $PID_g1 2>/dev/null"
wait $XP 2>/dev/null
check "drain was logged" grep -q "commit queue drained" "$DIR_g1/log"
admitted=$(grep -l '"admitted":true' "$TMP"/verdicts/* 2>/dev/null | xargs -r -n1 basename)
na=$(echo "$admitted" | grep -c . || true)
check "some scans were admitted before the stop ($na)" test "$na" -gt 0

# Restart on the same data dir: no admin password needed, everything kept.
mv "$DIR_g1/log" "$DIR_g1/log.1"
GATE_ADMIN_PASSWORD= "$GATED" --data-dir "$DIR_g1/data" --http-listen 127.0.0.1:$PORT_g1 \
  --gate g1 --log-level warn >>"$DIR_g1/log" 2>&1 &
PID2=$!; disown $PID2; PIDS+=("$PID2")
for _ in $(seq 1 100); do curl -sf "$U/healthz" >/dev/null && break; sleep 0.05; done
check "restart on the same data dir serves" curl -sf "$U/healthz"
ADMIN=$(login "$U" admin admin-pass-1)
check "admin still logs in after restart" test -n "$ADMIN" -a "$ADMIN" != null
lost=0
for t in $admitted; do
  st=$(curl -s -H "Authorization: Bearer $ADMIN" "$U/tickets/$t" | jq -r .status)
  [ "$st" = used ] || { lost=$((lost + 1)); echo "  acknowledged admission of $t lost (status $st)"; }
done
check "every acknowledged admission survived the stop ($na checked)" eq "$lost" 0
first=$(echo "$admitted" | head -1)
r=$(api POST "$U/verify" "$ADMIN" "{\"method\":\"qr\",\"presented_data\":{\"payload\":\"$(cat "$TMP/qr/$first")\"}}")
check "a QR signed before the restart verifies with the persisted key" eq "$(jf "$r" .reason)" already_used
unanswered=$(for f in "$TMP"/verdicts/*; do [ -s "$f" ] || echo x; done | grep -c x || true)
rest=$(ls "$TMP/verdicts" | while read t; do grep -q '"admitted":true' "$TMP/verdicts/$t" || echo "$t"; done)
double=0
for t in $rest; do
  r=$(api POST "$U/verify" "$ADMIN" "{\"method\":\"qr\",\"presented_data\":{\"payload\":\"$(cat "$TMP/qr/$t")\"}}")
  reason=$(jf "$r" '.reason // "admitted"')
  # Scans cut off by the stop may or may not have committed; none may commit twice.
  case "$reason" in admitted|already_used) ;; *) double=$((double + 1)); echo "  $t: $reason";; esac
done
check "scans cut off by the stop resolve to admitted or already_used ($unanswered unanswered)" eq "$double" 0

# Fresh data dir and no admin password: refuses to start, says why.
GATE_ADMIN_PASSWORD= "$GATED" --data-dir "$TMP/fresh" --http-listen 127.0.0.1:$(free_port) \
  > "$TMP/fresh.log" 2>&1; rc=$?
check "fresh start without admin password fails" test $rc -ne 0
check "and says GATE_ADMIN_PASSWORD" grep -q GATE_ADMIN_PASSWORD "$TMP/fresh.log"

# Config file, and a flag overriding it.
cat > "$TMP/gate.conf" <<CONF
# test config
gate = east-entrance
http-listen = 127.0.0.1:1
data-dir = $TMP/confdata
qr-ttl-s = 30
CONF
start_gate cf --config "$TMP/gate.conf" --data-dir "$TMP/confdata"
ADM=$(login "$URL_cf" admin admin-pass-1)
api POST "$URL_cf/events" "$ADM" "{\"id\":\"e\",\"name\":\"E\",\"starts_ms\":0,\"ends_ms\":$END}" >/dev/null
api POST "$URL_cf/tickets/" "$ADM" '{"event_id":"e","holder":"x","id":"x1"}' >/dev/null
r=$(api POST "$URL_cf/tickets/x1/methods/qr/generate" "$ADM" '')
exp=$(jf "$r" .expires_ms); now=$(( $(date +%s) * 1000 ))
check "config file qr-ttl-s applies" test $((exp - now)) -le 32000
r=$(api POST "$URL_cf/verify" "$ADM" "{\"method\":\"qr\",\"presented_data\":{\"payload\":\"$(jf "$r" .payload)\"}}")
check "config file gate name is the default gate" eq "$(jf "$r" .gate)" east-entrance
echo "bogus-key = 1" > "$TMP/bad.conf"
"$GATED" --config "$TMP/bad.conf" > "$TMP/bad.log" 2>&1; rc=$?
check "unknown config key is refused (exit 2)" eq $rc 2
check "and named with its line" grep -q "bad.conf:1: bogus-key: unknown key" "$TMP/bad.log"
"$GATED" --http-listen nowhere > "$TMP/bad2.log" 2>&1; rc=$?
check "bad listen address is refused" eq $rc 2
echo "not-hex" > "$TMP/key.bad"
GATE_ADMIN_PASSWORD=admin-pass-1 "$GATED" --data-dir "$TMP/kd" --cluster-key-file "$TMP/key.bad" \
  --http-listen 127.0.0.1:$(free_port) > "$TMP/key.log" 2>&1; rc=$?
check "malformed cluster key file is refused" test $rc -ne 0
check "and explained" grep -q "64 hex" "$TMP/key.log"

# Rate limiting per client address on the verify endpoints.
start_gate rl --verify-rate-per-s 5
RT=$(login "$URL_rl" admin admin-pass-1)
# The refusals are checked on the burst's own answers: a request sent after
# it could find the bucket partly refilled on a slow machine.
codes=$(for i in $(seq 1 20); do
  curl -s -o "$TMP/rl.$i" -w '%{http_code} %{content_type}\n' -H "Authorization: Bearer $RT" \
    "$URL_rl/verify" -d '{"method":"pass","presented_data":{"code":"x"}}'
done | sort | uniq -c)
check "a burst over the verify rate gets 429" bash -c "echo '$codes' | grep -q ' 429 application/problem+json'"
check "the first requests of the burst are served" bash -c "echo '$codes' | grep -q ' 200 '"
check "429 is problem+json rate_limited" test "$(cat "$TMP"/rl.* | jq -r .code | grep -c rate_limited)" -gt 0
sleep 1.2
r=$(api POST "$URL_rl/verify" "$RT" '{"method":"pass","presented_data":{"code":"x"}}')
check "the bucket refills" eq "$(status_of "$r")" 200

# TLS: HTTP/2 negotiated by ALPN.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -keyout "$TMP/tls.key" -out "$TMP/tls.crt" >/dev/null 2>&1
start_gate tls --tls-cert "$TMP/tls.crt" --tls-key "$TMP/tls.key"
v=$(curl -sk --http2 -o /dev/null -w '%{http_version}' "https://127.0.0.1:$PORT_tls/healthz")
check "TLS serves HTTP/2 via ALPN" eq "$v" 2
v=$(curl -sk --http1.1 -o /dev/null -w '%{http_code}' "https://127.0.0.1:$PORT_tls/healthz")
check "TLS serves HTTP/1.1 too" eq "$v" 200

finish
