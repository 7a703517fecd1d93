#!/usr/bin/env bash
# What presence, the auth callback and Idempotency-Key cost, each against
# the same hub without it, on loopback, alternating the two in every round:
#
#   bench/features.sh            3 rounds (the tables show the median)
#   ROUNDS=5 bench/features.sh
#   FIGURES=auth bench/features.sh    only some of: idempotency presence auth
#
#   idempotency  POST/s, 4 keep-alive publishers for 5 s, without and with
#                a fresh Idempotency-Key on every POST; on one hub, then on
#                one node of a cluster (a redis-server started here)
#   presence     1,000 subscribers on one channel connecting at once (256
#                in flight): the time to connect them all, without and
#                with --presence (each join is then one more publish, and
#                each leave when they go)
#   auth         1,000 subscribers on a private channel allowed by a local
#                backend: the time to connect them all, against the same
#                on a public channel. Two backends, so that the hub's own
#                cost shows: Python's http.server (a thread per request,
#                about 3 ms an answer) and, with node, Node's http module
#                (one event loop, kept-alive connections, well under 1 ms)
#
# Prints one line per figure and writes them to $OUT/features.jsonl. Needs
# python3; redis-server for the cluster figure and node for the second
# backend (each skipped without it). Ports: PORT (3650) and the next few
# for the backends and Redis, then one a hub from PORT+10 up.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
ROUNDS="${ROUNDS:-3}"
FIGURES="${FIGURES:-idempotency presence auth}"
wanted() { [[ " $FIGURES " == *" $1 "* ]]; }
OUT="${OUT:-$root/target/bench}"
mkdir -p "$OUT"
results="$OUT/features.jsonl"
: >"$results"

cargo build --release --quiet -p sse-hub --bin sse-hub
cargo build --release --quiet -p loadgen
hub_bin="$root/target/release/sse-hub"
loadgen="$root/target/release/loadgen"
base="${PORT:-3650}"
python_port=$((base + 1))
node_port=$((base + 2))
redis_port=$((base + 3))
port=$((base + 10))

start_hub() { # args...
  port=$((port + 1))
  "$hub_bin" --listen "127.0.0.1:$port" "$@" 2>"$OUT/features-hub.log" &
  hub_pid=$!
  for _ in $(seq 100); do
    grep -q "listening on" "$OUT/features-hub.log" 2>/dev/null && return
    sleep 0.05
  done
  echo "the hub did not start: $(cat "$OUT/features-hub.log")" >&2
  exit 1
}
stop_hub() { kill "$hub_pid" 2>/dev/null; wait "$hub_pid" 2>/dev/null || true; }

# figure NAME VARIANT JSON-FIELD loadgen-args...: runs loadgen, records it
figure() {
  local name=$1 variant=$2 field=$3
  shift 3
  local value
  value=$("$loadgen" --addr "127.0.0.1:$port" --pid "$hub_pid" "$@" 2>/dev/null |
    python3 -c "import json,sys; print(json.load(sys.stdin)['$field'])")
  printf '{"figure":"%s","variant":"%s","%s":%s}\n' "$name" "$variant" "$field" "$value" >>"$results"
  printf '%-12s %-24s %s %s\n' "$name" "$variant" "$field" "$value"
}

publish_args=(--mode publish --publishers 4 --duration 5)
idle_args=(--mode idle --subscribers 1000 --duration 1 --concurrency 256)

redis_pid=""
if wanted idempotency && command -v redis-server >/dev/null; then
  redis-server --port "$redis_port" --save "" --appendonly no --daemonize no >/dev/null &
  redis_pid=$!
  sleep 0.3
fi
backend_pid=""
node_pid=""
cleanup() {
  for pid in "${hub_pid:-}" "$redis_pid" "$backend_pid" "$node_pid"; do
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
  done
}
trap cleanup EXIT

# A backend that lets every subscriber in, as an application's would after
# looking up its session.
if wanted auth; then
  python3 - "$python_port" <<'EOF' &
import sys
import http.server
class Allow(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = b'{"subscribe":["room:*"],"user":"bench"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
class Quiet(http.server.ThreadingHTTPServer):
    def handle_error(self, request, address):
        pass  # a hub that gave up after its 2 s closed the connection
Quiet(("127.0.0.1", int(sys.argv[1])), Allow).serve_forever()
EOF
  backend_pid=$!
fi

# The same backend as fast as a local one gets: the user is the session
# cookie's value when there is one (loadgen sends none, so every
# subscriber is "bench", as above).
if wanted auth && command -v node >/dev/null; then
  node -e '
    const http = require("http");
    const server = http.createServer((req, res) => {
      const session = /(?:^|;\s*)session=([^;]*)/.exec(req.headers.cookie || "");
      const body = JSON.stringify({ subscribe: ["room:*"], user: session ? session[1] : "bench" });
      res.writeHead(200, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) });
      res.end(body);
    });
    server.keepAliveTimeout = 60000;
    server.listen(Number(process.argv[1]), "127.0.0.1");
  ' "$node_port" &
  node_pid=$!
fi
sleep 0.3

for round in $(seq "$ROUNDS"); do
  echo "== round $round"
  if wanted idempotency; then
    start_hub; figure idempotency "one hub, no key" posts_per_s "${publish_args[@]}"; stop_hub
    start_hub; figure idempotency "one hub, a key per POST" posts_per_s "${publish_args[@]}" --idempotency-keys; stop_hub
    if [ -n "$redis_pid" ]; then
      redis-cli -p "$redis_port" FLUSHALL >/dev/null
      start_hub --redis "redis://127.0.0.1:$redis_port/0"; figure idempotency "cluster node, no key" posts_per_s "${publish_args[@]}"; stop_hub
      redis-cli -p "$redis_port" FLUSHALL >/dev/null
      start_hub --redis "redis://127.0.0.1:$redis_port/0"; figure idempotency "cluster node, a key per POST" posts_per_s "${publish_args[@]}" --idempotency-keys; stop_hub
    fi
  fi
  if wanted presence; then
    start_hub; figure presence "without" connect_s "${idle_args[@]}" --sub-path "/events?channel=room:1"; stop_hub
    start_hub --presence 'room:*'; figure presence "with --presence" connect_s "${idle_args[@]}" --sub-path "/events?channel=room:1"; stop_hub
  fi
  if wanted auth; then
    start_hub --private 'room:*' --auth-url "http://127.0.0.1:$python_port/auth"
    figure auth "public channel" connect_s "${idle_args[@]}" --sub-path "/events?channel=news"
    figure auth "private, Python backend" connect_s "${idle_args[@]}" --sub-path "/events?channel=room:1"
    stop_hub
    if [ -n "$node_pid" ]; then
      start_hub --private 'room:*' --auth-url "http://127.0.0.1:$node_port/auth"
      figure auth "public channel (2)" connect_s "${idle_args[@]}" --sub-path "/events?channel=news"
      figure auth "private, Node backend" connect_s "${idle_args[@]}" --sub-path "/events?channel=room:1"
      stop_hub
    fi
  fi
done

echo "== medians"
python3 - "$results" <<'EOF'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
seen = {}
for row in rows:
    field = [k for k in row if k not in ("figure", "variant")][0]
    seen.setdefault((row["figure"], row["variant"], field), []).append(row[field])
for (figure, variant, field), values in seen.items():
    print(f"{figure:12} {variant:30} {field} median {statistics.median(values):.3f}  ({', '.join(f'{v:.3f}' for v in values)})")
EOF
