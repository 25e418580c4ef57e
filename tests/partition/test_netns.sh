#!/usr/bin/env bash
# Five real gates, each in its own network namespace, joined by veth pairs
# to a bridge in a sixth; the site is split with nft rules, scanned on both
# sides (the same credential on both: a double entry), healed, and the
# invariants are checked over the HTTP API:
#  - at most one strict admission per credential;
#  - every acknowledged admission is in the final ledger (as the ticket's
#    use, or as an incident);
#  - every double entry pairs an admission of one side with a provisional
#    one of the other;
#  - the budget held; all gates converge to the same ledger hash;
#  - a replayed verify changes nothing.
# Needs root (ip netns); namespaces are removed on exit, pass or fail.
# PARTITION_BENCH=N (bench/partition.sh) adds the convergence benchmark: N
# more provisional admissions on the cut-off side, then the time from the
# heal until every gate has the same ledger.
set -u
cd "$(dirname "$0")/../.."
B=${1:-build}
GATED=$PWD/$B/gated
if [ "$(id -u)" != 0 ] || ! ip netns list >/dev/null 2>&1; then
  echo "partition test: skipped (needs root and ip netns)"
  echo "0 0" >> build/test-counts
  exit 0
fi
if [ "${PARTITION_BENCH:-0}" -gt 0 ] && [ ! -x "$B/bench/mkcreds" ]; then
  echo "FAIL: PARTITION_BENCH needs $B/bench/mkcreds to sign its payloads (make bench builds it)"
  exit 1
