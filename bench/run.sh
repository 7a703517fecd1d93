#!/usr/bin/env bash
# Runs the benchmark matrix against sse-hub and its three peers (an
# idiomatic axum broadcaster, a tutorial-style Node.js one, nginx+nchan) in
# one go, on loopback, with the same load generator, and rewrites the
# generated part of BENCHMARKS.md (between its bench:generated markers).
#
#   bench/run.sh            the full matrix, about 30 minutes
#   bench/run.sh --quick    small sizes, one run each: checks the tooling
#                           in two or three minutes; leaves BENCHMARKS.md alone
#
# Scenarios (sizes of the full matrix):
#   idle      1,000 / 5,000 / 7,500 streams held 7 s: memory, threads and
#             kernel stacks per stream, time to connect them all
#   steady    1,000 streams, 1,000 messages at 100 msg/s, one publisher
#   steady5k  5,000 streams, 500 messages at 50 msg/s, one publisher
#   burst     1,000 streams, 10,000 messages as fast as two publishers go
#   batch     1,000 streams, 10,000 messages in JSON-array POSTs of 100, one
#             publisher that stays within 200 messages of what every stream
#             has received (--window: the rate a server sustains, rather
#             than how it sheds a publisher it cannot keep up with; sse-hub
#             drops a subscriber 256 messages behind); servers without batch
#             publish are marked, not run
#   publish   no streams, four publishers for 5 s: POST/s, CPU per POST
#
# Environment:
#   REPEATS=3        runs per figure (the tables show the median)
#   BURST_REPEATS=$REPEATS  runs of the burst scenario (up to a minute each)
#   SERVERS="sse-hub axum node nchan"   (add sse-hub-before with BEFORE_HUB)
#   BEFORE_HUB=PATH  another build of the sse-hub binary, run as the server
#                    "sse-hub-before", for a before/after in the same run
#   SCENARIOS="idle steady steady5k burst batch publish"   run only these;
#                    the tables keep the last results of the others (one
#                    file per scenario)
#   QUIET_BUSY=25    before each run, wait until the other processes on the
#   QUIET_WAIT=60    machine use less than this % of the CPUs (1 s sample),
#                    but no longer than QUIET_WAIT seconds per run
#   OUT=target/bench results folder (JSON lines, logs)
#
# Needs root only to install what is missing (nginx, libnginx-mod-nchan,
# nodejs from Debian's packages); the axum peer's crates come from
# crates.io through cargo. Changes no sysctl.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

quick=false
[ "${1:-}" = "--quick" ] && quick=true
REPEATS="${REPEATS:-3}"
BURST_REPEATS="${BURST_REPEATS:-$REPEATS}"
SERVERS="${SERVERS:-sse-hub axum node nchan}"
SCENARIOS="${SCENARIOS:-idle steady steady5k burst batch publish}"
QUIET_BUSY="${QUIET_BUSY:-25}"
QUIET_WAIT="${QUIET_WAIT:-60}"
OUT="${OUT:-$root/target/bench}"
if $quick; then
  REPEATS=1
  BURST_REPEATS=1
  QUIET_WAIT=0
  OUT="$OUT/quick"
