#!/usr/bin/env bash
# Admission without a leader, on three real gates:
#  - a gate cut off from the majority admits provisionally (verdict
#    provisional: true) for an "available" event, within its budget, and
#    refuses the same ticket again; strict events and strict tiers get
#    no_quorum; past the budget, budget_exhausted;
#  - its records survive kill -9 (synced before the verdict) and are proposed
#    once a leader is back;
#  - the majority admitted one of those tickets meanwhile: the ledger records
#    a double-entry incident (GET /incidents), deny-lists the ticket, and the
#    other provisional admissions become the tickets' uses;
#  - gossip carries a provisional admission to the other gates of the same
#    side (here a standby), which refuse the ticket before any leader knows
#    of it; once in the ledger the records are pruned everywhere;
#  - the refusals of a cut-off gate (heard of by gossip, already used in its
#    ledger, no_quorum) reach the audit log after the heal, once each, even
#    past the request timeout, across a graceful restart and across a
#    kill -9 in between.
source "$(dirname "$0")/lib.sh"

RAFT_FLAGS=(--election-timeout-ms 600 --heartbeat-ms 60 --log-level info
            --request-timeout-ms 2500 --offline-wait-ms 300)
restart() { # restart NAME ID: same ports, same data
  local name=$1 id=$2 dir port cport
  eval "dir=\$DIR_$name port=\$PORT_$name cport=\$CPORT_$name"
  "$GATED" --data-dir "$dir/data" --http-listen 127.0.0.1:$port --gate "$name" --node-id "$id" \
    --cluster-listen 127.0.0.1:$cport "${RAFT_FLAGS[@]}" >>"$dir/log" 2>&1 &
  local pid=$!
  disown $pid; PIDS+=("$pid"); eval "PID_$name=$pid"
  wait_until 10 curl -sf "http://127.0.0.1:$port/healthz"
}
verify() { # verify URL TICKET -> the verdict
  curl -s -m 10 -H "Authorization: Bearer $ADMIN" "$1/verify" \
    -d "{\"method\":\"qr\",\"presented_data\":{\"payload\":\"$(cat "$TMP/qr/$2")\"}}"
}
pv() { status "$1" | jq -r ".provisional.$2"; }

member a 1 --bootstrap || exit 1
wait_until 10 bash -c "curl -s $URL_a/cluster/status | grep -q '\"role\":\"leader\"'"
ADMIN=$(login "$URL_a" admin admin-pass-1)
JT=$(curl -s -H "Authorization: Bearer $ADMIN" "$URL_a/cluster/join-token" | jq -r .token)
member b 2 --join 127.0.0.1:$CPORT_a --join-token "$JT" || exit 1
member c 3 --join 127.0.0.1:$CPORT_a --join-token "$JT" || exit 1
check "three voters" wait_until 20 bash -c "[ \$(curl -s $URL_a/cluster/status | jq '[.members[] | select(.role == \"voter\")] | length') = 3 ]"
member d 4 --join 127.0.0.1:$CPORT_a --join-token "$JT" || exit 1
check "and a standby" wait_until 20 bash -c "curl -s $URL_a/cluster/status | jq -e '.members[] | select(.id == 4 and .role == \"standby\")'"

END=$(( ($(date +%s) + 86400) * 1000 ))
r=$(api POST "$URL_a/events" "$ADMIN" "{\"id\":\"open\",\"name\":\"Open air\",\"starts_ms\":0,\"ends_ms\":$END,\"offline_policy\":\"available\",\"offline_budget\":3,\"tier_policies\":{\"vip\":\"strict\"}}")
check "an available event with a budget and a strict tier" eq "$(jf "$r" '.offline_policy + "/" + (.offline_budget|tostring) + "/" + .tier_policies.vip')" "available/3/strict"
r=$(api POST "$URL_a/events" "$ADMIN" "{\"id\":\"hall\",\"name\":\"Hall\",\"starts_ms\":0,\"ends_ms\":$END}")
check "a strict event by default" eq "$(jf "$r" .offline_policy)" strict
check "tier_policies must map to a policy" eq "$(status_of "$(api POST "$URL_a/events" "$ADMIN" "{\"name\":\"x\",\"starts_ms\":0,\"ends_ms\":5,\"tier_policies\":{\"vip\":\"maybe\"}}")")" 400
body='{"tickets":['
for i in 1 2 3 4 5 6 7; do body+="{\"event_id\":\"open\",\"holder\":\"h$i\",\"id\":\"o$i\"},"; done
body+='{"event_id":"open","holder":"v","tier":"vip","id":"o8"},{"event_id":"hall","holder":"s","id":"s1"}]}'
api POST "$URL_a/tickets/batch" "$ADMIN" "$body" >/dev/null
mkdir -p "$TMP/qr"
for t in o1 o2 o3 o4 o5 o6 o7 o8 s1; do
  curl -s -H "Authorization: Bearer $ADMIN" -X POST "$URL_a/tickets/$t/methods/qr/generate" \
    -d '{"ttl_s":900}' | jq -r .payload > "$TMP/qr/$t"
