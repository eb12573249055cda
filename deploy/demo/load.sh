#!/usr/bin/env bash
# Loads the demo register into a running physioregd. register.jsonl describes one day (its
# anchor, tools/demo/demo_dates.h); physioreg-demo moves every date by whole years so that it
# describes today, writes that to OUT_JSONL, and the CLI upserts it. deploy/run.sh and the README
# test (tests/service/readme_examples_test.cc) load the demo through this script.
# usage: deploy/demo/load.sh BUILD_DIR GRPC_ADDRESS TOKEN_FILE OUT_JSONL
set -euo pipefail
if [[ $# -ne 4 ]]; then
  echo "usage: $0 BUILD_DIR GRPC_ADDRESS TOKEN_FILE OUT_JSONL" >&2
  exit 2
fi
bin=$1 address=$2 token_file=$3 out=$4
"$bin/tools/demo/physioreg-demo" --input "$(dirname "$0")/register.jsonl" --output "$out"
# The request id follows the content: a rerun on the same day replays, a later year loads anew.
"$bin/client/physioreg" --address "$address" --token-file "$token_file" \
  upsert --file "$out" --request-id "demo-$(sha256sum "$out" | cut -c1-16)"
