#!/usr/bin/env bash
# HTTP gateway vs gRPC, one server, one run (issue 10; BENCHMARKS.md, "HTTP gateway vs gRPC").
# Release build; physioregd on a fresh data dir with the demo register, gRPC and HTTP on
# loopback ports it picks; h2load (lighter than the server) drives, in interleaved rounds:
#   health      grpc.health.v1.Health/Check                       (gRPC, the yardstick)
#   grpc get    physioreg.v1.Registry/GetPractitioner, one id
#   http get    GET /v1/practitioners/{id}, the same id
#   http get*   GET /v1/practitioners/{id} over all 200 demo ids (h2load -i)
#   grpc search physioreg.v1.Registry/SearchPractitioners, name + DRY_NEEDLING
#   http search GET /v1/practitioners?name=…&activity=DRY_NEEDLING, the same query
#   http healthz GET /healthz (the gateway's own floor)
# gRPC over h2c with one stream per connection, HTTP/1.1 keep-alive: the same number of
# connections and requests in flight for both. Every phase is warmed up first (not measured).
# Per phase and round: req/s, p50/p99 from h2load's per-request log, server CPU per request
# (utime+stime of physioregd over the measured run ÷ requests answered) and the 1-minute load.
# Prints markdown: medians over the rounds; ratios are medians of the per-round ratios.
# Knobs (environment):
#   BENCH_HTTP_DURATION_S (5)  measured seconds per phase and round
#   BENCH_HTTP_ROUNDS (3)      interleaved rounds
#   BENCH_HTTP_CONNECTIONS (16) connections (= requests in flight)
#   BENCH_HTTP_ID (PT-100331)  BENCH_HTTP_NAME (helene)   what Get and search ask for
#   BENCH_HTTP_KEEP_RAW (unset) a directory to copy the raw per-round results into
#   BENCH_HTTP_PROFILE (unset)  1: after the rounds, one more (unmeasured) HTTP Get phase under
#                               `perf record --call-graph dwarf`, and the server's hot spots
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh
if command -v ccache >/dev/null; then export PHYSIOREG_LAUNCHER=ccache; fi
cmake --preset release >/dev/null
# The machine is shared: never more than two compile jobs.
cmake --build --preset release -j2 --target physioregd physioreg physioreg-demo >/dev/null

bin=build/release
duration="${BENCH_HTTP_DURATION_S:-5}"
rounds="${BENCH_HTTP_ROUNDS:-3}"
connections="${BENCH_HTTP_CONNECTIONS:-16}"
id="${BENCH_HTTP_ID:-PT-100331}"
name="${BENCH_HTTP_NAME:-helene}"
work="$(mktemp -d /tmp/physioreg-bench-http-XXXXXX)"
server=""
cleanup() {
  if [ -n "$server" ]; then kill -TERM "$server" 2>/dev/null && wait "$server" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "bench-http: $*" >&2
  exit 1
}

# --- server with the demo register -------------------------------------------------------
# Limits off: h2load sends everything from one address (deploy/bench-limits.sh measures them).
"$bin/service/physioregd" --data_dir="$work/data" --grpc_address=127.0.0.1:0 \
  --http_address=127.0.0.1:0 --rate_limits=false >"$work/server.log" 2>&1 &
server=$!
grpc="" http=""
for _ in $(seq 1 1500); do
  grpc=$(sed -n 's/^physioregd: serving gRPC on \([^ ]*\).*/\1/p' "$work/server.log")
  http=$(sed -n 's|^physioregd: serving HTTP on http://\([^/]*\)/.*|\1|p' "$work/server.log")
  if [ -n "$grpc" ] && [ -n "$http" ]; then break; fi
  kill -0 "$server" 2>/dev/null || break
  sleep 0.02
done
if [ -z "$grpc" ] || [ -z "$http" ]; then
  cat "$work/server.log" >&2
  fail "physioregd did not print both addresses"
fi
deploy/demo/load.sh "$bin" "$grpc" "$work/data/regulator.token" "$work/demo.jsonl" >/dev/null
for _ in $(seq 1 1200); do
  grep -q "search index ready" "$work/server.log" && break
  sleep 0.1
done
grep -q "search index ready" "$work/server.log" || fail "the search index did not load"

