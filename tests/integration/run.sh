#!/usr/bin/env bash
# Runs every integration test script against real gated processes built in
# build dir $1, and records the counts.
set -u
cd "$(dirname "$0")/../.."
export GM_BUILD=${1:-build}
total_p=0; total_f=0
for t in tests/integration/test_*.sh; do
  out=$(bash "$t" 2>&1); rc=$?
  printf '%s\n' "$out" | grep -E "^(FAIL|  expected|  got|log [A-Za-z0-9_.-]+: )|ERROR: AddressSanitizer|runtime error:|assertion failed|^SUMMARY|^ +#[0-9]+ " | head -120
  line=$(printf '%s\n' "$out" | grep -E "^[0-9]+ passed, [0-9]+ failed$" | tail -1)
  p=${line%% passed*}; f=${line#*, }; f=${f%% failed}
  [ -n "$line" ] || { p=0; f=1; printf '%s\n' "$out" | tail -30; }
  [ $rc -ne 0 ] && [ "$f" -eq 0 ] && f=1
  echo "integration $(basename "$t") [$GM_BUILD]: $p passed, $f failed"
  total_p=$((total_p + p)); total_f=$((total_f + f))
done
echo "$total_p $total_f" >> build/test-counts
echo "integration [$GM_BUILD]: $total_p passed, $total_f failed"
[ "$total_f" -eq 0 ]
