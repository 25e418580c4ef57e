#!/usr/bin/env bash
# Installs every Debian package the gate mesh needs to build, test and benchmark,
# on a fresh Debian 12 (bookworm) machine. Idempotent: a second run with
# everything present only checks and exits. Needs root for apt-get.
set -euo pipefail

PKGS=(
  build-essential pkg-config clang llvm libclang-rt-14-dev
  libuv1-dev liblmdb-dev libmsgpack-dev libsodium-dev
  libh2o-dev libssl-dev libjansson-dev
  libqrencode-dev libpng-dev libzbar-dev zbar-tools libnfc-dev
  libcriterion-dev libjemalloc-dev
  wrk bc curl jq openssl util-linux iproute2 nftables libcurl4-openssl-dev etcd-server
)
BACKPORTS_PKGS=(libraft-dev)

missing=()
for p in "${PKGS[@]}" "${BACKPORTS_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "deps: installing: ${missing[*]}"

if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing packages and not root; run: sudo $0" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  cat > /etc/apt/sources.list.d/bookworm-backports.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
apt-get update -q
apt-get install -y -q --no-install-recommends "${PKGS[@]}"
apt-get install -y -q --no-install-recommends -t bookworm-backports "${BACKPORTS_PKGS[@]}"
