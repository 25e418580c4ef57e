#!/usr/bin/env bash
# Acknowledged admissions survive a crash: kill -9 in the middle of a burst
# of scans (journal replay on restart), then a simulated power loss (the data
# dir says it was left dirty on another boot), which discards the unsynced
# ledger and rebuilds it from the last checkpoint's snapshot plus the journal.
source "$(dirname "$0")/lib.sh"

start_gate d1 --checkpoint-interval-s 1 --log-level info || exit 1
U=$URL_d1
ADMIN=$(login "$U" admin admin-pass-1)
N=400
festival "$U" "$ADMIN" k $N
mkdir -p "$TMP/v"
scan() {
  curl -s -m 5 -H "Authorization: Bearer $ADMIN" "$U/verify" \
    -d "{\"method\":\"qr\",\"presented_data\":{\"payload\":\"$(cat "$TMP/qr/$1")\"}}" > "$TMP/v/$1" 2>/dev/null
}
export -f scan; export U ADMIN TMP

restart() { # restart CHECKPOINT_INTERVAL_S: same data dir and port
  GATE_ADMIN_PASSWORD= "$GATED" --data-dir "$DIR_d1/data" --http-listen 127.0.0.1:$PORT_d1 \
    --gate d1 --checkpoint-interval-s "$1" --log-level info >>"$DIR_d1/log" 2>&1 &
  local p=$!; disown $p; PIDS+=("$p"); PID_d1=$p
  for _ in $(seq 1 200); do curl -sf "$U/healthz" >/dev/null && return 0; sleep 0.05; done
  return 1
}
acknowledged() { grep -l '"admitted":true' "$TMP"/v/* 2>/dev/null | xargs -r -n1 basename; }
all_used() { # every acknowledged admission reads as used
  local lost=0
  for t in $(acknowledged); do
    st=$(curl -s -H "Authorization: Bearer $ADMIN" "$U/tickets/$t" | jq -r .status)
    [ "$st" = used ] || { lost=$((lost + 1)); echo "  lost: $t ($st)"; }
  done
  [ $lost -eq 0 ]
}

# Round 1: kill -9 mid-burst.
seq 1 200 | sed 's/^/k/' | xargs -P 16 -I{} bash -c 'scan {}' &
XP=$!
sleep 0.5
kill -9 "$PID_d1"
wait $XP 2>/dev/null
n1=$(acknowledged | grep -c . || true)
check "round 1 acknowledged some admissions ($n1)" test "$n1" -gt 0
# (After kill -9 the page cache still holds the unsynced ledger commits, so
# there is usually nothing to replay; the power-loss round below must replay.)
check "restart after kill -9" restart 1
ADMIN=$(login "$U" admin admin-pass-1); export ADMIN
check "every acknowledged admission survived kill -9" all_used

# Let a checkpoint happen, then more scans.
for _ in $(seq 1 60); do [ -f "$DIR_d1/data/snapshot" ] && break; sleep 0.2; done
check "a checkpoint wrote a snapshot" test -f "$DIR_d1/data/snapshot"
check "checkpoint logged" grep -q "checkpoint written" "$DIR_d1/log"
# No more checkpoints from here: round 2 lives only in the journal.
kill -TERM "$PID_d1"; for _ in $(seq 1 100); do kill -0 "$PID_d1" 2>/dev/null || break; sleep 0.05; done
check "restart with checkpoints off" restart 3600
ADMIN=$(login "$U" admin admin-pass-1); export ADMIN
seq 201 $N | sed 's/^/k/' | xargs -P 16 -I{} bash -c 'scan {}' &
XP=$!
sleep 0.5
kill -9 "$PID_d1"
wait $XP 2>/dev/null
n2=$(acknowledged | grep -c . || true)
check "round 2 acknowledged more admissions ($n2 in all)" test "$n2" -gt "$n1"

# Simulated power loss: the state file names another boot, so the unsynced
# ledger cannot be trusted and is rebuilt from snapshot + journal.
echo "dirty 00000000-0000-0000-0000-000000000000" > "$DIR_d1/data/state"
check "restart after a power loss" restart 3600
ADMIN=$(login "$U" admin admin-pass-1); export ADMIN
check "the ledger was rebuilt" grep -q "rebuilding the ledger from snapshot and journal" "$DIR_d1/log"
check "the rebuild replayed the journal past the snapshot" grep -q "journal replayed" "$DIR_d1/log"
check "every acknowledged admission survived the power loss" all_used
t=$(acknowledged | sed -n 1p)
r=$(api POST "$U/verify" "$ADMIN" "{\"method\":\"qr\",\"presented_data\":{\"payload\":\"$(cat "$TMP/qr/$t")\"}}")
check "a rebuilt gate still refuses a second entry" eq "$(jf "$r" .reason)" already_used
r=$(api GET "$U/audits/usage?ticket=$t" "$ADMIN")
check "the audit of the admission survived" bash -c "[ $(jf "$r" '[.events[]|select(.result=="admitted")]|length') -eq 1 ]"
never=$(for f in "$TMP"/v/*; do grep -q '"admitted":true' "$f" || basename "$f"; done)
dup=0
for t in $never; do
  r=$(api POST "$U/verify" "$ADMIN" "{\"method\":\"qr\",\"presented_data\":{\"payload\":\"$(cat "$TMP/qr/$t")\"}}")
  case "$(jf "$r" '.reason // "admitted"')" in admitted|already_used) ;; *) dup=$((dup + 1));; esac
done
check "unacknowledged scans resolve to admitted or already_used, once" eq "$dup" 0
kill -TERM "$PID_d1"
for _ in $(seq 1 100); do kill -0 "$PID_d1" 2>/dev/null || break; sleep 0.05; done
check "a clean stop marks the data dir clean" grep -q "^clean " "$DIR_d1/data/state"

finish
