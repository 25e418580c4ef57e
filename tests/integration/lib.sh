# Helpers for integration tests: start real gated processes on free loopback
# ports, call the API, count checks. Sourced by run.sh; every started gate is
# killed on exit, whatever happens.
set -u
GM_BUILD=${GM_BUILD:-build}
GATED=$PWD/$GM_BUILD/gated
GATECTL=$PWD/$GM_BUILD/gatectl
SEALED=$PWD/$GM_BUILD/tests/tools/sealed
TMP=$(mktemp -d /tmp/gm-it.XXXXXX)
PIDS=()
PASS=0
FAIL=0
export GATECTL_TOKEN_FILE=$TMP/token
# Leaks inside libraft itself are suppressed (see the file); ours are not.
export LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp:print_suppressions=0

cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null; done
  # After a failed check, the end of each gate's log, for whoever reads
  # the run (run.sh passes these lines on).
  if [ "$FAIL" -gt 0 ]; then
    for f in "$TMP"/*/log; do
      [ -f "$f" ] && tail -n 12 "$f" | sed "s|^|log $(basename "$(dirname "$f")"): |"
    done
  fi
  [ -n "${GM_KEEP_TMP:-}" ] && echo "kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT

# free_port: a loopback port nothing listens on and that this test has not
# handed out before (a port handed out is not listened on until its gate
# starts, and it is called in $(...), so the list is kept in a file).
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 12000))  # below the ephemeral range (32768+)
    grep -qx "$p" "$TMP/ports" 2>/dev/null && continue
    (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && continue
    echo "$p" >> "$TMP/ports"
    echo "$p"; return
  done
}

# start_gate NAME [extra gated flags...]: sets URL_<NAME>, PID_<NAME>, DIR_<NAME>
start_gate() {
  local name=$1; shift
  local port; port=$(free_port)
  local dir=$TMP/$name
  mkdir -p "$dir"
  local gate=(--gate "$name") scheme=http
  case " $* " in *" --config "*) gate=();; esac  # let the file name the gate
  case " $* " in *" --tls-cert "*) scheme=https;; esac
  GATE_ADMIN_PASSWORD=${GATE_ADMIN_PASSWORD:-admin-pass-1} "$GATED" --data-dir "$dir/data" \
    --http-listen 127.0.0.1:$port "${gate[@]}" --log-level warn "$@" >>"$dir/log" 2>&1 &
  local pid=$!
  disown $pid 2>/dev/null
  PIDS+=("$pid")
  eval "URL_$name=http://127.0.0.1:$port PID_$name=$pid DIR_$name=$dir PORT_$name=$port"
  for _ in $(seq 1 100); do
    curl -skf "$scheme://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
    kill -0 $pid 2>/dev/null || break
    sleep 0.05
  done
  echo "gate $name did not start:"; cat "$dir/log"; return 1
}

check() { # check NAME COMMAND...: passes when the command succeeds
  local name=$1; shift
  if "$@" >/dev/null 2>&1; then PASS=$((PASS + 1)); else FAIL=$((FAIL + 1)); echo "FAIL: $name"; fi
}

# setup_failed WHAT: the test cannot go on; counts as a failed check, so the
# cleanup prints the end of every gate's log, and says which gates still run.
setup_failed() {
  FAIL=$((FAIL + 1)); echo "FAIL: setup: $*"
  local p
  for p in "${PIDS[@]:-}"; do
    [ -n "$p" ] || continue
    if kill -0 "$p" 2>/dev/null; then echo "  gate pid $p is running"; else echo "  gate pid $p has exited"; fi
  done
  exit 1
}

eq() { [ "$1" = "$2" ] || { echo "  expected [$2] got [$1]" >&2; return 1; }; }

# api METHOD URL TOKEN [BODY] -> prints "STATUS BODY"
api() {
  local m=$1 url=$2 tok=$3 body=${4:-}
  local args=(-s -o "$TMP/resp" -w '%{http_code}' -X "$m" "$url")
  [ -n "$tok" ] && args+=(-H "Authorization: Bearer $tok")
  [ -n "$body" ] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
  local st; st=$(curl "${args[@]}")
  echo "$st $(cat "$TMP/resp")"
}
status_of() { echo "${1%% *}"; }
body_of() { echo "${1#* }"; }
jf() { body_of "$1" | jq -r "$2"; }

# --- clusters ------------------------------------------------------------------
# wait_until SECONDS COMMAND...: polls every 0.1 s
wait_until() {
  local n=$(( $1 * 10 )); shift
  for _ in $(seq 1 $n); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}
# member NAME ID [flags]: a gate with a cluster port (CPORT_<NAME>) and the
# caller's RAFT_FLAGS.
member() {
  local name=$1 id=$2; shift 2
  local cport; cport=$(free_port)
  eval "CPORT_$name=$cport ID_$name=$id"
  start_gate "$name" --node-id "$id" --cluster-listen 127.0.0.1:$cport "${RAFT_FLAGS[@]}" "$@"
}
status() { curl -s -m 2 "$1/cluster/status"; }

# finish: stops every gate with SIGTERM (a clean exit is part of the test),
# fails on any sanitizer report in any gate's log, prints the counts.
finish() {
  for p in "${PIDS[@]:-}"; do
    [ -n "$p" ] && kill -0 "$p" 2>/dev/null || continue
    kill -TERM "$p"
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
    kill -0 "$p" 2>/dev/null && { FAIL=$((FAIL + 1)); echo "FAIL: gate $p ignored SIGTERM"; }
  done
  local reports
  reports=$(grep -lE "AddressSanitizer|LeakSanitizer|runtime error:|assertion failed" \
    $(find "$TMP" -name 'log*' -type f) 2>/dev/null)
  if [ -n "$reports" ]; then
    FAIL=$((FAIL + 1)); echo "FAIL: sanitizer or assertion report in a gate log:"
    for f in $reports; do grep -m5 -A12 -E "Sanitizer|runtime error:|assertion failed" "$f"; done
  else
    PASS=$((PASS + 1))
  fi
  echo "$PASS passed, $FAIL failed"
  [ "$FAIL" -eq 0 ]
}

# festival URL TOKEN PREFIX N: event "fest", tickets PREFIX1..PREFIXN, and a
# QR payload (valid 15 min) for each in $TMP/qr/PREFIXi. Counts as one check.
festival() {
  local u=$1 tok=$2 prefix=$3 n=$4 i body r
  local end=$(( ($(date +%s) + 86400) * 1000 ))
  api POST "$u/events" "$tok" "{\"id\":\"fest\",\"name\":\"Fest\",\"starts_ms\":0,\"ends_ms\":$end}" >/dev/null
  body='{"tickets":['
  for i in $(seq 1 "$n"); do body+="{\"event_id\":\"fest\",\"holder\":\"h$i\",\"id\":\"$prefix$i\"},"; done
  r=$(api POST "$u/tickets/batch" "$tok" "${body%,}]}")
  mkdir -p "$TMP/qr"
  for i in $(seq 1 "$n"); do
    curl -s -H "Authorization: Bearer $tok" -X POST "$u/tickets/$prefix$i/methods/qr/generate" \
      -d '{"ttl_s":900}' | jq -r .payload > "$TMP/qr/$prefix$i"
  done
  check "setup: $n tickets with QR payloads" test "$(jf "$r" .created)/$(cat "$TMP"/qr/"$prefix"* | grep -c .)" = "$n/$n"
}

login() { # login URL USER PASS -> token; waits up to 20 s while the gate is not_ready
  local r _
  for _ in $(seq 1 200); do
    r=$(curl -s -m 10 "$1/auth/login" -d "{\"username\":\"$2\",\"password\":\"$3\"}")
    [ "$(jq -r .code <<<"$r" 2>/dev/null)" = not_ready ] || break
    sleep 0.1
  done
  jq -r .token <<<"$r"
}
