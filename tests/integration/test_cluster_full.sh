#!/usr/bin/env bash
# Two faults of a 2-voter cluster (and, first, the login of a gate that has
# no accounts yet):
#  - without a quorum (the other voter frozen) a write waits for
#    request-timeout-ms, then gets 503 no_quorum, and commits once the voter
#    is back;
#  - a ledger map that fills up answers storage_full (507) at once, at the
#    leader and through a follower, and keeps serving reads: nothing gets into
#    the Raft log that a replica could not apply.
source "$(dirname "$0")/lib.sh"

FLAGS=(--map-size-mb 16 --log-level info --request-timeout-ms 1500 --election-timeout-ms 500
       --heartbeat-ms 50)
CA=$(free_port); CB=$(free_port)
start_gate a --node-id 1 --cluster-listen 127.0.0.1:$CA --bootstrap "${FLAGS[@]}" || exit 1
# Up to 30 s: under ASan+UBSan on a busy machine the first election can
# take several seconds, and the admin account exists once the first leader
# has committed it (login() retries while the gate answers not_ready).
wait_until 30 eval 'status "$URL_a" | grep -q "\"role\":\"leader\""' ||
  setup_failed "gate a is not the leader after 30 s: $(status "$URL_a")"
ADMIN=$(login "$URL_a" admin admin-pass-1)
[ -n "$ADMIN" ] && [ "$ADMIN" != null ] || setup_failed "no admin token from gate a"
JT=$(curl -s -m 10 -H "Authorization: Bearer $ADMIN" "$URL_a/cluster/join-token" | jq -r '.token // empty')
[ -n "$JT" ] || setup_failed "gate a gave no join token"
# A gate that has joined nothing yet has no accounts: its login says
# not_ready (retry), not a wrong password.
start_gate lone --node-id 3 --cluster-listen 127.0.0.1:$(free_port) --join 127.0.0.1:$(free_port) \
  --join-token "$JT" "${FLAGS[@]}" || exit 1
r=$(api POST "$URL_lone/auth/login" "" '{"username":"admin","password":"admin-pass-1"}')
check "login at a gate with no accounts yet is 503" eq "$(status_of "$r")" 503
check "with the code not_ready" eq "$(jf "$r" .code)" not_ready
kill -9 "$PID_lone"
start_gate b --node-id 2 --cluster-listen 127.0.0.1:$CB --join 127.0.0.1:$CA --join-token "$JT" "${FLAGS[@]}" || exit 1
for _ in $(seq 1 300); do [ "$(curl -s "$URL_a/cluster/status" | jq '.members | length')" = 2 ] && break; sleep 0.1; done
api POST "$URL_a/events" "$ADMIN" '{"id":"fest","name":"Fest","starts_ms":0,"ends_ms":4102444800000}' >/dev/null

# --- no quorum ----------------------------------------------------------------
kill -STOP "$PID_b"
t0=$(date +%s%N)
r=$(api POST "$URL_a/tickets/batch" "$ADMIN" '{"tickets":[{"event_id":"fest","holder":"q","id":"q1"}]}')
t1=$(date +%s%N)
check "a write without a quorum is answered 503" eq "$(status_of "$r")" 503
check "with the code no_quorum" eq "$(jf "$r" .code)" no_quorum
check "after the request timeout, not forever" test $(( (t1 - t0) / 1000000 )) -lt 5000
kill -CONT "$PID_b"
ok_again() { [ "$(status_of "$(api POST "$URL_a/tickets/batch" "$ADMIN" '{"tickets":[{"event_id":"fest","holder":"q","id":"q2"}]}')")" = 201 ]; }
for _ in $(seq 1 50); do ok_again && break; sleep 0.2; done
check "writes commit again once the voter is back" \
  test "$(api GET "$URL_b/tickets/q2" "$ADMIN" | cut -c1-3)" = 200
H=$(printf 'h%.0s' $(seq 1 120))
full=""
for k in $(seq 1 200); do
  seq 1 2000 | sed "s/.*/{\"event_id\":\"fest\",\"holder\":\"$H\",\"id\":\"t$k-&\"}/" | paste -sd, |
    sed 's/^/{"tickets":[/; s/$/]}/' > "$TMP/chunk.json"
  u=$URL_a; [ $((k % 2)) = 0 ] && u=$URL_b
  st=$(curl -s -m 10 -o "$TMP/resp" -w '%{http_code}' -H "Authorization: Bearer $ADMIN" \
       "$u/tickets/batch" --data-binary @"$TMP/chunk.json")
  [ "$st" = 201 ] || [ "$st" = 200 ] || { full=$st; break; }
done
check "a full ledger answers 507" eq "$full" 507
check "with the code storage_full" eq "$(jq -r .code "$TMP/resp")" storage_full
for g in a b; do
  eval "u=\$URL_$g"
  st=$(curl -s -m 10 -o "$TMP/resp" -w '%{http_code}' -H "Authorization: Bearer $ADMIN" \
       "$u/tickets/batch" -d '{"tickets":[{"event_id":"fest","holder":"x","id":"late"}]}')
  check "a write at $g is refused at once with storage_full" eq "$st" 507
  check "reads still work at $g" \
    test "$(curl -s -H "Authorization: Bearer $ADMIN" "$u/tickets/t1-1" | jq -r .status)" = created
done
check "both replicas applied everything in the log" \
  test "$(curl -s "$URL_a/cluster/status" | jq .applied_index)" = "$(curl -s "$URL_b/cluster/status" | jq .applied_index)"
check "no replica failed to apply an entry" bash -c "! grep -q 'cannot apply a committed entry' '$DIR_a/log' '$DIR_b/log'"
finish