done
check "setup: nine QR payloads" test "$(cat "$TMP"/qr/* | grep -c .)" = 9
wait_until 10 bash -c "[ \$(curl -s $URL_c/cluster/status | jq .applied_index) = \$(curl -s $URL_a/cluster/status | jq .applied_index) ]"

v=$(verify "$URL_c" o1)
check "with a leader: a strict admission" eq "$(echo "$v" | jq -c '[.admitted, .provisional]')" "[true,false]"
check "not in partition mode" eq "$(status "$URL_c" | jq .partition_mode)" false

# --- c alone -------------------------------------------------------------------
kill -STOP "$PID_a" "$PID_b" "$PID_d"
t0=$(date +%s%N)
v=$(verify "$URL_c" o2)
t1=$(date +%s%N)
check "cut off: admitted provisionally" eq "$(echo "$v" | jq -c '[.admitted, .provisional]')" "[true,true]"
check "decided within the wait and a margin ($(( (t1 - t0) / 1000000 )) ms)" test $(( (t1 - t0) / 1000000 )) -lt 1500
check "partition mode, epoch 1" eq "$(status "$URL_c" | jq -c '[.partition_mode, .provisional.partition_epoch]')" "[true,1]"
v=$(verify "$URL_c" o2)
check "the same ticket again: already_used, from the provisional record" \
  eq "$(echo "$v" | jq -c '[.admitted, .reason, .first_use.gate]')" '[false,"already_used","c"]'
v=$(verify "$URL_c" o3)
check "another one" eq "$(echo "$v" | jq .provisional)" true
v=$(verify "$URL_c" s1)
check "a strict event: no_quorum" eq "$(echo "$v" | jq -c '[.admitted, .reason, .provisional]')" '[false,"no_quorum",false]'
v=$(verify "$URL_c" o8)
check "a strict tier of an available event: no_quorum" eq "$(echo "$v" | jq -r .reason)" no_quorum
t0=$(date +%s%N)
v=$(verify "$URL_c" o4)
t1=$(date +%s%N)
check "the third fits the budget" eq "$(echo "$v" | jq .provisional)" true
check "with no leader known it is decided at once ($(( (t1 - t0) / 1000000 )) ms)" \
  test $(( (t1 - t0) / 1000000 )) -lt 250
v=$(verify "$URL_c" o5)
check "the fourth: budget_exhausted" eq "$(echo "$v" | jq -c '[.admitted, .reason]')" '[false,"budget_exhausted"]'
check "backlog of three" eq "$(pv "$URL_c" backlog)" 3
check "metrics count them" bash -c "curl -s $URL_c/metrics | grep -q '^gate_provisional_total{result=\"admitted\"} 3'"

# --- crash, and the majority moves on ------------------------------------------
kill -9 "$PID_c"
# a, b and d lose what gossip had queued for them while stopped: restarted.
kill -9 "$PID_a" "$PID_b" "$PID_d"
restart a 1 && restart b 2 || exit 1
wait_until 20 bash -c "curl -s $URL_a/cluster/status | jq -e '.leader > 0' && curl -s $URL_b/cluster/status | jq -e '.leader > 0'"
ADMIN=$(login "$URL_a" admin admin-pass-1)
v=$(verify "$URL_a" o3)
check "the majority admits o3 (it never heard of c's admission)" eq "$(echo "$v" | jq -c '[.admitted, .provisional]')" "[true,false]"
restart c 3 || exit 1
check "c replayed its records from disk" grep -q 'provisional admissions replayed.*count=3' "$DIR_c/log"
check "c's backlog drains once a leader is back" wait_until 20 bash -c "[ \$(curl -s $URL_c/cluster/status | jq .provisional.backlog) = 0 ]"
check "and c leaves partition mode" eq "$(status "$URL_c" | jq .partition_mode)" false
n_double() { jf "$1" '[.incidents[] | select(.kind == "double_entry")] | length'; }
for _ in $(seq 1 100); do
  inc=$(api GET "$URL_b/incidents" "$ADMIN"); [ "$(n_double "$inc")" = 1 ] && break; sleep 0.1
done
check "one double entry, replicated to b" eq "$(n_double "$inc")" 1
check "naming both gates, the provisional side and the partition epoch" \
  eq "$(jf "$inc" '.incidents[] | select(.kind == "double_entry") | [.ticket_id, .first.gate, .first.provisional, .second.gate, .second.provisional, .partition_epoch] | map(tostring) | join(",")')" "o3,a,false,c,true,1"
for t in o2 o4; do
  check "$t is used, by c's provisional admission" eq "$(jf "$(api GET "$URL_a/tickets/$t" "$ADMIN")" '.status + "/" + .used_gate')" "used/c"
