"""What every client script in this folder shares with the Rust driver
(tests/client_matrix.rs): one JSON line on stdout per dispatched event,
notes for what happened to the connection, and an end when stdin closes.

An event line: {"type", "data", "id", "retry"}, where `id` is the ID the
library gives the event and `retry` the reconnection time (ms) it exposes
on it, or null. A note line: {"note": "..."}. Nothing else goes to stdout.
"""

import json
import os
import sys
import threading


def event(type_, data, id_, retry):
    """Prints one dispatched event."""
    _print({"type": type_, "data": data, "id": id_, "retry": retry})


def note(text):
    """Prints what happened to the connection (opened, failed, ...)."""
    _print({"note": str(text)})


def url():
    """The URL to connect to: the one argument."""
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} URL")
    return sys.argv[1]


def end_with_stdin():
    """Ends the process when stdin ends: the driver closes it to end the
    client, and a driver that died closes it too."""

    def watch():
        sys.stdin.buffer.read()
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


_lock = threading.Lock()


def _print(value):
    with _lock:
        sys.stdout.write(json.dumps(value) + "\n")
        sys.stdout.flush()
