#!/usr/bin/env bash
# A soak of mixed churn, as a day of real users would run it, on loopback:
# does the hub's memory reach a plateau and stay there?
#
#   bench/soak.sh [MINUTES]     default 60
#
# The load (the release build, with --heartbeat 5 --history 4096 --queue 256):
#   - 300 subscribers on three channels (c0, c1, c2), plus 50 on the global
#     stream;
#   - each reads for 2-40 s, then, a third each, closes cleanly, aborts with
#     a reset (SO_LINGER 0), or stops reading for 15 s before closing;
#   - each then resumes with Last-Event-ID after 0-2 s;
#   - one publisher sends 150 messages/s of 260 bytes, round robin over the
#     three channels and the global stream.
# Every 30 s it writes the hub's RSS, threads, descriptors and /stats
# counters; at the end, the RSS change over the second half and the count of
# messages lost, duplicated and reordered across resumes (each subscriber
# checks the run of message numbers it is due; a `gap` event is counted
# apart), then it stops the hub with SIGTERM and times the shutdown.
#
# Environment:
#   PORT=3300           the hub listens on 127.0.0.1:PORT
#   OUT=target/soak-$PORT   samples.jsonl (one JSON line per sample),
#                       report.json, loadgen.log, hub.log, summary.txt
#   HUB=target/release/sse-hub   the binary to soak (built unless NO_BUILD=1)
#   HUB_ARGS=""         more options for the hub
#   WRAP=""             a command to run the hub under, e.g.
#                       WRAP="heaptrack -o target/soak-3300/heap"
#   SAMPLE_EVERY=30     seconds between samples
#   SEED=1              seed of the subscribers' random visits
#   SMAPS=1             also keep /proc/PID/smaps at the start, the middle
#                       and the end
# GLIBC_TUNABLES, MALLOC_ARENA_MAX and the like pass through to the hub.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

MINUTES="${1:-60}"
PORT="${PORT:-3300}"
OUT="${OUT:-$root/target/soak-$PORT}"
HUB="${HUB:-$root/target/release/sse-hub}"
HUB_ARGS="${HUB_ARGS:-}"
WRAP="${WRAP:-}"
SAMPLE_EVERY="${SAMPLE_EVERY:-30}"
SEED="${SEED:-1}"
SMAPS="${SMAPS:-1}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
seconds=$(awk -v m="$MINUTES" 'BEGIN { printf "%d", m * 60 }')
[ "$seconds" -ge 60 ] || { echo "soak.sh: at least 1 minute" >&2; exit 2; }

if [ "${NO_BUILD:-0}" != 1 ]; then
  cargo build --release --bin sse-hub >&2
  cargo build --release -p loadgen >&2
fi
loadgen="$CARGO_TARGET_DIR/release/loadgen"
mkdir -p "$OUT"

# shellcheck disable=SC2086
$WRAP "$HUB" --listen "127.0.0.1:$PORT" --heartbeat 5 --history 4096 --queue 256 \
  $HUB_ARGS 2>"$OUT/hub.log" &
wrapper=$!
hub_pid=""
for _ in $(seq 1 300); do
  if grep -q "listening on" "$OUT/hub.log" 2>/dev/null; then
    # The hub itself, also when it runs under a wrapper.
    hub_pid=$(ss -Hltnp "sport = :$PORT" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
    [ -n "$hub_pid" ] && break
  fi
  kill -0 "$wrapper" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$hub_pid" ]; then
  echo "soak.sh: the hub did not start; see $OUT/hub.log" >&2
  kill "$wrapper" 2>/dev/null || true
  exit 1
fi
echo "soak.sh: hub pid $hub_pid on 127.0.0.1:$PORT for $MINUTES min; results in $OUT" >&2

smaps() { [ "$SMAPS" = 1 ] && cp "/proc/$hub_pid/smaps" "$OUT/smaps-$1.txt" 2>/dev/null || true; }
smaps start
( sleep $((seconds / 2)); smaps middle ) &
middle=$!

status=0
"$loadgen" --mode churn --addr "127.0.0.1:$PORT" --pid "$hub_pid" --label "sse-hub" \
  --subscribers 300 --channels 3 --global 50 --rate 150 --size 260 \
  --read-min 2 --read-max 40 --stall 15 --pause-max 2 \
  --duration "$seconds" --timeout "$((seconds + 60))" \
  --sample-every "$SAMPLE_EVERY" --seed "$SEED" --samples "$OUT/samples.jsonl" \
  >"$OUT/report.json" 2> >(tee "$OUT/loadgen.log" >&2) || status=$?
kill "$middle" 2>/dev/null || true
smaps end

# Stop the hub as a supervisor would, and time it.
start_ns=$(date +%s%N)
kill -TERM "$hub_pid"
hub_status=0
wait "$wrapper" || hub_status=$?
stop_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))

{
  echo "soak of $MINUTES min on 127.0.0.1:$PORT: $HUB $HUB_ARGS ${GLIBC_TUNABLES:+GLIBC_TUNABLES=$GLIBC_TUNABLES}"
  tail -n 2 "$OUT/loadgen.log"
  echo "shutdown: ${stop_ms} ms, exit status $hub_status; loadgen exit status $status"
} | tee "$OUT/summary.txt" >&2
[ "$status" = 0 ] && [ "$hub_status" = 0 ]
