#!/usr/bin/env bash
# Installs what is missing, then builds and runs every test twice: a normal build (dev) and
# one with AddressSanitizer + UndefinedBehaviorSanitizer (asan); then dev once more with the
# clock years ahead (faketime).
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh
for preset in dev asan; do
  echo "=== $preset: build"
  deploy/build.sh "$preset" | tail -n 1
  echo "=== $preset: test"
  ctest --preset "$preset" -j2
done
# No test may depend on the date: the dev suite again, years ahead (README, "Tests").
echo "=== dev: test with the clock at 2031-06-15"
faketime '2031-06-15 12:00:00' ctest --preset dev -j2
