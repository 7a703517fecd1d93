#!/usr/bin/env bash
# What HTTPS costs (BENCHMARKS.md, "HTTPS"): sse-hub over plain HTTP and
# over TLS (--tls-cert/--tls-key), beside nginx+nchan over plain HTTP and
# with `listen ... ssl`, in the same run, on loopback, with bench/loadgen
# (its --tls-ca speaks HTTPS with rustls on ring, trusting a CA this script
# makes with openssl). For each server and each repeat:
#   idle-N      N streams held 7 s: the server's RSS (and threads) per stream
#   handshake   HANDSHAKES fresh connections on 2 threads: connect, a full
#               TLS handshake (no resumption), GET /healthz, the reply
#   resumption  the same for the TLS servers, the client resuming sessions
#   burst       BURST_SUBS streams, BURST_MSGS messages of 256 B as fast as
#               2 publishers go: deliveries per second
# then prints the medians and ratios as Markdown tables (and writes them to
# $OUT/tables.md).
#
#   bench/tls.sh                       # the full run (10 to 20 minutes)
#   RUNS=1 IDLE_SIZES=200 HANDSHAKES=300 BURST_SUBS=100 BURST_MSGS=200 bench/tls.sh
#   SERVERS="sse-hub sse-hub-tls" SCENARIOS="handshake" bench/tls.sh
#
# The key is ECDSA P-256 (certbot's default key type); KEY=rsa makes an
# RSA 2048 one instead. Each scenario waits (up to LOAD_WAIT s) for the
# 1-minute load average to fall below MAX_LOAD; each run then waits (up to
# QUIET_WAIT s) until the whole machine is less than QUIET_BUSY % busy over
# one second, as bench/run.sh does (the load average would mostly measure
# the previous run's thousand threads). Both are recorded with the run.
# Needs openssl, curl, python3 and, for nchan, nginx with
# libnginx-mod-nchan (installed if missing, as bench/run.sh does).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

RUNS="${RUNS:-3}"
SERVERS="${SERVERS:-sse-hub sse-hub-tls nchan nchan-tls}"
SCENARIOS="${SCENARIOS:-idle handshake resumption burst}"
IDLE_SIZES="${IDLE_SIZES:-1000 2000}"
HANDSHAKES="${HANDSHAKES:-2000}"
BURST_SUBS="${BURST_SUBS:-1000}"
BURST_MSGS="${BURST_MSGS:-2000}"
KEY="${KEY:-ecdsa}"
MAX_LOAD="${MAX_LOAD:-3}"
LOAD_WAIT="${LOAD_WAIT:-900}"
QUIET_BUSY="${QUIET_BUSY:-25}"
QUIET_WAIT="${QUIET_WAIT:-60}"
OUT="${OUT:-$root/target/bench-tls}"
mkdir -p "$OUT/logs"
results="$OUT/results.jsonl"
: >"$results"
wanted() { case " $SCENARIOS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
serving() { case " $SERVERS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
say() { printf '\n== %s (%s)\n' "$*" "$(date +%T)" >&2; }

if serving nchan || serving nchan-tls; then
  if ! command -v nginx >/dev/null || [ ! -f /usr/lib/nginx/modules/ngx_nchan_module.so ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx libnginx-mod-nchan >/dev/null
  fi
fi

say "building release binaries"
target="${CARGO_TARGET_DIR:-$root/target}"
cargo build --release --quiet -p sse-hub -p loadgen --bins
hub_bin="$target/release/sse-hub"
loadgen="$target/release/loadgen"
hub_version="sse-hub $(git -C "$root" describe --always --dirty 2>/dev/null || echo '?')"
ulimit -n "$(ulimit -Hn)"

# --- a CA and a certificate for 127.0.0.1 --------------------------------------
say "making a CA and a $KEY server certificate"
certs="$OUT/certs"
rm -rf "$certs"
mkdir -p "$certs"
case "$KEY" in
  ecdsa) newkey=(-newkey ec -pkeyopt ec_paramgen_curve:P-256) ;;
  rsa) newkey=(-newkey rsa:2048) ;;
  *) echo "KEY is ecdsa or rsa" >&2; exit 2 ;;
esac
openssl req -x509 -nodes "${newkey[@]}" -keyout "$certs/ca.key" -out "$certs/ca.pem" \
  -days 2 -subj "/CN=sse-hub bench CA" 2>/dev/null
openssl req -nodes "${newkey[@]}" -keyout "$certs/server.key" -out "$certs/server.csr" \
  -subj "/CN=127.0.0.1" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' >"$certs/ext.cnf"
