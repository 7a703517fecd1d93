#!/usr/bin/env bash
# Runs nginx + nchan in the foreground from a fresh prefix, on loopback:
#   bench/peers/nchan/run.sh PORT [PREFIX]
# As root it drops to nobody:nogroup; never touches the system nginx.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
port="${1:?usage: run.sh PORT [PREFIX]}"
prefix="${2:-$(mktemp -d /tmp/nchan-peer.XXXXXX)}"
mkdir -p "$prefix/logs" "$prefix/tmp"
sed "s/__PORT__/$port/" "$here/nginx.conf.template" >"$prefix/nginx.conf"
if [ "$(id -u)" = 0 ]; then
  # nchan's message temp path is fixed at the build's client body path and
  # cannot be set (the directive reports "duplicate"); nginx only checks
  # that it exists. Bodies stay in memory (client_body_buffer_size).
  mkdir -p /var/lib/nginx/body
  chown -R nobody:nogroup "$prefix"
  exec setpriv --reuid=nobody --regid=nogroup --clear-groups \
    nginx -p "$prefix/" -c "$prefix/nginx.conf" -e "$prefix/logs/error.log"
fi
exec nginx -p "$prefix/" -c "$prefix/nginx.conf" -e "$prefix/logs/error.log"
