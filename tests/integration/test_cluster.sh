#!/usr/bin/env bash
# Gates as a Raft cluster, every one a real gated on loopback:
#  - a cluster is bootstrapped and joined by token; a wrong key is refused;
#  - tickets pushed to a follower are readable on every gate;
#  - one credential scanned at the same moment at two gates admits once;
#  - 5,000 redeems over 3 gates while the leader is killed with -9 and
#    restarted: every acknowledged admission is on every gate afterwards and
#    no credential is admitted twice;
#  - garbage on the cluster port is dropped and logged;
#  - a 4th gate joins and catches up from a snapshot of 100,000 tickets;
#  - a stopped voter is replaced by a standby, then removed with
#    `gatectl cluster leave`; gatectl refuses a wrong join token.
source "$(dirname "$0")/lib.sh"

RAFT_FLAGS=(--snapshot-threshold 64 --voter-timeout-s 2 --election-timeout-ms 600
            --heartbeat-ms 60 --log-level info)

# restart NAME: same data dir and ports, no bootstrap or join flags (a gate
# with Raft state rejoins by itself).
restart() {
  local name=$1 dir port cport
  eval "dir=\$DIR_$name port=\$PORT_$name cport=\$CPORT_$name id=\$ID_$name"
  GATE_ADMIN_PASSWORD= "$GATED" --data-dir "$dir/data" --http-listen 127.0.0.1:$port \
    --gate "$name" --node-id "$id" --cluster-listen 127.0.0.1:$cport "${RAFT_FLAGS[@]}" \
    >>"$dir/log" 2>&1 &
  local p=$!; disown $p; PIDS+=("$p"); eval "PID_$name=$p"
  for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && return 0; sleep 0.05; done
  return 1
}

leader_url() { # the HTTP URL of the gate that leads, seen from every gate
  local g
  for g in "$@"; do
    local u; eval "u=\$URL_$g"
    [ "$(status "$u" | jq -r .role)" = leader ] && { echo "$u"; return 0; }
  done
  return 1
}
voters_are() { # voters_are URL N: the leader at URL sees N reachable voters
  [ "$(status "$1" | jq '[.members[] | select(.role == "voter" and .reachable)] | length')" = "$2" ]
}
role_of() { status "$1" | jq -r --argjson id "$2" '.members[] | select(.id == $id) | .role'; }
role_is() { [ "$(role_of "$1" "$2")" = "$3" ]; }
role_at() { [ "$(status "$1" | jq -r .role)" = "$2" ]; }
all_caught_up() { [ "$(status "$(leader_url a b c)" | jq '[.members[] | select(.lag == 0)] | length')" = 3 ]; }
reads_ticket() { [ "$(api GET "$1/tickets/$2" "$TB" | cut -c1-3)" = 200 ]; }
count_files() { grep -l "$1" "${@:2}" 2>/dev/null | wc -l; }

# --- a 3-gate cluster ----------------------------------------------------
member a 1 --bootstrap || exit 1
wait_until 10 role_at "$URL_a" leader
ADMIN=$(login "$URL_a" admin admin-pass-1)
JT=$(curl -s -H "Authorization: Bearer $ADMIN" "$URL_a/cluster/join-token" | jq -r .token)
check "join token has its form" grep -qE '^gmj1\.[A-Za-z0-9_-]{43}$' <<<"$JT"
member b 2 --join 127.0.0.1:$CPORT_a --join-token "$JT" || exit 1
member c 3 --join 127.0.0.1:$CPORT_a --join-token "$JT" || exit 1
check "three voters, all reachable" wait_until 15 voters_are "$URL_a" 3
check "followers follow the bootstrapped leader" \
  test "$(status "$URL_b" | jq -r .leader)/$(status "$URL_c" | jq -r .leader)" = "1/1"

# --- a gate without the key is refused -----------------------------------
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$TMP/wrong.key"
member x 9 --join 127.0.0.1:$CPORT_a --cluster-key-file "$TMP/wrong.key" || exit 1
sleep 2
check "a gate with the wrong key is not a member" \
  test "$(status "$URL_a" | jq '[.members[] | select(.id == 9)] | length')" = 0
check "the refusal is logged on the cluster side" \
  grep -q 'first frame does not authenticate' "$DIR_a/log"
check "the refused gate says why" grep -q 'refused the handshake' "$DIR_x/log"
kill -9 "$PID_x"
check "a malformed join token is refused at start" \
  bash -c "! GATE_ADMIN_PASSWORD=x '$GATED' --data-dir '$TMP/y' --node-id 8 --join 127.0.0.1:$CPORT_a \
           --join-token gmj1.nope --http-listen 127.0.0.1:$(free_port) \
           --cluster-listen 127.0.0.1:$(free_port) >'$TMP/y.log' 2>&1 && grep -q 'join token is malformed' '$TMP/y.log'"