fi
mkdir -p "$OUT/logs"
wanted() { case " $SCENARIOS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
serving() { case " $SERVERS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
for scenario in $SCENARIOS; do : >"$OUT/results-$scenario.jsonl"; done
: >>"$OUT/loadgen.log"

say() { printf '\n== %s (%s)\n' "$*" "$(date +%T)" >&2; }

# --- what the run needs -----------------------------------------------------
say "checking tools"
missing=()
if serving nchan; then
  command -v nginx >/dev/null || missing+=(nginx)
  [ -f /usr/lib/nginx/modules/ngx_nchan_module.so ] || missing+=(libnginx-mod-nchan)
fi
if serving node; then command -v node >/dev/null || missing+=(nodejs); fi
command -v curl >/dev/null || missing+=(curl)
command -v python3 >/dev/null || missing+=(python3)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

say "building release binaries"
target="${CARGO_TARGET_DIR:-$root/target}"
packages=(-p loadgen)
if serving sse-hub; then packages+=(-p sse-hub); fi
cargo build --release --quiet "${packages[@]}" --bins
hub_bin="$target/release/sse-hub"
# The build measured, named once: the tree may change while the matrix runs.
hub_version="sse-hub $(git -C "$root" describe --always --dirty 2>/dev/null || echo '?')"
loadgen="$target/release/loadgen"
# The axum peer is its own Cargo project, with its own lock file.
axum_dir="$root/bench/peers/axum"
axum_bin="$target/release/axum-peer"
if serving axum; then
  cargo build --release --quiet --locked --manifest-path "$axum_dir/Cargo.toml" --target-dir "$target"
fi
locked_version() { # CRATE -> its version in the axum peer's Cargo.lock
  awk -v name="$1" '$0 == "name = \"" name "\"" { getline; gsub(/version = |"/, ""); print; exit }' "$axum_dir/Cargo.lock"
}

# Each stream costs file descriptors in the load generator and the servers.
ulimit -n "$(ulimit -Hn)"

# --- servers ------------------------------------------------------------------
# start_server NAME sets PORT, MAIN (the pid to stop) and PIDS (the pids to
# measure, comma separated), and SUB/PUB/BODY, how loadgen talks to it.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for_log() { # FILE -> the port in its "listening on http://IP:PORT" line
  local port=""
  for _ in $(seq 100); do
    port="$(grep -o 'listening on http://[0-9.]*:[0-9]*' "$1" 2>/dev/null | head -1 | sed 's/.*://')" || true
    [ -n "$port" ] && break
    sleep 0.05
  done
  [ -n "$port" ] || { echo "server did not start; log:" >&2; cat "$1" >&2; exit 1; }
  echo "$port"
}

start_server() { # NAME LOG
  local log="$2"
  case "$1" in
    sse-hub)
      # Warnings only (plus the listening line): one info line per subscriber
      # would measure the logger. --max-clients is lowered at start to what
      # vm.max_map_count allows (about 7,500 here) with a warning.
      RUST_LOG=warn,sse_hub::server=info "$hub_bin" --listen 127.0.0.1:0 --max-clients 10000 2>"$log" &
      MAIN=$!
      PORT="$(wait_for_log "$log")"
      PIDS="$MAIN"
      SUB=/events PUB=/broadcast BODY=json
      ;;
    sse-hub-before)
      RUST_LOG=warn,sse_hub::server=info "${BEFORE_HUB:?BEFORE_HUB names the build to compare}" \
        --listen 127.0.0.1:0 --max-clients 10000 2>"$log" &
      MAIN=$!
      PORT="$(wait_for_log "$log")"
      PIDS="$MAIN"
      SUB=/events PUB=/broadcast BODY=json
      ;;
    axum)
      "$axum_bin" --listen 127.0.0.1:0 2>"$log" &
      MAIN=$!
      PORT="$(wait_for_log "$log")"
      PIDS="$MAIN"
      SUB=/events PUB=/broadcast BODY=json
      ;;
    node)
      node "$root/bench/peers/node/server.js" --listen 127.0.0.1:0 2>"$log" &
      MAIN=$!
      PORT="$(wait_for_log "$log")"
      PIDS="$MAIN"
      SUB=/events PUB=/broadcast BODY=json
      ;;
    nchan)
      PORT="$(free_port)"
      rm -rf "$OUT/nchan-prefix"
      "$root/bench/peers/nchan/run.sh" "$PORT" "$OUT/nchan-prefix" >"$log" 2>&1 &
      MAIN=$!
      local up=false
      for _ in $(seq 100); do
        curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && { up=true; break; }
        sleep 0.05
      done
      $up || { echo "nginx did not start; log:" >&2; cat "$log" >&2; exit 1; }
      PIDS="$MAIN,$(pgrep -P "$MAIN" | paste -sd, - || true)"
      SUB=/sub/bench PUB='/pub?id=bench' BODY=raw
      ;;
  esac
}