done
v=$(verify "$URL_b" o3)
check "the double-entered ticket is deny-listed" eq "$(echo "$v" | jq -r .reason)" revoked
check "gate_incidents on every gate" wait_until 10 bash -c "for u in $URL_a $URL_b $URL_c; do curl -s \$u/metrics | grep -qx 'gate_incidents 1' || exit 1; done"
check "c's own count of incidents it caused" bash -c "curl -s $URL_c/metrics | grep -qx 'gate_double_entries_found_total 1'"
check "the provisional log is compacted" wait_until 10 bash -c "[ \$(cat $DIR_c/data/partition.state | cut -d' ' -f2) = 3 ]"

# --- gossip within one side -----------------------------------------------------
restart d 4 || exit 1
check "four gates alive in gossip" wait_until 20 bash -c "[ \$(curl -s $URL_d/cluster/status | jq .gossip.alive) = 4 ]"
wait_until 10 bash -c "[ \$(curl -s $URL_d/cluster/status | jq .applied_index) = \$(curl -s $URL_a/cluster/status | jq .applied_index) ]"
e0=$(pv "$URL_c" partition_epoch)
kill -STOP "$PID_a" "$PID_b"
v=$(verify "$URL_c" o6)
check "c admits o6 provisionally" eq "$(echo "$v" | jq .provisional)" true
check "in a new partition epoch" test "$(pv "$URL_c" partition_epoch)" -gt "$e0"
v=$(verify "$URL_d" o6)
check "d, on the same side, heard of it and refuses o6" \
  eq "$(echo "$v" | jq -c '[.admitted, .reason, .first_use.gate]')" '[false,"already_used","c"]'
v=$(verify "$URL_d" o1)
check "d refuses o1, used in its ledger" eq "$(echo "$v" | jq -c '[.admitted, .reason]')" '[false,"already_used"]'
v=$(verify "$URL_d" s1)
check "and s1, of a strict event: no_quorum" eq "$(echo "$v" | jq -r .reason)" no_quorum
sleep 1 # o1's audit entry is now past the request timeout (2.5 s)
check "d's audit entries wait for a leader" \
  bash -c "curl -s $URL_d/metrics | grep -q '^gate_audit_batches_waiting [1-9]'"
check "and are kept on disk" test -s "$DIR_d/data/audit.held"
kill -TERM "$PID_d"
check "d stops gracefully while cut off" wait_until 15 bash -c "! kill -0 $PID_d 2>/dev/null"
check "its audit entries still on disk" test -s "$DIR_d/data/audit.held"
restart d 4 || exit 1
check "which d queues again at its start" \
  wait_until 5 grep -q 'audit entries kept on disk queued again.*batches=[1-9]' "$DIR_d/log"
check "and counts them" bash -c "curl -s $URL_d/metrics | grep -q '^gate_audit_requeued_total [1-9]'"
v=$(verify "$URL_d" o1)
check "d refuses o1 once more" eq "$(echo "$v" | jq -r .reason)" already_used
sleep 0.5 # no leader known: appended to the file within a tick and synced
kill -9 "$PID_d"
restart d 4 || exit 1
check "after a kill -9 too" \
  wait_until 5 bash -c "[ \$(grep -c 'audit entries kept on disk queued again' $DIR_d/log) = 2 ]"
v=$(verify "$URL_d" o1)
check "d refuses o1 a third time" eq "$(echo "$v" | jq -r .reason)" already_used
sleep 3 # past the request timeout again, without a restart this time
kill -CONT "$PID_a" "$PID_b"
check "o6 reaches the ledger" wait_until 20 bash -c "curl -s -H 'Authorization: Bearer $ADMIN' $URL_a/tickets/o6 | jq -e '.status == \"used\"'"
v=$(verify "$URL_a" o6)
check "and is refused at a" eq "$(echo "$v" | jq -r .reason)" already_used
check "records are pruned everywhere once in the ledger" \
  wait_until 10 bash -c "for u in $URL_a $URL_b $URL_c; do [ \$(curl -s \$u/cluster/status | jq .provisional.held) = 0 ] || exit 1; done"
d_refusals() { # the audit log's refusals at gate d, as ticket:reason, sorted
  jf "$(api GET "$URL_a/audits/usage?gate=d&limit=1000" "$ADMIN")" \
    '.events[] | select(.result == "denied") | .ticket_id + ":" + .reason' | sort | paste -sd' '
}
d_refusals_are() { [ "$(d_refusals)" = "$1" ]; }
check "d's refusals reach the audit log, once each" \
  wait_until 20 d_refusals_are "o1:already_used o1:already_used o1:already_used o6:already_used s1:no_quorum"
[ "$(d_refusals)" = "o1:already_used o1:already_used o1:already_used o6:already_used s1:no_quorum" ] || echo "  d's refusals: $(d_refusals)" >&2
check "and d's file of kept entries is emptied" wait_until 10 bash -c "[ ! -s $DIR_d/data/audit.held ]"
check "none dropped" bash -c "curl -s $URL_d/metrics | grep -qx 'gate_audit_dropped_total 0'"
finish