# --- garbage on the cluster port ------------------------------------------
for junk in "GET / HTTP/1.1\r\n\r\n" "GMC1\x01\x00\x00\x00$(head -c 32 /dev/zero | tr '\0' 'A')"; do
  printf "$junk" > /dev/tcp/127.0.0.1/$CPORT_a 2>/dev/null
done
head -c 4096 /dev/urandom > /dev/tcp/127.0.0.1/$CPORT_b 2>/dev/null
sleep 0.5
check "garbage on the cluster port is dropped and logged" grep -q 'bytes from a peer dropped' "$DIR_a/log"
check "the cluster still has its three voters" voters_are "$URL_a" 3

# --- writes at a follower, reads everywhere --------------------------------
TB=$(login "$URL_b" admin admin-pass-1)
check "login at a follower" test -n "$TB"
festival "$URL_b" "$TB" f 40
check "an event created at a follower reads back at once there" \
  test "$(curl -s -H "Authorization: Bearer $TB" "$URL_b/events/fest" | jq -r .id)" = fest
for g in a b c; do
  eval "u=\$URL_$g"
  check "tickets pushed to a follower are readable at $g" \
    test "$(curl -s -H "Authorization: Bearer $TB" "$u/tickets/f40" | jq -r .holder)" = h40
done

# --- the same credential at two gates at once -------------------------------
admitted_total=0
for i in $(seq 1 20); do
  q=$(cat "$TMP/qr/f$i")
  for g in b c; do
    eval "u=\$URL_$g"
    curl -s -H "Authorization: Bearer $TB" "$u/verify" \
      -d "{\"method\":\"qr\",\"presented_data\":{\"payload\":\"$q\"}}" > "$TMP/twice.$g.$i" &
  done
  wait
  n=$(cat "$TMP"/twice.?.$i | grep -c '"admitted":true')
  admitted_total=$((admitted_total + n))
done
check "20 credentials each scanned at two gates at once: 20 admissions" eq "$admitted_total" 20
check "the other scan says already_used with the first use" \
  eq "$(count_files '"reason":"already_used".*"first_use"' "$TMP"/twice.?.*)" 20
LU=$(leader_url a b c)
check "the leader's metrics time its queue and its commits" bash -c "
  curl -s '$LU/metrics' | awk '\$1 == \"gate_raft_queue_seconds_count\" && \$2 > 0 {q = 1}
    \$1 == \"gate_raft_commit_seconds_count\" && \$2 > 0 {c = 1} END {exit !(q && c)}'"

# --- 5,000 redeems while the leader is killed -------------------------------
N=2500
r=$(api POST "$URL_c/tickets/batch" "$TB" "{\"tickets\":[$(seq 1 $N | sed 's/.*/{"event_id":"fest","holder":"k","id":"k&"}/' | paste -sd,)]}")
check "2,500 more tickets pushed at a follower" eq "$(jf "$r" .created)" $N
mkdir -p "$TMP/gen" "$TMP/v"
{
  for i in $(seq 1 $N); do
    printf 'url = "%s/tickets/k%d/methods/qr/generate"\nheader = "Authorization: Bearer %s"\n' "$URL_a" "$i" "$TB"
    printf 'data = "{\\"ttl_s\\":900}"\noutput = "%s/gen/k%d"\nnext\n' "$TMP" "$i"
  done
} > "$TMP/gen.cfg"
sed -i '$ d' "$TMP/gen.cfg"  # no empty group after the last "next"
curl -s --no-progress-meter -Z --parallel-max 32 -K "$TMP/gen.cfg"
check "2,500 QR payloads generated" eq "$(count_files '"payload"' "$TMP"/gen/*)" $N
# Every credential is shown at two different gates: 5,000 redeems in three
# streams, one per gate.
for g in a b c; do : > "$TMP/load.$g.cfg"; done
for i in $(seq 1 $N); do
  p=$(jq -r .payload "$TMP/gen/k$i")
  g1=$(( i % 3 )); g2=$(( (i + 1) % 3 ))
  for gi in $g1 $g2; do
    g=$(echo abc | cut -c$((gi + 1)))
    eval "u=\$URL_$g"
    printf 'url = "%s/verify"\nheader = "Authorization: Bearer %s"\ndata = "{\\"method\\":\\"qr\\",\\"presented_data\\":{\\"payload\\":\\"%s\\"}}"\noutput = "%s/v/k%d.%s"\nmax-time = 20\nnext\n' \
      "$u" "$TB" "$p" "$TMP" "$i" "$g" >> "$TMP/load.$g.cfg"
  done