MAIN=""
stop_server() {
  [ -n "$MAIN" ] || return 0
  kill -TERM "$MAIN" 2>/dev/null || true
  wait "$MAIN" 2>/dev/null || true
  MAIN=""
}
trap 'stop_server' EXIT

version_of() {
  case "$1" in
    sse-hub) echo "$hub_version" ;;
    sse-hub-before) echo "sse-hub before: $BEFORE_HUB" ;;
    axum) echo "axum $(locked_version axum), tokio $(locked_version tokio)" ;;
    node) echo "node $(node --version)" ;;
    nchan) echo "nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'), nchan $(dpkg-query -W -f='${Version}' libnginx-mod-nchan 2>/dev/null || echo '?')" ;;
  esac
}

# --- a quiet machine ------------------------------------------------------------
busy_pct() { # share of CPU time used by everything, over one second
  local a b
  read -r -a a </proc/stat
  sleep 1
  read -r -a b </proc/stat
  local total=0 idle=0 i
  for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
  idle=$((b[4] - a[4] + b[5] - a[5]))
  echo $((total > 0 ? 100 * (total - idle) / total : 0))
}

wait_quiet() {
  local start=$SECONDS busy
  while :; do
    busy="$(busy_pct)"
    if [ "$busy" -le "$QUIET_BUSY" ] || [ $((SECONDS - start)) -ge "$QUIET_WAIT" ]; then
      break
    fi
    sleep 2
  done
  echo "$busy"
}

# --- one run ------------------------------------------------------------------
# run SCENARIO SERVER REPEAT LOADGEN-ARGS...
run() {
  local scenario="$1" server="$2" repeat="$3"
  local results="$OUT/results-${scenario%%-*}.jsonl"
  shift 3
  local busy lines
  busy="$(wait_quiet)"
  lines="$(wc -l <"$OUT/loadgen.log" 2>/dev/null || echo 0)"
  start_server "$server" "$OUT/logs/$scenario-$server-$repeat.log"
  echo "-- $scenario / $server / run $repeat (others busy ${busy}%)" >&2
  "$loadgen" --addr "127.0.0.1:$PORT" --pid "$PIDS" --label "$server" \
    --sub-path "$SUB" --pub-path "$PUB" --body "$BODY" \
    --tag "scenario=$scenario" --tag "repeat=$repeat" --tag "busy_before_pct=$busy" \
    --tag "version=$(version_of "$server")" \
    "$@" >>"$results" 2>>"$OUT/loadgen.log" || echo "   (loadgen failed; see $OUT/loadgen.log)" >&2
  tail -n "+$((lines + 1))" "$OUT/loadgen.log" | grep "^\[$server\]" | sed 's/^/   /' >&2 || true
  stop_server
  # Let the kernel finish closing thousands of sockets before the next run.
  sleep 1
}

# Batch publish (a JSON array body) is sse-hub's and the axum peer's; the
# others get a line saying so instead of a run. Publishing the messages one
# by one would measure something else.
supports_batch() { case "$1" in sse-hub | sse-hub-before | axum) return 0 ;; *) return 1 ;; esac; }
unsupported() { # SCENARIO SERVER REPEAT WHY
  echo "-- $1 / $2 / run $3: not supported ($4)" >&2
  printf '{"label":"%s","mode":"unsupported","unsupported":"%s","tags":{"scenario":"%s","repeat":"%s"}}\n' \
    "$2" "$4" "$1" "$3" >>"$OUT/results-$1.jsonl"
}

# --- the matrix -------------------------------------------------------------------
if $quick; then
  idle_sizes="200"
  steady=(--subscribers 100 --messages 200 --rate 100)
  steady5k=(--subscribers 500 --messages 100 --rate 50)
  burst=(--subscribers 100 --messages 1000)
  batch=(--subscribers 100 --messages 2000 --batch 100 --window 200)
  publish=(--duration 1)
