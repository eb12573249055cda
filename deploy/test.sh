#!/usr/bin/env bash
# Installs what is missing, then builds and runs every test twice: a normal build (dev) and
# one with AddressSanitizer + UndefinedBehaviorSanitizer (asan).
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh
for preset in dev asan; do
  echo "=== $preset: build"
  deploy/build.sh "$preset" | tail -n 1
  echo "=== $preset: test"
  ctest --preset "$preset" -j2
done
