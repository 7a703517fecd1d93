#!/usr/bin/env bash
# Cluster mode against the in-memory hub, in one run, on loopback, with the
# load generator of bench/loadgen:
#
#   1. hop:     10 and 1,000 subscribers, 100 msg/s, straight to one hub: in
#               memory, then one clustered node (its Redis on the same
#               machine). The difference in latency is what the Redis hop adds.
#   2. publish: POSTs per second on one hub, in memory and clustered.
#   3. nodes:   1,000 subscribers shared by 1, 2 and 3 clustered nodes behind
#               nginx (round robin, the README's proxy settings), against the
#               in-memory hub behind the same nginx: a burst of messages as
#               fast as they are answered; deliveries/s, latency p50/p99.
#
#   bench/cluster/run.sh           about three minutes
#   SUBSCRIBERS=1000 MESSAGES=1000 PUBLISHERS=4 bench/cluster/run.sh
#
# Results: target/bench/cluster/results.jsonl (one loadgen JSON line per
# run) and a Markdown table on stdout. Needs redis-server and nginx (from
# Debian's packages; installed if missing, as root).
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$(pwd)"
SUBSCRIBERS="${SUBSCRIBERS:-1000}"
MESSAGES="${MESSAGES:-1000}"
PUBLISHERS="${PUBLISHERS:-4}"
HOP_SUBSCRIBERS="${HOP_SUBSCRIBERS:-10 $SUBSCRIBERS}"
OUT="${OUT:-$root/target/bench/cluster}"
mkdir -p "$OUT/logs"
results="$OUT/results.jsonl"
: >"$results"

say() { printf '\n== %s (%s)\n' "$*" "$(date +%T)" >&2; }

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v nginx >/dev/null || missing+=(nginx)
command -v python3 >/dev/null || missing+=(python3)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

say "building release binaries"
cargo build --release --quiet -p sse-hub -p loadgen --bins
hub_bin="$root/target/release/sse-hub"
loadgen="$root/target/release/loadgen"
ulimit -n "$(ulimit -Hn)"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

children=()
scratch=()
cleanup() {
  for pid in "${children[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for dir in "${scratch[@]}"; do rm -rf "$dir"; done
}
trap cleanup EXIT

# --- Redis --------------------------------------------------------------------
redis_dir="$(mktemp -d /tmp/sse-hub-bench-redis.XXXXXX)"
scratch+=("$redis_dir")
redis_port="$(free_port)"
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$redis_dir" >"$OUT/logs/redis.log" 2>&1 &
children+=($!)
for _ in $(seq 100); do
  redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
  sleep 0.05
done
redis_url="redis://127.0.0.1:$redis_port/0"
echo "redis-server $(redis-server --version | grep -o 'v=[0-9.]*') on port $redis_port" >&2

# --- hubs ---------------------------------------------------------------------
# start_hub NAME [ARGS...]: starts a hub on a free port; sets HUB_ADDR and
# HUB_PID.
start_hub() {
  local name="$1"
  shift
  local log="$OUT/logs/$name.log"
  RUST_LOG=warn "$hub_bin" --listen 127.0.0.1:0 --max-clients 20000 "$@" 2>"$log" &
  HUB_PID=$!
  children+=("$HUB_PID")
  HUB_ADDR=""
  for _ in $(seq 200); do
    HUB_ADDR="$(grep -o 'listening on http://[0-9.:]*' "$log" | head -1 | sed 's|listening on http://||')" || true
    [ -n "$HUB_ADDR" ] && return 0
    sleep 0.05
  done
  echo "hub $name did not start: $(cat "$log")" >&2
  exit 1
}

stop_hubs() { # PIDS...
  for pid in "$@"; do kill "$pid" 2>/dev/null || true; done
  for pid in "$@"; do wait "$pid" 2>/dev/null || true; done
}

# A fresh stream for every clustered run, so that no run reads another's.
fresh_stream() { redis-cli -p "$redis_port" flushall >/dev/null; }

# run LABEL ADDR PIDS LOADGEN-ARGS...: one loadgen run, its JSON line kept.
run() {
  local label="$1" addr="$2" pids="$3"
  shift 3
  say "$label"
  "$loadgen" --label "$label" --addr "$addr" --pid "$pids" --timeout 120 "$@" \
    2>"$OUT/logs/$label.log" | tee -a "$results" >/dev/null
  grep -E '^\[' "$OUT/logs/$label.log" >&2 || true
}

# --- 1. hop -------------------------------------------------------------------
# At 1,000 subscribers the fan-out itself takes most of the latency on a
# small machine; at 10, the hop shows on its own.
for subs in $HOP_SUBSCRIBERS; do
  steady=(--mode fanout --subscribers "$subs" --messages 500 --rate 100 --size 256)
  start_hub memory
  run "hop-memory-$subs" "$HUB_ADDR" "$HUB_PID" "${steady[@]}"
  stop_hubs "$HUB_PID"
  fresh_stream
  start_hub node1 --redis "$redis_url"
  run "hop-cluster-$subs" "$HUB_ADDR" "$HUB_PID" "${steady[@]}"
  stop_hubs "$HUB_PID"
done

