#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan+UBSan) and runs them.
#   tests/fuzz/run.sh            fuzz each target for FUZZ_SECONDS (default 60)
#   tests/fuzz/run.sh regress    run each target once over its corpus only
# Corpora live in build/fuzz/corpus/<target> (seeded by seeds.c) and grow
# as the fuzzer finds new paths; crashes land in build/fuzz/crash-*.
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=${1:-fuzz}
B=build/fuzz
mkdir -p $B
PKGS="libuv libh2o msgpack libsodium jansson libqrencode libpng zbar openssl"
CFLAGS="-std=gnu11 -D_GNU_SOURCE -g -O1 -I. $(pkg-config --cflags $PKGS)"
LIBS="$(pkg-config --libs $PKGS) -lraft -llmdb -lpthread -lm"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all"
CORE=$(ls lib/*.c ledger/*.c methods/*.c raft/*.c gossip/*.c)
# Rebuilt when a source changed, or when the set of sources did (a new file
# may be older than the stamp).
if [ ! -f $B/core.stamp ] || [ "$(cat $B/core.stamp)" != "$CORE" ] ||
   [ -n "$(find lib ledger methods raft gossip -newer $B/core.stamp -name '*.[ch]')" ]; then
  rm -f $B/*.o
  for f in $CORE; do clang $CFLAGS $SAN -fsanitize=fuzzer-no-link -c "$f" -o "$B/$(echo "$f" | tr / _).o"; done
  echo "$CORE" > $B/core.stamp
fi
clang $CFLAGS tests/fuzz/seeds.c $B/*.o $SAN -o $B/seeds $LIBS
$B/seeds $B/corpus
pass=0; fail=0
for t in tests/fuzz/fuzz_*.c; do
  name=$(basename "$t" .c); target=${name#fuzz_}
  clang $CFLAGS $SAN -fsanitize=fuzzer "$t" tests/fuzz/fixture.c $B/*.o -o $B/$name $LIBS
  mkdir -p $B/corpus/$target
  if [ "$mode" = regress ]; then
    args=(-runs=0)
  else
    args=(-max_total_time=${FUZZ_SECONDS:-60} -max_len=4096 -timeout=10)
  fi
  if (cd $B && ./$name "${args[@]}" corpus/$target > $name.log 2>&1); then
    pass=$((pass + 1)); echo "fuzz $name: ok ($(ls $B/corpus/$target | wc -l) inputs)"
  else
    fail=$((fail + 1)); echo "fuzz $name: FAILED, see $B/$name.log"; tail -30 $B/$name.log
  fi
done
[ -n "${GM_RECORD_COUNTS:-}" ] && echo "$pass $fail" >> build/test-counts
echo "fuzz [$mode]: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
