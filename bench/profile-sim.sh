#!/usr/bin/env bash
# Where the 12-hour simulator run spends its time, thread by thread.
#
# Debian's liblmdb0 and libraft0 carry no symbols for their static
# functions, so this script builds both from the upstream sources of the
# installed versions, as Debian's source packages name them (-O2, with
# symbols and frame pointers; Debian's own patches are left out),
# runs gatesim under `perf record` with them in front (LD_LIBRARY_PATH), and
# prints the hottest functions (self) of each of the two busiest threads,
# as shares of that thread's samples, and the LMDB source lines that take
# the most samples.
#
#   bench/profile-sim.sh [build-dir] [scenario]
#
# Besides installing linux-perf when perf is missing (as root), nothing
# outside the work directory (PROFILE_DIR) changes: apt reads a private
# source list there and keeps its indexes there.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
SCN=${2:-configs/scenarios/festival-12h.scn}
HZ=${PROFILE_HZ:-49}
W=${PROFILE_DIR:-/tmp/gm-profile}
mkdir -p "$W/lists/partial" "$W/src" "$W/lib"

command -v perf >/dev/null || { apt-get install -y -q linux-perf >/dev/null; }
[ -x "$B/gatesim" ] || make -s "$B/gatesim"

apt_src() {
  apt-get -q -o Dir::Etc::SourceList="$W/sources.list" -o Dir::Etc::SourceParts=- \
    -o Dir::State::Lists="$W/lists" -o APT::Sandbox::User=root "$@"
}
if [ ! -f "$W/lib/liblmdb.so.0" ] || [ ! -f "$W/lib/libraft.so.0" ]; then
  cat >"$W/sources.list" <<EOF
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-backports main
EOF
  apt_src update >/dev/null
  lmdb_v=$(dpkg-query -W -f '${Version}' liblmdb0)
  raft_v=$(dpkg-query -W -f '${Version}' libraft0)
  # Only the upstream tarballs, fetched by the URIs apt names.
  for pkg in "lmdb=$lmdb_v" "raft=$raft_v"; do
    url=$(apt_src source --print-uris "$pkg" | grep -o "'[^']*orig.tar.gz'" | tr -d "'")
    [ -n "$url" ] || { echo "no source package for $pkg" >&2; exit 1; }
    curl -sfL -o "$W/src/${url##*/}" "$url"
  done
  rm -rf "$W/src/lmdb" "$W/src/raft" && mkdir -p "$W/src/lmdb" "$W/src/raft"
  tar -xzf "$W"/src/lmdb_*.orig.tar.gz -C "$W/src/lmdb" --strip-components=1
  tar -xzf "$W"/src/raft_*.orig.tar.gz -C "$W/src/raft" --strip-components=1
  # NDEBUG as in Debian's build (libraft's internal assertions are off).
  CF=(-O2 -g -fno-omit-frame-pointer -fPIC -shared -DNDEBUG)
  L="$W/src/lmdb/libraries/liblmdb"
  gcc "${CF[@]}" -pthread -Wl,-soname,liblmdb.so.0 -o "$W/lib/liblmdb.so.0" "$L/mdb.c" "$L/midl.c"
  # Without the uv backend: gatesim drives the core through raft_step.
  RAFT_SRC=()
  for f in "$W"/src/raft/src/*.c; do [[ ${f##*/} == uv* ]] || RAFT_SRC+=("$f"); done
  gcc "${CF[@]}" -I"$W/src/raft/include" -Wl,-soname,libraft.so.0 -o "$W/lib/libraft.so.0" \
    "${RAFT_SRC[@]}"
fi

rm -rf /dev/shm/gatesim.*
echo "== $SCN, seed 1, with LMDB and libraft from $W/lib"
LD_LIBRARY_PATH="$W/lib" perf record -q -F "$HZ" -g -o "$W/perf.data" \
  "$B/gatesim" --scenario "$SCN" --seed 1 --bench
# Each sample's own function (its first frame), counted per thread; the
# two threads with the most samples are the simulation's and the lane's.
perf script -i "$W/perf.data" -F tid,ip,sym,dso 2>/dev/null | awk '
  NF == 1 && $1 ~ /^[0-9]+$/ { t = $1; first = 1; next }
  first && NF >= 2 { f = ($2 == "[unknown]") ? $NF : $2; c[t, f]++; n[t]++; first = 0 }
  END {
    for (t in n) order[t] = n[t]
    for (k = 0; k < 2; k++) {
      best = ""; for (t in order) if (best == "" || order[t] > order[best]) best = t
      if (best == "") break
      printf "== thread %s: %d samples; its hottest functions (self)\n", best, n[best]
      delete order[best]
      m = 0
      for (key in c) { split(key, a, SUBSEP); if (a[1] == best) { fn[++m] = a[2]; cnt[m] = c[key] } }
      for (i = 1; i <= 15 && i <= m; i++) {
        b = i; for (j = i + 1; j <= m; j++) if (cnt[j] > cnt[b]) b = j
        x = fn[i]; fn[i] = fn[b]; fn[b] = x; y = cnt[i]; cnt[i] = cnt[b]; cnt[b] = y
        printf "  %5.1f%%  %s\n", 100 * cnt[i] / n[best], fn[i]
      }
      delete fn; delete cnt
    }
  }'
echo "== LMDB's hottest source lines (all threads, % of all samples)"
perf report -i "$W/perf.data" --no-children --dso liblmdb.so.0 --sort sym,srcline --stdio \
  -g none 2>/dev/null | grep -E '^ +[0-9]' | sort -rn | head -6
