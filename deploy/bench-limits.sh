#!/usr/bin/env bash
# What the rate limiter costs, and what it buys (issue 12; BENCHMARKS.md, "Rate limits").
# Release build; servers on fresh data dirs with the demo register, gRPC and HTTP on loopback
# ports they pick.
#
# 1. Cost on the hot path. Two servers at once: "off" (--rate_limits=false) and "on" (limits
#    on, every bucket so large that nothing is refused: each call still finds its caller's
#    bucket, locks its shard and takes a token). h2load drives, in interleaved rounds,
#    gRPC GetPractitioner and HTTP GET /v1/practitioners/{id} against each; req/s medians and
#    the median of the per-round on/off ratios. Target: on >= 0.95 of off.
# 2. One abusive client. A server with the real default limits. Well-behaved clients (a
#    CLINIC key, physioreg-loadgen open loop at BENCH_LIMITS_RATE Verify calls a second) are
#    measured alone ("quiet") and then while an anonymous client floods searches at full
#    speed (closed loop, 16 streams); the same again on a server with --rate_limits=false.
#    Target: Verify p99 under abuse within 2x of the quiet value with the limits on.
# Knobs (environment):
#   BENCH_LIMITS_DURATION_S (5)  measured seconds per phase    BENCH_LIMITS_ROUNDS (3) rounds
#   BENCH_LIMITS_CONNECTIONS (16) h2load connections           BENCH_LIMITS_RATE (200) Verify/s
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh
if command -v ccache >/dev/null; then export PHYSIOREG_LAUNCHER=ccache; fi
cmake --preset release >/dev/null
# The machine is shared: never more than two compile jobs.
cmake --build --preset release -j2 --target physioregd physioreg physioreg-demo physioreg-loadgen \
  >/dev/null

bin=build/release
duration="${BENCH_LIMITS_DURATION_S:-5}"
rounds="${BENCH_LIMITS_ROUNDS:-3}"
connections="${BENCH_LIMITS_CONNECTIONS:-16}"
rate="${BENCH_LIMITS_RATE:-200}"
id=PT-100331
work="$(mktemp -d /tmp/physioreg-bench-limits-XXXXXX)"
servers=()
cleanup() {
  for pid in "${servers[@]}"; do kill -TERM "$pid" 2>/dev/null && wait "$pid" || true; done
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "bench-limits: $*" >&2
  exit 1
}

# start NAME FLAGS...: physioregd on $work/NAME with the demo register; sets grpc_NAME,
# http_NAME and pid_NAME.
start() {
  local name=$1
  shift
  "$bin/service/physioregd" --data_dir="$work/$name" --grpc_address=127.0.0.1:0 \
    --http_address=127.0.0.1:0 "$@" >"$work/$name.log" 2>&1 &
  local pid=$! grpc="" http=""
  servers+=("$pid")
  for _ in $(seq 1 1500); do
    grpc=$(sed -n 's/^physioregd: serving gRPC on \([^ ]*\).*/\1/p' "$work/$name.log")
    http=$(sed -n 's|^physioregd: serving HTTP on http://\([^/]*\)/.*|\1|p' "$work/$name.log")
    if [ -n "$grpc" ] && [ -n "$http" ]; then break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.02
  done
  [ -n "$grpc" ] && [ -n "$http" ] || fail "physioregd $name did not start: $(cat "$work/$name.log")"
  deploy/demo/load.sh "$bin" "$grpc" "$work/$name/regulator.token" "$work/$name.jsonl" >/dev/null
  for _ in $(seq 1 1200); do
    grep -q "search index ready" "$work/$name.log" && break
    sleep 0.1
  done
  printf -v "grpc_$name" '%s' "$grpc"
  printf -v "http_$name" '%s' "$http"
  printf -v "pid_$name" '%s' "$pid"
}

# --- 1. cost on the hot path -------------------------------------------------------------
huge=1000000000:1000000000
start off --rate_limits=false
start on --rate_limits=true --rate_limit_anonymous=$huge --rate_limit_clinic=$huge \
  --rate_limit_regulator=$huge --rate_limit_regulator_writes=$huge

# A gRPC frame of GetPractitionerRequest{registration_id = $id}: no compression, length, message.
printf "$(printf '\\x00\\x00\\x00\\x00\\x%02x\\x0a\\x%02x' $((${#id} + 2)) ${#id})%s" "$id" >"$work/get.bin"
# The limiter must be on, and must not refuse, on "on"; it must answer with its headers.
curl -sSf -D "$work/on.head" -o /dev/null "http://$http_on/v1/practitioners/$id" ||
  fail "HTTP Get on the limited server failed"
grep -qi '^ratelimit-policy:' "$work/on.head" || fail "no RateLimit-Policy from the limited server"