# --- requests ----------------------------------------------------------------------------
# gRPC frames by hand: 1 byte "not compressed", 4 bytes big-endian length, the message.
hex_of() { printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n'; }
string_field() {  # TAG_BYTE_HEX STRING (shorter than 128 bytes: one-byte length)
  local bytes=${#2}
  [ "$bytes" -lt 128 ] || fail "string too long for a one-byte length: $2"
  printf '%s%02x%s' "$1" "$bytes" "$(hex_of "$2")"
}
write_frame() {  # FILE PAYLOAD_HEX
  local n=$((${#2} / 2))
  local header
  header=$(printf '00%02x%02x%02x%02x' $((n >> 24 & 255)) $((n >> 16 & 255)) $((n >> 8 & 255)) $((n & 255)))
  printf '%b' "$(printf '%s%s' "$header" "$2" | sed 's/../\\x&/g')" >"$1"
}
write_frame "$work/health.bin" ""
# GetPractitionerRequest{registration_id(1)}
write_frame "$work/get.bin" "$(string_field 0a "$id")"
# SearchPractitionersRequest{name(1), activity(4) = DRY_NEEDLING (1)}
write_frame "$work/search.bin" "$(string_field 0a "$name")2001"
health_path=/grpc.health.v1.Health/Check
get_path=/physioreg.v1.Registry/GetPractitioner
search_path=/physioreg.v1.Registry/SearchPractitioners
http_get="http://$http/v1/practitioners/$id"
http_search="http://$http/v1/practitioners?name=$name&activity=DRY_NEEDLING"
jq -r --arg base "http://$http" '$base + "/v1/practitioners/" + .registrationId' \
  "$work/demo.jsonl" >"$work/ids.txt"
[ "$(wc -l <"$work/ids.txt")" -ge 100 ] || fail "fewer than 100 ids in the demo register"

# Check once that each request is answered as meant: grpc-status 0 with a message, the JSON
# naming the registrant, a search with results.
grpc_check() {  # PATH FRAME_FILE EXPECTED_BYTES_IN_ANSWER(or empty)
  curl -sS --http2-prior-knowledge -H 'content-type: application/grpc' -H 'te: trailers' \
    --data-binary "@$2" -D "$work/check.head" -o "$work/check.body" "http://$grpc$1"
  grep -qi '^grpc-status: 0' "$work/check.head" || fail "$1 did not answer grpc-status 0"
  [ "$(wc -c <"$work/check.body")" -gt 5 ] || fail "$1 answered no message"
  if [ -n "$3" ]; then grep -qa -- "$3" "$work/check.body" || fail "$1: no '$3' in the answer"; fi
}
grpc_check "$health_path" "$work/health.bin" ""
grpc_check "$get_path" "$work/get.bin" "$id"
grpc_check "$search_path" "$work/search.bin" "$id"
curl -sSf "$http_get" | jq -e --arg id "$id" '.registrationId == $id' >/dev/null ||
  fail "HTTP Get did not answer $id"
curl -sSf "$http_search" | jq -e --arg id "$id" \
  '(.totalSize | tonumber) > 0 and any(.practitioners[]; .registrationId == $id)' >/dev/null ||
  fail "HTTP search did not find $id"
curl -sSf "http://$http/healthz" >/dev/null || fail "/healthz did not answer 200"

# --- phases ------------------------------------------------------------------------------
# phase_args PHASE: sets args, h2load's arguments for it.
grpc_args() {  # FRAME_FILE PATH
  args=(-d "$1" -H 'content-type: application/grpc' -H 'te: trailers' "http://$grpc$2")
}
phase_args() {
  case "$1" in
    health) grpc_args "$work/health.bin" "$health_path" ;;
    grpc-get) grpc_args "$work/get.bin" "$get_path" ;;
    http-get) args=(--h1 "$http_get") ;;
    http-get-ids) args=(--h1 -i "$work/ids.txt") ;;
    grpc-search) grpc_args "$work/search.bin" "$search_path" ;;
    http-search) args=(--h1 "$http_search") ;;
    http-healthz) args=(--h1 "http://$http/healthz") ;;
  esac
}
phases=(health grpc-get http-get http-get-ids grpc-search http-search http-healthz)
# Server CPU in nanoseconds: utime+stime of the whole process (threads that have ended
# included, which summing /proc/PID/task/*/schedstat would miss: gRPC's thread pool grows and
# shrinks), in clock ticks of 10 ms: about 1 % of a 5 s phase's CPU.
ticks_per_s=$(getconf CLK_TCK)
cpu_ns() { awk -v hz="$ticks_per_s" '{printf "%.0f\n", ($14 + $15) * 1e9 / hz}' "/proc/$server/stat"; }
results="$work/results.tsv"  # round phase req/s p50_us p99_us cpu_us_per_req load1