# --- 2. publish rate ------------------------------------------------------------
publish=(--mode publish --duration 5 --publishers "$PUBLISHERS" --size 256)
start_hub memory
run publish-memory "$HUB_ADDR" "$HUB_PID" "${publish[@]}"
stop_hubs "$HUB_PID"
fresh_stream
start_hub node1 --redis "$redis_url"
run publish-cluster "$HUB_ADDR" "$HUB_PID" "${publish[@]}"
stop_hubs "$HUB_PID"

# --- 3. nodes behind nginx ------------------------------------------------------
# start_nginx ADDR...: round robin over the hubs, with the README's settings
# for event streams; sets NGINX_ADDR.
start_nginx() {
  local prefix port servers=""
  prefix="$(mktemp -d /tmp/sse-hub-bench-nginx.XXXXXX)"
  scratch+=("$prefix")
  port="$(free_port)"
  for addr in "$@"; do servers+="    server $addr;"$'\n'; done
  mkdir -p "$prefix/logs"
  cat >"$prefix/nginx.conf" <<EOF
worker_processes auto;
$( [ "$(id -u)" = 0 ] && echo 'user root;' )
daemon off;
pid $prefix/nginx.pid;
error_log $prefix/logs/error.log warn;
events { worker_connections 16384; }
http {
  access_log off;
  client_body_temp_path $prefix/body;
  proxy_temp_path $prefix/proxy;
  fastcgi_temp_path $prefix/fastcgi;
  uwsgi_temp_path $prefix/uwsgi;
  scgi_temp_path $prefix/scgi;
  upstream sse_hub {
$servers    keepalive 16;
  }
  server {
    listen 127.0.0.1:$port;
    location /events {
      proxy_pass http://sse_hub;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_cache off;
      proxy_read_timeout 1h;
    }
    location / {
      proxy_pass http://sse_hub;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      client_max_body_size 64k;
    }
  }
}
EOF
  nginx -p "$prefix/" -c "$prefix/nginx.conf" &
  NGINX_PID=$!
  children+=("$NGINX_PID")
  NGINX_ADDR="127.0.0.1:$port"
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nginx did not start: $(cat "$prefix/logs/error.log")" >&2
  exit 1
}

burst=(--mode fanout --subscribers "$SUBSCRIBERS" --messages "$MESSAGES" --rate 0
  --publishers "$PUBLISHERS" --size 256)
start_hub memory
start_nginx "$HUB_ADDR"
run nodes-memory "$NGINX_ADDR" "$HUB_PID" "${burst[@]}"
stop_hubs "$NGINX_PID" "$HUB_PID"
for n in 1 2 3; do
  fresh_stream
  addrs=()
  pids=()
  for i in $(seq "$n"); do
    start_hub "node$i" --redis "$redis_url"
    addrs+=("$HUB_ADDR")
    pids+=("$HUB_PID")
  done
  start_nginx "${addrs[@]}"
  run "nodes-cluster-$n" "$NGINX_ADDR" "$(IFS=,; echo "${pids[*]}")" "${burst[@]}"
  stop_hubs "$NGINX_PID" "${pids[@]}"
done

# --- the table ----------------------------------------------------------------
python3 - "$results" <<'EOF'
import json, sys
runs = {r["label"]: r for r in map(json.loads, open(sys.argv[1]))}
def lat(r): return f'{r["latency_ms"]["p50"]:.2f} / {r["latency_ms"]["p99"]:.2f}'
def lost(r): return f'{r["lost"]} lost, {r["duplicated"]} dup, {r["out_of_order"]} out of order'
print("| run | deliveries/s | latency p50 / p99 (ms) | publish rate (msg/s) | delivery |")
print("|---|---|---|---|---|")
hops = sorted({int(l.rsplit("-", 1)[1]) for l in runs if l.startswith("hop-memory-")})
labels = [f"hop-{kind}-{n}" for n in hops for kind in ("memory", "cluster")]
for label in labels + ["nodes-memory", "nodes-cluster-1", "nodes-cluster-2", "nodes-cluster-3"]:
    r = runs.get(label)
    if r:
        print(f'| {label} | {r["deliveries_per_s"]:.0f} | {lat(r)} | {r["publish_rate"]:.0f} | {lost(r)} |')
print()
for n in hops:
    m, c = runs.get(f"hop-memory-{n}"), runs.get(f"hop-cluster-{n}")
    if m and c:
        print(f'Redis hop at {n} subscribers: p50 {c["latency_ms"]["p50"] - m["latency_ms"]["p50"]:+.2f} ms, '
              f'p99 {c["latency_ms"]["p99"] - m["latency_ms"]["p99"]:+.2f} ms')
pm, pc = runs.get("publish-memory"), runs.get("publish-cluster")
if pm and pc:
    print(f'Publish rate: in memory {pm["posts_per_s"]:.0f}/s, clustered {pc["posts_per_s"]:.0f}/s '
          f'({pc["posts_per_s"] / pm["posts_per_s"]:.2f}x); round trip p50 {pm["publish_rtt_ms"]["p50"]} / {pc["publish_rtt_ms"]["p50"]} ms, '
          f'errors {pm["publish_errors"]} / {pc["publish_errors"]}')
EOF
