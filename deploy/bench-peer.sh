#!/usr/bin/env bash
# physioreg next to PostgreSQL 15, the design a regulator's DBA would otherwise deploy, on the
# same generated register, in one run on this machine (issue 13; BENCHMARKS.md, "physioreg vs
# PostgreSQL 15 (issue 13)"). Prints markdown: one table physioreg | PostgreSQL 15 | ratio per
# axis, then the raw numbers and the exact commands.
#   register   physioreg-generate --count N --seed 1 as JSONL (our import) and --format csv
#              (COPY; tools/generator/csv.h: names in the server's own normalized forms, the
#              dry-needling days as a datemultirange computed with the server's verification
#              rule, the public record as jsonb)
#   bulk load  physioreg import (durable commits, search index in step) on a fresh physioregd
#              vs COPY + primary key + GIN (the server's name tokens as tsvector lexemes, for
#              prefix tsquery `:*`) + btree (family_norm, given_norm, registration_id) on a fresh
#              cluster (fsync on, synchronous_commit on)
#   lookups    h2load GetPractitioner of one id and grpc.health.v1 Check, 16 connections, one
#              request in flight each, vs pgbench -M prepared SELECT record by primary key, 16
#              clients, in interleaved rounds; then, once the server has settled,
#              physioreg-loadgen for server CPU per call over random ids (8 interleaved rounds
#              of 3 s; the median of each round's ratio to health Check)
#   search     the same 500 "<given prefix> <family prefix>" queries with the dry-needling
#              filter: physioreg's page and total_size vs PostgreSQL's page (20 rows in the
#              btree's order) and exact count(*), literal SQL through psql with \timing;
#              every query's count and page compared
#   restart    physioregd start to its first successful search vs PostgreSQL start to its
#              first query
# Knobs (environment):
#   BENCH_PEER_COUNT (1000000)     registrants (100000 for a quick run)
#   BENCH_PEER_DURATION_S (5)      measured seconds per lookup phase and round
#   BENCH_PEER_ROUNDS (3)          interleaved lookup rounds
#   BENCH_PEER_QUERIES (500)       search queries
#   BENCH_PEER_PG_PORT (55432)     PostgreSQL's port on 127.0.0.1 (physioregd picks its own)
#   BENCH_PEER_SHARED_BUFFERS (256MB)  PostgreSQL's shared_buffers (a 1 GiB RAM budget: 1/4)
#   BENCH_PEER_KEEP (unset)        a directory to copy the raw results into
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh
# PostgreSQL 15 (server, and pgbench from its client package) and GNU time (the clients' CPU)
# only for this benchmark.
pg_packages=()
for p in postgresql-15 postgresql-client-15 time; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || pg_packages+=("$p")
done
if ((${#pg_packages[@]})); then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${pg_packages[@]}"
fi
if command -v ccache >/dev/null; then export PHYSIOREG_LAUNCHER=ccache; fi
cmake --preset release >/dev/null
# The machine is shared: never more than two compile jobs.
cmake --build --preset release -j2 --target physioregd physioreg physioreg-generate \
  physioreg-loadgen >/dev/null

bin=build/release
# The commit built (HEAD may move while the benchmark runs).
commit="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . 2>/dev/null || echo '+local changes')"
pgbin=/usr/lib/postgresql/15/bin
count="${BENCH_PEER_COUNT:-1000000}"
duration="${BENCH_PEER_DURATION_S:-5}"
rounds="${BENCH_PEER_ROUNDS:-3}"
n_queries="${BENCH_PEER_QUERIES:-500}"
pg_port="${BENCH_PEER_PG_PORT:-55432}"
shared_buffers="${BENCH_PEER_SHARED_BUFFERS:-256MB}"
connections=16
work="$(mktemp -d /tmp/physioreg-bench-peer-XXXXXX)"
chmod 755 "$work"
server=""
# PostgreSQL's own directory (its data, log and socket), owned by the user it runs as.
pg_dir="$work/pg"
pg_data="$pg_dir/data"
mkdir -p "$pg_dir"
[ "$(id -u)" -ne 0 ] || chown postgres: "$pg_dir"
pg_up=""
as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
cleanup() {
  if [ -n "$server" ]; then kill -TERM "$server" 2>/dev/null && wait "$server" || true; fi
  if [ -n "$pg_up" ]; then as_postgres "$pgbin/pg_ctl" -D "$pg_data" -m immediate stop >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "bench-peer: $*" >&2
  exit 1
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", b - a}'; }
load1() { cut -d' ' -f1 /proc/loadavg; }
# CPU seconds, which a busy machine stretches much less than wall time: a process's own
# (utime+stime), PostgreSQL's (the postmaster's own and its ended children's, plus every
# running child's), and a command's under GNU time (user+system, written to FILE).
hz=$(getconf CLK_TCK)
proc_cpu() { awk -v hz="$hz" '{printf "%.2f\n", ($14 + $15) / hz}' "/proc/$1/stat"; }
pg_cpu() {
  local pm
  pm=$(head -n1 "$pg_data/postmaster.pid")
  { awk '{print $14 + $15 + $16 + $17}' "/proc/$pm/stat"
    for c in $(pgrep -P "$pm"); do awk '{print $14 + $15}' "/proc/$c/stat" 2>/dev/null || true; done
  } | awk -v hz="$hz" '{t += $1} END {printf "%.2f\n", t / hz}'
}
timed() { /usr/bin/time -f '%U %S' -o "$1.cpu" "${@:2}"; }
cpu_of_timed() { awk '{printf "%.2f\n", $1 + $2}' "$1.cpu"; }
minus() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a - b}'; }
plus() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a + b}'; }
loads="$work/loads"  # every 1-minute load average sampled between phases
sample_load() { load1 >>"$loads"; }
sample_load
raw="$work/raw.md"  # the raw numbers, printed after the table
: >"$raw"
note() { echo "$*" >>"$raw"; }
# Time zone of physioregd's "today" (its --timezone default): the SQL filter uses the same day.
today=$(TZ=America/Edmonton date +%F)

# --- the register --------------------------------------------------------------------------
generate=("$bin/tools/generator/physioreg-generate" --count "$count" --seed 1)
# Both at once (nothing is measured yet; each is one process).
t0=$(now)
"${generate[@]}" >"$work/big.jsonl" &
jsonl_pid=$!
"${generate[@]}" --format csv >"$work/big.csv"
wait "$jsonl_pid" || fail "physioreg-generate (JSONL) failed"
t1=$(now)
chmod 644 "$work/big.csv"
note "- generate JSONL ($(du -m "$work/big.jsonl" | cut -f1) MiB) and CSV ($(du -m "$work/big.csv" | cut -f1) MiB) side by side: $(elapsed "$t0" "$t1") s"
# The search queries: the generator's query set when it has one (helper "search":
# --queries N, one normalized "<given prefix> <family prefix>" per line); else the same kind
# made here from every (count / N)th registrant of the CSV whose normalized names are ASCII
# letters: 2–4 letters of the first word of the given name, 3–5 of the family name's.
query_source="physioreg-generate --count $count --seed 1 --queries $n_queries"
if ! "${generate[@]}" --queries "$n_queries" >"$work/queries.txt" 2>/dev/null ||
  [ ! -s "$work/queries.txt" ]; then
  query_source="every $((count / n_queries))th registrant of the CSV (fallback: the generator has no --queries)"
  awk -F, -v step=$((count / n_queries)) -v n="$n_queries" '
    NR > 1 && (NR - 2) % step == 0 && $4 ~ /^[a-z]/ && $5 ~ /^[a-z]/ {
      split($4, g, " "); split($5, f, " ")
      if (g[1] !~ /^[a-z]+$/ || f[1] !~ /^[a-z]+$/) next
      k = NR % 3; gl = 2 + k; fl = 3 + (NR % 3)
      if (gl > length(g[1])) gl = length(g[1]); if (fl > length(f[1])) fl = length(f[1])
      print substr(g[1], 1, gl) " " substr(f[1], 1, fl)
      if (++printed == n) exit
    }' "$work/big.csv" >"$work/queries.txt"
fi
n_queries=$(wc -l <"$work/queries.txt")
((n_queries > 0)) || fail "no search queries"

# --- physioreg: start, import -----------------------------------------------------------------
start_server() {  # LOG: starts physioregd on $work/data, sets server, grpc, http
  "$bin/service/physioregd" --data_dir="$work/data" --grpc_address=127.0.0.1:0 \
    --http_address=127.0.0.1:0 --rate_limits=false >"$1" 2>&1 &
  server=$!
  grpc="" http=""
  for _ in $(seq 1 3000); do
    grpc=$(sed -n 's/^physioregd: serving gRPC on \([^ ]*\).*/\1/p' "$1")
    http=$(sed -n 's|^physioregd: serving HTTP on http://\([^/]*\)/.*|\1|p' "$1")
    if [ -n "$grpc" ] && [ -n "$http" ]; then return 0; fi
    kill -0 "$server" 2>/dev/null || break
    sleep 0.01
  done
  cat "$1" >&2
  fail "physioregd did not print both addresses"
}
stop_server() {
  kill -TERM "$server" && wait "$server" || true
  server=""
}
uri() { jq -rn --arg v "$1" '$v | @uri'; }
search_url() { echo "http://$http/v1/practitioners?name=$(uri "$1")&activity=DRY_NEEDLING&pageSize=20"; }
first_query=$(head -n1 "$work/queries.txt")

start_server "$work/server.log"
cli=("$bin/client/physioreg" --address "$grpc" --token-file "$work/data/regulator.token")
import_cmd="physioreg import big.jsonl --import-id bench-peer"
sample_load
t0=$(now)
c0=$(proc_cpu "$server")
timed "$work/import" "${cli[@]}" import "$work/big.jsonl" --import-id bench-peer >"$work/import.log" 2>&1 ||
  fail "the import failed: $(tail -n 5 "$work/import.log")"
t1=$(now)
import_s=$(elapsed "$t0" "$t1")
import_server_cpu=$(minus "$(proc_cpu "$server")" "$c0")
import_client_cpu=$(cpu_of_timed "$work/import")
import_cpu=$(plus "$import_server_cpu" "$import_client_cpu")
import_rss=$(awk '/^VmRSS/ {printf "%d", $2 / 1024}' "/proc/$server/status")
note "- physioreg import: $import_s s, CPU $import_cpu s (server $import_server_cpu s, CLI $import_client_cpu s); server RSS after it $import_rss MiB; last CLI line: $(tail -n 1 "$work/import.log")"

# --- PostgreSQL: fresh cluster, COPY, indexes -----------------------------------------------
as_postgres "$pgbin/initdb" -D "$pg_data" -U postgres --auth=trust --locale=C --encoding=UTF8 \
  >"$work/initdb.log" 2>&1 || fail "initdb failed: $(tail -n 5 "$work/initdb.log")"
cat >>"$pg_data/postgresql.conf" <<EOF
# bench-peer: durable like physioreg's import, sized for a 1 GiB RAM budget.
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$pg_dir'
fsync = on
synchronous_commit = on
full_page_writes = on
shared_buffers = $shared_buffers
effective_cache_size = 768MB
work_mem = 16MB
maintenance_work_mem = 256MB
max_wal_size = 4GB
max_connections = 40
jit = off
EOF
pg_start() { as_postgres "$pgbin/pg_ctl" -D "$pg_data" -l "$pg_dir/log" start >/dev/null; }
pg_start
pg_up=1
psql_cmd=(psql -X -q -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -v ON_ERROR_STOP=1)
for _ in $(seq 1 300); do "${psql_cmd[@]}" -c 'select 1' >/dev/null 2>&1 && break; sleep 0.1; done
pg_version=$("${psql_cmd[@]}" -Atc 'show server_version')
cat >"$work/schema.sql" <<'EOF'
CREATE TABLE practitioner (
  registration_id text NOT NULL,
  given_name text NOT NULL,
  family_name text NOT NULL,
  given_norm text NOT NULL,
  family_norm text NOT NULL,
  name_tokens text NOT NULL,
  city text NOT NULL,
  register text NOT NULL,
  permit_status text NOT NULL,
  dry_needling datemultirange NOT NULL,
  record jsonb NOT NULL);
EOF
"${psql_cmd[@]}" -f "$work/schema.sql"
# Each step as its own statement (autocommit, so each is durable when it returns); the indexes
# after the COPY, as a DBA loads a register.
load_sql=(
  "\\copy practitioner FROM '$work/big.csv' WITH (FORMAT csv, HEADER true)"
  "ALTER TABLE practitioner ADD PRIMARY KEY (registration_id)"
  "CREATE INDEX practitioner_names ON practitioner USING gin (array_to_tsvector(string_to_array(name_tokens, ' ')))"
  "CREATE INDEX practitioner_order ON practitioner (family_norm, given_norm, registration_id)"
  "VACUUM ANALYZE practitioner"
)
load_labels=("COPY" "primary key" "GIN on the name tokens" "btree for the order" "VACUUM ANALYZE")
pg_load_s=0
pg_load_parts=""
pg_load_cpu=0  # without VACUUM ANALYZE, the last step
sample_load
for i in "${!load_sql[@]}"; do
  t0=$(now)
  c0=$(pg_cpu)
  timed "$work/psql" "${psql_cmd[@]}" -c "${load_sql[$i]}" >/dev/null
  t1=$(now)
  if ((i + 1 < ${#load_sql[@]})); then
    pg_load_cpu=$(plus "$pg_load_cpu" "$(plus "$(minus "$(pg_cpu)" "$c0")" "$(cpu_of_timed "$work/psql")")")
  fi
  s=$(elapsed "$t0" "$t1")
  pg_load_s=$(awk -v a="$pg_load_s" -v b="$s" 'BEGIN {printf "%.2f", a + b}')
  pg_load_parts="$pg_load_parts${pg_load_parts:+, }${load_labels[$i]} $s s"
done
pg_rows=$("${psql_cmd[@]}" -Atc 'SELECT count(*) FROM practitioner')
[ "$pg_rows" -eq "$count" ] || fail "PostgreSQL holds $pg_rows rows, not $count"
pg_size=$("${psql_cmd[@]}" -Atc "SELECT pg_size_pretty(pg_total_relation_size('practitioner'))")
note "- PostgreSQL load: $pg_load_s s ($pg_load_parts); CPU without VACUUM ANALYZE (server processes + psql) $pg_load_cpu s; table with indexes: $pg_size"
# The load without VACUUM ANALYZE is what compares to the import (the planner's statistics
# are not part of the import); VACUUM ANALYZE shown apart.
pg_load_core=$(awk -v total="$pg_load_s" -v parts="$pg_load_parts" 'BEGIN {
  n = split(parts, p, ", "); v = 0
  for (i = 1; i <= n; i++) if (p[i] ~ /^VACUUM ANALYZE/) { split(p[i], w, " "); v = w[3] }
  printf "%.2f", total - v }')

# --- physioreg: wait for the search index ---------------------------------------------------
for _ in $(seq 1 1800); do
  grep -q "search index ready" "$work/server.log" && break
  kill -0 "$server" 2>/dev/null || break
  sleep 0.1
done
grep -q "search index ready" "$work/server.log" || fail "the search index did not load"

# --- point lookups ----------------------------------------------------------------------------
hot_id=$(sed -n "$((count / 2 + 1))p" "$work/big.jsonl" | jq -r .registrationId)
hex_of() { printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n'; }
write_frame() {  # FILE PAYLOAD_HEX: gRPC frame: "not compressed", big-endian length, message
  local n=$((${#2} / 2))
  printf '%b' "$(printf '00%08x%s' "$n" "$2" | sed 's/../\\x&/g')" >"$1"
}
write_frame "$work/health.bin" ""
# GetPractitionerRequest{registration_id (1)}; ids are shorter than 128 bytes.
write_frame "$work/get.bin" "0a$(printf '%02x' "${#hot_id}")$(hex_of "$hot_id")"
# VerifyAuthorizationRequest{registration_id (1), activity (2) = DRY_NEEDLING (1)}.
write_frame "$work/verify.bin" "0a$(printf '%02x' "${#hot_id}")$(hex_of "$hot_id")1001"
curl -sS --http2-prior-knowledge -H 'content-type: application/grpc' -H 'te: trailers' \
  --data-binary "@$work/get.bin" -D "$work/check.head" -o "$work/check.body" \
  "http://$grpc/physioreg.v1.Registry/GetPractitioner"
grep -qi '^grpc-status: 0' "$work/check.head" && grep -qa -- "$hot_id" "$work/check.body" ||
  fail "GetPractitioner($hot_id) did not answer the record"
echo "SELECT record FROM practitioner WHERE registration_id = '$hot_id';" >"$work/lookup.sql"
[ "$("${psql_cmd[@]}" -Atf "$work/lookup.sql" | jq -r .registrationId)" = "$hot_id" ] ||
  fail "PostgreSQL did not answer $hot_id"
chmod 644 "$work/lookup.sql"
h2load_get=(h2load -c "$connections" -m 1 -t 1 -d "$work/get.bin" -H 'content-type: application/grpc'
            -H 'te: trailers' "http://$grpc/physioreg.v1.Registry/GetPractitioner")
h2load_verify=(h2load -c "$connections" -m 1 -t 1 -d "$work/verify.bin" -H 'content-type: application/grpc'
               -H 'te: trailers' "http://$grpc/physioreg.v1.Registry/VerifyAuthorization")
h2load_health=(h2load -c "$connections" -m 1 -t 1 -d "$work/health.bin" -H 'content-type: application/grpc'
               -H 'te: trailers' "http://$grpc/grpc.health.v1.Health/Check")
pgbench_cmd=(pgbench -h 127.0.0.1 -p "$pg_port" -U postgres -n -M prepared -c "$connections" -j 1
             -f "$work/lookup.sql" postgres)
lookups="$work/lookups.tsv"  # round phase per_second server_cpu_us_per_request
run_h2load() {  # ROUND PHASE COMMAND...
  local round=$1 phase=$2 out="$work/h2load.out"
  shift 2
  "$@" -n 2000 >"$out" 2>&1 || fail "h2load failed: $(cat "$out")"  # warm-up
  local c0 c1
  c0=$(proc_cpu "$server")
  "$@" -D "$duration" >"$out" 2>&1 || fail "h2load failed: $(cat "$out")"
  c1=$(proc_cpu "$server")
  grep -Eq '^requests: .* 0 failed, 0 errored, 0 timeout' "$out" ||
    fail "$phase: failed requests: $(grep '^requests' "$out")"
  grep -Eq '^status codes: [0-9]+ 2xx, 0 3xx, 0 4xx, 0 5xx' "$out" || fail "$phase: not all 2xx"
  printf '%s\t%s\t%s\t%s\n' "$round" "$phase" \
    "$(sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p' "$out")" \
    "$(awk -v c="$(minus "$c1" "$c0")" '/^requests: / {printf "%.1f", c * 1e6 / $2}' "$out")" >>"$lookups"
}
for round in $(seq 1 "$rounds"); do
  sample_load
  run_h2load "$round" health "${h2load_health[@]}"
  run_h2load "$round" get "${h2load_get[@]}"
  run_h2load "$round" verify "${h2load_verify[@]}"
  "${pgbench_cmd[@]}" -t 200 >/dev/null 2>&1 || fail "pgbench warm-up failed"
  sleep 0.2  # the warm-up's backends have ended and are counted
  c0=$(pg_cpu)
  "${pgbench_cmd[@]}" -T "$duration" >"$work/pgbench.out" 2>&1 || fail "pgbench failed: $(cat "$work/pgbench.out")"
  sleep 0.2
  c1=$(pg_cpu)
  grep -q 'number of failed transactions: 0' "$work/pgbench.out" ||
    fail "pgbench: failed transactions: $(cat "$work/pgbench.out")"
  processed=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$work/pgbench.out")
  [ "${processed:-0}" -gt 0 ] || fail "pgbench processed no transaction (raise BENCH_PEER_DURATION_S): $(cat "$work/pgbench.out")"
  # pgbench's tps excludes the connections' setup; when it cannot say (a run too short on a busy
  # machine prints "inf"), transactions ÷ duration.
  tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$work/pgbench.out")
  [[ "$tps" =~ ^[0-9]+(\.[0-9]+)?$ ]] || tps=$(awk -v d="$duration" \
    '/^number of transactions actually processed: / {printf "%.1f", $NF / d}' "$work/pgbench.out")
  printf '%s\t%s\t%s\t%s\n' "$round" pgbench "$tps" \
    "$(awk -v c="$(minus "$c1" "$c0")" '/^number of transactions actually processed: / {printf "%.1f", c * 1e6 / $NF}' "$work/pgbench.out")" >>"$lookups"
done
percentiles() {  # column of milliseconds on stdin -> "p50 p99 max"
  sort -g | awk '{v[NR] = $1} END {
    i50 = int(NR * 0.50 + 0.5); if (i50 < 1) i50 = 1
    i99 = int(NR * 0.99 + 0.5); if (i99 < 1) i99 = 1
    printf "%.2f %.2f %.2f\n", v[i50], v[i99], v[NR]}'
}
median_of() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
median() { awk -F'\t' -v p="$1" -v c="${2:-3}" '$2 == p {print $c}' "$lookups" | median_of; }
ratio_median() {  # A B: median over rounds of A ÷ B in the same round
  awk -F'\t' -v a="$1" -v b="$2" '$2 == a {x[$1] = $3} $2 == b {y[$1] = $3}
    END {for (r in x) if (y[r] > 0) print x[r] / y[r]}' "$lookups" | median_of
}
get_rps=$(median get); health_rps=$(median health); pg_tps=$(median pgbench)
get_vs_health=$(printf '%.2f' "$(ratio_median get health)")
verify_rps=$(median verify); verify_vs_health=$(printf '%.2f' "$(ratio_median verify health)")
verify_cpu=$(median verify 4)
get_vs_pg=$(printf '%.2f' "$(ratio_median get pgbench)")
get_cpu=$(median get 4); health_cpu=$(median health 4); pg_cpu_tx=$(median pgbench 4)
note "- lookups per round (round, phase, req/s or tps, server CPU µs per request): $(awk '{printf "%s%s %s %.0f %s", sep, $1, $2, $3, $4; sep = "; "}' "$lookups")"
# Server CPU per call over many ids (every 10th registrant), the loadgen's own phases.
awk 'NR % 10 == 1' "$work/big.jsonl" >"$work/sample.jsonl"
# First let the server finish what the import left it (RocksDB's compactions): its CPU below
# 5 % of a core for 2 s in a row, or 120 s at most; CPU per call is measured on a server at rest.
cpu_ticks() { awk '{sub(/.*\) /, ""); split($0, f, " "); print f[12] + f[13]}' "/proc/$server/stat"; }
settle_start=$(date +%s.%N); quiet=0
for _ in $(seq 1 120); do
  before=$(cpu_ticks); sleep 1; after=$(cpu_ticks)
  if (( after - before <= $(getconf CLK_TCK) / 20 )); then quiet=$((quiet + 1)); else quiet=0; fi
  (( quiet >= 2 )) && break
done
settled_s=$(awk -v a="$settle_start" -v b="$(date +%s.%N)" 'BEGIN {printf "%.0f", b - a}')
sample_load
# --warm: one Get of every sampled id first (reported apart: cold reads), so the phases measure
# a server whose view cache holds them, as after a while in service. Many short interleaved
# rounds: the ratio is taken in each round (health Check, Get and Verify minutes apart would
# see different neighbours on a shared machine) and the median of the rounds is reported.
"$bin/tools/loadgen/physioreg-loadgen" --address "$grpc" --duration_s 3 --warmup_s 1 \
  --server_pid "$server" --fail_on_error --ids_file "$work/sample.jsonl" --baseline --rounds 8 \
  --warm \
  --concurrency "$connections" --mix get=1,verify=1 >"$work/loadgen.out" 2>&1 ||
  fail "the loadgen failed: $(tail -n 5 "$work/loadgen.out")"
rounds_of() { grep '^ROUND ' "$work/loadgen.out" | cut -c7-; }
cpu_of() { rounds_of | jq -r --arg p "$1" '.[$p]' | median_of; }
cpu_ratio_of() { rounds_of | jq -r --arg p "$1" '.[$p] / .health' | median_of; }
cpu_health=$(cpu_of health); cpu_get=$(cpu_of get); cpu_verify=$(cpu_of verify)
cpu_get_ratio=$(printf '%.2f' "$(cpu_ratio_of get)")
cpu_verify_ratio=$(printf '%.2f' "$(cpu_ratio_of verify)")
note "- loadgen server CPU µs/call (medians of 8 rounds): health $cpu_health, get $cpu_get, verify $cpu_verify; the median of each round's ratio to health Check: get ${cpu_get_ratio}×, verify ${cpu_verify_ratio}×; rounds: $(grep '^== round' "$work/loadgen.out" | cut -c4- | sed 's/server CPU per call: //' | paste -sd '|' | sed 's/|/; /g'); the server settled for ${settled_s} s first; before them $(grep '^== warm' "$work/loadgen.out" | cut -c4-)"

# --- search ---------------------------------------------------------------------------------
# physioreg: each query once through the HTTP gateway for its total and page (and a client-side
# time), then, when the loadgen has a query set mode, its server-side times.
# One curl process for all the queries, one kept-alive connection (as psql keeps its own).
phys_results="$work/physioreg-search.tsv"  # n total ids(comma) seconds
: >"$phys_results"
mkdir -p "$work/answers"
n=0
while IFS= read -r q; do
  n=$((n + 1))
  printf 'url = "%s"\noutput = "%s"\n' "$(search_url "$q")" "$work/answers/$n.json"
done <"$work/queries.txt" >"$work/curl.config"
curl -sS --config "$work/curl.config" -w '%{http_code} %{time_total}\n' >"$work/curl.out" ||
  fail "curl failed"
n=0
while read -r code secs; do
  n=$((n + 1))
  [ "$code" = 200 ] ||
    fail "search $n ('$(sed -n "${n}p" "$work/queries.txt")') answered HTTP $code: $(head -c 300 "$work/answers/$n.json")"
  jq -r --arg n "$n" --arg s "$secs" \
    '[$n, (.totalSize // 0 | tostring), ([.practitioners[]?.registrationId] | join(",")), $s] | @tsv' \
    "$work/answers/$n.json" >>"$phys_results"
done <"$work/curl.out"
[ "$n" -eq "$n_queries" ] || fail "curl answered $n of $n_queries searches"
server_side=""
sample_load
# (Captured first: `grep -q` closing the pipe early would fail the pipeline under pipefail.)
loadgen_flags=$("$bin/tools/loadgen/physioreg-loadgen" --helpfull 2>&1 || true)
if grep -q queries_file <<<"$loadgen_flags"; then
  "$bin/tools/loadgen/physioreg-loadgen" --address "$grpc" --server_pid "$server" --fail_on_error \
    --ids_file "$work/sample.jsonl" --queries_file "$work/queries.txt" --mix search=1 \
    --concurrency 1 --duration_s "$duration" --warmup_s 1 --rounds 1 >"$work/loadgen-search.out" 2>&1 ||
    fail "the loadgen (search) failed: $(tail -n 5 "$work/loadgen-search.out")"
  server_side=$(grep '^JSON ' "$work/loadgen-search.out" | cut -c6- | jq -r '.rpcs[] | select(.rpc == "search") |
    "\(.server_p50_us // .p50_us) \(.server_p99_us // .p99_us) \(.server_max_us // .max_us)"' | tail -n 1)
  # Each query of the set exactly once (the slowest of the set), then 16 concurrent streams.
  sample_load
  "$bin/tools/loadgen/physioreg-loadgen" --address "$grpc" --fail_on_error \
    --queries_file "$work/queries.txt" --once --print_queries >"$work/loadgen-once.out" 2>&1 ||
    fail "the loadgen (--once) failed: $(tail -n 5 "$work/loadgen-once.out")"
  read -r once_p50 once_p99 once_max < <(awk -F'\t' '$1 ~ /^[0-9]+$/ {print $1 / 1000}' \
    "$work/loadgen-once.out" | percentiles)
  once_n=$(awk -F'\t' '$1 ~ /^[0-9]+$/' "$work/loadgen-once.out" | wc -l)
  once_over50=$(awk -F'\t' '$1 ~ /^[0-9]+$/ && $1 > 50000' "$work/loadgen-once.out" | wc -l)
  sample_load
  "$bin/tools/loadgen/physioreg-loadgen" --address "$grpc" --server_pid "$server" --fail_on_error \
    --ids_file "$work/sample.jsonl" --queries_file "$work/queries.txt" --mix search=1 \
    --concurrency "$connections" --duration_s "$duration" --warmup_s 1 --rounds 1 \
    >"$work/loadgen-search16.out" 2>&1 ||
    fail "the loadgen (search, $connections streams) failed: $(tail -n 5 "$work/loadgen-search16.out")"
  read -r s16_50 s16_99 s16_max < <(grep '^JSON ' "$work/loadgen-search16.out" | cut -c6- | jq -r \
    '.rpcs[] | select(.rpc == "search") | "\(.server_p50_us / 1000) \(.server_p99_us / 1000) \(.server_max_us / 1000)"' | tail -n 1)
  s16_rps=$(grep '^JSON ' "$work/loadgen-search16.out" | cut -c6- | jq -r '.rpcs[] | select(.rpc == "search") | .rps' | tail -n 1)
  note "- search, each of the $once_n queries once, one stream (server time): p50 $once_p50 ms, p99 $once_p99 ms, max $once_max ms; $once_over50 above 50 ms"
  note "- search, $connections streams cycling through the set (server time, queueing included): p50 $s16_50 ms, p99 $s16_99 ms, max $s16_max ms; $s16_rps searches/s"
fi

# PostgreSQL: per query the page (20 records in the btree's order) and the exact count, as
# literal SQL (planned each time, as an application without prepared statements sends it).
tsquery_of() {  # "jo smi" -> '''jo'':* & ''smi'':*' (tokens hold no quotes once normalized)
  echo "$1" | awk -v q="''" '{for (i = 1; i <= NF; i++) printf "%s%s%s%s:*", (i > 1 ? " & " : ""), q, $i, q}'
}
where_of() {
  printf "array_to_tsvector(string_to_array(name_tokens, ' ')) @@ '%s'::tsquery AND dry_needling @> DATE '%s'" \
    "$(tsquery_of "$1")" "$today"
}
{
  echo '\timing on'
  echo '\pset format unaligned'
  echo '\pset tuples_only on'
  n=0
  while IFS= read -r q; do
    n=$((n + 1))
    w=$(where_of "$q")
    echo "\\echo QUERY $n"
    echo "SELECT registration_id, record FROM practitioner WHERE $w ORDER BY family_norm, given_norm, registration_id LIMIT 20;"
    echo "\\echo COUNT"
    echo "SELECT count(*) FROM practitioner WHERE $w;"
  done <"$work/queries.txt"
} >"$work/search.sql"
# Warm both caches the same way: physioreg answered every query once above; PostgreSQL gets one
# untimed pass too.
"${psql_cmd[@]}" -f "$work/search.sql" >/dev/null
sample_load
"${psql_cmd[@]}" -f "$work/search.sql" >"$work/psql-search.out"
pg_results="$work/pg-search.tsv"  # n count ids page_ms count_ms
awk -F'|' '
  /^QUERY / {n = $0; sub(/^QUERY /, "", n); ids = ""; state = "page"; next}
  /^COUNT$/ {state = "count"; next}
  /^Time: / {split($0, t, " "); if (state == "page") page_ms = t[2]; else {printf "%s\t%s\t%s\t%s\t%s\n", n, cnt, ids, page_ms, t[2]}; next}
  state == "page" && /^PT-/ {ids = ids (ids == "" ? "" : ",") $1; next}
  state == "count" && /^[0-9]+$/ {cnt = $0}
' "$work/psql-search.out" >"$pg_results"
[ "$(wc -l <"$pg_results")" -eq "$n_queries" ] || fail "psql answered $(wc -l <"$pg_results") of $n_queries queries"
# Both sides, query by query: the totals and the pages must agree.
paste "$phys_results" "$pg_results" | awk -F'\t' '
  $2 != $6 {count_bad++; if (count_bad <= 5) printf "count differs for query %s: physioreg %s, PostgreSQL %s\n", $1, $2, $6 > "/dev/stderr"}
  $3 != $7 {page_bad++; if (page_bad <= 5) printf "page differs for query %s\n", $1 > "/dev/stderr"}
  END {printf "%d %d\n", count_bad, page_bad}' >"$work/mismatch.txt" 2>"$work/mismatch.log"
read -r count_mismatch page_mismatch <"$work/mismatch.txt"
zero_total=$(awk -F'\t' '$2 == 0' "$phys_results" | wc -l)
read -r pg_page_p50 pg_page_p99 pg_page_max < <(cut -f4 "$pg_results" | percentiles)
read -r pg_count_p50 pg_count_p99 pg_count_max < <(cut -f5 "$pg_results" | percentiles)
read -r curl_p50 curl_p99 curl_max < <(awk -F'\t' '{print $4 * 1000}' "$phys_results" | percentiles)
if [ -n "$server_side" ]; then
  read -r s50 s99 smax <<<"$server_side"
  phys_p50=$(awk -v v="$s50" 'BEGIN {printf "%.2f", v / 1000}')
  phys_p99=$(awk -v v="$s99" 'BEGIN {printf "%.2f", v / 1000}')
  phys_max=$(awk -v v="$smax" 'BEGIN {printf "%.2f", v / 1000}')
  phys_how="physioreg-loadgen --queries_file, one stream"
else
  phys_p50=$curl_p50 phys_p99=$curl_p99 phys_max=$curl_max
  phys_how="curl through the HTTP gateway, client-side, one kept-alive connection (the loadgen has no --queries_file yet)"
fi
note "- search, physioreg via curl + HTTP gateway (client-side, one connection, page + total in one call): p50 $curl_p50 ms, p99 $curl_p99 ms, max $curl_max ms"
note "- search, PostgreSQL psql \\timing: page p50 $pg_page_p50 / p99 $pg_page_p99 / max $pg_page_max ms; count p50 $pg_count_p50 / p99 $pg_count_p99 / max $pg_count_max ms"
note "- queries: $n_queries from $query_source; $zero_total of them match no one authorized today ($today); total matches, median: $(cut -f2 "$phys_results" | median_of)"

# --- restart ----------------------------------------------------------------------------------
stop_server
sample_load
t0=$(now)
start_server "$work/server2.log"
url=$(search_url "$first_query")
for _ in $(seq 1 6000); do
  code=$(curl -s -o /dev/null -w '%{http_code}' "$url" || true)
  [ "$code" = 200 ] && break
  kill -0 "$server" 2>/dev/null || fail "physioregd exited during the restart"
  sleep 0.02
done
t1=$(now)
[ "$code" = 200 ] || fail "no successful search within 120 s of the restart"
phys_restart=$(elapsed "$t0" "$t1")
stop_server
as_postgres "$pgbin/pg_ctl" -D "$pg_data" -m fast stop >/dev/null
pg_up=""
first_sql="SELECT count(*) FROM practitioner WHERE $(where_of "$first_query")"
t0=$(now)
pg_start
pg_up=1
for _ in $(seq 1 6000); do
  "${psql_cmd[@]}" -Atc "$first_sql" >/dev/null 2>&1 && break
  sleep 0.02
done
t1=$(now)
"${psql_cmd[@]}" -Atc "$first_sql" >/dev/null || fail "PostgreSQL did not answer after its restart"
pg_restart=$(elapsed "$t0" "$t1")
note "- restart to the first successful search (polled every 20 ms): physioreg $phys_restart s ($(grep -m1 "search index ready" "$work/server2.log" | sed 's/^physioregd: //')), PostgreSQL $pg_restart s"
sample_load

# --- report ---------------------------------------------------------------------------------
load_range=$(sort -g "$loads" | sed -n '1p;$p' | paste -sd' ' | awk '{print $1 "–" $2}')
x() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }  # a ÷ b
echo "## physioreg vs PostgreSQL 15 ($(date -u +%Y-%m-%d\ %H:%M) UTC, commit $commit)"
echo
echo "- $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); RAM $(free -g | awk '/^Mem:/ {print $2}') GiB; $(. /etc/os-release && echo "$PRETTY_NAME")"
echo "- $count registrants (physioreg-generate --seed 1); physioreg release build; PostgreSQL $pg_version (Debian), fresh cluster: fsync on, synchronous_commit on, shared_buffers $shared_buffers, maintenance_work_mem 256MB, work_mem 16MB, max_wal_size 4GB, locale C"
echo "- 1-minute load average sampled between the phases: $load_range (2 = both cores busy; both servers and their clients share them)"
echo
echo "| axis | physioreg | PostgreSQL 15 | × in physioreg's favour |"
echo "|---|---|---|---|"
echo "| bulk load of $count (durable import vs COPY + primary key + GIN + btree), wall time | $import_s s | $pg_load_core s | $(x "$pg_load_core" "$import_s") |"
echo "| the same, CPU time (server + client) | $import_cpu s | $pg_load_cpu s | $(x "$pg_load_cpu" "$import_cpu") |"
echo "| lookup by id, one hot id, $connections clients (h2load GetPractitioner vs pgbench -M prepared SELECT by primary key) | $(printf '%.0f' "$get_rps") req/s (= $get_vs_health of health Check, $(printf '%.0f' "$health_rps") req/s) | $(printf '%.0f' "$pg_tps") tps | $get_vs_pg |"
echo "| verification by id, the same hot id (h2load VerifyAuthorization DRY_NEEDLING) | $(printf '%.0f' "$verify_rps") req/s (= $verify_vs_health of health Check), server CPU $verify_cpu µs | — | — |"
echo "| the same, server CPU per lookup (median over the rounds; PostgreSQL: every server process) | $get_cpu µs (health Check $health_cpu µs) | $pg_cpu_tx µs | $(x "$pg_cpu_tx" "$get_cpu") |"
echo "| $n_queries two-token prefix searches + dry-needling filter, one client: page of 20 + exact total (physioreg: one call; $phys_how) vs page query + count(*) query (psql \\timing) | p50 $phys_p50 ms, p99 $phys_p99 ms, max $phys_max ms | page p50 $pg_page_p50 / p99 $pg_page_p99 / max $pg_page_max ms; count p50 $pg_count_p50 / p99 $pg_count_p99 / max $pg_count_max ms | p50 $(x "$(awk -v a="$pg_page_p50" -v b="$pg_count_p50" 'BEGIN {print a + b}')" "$phys_p50"), p99 $(x "$pg_page_p99" "$phys_p99") (page alone) |"
if [ -n "$server_side" ]; then
  echo "| the same $n_queries searches, each once (server time) / $connections concurrent streams (server time, queueing included) | once: p99 $once_p99 ms, max $once_max ms ($once_over50 above 50 ms); $connections streams: p50 $s16_50 ms, p99 $s16_99 ms | — | — |"
fi
echo "| restart to the first successful search | $phys_restart s | $pg_restart s | $(x "$pg_restart" "$phys_restart") |"
echo
echo "Search agreement, query by query: $count_mismatch of $n_queries totals and $page_mismatch of $n_queries pages differ between physioreg and PostgreSQL."
if [ -s "$work/mismatch.log" ]; then sed 's/^/    /' "$work/mismatch.log"; fi
echo
echo "Raw numbers:"
echo
cat "$raw"
echo "- server CPU per call (physioreg-loadgen, ids of every 10th registrant, $connections streams): Get ${cpu_get_ratio}×, Verify ${cpu_verify_ratio}× health Check's (median of 8 rounds' ratios)"
echo
echo "Commands (\$work is a temp dir; physioregd --data_dir=\$work/data --grpc_address=127.0.0.1:0 --http_address=127.0.0.1:0 --rate_limits=false):"
echo
echo '```'
echo "physioreg-generate --count $count --seed 1 > big.jsonl"
echo "physioreg-generate --count $count --seed 1 --format csv > big.csv"
echo "$import_cmd"
echo "initdb -U postgres --auth=trust --locale=C --encoding=UTF8  # + the settings above"
echo "psql -c \"$(tr -s ' \n' ' ' <"$work/schema.sql")\""
for s in "${load_sql[@]}"; do echo "psql -c \"$s\"" | sed "s|$work/||"; done
echo "h2load -c $connections -m 1 -t 1 -D $duration -d get.bin -H 'content-type: application/grpc' -H 'te: trailers' http://\$grpc/physioreg.v1.Registry/GetPractitioner  # $hot_id; likewise grpc.health.v1.Health/Check with an empty message"
echo "pgbench -n -M prepared -c $connections -j 1 -T $duration -f lookup.sql  # $(cat "$work/lookup.sql")"
echo "physioreg-loadgen --warm --baseline --rounds 8 --duration_s 3 --warmup_s 1 --concurrency $connections --mix get=1,verify=1 --ids_file sample.jsonl --server_pid \$pid  # every 10th registrant"
echo "curl 'http://\$http/v1/practitioners?name=<query>&activity=DRY_NEEDLING&pageSize=20'  # each query"
echo "psql -f search.sql  # per query, e.g.:"
sed -n '4,7p' "$work/search.sql" | cut -c1-400
echo '```'
if [ -n "${BENCH_PEER_KEEP:-}" ]; then
  mkdir -p "$BENCH_PEER_KEEP"
  cp "$work"/{queries.txt,lookups.tsv,physioreg-search.tsv,pg-search.tsv,loadgen.out,search.sql} "$BENCH_PEER_KEEP/"
  if [ -f "$work/loadgen-search.out" ]; then cp "$work/loadgen-search.out" "$BENCH_PEER_KEEP/"; fi
fi
