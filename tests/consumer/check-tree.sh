#!/usr/bin/env bash
# With sse-hub's default features off, the consumer's dependency tree holds
# the socket-free hub alone: no HTTP server (tiny_http or the fork), no zlib,
# no Redis client, no JWT crate, no argument parser, no TLS and no HTTP
# client. Prints what it found and exits non-zero if any of them is there.
set -euo pipefail
cd "$(dirname "$0")"
forbidden='tiny_http|sse-hub-tiny-http|libz-sys|redis|jsonwebtoken|clap|rustls|ureq|signal-hook'
tree=$(cargo tree --quiet --edges normal,build --prefix none --format '{p}' | awk '{print $1}' | sort -u)
found=$(grep -xE "$forbidden" <<<"$tree" || true)
if [ -n "$found" ]; then
  echo "sse-hub with default-features = false pulls in:" $found >&2
  exit 1
fi
echo "ok: $(wc -l <<<"$tree") crates, none of: ${forbidden//|/, }"
