#!/usr/bin/env bash
# What strict HTTP parsing cost: sse-hub built from this tree against
# sse-hub built from a commit before the strict head parser and body decoder
# (issue 18), with nginx+nchan in the same run as a fixed point, on
# loopback, with bench/run.sh's load generator and its scenarios:
#   publish   no streams, four keep-alive publishers for PUBLISH_SECONDS:
#             POST/s and server CPU per POST (every POST goes through the
#             head parser and the body decoder)
#   burst     BURST_SUBSCRIBERS streams, BURST_MESSAGES messages of 256 B
#             as fast as two publishers go: deliveries/s
# Runs are interleaved (before, after, nchan, before, ...) so that a change
# in the machine's load hits all three alike; the summary gives each
# figure's median, its range, and the ratio after/before.
#
#   BEFORE_BIN=/tmp/before/target/release/sse-hub bench/strict_parsing.sh
#
# Without BEFORE_BIN, BEFORE (a commit, default 5012560, the first parent
# of the merge of the strict parser) is checked out in a temporary worktree
# and built there. The table goes to stdout and OUT/summary.md, each run's
# JSON line to OUT/results.jsonl. Environment: REPEATS=5, PUBLISH_SECONDS=5,
# BURST_SUBSCRIBERS=1000, BURST_MESSAGES=2000, OUT=target/bench/strict.
# Needs nginx and libnginx-mod-nchan (bench/run.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
REPEATS="${REPEATS:-5}"
PUBLISH_SECONDS="${PUBLISH_SECONDS:-5}"
BURST_SUBSCRIBERS="${BURST_SUBSCRIBERS:-1000}"
BURST_MESSAGES="${BURST_MESSAGES:-2000}"
OUT="${OUT:-$root/target/bench/strict}"
BEFORE="${BEFORE:-5012560}"
mkdir -p "$OUT/logs"
: >"$OUT/results.jsonl"

say() { printf '\n== %s (%s)\n' "$*" "$(date +%T)" >&2; }

[ -f /usr/lib/nginx/modules/ngx_nchan_module.so ] ||
  { echo "needs nginx and libnginx-mod-nchan (apt-get install nginx libnginx-mod-nchan)" >&2; exit 1; }

say "building"
target="${CARGO_TARGET_DIR:-$root/target}"
cargo build --release --quiet -p loadgen -p sse-hub --bins
after_bin="$target/release/sse-hub"
loadgen="$target/release/loadgen"
if [ -z "${BEFORE_BIN:-}" ]; then
  before_tree="$(mktemp -d /tmp/sse-hub-before.XXXXXX)"
  git -C "$root" worktree add --detach "$before_tree" "$BEFORE" >/dev/null
  trap 'git -C "$root" worktree remove --force "$before_tree"' EXIT
  (cd "$before_tree" && cargo build --release --quiet --bin sse-hub)
  BEFORE_BIN="$before_tree/target/release/sse-hub"
fi
after_version="$(git -C "$root" describe --always --dirty)"
before_version="$(git -C "$root" describe --always "$BEFORE" 2>/dev/null || echo "$BEFORE")"

ulimit -n "$(ulimit -Hn)"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_server() { # NAME LOG: sets PORT, MAIN, PIDS, SUB, PUB, BODY
  local log="$2" bin
  case "$1" in
    before | after)
      bin="$after_bin"
      [ "$1" = before ] && bin="$BEFORE_BIN"
      RUST_LOG=warn,sse_hub::server=info "$bin" --listen 127.0.0.1:0 --max-clients 10000 2>"$log" &
      MAIN=$!
      PORT=""
      for _ in $(seq 100); do
        PORT="$(grep -o 'listening on http://[0-9.]*:[0-9]*' "$log" 2>/dev/null | head -1 | sed 's/.*://')" || true
        [ -n "$PORT" ] && break
        sleep 0.05
      done
      [ -n "$PORT" ] || { echo "sse-hub did not start:" >&2; cat "$log" >&2; exit 1; }
      PIDS="$MAIN" SUB=/events PUB=/broadcast BODY=json
      ;;
    nchan)
      PORT="$(free_port)"
      rm -rf "$OUT/nchan-prefix"
      "$root/bench/peers/nchan/run.sh" "$PORT" "$OUT/nchan-prefix" >"$log" 2>&1 &
      MAIN=$!
      for _ in $(seq 100); do
        curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
        sleep 0.05
      done
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
trap 'stop_server; [ -n "${before_tree:-}" ] && git -C "$root" worktree remove --force "$before_tree"' EXIT