run_phase() {  # ROUND PHASE
  local args=() out
  phase_args "$2"
  out="$work/h2load.out"
  # Warm-up, not measured; also checks that every answer is a 2xx (gRPC: with a message;
  # an error would come as trailers only, with no data).
  h2load -n 2000 -c "$connections" -m 1 -t 1 "${args[@]}" >"$out" 2>&1 || fail "h2load failed: $(cat "$out")"
  grep -q '^status codes: 2000 2xx' "$out" || fail "$2: not all 2xx: $(grep -E '^(requests|status)' "$out")"
  case "$2" in
    health | grpc-*)
      local data
      data=$(sed -n 's/^traffic: .* headers .*, [^ ]* (\([0-9]*\)) data$/\1/p' "$out")
      [ "${data:-0}" -ge $((2000 * 6)) ] || fail "$2: gRPC answers without a message ($data bytes)"
      ;;
  esac
  local load before after
  load=$(cut -d' ' -f1 /proc/loadavg)
  rm -f "$work/requests.tsv"  # h2load appends to its log
  before=$(cpu_ns)
  h2load -D "$duration" -c "$connections" -m 1 -t 1 --log-file="$work/requests.tsv" "${args[@]}" \
    >"$out" 2>&1 || fail "h2load failed: $(cat "$out")"
  after=$(cpu_ns)
  grep -Eq '^requests: .* 0 failed, 0 errored, 0 timeout' "$out" ||
    fail "$2: failed requests: $(grep '^requests' "$out")"
  if awk '$2 < 200 || $2 > 299 {bad = 1} END {exit !bad}' "$work/requests.tsv"; then
    fail "$2: an answer was not 2xx"
  fi
  local rps
  rps=$(sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p' "$out")
  sort -n -k3,3 "$work/requests.tsv" | awk -v r="$1" -v p="$2" -v rps="$rps" -v load="$load" \
    -v ns=$((after - before)) '
    { lat[NR] = $3 }
    END {
      if (NR == 0) exit 1
      i50 = int(NR * 0.50); if (i50 < 1) i50 = 1
      i99 = int(NR * 0.99); if (i99 < 1) i99 = 1
      printf "%d\t%s\t%s\t%d\t%d\t%.1f\t%s\n", r, p, rps, lat[i50], lat[i99], ns / 1000 / NR, load
    }' >>"$results"
}

for round in $(seq 1 "$rounds"); do
  for phase in "${phases[@]}"; do run_phase "$round" "$phase"; done
done
if [ -n "${BENCH_HTTP_KEEP_RAW:-}" ]; then
  mkdir -p "$BENCH_HTTP_KEEP_RAW" && cp "$results" "$BENCH_HTTP_KEEP_RAW/"
fi

# --- report ------------------------------------------------------------------------------
# median PHASE COLUMN (3 req/s, 4 p50, 5 p99, 6 cpu)
median_of() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
median() { awk -v p="$1" -v c="$2" '$2 == p {print $c}' "$results" | median_of; }
# ratio_median A B COLUMN: median over rounds of A's value ÷ B's value in the same round
ratio_median() {
  awk -v a="$1" -v b="$2" -v c="$3" '
    $2 == a {x[$1] = $c} $2 == b {y[$1] = $c}
    END {for (r in x) if (y[r] > 0) print x[r] / y[r]}' "$results" | median_of
}
load_range() { awk '{print $7}' "$results" | sort -g | sed -n '1p;$p' | paste -sd' ' | awk '{print $1 "–" $2}'; }
peer() {
  case "$1" in
    http-get | http-get-ids) echo grpc-get ;;
    http-search) echo grpc-search ;;
    http-healthz) echo health ;;
    *) echo "" ;;
  esac
}
label() {
  case "$1" in
    health) echo "gRPC health Check" ;;
    grpc-get) echo "gRPC GetPractitioner ($id)" ;;
    http-get) echo "HTTP GET /v1/practitioners/$id" ;;
    http-get-ids) echo "HTTP GET /v1/practitioners/{id}, 200 ids" ;;
    grpc-search) echo "gRPC SearchPractitioners ($name, DRY_NEEDLING)" ;;
    http-search) echo "HTTP GET /v1/practitioners?name=$name&activity=DRY_NEEDLING" ;;
    http-healthz) echo "HTTP GET /healthz" ;;
  esac
}

