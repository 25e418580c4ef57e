#!/usr/bin/env bash
# Sums the counts every runner of `make test` recorded.
set -u
p=0; f=0
while read -r a b; do p=$((p + a)); f=$((f + b)); done < build/test-counts
echo "all suites, normal and ASan+UBSan builds:"
echo "$p passed, $f failed"
[ "$f" -eq 0 ]