done
for g in a b c; do sed -i '$ d' "$TMP/load.$g.cfg"; done
LEADER=$(leader_url a b c)
for g in a b c; do curl -s --no-progress-meter -Z --parallel-max 16 -K "$TMP/load.$g.cfg" & done
sleep 1
for g in a b c; do eval "u=\$URL_$g"; [ "$u" = "$LEADER" ] && LG=$g; done
eval "kill -9 \$PID_$LG"
sleep 2
restart "$LG"
wait
acked=$(grep -l '"admitted":true' "$TMP"/v/* | wc -l)
check "most redeems were answered (some fail while the leader is down)" test "$acked" -gt 1000
dups=$(grep -l '"admitted":true' "$TMP"/v/* | xargs -n1 basename | cut -d. -f1 | sort | uniq -d | wc -l)
check "no credential admitted twice" eq "$dups" 0
grep -l '"admitted":true' "$TMP"/v/* | xargs -n1 basename | cut -d. -f1 | sort -u > "$TMP/acked"
check "the restarted gate rejoined and caught up" wait_until 20 all_caught_up
lost=0
for g in a b c; do
  eval "u=\$URL_$g"
  : > "$TMP/read.cfg"
  while read -r t; do
    printf 'url = "%s/tickets/%s"\nheader = "Authorization: Bearer %s"\noutput = "%s/r.%s.%s"\nnext\n' \
      "$u" "$t" "$TB" "$TMP" "$g" "$t" >> "$TMP/read.cfg"
  done < "$TMP/acked"
  sed -i '$ d' "$TMP/read.cfg"
  curl -s --no-progress-meter -Z --parallel-max 32 -K "$TMP/read.cfg"
  used=$(count_files '"status":"used"' "$TMP"/r.$g.*)
  [ "$used" = "$(wc -l < "$TMP/acked")" ] || { lost=$((lost + 1)); echo "  $g: $used used of $(wc -l < "$TMP/acked") acknowledged"; }
  rm -f "$TMP"/r.$g.*
done
check "every acknowledged admission ($acked) is used on every gate" eq "$lost" 0

# --- a 4th gate catches up from a snapshot of 100,000 tickets ---------------
LU=$(leader_url a b c)
for chunk in $(seq 0 19); do
  seq $((chunk * 5000 + 1)) $((chunk * 5000 + 5000)) |
    sed 's/.*/{"event_id":"fest","holder":"s","id":"s&"}/' | paste -sd, |
    sed 's/^/{"tickets":[/; s/$/]}/' > "$TMP/chunk.json"
  curl -s -H "Authorization: Bearer $TB" "$LU/tickets/batch" --data-binary @"$TMP/chunk.json" | jq -r .created
done > "$TMP/created"
check "100,000 tickets pushed" eq "$(paste -sd+ "$TMP/created" | bc)" 100000
member d 4 --join 127.0.0.1:$CPORT_b --join-token "$JT" || exit 1
caught_up() {
  local li; li=$(status "$LU" | jq .applied_index)
  [ "$(status "$URL_d" | jq .applied_index)" -ge "$li" ]
}
check "the 4th gate catches up" wait_until 60 caught_up
check "it was sent a snapshot, not the whole log" grep -q 'restored from a raft snapshot' "$DIR_d/log"
check "it reads the last pushed ticket" \
  test "$(curl -s -H "Authorization: Bearer $TB" "$URL_d/tickets/s100000" | jq -r .holder)" = s
check "it joined as a standby (3 voters already)" test "$(role_of "$LU" 4)" = standby

# --- a stopped voter is replaced by the standby -----------------------------
for g in a b c; do eval "u=\$URL_$g"; [ "$u" != "$LU" ] && VG=$g; done
eval "VID=\$ID_$VG; VPID=\$PID_$VG"
kill -TERM "$VPID"
check "the standby is promoted when a voter stops" wait_until 20 role_is "$LU" 4 voter
check "and the stopped voter is demoted" wait_until 10 role_is "$LU" "$VID" standby
r=$(api POST "$LU/tickets/batch" "$TB" '{"tickets":[{"event_id":"fest","holder":"z","id":"z1"}]}')
check "writes still commit with the new voter set" eq "$(jf "$r" .created)" 1
check "and reach the promoted gate" wait_until 5 reads_ticket "$URL_d" z1

# --- operators: leave, and a wrong token at gatectl ---------------------------
out=$(GATE_URL=$URL_d "$GATECTL" --token "$TB" cluster leave "$VID" 2>&1)
check "gatectl cluster leave removes the stopped gate" \
  wait_until 5 test "$(status "$LU" | jq --argjson id "$VID" '[.members[] | select(.id == $id)] | length')" = 0
LADDR=$(status "$LU" | jq -r .leader_address)
out=$("$GATECTL" cluster join "$LADDR" --token "gmj1.$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')" \
      --node-id 7 --cluster-listen 127.0.0.1:$(free_port) --data-dir "$TMP/z" 2>&1); rc=$?
check "gatectl cluster join with a wrong token fails" eq "$rc" 1
check "and says the token does not match" grep -q "does not match the cluster key" <<<"$out"
check "without starting a gate" test ! -d "$TMP/z"

finish
