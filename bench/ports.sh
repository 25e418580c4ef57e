# Sourced by the benchmark scripts. port: a free loopback port below the
# ephemeral range (32768+), into $P, never one handed out before in this
# script (nothing listens on a port handed out until its server starts).
PORTS=" "
port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 12000))
    case "$PORTS" in *" $p "*) continue;; esac
    (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null || { PORTS+="$p "; P=$p; return; }
  done
}
