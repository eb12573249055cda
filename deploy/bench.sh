#!/usr/bin/env bash
# The benchmark behind BENCHMARKS.md: release build, physioregd on a fresh data dir with the
# demo register, the loadgen scenarios (every figure also as a ratio to the same server's
# grpc.health.v1 Check in the same run) and the micro-benchmarks; prints markdown tables.
# The baseline scenario interleaves its phases (health, get, verify, mix) in rounds, so on a
# shared machine every phase sees the same neighbours. Then the same server code at
# BENCH_SCALE (1,000,000; 0 skips it) registrants: generate, import, restart, reads.
# About 12 minutes with the defaults.
# Knobs (environment):
#   BENCH_DURATION_S (5)  measured seconds per phase and round   BENCH_WARMUP_S (1)  warm-up
#   BENCH_ROUNDS (4)      interleaved rounds of the baseline      BENCH_REPEAT (2)    runs of it
#   BENCH_PORT (50851)    gRPC port
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh
if command -v ccache >/dev/null; then export PHYSIOREG_LAUNCHER=ccache; fi
cmake --preset release >/dev/null
# The machine is shared: never more than two compile jobs.
cmake --build --preset release -j2 >/dev/null

bin=build/release
duration="${BENCH_DURATION_S:-5}"
warmup="${BENCH_WARMUP_S:-1}"
rounds="${BENCH_ROUNDS:-4}"
repeat="${BENCH_REPEAT:-2}"
address="127.0.0.1:${BENCH_PORT:-50851}"
work="$(mktemp -d /tmp/physioreg-bench-XXXXXX)"
server=""
cleanup() {
  if [ -n "$server" ]; then kill -TERM "$server" 2>/dev/null && wait "$server" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "## Machine"
echo
echo "- $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "- RAM: $(free -g | awk '/^Mem:/ {print $2}') GiB; $(. /etc/os-release && echo "$PRETTY_NAME")"
echo "- compiler: $(c++ --version | head -n1); CMake preset \`release\` (-O3 -DNDEBUG)"
echo "- load before the run: $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min; 2 = both cores busy)"
echo

# start_server DATA_DIR ADDRESS LOG: starts physioregd, sets $server, returns once it is
# SERVING. Polled with fresh CLI processes every 20 ms (at most 30 s): `health --wait` would
# add gRPC's reconnect backoff (~1 s) to the time measured.
start_server() {
  # Limits off: this measures the server's capacity from one address (bench-limits.sh measures
  # the limiter).
  "$bin/service/physioregd" --data_dir="$1" --grpc_address="$2" --http_address= \
    --rate_limits=false >"$3" 2>&1 &
  server=$!
  for attempt in $(seq 1 1500); do
    if "$bin/client/physioreg" --address "$2" health >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$server" 2>/dev/null; then break; fi
    sleep 0.02
  done
  echo "physioregd did not reach SERVING:" >&2
  cat "$3" >&2
  exit 1
}
# wait_for_search_index LOG: until physioregd says its search index is ready (at most 120 s).
wait_for_search_index() {
  for attempt in $(seq 1 1200); do
    if grep -q "search index ready" "$1"; then return 0; fi
    if grep -q "search index failed" "$1" || ! kill -0 "$server" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "the search index did not load:" >&2
  cat "$1" >&2
  exit 1
}

started=$(date +%s.%N)
start_server "$work/data" "$address" "$work/server.log"
serving=$(date +%s.%N)
"$bin/client/physioreg" --address "$address" --token-file "$work/data/regulator.token" \
  upsert --file deploy/demo/register.jsonl >/dev/null
rss_kib=$(awk '/^VmRSS/ {print $2}' "/proc/$server/status")
echo "## Demo register (200 registrants)"
echo
awk -v a="$started" -v b="$serving" -v rss="$rss_kib" \
  'BEGIN { printf "- first start to SERVING (polled every 20 ms): %.2f s; RSS after loading: %d MiB\n", b - a, rss / 1024 }'
echo

loadgen=("$bin/tools/loadgen/physioreg-loadgen" --address "$address" --duration_s "$duration"
         --warmup_s "$warmup" --server_pid "$server" --fail_on_error)
table_header() {
  echo "| run | phase | rpc | load | req/s | vs health | p50 µs | p90 µs | p99 µs | p99.9 µs | cores client / server | CPU µs/call client / server | errors |"
  echo "|---|---|---|---|---:|---:|---:|---:|---:|---:|---|---|---|"
}
# One markdown row per RPC of each phase, from the loadgen's JSON lines.
to_rows() {
  local run="$1"
  grep '^JSON ' | cut -c6- | jq -r --arg run "$run" '. as $p | .rpcs[] |
    "| \($run) | \($p.phase) | \(.rpc) | " +
    (if $p.mode == "closed" then "\($p.streams) streams" else "\($p.rate)/s open" end) +
    " | \(.rps) | " + (if .ratio_to_health < 0 then "-" else "\(.ratio_to_health)" end) +
    " | \(.p50_us) | \(.p90_us) | \(.p99_us) | \(.p999_us) | \($p.client_cores) / \($p.server_cores)" +
    " | \($p.client_us_per_call) / \($p.server_us_per_call) | " +
    (if (.errors | length) == 0 then "0" else (.errors | tostring) end) + " |"'
}

echo "## Get and Verify vs health Check (closed loop, 16 streams, $rounds interleaved rounds)"
echo
table_header
for run in $(seq 1 "$repeat"); do
  "${loadgen[@]}" --baseline --rounds "$rounds" --concurrency 16 --mix get=1,verify=1 |
    to_rows "$run"
done
echo
echo "## Signed Verify (include_attestation, Ed25519) vs health Check (16 streams, $rounds rounds)"
echo
table_header
"${loadgen[@]}" --baseline --rounds "$rounds" --concurrency 16 --mix verify=1 --attest | to_rows 1
echo
echo "## Latency at other loads"
echo
table_header
"${loadgen[@]}" --rounds 2 --concurrency 1 --mix verify=1 | to_rows 1
# 16 streams multiplexed on one connection, as one client channel would send them.
"${loadgen[@]}" --baseline --rounds 2 --concurrency 16 --connections 1 --mix verify=1 | to_rows 1
"${loadgen[@]}" --rounds 2 --rate 5000 --mix verify=1 | to_rows 1
"${loadgen[@]}" --rounds 2 --concurrency 1 --mix batch_verify=1 --batch_size 1000 | to_rows 1
"${loadgen[@]}" --rounds 2 --concurrency 4 --mix batch_verify=1 --batch_size 1000 | to_rows 1
echo
echo "## Micro-benchmarks"
echo
echo '```'
"$bin/bench/micro_benchmark" --benchmark_filter='-BM_StoredRegister' --benchmark_repetitions=3 \
  --benchmark_report_aggregates_only=true 2>/dev/null | grep -E '^(Benchmark|-|BM_.*_median)'
echo '```'
echo
echo "Load after the run: $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min)."
echo
scale="${BENCH_SCALE:-1000000}"
if ((scale == 0)); then exit 0; fi
# A second server on its own data dir: generate, import (durable commits), restart, read.
echo "## $scale registrants"
echo
kill -TERM "$server" && wait "$server" || true
server=""
big_address="127.0.0.1:$((${BENCH_PORT:-50851} + 1))"
cli=("$bin/client/physioreg" --address "$big_address" --token-file "$work/big/regulator.token")
rss_mib() { awk '/^VmRSS/ {printf "%d", $2 / 1024}' "/proc/$server/status"; }
t0=$(date +%s.%N)
"$bin/tools/generator/physioreg-generate" --count "$scale" --seed 1 >"$work/big.jsonl"
t1=$(date +%s.%N)
start_server "$work/big" "$big_address" "$work/big.log"
t2=$(date +%s.%N)
if ! "${cli[@]}" import "$work/big.jsonl" --import-id "bench-$scale" >"$work/import.log" 2>&1; then
  echo "the import failed:" >&2
  tail -n 5 "$work/import.log" >&2
  exit 1
fi
t3=$(date +%s.%N)
rss_import=$(rss_mib)
kill -TERM "$server" && wait "$server"
t4=$(date +%s.%N)
start_server "$work/big" "$big_address" "$work/big.log"
t5=$(date +%s.%N)
rss_serving=$(rss_mib)
wait_for_search_index "$work/big.log"
rss_index=$(rss_mib)
awk -v t0="$t0" -v t1="$t1" -v t2="$t2" -v t3="$t3" -v t4="$t4" -v t5="$t5" 'BEGIN {
  printf "- generate (physioreg-generate --count N --seed 1): %.1f s\n", t1 - t0
  printf "- import (physioreg import, durable commits, index kept in step): %.1f s (target <= 60 s)\n", t3 - t2
  printf "- clean stop: %.1f s; restart to SERVING (polled every 20 ms): %.2f s (target <= 3 s)\n", t4 - t3, t5 - t4
}'
echo "- server $(grep "search index ready" "$work/big.log" | sed 's/^physioregd: //') after the restart"
echo "- server RSS: ${rss_import} MiB after the import, ${rss_serving} MiB at SERVING after the restart," \
  "${rss_index} MiB once the search index is loaded (target <= 1024 MiB)"
