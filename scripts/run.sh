#!/usr/bin/env bash
# `make run`: a gate on 127.0.0.1:8080 with a demo event, 100 tickets and a QR
# code ready to scan. Data lives in ./run (delete it to start over). Stops on
# Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
PORT=${GATE_PORT:-8080}
URL=http://127.0.0.1:$PORT
mkdir -p run
if [ ! -f run/admin-password ]; then
  head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' > run/admin-password
fi
PW=$(cat run/admin-password)
GATE_ADMIN_PASSWORD=$PW "$B/gated" --config configs/gate.example.conf --data-dir run/data \
  --http-listen 127.0.0.1:$PORT --gate main-entrance &
GPID=$!
trap 'kill -TERM $GPID 2>/dev/null; wait $GPID 2>/dev/null' EXIT INT TERM
for _ in $(seq 1 100); do curl -s -o /dev/null "$URL/healthz" && break; sleep 0.1; done
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

  Gate "main-entrance" is up at $URL  (Ctrl-C stops it; data in ./run)
  Admin: admin / $PW      100 tickets demo-1 .. demo-100 for "Demo Festival"

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
wait $GPID
