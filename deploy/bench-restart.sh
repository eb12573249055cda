#!/usr/bin/env bash
# Restart of a 1,000,000-registrant physioregd (release): time from process start to the
# first successful SearchPractitioners, with the snapshot and without (--search_snapshot=false),
# interleaved. Usage: deploy/bench-restart.sh WORK_DIR [ROUNDS]; WORK_DIR/data holds the register
# (generate and import it first, then stop the server: it writes the snapshot).
set -u
B=${BUILD:-$(cd "$(dirname "$0")/.." && pwd)/build/release}
W=${1:?usage: bench-restart.sh WORK_DIR [ROUNDS] (WORK_DIR/data: a stopped physioregd data dir)}
addr=127.0.0.1:50951
cli=("$B/client/physioreg" --address "$addr" --token-file "$W/data/regulator.token")
rounds=${2:-2}
one() {  # $1: label, rest: extra flags
  local label=$1; shift
  local t0 t1 pid
  t0=$(date +%s.%N)
  "$B/service/physioregd" --data_dir="$W/data" --grpc_address="$addr" --http_address= \
    --rate_limits=false "$@" >"$W/server-$label.log" 2>&1 &
  pid=$!
  while ! "${cli[@]}" search --name "ma sm" --page-size 1 >/dev/null 2>&1; do
    kill -0 $pid 2>/dev/null || { echo "server died"; cat "$W/server-$label.log"; return 1; }
    sleep 0.05
  done
  t1=$(date +%s.%N)
  local rss hwm
  rss=$(awk '/^VmRSS/ {printf "%d", $2 / 1024}' /proc/$pid/status)
  hwm=$(awk '/^VmHWM/ {printf "%d", $2 / 1024}' /proc/$pid/status)
  sleep 3
  local rss3; rss3=$(awk '/^VmRSS/ {printf "%d", $2 / 1024}' /proc/$pid/status)
  local s0 s1; s0=$(date +%s.%N)
  kill -TERM $pid; wait $pid
  s1=$(date +%s.%N)
  printf "%s first_search_s=%.2f rss_mib=%s hwm_mib=%s rss_after3s_mib=%s stop_s=%.2f load=%s | %s | %s\n" \
    "$label" "$(awk "BEGIN {print $t1 - $t0}")" "$rss" "$hwm" "$rss3" "$(awk "BEGIN {print $s1 - $s0}")" \
    "$(cut -d' ' -f1-3 /proc/loadavg)" \
    "$(grep -o 'event=search_index_loaded.*' "$W/server-$label.log" | head -1)" \
    "$(grep -o 'event=search_snapshot_written.*' "$W/server-$label.log" | tail -1)"
}
for r in $(seq 1 "$rounds"); do
  one "snapshot-$r"
  one "nosnapshot-$r" --search_snapshot=false
done
ls -l "$W/data/search-index.snapshot"