results="$work/results.tsv"  # round server protocol req/s
run_h2load() {  # ROUND SERVER PROTOCOL
  local grpc_var="grpc_$2" http_var="http_$2" args out="$work/h2load.out"
  if [ "$3" = grpc ]; then
    args=(-d "$work/get.bin" -H 'content-type: application/grpc' -H 'te: trailers'
          "http://${!grpc_var}/physioreg.v1.Registry/GetPractitioner")
  else
    args=(--h1 "http://${!http_var}/v1/practitioners/$id")
  fi
  h2load -n 2000 -c "$connections" -m 1 -t 1 "${args[@]}" >"$out" 2>&1 || fail "h2load: $(cat "$out")"
  h2load -D "$duration" -c "$connections" -m 1 -t 1 "${args[@]}" >"$out" 2>&1 || fail "h2load: $(cat "$out")"
  grep -Eq '^requests: .* 0 failed, 0 errored, 0 timeout' "$out" || fail "$2 $3: $(grep '^requests' "$out")"
  grep -Eq '^status codes: [0-9]+ 2xx, 0 3xx, 0 4xx, 0 5xx' "$out" || fail "$2 $3: $(grep '^status' "$out")"
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" \
    "$(sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p' "$out")" >>"$results"
}
for round in $(seq 1 "$rounds"); do
  for protocol in grpc http; do
    # Alternate which server goes first, so neither always follows the other.
    if ((round % 2)); then order=(off on); else order=(on off); fi
    for server in "${order[@]}"; do run_h2load "$round" "$server" "$protocol"; done
  done
done
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
echo "## Rate limits ($(date -u +%Y-%m-%d\ %H:%M) UTC, commit $(git rev-parse --short HEAD))"
echo
echo "- $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); $(. /etc/os-release && echo "$PRETTY_NAME"); $(h2load --version | head -n1)"
echo "- release build, demo register; 1-minute load average at the end: $(cut -d' ' -f1 /proc/loadavg) (2 = both cores busy)"
echo
echo "### Cost: Get with the limiter off and on (nothing refused), $connections connections, $rounds interleaved rounds of $duration s"
echo
echo "| call | off req/s | on req/s | on ÷ off (median of rounds) |"
echo "|---|---|---|---|"
for protocol in grpc http; do
  off=$(awk -v p="$protocol" '$2 == "off" && $3 == p {print $4}' "$results" | median)
  on=$(awk -v p="$protocol" '$2 == "on" && $3 == p {print $4}' "$results" | median)
  ratio=$(awk -v p="$protocol" '$3 == p && $2 == "off" {o[$1] = $4} $3 == p && $2 == "on" {n[$1] = $4}
    END {for (r in o) if (o[r] > 0) print n[r] / o[r]}' "$results" | median)
  label=$([ "$protocol" = grpc ] && echo "gRPC GetPractitioner" || echo "HTTP GET /v1/practitioners/{id}")
  printf '| %s | %.0f | %.0f | %.3f |\n' "$label" "$off" "$on" "$ratio"
done
echo
echo "Target: on ≥ 0.95 of off."
for pid in "${servers[@]}"; do kill -TERM "$pid" 2>/dev/null && wait "$pid" || true; done
servers=()

# --- 2. one abusive client ---------------------------------------------------------------
p99_row() {  # LABEL JSON_FILE: the Verify row of the well-behaved run
  grep '^JSON ' "$2" | cut -c6- | jq -r --arg name "$1" '.rpcs[] | select(.rpc == "verify") |
    "| \($name) | \(.rps) | \(.p50_us) | \(.p99_us) | \(.errors | length) |"'
}
p99_of() { grep '^JSON ' "$1" | cut -c6- | jq -r '.rpcs[] | select(.rpc == "verify") | .p99_us'; }
echo
echo "### One abusive client: Verify of well-behaved clients (CLINIC key, $rate calls/s open loop, $duration s) while an anonymous client floods searches (16 streams, closed loop)"
echo
echo "| server | phase | Verify/s | p50 µs | p99 µs | errors |"
echo "|---|---|---|---|---|---|"
for mode in limited unlimited; do
  if [ "$mode" = limited ]; then start "$mode" --rate_limits=true; else start "$mode" --rate_limits=false; fi
  grpc_var="grpc_$mode"
  address=${!grpc_var}
  "$bin/client/physioreg" --address "$address" --token-file "$work/$mode/regulator.token" --json \
    keys create --role CLINIC --description "bench-limits" | jq -r '.secret' >"$work/$mode.clinic"
  [ -s "$work/$mode.clinic" ] || fail "no CLINIC key made"
  good=("$bin/tools/loadgen/physioreg-loadgen" --address "$address" --token_file "$work/$mode.clinic"
        --duration_s "$duration" --warmup_s 1 --rate "$rate" --mix verify=1 --fail_on_error
        --ids_file "$work/$mode.jsonl")
  "${good[@]}" >"$work/$mode.quiet" 2>&1 || fail "quiet run failed: $(tail -n 5 "$work/$mode.quiet")"
  "$bin/tools/loadgen/physioreg-loadgen" --address "$address" --duration_s $((duration + 4)) \
    --warmup_s 0 --concurrency 16 --mix search=1 --ids_file "$work/$mode.jsonl" \
    >"$work/$mode.abuser" 2>&1 &
  abuser=$!
  sleep 1
  "${good[@]}" >"$work/$mode.abused" 2>&1 || fail "run under abuse failed: $(tail -n 5 "$work/$mode.abused")"
  wait "$abuser" || true
  p99_row "$mode" "$work/$mode.quiet" | sed "s/^| $mode |/| $mode | quiet |/"
  p99_row "$mode" "$work/$mode.abused" | sed "s/^| $mode |/| $mode | abusive client |/"
  abuser_line=$(grep '^JSON ' "$work/$mode.abuser" | cut -c6- | jq -r '.rpcs[] | select(.rpc == "search") |
    "searches answered \(.rps)/s; errors \(.errors | tostring)"')
  echo "| $mode | (the abuser) | $abuser_line | | | |"
  ratio=$(awk -v a="$(p99_of "$work/$mode.abused")" -v q="$(p99_of "$work/$mode.quiet")" 'BEGIN {printf "%.2f", a / q}')
  echo "| $mode | p99 abused ÷ quiet | $ratio | | | |"
  for pid in "${servers[@]}"; do kill -TERM "$pid" 2>/dev/null && wait "$pid" || true; done
  servers=()
done
echo
echo "Target: with limits on, p99 under abuse ≤ 2× quiet. Load at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
