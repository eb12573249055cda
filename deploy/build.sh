#!/usr/bin/env bash
# Configures and builds one CMake preset (dev, release or asan), through ccache when present.
set -euo pipefail
preset="${1:-release}"
cd "$(dirname "$0")/.."
if command -v ccache >/dev/null; then export PHYSIOREG_LAUNCHER=ccache; fi
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset"
