#!/usr/bin/env bash
# Runs every Criterion unit test binary of build dir $1 and records the counts.
set -u
B=${1:-build}
pass=0; fail=0
for t in "$B"/tests/test_*; do
  [ -x "$t" ] || continue
  out=$("$t" --jobs 2 2>&1); rc=$?
  line=$(printf '%s\n' "$out" | grep "Synthesis:" | tail -1)
  p=$(printf '%s' "$line" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p')
  f=$(printf '%s' "$line" | sed -n 's/.*Failing: \([0-9]*\) | Crashing: \([0-9]*\).*/\1+\2/p')
  [ -n "$p" ] || p=0
  f=$(( ${f:-1} ))
  if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  if [ "$f" -ne 0 ]; then printf '%s\n' "$out" | grep -v "^\[----\] *$" | tail -40; fi
  echo "unit $(basename "$t") [$B]: $p passed, $f failed"
  pass=$((pass + p)); fail=$((fail + f))
done
echo "$pass $fail" >> build/test-counts
echo "unit [$B]: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