fi
TAG=gm$$
TMP=$(mktemp -d /tmp/gm-part.XXXXXX)
PASS=0; FAIL=0
N=5
# Everything still running in a namespace goes with it: a process outlives
# `ip netns del`, and keeps the namespace alive.
cleanup() {
  for i in $(seq 1 $N); do
    [ -f "$TMP/pid$i" ] && kill -9 "$(cat "$TMP/pid$i")" 2>/dev/null
    ip netns pids "$TAG-$i" 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns del "$TAG-$i" 2>/dev/null
  done
  ip netns del "$TAG-br" 2>/dev/null
  [ -n "${GM_KEEP_TMP:-}" ] && echo "kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT
trap "exit 130" INT TERM
check() { local name=$1; shift; if "$@" >/dev/null 2>&1; then PASS=$((PASS + 1)); else FAIL=$((FAIL + 1)); echo "FAIL: $name"; fi; }
eq() { [ "$1" = "$2" ] || { echo "  expected [$2] got [$1]" >&2; return 1; }; }
wait_until() { local n=$(( $1 * 10 )); shift; for _ in $(seq 1 $n); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }
ip_of() { echo "10.77.0.$1"; }
# nsx K CMD...: runs CMD in gate K's namespace (its loopback carries the API)
nsx() { local k=$1; shift; ip netns exec "$TAG-$k" "$@"; }
api() { # api K METHOD PATH [BODY] -> body
  local k=$1 m=$2 p=$3 body=${4:-}
  local args=(-s -m 15 -X "$m" "http://127.0.0.1:8080$p" -H "Authorization: Bearer $TOKEN")
  [ -n "$body" ] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
  nsx "$k" curl "${args[@]}"
}
status() { nsx "$1" curl -s -m 5 http://127.0.0.1:8080/cluster/status; }

# --- the network ----------------------------------------------------------------
ip netns add "$TAG-br"
ip -n "$TAG-br" link add br0 type bridge
ip -n "$TAG-br" link set br0 up
for i in $(seq 1 $N); do
  ip netns add "$TAG-$i"
  ip link add "v$TAG$i" type veth peer name "b$TAG$i"
  ip link set "v$TAG$i" netns "$TAG-$i"
  ip link set "b$TAG$i" netns "$TAG-br"
  ip -n "$TAG-br" link set "b$TAG$i" master br0 up
  ip -n "$TAG-$i" addr add "$(ip_of $i)/24" dev "v$TAG$i"
  ip -n "$TAG-$i" link set "v$TAG$i" up
  ip -n "$TAG-$i" link set lo up
done
reach() { timeout 2 ip netns exec "$TAG-$1" bash -c "exec 3<>/dev/tcp/$2/7000"; }

FLAGS=(--election-timeout-ms 800 --heartbeat-ms 80 --request-timeout-ms 3000 --offline-wait-ms 300
       --log-level info --http-listen 0.0.0.0:8080)
start() { # start K [flags]
  local k=$1; shift
  mkdir -p "$TMP/g$k"
  # A plain command, not nsx: `ip netns exec` and env exec what follows,
  # so $! is the gate's own pid (a function's would be a subshell's).
  ip netns exec "$TAG-$k" env GATE_ADMIN_PASSWORD=admin-pass-1 "$GATED" --data-dir "$TMP/g$k/data" \
    --gate "gate$k" --node-id "$k" --cluster-listen "$(ip_of $k):7000" "${FLAGS[@]}" "$@" \
    >>"$TMP/g$k/log" 2>&1 &
  echo $! > "$TMP/pid$k"
  disown $!
  wait_until 10 nsx "$k" curl -sf http://127.0.0.1:8080/healthz
}
start 1 --bootstrap || { cat "$TMP/g1/log"; exit 1; }
wait_until 10 bash -c "ip netns exec $TAG-1 curl -s http://127.0.0.1:8080/cluster/status | grep -q '\"role\":\"leader\"'"
TOKEN=$(nsx 1 curl -s http://127.0.0.1:8080/auth/login -d '{"username":"admin","password":"admin-pass-1"}' | jq -r .token)
JT=$(api 1 GET /cluster/join-token | jq -r .token)
for k in 2 3 4 5; do start "$k" --join "$(ip_of 1):7000" --join-token "$JT" || exit 1; done
check "five members, three voters" wait_until 30 bash -c "[ \$(ip netns exec $TAG-1 curl -s http://127.0.0.1:8080/cluster/status | jq '[.members[] | select(.role == \"voter\")] | length') = 3 ] && [ \$(ip netns exec $TAG-1 curl -s http://127.0.0.1:8080/cluster/status | jq '.members | length') = 5 ]"
check "the namespaces reach each other over the bridge" reach 5 "$(ip_of 1)"
check "gossip sees five" wait_until 20 bash -c "[ \$(ip netns exec $TAG-5 curl -s http://127.0.0.1:8080/cluster/status | jq .gossip.alive) = 5 ]"

END=$(( ($(date +%s) + 86400) * 1000 ))
BUDGET=6
NB=${PARTITION_BENCH:-0}
api 1 POST /events "{\"id\":\"fest\",\"name\":\"Field\",\"starts_ms\":0,\"ends_ms\":$END,\"offline_policy\":\"available\",\"offline_budget\":$BUDGET}" >/dev/null
T=40
body='{"tickets":['; for i in $(seq 1 $T); do body+="{\"event_id\":\"fest\",\"holder\":\"h$i\",\"id\":\"p$i\"},"; done
api 1 POST /tickets/batch "${body%,}]}" >/dev/null
mkdir -p "$TMP/qr"
for i in $(seq 1 $T); do api 1 POST "/tickets/p$i/methods/qr/generate" '{"ttl_s":3600}' | jq -r .payload > "$TMP/qr/p$i"; done
check "setup: $T QR payloads" test "$(cat "$TMP"/qr/p* | grep -c .)" = $T
if [ "$NB" -gt 0 ]; then
  # Tickets for the benchmark reach every gate before the split; their QR
  # payloads are signed offline with the cluster's key (bench/mkcreds).
  api 1 POST /events "{\"id\":\"bench\",\"name\":\"Bench\",\"starts_ms\":0,\"ends_ms\":$END,\"offline_policy\":\"available\",\"offline_budget\":$((NB * 2))}" >/dev/null
  for s0 in $(seq 0 10000 $((NB - 1))); do
    e=$(( s0 + 10000 < NB ? s0 + 10000 : NB ))
    printf '{"tickets":[%s]}' "$(seq $((s0 + 1)) $e | sed 's/.*/{"event_id":"bench","holder":"b","id":"b&"}/' | paste -sd,)" > "$TMP/tb"
    nsx 1 curl -s -m 60 http://127.0.0.1:8080/tickets/batch -H "Authorization: Bearer $TOKEN" \
      --data-binary @"$TMP/tb" > /dev/null
  done
  tickets_at() { nsx "$1" curl -s http://127.0.0.1:8080/metrics | awk '$1 == "gate_tickets" {print $2}'; }
  for _ in $(seq 1 1200); do
    ok=1; for k in $(seq 1 $N); do [ "$(tickets_at "$k")" -ge $((NB + T)) ] || ok=0; done
    [ $ok = 1 ] && break; sleep 0.1
  done
  "$PWD/$B/bench/mkcreds" "$TMP/g1/data" qr-for "$NB" "$TMP/bodies" b
fi
voters=$(status 1 | jq -r '[.members[] | select(.role == "voter") | .id] | sort | join(",")')
# The split: the leader and one more voter stay together with one standby;
# the third voter and the other standby are cut off.
leader=$(status 1 | jq -r .leader)
minority_voter=$(status 1 | jq -r --argjson l "$leader" '[.members[] | select(.role == "voter" and .id != $l) | .id] | last')
standbys=$(status 1 | jq -r '[.members[] | select(.role == "standby") | .id] | join(" ")')
set -- $standbys
MAJ="$leader $(status 1 | jq -r --argjson l "$leader" --argjson m "$minority_voter" '[.members[] | select(.role == "voter" and .id != $l and .id != $m) | .id] | first') $1"
MIN="$minority_voter $2"
echo "partition: majority {$MAJ} minority {$MIN} (voters $voters)"

verdicts=$TMP/verdicts
: > "$verdicts"
scan() { # scan K TICKET -> records gate, ticket, verdict
  local v
  v=$(api "$1" POST /verify "{\"method\":\"qr\",\"presented_data\":{\"payload\":\"$(cat "$TMP/qr/$2")\"}}")
  echo "$1 $2 $(echo "$v" | jq -c '{admitted, provisional, reason}')" >> "$verdicts"
  echo "$v"
}
for i in 1 2 3 4 5 6; do set -- $MAJ; scan "$1" "p$i" >/dev/null; done
check "before the split: strict admissions" bash -c "[ \$(grep -c '\"admitted\":true,\"provisional\":false' $verdicts) = 6 ]"

# --- split ------------------------------------------------------------------------
cut() { # cut K "IPS": K drops everything from and to those addresses
  local ips=$1; shift
  for k in "$@"; do
    nsx "$k" nft -f - <<EOF
table inet gmsplit {
  chain in { type filter hook input priority 0; ip saddr { $ips } drop; }
  chain out { type filter hook output priority 0; ip daddr { $ips } drop; }
}
EOF
  done
}
ips_of() { local out=""; for k in "$@"; do out+="$(ip_of "$k"),"; done; echo "${out%,}"; }
cut "$(ips_of $MIN)" $MAJ
cut "$(ips_of $MAJ)" $MIN
set -- $MIN; m1=$1; m2=$2
set -- $MAJ; a1=$1; a2=$3
check "the split holds: the minority cannot reach the leader" bash -c "! timeout 2 ip netns exec $TAG-$m1 bash -c 'exec 3<>/dev/tcp/$(ip_of "$leader")/7000'"
v=$(scan "$a2" p10)
check "majority side: strict admission" eq "$(echo "$v" | jq -c '[.admitted, .provisional]')" "[true,false]"
v=$(scan "$m2" p11)
check "minority side: provisional admission" eq "$(echo "$v" | jq -c '[.admitted, .provisional]')" "[true,true]"
v=$(scan "$m1" p11)
check "the same ticket at the other minority gate: refused (gossip)" eq "$(echo "$v" | jq -r .reason)" already_used
# Fraud: one credential on both sides.
v1=$(scan "$a1" p12)
v2=$(scan "$m1" p12)
check "fraud: admitted on the majority side" eq "$(echo "$v1" | jq .admitted)" true
check "and provisionally on the minority side" eq "$(echo "$v2" | jq -c '[.admitted, .provisional]')" "[true,true]"
for i in 13 14 15 16 17; do scan "$m2" "p$i" >/dev/null; done
v=$(scan "$m2" p18)
check "past the budget of $BUDGET: budget_exhausted" eq "$(echo "$v" | jq -r .reason)" budget_exhausted
check "minority in partition mode" eq "$(status "$m2" | jq .partition_mode)" true
check "majority not" eq "$(status "$a1" | jq .partition_mode)" false
# Garbage on the gossip ports of both sides changes nothing.
nsx "$m1" bash -c "head -c 700 /dev/urandom > /dev/udp/$(ip_of "$m2")/7000"
nsx "$a1" bash -c "head -c 700 /dev/urandom > /dev/udp/$(ip_of "$a2")/7000"

if [ "$NB" -gt 0 ]; then
  prov_admitted() { nsx "$1" curl -s http://127.0.0.1:8080/metrics | awk '$1 == "gate_provisional_total{result=\"admitted\"}" {print $2}'; }
  base=$(prov_admitted "$m2")
  t0=$(date +%s%N)
  # each credential once (bench/once.lua stops sending after the last answer)
  ip netns exec "$TAG-$m2" wrk -t1 -c64 -d600s -s bench/once.lua http://127.0.0.1:8080 -- "$TMP/bodies" "$TOKEN" > "$TMP/wrk" 2>&1 &
  wrk_pid=$!
  for _ in $(seq 1 6000); do [ $(( $(prov_admitted "$m2") - base )) -ge "$NB" ] && break; sleep 0.05; done
  t1=$(date +%s%N)
  kill "$wrk_pid" 2>/dev/null; wait "$wrk_pid" 2>/dev/null
  got=$(( $(prov_admitted "$m2") - base ))
  echo "bench: $got provisional admissions on the cut-off side in $(( (t1 - t0) / 1000000 )) ms"
  check "the benchmark's admissions wait in the backlog" test "$(status "$m2" | jq .provisional.backlog)" -ge "$NB"
fi

# --- heal -------------------------------------------------------------------------
for k in $(seq 1 $N); do nsx "$k" nft delete table inet gmsplit; done
t_heal=$(date +%s%N)
converged() { # every backlog empty, every gate at the same applied index
  local ref="" a
  for k in $(seq 1 $N); do
    st=$(status "$k")
    [ "$(echo "$st" | jq .provisional.backlog)" = 0 ] || return 1
    a=$(echo "$st" | jq .applied_index)
    [ -z "$ref" ] && ref=$a
    [ "$a" = "$ref" ] || return 1
  done
}
same_hash() {
  local ref="" h
  for k in $(seq 1 $N); do
    h=$(api "$k" GET /cluster/ledger-hash | jq -r .hash)
    [ -z "$ref" ] && ref=$h
    [ -n "$h" ] && [ "$h" = "$ref" ] || return 1
  done
}
check "after the heal every gate drains and reaches one applied index" wait_until $((30 + NB / 1000)) converged
t_conv=$(date +%s%N)
check "with one ledger hash" wait_until 10 same_hash
echo "converged $(( (t_conv - t_heal) / 1000000 )) ms after the heal (backlog $((NB + 6)) provisional admissions)"

# --- invariants over the API ---------------------------------------------------------
check "at most one strict admission per credential" \
  bash -c "[ -z \"\$(grep '\"admitted\":true,\"provisional\":false' $verdicts | awk '{print \$2}' | sort | uniq -d)\" ]"
missing=0
while read -r k t v; do
  [ "$(echo "$v" | jq .admitted)" = true ] || continue
  tk=$(api 1 GET "/tickets/$t")
  if [ "$(echo "$tk" | jq -r .used_gate)" = "gate$k" ]; then continue; fi
  api 1 GET /incidents | jq -e --arg t "$t" --arg g "gate$k" \
    '.incidents[] | select(.ticket_id == $t and .second.gate == $g)' >/dev/null || missing=$((missing + 1))
done < "$verdicts"
check "every acknowledged admission is in the final ledger" eq "$missing" 0
inc=$(api 3 GET /incidents)
check "exactly one double entry" eq "$(echo "$inc" | jq '[.incidents[] | select(.kind == "double_entry")] | length')" 1
check "it pairs the majority's strict admission with the minority's provisional one" \
  eq "$(echo "$inc" | jq -r '.incidents[] | select(.kind == "double_entry") | [.ticket_id, .first.gate, .first.provisional, .second.gate, .second.provisional] | map(tostring) | join(",")')" \
  "p12,gate$a1,false,gate$m1,true"
check "the budget held" bash -c "[ \$(grep '^$m2 ' $verdicts | grep -c '\"provisional\":true') -le $BUDGET ]"
check "the double-entered credential is deny-listed everywhere" \
  eq "$(scan "$m2" p12 | jq -r .reason)" revoked
h1=$(api 4 GET /cluster/ledger-hash | jq -r .hash)
v=$(nsx "$m2" curl -s -m 10 http://127.0.0.1:8080/verify -H "Authorization: Bearer $TOKEN" -H 'Idempotency-Key: replay-1' \
  -d "{\"method\":\"qr\",\"presented_data\":{\"payload\":\"$(cat "$TMP/qr/p30")\"}}")
sleep 1
h2=$(api 4 GET /cluster/ledger-hash | jq -r .hash)
for _ in 1 2 3; do
  nsx "$m2" curl -s -m 10 http://127.0.0.1:8080/verify -H "Authorization: Bearer $TOKEN" -H 'Idempotency-Key: replay-1' \
    -d "{\"method\":\"qr\",\"presented_data\":{\"payload\":\"$(cat "$TMP/qr/p30")\"}}" > "$TMP/replay"
done
sleep 1
check "a replayed verify gives the first verdict" eq "$(jq -c '[.admitted, .provisional]' "$TMP/replay")" "$(echo "$v" | jq -c '[.admitted, .provisional]')"
check "and changes nothing" eq "$(api 4 GET /cluster/ledger-hash | jq -r .hash)" "$h2"
check "the first one did change it" test "$h1" != "$h2"
# The gates stop as an operator stops them, by the pids the test recorded,
# and nothing of the test's is left running in their namespaces.
for k in $(seq 1 $N); do
  check "gate $k's recorded pid is its gated" \
    test "$(readlink "/proc/$(cat "$TMP/pid$k")/exe")" = "$(readlink -f "$GATED")"
done
for k in $(seq 1 $N); do kill -TERM "$(cat "$TMP/pid$k")" 2>/dev/null; done
none_left() { [ "$(for k in $(seq 1 $N); do ip netns pids "$TAG-$k"; done | grep -c .)" = 0 ]; }
check "after SIGTERM to them nothing is left running in the namespaces" wait_until 20 none_left
reports=$(grep -lE "AddressSanitizer|runtime error:|assertion failed" "$TMP"/g*/log 2>/dev/null)
check "no sanitizer or assertion report in any gate log" test -z "$reports"
echo "$PASS $FAIL" >> build/test-counts
echo "partition [$B]: $PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