run() { # SCENARIO SERVER REPEAT LOADGEN-ARGS...
  local scenario="$1" server="$2" repeat="$3" version="$after_version"
  shift 3
  [ "$server" = before ] && version="$before_version"
  [ "$server" = nchan ] && version="nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'), nchan $(dpkg-query -W -f='${Version}' libnginx-mod-nchan)"
  start_server "$server" "$OUT/logs/$scenario-$server-$repeat.log"
  "$loadgen" --addr "127.0.0.1:$PORT" --pid "$PIDS" --label "$server" \
    --sub-path "$SUB" --pub-path "$PUB" --body "$BODY" \
    --tag "scenario=$scenario" --tag "repeat=$repeat" --tag "version=$version" \
    --tag "load1=$(cut -d' ' -f1 /proc/loadavg)" \
    "$@" >>"$OUT/results.jsonl" 2>>"$OUT/loadgen.log" || echo "   (loadgen failed; see $OUT/loadgen.log)" >&2
  stop_server
  sleep 1
}

say "publish only, ${PUBLISH_SECONDS} s, 4 publishers; burst, $BURST_SUBSCRIBERS x $BURST_MESSAGES; $REPEATS rounds"
for r in $(seq "$REPEATS"); do
  for s in before after nchan; do
    run publish "$s" "$r" --mode publish --duration "$PUBLISH_SECONDS" --size 256 --publishers 4
    run burst "$s" "$r" --mode fanout --subscribers "$BURST_SUBSCRIBERS" --messages "$BURST_MESSAGES" \
      --size 256 --publishers 2 --drain 5 --timeout 240
  done
  echo "   round $r done" >&2
done

python3 - "$OUT/results.jsonl" <<'EOF' | tee "$OUT/summary.md"
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def values(scenario, server, key):
    return [r[key] for r in runs if r["tags"]["scenario"] == scenario and r["label"] == server and r.get(key) is not None]
figures = [("publish", "POST/s", "posts_per_s", 0), ("publish", "server CPU per POST (us)", "server_cpu_us_per_post", 2),
           ("burst", "deliveries/s", "deliveries_per_s", 0), ("burst", "server CPU per delivery (us)", "server_cpu_s_per_million", 2)]
print("| figure | before | after | after/before | nginx+nchan |")
print("|---|---|---|---|---|")
for scenario, name, key, digits in figures:
    cells, medians = [], {}
    for server in ("before", "after", "nchan"):
        v = values(scenario, server, key)
        if not v:
            cells.append("-")
            continue
        medians[server] = statistics.median(v)
        cells.append(f"{medians[server]:,.{digits}f} ({min(v):,.{digits}f} to {max(v):,.{digits}f})")
    ratio = f"{medians['after'] / medians['before']:.3f}" if "after" in medians and medians.get("before") else "-"
    print(f"| {scenario}: {name} | {cells[0]} | {cells[1]} | {ratio} | {cells[2]} |")
for server in ("before", "after", "nchan"):
    errors = sum(sum(values(s, server, "publish_errors")) for s in ("publish", "burst"))
    lost = sum(values("burst", server, "lost"))
    print(f"{server}: {errors} publish errors, {lost} deliveries lost")
loads = [float(r["tags"]["load1"]) for r in runs]
print(f"\n{len(runs)} runs; load average (1 min) at their starts: {min(loads):.2f} to {max(loads):.2f}")
EOF