openssl x509 -req -in "$certs/server.csr" -CA "$certs/ca.pem" -CAkey "$certs/ca.key" \
  -CAcreateserial -days 2 -extfile "$certs/ext.cnf" -out "$certs/server.pem" 2>/dev/null
# nginx runs as nobody (bench/peers/nchan/run.sh): a throwaway key it can read.
chmod 755 "$certs"
chmod 644 "$certs"/*

# --- servers --------------------------------------------------------------------
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for_log() { # FILE -> the port in its "listening on http(s)://IP:PORT" line
  local port=""
  for _ in $(seq 100); do
    port="$(grep -o 'listening on https\?://[0-9.]*:[0-9]*' "$1" 2>/dev/null | head -1 | sed 's/.*://')" || true
    [ -n "$port" ] && break
    sleep 0.05
  done
  [ -n "$port" ] || { echo "server did not start; log:" >&2; cat "$1" >&2; exit 1; }
  echo "$port"
}

# nginx+nchan as bench/peers/nchan/run.sh runs it, from the same template,
# with `ssl` on the listener and the certificate for nchan-tls.
start_nchan() { # PORT PREFIX LOG TLS(true/false)
  local port="$1" prefix="$2" log="$3" tls="$4"
  rm -rf "$prefix"
  mkdir -p "$prefix/logs" "$prefix/tmp"
  local conf="$prefix/nginx.conf"
  sed "s/__PORT__/$port/" "$root/bench/peers/nchan/nginx.conf.template" >"$conf"
  if $tls; then
    sed -i "s|^\(\s*listen 127.0.0.1:$port\) backlog=4096;|\1 ssl backlog=4096;\n        ssl_certificate $certs/server.pem;\n        ssl_certificate_key $certs/server.key;|" "$conf"
    grep -q ' ssl backlog' "$conf" || { echo "the nchan template's listen line changed" >&2; exit 1; }
  fi
  if [ "$(id -u)" = 0 ]; then
    mkdir -p /var/lib/nginx/body
    chown -R nobody:nogroup "$prefix"
    setpriv --reuid=nobody --regid=nogroup --clear-groups \
      nginx -p "$prefix/" -c "$conf" -e "$prefix/logs/error.log" >"$log" 2>&1 &
  else
    nginx -p "$prefix/" -c "$conf" -e "$prefix/logs/error.log" >"$log" 2>&1 &
  fi
  MAIN=$!
}

# start_server NAME LOG sets PORT, MAIN, PIDS, SUB/PUB/BODY and TLS (the
# loadgen arguments for HTTPS).
start_server() {
  local log="$2"
  TLS=()
  case "$1" in
    sse-hub | sse-hub-tls)
      local extra=()
      if [ "$1" = sse-hub-tls ]; then
        extra=(--tls-cert "$certs/server.pem" --tls-key "$certs/server.key")
        TLS=(--tls-ca "$certs/ca.pem")
      fi
      # As bench/run.sh starts it: warnings only, room for the streams.
      RUST_LOG=warn,sse_hub::server=info "$hub_bin" --listen 127.0.0.1:0 --max-clients 10000 \
        "${extra[@]}" 2>"$log" &
      MAIN=$!
      PORT="$(wait_for_log "$log")"
      PIDS="$MAIN"
      SUB=/events PUB=/broadcast BODY=json
      ;;
    nchan | nchan-tls)
      PORT="$(free_port)"
      local tls=false scheme=http curl_ca=()
      if [ "$1" = nchan-tls ]; then
        tls=true scheme=https curl_ca=(--cacert "$certs/ca.pem")
        TLS=(--tls-ca "$certs/ca.pem")
      fi
      start_nchan "$PORT" "$OUT/nchan-prefix" "$log" "$tls"
      local up=false
      for _ in $(seq 100); do
        curl -fs "${curl_ca[@]}" "$scheme://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && { up=true; break; }
        sleep 0.05
      done
      $up || { echo "nginx did not start; log:" >&2; cat "$log" "$OUT/nchan-prefix/logs/error.log" >&2; exit 1; }
      PIDS="$MAIN,$(pgrep -P "$MAIN" | paste -sd, - || true)"
      SUB=/sub/bench PUB='/pub?id=bench' BODY=raw
      ;;
    *) echo "unknown server $1" >&2; exit 2 ;;
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
    sse-hub*) echo "$hub_version" ;;
    nchan*) echo "nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'), nchan $(dpkg-query -W -f='${Version}' libnginx-mod-nchan 2>/dev/null || echo '?')" ;;
  esac
}

load1() { cut -d' ' -f1 /proc/loadavg; }
wait_load() { # until the 1-minute load is below MAX_LOAD, or LOAD_WAIT s
  local start=$SECONDS
  while awk -v l="$(load1)" -v m="$MAX_LOAD" 'BEGIN { exit !(l >= m) }' &&
    [ $((SECONDS - start)) -lt "$LOAD_WAIT" ]; do
    sleep 5
  done
  load1
}

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

scenario_load=""
scenario_start() { # WHAT
  say "$1: waiting for the load average to fall below $MAX_LOAD"
  scenario_load="$(wait_load)"
  say "$1 (load $scenario_load)"
}

# run SCENARIO SERVER REPEAT LOADGEN-ARGS...
run() {
  local scenario="$1" server="$2" repeat="$3" busy
  shift 3
  busy="$(wait_quiet)"
  start_server "$server" "$OUT/logs/$scenario-$server-$repeat.log"
  echo "-- $scenario / $server / run $repeat (machine busy ${busy}% before, load $(load1))" >&2
  "$loadgen" --addr "127.0.0.1:$PORT" --pid "$PIDS" --label "$server" \
    --sub-path "$SUB" --pub-path "$PUB" --body "$BODY" "${TLS[@]}" \
    --tag "scenario=$scenario" --tag "repeat=$repeat" --tag "load_before=$(load1)" --tag "scenario_load=$scenario_load" --tag "busy_before_pct=$busy" \
    --tag "key=$KEY" --tag "version=$(version_of "$server")" \
    "$@" >>"$results" 2>"$OUT/logs/$scenario-$server-$repeat.loadgen" ||
    echo "   (loadgen failed; see $OUT/logs/$scenario-$server-$repeat.loadgen)" >&2
  grep "^\[$server\]" "$OUT/logs/$scenario-$server-$repeat.loadgen" | sed 's/^/   /' >&2 || true
  stop_server
  # Let the kernel finish closing thousands of sockets before the next run.
  sleep 1
}

started=$SECONDS
if wanted idle; then
  for n in $IDLE_SIZES; do
    scenario_start "idle: $n streams held 7 s"
    for r in $(seq "$RUNS"); do
      for s in $SERVERS; do
        run "idle-$n" "$s" "$r" --mode idle --subscribers "$n" --duration 7 --timeout 90
      done
    done
  done
fi
if wanted handshake; then
  scenario_start "handshake: $HANDSHAKES fresh connections, 2 threads, GET /healthz each"
  for r in $(seq "$RUNS"); do
    for s in $SERVERS; do
      run handshake "$s" "$r" --mode handshake --connections "$HANDSHAKES" --workers 2 --timeout 120
    done
  done
fi
if wanted resumption; then
  scenario_start "resumption: $HANDSHAKES fresh connections resuming TLS sessions"
  for r in $(seq "$RUNS"); do
    for s in $SERVERS; do
      case "$s" in
        *-tls) run resumption "$s" "$r" --mode handshake --connections "$HANDSHAKES" --workers 2 \
          --tls-resumption --timeout 120 ;;
      esac
    done
  done
fi
if wanted burst; then
  scenario_start "burst: $BURST_SUBS streams, $BURST_MSGS messages of 256 B, 2 publishers"
  for r in $(seq "$RUNS"); do
    for s in $SERVERS; do
      run burst "$s" "$r" --mode fanout --subscribers "$BURST_SUBS" --messages "$BURST_MSGS" \
        --size 256 --publishers 2 --drain 5 --timeout 240
    done
  done
fi
say "done in $((SECONDS - started)) s; results in $results"

# --- the tables ------------------------------------------------------------------
python3 - "$results" "$SERVERS" <<'EOF' | tee "$OUT/tables.md"
import json, statistics, sys
from collections import defaultdict

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
servers = sys.argv[2].split()
by = defaultdict(list)
for r in rows:
    by[(r["tags"]["scenario"], r["label"])].append(r)

def med(scenario, server, get):
    values = [get(r) for r in by.get((scenario, server), [])]
    values = [v for v in values if v is not None]
    if not values:
        return None, 0
    return statistics.median(values), len(values)

def fmt(value, places=0):
    if value is None:
        return "not run"
    return f"{value:,.{places}f}"

def ratio(a, b, places=2):
    if a is None or b is None or b == 0:
        return ""
    return f"{a / b:.{places}f}x"

pairs = [("sse-hub", "sse-hub-tls"), ("nchan", "nchan-tls")]
scenarios = sorted({s for s, _ in by})
loads = [float(r["tags"]["scenario_load"]) for r in rows if r["tags"].get("scenario_load")]
busy = [int(r["tags"]["busy_before_pct"]) for r in rows if r["tags"].get("busy_before_pct")]
if loads and busy:
    print(f"Load average (1 min) at the start of each scenario: {min(loads):.2f} to {max(loads):.2f}; "
          f"machine busy before each run: {min(busy)} to {max(busy)} %.\n")

for scenario in [s for s in scenarios if s.startswith("idle-")]:
    n = scenario.split("-")[1]
    print(f"\n**Idle, {n} streams** (median of the runs; KiB of server RSS per open stream)\n")
    print("| server | runs | open | RSS KiB/stream, plain | over TLS | TLS / plain | threads/stream |")
    print("|---|---|---|---|---|---|---|")
    for plain, tls in pairs:
        if plain not in servers and tls not in servers:
            continue
        p, _ = med(scenario, plain, lambda r: r["rss_kib_per_client"] if r["open"] else None)
        t, runs = med(scenario, tls, lambda r: r["rss_kib_per_client"] if r["open"] else None)
        opened, _ = med(scenario, tls, lambda r: r["open"])
        th, _ = med(scenario, tls, lambda r: r["threads_per_client"])
        print(f"| {plain} | {runs} | {fmt(opened)} | {fmt(p, 1)} | {fmt(t, 1)} | {ratio(t, p)} | {fmt(th, 2)} |")

if "handshake" in scenarios:
    print("\n**Fresh connections** (connect, handshake, GET /healthz, the reply; 2 client threads; median of the runs)\n")
    print("| server | runs | per s, plain | per s, TLS | TLS / plain | TLS handshake p50 ms | p99 ms | server CPU us/conn, plain | TLS |")
    print("|---|---|---|---|---|---|---|---|---|")
    for plain, tls in pairs:
        if plain not in servers and tls not in servers:
            continue
        p, _ = med("handshake", plain, lambda r: r["connections_per_s"] if r["ok"] else None)
        t, runs = med("handshake", tls, lambda r: r["connections_per_s"] if r["ok"] else None)
        h50, _ = med("handshake", tls, lambda r: r["handshake_ms"]["p50"])
        h99, _ = med("handshake", tls, lambda r: r["handshake_ms"]["p99"])
        cp, _ = med("handshake", plain, lambda r: r["server_cpu_us_per_connection"])
        ct, _ = med("handshake", tls, lambda r: r["server_cpu_us_per_connection"])
        print(f"| {plain} | {runs} | {fmt(p)} | {fmt(t)} | {ratio(t, p)} | {fmt(h50, 3)} | {fmt(h99, 3)} | {fmt(cp)} | {fmt(ct)} |")

if "resumption" in scenarios:
    print("\n**Fresh connections resuming a TLS session** (the client keeps sessions; otherwise as above)\n")
    print("| server | runs | resumed | per s | / full handshakes | handshake p50 ms | server CPU us/conn |")
    print("|---|---|---|---|---|---|---|")
    for _, tls in pairs:
        if tls not in servers:
            continue
        t, runs = med("resumption", tls, lambda r: r["connections_per_s"] if r["ok"] else None)
        full, _ = med("handshake", tls, lambda r: r["connections_per_s"] if r["ok"] else None)
        h50, _ = med("resumption", tls, lambda r: r["handshake_ms"]["p50"])
        ct, _ = med("resumption", tls, lambda r: r["server_cpu_us_per_connection"])
        resumed = sum(r.get("resumed", 0) for r in by.get(("resumption", tls), []))
        conns = sum(r["ok"] for r in by.get(("resumption", tls), []))
        print(f"| {tls} | {runs} | {resumed} of {conns} | {fmt(t)} | {ratio(t, full)} | {fmt(h50, 3)} | {fmt(ct)} |")

if "burst" in scenarios:
    print("\n**Burst** (deliveries per second, median of the runs; loss counts every run)\n")
    print("| server | runs | deliveries/s, plain | over TLS | TLS / plain | server CPU s per million, plain | TLS | lost (plain, TLS) |")
    print("|---|---|---|---|---|---|---|---|")
    for plain, tls in pairs:
        if plain not in servers and tls not in servers:
            continue
        p, _ = med("burst", plain, lambda r: r["deliveries_per_s"])
        t, runs = med("burst", tls, lambda r: r["deliveries_per_s"])
        cp, _ = med("burst", plain, lambda r: r["server_cpu_s_per_million"])
        ct, _ = med("burst", tls, lambda r: r["server_cpu_s_per_million"])
        lost = lambda s: sum(r["lost"] for r in by.get(("burst", s), []))
        print(f"| {plain} | {runs} | {fmt(p)} | {fmt(t)} | {ratio(t, p)} | {fmt(cp, 2)} | {fmt(ct, 2)} | {lost(plain)}, {lost(tls)} |")
EOF
