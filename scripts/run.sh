#!/usr/bin/env bash
# `make run`: a local 3-gate cluster (Raft over loopback) with a demo event,
# 100 tickets and a QR code ready to scan. Gate 1 bootstraps the cluster, the
# other two join it with its join token. Data lives in ./run (delete it to
# start over); a second `make run` restarts the same cluster. Stops on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
BASE=${GATE_PORT:-8080}
NAMES=(main-entrance north-gate south-gate)
URL=http://127.0.0.1:$BASE
mkdir -p run
if [ ! -f run/admin-password ]; then
  head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' > run/admin-password
fi
PW=$(cat run/admin-password)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill -TERM $p 2>/dev/null || true; done; wait 2>/dev/null' EXIT INT TERM
gate() { # gate I [flags]: gate I on HTTP port BASE+I-1, cluster port 7080+I-1
  local i=$1; shift
  GATE_ADMIN_PASSWORD=$PW "$B/gated" --config configs/gate.example.conf --data-dir run/g$i \
    --node-id $i --gate "${NAMES[$((i - 1))]}" --http-listen 127.0.0.1:$((BASE + i - 1)) \
    --cluster-listen 127.0.0.1:$((7080 + i - 1)) "$@" >> run/g$i.log 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$((BASE + i - 1))/healthz" && return; sleep 0.1; done
  echo "gate $i did not start; see run/g$i.log" >&2; exit 1
}
leads() { curl -s "$URL/cluster/status" | jq -e '.role == "leader"' >/dev/null; }
if [ -d run/g1/raft ]; then
  for i in 1 2 3; do gate $i; done   # a gate with Raft state rejoins by itself
else
  gate 1 --bootstrap
  for _ in $(seq 1 100); do leads && break; sleep 0.1; done
  for _ in $(seq 1 50); do
    TOKEN=$(curl -s "$URL/auth/login" -d "{\"username\":\"admin\",\"password\":\"$PW\"}" | jq -r .token)
    [ "$TOKEN" != null ] && break; sleep 0.1
  done
  JT=$(curl -s -H "Authorization: Bearer $TOKEN" "$URL/cluster/join-token" | jq -r .token)
  gate 2 --join 127.0.0.1:7080 --join-token "$JT"
  gate 3 --join 127.0.0.1:7080 --join-token "$JT"
fi
for _ in $(seq 1 150); do
  [ "$(curl -s "$URL/cluster/status" | jq '[.members[] | select(.reachable)] | length')" = 3 ] && break
  sleep 0.1
done
export GATE_URL=$URL GATECTL_TOKEN_FILE=$PWD/run/token
"$B/gatectl" login admin --password "$PW" >/dev/null
END=$(( ($(date +%s) + 7 * 86400) * 1000 ))
if ! "$B/gatectl" ticket show demo-1 >/dev/null 2>&1; then
  "$B/gatectl" event create demo-fest "Demo Festival" --starts 0 --ends $END --policy available \
    --budget 100 >/dev/null
  for i in $(seq 1 100); do echo "guest$i,standard,demo-$i"; done > run/tickets.csv
  "$B/gatectl" ticket import demo-fest run/tickets.csv >/dev/null
fi
"$B/gatectl" qr generate demo-1 --ttl 3600 --png run/demo-1.png >/dev/null || true
cat <<MSG

  A 3-gate cluster is up (Ctrl-C stops it; data and logs in ./run):
    main-entrance  http://127.0.0.1:$BASE   cluster port 7080
    north-gate     http://127.0.0.1:$((BASE + 1))   cluster port 7081
    south-gate     http://127.0.0.1:$((BASE + 2))   cluster port 7082
  Admin: admin / $PW      100 tickets demo-1 .. demo-100 for "Demo Festival"
  Any gate takes writes and verifies any ticket; see them all with
    $B/gatectl cluster status

  Scan the QR code in run/demo-1.png as a gate scanner would:
    export GATE_URL=$URL GATECTL_TOKEN_FILE=$PWD/run/token
    $B/gatectl verify qr --image run/demo-1.png       # admitted
    $B/gatectl verify qr --image run/demo-1.png       # already_used, with first_use

  A rotating pass for demo-2:
    $B/gatectl pass generate demo-2                   # prints pass_id and secret
    $B/gatectl pass code PASS_ID SECRET               # the code the holder's app shows
    $B/gatectl verify pass --code CODE

  The same with curl:
    TOKEN=\$(curl -s $URL/auth/login -d '{"username":"admin","password":"$PW"}' | jq -r .token)
    P=\$(curl -s -H "Authorization: Bearer \$TOKEN" -X POST $URL/tickets/demo-3/methods/qr/generate | jq -r .payload)
    curl -s -H "Authorization: Bearer \$TOKEN" $URL/verify \\
         -d "{\"method\":\"qr\",\"presented_data\":{\"payload\":\"\$P\"}}"
    curl -s -H "Authorization: Bearer \$TOKEN" "$URL/audits/usage?ticket=demo-3"

MSG
wait
