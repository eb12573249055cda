#!/usr/bin/env bash
# Builds physioreg, starts physioregd on an embedded RocksDB in ./var/physioreg, loads the demo
# register (its dates moved to today, deploy/demo/load.sh) and prints where to point a browser
# and the CLI.
# Ctrl-C stops the server (it drains, then exits).
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh
deploy/build.sh release >/dev/null
bin=build/release
data_dir="${PHYSIOREG_DATA_DIR:-var/physioreg}"
grpc_address="${PHYSIOREG_GRPC_ADDRESS:-127.0.0.1:50051}"
http_address="${PHYSIOREG_HTTP_ADDRESS:-127.0.0.1:8080}"

"$bin/service/physioregd" --data_dir="$data_dir" --grpc_address="$grpc_address" \
  --http_address="$http_address" &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server' INT TERM
cli=("$bin/client/physioreg" --address "$grpc_address")
"${cli[@]}" health --wait 30 >/dev/null
# Health may have come from another server on the address; ours must still be running.
if ! kill -0 "$server" 2>/dev/null; then
  wait "$server" || true
  echo "physioregd did not start (see above)." >&2
  exit 1
fi
mkdir -p var
# The demo register with its dates moved to today (what the README's examples are written for).
if ! deploy/demo/load.sh "$bin" "$grpc_address" "$data_dir/regulator.token" \
  var/demo-register.jsonl; then
  echo "The demo register did not load. A data directory from an earlier year's demo? Stop" \
    "the server and remove $data_dir to start afresh." >&2
fi
cat <<MSG

physioreg is running.
  gRPC (CLI, clinics, insurers):   $grpc_address
  Regulator token file:            $data_dir/regulator.token (mode 0600; keep it secret)
  Browser (patients' search page): http://$http_address/
  HTTP/JSON API:                   http://$http_address/v1/practitioners?name=leblanc
Try:
  $bin/client/physioreg --address $grpc_address verify PT-100331 --activity DRY_NEEDLING
  $bin/client/physioreg --address $grpc_address get PT-100331
  $bin/client/physioreg --address $grpc_address --token-file $data_dir/regulator.token \\
      set-authorization-status PT-100331 --activity DRY_NEEDLING --status SUSPENDED --reason audit
Ctrl-C stops the server.
MSG
wait $server
