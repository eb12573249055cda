#!/usr/bin/env bash
# Installs the Debian 12 packages physioreg builds and tests with (skips when all are present).
set -euo pipefail
packages=(build-essential cmake ninja-build ccache pkg-config git tzdata
          libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
          librocksdb-dev libabsl-dev libssl-dev libicu-dev libgtest-dev libgmock-dev libcli11-dev
          libbenchmark-dev libgoogle-perftools-dev libspdlog-dev libboost-dev jq faketime
          nghttp2-client curl)
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
