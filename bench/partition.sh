#!/usr/bin/env bash
# Partition figures (the last part of `make bench`):
#  1. decision time of a gate whose leader just became unreachable: a
#     3-gate cluster on loopback, the leader frozen (SIGSTOP), a scan at a
#     follower; the target is offline-wait-ms + 50 ms;
#  2. gatesim: simulated festival time per wall second, for a 2-hour
#     50-gate festival and for the 12-hour, 50-gate, 200,000-attendee one
#     (target: the whole run <= 60 s);
#  3. (root only) convergence after the heal of PARTITION_BENCH (default
#     100,000) provisional admissions, in the network-namespace test
#     (target <= 5 s).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
TRIALS=${BENCH_TRIALS:-10}
PARTS=${BENCH_PARTS:-123}   # which of the three to run
WAIT=300
TMP=$(mktemp -d /tmp/gm-pbench.XXXXXX)
PIDS=()
# stop_gates: SIGTERM to every gate started, and up to 10 s to stop (then
# SIGKILL), so that no part, and not the script, ends with gates running.
stop_gates() {
  local p _ alive
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -CONT "$p" 2>/dev/null; kill "$p" 2>/dev/null || true; done
  for _ in $(seq 1 100); do
    alive=0
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break; sleep 0.1
  done
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
  PIDS=()
}
trap 'stop_gates; rm -rf "$TMP"' EXIT
source bench/ports.sh
wait_until() { local n=$(( $1 * 10 )); shift; for _ in $(seq 1 $n); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }

if [[ $PARTS == *1* ]]; then
echo "== decision time after the leader is lost ($TRIALS trials, offline-wait-ms $WAIT)"
declare -A URL PID CP
start() { # start NAME ID [flags]
  local name=$1 id=$2; shift 2
  local hp; port; hp=$P; port; CP[$name]=$P
  GATE_ADMIN_PASSWORD=bench-pass-1 "$B/gated" --data-dir "$TMP/$name" --http-listen 127.0.0.1:$hp \
    --gate "$name" --node-id "$id" --cluster-listen 127.0.0.1:${CP[$name]} --log-level warn \
    --election-timeout-ms 1000 --heartbeat-ms 100 --offline-wait-ms $WAIT "$@" >>"$TMP/$name.log" 2>&1 &
  PID[$name]=$!; PIDS+=($!); URL[$name]=http://127.0.0.1:$hp
  wait_until 10 curl -sf "${URL[$name]}/healthz"
}
start a 1 --bootstrap
wait_until 10 bash -c "curl -s ${URL[a]}/cluster/status | grep -q '\"role\":\"leader\"'"
TOK=$(curl -s "${URL[a]}/auth/login" -d '{"username":"admin","password":"bench-pass-1"}' | jq -r .token)
JT=$(curl -s -H "Authorization: Bearer $TOK" "${URL[a]}/cluster/join-token" | jq -r .token)
start b 2 --join 127.0.0.1:${CP[a]} --join-token "$JT"
start c 3 --join 127.0.0.1:${CP[a]} --join-token "$JT"
wait_until 20 bash -c "[ \$(curl -s ${URL[a]}/cluster/status | jq '[.members[] | select(.role == \"voter\")] | length') = 3 ]"
END=$(( ($(date +%s) + 86400) * 1000 ))
curl -s -H "Authorization: Bearer $TOK" "${URL[a]}/events" \
  -d "{\"id\":\"fest\",\"name\":\"Bench\",\"starts_ms\":0,\"ends_ms\":$END,\"offline_policy\":\"available\",\"offline_budget\":100000}" >/dev/null
body='{"tickets":['; for i in $(seq 1 "$TRIALS"); do body+="{\"event_id\":\"fest\",\"holder\":\"h\",\"id\":\"d$i\"},"; done
curl -s -H "Authorization: Bearer $TOK" "${URL[a]}/tickets/batch" -d "${body%,}]}" >/dev/null
for i in $(seq 1 "$TRIALS"); do
  curl -s -H "Authorization: Bearer $TOK" -X POST "${URL[a]}/tickets/d$i/methods/qr/generate" -d '{"ttl_s":3600}' |
    jq -r .payload > "$TMP/d$i"