echo "## HTTP gateway vs gRPC ($(date -u +%Y-%m-%d\ %H:%M) UTC, commit $(git rev-parse --short HEAD))"
echo
echo "- $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); $(. /etc/os-release && echo "$PRETTY_NAME"); $(h2load --version | head -n1)"
echo "- release build; demo register (200 registrants); $connections connections, 1 request in flight each (gRPC over h2c, HTTP/1.1 keep-alive), h2load -t 1; $rounds interleaved rounds of $duration s per phase after a 2,000-request warm-up"
echo "- 1-minute load average during the phases: $(load_range) (2 = both cores busy; server and h2load share them)"
echo
echo "| phase | req/s | ÷ gRPC same call | ÷ health Check | server CPU µs/req | CPU ÷ gRPC same call | p50 µs | p99 µs |"
echo "|---|---|---|---|---|---|---|---|"
for phase in "${phases[@]}"; do
  p=$(peer "$phase")
  if [ -n "$p" ]; then
    vs_rps=$(printf '%.2f' "$(ratio_median "$phase" "$p" 3)")
    vs_cpu=$(printf '%.2f' "$(ratio_median "$phase" "$p" 6)")
  else
    vs_rps="—" vs_cpu="—"
  fi
  printf '| %s | %s | %s | %.2f | %.1f | %s | %s | %s |\n' "$(label "$phase")" \
    "$(printf '%.0f' "$(median "$phase" 3)")" "$vs_rps" "$(ratio_median "$phase" health 3)" \
    "$(median "$phase" 6)" "$vs_cpu" "$(printf '%.0f' "$(median "$phase" 4)")" \
    "$(printf '%.0f' "$(median "$phase" 5)")"
done
echo
echo "Target (PRODUCT.md): HTTP Get ≥ 0.80 of gRPC Get req/s."

if [ -n "${BENCH_HTTP_PROFILE:-}" ]; then
  command -v perf >/dev/null || fail "BENCH_HTTP_PROFILE needs perf (Debian: linux-perf)"
  perf record -q -F 499 --call-graph dwarf,16384 -p "$server" -o "$work/perf.data" \
    -- sleep "$((duration + 1))" >"$work/perf.log" 2>&1 &
  recorder=$!
  sleep 0.5
  h2load --h1 -D "$duration" -c "$connections" -m 1 -t 1 "$http_get" >/dev/null 2>&1
  wait "$recorder" || fail "perf record failed: $(cat "$work/perf.log")"
  echo
  echo "Server CPU during HTTP Get, share of the samples spent in and under each function (perf, call graphs by DWARF):"
  echo
  echo "| function | share |"
  echo "|---|---|"
  perf report -i "$work/perf.data" --children --sort symbol -g none --stdio 2>/dev/null |
    awk -F'  +' '/^ +[0-9.]+%/ {
        sym = $0; sub(/^ +[0-9.]+% +[0-9.]+% +\[[.k]\] /, "", sym); sub(/[[:space:]-]+$/, "", sym)
        gsub(/\(anonymous namespace\)::/, "", sym)
        if (sym ~ /^(physioreg::|google::protobuf::util::(MessageToJsonString|converter::ProtoStreamObjectSource::(RenderList|IsMap))|google::protobuf::util::converter::JsonObjectWriter::RenderDouble|__libc_sendmsg|__libc_recvmsg|epoll_wait|operator new|boost::beast::http::basic_parser<true>::put)/ && !seen[sym]++) {
          sub(/%.*/, "%", $0); sub(/^ +/, "", $0)
          if (sym ~ /lambda/ || $0 + 0 < 1) next
          printf "| `%s` | %s |\n", substr(sym, 1, 90), $0
        }
      }' | head -n 25
fi