echo "- last import line: $(tail -n 1 "$work/import.log")"
echo
# Every 10th registrant: ids and names spread over the register, and the loadgen parses
# 100,000 JSON lines instead of 1,000,000 (about 45 s) before each run.
awk 'NR % 10 == 1' "$work/big.jsonl" >"$work/sample.jsonl"
echo "### Reads at $scale registrants (16 streams unless stated; ids and names of every 10th registrant)"
echo
table_header
big_loadgen=("$bin/tools/loadgen/physioreg-loadgen" --address "$big_address" --duration_s "$duration"
             --warmup_s "$warmup" --server_pid "$server" --fail_on_error --ids_file "$work/sample.jsonl")
"${big_loadgen[@]}" --baseline --rounds 2 --concurrency 16 --mix get=1,verify=1 | to_rows 1
"${big_loadgen[@]}" --rounds 2 --concurrency 16 --mix search=1 | to_rows 1
"${big_loadgen[@]}" --rounds 2 --concurrency 1 --mix search=1 | to_rows 1
"${big_loadgen[@]}" --rounds 2 --concurrency 1 --mix batch_verify=1 --batch_size 1000 | to_rows 1
echo
# The read path alone (Registry::Verify / GetPractitioner over this RocksDB, no gRPC): the
# server stops first, as the benchmark opens the same data dir.
kill -TERM "$server" && wait "$server"
server=""
echo "### Read path at $scale registrants without gRPC (bench/micro_benchmark, BM_StoredRegister*)"
echo
echo '```'
PHYSIOREG_BENCH_DATA_DIR="$work/big" "$bin/bench/micro_benchmark" \
  --benchmark_filter='BM_StoredRegister' --benchmark_repetitions=3 \
  --benchmark_report_aggregates_only=true 2>/dev/null | grep -E '^(Benchmark|-|BM_.*_median)'
echo '```'
echo
echo "Load after the run: $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min)."
