#!/usr/bin/env bash
# Installs the Debian 12 packages physioreg builds and tests with (skips when all are present).
set -euo pipefail
packages=(build-essential cmake ninja-build ccache pkg-config git tzdata
          libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
          librocksdb-dev libabsl-dev libssl-dev libicu-dev libgtest-dev libgmock-dev libcli11-dev
          libbenchmark-dev libgoogle-perftools-dev libspdlog-dev libboost-dev jq faketime)
# deploy/bench-http.sh: h2load, and curl to check a request once.
packages+=(nghttp2-client curl)
# The TLS tests (tests/service/tls_e2e_test.cc) make their certificates with openssl and call
# HTTPS with curl.
packages+=(openssl)
# The browser tests (tests/web): Debian's Chromium, driven from Node.js (the machine's own node
# is kept when present), and zbarimg to read the page's QR code.
packages+=(chromium zbar-tools)
command -v node >/dev/null 2>&1 || packages+=(nodejs npm)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The browser tests' npm packages (versions pinned by tests/web/package-lock.json), when
# tests/web/node_modules is missing or older than the lockfile.
web_tests="$(cd "$(dirname "$0")/.." && pwd)/tests/web"
if [[ ! -d "$web_tests/node_modules" || "$web_tests/package-lock.json" -nt "$web_tests/node_modules" ]]; then
  echo "installing the browser tests' npm packages (npm ci --prefix tests/web)"
  npm ci --prefix "$web_tests" --no-audit --no-fund --loglevel=error
  touch "$web_tests/node_modules"
fi
