#!/usr/bin/env bash
# `make bench`: every figure next to the peer or physical limit it is judged
# against, measured in this same run on this machine.
#  1. in process, one core (bench_core): raw Ed25519 verify, qr and pass
#     verification rates, grouped redeem apply rate;
#  2. HTTP POST /verify with wrk, 64 connections, every request a fresh unused
#     credential, gated pinned to core 0 and wrk to core 1, against a raw h2o
#     hello handler set up the same way (bench/hello.c).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
DUR=${BENCH_SECONDS:-8}
CONNS=64
TMP=$(mktemp -d /tmp/gm-bench.XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done; rm -rf "$TMP"' EXIT
# Ports below the ephemeral range (32768+), so no outgoing connection holds them.
port() { while :; do p=$((20000 + RANDOM % 12000)); (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null || { echo $p; return; }; done; }
wait_http() { for _ in $(seq 1 200); do curl -s -o /dev/null "$1" && return 0; sleep 0.05; done; return 1; }
rps() { sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$1"; }
lat() { awk '/Latency/ {print $2}' "$1"; }

echo "== in process, one core"
taskset -c 0 "$B/bench/bench_core" | tee "$TMP/core.txt"
RAW=$(awk '/^raw_ed25519_verify/ {print $2}' "$TMP/core.txt")

echo "== HTTP POST /verify, wrk -t1 -c$CONNS -d${DUR}s"
HP=$(port)
taskset -c 0 "$B/bench/hello" "$HP" & PIDS+=($!)
wait_http "http://127.0.0.1:$HP/"
# The hello peer gets the same request bytes the gate will get.
N_PASS=${BENCH_PASS_CREDS:-400000}
N_QR=${BENCH_QR_CREDS:-200000}
GP=$(port)
DATA=$TMP/gate
GATE=(taskset -c 0 "$B/gated" --data-dir "$DATA" --http-listen 127.0.0.1:$GP --pass-period-s 120
      --log-level warn --gate bench)
GATE_ADMIN_PASSWORD=bench-pass-1 "${GATE[@]}" & GPID=$!
wait_http "http://127.0.0.1:$GP/healthz"; kill -TERM $GPID; wait $GPID || true
"$B/bench/mkcreds" "$DATA" pass $N_PASS "$TMP/pass.txt" 120
"$B/bench/mkcreds" "$DATA" qr $N_QR "$TMP/qr.txt"
TOKEN=x
taskset -c 1 wrk -t1 -c$CONNS -d${DUR}s -s bench/verify.lua "http://127.0.0.1:$HP" -- "$TMP/pass.txt" "$TOKEN" 1 > "$TMP/hello.txt"
HELLO=$(rps "$TMP/hello.txt")
printf 'h2o_hello_http %.0f /s p50-ish latency %s\n' "$HELLO" "$(lat "$TMP/hello.txt")"

"${GATE[@]}" >> "$TMP/gate.log" 2>&1 & GPID=$!; PIDS+=($GPID)
wait_http "http://127.0.0.1:$GP/healthz"
TOKEN=$(curl -s "http://127.0.0.1:$GP/auth/login" -d '{"username":"admin","password":"bench-pass-1"}' | jq -r .token)
admitted() { curl -s "http://127.0.0.1:$GP/metrics" | awk -F' ' '/^gate_verify_total\{result="admitted"\}/ {print $2}'; }
denied() { curl -s "http://127.0.0.1:$GP/metrics" | awk -F' ' '/^gate_verify_total\{result="denied"\}/ {print $2}'; }
for kind in pass qr; do
  a0=$(admitted); d0=$(denied)
  taskset -c 1 wrk -t1 -c$CONNS -d${DUR}s --latency -s bench/verify.lua "http://127.0.0.1:$GP" -- "$TMP/$kind.txt" "$TOKEN" 1 > "$TMP/$kind.out"
  a1=$(admitted); d1=$(denied)
  R=$(rps "$TMP/$kind.out")
  ADM=$(( a1 - a0 )); DEN=$(( d1 - d0 ))
  P50=$(awk '/ 50%/ {print $2}' "$TMP/$kind.out"); P99=$(awk '/ 99%/ {print $2}' "$TMP/$kind.out")
  if [ "$kind" = pass ]; then
    printf 'http_verify_pass %.0f /s %.2f of h2o hello (target >= 0.40); admitted %d denied %d; p50 %s p99 %s\n' \
      "$R" "$(echo "$R / $HELLO" | bc -l)" "$ADM" "$DEN" "$P50" "$P99"
  else
    printf 'http_verify_qr %.0f /s %.2f of raw ed25519 verify (target >= 0.60); admitted %d denied %d; p50 %s p99 %s\n' \
      "$R" "$(echo "$R / $RAW" | bc -l)" "$ADM" "$DEN" "$P50" "$P99"
  fi
done
curl -s "http://127.0.0.1:$GP/metrics" | grep -E "^gate_commit_(batches|commands|apply_seconds|wait_seconds)_total|^gate_commit_batch_max"
