#!/usr/bin/env bash
# Configures and builds one CMake preset (dev, release or asan), through ccache when present.
set -euo pipefail
preset="${1:-release}"
cd "$(dirname "$0")/.."
if command -v ccache >/dev/null; then
  export PHYSIOREG_LAUNCHER=ccache
  # Paths inside the checkout are hashed relative to it, so a clone in another folder (CI's)
  # reuses what an earlier build compiled.
  export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}" CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-1}"
fi
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset"
