#!/usr/bin/env bash
# The gossip port, on real gated processes on loopback:
#  - three gates find each other and carry each other's Raft state;
#  - garbage, and datagrams sealed with another key, are dropped, counted
#    and logged, and change nothing;
#  - a stopped gate is declared dead by the others, and alive again when it
#    resumes; a restarted gate comes back with a larger epoch.
source "$(dirname "$0")/lib.sh"

RAFT_FLAGS=(--election-timeout-ms 600 --heartbeat-ms 60 --log-level info)
alive_is() { [ "$(status "$1" | jq .gossip.alive)" = "$2" ]; }
state_of() { status "$1" | jq -r --argjson id "$2" '.gossip.members[] | select(.id == $id) | .state'; }
state_is() { [ "$(state_of "$1" "$2")" = "$3" ]; }
counter() { curl -s "$1/metrics" | awk -v k="gate_gossip_datagrams_total{result=\"$2\"}" '$1 == k {print $2}'; }

member a 1 --bootstrap || exit 1
wait_until 10 bash -c "curl -s $URL_a/cluster/status | grep -q '\"role\":\"leader\"'"
ADMIN=$(login "$URL_a" admin admin-pass-1)
JT=$(curl -s -H "Authorization: Bearer $ADMIN" "$URL_a/cluster/join-token" | jq -r .token)
member b 2 --join 127.0.0.1:$CPORT_a --join-token "$JT" || exit 1
member c 3 --join 127.0.0.1:$CPORT_a --join-token "$JT" || exit 1
for g in a b c; do
  eval "u=\$URL_$g"
  check "gate $g sees three gates alive" wait_until 20 alive_is "$u" 3
done
check "gossip carries the Raft state: b sees a as leader" \
  wait_until 10 bash -c "curl -s $URL_b/cluster/status | jq -e '.gossip.members[] | select(.id == 1 and .raft_state == \"leader\")'"
check "the gossip port is the cluster address on UDP" \
  test "$(status "$URL_a" | jq -r .gossip.address)" = "127.0.0.1:$CPORT_a"

# --- what others send ---------------------------------------------------------
f0=$(counter "$URL_a" forged)
printf 'hello gossip' > /dev/udp/127.0.0.1/$CPORT_a
printf 'GMG1\x02\x00\x00\x00\x00\x00\x00\x00%s' "$(head -c 60 /dev/zero | tr '\0' 'x')" > /dev/udp/127.0.0.1/$CPORT_a
head -c 1000 /dev/urandom > /dev/udp/127.0.0.1/$CPORT_a
check "garbage datagrams are counted as forged" wait_until 5 bash -c "[ \$(curl -s $URL_a/metrics | awk '\$1 == \"gate_gossip_datagrams_total{result=\\\"forged\\\"}\" {print \$2}') -ge $((f0 + 3)) ]"
check "and logged" grep -q 'gossip: datagram dropped' "$DIR_a/log"
f1=$(counter "$URL_a" forged)
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$TMP/wrong.key"
member x 9 --join 127.0.0.1:$CPORT_a --cluster-key-file "$TMP/wrong.key" || exit 1
sleep 3
check "a gate with another key never shows up in gossip" test "$(state_of "$URL_a" 9)" = ""
check "its datagrams do not verify (counted as forged)" test "$(counter "$URL_a" forged)" -gt "$f1"
kill -9 "$PID_x"
check "still three gates alive" alive_is "$URL_a" 3

# --- failure detection ---------------------------------------------------------
kill -STOP "$PID_c"
check "a stopped gate is declared dead by a" wait_until 25 state_is "$URL_a" 3 dead
check "and by b" wait_until 10 state_is "$URL_b" 3 dead
kill -CONT "$PID_c"
check "it is alive again once it resumes" wait_until 25 state_is "$URL_a" 3 alive
check "having refuted with a higher incarnation" \
  test "$(status "$URL_c" | jq '.gossip.members[] | select(.id == 3) | .incarnation')" -gt 0
e0=$(cat "$DIR_b/data/gossip.epoch")
kill -9 "$PID_b"
GATE_ADMIN_PASSWORD= "$GATED" --data-dir "$DIR_b/data" --http-listen 127.0.0.1:$PORT_b --gate b \
  --node-id 2 --cluster-listen 127.0.0.1:$CPORT_b "${RAFT_FLAGS[@]}" >>"$DIR_b/log" 2>&1 &
PID_b=$!; disown $PID_b; PIDS+=("$PID_b")
check "a restarted gate gossips again" wait_until 25 alive_is "$URL_b" 3
check "with a larger epoch" test "$(cat "$DIR_b/data/gossip.epoch")" -gt "$e0"
check "and the others see it alive" wait_until 15 state_is "$URL_a" 2 alive

finish
