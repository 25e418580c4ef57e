#!/usr/bin/env bash
# gatesim in `make test`: a seed sweep over every scenario with no invariant
# violated, byte-identical output for a seed, planted bugs found by the
# sweep, the HTML report, and clear errors for bad scenario files.
# SIM_SEEDS (default 70 per scenario; the 50-gate big-site gets a seventh
# of that, at least 1) sets the sweep's size.
set -u
cd "$(dirname "$0")/../.."
B=${1:-build}
SIM=$B/gatesim
SEEDS=${SIM_SEEDS:-70}
TMP=$(mktemp -d /tmp/gm-sim.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
PASS=0; FAIL=0
check() { local name=$1; shift; if "$@" >/dev/null 2>&1; then PASS=$((PASS + 1)); else FAIL=$((FAIL + 1)); echo "FAIL: $name"; fi; }

total=0
for s in configs/scenarios/*.scn; do
  name=$(basename "$s" .scn)
  case $name in festival-*) continue;; esac  # benchmarks, in `make bench`
  n=$SEEDS
  [ "$name" = big-site ] && n=$(( SEEDS / 7 > 0 ? SEEDS / 7 : 1 ))
  "$SIM" --scenario "$s" --seeds 1..$n > "$TMP/sweep.$name" 2>/dev/null
  check "sweep $name 1..$n: no invariant violated" grep -q ": 0 failing$" "$TMP/sweep.$name"
  grep "fails" "$TMP/sweep.$name" | head -5
  total=$((total + n))
  "$SIM" --scenario "$s" --seed 7 > "$TMP/a.$name"
  "$SIM" --scenario "$s" --seed 7 > "$TMP/b.$name"
  check "$name: the same seed gives byte-identical output" cmp "$TMP/a.$name" "$TMP/b.$name"
  "$SIM" --scenario "$s" --seed 7 --one-core > "$TMP/d.$name"
  check "$name: applies on one core give the same run" cmp "$TMP/a.$name" "$TMP/d.$name"
  "$SIM" --scenario "$s" --seed 7 --small-pages > "$TMP/e.$name"
  check "$name: 4 KiB pages give the same run" cmp "$TMP/a.$name" "$TMP/e.$name"
  "$SIM" --scenario "$s" --seed 8 > "$TMP/c.$name"
  check "$name: another seed gives another run" bash -c "! cmp -s $TMP/a.$name $TMP/c.$name"
done
echo "sim [$B]: $total seeds swept"
# Tickets resold during the festival: the organizer's transfers go through
# Raft from a gate (retried while no leader answers), the buyers come with
# the new code and the sellers try the old one (the sweeps above check the
# invariants with them).
read -r rs rt < <(sed -n 's/^resales during the festival \([0-9]*\): transferred \([0-9]*\),.*/\1 \2/p' "$TMP/a.leader-cut-off")
check "resales during the festival, transferred through Raft" test "${rs:-0}" -gt 0 -a "${rt:-0}" -gt 0
check "the sellers' old codes refused as superseded" grep -Eq "superseded=[1-9]" "$TMP/a.leader-cut-off"
# A quarter of its attendees show a dynamic pass (method pass, generated on
# the ledger at setup): admitted, and screenshots of a code shown at
# another gate refused once it is old (expired) or was seen (replayed).
read -r ps pa < <(sed -n 's/^dynamic passes shown \([0-9]*\), admitted \([0-9]*\);.*/\1 \2/p' "$TMP/a.leader-cut-off")
check "dynamic passes shown and admitted" test "${ps:-0}" -gt 0 -a "${pa:-0}" -gt 0
check "pass screenshots refused as expired or replayed" grep -Eq "(expired|replayed)=[1-9]" "$TMP/a.leader-cut-off"

# A gate that answers before its provisional record is on disk loses
# admissions in a crash: the sweep must find it, and name seeds to replay.
"$SIM" --scenario configs/scenarios/split-minority.scn --seeds 1..10 --fault skip-fsync \
  > "$TMP/fault" 2>/dev/null
check "planted bug skip-fsync: the sweep fails" test $? -eq 1
check "and names failing seeds with a replay command" grep -q "replay: gatesim --scenario .* --fault skip-fsync" "$TMP/fault"
seed=$(sed -n 's/^  seed \([0-9]*\) fails.*/\1/p' "$TMP/fault" | head -1)
"$SIM" --scenario configs/scenarios/split-minority.scn --seed "${seed:-1}" --fault skip-fsync > "$TMP/replay"
check "the replay of a failing seed fails the same way" grep -q "^VIOLATION I2 acknowledged provisional admission" "$TMP/replay"
# A gate that ignores what gossip told it admits a screenshot twice on the
# same side of a split.
"$SIM" --scenario configs/scenarios/leader-cut-off.scn --seeds 1..10 --fault no-heard-check \
  > "$TMP/fault2" 2>/dev/null
check "planted bug no-heard-check: the sweep fails" test $? -eq 1

# The lane thread checks the coming arrivals' signatures when it has nothing
# to apply, and gates take those checks; on one core nobody checks ahead,
# and the run is the same.
"$SIM" --scenario configs/scenarios/big-site.scn --seed 3 --bench > "$TMP/pre" 2>/dev/null
"$SIM" --scenario configs/scenarios/big-site.scn --seed 3 --one-core > "$TMP/pre1" 2>/dev/null
check "gates take signatures the lane thread checked ahead" \
  grep -Eq "checked ahead and a gate took: [1-9]" "$TMP/pre"
check "and the run is the one without them" cmp <(grep -v '^bench:' "$TMP/pre") "$TMP/pre1"
# The bench line on reads: every verdict is one verify that read its gate's
# ledger, and the entries the festival's reads applied are among those the
# whole run applied by reads (the checks settle the rest).
verdicts=$(sed -n 's/^verdicts \([0-9]*\) answered, \([0-9]*\) unanswered.*/\1 \2/p' "$TMP/pre")
read -r rv cv rp cp ro co < <(sed -n 's/^bench: reads of a ledger.*verifies \([0-9]*\) (\([0-9]*\)), provisional prunes \([0-9]*\) (\([0-9]*\)), a gate.s own entries \([0-9]*\) (\([0-9]*\))$/\1 \2 \3 \4 \5 \6/p' "$TMP/pre")
byreads=$(sed -n 's/.*by reads \([0-9]*\)$/\1/p' "$TMP/pre")
check "bench: one verify read per verdict" test "${rv:-x}" = "$(( ${verdicts% *} + ${verdicts#* } ))"
check "bench: the festival's reads applied entries, no more than all reads did" \
  test "$(( ${cv:-0} + ${cp:-0} + ${co:-0} ))" -gt 0 -a "$(( ${cv:-0} + ${cp:-0} + ${co:-0} ))" -le "${byreads:-0}"
check "bench: own entries were read, and prunes ran (the scenario splits)" test "${ro:-0}" -gt 0 -a "${rp:-0}" -gt 0
# The ledgers at the end, per gate: a tickets' table and a file in use, the
# file larger than the table (it holds the audit records and more).
read -r tkp fmib < <(sed -n "s/^bench: .*the tickets' table in \([0-9]*\) pages of 4 KiB and \([0-9.]*\) MiB .*/\1 \2/p" "$TMP/pre")
check "bench: the tickets' pages and the file in use per gate, the file the larger" \
  awk -v p="${tkp:-0}" -v f="${fmib:-0}" 'BEGIN { exit !(p > 0 && f * 256 > p) }'
# As root the ledgers go on a tmpfs of the simulator's own, in 2 MiB pages,
# which nothing outside the process sees.
if [ "$(id -u)" = 0 ]; then
  check "as root, the ledgers are in 2 MiB pages" grep -q "^bench: the ledgers in 2 MiB pages" "$TMP/pre"
  "$SIM" --scenario configs/scenarios/big-site.scn --seed 4 > /dev/null 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do grep -q " /dev/shm .* gatesim " /proc/$pid/mountinfo 2>/dev/null && break; sleep 0.05; done
  check "while it runs, its /dev/shm is a tmpfs of its own with huge=always" \
    grep -q " /dev/shm .* gatesim rw,.*huge=always" /proc/$pid/mountinfo
  check "which the system's mount table does not show" bash -c "! grep -q ' gatesim ' /proc/self/mountinfo"
  check "and the system's /dev/shm holds none of its ledgers" bash -c "! ls -d /dev/shm/gatesim.* 2>/dev/null"
  wait $pid
fi
"$SIM" --scenario configs/scenarios/big-site.scn --seed 3 --bench --small-pages > "$TMP/pre4k" 2>/dev/null
check "--small-pages: the ledgers in 4 KiB pages" grep -q "^bench: the ledgers in 4 KiB pages" "$TMP/pre4k"

"$SIM" --scenario configs/scenarios/leader-cut-off.scn --seed 2 --report "$TMP/r.html" > "$TMP/r.txt"
check "a single run says the invariants hold" grep -q "^invariants: all hold" "$TMP/r.txt"
check "the report has the three plots" bash -c "[ \$(grep -c '<svg' $TMP/r.html) = 3 ]"
check "it plots every gate" bash -c "[ \$(grep -c '<polyline' $TMP/r.html) = 10 ]"
check "and shows the incidents" grep -q "double_entry" "$TMP/r.html"

printf 'gates 4\nvoters 3\npartition 5m 1-9\n' > "$TMP/bad.scn"
"$SIM" --scenario "$TMP/bad.scn" > /dev/null 2> "$TMP/err"
check "a scenario naming a gate that does not exist is refused (exit 2)" test $? -eq 2
check "with the file and line" grep -q "bad.scn:3" "$TMP/err"
"$SIM" --scenario /nonexistent.scn > /dev/null 2> "$TMP/err"
check "a missing scenario file is refused" grep -q "cannot open" "$TMP/err"

# --dir: the ledgers go there, and are gone after the run.
mkdir "$TMP/led"
"$SIM" --scenario configs/scenarios/leader-cut-off.scn --seed 7 --dir "$TMP/led" > "$TMP/e.txt"
check "--dir: the same run" cmp "$TMP/a.leader-cut-off" "$TMP/e.txt"
check "and it leaves nothing behind" bash -c "[ -z \"\$(ls -A $TMP/led)\" ]"
: > "$TMP/afile"
"$SIM" --scenario configs/scenarios/leader-cut-off.scn --seed 7 --dir "$TMP/afile" > /dev/null 2> "$TMP/err"
check "a --dir that is not a directory is refused (exit 2)" test $? -eq 2
check "naming it" grep -q "directory in $TMP/afile" "$TMP/err"

echo "$PASS $FAIL" >> build/test-counts
echo "sim [$B]: $PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