else
  idle_sizes="1000 5000 7500"
  steady=(--subscribers 1000 --messages 1000 --rate 100)
  steady5k=(--subscribers 5000 --messages 500 --rate 50)
  burst=(--subscribers 1000 --messages 10000)
  batch=(--subscribers 1000 --messages 10000 --batch 100 --window 200)
  publish=(--duration 5)
fi

started=$SECONDS
if wanted idle; then
  for n in $idle_sizes; do
    say "idle: $n subscribers held 7 s"
    for r in $(seq "$REPEATS"); do
      for s in $SERVERS; do
        run "idle-$n" "$s" "$r" --mode idle --subscribers "$n" --duration 7 --timeout 90
      done
    done
  done
fi

if wanted steady; then
  say "steady: ${steady[*]}, 256 B, one publisher"
  for r in $(seq "$REPEATS"); do
    for s in $SERVERS; do
      run steady "$s" "$r" --mode fanout "${steady[@]}" --size 256 --publishers 1 --timeout 90
    done
  done
fi

if wanted steady5k; then
  say "steady, more subscribers: ${steady5k[*]}, 256 B, one publisher"
  for r in $(seq "$REPEATS"); do
    for s in $SERVERS; do
      run steady5k "$s" "$r" --mode fanout "${steady5k[@]}" --size 256 --publishers 1 --timeout 120
    done
  done
fi

if wanted burst; then
  say "burst: ${burst[*]}, 256 B, as fast as two publishers go"
  for r in $(seq "$BURST_REPEATS"); do
    for s in $SERVERS; do
      run burst "$s" "$r" --mode fanout "${burst[@]}" --size 256 --publishers 2 --drain 5 --timeout 240
    done
  done
fi

if wanted batch; then
  say "batch: ${batch[*]}, 256 B, JSON-array POSTs as fast as one publisher goes"
  for r in $(seq "$REPEATS"); do
    for s in $SERVERS; do
      if supports_batch "$s"; then
        run batch "$s" "$r" --mode fanout "${batch[@]}" --size 256 --publishers 1 --drain 5 --timeout 240
      else
        unsupported batch "$s" "$r" "no batch publish"
      fi
    done
  done
fi

if wanted publish; then
  say "publish only: ${publish[*]}, 4 keep-alive connections, no subscribers"
  for r in $(seq "$REPEATS"); do
    for s in $SERVERS; do
      run publish "$s" "$r" --mode publish "${publish[@]}" --size 256 --publishers 4
    done
  done
fi
elapsed=$((SECONDS - started))
say "done in ${elapsed} s ($SCENARIOS); results in $OUT/results-*.jsonl"

# --- the tables ----------------------------------------------------------------------
# machine.json describes the machine and the last invocation; the results of
# scenarios not run this time are the ones left from an earlier run.
machine="$OUT/machine.json"
python3 - "$machine" "$elapsed" "$SCENARIOS" "$(version_of axum)" <<'EOF'
import json, os, platform, subprocess, sys, time
def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except Exception:
        return "?"
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem_kib = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal"))
json.dump({
    "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    "cpu": cpu,
    "cores": os.cpu_count(),
    "kernel": platform.release(),
    "memory_gib": round(mem_kib / 1024 / 1024, 1),
    "rustc": sh("rustc --version"),
    "node": sh("node --version"),
    "axum": sys.argv[4],
    "nginx": sh("nginx -v 2>&1").replace("nginx version: ", ""),
    "nchan": sh("dpkg-query -W -f='${Version}' libnginx-mod-nchan"),
    "max_map_count": open("/proc/sys/vm/max_map_count").read().strip(),
    "seconds": int(sys.argv[2]),
    "scenarios": sys.argv[3],
}, open(sys.argv[1], "w"))
EOF
results=("$OUT"/results-*.jsonl)
if $quick; then
  python3 "$root/bench/tables.py" "$machine" "${results[@]}"
else
  python3 "$root/bench/tables.py" "$machine" "${results[@]}" --write "$root/BENCHMARKS.md"
  say "BENCHMARKS.md updated"
fi