done
name_of() { case $1 in 1) echo a;; 2) echo b;; 3) echo c;; esac; }
: > "$TMP/times"
for i in $(seq 1 "$TRIALS"); do
  wait_until 20 bash -c "for u in ${URL[a]} ${URL[b]} ${URL[c]}; do curl -s \$u/cluster/status | jq -e '.leader > 0 and .partition_mode == false and .provisional.backlog == 0' || exit 1; done"
  lid=$(curl -s "${URL[a]}/cluster/status" | jq -r .leader)
  L=$(name_of "$lid")
  F=a; [ "$L" = a ] && F=b
  # every replica has the ticket before the leader goes
  wait_until 10 bash -c "curl -s -H 'Authorization: Bearer $TOK' ${URL[$F]}/tickets/d$i | jq -e '.id'"
  # The time is curl's own, from the connection's start to the answer's
  # last byte: it leaves out the start of the curl process, which the gate
  # does not see.
  kill -STOP "${PID[$L]}"
  v=$(curl -s -m 10 -w '\n%{time_total}' -H "Authorization: Bearer $TOK" "${URL[$F]}/verify" \
      -d "{\"method\":\"qr\",\"presented_data\":{\"payload\":\"$(cat "$TMP/d$i")\"}}")
  kill -CONT "${PID[$L]}"
  ms=$(tail -1 <<<"$v" | awk '{printf "%d", $1 * 1000 + 0.5}')
  echo "$ms $(head -n -1 <<<"$v" | jq -r .provisional)" >> "$TMP/times"
done
sort -n "$TMP/times" > "$TMP/sorted"
med=$(awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}' "$TMP/sorted")
max=$(tail -1 "$TMP/sorted" | cut -d' ' -f1)
prov=$(grep -c " true$" "$TMP/times" || true)
target=$((WAIT + 50))
echo "decision_ms median=$med max=$max provisional=$prov/$TRIALS target<=$target ratio_max=$(echo "scale=2; $max / $target" | bc)"
stop_gates
fi

if [[ $PARTS == *2* ]]; then
echo "== gatesim: a 2-hour festival, 50 gates, 20,000 attendees"
"$B/gatesim" --scenario configs/scenarios/festival-2h.scn --seed 1 --bench | grep '^bench:'
echo "== the same run with every apply on the simulation's thread (--one-core)"
"$B/gatesim" --scenario configs/scenarios/festival-2h.scn --seed 1 --bench --one-core | grep '^bench:'
echo "== gatesim: the 12-hour festival"
LIMIT=${GATESIM_LIMIT_S:-600}
set +e
/usr/bin/time -f "gatesim_wall_s=%e max_rss_kb=%M" timeout "$LIMIT" "$B/gatesim" \
  --scenario configs/scenarios/festival-12h.scn --seed 1 --bench 2> "$TMP/time" | tee "$TMP/sim"
rc=${PIPESTATUS[0]}
set -e
cat "$TMP/time"
wall=$(sed -n 's/.*gatesim_wall_s=\([0-9.]*\).*/\1/p' "$TMP/time")
if [ "$rc" = 124 ]; then
  echo "gatesim_12h wall>${LIMIT}s (stopped) target<=60s"
else
  echo "gatesim_12h wall=${wall}s target<=60s ratio=$(echo "scale=2; $wall / 60" | bc)"
fi
# The peer: the same run in 4 KiB pages (the ledgers on the system's
# /dev/shm, jemalloc without transparent huge pages), right after it.
echo "== the same 12-hour run in 4 KiB pages"
set +e
MALLOC_CONF=thp:default,metadata_thp:disabled /usr/bin/time -f "gatesim_wall_s=%e max_rss_kb=%M" \
  timeout "$LIMIT" "$B/gatesim" --scenario configs/scenarios/festival-12h.scn --seed 1 --bench \
  --small-pages 2> "$TMP/time4k" | grep '^bench:'
set -e
cat "$TMP/time4k"
wall4k=$(sed -n 's/.*gatesim_wall_s=\([0-9.]*\).*/\1/p' "$TMP/time4k")
[ -n "$wall" ] && [ -n "$wall4k" ] &&
  echo "gatesim_12h 2MiB/4KiB pages wall ratio=$(echo "scale=2; $wall / $wall4k" | bc)"
fi

if [[ $PARTS == *3* ]] && [ "$(id -u)" = 0 ]; then
  echo "== convergence after the heal of ${PARTITION_BENCH:-100000} provisional admissions (netns)"
  [ -x "$B/bench/mkcreds" ] || make -s B="$B" "$B/bench/mkcreds"
  PARTITION_BENCH=${PARTITION_BENCH:-100000} bash tests/partition/test_netns.sh "$B" | grep -E "^(bench|converged|FAIL)"
fi
